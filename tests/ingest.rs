//! Ingest beyond plain JSON: line protocol, compressed bodies, limits, and backpressure.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

const T0_MS: i64 = 1_795_687_200_123;

async fn signal_names(server: &TestServer) -> Vec<String> {
    let (_, body) = server.get("/api/signals").await;
    body.as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal"].as_str().unwrap().to_owned())
        .collect()
}

async fn post_line_protocol(server: &TestServer, path: &str, body: &str) -> (u16, String) {
    let response = server
        .client
        .post(server.url(path))
        .header("content-type", "text/plain; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn line_protocol_v2_and_v1_store_fields_as_signals() {
    let server = TestServer::start().await;
    let v2 = format!("cpu,host=b,dc=eu usage=0.5,up=true {T0_MS}\nmem free=7i {T0_MS}\n");
    assert_eq!(
        post_line_protocol(&server, "/api/v2/write?precision=ms&org=x&bucket=y", &v2).await,
        (204, String::new())
    );
    let v1 = format!("disk used=3u {}\n", T0_MS / 1000);
    assert_eq!(
        post_line_protocol(&server, "/write?db=telegraf&precision=s", &v1)
            .await
            .0,
        204
    );

    assert_eq!(
        signal_names(&server).await,
        [
            "cpu.up{dc=eu,host=b}",
            "cpu.usage{dc=eu,host=b}",
            "disk.used",
            "mem.free"
        ]
    );
    let (_, body) = server
        .get(&format!(
            "/api/telemetry?from={}&to={T0_MS}&signals=disk.used",
            T0_MS - 1000
        ))
        .await;
    assert_eq!(
        body["series"][0]["timestamps"],
        json!([T0_MS / 1000 * 1000])
    );
    assert_eq!(body["series"][0]["values"], json!([3.0]));
    server.stop().await;
}

#[tokio::test]
async fn a_partly_bad_line_protocol_batch_is_refused_whole() {
    let server = TestServer::start().await;
    for (path, body, needle) in [
        (
            "/api/v2/write?precision=ms",
            format!("m v=1 {T0_MS}\nm note=\"hi {T0_MS}"),
            "line 2: field \"note\": a string field is not closed",
        ),
        (
            "/api/v2/write?precision=ms",
            format!("m v=1 {T0_MS}\nm v=oops {T0_MS}"),
            "line 2",
        ),
        (
            "/api/v2/write?precision=fortnights",
            "m v=1".to_owned(),
            "precision",
        ),
        ("/write", "m v=1 not-a-time".to_owned(), "line 1: timestamp"),
    ] {
        let (status, text) = post_line_protocol(&server, path, &body).await;
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(
            error["error"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
        // InfluxDB's clients read `code` and `message`.
        assert_eq!(error["code"], "invalid", "{error}");
        assert_eq!(error["message"], error["error"]);
    }
    assert!(signal_names(&server).await.is_empty(), "nothing stored");
    server.stop().await;
}

/// What Telegraf's `system` input sends: a string field beside the numbers, in every batch.
#[tokio::test]
async fn string_fields_are_skipped_counted_and_the_numbers_stored() {
    let server = TestServer::start().await;
    let body = format!(
        "system,host=a load1=0.5,n_users=2i {T0_MS}\n\
         system,host=a uptime=5i,uptime_format=\"1 day,  2:03\" {T0_MS}\n\
         system,host=a note=\"only text\" {T0_MS}\n"
    );
    let response = server
        .client
        .post(server.url("/api/v2/write?precision=ms"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let skipped = response.headers()["x-signalboard-skipped-string-fields"].clone();
    assert_eq!(skipped, "2");
    assert_eq!(
        signal_names(&server).await,
        [
            "system.load1{host=a}",
            "system.n_users{host=a}",
            "system.uptime{host=a}"
        ]
    );
    // A batch of strings alone stores nothing and is no error.
    let only = format!("system,host=a uptime_format=\"up\" {T0_MS}");
    assert_eq!(
        post_line_protocol(&server, "/write?precision=ms", &only).await,
        (204, String::new())
    );
    server.stop().await;
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_a_gzip_bomb_is_refused() {
    let server = TestServer::start_with(|s| s.limits.max_body_bytes = 64 * 1024).await;
    let sample = json!({"timestamp": T0_MS, "signals": {"zipped": 1.5}}).to_string();
    let response = server
        .client
        .post(server.url("/api/telemetry"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(sample.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // 10 MB of spaces compress to ~10 KB: small on the wire, far over the limit once inflated.
    let mut bomb = br#"{"signals": {"bomb": 1}}"#.to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 10_000_000));
    let packed = gzip(&bomb);
    assert!(packed.len() < 64 * 1024);
    let response = server
        .client
        .post(server.url("/api/telemetry"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(packed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("limit"),
        "{error}"
    );
    assert_eq!(signal_names(&server).await, ["zipped"]);
    server.stop().await;
}

#[tokio::test]
async fn a_full_write_queue_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    let server = TestServer::start_with(|s| s.limits.write_queue_points = 2).await;
    let blocker = server.block_writes().await;

    let mut posts = tokio::task::JoinSet::new();
    for i in 0..30i64 {
        let (client, url) = (server.client.clone(), server.url("/api/telemetry"));
        posts.spawn(async move {
            let body = json!({"timestamp": T0_MS + i, "signals": {"queued": i}}).to_string();
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (
                response.status().as_u16(),
                retry_after,
                response.text().await.unwrap(),
            )
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    blocker.release().await;

    let (mut accepted, mut refused) = (0, 0);
    while let Some(result) = posts.join_next().await {
        let (status, retry_after, body) = result.unwrap();
        match status {
            200 => accepted += 1,
            503 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert!(body.contains("queue is full"), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // Room for two points, in the blocked commit or waiting for the next; the rest are turned away.
    assert!(refused >= 20, "{refused} refused, {accepted} accepted");
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(
        signals[0]["points"], accepted,
        "every acknowledged point is stored, no other"
    );
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn a_live_client_that_stops_reading_is_dropped_and_never_slows_ingest() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start_with(|s| s.limits.live_backlog_points = 4_000).await;
    let (mut stalled, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/live", server.addr))
            .await
            .unwrap();
    // 300 commits of 1,000 points (~40 KB of JSON each) while the client reads nothing: the socket's
    // buffers fill, its sender blocks, and the broadcast moves on without it.
    let started = std::time::Instant::now();
    for batch in 0..300i64 {
        let samples: Vec<Value> = (0..1000i64)
            .map(|k| json!({"timestamp": T0_MS + batch * 1000 + k, "signals": {"flood": k}}))
            .collect();
        let (status, body) = server.post(&serde_json::to_string(&samples).unwrap()).await;
        assert_eq!(status, 200, "{body}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(60),
        "ingest was held up: {elapsed:?}"
    );

    // Once the client reads again it gets what was buffered, then a close: 1013, try again later,
    // after which a dashboard reconnects and backfills from history.
    let mut close = None;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_secs(10), stalled.next()).await
    {
        match message {
            Ok(Message::Close(frame)) => {
                close = frame;
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("socket error before the close: {e}"),
        }
    }
    let frame = close.expect("the server closes a lagging subscriber");
    assert_eq!(frame.code, CloseCode::Again);
    server.stop().await;
}

/// A value is stored as the double nearest to what was sent, to the last bit: decimal text that
/// a quick parser reads one unit in the last place off comes back exactly as written.
#[tokio::test]
async fn json_values_are_stored_to_the_last_bit() {
    let server = TestServer::start().await;
    let sent = "-7.777777707777778e-299";
    let body = format!(r#"{{"timestamp": {T0_MS}, "signals": {{"exact": {sent}}}}}"#);
    let (status, answer) = server.post(&body).await;
    assert_eq!(status, 200, "{answer}");
    let (_, history) = server
        .get(&format!(
            "/api/telemetry?from={T0_MS}&to={T0_MS}&signals=exact"
        ))
        .await;
    let stored = history["series"][0]["values"][0].as_f64().unwrap();
    assert_eq!(stored.to_bits(), sent.parse::<f64>().unwrap().to_bits());
    server.stop().await;
}

/// `signalboard produce --host` against a real server: this machine's CPU and memory arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_producer_sends_this_machines_signals() {
    // The producer stamps samples with the real time.
    let server = TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let mut producer = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args(["produce", "--host", "--rate", "10", "--url"])
        .arg(server.url("/api/telemetry"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..100 {
        names = signal_names(&server).await;
        if names
            .iter()
            .any(|n| n.starts_with("host.cpu.usage_percent{cpu=total,host="))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    producer.kill().await.unwrap();
    for wanted in [
        "host.cpu.usage_percent{cpu=total,host=",
        "host.memory.used_bytes{host=",
        "host.load1{host=",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(wanted)),
            "{wanted}… not in {names:?}"
        );
    }
    server.stop().await;
}

/// `signalboard produce --stdin`: a pipe of lines of both kinds, delivered before the producer exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stdin_producer_delivers_every_line_then_exits() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let mut producer = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args(["produce", "--stdin", "--url"])
        .arg(server.url("/api/telemetry"))
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = producer.stdin.take().unwrap();
    let mut lines = String::new();
    for i in 0..2_500 {
        lines.push_str(&format!("piped.simple {i} {}\n", T0_MS + i));
    }
    lines.push_str(&format!(
        "piped,port=ttyS0 temp=21.5 {}000000\n# a comment\n\npiped.now 7\n",
        T0_MS
    ));
    input.write_all(lines.as_bytes()).await.unwrap();
    drop(input);
    let exited = tokio::time::timeout(Duration::from_secs(20), producer.wait()).await;
    assert!(exited
        .expect("exits at the end of its input")
        .unwrap()
        .success());
    let (_, signals) = server.get("/api/signals").await;
    let points = |name: &str| {
        signals
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["signal"] == name)
            .map(|s| s["points"].as_u64().unwrap())
    };
    assert_eq!(points("piped.simple"), Some(2_500));
    assert_eq!(points("piped.temp{port=ttyS0}"), Some(1));
    assert_eq!(points("piped.now"), Some(1));
    server.stop().await;
}

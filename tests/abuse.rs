//! The server as a hostile or broken client finds it: each test sends what once hung, flooded or
//! fooled it, and checks for a clear refusal, a server that still answers `/healthz` quickly, and no
//! acknowledged point lost. Every loop here is bounded in count and time, and talks to loopback only.

mod common;

use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T0: i64 = 1_795_687_200_000; // 2026-11-26T10:00:00Z

/// `/healthz` answers, and within 100 ms (the median of five, on a shared machine).
async fn answers_quickly(server: &TestServer) {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        assert!(server.healthy().await, "/healthz failed");
        times.push(started.elapsed());
    }
    times.sort();
    assert!(
        times[2] < Duration::from_millis(100),
        "/healthz took {times:?}"
    );
}

/// GETs `path` as text, failing the test past `deadline`.
async fn page(server: &TestServer, path: &str, deadline: Duration) -> (u16, String) {
    let request = server.client.get(server.url(path)).send();
    let response = tokio::time::timeout(deadline, request)
        .await
        .unwrap_or_else(|_| panic!("GET {path} gave no answer within {deadline:?}"))
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn the_largest_and_smallest_finite_values_are_stored_and_the_page_still_draws() {
    let server = TestServer::start().await;
    let samples = json!([
        {"timestamp": T0, "signals": {" ": 1.7e308, "tiny": 5e-324, "flat": 42.0}},
        {"timestamp": T0 + 1000, "signals": {" ": -1.7e308, "tiny": 5e-324, "flat": 42.0}},
    ]);
    let (status, body) = server.post(&samples.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let query = format!("/?from={}&to={}", T0 - 5_000, T0 + 5_000);
    let (status, html) = page(&server, &query, Duration::from_secs(10)).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<svg").count(), 3, "a picture per signal");
    assert!(html.contains("1.7e308"), "the huge values are labelled");
    answers_quickly(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn max_points_cannot_lift_the_cap_on_an_answer() {
    let server = TestServer::start_with(|s| s.limits.max_raw_points = 1_000).await;
    let samples: Vec<Value> = (0..600)
        .map(|i| {
            let signals: serde_json::Map<String, Value> =
                (0..5).map(|k| (format!("s{k}"), json!(i))).collect();
            json!({"timestamp": T0 + i * 1000, "signals": signals})
        })
        .collect();
    let (status, body) = server.post(&Value::from(samples).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let range = format!("from={T0}&to={}", T0 + 600_000);
    let (status, _) = server.get(&format!("/api/telemetry?{range}")).await;
    assert_eq!(status, 400, "3,000 raw points are over the cap of 1,000");
    let (status, body) = server
        .get(&format!("/api/telemetry?{range}&max_points=1000"))
        .await;
    assert_eq!(status, 200, "{body}");
    let points: usize = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["timestamps"].as_array().unwrap().len())
        .sum();
    assert!(points <= 1_000, "{points} points in one answer");
    assert_eq!(body["series"].as_array().unwrap().len(), 5);
    server.stop().await;
}

#[tokio::test]
async fn a_small_url_cannot_make_a_huge_page() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(&json!({"timestamp": T0, "signals": {"a": 1, "b": 2}}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let deadline = Duration::from_secs(10);
    // All of time: a tick every thousand years, not every month.
    let (status, html) = page(&server, "/?from=0&to=253402300799999", deadline).await;
    assert_eq!(status, 200);
    assert!(html.len() < 200_000, "a {} byte page", html.len());
    // Bounds past what can be stored are clamped, not overflowed.
    let extreme = format!("/?from={}&to={}", i64::MIN, i64::MAX);
    let (status, _) = page(&server, &extreme, deadline).await;
    assert_eq!(status, 200);
    // Thousands of names, most of them unknown: only known signals get a picture, at most a dozen.
    let names: Vec<String> = (0..3_000).map(|i| format!("unknown{i}")).collect();
    let query = format!("/?signals=a,{},b", names.join(","));
    let (status, html) = page(&server, &query, deadline).await;
    assert_eq!(status, 200);
    assert_eq!(
        html.matches("<svg").count(),
        2,
        "a picture for a and b only"
    );
    answers_quickly(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_live_client_that_stops_reading_is_closed_after_the_send_deadline() {
    use tokio_tungstenite::tungstenite::Message;

    let server =
        TestServer::start_with(|s| s.limits.live_send_timeout = Duration::from_secs(1)).await;
    // A socket with a small receive buffer that is never read: the server's sends stall once its
    // own buffer is full.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let url = format!("ws://{}/api/live", server.addr);
    let (mut stalled, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
    // 200 commits of 1,000 points (~8 MB of JSON): within the live backlog, so only the send
    // deadline can part the server from this client.
    for batch in 0..200i64 {
        let samples: Vec<Value> = (0..1000i64)
            .map(|k| json!({"timestamp": T0 + batch * 1000 + k, "signals": {"flood": k}}))
            .collect();
        let (status, body) = server.post(&Value::from(samples).to_string()).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // What was buffered still arrives; then the stream ends (a close frame, or the connection cut
    // when even that could not be sent in time).
    let mut received = 0;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Text(text)) => received += text.matches("\"signal\"").count(),
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server kept a stalled client ({received} points read afterwards)"
    );
    assert!(received < 200_000, "the stalled client was sent everything");
    answers_quickly(&server).await;
    server.stop().await;
}

/// Opens `n` connections that each send the start of a request and nothing more.
async fn half_open(server: &TestServer, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        sockets.push(tcp);
    }
    sockets
}

/// Whether the server has closed `tcp` (reads end, or fail), waiting at most `deadline`.
async fn closed_by_server(tcp: &mut TcpStream, deadline: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(deadline, async {
        loop {
            match tcp.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_thousand_half_open_requests_neither_stop_healthz_nor_stay_open() {
    let server = TestServer::start_with(|s| s.limits.header_timeout = Duration::from_secs(2)).await;
    let mut sockets = half_open(&server, 1_000).await;
    answers_quickly(&server).await;
    // Past the header timeout the server closes every one of them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, tcp) in sockets.iter_mut().enumerate() {
        assert!(
            closed_by_server(tcp, Duration::from_secs(3)).await,
            "half-open connection {i} is still open"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_the_cap_frees_up() {
    let server = TestServer::start_with(|s| s.limits.max_connections = 20).await;
    // The test client's own pooled connection may hold one place: make sure it is idle and closed.
    let mut held = half_open(&server, 20).await;
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    assert!(
        closed_by_server(&mut extra, Duration::from_secs(2)).await,
        "a connection past the cap was kept"
    );
    held.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = reqwest::Client::new();
    let healthy = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_trickled_body_gets_408_at_the_request_deadline() {
    let server =
        TestServer::start_with(|s| s.limits.request_timeout = Duration::from_secs(1)).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let trickle = async {
        // A byte every 200 ms, for at most 10 s: never the whole body.
        for _ in 0..50 {
            if tcp.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), trickle)
        .await
        .ok();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut answer))
        .await
        .expect("no answer to a trickled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout-secs"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    answers_quickly(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn new_signals_are_limited_per_request_and_in_total() {
    let server = TestServer::start_with(|s| {
        s.limits.max_new_signals = 100;
        s.limits.max_total_signals = 150;
    })
    .await;
    let sample = |names: std::ops::Range<usize>| {
        let signals: serde_json::Map<String, Value> =
            names.map(|k| (format!("s{k:03}"), json!(k))).collect();
        json!({"timestamp": T0, "signals": signals}).to_string()
    };
    let (status, body) = server.post(&sample(0..101)).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("max-new-signals"),
        "{body}"
    );
    let (status, body) = server.post(&sample(0..100)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.post(&sample(50..160)).await;
    assert_eq!(status, 400, "60 new signals would make 160 of at most 150");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("max-total-signals"),
        "{body}"
    );
    // Known signals are always written.
    let (status, body) = server.post(&sample(0..100)).await;
    assert_eq!(status, 200, "{body}");
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(
        signals.as_array().unwrap().len(),
        100,
        "nothing of a refusal stored"
    );
    server.stop().await;
}

// Two threads: parsing the big body in the server must not stop the test's own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_new_signals_in_one_request_are_all_stored_while_others_write_on() {
    let server = TestServer::start().await;
    let body: String = (0..100_000)
        .map(|i| format!("host{i},dc=eu load=1 {}\n", T0 * 1_000_000))
        .collect();
    let started = Instant::now();
    let big = server
        .client
        .post(server.url("/api/v2/write"))
        .body(body)
        .send();
    // Single POSTs one after another while it is stored: its new signals are inserted a thousand
    // a transaction, so each waits for a few at most, not for all of them.
    let done = AtomicBool::new(false);
    let big = async {
        let response = big.await.unwrap();
        assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
        done.store(true, Ordering::SeqCst);
        started.elapsed()
    };
    let singles = async {
        let mut waited = Vec::new();
        for i in 0.. {
            if done.load(Ordering::SeqCst) {
                break;
            }
            let sent = Instant::now();
            let (status, _) = server
                .post(&json!({"signals": {"single": i}}).to_string())
                .await;
            assert_eq!(status, 200);
            waited.push(sent.elapsed());
        }
        waited
    };
    let (took, waited) = tokio::join!(big, singles);
    let longest = waited.iter().max().copied().unwrap_or_default();
    assert!(
        waited.len() >= 5,
        "{} single POSTs in {took:?}",
        waited.len()
    );
    assert!(
        longest < took / 4,
        "a single POST waited {longest:?} while the request took {took:?}"
    );
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(signals.as_array().unwrap().len(), 100_001, "took {took:?}");
    answers_quickly(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn the_write_queue_is_bounded_in_points_not_requests() {
    let server = TestServer::start_with(|s| s.limits.write_queue_points = 1_000).await;
    // The first request waits in the queue.
    let blocker = server.block_writes().await;
    let batch = |signal: &str| {
        let samples: Vec<Value> = (0..800)
            .map(|i| json!({"timestamp": T0 + i, "signals": {signal: i}}))
            .collect();
        Value::from(samples).to_string()
    };
    let first = {
        let (client, url, body) = (
            server.client.clone(),
            server.url("/api/telemetry"),
            batch("first"),
        );
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 800 points wait; 800 more do not fit in the room for 1,000.
    let (status, body) = server.post(&batch("second")).await;
    assert_eq!(status, 503, "{body}");
    // More points than the whole queue can ever hold: no use retrying.
    let samples: Vec<Value> = (0..1_001)
        .map(|i| json!({"timestamp": T0 + i, "signals": {"third": i}}))
        .collect();
    let (status, body) = server.post(&Value::from(samples).to_string()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("write-queue-points"));
    blocker.release().await;
    assert_eq!(first.await.unwrap(), 200, "the queued request is committed");
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(
        signals,
        json!([{"signal": "first", "points": 800, "last_timestamp": T0 + 799, "last_value": 799.0}])
    );
    server.stop().await;
}

#[tokio::test]
async fn write_requests_past_the_concurrency_limit_are_turned_away_at_once() {
    let server = TestServer::start_with(|s| s.limits.max_concurrent_writes = 1).await;
    let blocker = server.block_writes().await;
    let first = {
        let (client, url) = (server.client.clone(), server.url("/write"));
        tokio::spawn(async move {
            let body = format!("first v=1 {}", T0 * 1_000_000);
            client.post(url).body(body).send().await.unwrap().status()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = server
        .client
        .post(server.url("/write"))
        .body(format!("second v=1 {}", T0 * 1_000_000))
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    blocker.release().await;
    assert_eq!(first.await.unwrap(), 204);
    // Reads are not writes: they never wait for a write's place.
    assert!(server.healthy().await);
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(signals.as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn pages_of_other_sites_can_neither_write_nor_watch() {
    let server = TestServer::start().await;
    let post = |path: &str, origin: Option<&str>| {
        let mut request = server
            .client
            .post(server.url(path))
            .header("content-type", "text/plain")
            .body(format!("cross v=1 {}", T0 * 1_000_000));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for path in ["/write", "/api/v2/write"] {
        let refused = post(path, Some("https://evil.example")).await.unwrap();
        assert_eq!(refused.status(), 403, "{path}");
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("origin"), "{body}");
    }
    let json_post = server
        .client
        .post(server.url("/api/telemetry"))
        .header("content-type", "application/json")
        .header("origin", "http://127.0.0.1:1")
        .body(json!({"timestamp": T0, "signals": {"cross": 1}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(json_post.status(), 403);
    // The live feed from another site's page is refused before the upgrade.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/api/live",
            server.addr
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
    // Producers send no Origin; the dashboard sends its own.
    assert_eq!(post("/write", None).await.unwrap().status(), 204);
    let own = format!("http://{}", server.addr);
    assert_eq!(post("/write", Some(&own)).await.unwrap().status(), 204);
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(signals[0]["points"], 1, "only the allowed writes stored");
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_block_answers_500_without_the_database_s_words() {
    use sqlx::Connection;

    let server = TestServer::start().await;
    let (status, body) = server
        .post(&json!({"timestamp": T0, "signals": {"a": 1}}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    // A read folds the journal's points into their block.
    server.get("/api/signals").await;
    let url = format!("sqlite://{}", server.database.display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE blocks SET data = x'ffffffffffffffffffff'")
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    let range = format!("/api/telemetry?from={}&to={}", T0 - 1, T0 + 1);
    let response = server.client.get(server.url(&range)).send().await.unwrap();
    assert_eq!(response.status(), 500, "corruption is no reason to retry");
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("internal error"), "{error}");
    assert!(!error.contains("block"), "{error}");
    server.stop().await;
}

/// Serves `database_url` with the repo's settings, expecting a refusal to start; returns its message.
async fn refusal_to_serve(database_url: String) -> String {
    use signalboard::config::{ServeArgs, Settings};

    let args = ServeArgs {
        database_url: Some(database_url),
        config: "Leptos.toml".into(),
        ..ServeArgs::default()
    };
    let settings = Settings::load(&args).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = signalboard::server::serve(listener, settings, std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server started serving")
        .unwrap_err();
    format!("{error:#}")
}

#[tokio::test]
async fn a_second_server_on_the_same_database_refuses_to_start() {
    let first = TestServer::start().await;
    let message = refusal_to_serve(format!("sqlite://{}", first.database.display())).await;
    assert!(
        message.contains("in use by another Signalboard server"),
        "{message}"
    );
    assert!(
        message.contains(&first.database.display().to_string()),
        "{message}"
    );
    assert!(first.healthy().await);
    first.stop().await;
}

#[tokio::test]
async fn a_database_url_of_another_kind_is_refused_not_made_a_file() {
    let message = refusal_to_serve("mysql://user@host:3306/db".into()).await;
    assert!(
        message.contains("unsupported database URL scheme \"mysql\""),
        "{message}"
    );
    assert!(!std::path::Path::new("mysql:").exists());
}

#[tokio::test]
async fn a_point_older_than_raw_retention_is_refused_so_a_resend_cannot_count_twice() {
    use signalboard::server::store::Retention;

    let server = TestServer::start_with(|s| s.retention = Retention::days(1, 90, 730)).await;
    let now = common::NOW;
    let two_days_ago = now - 2 * 86_400_000;
    let old = json!({"timestamp": two_days_ago, "signals": {"late": 1}}).to_string();
    for _ in 0..2 {
        let (status, body) = server.post(&old).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("raw-retention-days"),
            "{body}"
        );
    }
    let (status, body) = server
        .post(&json!({"timestamp": now - 3_600_000, "signals": {"late": 2}}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let query = format!(
        "/api/telemetry?from={}&to={now}&max_points=100",
        two_days_ago - 3_600_000
    );
    let (_, body) = server.get(&query).await;
    assert_eq!(body["series"][0]["values"], json!([2.0]), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_resend_once_the_clock_has_passed_raw_retention_is_refused_not_counted_again() {
    use signalboard::server::domain::Timestamp;

    let server = TestServer::start().await;
    let sample = json!({"timestamp": T0, "signals": {"resent": 1}}).to_string();
    let (status, body) = server.post(&sample).await;
    assert_eq!(status, 200, "{body}");
    // Eight days on, past the shipped seven days of raw retention, the producer retries.
    server
        .clock
        .set(Timestamp::from_millis(T0 + 8 * 86_400_000).unwrap());
    let (status, body) = server.post(&sample).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("raw-retention-days"));
    server.stop().await;
}

#[tokio::test]
async fn a_remote_write_that_is_not_snappy_protobuf_is_refused_and_stores_nothing() {
    let server = TestServer::start().await;
    let post = |body: Vec<u8>| {
        server
            .client
            .post(server.url("/api/v1/write"))
            .header("content-encoding", "snappy")
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
    };
    // Garbage; a snappy header claiming 4 GB; a well-formed snappy frame of a broken protobuf.
    for body in [
        b"definitely not snappy".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0x00],
        vec![0x04, 0x0c, 0xff, 0xff, 0xff, 0xff],
    ] {
        let response = post(body).await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains("body"), "{error}");
    }
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(signals, json!([]));
    answers_quickly(&server).await;
    server.stop().await;
}

//! What the server tells about itself: `GET /metrics` in Prometheus' text format (checked by Debian's
//! `promtool`), and its own `signalboard.*` signals, written through its own write path.

mod common;

use common::{TestServer, NOW};
use std::time::Duration;

async fn scrape(server: &TestServer) -> (u16, String) {
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The value of the sample `series` (name and labels, exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running promtool (apt-get install prometheus): {e}"));
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).unwrap();
    drop(stdin);
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_count_requests_points_refusals_and_skips() {
    let server = TestServer::start().await;
    let (status, _) = server
        .post(&format!(r#"[{{"timestamp":{NOW},"signals":{{"a":1,"b":2}}}},{{"timestamp":{},"signals":{{"a":3}}}}]"#, NOW - 1))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server.post(r#"{"signals":"not an object"}"#).await;
    assert_eq!(status, 400);
    let lines = format!("m,host=h value=1,note=\"text\" {NOW}");
    let response = server
        .client
        .post(server.url("/api/v2/write?precision=ms"))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);

    let (status, text) = scrape(&server).await;
    assert_eq!(status, 200);
    promtool_check(&text);
    let expect = |series: &str, value: f64| {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    };
    expect("signalboard_points_accepted_total", 4.0);
    expect(
        r#"signalboard_http_requests_total{route="/api/telemetry",method="POST",status="200"}"#,
        1.0,
    );
    expect(
        r#"signalboard_http_requests_total{route="/api/telemetry",method="POST",status="400"}"#,
        1.0,
    );
    expect(r#"signalboard_http_refusals_total{reason="invalid"}"#, 1.0);
    expect(
        r#"signalboard_points_skipped_total{reason="string_field"}"#,
        1.0,
    );
    expect(
        r#"signalboard_http_request_duration_seconds_count{route="/api/telemetry",method="POST"}"#,
        2.0,
    );
    expect("signalboard_commit_points_sum", 4.0);
    expect("signalboard_signals", 3.0);
    expect("signalboard_write_queue_points", 0.0);
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_cpu_seconds_total",
    ] {
        assert!(sample(&text, process).unwrap() > 0.0, "{process}");
    }
    // Its size on disk is measured as the server runs.
    let mut size = 0.0;
    for _ in 0..100 {
        size = sample(&scrape(&server).await.1, "signalboard_database_bytes").unwrap();
        if size > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(size > 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_does_not_grow_with_the_number_of_signals_or_of_paths_asked() {
    let server = TestServer::start().await;
    server
        .post(&format!(r#"{{"timestamp":{NOW},"signals":{{"one":1}}}}"#))
        .await;
    let lines = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    // The first scrape adds the series of `/metrics` itself.
    scrape(&server).await;
    let before = lines(&scrape(&server).await.1);
    let signals: serde_json::Map<String, serde_json::Value> =
        (0..1_000).map(|i| (format!("s{i}"), 1.into())).collect();
    let sample = serde_json::json!({"timestamp": NOW, "signals": signals});
    let (status, _) = server.post(&sample.to_string()).await;
    assert_eq!(status, 200);
    // Paths no route matches are one series, whatever they are.
    for i in 0..50 {
        let path = format!("/no/such/path/{i}");
        let response = server.client.get(server.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let text = scrape(&server).await.1;
    assert_eq!(
        self::sample(
            &text,
            r#"signalboard_http_requests_total{route="(files)",method="GET",status="404"}"#
        ),
        Some(50.0)
    );
    // The one 404 series, its duration histogram and its refusal reason are all that is new.
    let histogram_lines = text
        .lines()
        .filter(|l| {
            l.starts_with("signalboard_http_request_duration_seconds") && l.contains("(files)")
        })
        .count();
    assert_eq!(lines(&text), before + 1 + histogram_lines + 1, "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_off_the_endpoint_is_not_found() {
    let server = TestServer::start_with(|s| s.monitoring.metrics = false).await;
    let (status, text) = scrape(&server).await;
    assert_eq!(status, 404, "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_writes_its_own_health_as_signals_unless_turned_off() {
    let every = Some(Duration::from_millis(200));
    let server = TestServer::start_with(|s| s.monitoring.self_signals = every).await;
    let quiet = TestServer::start_with(|s| s.monitoring.self_signals = None).await;
    let body = format!(r#"{{"timestamp":{NOW},"signals":{{"x":1}}}}"#);
    let wanted = [
        "signalboard.ingest.points_per_sec",
        "signalboard.write.p99_ms",
        "signalboard.process.rss_bytes",
        "signalboard.live.clients",
    ];
    let mut signals = serde_json::Value::Null;
    for _ in 0..50 {
        for server in [&server, &quiet] {
            assert_eq!(server.post(&body).await.0, 200);
        }
        signals = server.get("/api/signals").await.1;
        let names: Vec<&str> = signals
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["signal"].as_str())
            .collect();
        if wanted.iter().all(|w| names.contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newest = |name: &str| {
        let signal = signals
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["signal"] == name);
        signal.unwrap_or_else(|| panic!("{name} not in {signals}"))["last_value"]
            .as_f64()
            .unwrap()
    };
    assert!(newest("signalboard.process.rss_bytes") > 1e6);
    assert!(newest("signalboard.write.p99_ms") > 0.0);
    // Through the normal write path: in the history like any signal.
    let (status, history) = server
        .get("/api/telemetry?signals=signalboard.ingest.points_per_sec&hours=1")
        .await;
    assert_eq!(status, 200, "{history}");
    let (_, quiet_signals) = quiet.get("/api/signals").await;
    assert_eq!(
        quiet_signals.as_array().unwrap().len(),
        1,
        "{quiet_signals}"
    );
    server.stop().await;
    quiet.stop().await;
}

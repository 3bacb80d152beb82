//! Prometheus remote write with the real thing: Debian's `prometheus` scraping Debian's
//! `prometheus-node-exporter`, both started here on loopback, with a `remote_write` to a Signalboard
//! server. The node's CPU and memory series land as signals and show on the dashboard; and the
//! server's own `/metrics`, scraped by the same Prometheus, come back to it the same way.

mod common;

use common::{free_port, TestServer};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program} (apt-get install {program}): {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scraping_a_node_exporter_and_the_server_writes_their_series_as_signals() {
    // Prometheus sends the time of its scrapes: the server runs on the system clock.
    let server = TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let dir = tempfile::tempdir().unwrap();
    let node = free_port();
    let _exporter = spawn(
        "prometheus-node-exporter",
        &[format!("--web.listen-address=127.0.0.1:{node}")],
    );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node}']\n\
             \x20 - job_name: signalboard\n    static_configs:\n      - targets: ['{}']\n\
             remote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
            server.addr,
            server.url("/api/v1/write")
        ),
    )
    .unwrap();
    let _prometheus = spawn(
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{}", free_port()),
        ],
    );

    let instance = format!("instance=127.0.0.1:{node},job=node");
    let own = format!("instance={},job=signalboard", server.addr);
    let wanted = [
        format!("node_cpu_seconds_total{{cpu=0,{instance},mode=idle}}"),
        format!("node_memory_MemAvailable_bytes{{{instance}}}"),
        format!("signalboard_points_accepted_total{{{own}}}"),
        format!("process_resident_memory_bytes{{{own}}}"),
    ];
    let mut names: Vec<String> = Vec::new();
    for _ in 0..120 {
        let (_, signals) = server.get("/api/signals").await;
        names = signals
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["signal"].as_str().unwrap().to_owned())
            .collect();
        if wanted.iter().all(|w| names.contains(w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for w in &wanted {
        assert!(names.contains(w), "{w} not among {} signals", names.len());
    }
    // On the dashboard: the page lists them.
    let page = server
        .client
        .get(server.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("node_memory_MemAvailable_bytes"));
    server.stop().await;
}

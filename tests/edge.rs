//! `signalboard edge` against real outages, as separate processes: a server (SQLite), an edge in
//! front of it, and a producer posting 1,000 points a second to the edge. Whatever happens to the
//! server or to the edge, every point the edge acknowledged reaches the server, once.

mod common;

use common::{free_port, get_json, wait_healthy, ServeProcess};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIGNAL: &str = "site.flow";
/// Points per request; a request every 100 ms makes 1,000 points a second.
const PER_REQUEST: i64 = 100;

/// A server and an edge forwarding to it, each started and stopped by the test.
struct Site {
    dir: tempfile::TempDir,
    client: reqwest::Client,
    server_port: u16,
    edge_port: u16,
    server: Option<ServeProcess>,
    edge: Option<ServeProcess>,
    edge_args: Vec<String>,
}

impl Site {
    fn new(edge_args: &[&str]) -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            server_port: free_port(),
            edge_port: free_port(),
            server: None,
            edge: None,
            edge_args: edge_args.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn server_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.server_port)
    }

    fn edge_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.edge_port)
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    async fn start_server(&mut self) {
        let database = format!("sqlite://{}", self.dir.path().join("server.db").display());
        self.server = Some(ServeProcess::start(&database, self.server_port));
        wait_healthy(&self.client, &self.server_base()).await;
    }

    /// Stops the server as a crash would (SIGKILL).
    fn stop_server(&mut self) {
        self.server.take().unwrap().kill();
    }

    async fn start_edge(&mut self) {
        let upstream = format!("{}/api/telemetry", self.server_base());
        let addr = format!("127.0.0.1:{}", self.edge_port);
        let spool = self.spool().display().to_string();
        let mut args = vec![
            "edge",
            "--upstream",
            &upstream,
            "--addr",
            &addr,
            "--spool",
            &spool,
        ];
        args.extend(self.edge_args.iter().map(String::as_str));
        self.edge = Some(ServeProcess::run(&args));
        wait_healthy(&self.client, &self.edge_base()).await;
    }

    fn kill_edge(&mut self) {
        self.edge.take().unwrap().kill();
    }

    async fn spool_report(&self) -> Value {
        get_json(&self.client, &format!("{}/api/spool", self.edge_base())).await
    }

    /// Waits until the edge has forwarded everything (its backoff after an outage included).
    async fn drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let report = self.spool_report().await;
            if report["waiting_points"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "not forwarded: {report}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The signal's timestamps the server holds.
    async fn stored(&self) -> Vec<i64> {
        let url = format!(
            "{}/api/telemetry?signals={SIGNAL}&from=0&to=4102444800000",
            self.server_base()
        );
        let answer = get_json(&self.client, &url).await;
        answer["series"][0]["timestamps"]
            .as_array()
            .map(|t| t.iter().map(|t| t.as_i64().unwrap()).collect())
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy)]
enum Api {
    Json,
    LineProtocol,
}

/// Request `n`'s timestamps, one a millisecond from `start`.
fn timestamps(start: i64, n: i64) -> impl Iterator<Item = i64> {
    let first = start + n * PER_REQUEST;
    first..first + PER_REQUEST
}

/// Values of many digits: a spool compresses them about as little as real measurements.
fn value(t: i64) -> f64 {
    (t % 100_003) as f64 / 7.0
}

/// Posts request `n` to the edge; whether it was acknowledged.
async fn post(client: &reqwest::Client, edge: &str, api: Api, start: i64, n: i64) -> bool {
    let request = match api {
        Api::Json => {
            let samples: Vec<Value> = timestamps(start, n)
                .map(|t| serde_json::json!({"timestamp": t, "signals": {SIGNAL: value(t)}}))
                .collect();
            client.post(format!("{edge}/api/telemetry")).json(&samples)
        }
        Api::LineProtocol => {
            let lines: Vec<String> = timestamps(start, n)
                .map(|t| format!("site flow={} {t}", value(t)))
                .collect();
            client
                .post(format!("{edge}/api/v2/write?precision=ms"))
                .body(lines.join("\n"))
        }
    };
    request.send().await.is_ok_and(|r| r.status().is_success())
}

/// A producer posting to the edge at 1,000 points a second until stopped.
struct Producer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<i64>>,
}

impl Producer {
    fn start(site: &Site, api: Api) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let (client, edge) = (site.client.clone(), site.edge_base());
        let start = now_ms() - 60_000;
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut acknowledged = Vec::new();
                let mut ticks = tokio::time::interval(Duration::from_millis(100));
                for n in 0.. {
                    ticks.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if post(&client, &edge, api, start, n).await {
                        acknowledged.extend(timestamps(start, n));
                    }
                }
                acknowledged
            }
        });
        Producer { stop, task }
    }

    /// Stops it; the timestamps the edge acknowledged.
    async fn stop(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_without_the_server_loses_no_acknowledged_point() {
    let mut site = Site::new(&[]);
    site.start_server().await;
    site.start_edge().await;
    let producer = Producer::start(&site, Api::LineProtocol);
    tokio::time::sleep(Duration::from_secs(3)).await;
    site.stop_server();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let waiting = site.spool_report().await["waiting_points"]
        .as_u64()
        .unwrap();
    assert!(
        waiting >= 55_000,
        "the minute's points wait in the spool: {waiting}"
    );
    site.start_server().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acknowledged = producer.stop().await;
    assert!(acknowledged.len() >= 60_000, "{}", acknowledged.len());
    site.drained().await;
    assert_eq!(site.stored().await, acknowledged, "every point, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_killed_mid_stream_forwards_what_it_acknowledged_once_restarted() {
    let mut site = Site::new(&[]);
    site.start_server().await;
    site.start_edge().await;
    let producer = Producer::start(&site, Api::Json);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // With a backlog in the spool: the server away while the edge dies.
    site.stop_server();
    tokio::time::sleep(Duration::from_secs(1)).await;
    site.kill_edge();
    site.start_server().await;
    site.start_edge().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acknowledged = producer.stop().await;
    site.drained().await;
    let stored = site.stored().await;
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|t| stored.binary_search(t).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged points lost",
        missing.len()
    );
    // What the edge took but could not answer before it died may be there too; nothing else.
    assert!(stored.len() - acknowledged.len() <= 2 * PER_REQUEST as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_its_oldest_points_and_counts_them() {
    let mut site = Site::new(&["--spool-max-mb", "1"]);
    site.start_edge().await;
    let start = now_ms() - 300_000;
    let mut acknowledged = Vec::new();
    for n in 0..2_000 {
        assert!(post(&site.client, &site.edge_base(), Api::Json, start, n).await);
        acknowledged.extend(timestamps(start, n));
    }
    let report = site.spool_report().await;
    let (waiting, dropped) = (
        report["waiting_points"].as_u64().unwrap(),
        report["dropped_points"].as_u64().unwrap(),
    );
    assert!(
        dropped > 0 && report["bytes"].as_u64().unwrap() <= 1 << 20,
        "{report}"
    );
    assert_eq!(waiting + dropped, acknowledged.len() as u64, "{report}");
    site.start_server().await;
    site.drained().await;
    let newest = &acknowledged[acknowledged.len() - waiting as usize..];
    assert_eq!(
        site.stored().await,
        newest,
        "the newest points, all of them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_spool_is_delivered_up_to_the_tear_and_the_rest_reported() {
    let mut site = Site::new(&[]);
    site.start_edge().await;
    let start = now_ms() - 60_000;
    let mut acknowledged = Vec::new();
    for n in 0..50 {
        assert!(post(&site.client, &site.edge_base(), Api::Json, start, n).await);
        acknowledged.extend(timestamps(start, n));
    }
    site.kill_edge();
    // The last record loses its last bytes, as a crash in the middle of writing it would.
    let mut segments: Vec<_> = std::fs::read_dir(site.spool())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    let last = segments.pop().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(file.metadata().unwrap().len() - 10).unwrap();
    site.start_server().await;
    site.start_edge().await;
    site.drained().await;
    let report = site.spool_report().await;
    assert!(report["damaged_bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(last.with_extension("damaged").exists());
    let good = &acknowledged[..acknowledged.len() - PER_REQUEST as usize];
    assert_eq!(site.stored().await, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_api_lands_through_the_edge_for_holders_of_its_token() {
    use prost::Message;
    use signalboard::server::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    let mut site = Site::new(&["--accept-token", "edge-secret"]);
    site.start_server().await;
    site.start_edge().await;
    let t = now_ms() - 10_000;
    let edge = site.edge_base();
    let remote_write = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: [("__name__", "up"), ("job", "node")]
                .map(|(name, value)| Label {
                    name: name.into(),
                    value: value.into(),
                })
                .to_vec(),
            samples: vec![Sample {
                value: 1.0,
                timestamp: t,
            }],
        }],
    };
    let remote_write = snap::raw::Encoder::new()
        .compress_vec(&remote_write.encode_to_vec())
        .unwrap();
    let requests = [
        site.client
            .post(format!("{edge}/api/telemetry"))
            .json(&serde_json::json!({"timestamp": t, "signals": {"json.in": 1.5}})),
        site.client
            .post(format!("{edge}/api/v2/write?precision=ms"))
            .body(format!("lp in=2.5 {t}")),
        site.client
            .post(format!("{edge}/api/v1/write"))
            .header("content-encoding", "snappy")
            .header("content-type", "application/x-protobuf")
            .body(remote_write),
    ];
    for request in requests {
        let unauthorized = request.try_clone().unwrap().send().await.unwrap();
        assert_eq!(unauthorized.status(), 401);
        let answer = request.bearer_auth("edge-secret").send().await.unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    site.drained().await;
    let signals = get_json(&site.client, &format!("{}/api/signals", site.server_base())).await;
    let mut names: Vec<&str> = signals
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signal"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["json.in", "lp.in", "up{job=node}"]);
}

#[test]
fn an_edge_without_a_token_refuses_to_listen_beyond_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalboard"))
        .args(["edge", "--upstream", "http://127.0.0.1:9/api/telemetry"])
        .args(["--addr", &format!("0.0.0.0:{}", free_port())])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("--accept-token"), "{said}");
}

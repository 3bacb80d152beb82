//! Alert rules against the real server: a rule fires on posted points, its webhook is delivered
//! through a receiver's failures and every attempt recorded, a restart does not fire an episode
//! twice, silence fires a no-data rule, and annotations are stored and listed.

mod common;

use common::{free_port, get_json, wait_healthy, ServeProcess, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver on loopback that answers 503 to its first `failures` requests, then 200,
/// and keeps every body it was sent.
#[derive(Clone)]
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(failures: usize) -> Receiver {
        use axum::http::StatusCode;
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post({
                let (bodies, requests) = (bodies.clone(), requests.clone());
                move |body: String| async move {
                    if requests.fetch_add(1, Ordering::SeqCst) < failures {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    bodies
                        .lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url,
            bodies,
            requests,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until `n` notifications were delivered.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.bodies().len() < n {
            assert!(Instant::now() < deadline, "delivered: {:?}", self.bodies());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.bodies()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn create_rule(client: &reqwest::Client, base: &str, rule: Value) -> i64 {
    let response = client
        .post(format!("{base}/api/alerts"))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn post(client: &reqwest::Client, base: &str, signal: &str, t: i64, v: f64) {
    let sample = json!({"timestamp": t, "signals": {signal: v}});
    let response = client
        .post(format!("{base}/api/telemetry"))
        .json(&sample)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

#[tokio::test]
async fn a_rule_fires_once_held_and_its_webhook_gets_through_failures() {
    let server = TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let (client, base) = (server.client.clone(), server.url(""));
    let receiver = Receiver::start(2).await;
    let rule = json!({
        "name": "hot boiler", "signal": "boiler.*", "for_secs": 2, "note": "open the valve",
        "condition": {"kind": "above", "threshold": 90}, "webhook": receiver.url,
    });
    let id = create_rule(&client, &base, rule).await;
    let t = now_ms() - 10_000;
    // Above for a second: pending, not firing.
    post(&client, &base, "boiler.a", t, 95.0).await;
    post(&client, &base, "boiler.a", t + 1_000, 96.0).await;
    let rules = get_json(&client, &format!("{base}/api/alerts")).await;
    assert_eq!(rules[0]["states"][0]["state"], "pending", "{rules}");
    post(&client, &base, "room.temp", t + 1_000, 99.0).await;
    // Held for 2 s: firing, once, whatever follows while it holds.
    for k in 2..6 {
        post(&client, &base, "boiler.a", t + k * 1_000, 97.0).await;
    }
    let delivered = receiver.wait_for(1).await;
    assert_eq!(delivered[0]["state"], "firing");
    assert_eq!(delivered[0]["signal"], "boiler.a");
    assert_eq!(delivered[0]["rule"]["name"], "hot boiler");
    assert_eq!(delivered[0]["rule"]["note"], "open the valve");
    assert_eq!(delivered[0]["since_ms"], t);
    assert_eq!(delivered[0]["at_ms"], t + 2_000);
    assert_eq!(delivered[0]["value"], 97.0);
    // Back below: resolved.
    post(&client, &base, "boiler.a", t + 7_000, 50.0).await;
    let delivered = receiver.wait_for(2).await;
    assert_eq!(delivered[1]["state"], "resolved");
    assert_eq!(delivered.len(), 2);
    // Every attempt is on record: two refusals, then the deliveries.
    let attempts = get_json(&client, &format!("{base}/api/alerts/{id}/deliveries")).await;
    let outcomes: Vec<&str> = attempts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["503", "503", "200", "200"]);
    // The episode's start and end are annotations on the signal's chart.
    let url = format!("{base}/api/annotations?from={t}&to={}", t + 10_000);
    let notes = get_json(&client, &url).await;
    let texts: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "[FIRING] hot boiler: boiler.a = 97 (above 90)",
            "[RESOLVED] hot boiler: boiler.a = 50 (above 90)"
        ]
    );
    assert_eq!(notes[0]["signals"], json!(["boiler.a"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_does_not_fire_an_episode_twice() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("alerts.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let receiver = Receiver::start(0).await;
    let mut server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    let rule = json!({"name": "low", "signal": "tank", "condition": {"kind": "below", "threshold": 10},
                      "webhook": receiver.url, "slack": true});
    create_rule(&client, &base, rule).await;
    let t = now_ms() - 10_000;
    post(&client, &base, "tank", t, 5.0).await;
    assert_eq!(
        receiver.wait_for(1).await[0]["text"],
        "[FIRING] low: tank = 5 (below 10)"
    );
    server.kill();

    let _server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    let rules = get_json(&client, &format!("{base}/api/alerts")).await;
    assert_eq!(rules[0]["states"][0]["state"], "firing", "{rules}");
    post(&client, &base, "tank", t + 1_000, 4.0).await;
    post(&client, &base, "tank", t + 2_000, 20.0).await;
    let delivered = receiver.wait_for(2).await;
    assert_eq!(delivered[1]["text"], "[RESOLVED] low: tank = 20 (below 10)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.requests.load(Ordering::SeqCst),
        2,
        "{:?}",
        receiver.bodies()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_data_rule_made_later_measures_from_the_newest_point_not_from_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("quiet.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    post(&client, &base, "pump", now_ms() - 20_000, 1.0).await;
    server.kill();
    // Started with "pump" last seen 20 s ago; it reports again before any rule exists.
    let _server = ServeProcess::start(&database, port);
    wait_healthy(&client, &base).await;
    post(&client, &base, "pump", now_ms(), 2.0).await;
    let rule = json!({"name": "pump quiet", "signal": "pump", "condition": {"kind": "no_data", "secs": 10}});
    create_rule(&client, &base, rule).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let rules = get_json(&client, &format!("{base}/api/alerts")).await;
    assert_eq!(
        rules[0]["states"],
        json!([]),
        "silent for 2 s, not 20: {rules}"
    );
}

#[tokio::test]
async fn a_silent_signal_fires_a_no_data_rule_and_a_point_resolves_it() {
    let server = TestServer::start_with(|s| s.clock = signalboard::server::clock::system()).await;
    let (client, base) = (server.client.clone(), server.url(""));
    let rule = json!({"name": "pump quiet", "signal": "pump.*", "condition": {"kind": "no_data", "secs": 1}});
    create_rule(&client, &base, rule).await;
    post(&client, &base, "pump.flow", now_ms(), 3.0).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rules = get_json(&client, &format!("{base}/api/alerts")).await;
        if rules[0]["states"][0]["state"] == "firing" {
            break;
        }
        assert!(Instant::now() < deadline, "{rules}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(&client, &base, "pump.flow", now_ms(), 3.5).await;
    let rules = get_json(&client, &format!("{base}/api/alerts")).await;
    assert_eq!(rules[0]["states"], json!([]), "{rules}");
    server.stop().await;
}

#[tokio::test]
async fn rules_and_annotations_are_checked_listed_and_bounded() {
    let server = TestServer::start_with(|s| {
        s.limits.max_alert_rules = 1;
        s.limits.max_annotations = 2;
    })
    .await;
    let (client, base) = (server.client.clone(), server.url(""));
    let bad = client
        .post(format!("{base}/api/alerts"))
        .body(r#"{"name":"x","signal":"a","condition":{"kind":"outside","low":5,"high":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("band"));
    for (method, path) in [("PUT", "/api/alerts/99"), ("DELETE", "/api/alerts/99")] {
        let body = r#"{"name":"x","signal":"a","condition":{"kind":"above","threshold":1}}"#;
        let request = client.request(method.parse().unwrap(), format!("{base}{path}"));
        assert_eq!(request.body(body).send().await.unwrap().status(), 404);
    }
    let id = create_rule(
        &client,
        &base,
        json!({"name": "a", "signal": "a", "condition": {"kind": "above", "threshold": 1}}),
    )
    .await;
    let edited =
        json!({"name": "b", "signal": "a", "condition": {"kind": "below", "threshold": 0}});
    let put = client.put(format!("{base}/api/alerts/{id}")).json(&edited);
    assert_eq!(put.send().await.unwrap().status(), 200);
    let silence = client
        .post(format!("{base}/api/alerts/{id}/silence"))
        .json(&json!({"until_ms": common::NOW + 60_000}));
    assert_eq!(silence.send().await.unwrap().status(), 204);
    let rules = get_json(&client, &format!("{base}/api/alerts")).await;
    assert_eq!(rules[0]["name"], "b");
    assert_eq!(rules[0]["silenced_until_ms"], common::NOW + 60_000);

    let t = common::NOW - 60_000;
    for annotation in [
        json!({"time": t, "text": "deploy 1.4", "tags": ["deploy"]}),
        json!({"time": t + 10_000, "end": t + 20_000, "text": "maintenance", "signals": ["a"]}),
    ] {
        let posted = client
            .post(format!("{base}/api/annotations"))
            .json(&annotation)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 201);
    }
    for bad in [
        json!({"time": t, "text": ""}),
        json!({"time": t, "end": t - 1, "text": "x"}),
        json!({"time": t, "text": "x", "colour": "red"}),
    ] {
        let posted = client.post(format!("{base}/api/annotations")).json(&bad);
        assert_eq!(posted.send().await.unwrap().status(), 400, "{bad}");
    }
    // Past the limits: 400, saying which setting.
    let third = client
        .post(format!("{base}/api/annotations"))
        .json(&json!({"time": t, "text": "one too many"}));
    let third = third.send().await.unwrap();
    assert_eq!(third.status(), 400);
    assert!(third.text().await.unwrap().contains("max-annotations"));
    let second_rule = client
        .post(format!("{base}/api/alerts"))
        .json(&json!({"name": "c", "signal": "c", "condition": {"kind": "above", "threshold": 1}}));
    let second_rule = second_rule.send().await.unwrap();
    assert_eq!(second_rule.status(), 400);
    assert!(second_rule
        .text()
        .await
        .unwrap()
        .contains("max-alert-rules"));
    // A span overlapping the range is listed; one wholly before it is not.
    let url = format!(
        "{base}/api/annotations?from={}&to={}",
        t + 15_000,
        t + 30_000
    );
    let listed = get_json(&client, &url).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["text"], "maintenance");
    assert_eq!(listed[0]["end"], t + 20_000);
    let delete = client.delete(format!("{base}/api/alerts/{id}"));
    assert_eq!(delete.send().await.unwrap().status(), 204);
    server.stop().await;
}

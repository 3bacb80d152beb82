//! The HTTP contract, end to end through a real server and a real SQLite file.

mod common;

use common::TestServer;
use futures::StreamExt;
use serde_json::{json, Value};
use signalboard::model::{History, LiveMessage, SignalInfo};
use std::time::Duration;

const T0: i64 = 1_795_687_200_123; // 2026-11-26T10:00:00.123Z, in the past for these tests' clock

fn history(value: Value) -> History {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_posted_sample_comes_back_from_history_and_the_signal_list() {
    let server = TestServer::start().await;
    let (status, body) = server
        .post(r#"{"timestamp": "2026-11-26T10:00:00.123Z", "signals": {"boiler.temp": 71.5}}"#)
        .await;
    assert_eq!((status, body), (200, json!({"accepted": 1})));

    let (status, body) = server
        .get(&format!(
            "/api/telemetry?from={}&to={}",
            T0 - 1000,
            T0 + 1000
        ))
        .await;
    assert_eq!(status, 200);
    let h = history(body);
    assert_eq!((h.from, h.to), (T0 - 1000, T0 + 1000));
    assert_eq!(h.series.len(), 1);
    assert_eq!(h.series[0].signal, "boiler.temp");
    assert_eq!(h.series[0].timestamps, [T0]);
    assert_eq!(h.series[0].values, [71.5]);

    let (status, body) = server.get("/api/signals").await;
    assert_eq!(status, 200);
    let signals: Vec<SignalInfo> = serde_json::from_value(body).unwrap();
    assert_eq!(
        signals,
        [SignalInfo {
            signal: "boiler.temp".into(),
            points: 1,
            last_timestamp: T0,
            last_value: 71.5
        }]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_is_stored_whole_and_read_in_time_order() {
    let server = TestServer::start().await;
    let batch = json!([
        {"timestamp": T0 + 2000, "signals": {"a": 3.0, "b": -1}},
        {"timestamp": T0, "signals": {"a": 1.0, "b": -3}},
        {"timestamp": T0 + 1000, "signals": {"a": 2.0, "b": -2}},
    ]);
    let (status, body) = server.post(&batch.to_string()).await;
    assert_eq!((status, body), (200, json!({"accepted": 6})));

    let (_, body) = server
        .get(&format!(
            "/api/telemetry?from={T0}&to={}&signals=b",
            T0 + 2000
        ))
        .await;
    let h = history(body);
    assert_eq!(h.series.len(), 1, "only the asked-for signal");
    assert_eq!(h.series[0].timestamps, [T0, T0 + 1000, T0 + 2000]);
    assert_eq!(h.series[0].values, [-3.0, -2.0, -1.0]);
    server.stop().await;
}

#[tokio::test]
async fn a_retried_sample_overwrites_instead_of_duplicating() {
    let server = TestServer::start().await;
    let sample = json!({"timestamp": T0, "signals": {"pump.rpm": 1200}}).to_string();
    for _ in 0..3 {
        assert_eq!(server.post(&sample).await.0, 200);
    }
    let corrected = json!({"timestamp": T0, "signals": {"pump.rpm": 1250}}).to_string();
    assert_eq!(server.post(&corrected).await.0, 200);

    let (_, body) = server.get("/api/signals").await;
    assert_eq!(body[0]["points"], 1);
    assert_eq!(body[0]["last_value"], 1250.0);
    let (_, body) = server
        .get(&format!("/api/telemetry?from={T0}&to={T0}"))
        .await;
    assert_eq!(history(body).series[0].values, [1250.0]);
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_its_status_and_a_clear_error_and_stores_nothing() {
    let server = TestServer::start_with(|s| s.limits.max_body_bytes = 4096).await;
    // Ten minutes ahead of the server's clock: past the five a producer's clock may run ahead.
    let future = common::NOW + 10 * 60 * 1000;
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "application/json",
            r#"{"signals": {"a": 1}"#.into(),
            400,
            "invalid JSON",
        ),
        ("application/json", "not json".into(), 400, "JSON object"),
        (
            "application/json",
            r#"{"signals": {"a": "1"}}"#.into(),
            400,
            "expected a number for signal \"a\"",
        ),
        (
            "application/json",
            r#"{"signals": {"a": 1e999}}"#.into(),
            400,
            "out of range",
        ),
        (
            "application/json",
            r#"{"signals": {}}"#.into(),
            400,
            "at least one signal",
        ),
        (
            "application/json",
            r#"{"signals": {"": 1}}"#.into(),
            400,
            "must not be empty",
        ),
        (
            "application/json",
            format!(r#"{{"signals": {{"{}": 1}}}}"#, "x".repeat(201)),
            400,
            "201 characters",
        ),
        (
            "application/json",
            r#"{"signals": {"a\tb": 1}}"#.into(),
            400,
            "control character",
        ),
        (
            "application/json",
            r#"{"timestamp": "noon", "signals": {"a": 1}}"#.into(),
            400,
            "RFC 3339",
        ),
        (
            "application/json",
            format!(r#"{{"timestamp": {future}, "signals": {{"a": 1}}}}"#),
            400,
            "ahead",
        ),
        // A good sample before a bad one: the whole request is refused.
        (
            "application/json",
            r#"[{"signals": {"good": 1}}, {"signals": {"bad": null}}]"#.into(),
            400,
            "sample 1",
        ),
        (
            "text/plain",
            r#"{"signals": {"a": 1}}"#.into(),
            415,
            "application/json",
        ),
        (
            "application/json",
            format!(
                r#"{{"signals": {{"a": 1}}, "pad": "{}"}}"#,
                "x".repeat(5000)
            ),
            413,
            "limit of 4096",
        ),
    ];
    for (content_type, body, status, needle) in cases {
        let (got, answer) = server.post_as(content_type, &body).await;
        let error = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{body:.80} → {answer}");
        assert!(
            error.contains(needle),
            "{body:.80} → {error:?} lacks {needle:?}"
        );
    }
    let (_, signals) = server.get("/api/signals").await;
    assert_eq!(signals, json!([]), "nothing of a refused request is stored");
    assert!(server.healthy().await);
    server.stop().await;
}

#[tokio::test]
async fn bad_history_parameters_get_400_with_the_error_shape() {
    let server = TestServer::start().await;
    for query in [
        "hours=soon",
        "hours=0",
        "from=yesterday",
        "from=2&to=1",
        "hours=1&to=5",
        "signals=",
        "colour=red",
    ] {
        let (status, body) = server.get(&format!("/api/telemetry?{query}")).await;
        assert_eq!(status, 400, "{query} → {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query} → {body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn live_subscribers_receive_committed_points_filtered_by_signal() {
    let server = TestServer::start().await;
    let (mut all, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/live", server.addr))
        .await
        .unwrap();
    let (mut only_b, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/live?signals=b", server.addr))
            .await
            .unwrap();
    let sample = json!({"timestamp": T0, "signals": {"a": 1.5, "b": 2.5}}).to_string();
    assert_eq!(server.post(&sample).await.0, 200);

    let mut got = next_live(&mut all).await.points;
    got.sort_by(|x, y| x.signal.cmp(&y.signal));
    let got: Vec<(String, i64, f64)> = got
        .into_iter()
        .map(|p| (p.signal, p.timestamp, p.value))
        .collect();
    assert_eq!(got, [("a".into(), T0, 1.5), ("b".into(), T0, 2.5)]);
    let filtered = next_live(&mut only_b).await.points;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].signal, "b");

    all.close(None).await.unwrap();
    only_b.close(None).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn acknowledged_points_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kept.db").display());
    let first = TestServer::start_with(|s| s.database_url = url.clone()).await;
    let sample = json!({"timestamp": T0, "signals": {"kept": 7}}).to_string();
    assert_eq!(first.post(&sample).await.0, 200);
    first.stop().await;
    let second = TestServer::start_with(|s| s.database_url = url.clone()).await;
    let (_, body) = second.get("/api/signals").await;
    assert_eq!(body[0]["signal"], "kept");
    assert_eq!(body[0]["last_value"], 7.0);
    second.stop().await;
}

#[tokio::test]
async fn the_dashboard_page_is_rendered_on_the_server_with_its_signals() {
    let server = TestServer::start().await;
    let sample = json!({"timestamp": T0, "signals": {"furnace.temp": 1234.5}}).to_string();
    assert_eq!(server.post(&sample).await.0, 200);
    let page = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<title>Signalboard</title>"), "{html:.300}");
    assert!(
        html.contains(r#"data-signal="furnace.temp""#),
        "the chart is rendered: {html}"
    );
    assert!(html.contains("1234.5"), "the last value is rendered");
    server.stop().await;
}

#[tokio::test]
async fn the_page_opens_the_view_its_url_holds_and_other_paths_are_a_json_404() {
    let server = TestServer::start().await;
    for name in ["furnace.temp", "furnace.door"] {
        let sample = json!({"timestamp": T0, "signals": {name: 1.0}}).to_string();
        assert_eq!(server.post(&sample).await.0, 200);
    }
    let page = server
        .client
        .get(server.url("/?range=6h&signals=furnace.door"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-range="6h" class="active""#), "{html}");
    assert!(
        html.contains(r#"<article data-signal="furnace.door""#),
        "{html}"
    );
    assert!(
        !html.contains(r#"<article data-signal="furnace.temp""#),
        "only the URL's signals are charted"
    );
    let (status, body) = server.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "nothing here: /no/such/page");
    server.stop().await;
}

/// The next live message, failing the test if none arrives within 5 s.
async fn next_live<S>(socket: &mut S) -> LiveMessage
where
    S: StreamExt<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a live message within 5 s")
        .expect("the socket stays open")
        .expect("a readable message");
    serde_json::from_str(message.to_text().unwrap()).unwrap()
}

/// Names a producer may write (a line-protocol tag value may hold a comma) read back through every
/// `signals=` list: the history API and the live feed's filter.
#[tokio::test]
async fn any_signal_name_can_be_asked_for_by_name() {
    let server = TestServer::start().await;
    let odd = ["wea ther,x.temp{loc=a,b}", "a=b&c", "100% \\ Zürich"];
    let mut signals = serde_json::Map::new();
    for (i, name) in odd.iter().chain(&["wea ther", "x.temp{loc=a"]).enumerate() {
        signals.insert((*name).into(), json!(i));
    }
    let (status, body) = server
        .post(&json!({"timestamp": T0, "signals": signals}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let list = signalboard::model::join_signal_list(odd);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("signals", &list)
        .append_pair("from", &T0.to_string())
        .append_pair("to", &T0.to_string())
        .finish();

    let (status, history) = server.get(&format!("/api/telemetry?{query}")).await;
    assert_eq!(status, 200, "{history}");
    let history: History = serde_json::from_value(history).unwrap();
    let mut names: Vec<&str> = history.series.iter().map(|s| s.signal.as_str()).collect();
    names.sort_unstable();
    let mut wanted = odd.to_vec();
    wanted.sort_unstable();
    assert_eq!(
        names, wanted,
        "exactly the names asked for, not their pieces"
    );

    let url = format!("ws://{}/api/live?{query}", server.addr);
    let (mut live, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let body = json!({"timestamp": T0 + 1, "signals": signals});
    assert_eq!(server.post(&body.to_string()).await.0, 200);
    let message = tokio::time::timeout(Duration::from_secs(5), live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let message: LiveMessage = serde_json::from_str(message.to_text().unwrap()).unwrap();
    let mut heard: Vec<&str> = message.points.iter().map(|p| p.signal.as_str()).collect();
    heard.sort_unstable();
    assert_eq!(heard, wanted);
    server.stop().await;
}

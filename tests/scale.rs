//! Several servers on one PostgreSQL database (`SIGNALBOARD_TEST_POSTGRES`, started by `make test`):
//! writes of the same signals from two servers at once lose nothing and count nothing twice, and a
//! point posted to one server reaches the live clients of the other.

mod common;

use common::{TestServer, NOW};
use futures::StreamExt;
use serde_json::{json, Value};
use sqlx::Connection;
use std::time::Duration;

/// An hour before the servers' clock.
const T0: i64 = NOW - 3_600_000;

/// Two servers on one new database.
async fn two_servers() -> (String, TestServer, TestServer) {
    let url = common::postgres_database().await;
    let start = |url: String| TestServer::start_with(move |s| s.database_url = url);
    let a = start(url.clone()).await;
    let b = start(url.clone()).await;
    (url, a, b)
}

/// A JSON body of samples: each time with each of the signals `s0..s4` at `value(t)`.
fn samples(times: impl Iterator<Item = i64>, value: impl Fn(i64) -> f64) -> String {
    let samples: Vec<Value> = times
        .map(|t| {
            let signals: serde_json::Map<String, Value> =
                (0..5).map(|s| (format!("s{s}"), json!(value(t)))).collect();
            json!({"timestamp": t, "signals": signals})
        })
        .collect();
    Value::from(samples).to_string()
}

/// The number of rows a query counts.
async fn count(db: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *db).await.unwrap()
}

/// Rollup rows of `table` that differ from the aggregate of the raw points of their bucket, or
/// that are missing on either side.
fn rollups_unlike_raw(table: &str, width: i64) -> String {
    format!(
        "SELECT count(*) FROM {table} r FULL JOIN ( \
           SELECT series_id, ts - mod(ts, {width}) AS bucket, count(*) AS n, sum(value) AS s, \
             min(value) AS lo, max(value) AS hi, min(ts) AS f, max(ts) AS l \
           FROM points GROUP BY 1, 2) a USING (series_id, bucket) \
         WHERE r.count IS DISTINCT FROM a.n OR abs(r.sum - a.s) > 1e-6 \
           OR r.low IS DISTINCT FROM a.lo OR r.high IS DISTINCT FROM a.hi \
           OR r.first_ts IS DISTINCT FROM a.f OR r.last_ts IS DISTINCT FROM a.l"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_writing_the_same_signals_lose_nothing_and_count_each_point_once() {
    let (url, a, b) = two_servers().await;
    // A writes the even milliseconds, B the odd ones, and both write every tenth millisecond
    // with their own value: 20 requests from each, all at once.
    let mut posts = Vec::new();
    for request in 0..20_i64 {
        let times = move |first: i64| (0..100).map(move |k| T0 + request * 1_000 + k * 10 + first);
        let both = times(0).chain(times(5));
        let from_a = samples(times(2).chain(both.clone()), |t| (t - T0) as f64);
        let from_b = samples(times(3).chain(both), |t| -((t - T0) as f64));
        posts.push((&a, from_a));
        posts.push((&b, from_b));
    }
    let answers = futures::future::join_all(posts.iter().map(|(server, body)| server.post(body)));
    for (status, body) in answers.await {
        assert_eq!(status, 200, "{body}");
    }

    // Every acknowledged key once: 4 times a 10 ms step, 100 steps, 20 requests.
    let keys = 4 * 100 * 20;
    let (status, history) = b
        .get(&format!(
            "/api/telemetry?from={T0}&to={}&signals=s0,s4",
            T0 + 30_000
        ))
        .await;
    assert_eq!(status, 200, "{history}");
    for series in history["series"].as_array().unwrap() {
        let times: Vec<i64> = serde_json::from_value(series["timestamps"].clone()).unwrap();
        assert_eq!(times.len(), keys, "{}", series["signal"]);
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "each time once, in order"
        );
    }
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM points").await,
        5 * keys as i64
    );
    for (table, width) in [("rollup_1m", 60_000), ("rollup_1h", 3_600_000)] {
        let unlike = count(&mut db, &rollups_unlike_raw(table, width)).await;
        assert_eq!(unlike, 0, "{table} rows unlike the raw points");
    }
    let wrong_figures = count(
        &mut db,
        "SELECT count(*) FROM series s LEFT JOIN points p ON p.series_id = s.id \
           AND p.ts = s.last_ts \
         WHERE s.points <> (SELECT count(*) FROM points q WHERE q.series_id = s.id) \
           OR s.last_ts IS DISTINCT FROM (SELECT max(ts) FROM points q WHERE q.series_id = s.id) \
           OR s.last_value IS DISTINCT FROM p.value",
    )
    .await;
    assert_eq!(
        wrong_figures, 0,
        "signals whose figures are not their points'"
    );
    let (_, signals) = a.get("/api/signals").await;
    assert_eq!(signals[0]["points"], keys);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_point_posted_to_one_server_reaches_the_live_clients_of_the_other() {
    let (_url, a, b) = two_servers().await;
    let url = format!("ws://{}/api/live?signals=relayed", b.addr);
    let (mut live, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for i in 0..3_i64 {
        let body = json!({"timestamp": T0 + i, "signals": {"relayed": i, "other": i}});
        let (status, answer) = a.post(&body.to_string()).await;
        assert_eq!(status, 200, "{answer}");
        let message = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("the point within five seconds")
            .unwrap()
            .unwrap();
        let message: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        assert_eq!(
            message["points"],
            json!([{"signal": "relayed", "timestamp": T0 + i, "value": i as f64}])
        );
    }
    a.stop().await;
    b.stop().await;
}

/// Waits for the server to close a live socket; returns the close frame's code and reason.
async fn closed(live: &mut LiveSocket, within: Duration) -> (u16, String) {
    use tokio_tungstenite::tungstenite::Message;
    let frame = tokio::time::timeout(within, async {
        loop {
            match live.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("closed without a frame: {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time")
    .expect("a close frame");
    (u16::from(frame.code), frame.reason.to_string())
}

type LiveSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_gone_silent_makes_the_others_clients_backfill() {
    let (_url, a, b) = two_servers().await;
    let (mut live, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/live", b.addr))
        .await
        .unwrap();
    let body = json!({"timestamp": T0, "signals": {"before": 1}});
    assert_eq!(a.post(&body.to_string()).await.0, 200);
    let relayed = tokio::time::timeout(Duration::from_secs(5), live.next()).await;
    assert!(relayed.expect("A's point on B").unwrap().is_ok());
    // Its last commits may never have been relayed: B cannot tell, so its clients backfill.
    a.stop().await;
    let (code, reason) = closed(&mut live, Duration::from_secs(6)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1013, "missed part of the live feed")
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_loses_the_relay_tells_its_live_clients_to_backfill() {
    let (url, a, b) = two_servers().await;
    let (mut live, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/live", b.addr))
        .await
        .unwrap();
    // Cut every server's listening connection, as a network fault or a restarted database would:
    // what was notified meanwhile is lost to them.
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut = count(
        &mut db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .await;
    assert_eq!(cut, 2, "both servers listen");
    let (code, reason) = closed(&mut live, Duration::from_secs(5)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1013, "missed part of the live feed")
    );
    // The relay comes back: a reconnected client hears A's next point.
    let url = format!("ws://{}/api/live?signals=after", b.addr);
    let (mut live, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        for i in 0.. {
            let body = json!({"timestamp": T0 + i, "signals": {"after": i}});
            assert_eq!(a.post(&body.to_string()).await.0, 200);
            if let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(200), live.next()).await
            {
                return message.unwrap();
            }
        }
        unreachable!()
    })
    .await
    .expect("the relay back within ten seconds");
    assert!(heard.to_text().unwrap().contains("\"after\""));
    a.stop().await;
    b.stop().await;
}

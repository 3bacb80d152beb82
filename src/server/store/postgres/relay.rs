//! Live points between servers that share one PostgreSQL database, through LISTEN/NOTIFY: no other
//! service to run. Each server sends what it commits and publishes what the others send.
//!
//! What is known of NOTIFY shapes this: inside the ingest transaction it would take a database-wide
//! lock at commit, so it is sent after the commit, by a task of its own; a payload stops at 8,000
//! bytes, so points go in chunks; every listener wakes for every notification, so a server sends at
//! most one round of them per `WINDOW`, all its commits of that window together. Whatever cannot
//! be delivered (the sender's queue full, a notification that failed, a listener that lost its
//! connection) becomes a gap: the servers concerned tell their live clients to reconnect and
//! backfill from the database, so no client is left with a silent hole.

use crate::model::{Point, Series};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel every server listens on.
const CHANNEL: &str = "signalboard_live";
/// How long a server gathers its commits before notifying: the latency it adds, against how often
/// every other server wakes.
const WINDOW: Duration = Duration::from_millis(20);
/// Payload bytes a notification may use (PostgreSQL refuses 8,000 or more).
const PAYLOAD_BYTES: usize = 7_000;
/// Bytes a point takes at most in a payload, beyond its signal's name: a timestamp and a value in
/// JSON, with separators.
const POINT_BYTES: usize = 48;
/// Commits waiting for the sender: past this the sender is behind, and what does not fit is a gap.
const QUEUE_COMMITS: usize = 1_024;

/// What a server hears from the others.
pub enum Heard {
    Points(Vec<Point>),
    /// Points were lost on the way: live clients must backfill from the database.
    Gap,
}

/// One notification's payload.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The sending server, which ignores its own notifications.
    from: u64,
    /// The sender lost points before these: every listener's clients must backfill.
    #[serde(default)]
    gap: bool,
    series: Vec<Series>,
}

/// This server's end of the relay: `send` after each commit.
pub struct Relay {
    queue: mpsc::Sender<Vec<Point>>,
    /// Set when a commit found the queue full: the sender announces a gap.
    lost: Arc<AtomicBool>,
}

impl Relay {
    /// Starts sending this server's commits and listening for the others', handing what it hears to
    /// `heard`.
    pub fn start(pool: PgPool, heard: impl Fn(Heard) + Send + Sync + 'static) -> Relay {
        let me = server_id();
        let (queue, commits) = mpsc::channel(QUEUE_COMMITS);
        let lost = Arc::new(AtomicBool::new(false));
        tokio::spawn(send(pool.clone(), me, commits, lost.clone()));
        tokio::spawn(listen(pool, me, heard));
        Relay { queue, lost }
    }

    /// Queues a commit's points for the other servers, without waiting.
    pub fn send(&self, points: Vec<Point>) {
        if self.queue.try_send(points).is_err() {
            self.lost.store(true, Ordering::Relaxed);
        }
    }
}

/// A number no other server picks: random, or the time and process when the system has no
/// randomness to give.
fn server_id() -> u64 {
    let mut bytes = [0; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| d.as_nanos() as u64) ^ (u64::from(std::process::id()) << 40)
        }
    }
}

/// The sender: every `WINDOW`, all commits queued so far, as few notifications as fit them.
async fn send(
    pool: PgPool,
    me: u64,
    mut commits: mpsc::Receiver<Vec<Point>>,
    lost: Arc<AtomicBool>,
) {
    while let Some(first) = commits.recv().await {
        tokio::time::sleep(WINDOW).await;
        let mut points = first;
        while let Ok(more) = commits.try_recv() {
            points.extend(more);
        }
        let gap = lost.swap(false, Ordering::Relaxed);
        let payloads = payloads(me, gap, points);
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not notify the other servers; they will backfill");
            lost.store(true, Ordering::Relaxed);
        }
    }
}

/// The points as payloads of at most `PAYLOAD_BYTES`, by signal; the first says `gap`.
fn payloads(me: u64, gap: bool, points: Vec<Point>) -> Vec<String> {
    let mut chunks: Vec<BTreeMap<String, Series>> = vec![BTreeMap::new()];
    let mut used = 0;
    for point in points {
        let cost = POINT_BYTES + point.signal.len();
        if used + cost > PAYLOAD_BYTES {
            chunks.push(BTreeMap::new());
            used = 0;
        }
        used += cost;
        let chunk = chunks.last_mut().expect("one chunk at least");
        let series = chunk.entry(point.signal).or_insert_with_key(|name| Series {
            signal: name.clone(),
            ..Series::default()
        });
        series.timestamps.push(point.timestamp);
        series.values.push(point.value);
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let payload = Payload {
                from: me,
                gap: gap && i == 0,
                series: chunk.into_values().collect(),
            };
            serde_json::to_string(&payload).expect("finite points always serialise")
        })
        .collect()
}

/// The listener: hands the other servers' points to `heard`, and a gap whenever it may have
/// missed some (its connection was lost, or a sender lost some).
async fn listen(pool: PgPool, me: u64, heard: impl Fn(Heard)) {
    let mut listener = loop {
        match listen_on(&pool).await {
            Ok(listener) => break listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other servers' points; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                let Ok(payload) = serde_json::from_str::<Payload>(notification.payload()) else {
                    tracing::warn!("ignoring a live notification that is not a relay payload");
                    continue;
                };
                if payload.from == me {
                    continue;
                }
                if payload.gap {
                    heard(Heard::Gap);
                }
                heard(Heard::Points(points_of(payload.series)));
            }
            // The connection was lost and will be made again: what was sent meanwhile is lost.
            Ok(None) => heard(Heard::Gap),
            Err(e) => {
                tracing::warn!(error = %e, "lost the relay's connection; clients will backfill");
                heard(Heard::Gap);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn listen_on(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

fn points_of(series: Vec<Series>) -> Vec<Point> {
    let mut points = Vec::new();
    for s in series {
        for (timestamp, value) in s.timestamps.into_iter().zip(s.values) {
            points.push(Point {
                signal: s.signal.clone(),
                timestamp,
                value,
            });
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_under_the_limit_and_carry_every_point_once() {
        let points: Vec<Point> = (0..5_000)
            .map(|i| Point {
                signal: format!("signal.with.a.long.name.{}", i % 7),
                timestamp: 1_795_687_200_000 + i,
                value: -1.234_567_890_123_456_7e-300 * i as f64,
            })
            .collect();
        let payloads = payloads(42, true, points.clone());
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for (i, text) in payloads.iter().enumerate() {
            assert!(text.len() < 8_000, "{}", text.len());
            let payload: Payload = serde_json::from_str(text).unwrap();
            assert_eq!((payload.from, payload.gap), (42, i == 0));
            back.extend(points_of(payload.series));
        }
        let key = |p: &Point| (p.signal.clone(), p.timestamp);
        back.sort_by_key(key);
        let mut points = points;
        points.sort_by_key(key);
        for (got, sent) in back.iter().zip(&points) {
            assert_eq!(got, sent);
        }
        assert_eq!(back.len(), points.len());
    }
}

//! Live points between servers that share one PostgreSQL database, through LISTEN/NOTIFY: no other
//! service to run. Each server sends what it commits and publishes what the others send.
//!
//! What is known of NOTIFY shapes this: inside the ingest transaction it would take a database-wide
//! lock at commit, so it is sent after the commit, by a task of its own; a payload stops at 8,000
//! bytes, so points go in chunks; every listener wakes for every notification, so a server sends at
//! most one round of them per `WINDOW`, all its commits of that window together.
//!
//! Whatever is not delivered becomes a gap, and a gap makes the servers concerned tell their live
//! clients to reconnect and backfill from the database, so no client is left with a silent hole.
//! Each server numbers its notifications: one it could not send (its queue was full, NOTIFY failed)
//! is a number skipped, which every listener sees. A quiet server still notifies every `HEARTBEAT`,
//! so a server that died (its last commits perhaps never relayed) is noticed by its silence. And a
//! listener that lost its own connection has missed whatever was sent meanwhile.

use crate::model::{Point, Series};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
/// How often a server with nothing to relay says it is still there.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a server may stay silent before the others take it for gone.
const SILENCE: Duration = Duration::from_secs(3);

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
    /// The sender's count of notifications: one more than its previous, unless some were lost.
    seq: u64,
    /// Empty in a heartbeat.
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

/// The sender: every `WINDOW`, all commits queued so far, as few notifications as fit them; an
/// empty one after a `HEARTBEAT` of quiet.
async fn send(
    pool: PgPool,
    me: u64,
    mut commits: mpsc::Receiver<Vec<Point>>,
    lost: Arc<AtomicBool>,
) {
    let mut seq = 0;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        let points = tokio::select! {
            commit = commits.recv() => {
                let Some(mut points) = commit else { return };
                tokio::time::sleep(WINDOW).await;
                while let Ok(more) = commits.try_recv() {
                    points.extend(more);
                }
                points
            }
            _ = heartbeat.tick() => Vec::new(),
        };
        if lost.swap(false, Ordering::Relaxed) {
            // A number never sent: every listener sees the gap.
            seq += 1;
        }
        let payloads = payloads(me, &mut seq, points);
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            // Their numbers are spent all the same: the listeners see the gap.
            tracing::warn!(error = %e, "could not notify the other servers; they will backfill");
        }
        heartbeat.reset();
    }
}

/// The points as payloads of at most `PAYLOAD_BYTES`, by signal, numbered from `seq` on (which is
/// left at the next number); one empty payload for no points.
fn payloads(me: u64, seq: &mut u64, points: Vec<Point>) -> Vec<String> {
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
        .map(|chunk| {
            let payload = Payload {
                from: me,
                seq: *seq,
                series: chunk.into_values().collect(),
            };
            *seq += 1;
            serde_json::to_string(&payload).expect("finite points always serialise")
        })
        .collect()
}

/// What the listener knows of another server.
struct Peer {
    /// The number its next notification should have.
    next: u64,
    heard: Instant,
}

/// The listener: hands the other servers' points to `heard`, and a gap whenever some may have been
/// missed: a number skipped, a server silent too long, or this listener's connection lost.
async fn listen(pool: PgPool, me: u64, heard: impl Fn(Heard)) {
    let (tx, mut received) = mpsc::channel(QUEUE_COMMITS);
    // PostgreSQL's listener is not safe to cancel mid-message: it gets a task of its own.
    tokio::spawn(receive(pool, me, tx));
    let mut peers: HashMap<u64, Peer> = HashMap::new();
    let mut check = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            received = received.recv() => match received {
                Some(Received::Payload(payload)) => {
                    let peer = peers.entry(payload.from).or_insert(Peer {
                        next: payload.seq,
                        heard: Instant::now(),
                    });
                    if payload.seq != peer.next {
                        heard(Heard::Gap);
                    }
                    *peer = Peer { next: payload.seq + 1, heard: Instant::now() };
                    if !payload.series.is_empty() {
                        heard(Heard::Points(points_of(payload.series)));
                    }
                }
                Some(Received::Lost) => {
                    peers.clear();
                    heard(Heard::Gap);
                }
                None => return,
            },
            _ = check.tick() => {
                let before = peers.len();
                peers.retain(|_, peer| peer.heard.elapsed() < SILENCE);
                if peers.len() < before {
                    heard(Heard::Gap);
                }
            }
        }
    }
}

enum Received {
    Payload(Payload),
    /// The connection was lost: what was sent meanwhile is missed.
    Lost,
}

/// Receives notifications as they come, reconnecting when the connection is lost.
async fn receive(pool: PgPool, me: u64, out: mpsc::Sender<Received>) {
    // A payload's first field is its sender: this server's own are dropped before parsing.
    let mine = format!("{{\"from\":{me},");
    let mut listener = loop {
        match listen_on(&pool).await {
            Ok(listener) => break listener,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other servers' points; retrying");
                tokio::time::sleep(HEARTBEAT).await;
            }
        }
    };
    loop {
        let received = match listener.try_recv().await {
            Ok(Some(notification)) if notification.payload().starts_with(&mine) => continue,
            Ok(Some(notification)) => match serde_json::from_str(notification.payload()) {
                Ok(payload) => Received::Payload(payload),
                Err(_) => {
                    tracing::warn!("ignoring a live notification that is not a relay payload");
                    continue;
                }
            },
            // Made again at the next `try_recv`.
            Ok(None) => Received::Lost,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "lost the relay's connection; clients will backfill");
                tokio::time::sleep(HEARTBEAT).await;
                Received::Lost
            }
        };
        if out.send(received).await.is_err() {
            return;
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
        let mut seq = 7;
        let payloads = payloads(42, &mut seq, points.clone());
        assert!(payloads.len() > 1);
        assert_eq!(seq, 7 + payloads.len() as u64, "the next number");
        let mut back = Vec::new();
        for (i, text) in payloads.iter().enumerate() {
            assert!(text.len() < 8_000, "{}", text.len());
            assert!(
                text.starts_with("{\"from\":42,"),
                "the sender first: {text:.20}"
            );
            let payload: Payload = serde_json::from_str(text).unwrap();
            assert_eq!((payload.from, payload.seq), (42, 7 + i as u64));
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

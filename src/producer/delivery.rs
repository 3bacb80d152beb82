//! Delivering spooled points to the server, at least once: oldest first, in gzipped batches, each
//! removed from the spool only once the server acknowledged it. After a failure the next try waits, doubling up
//! to `MAX_BACKOFF` with jitter (so producers that lost the same server do not return in step), or
//! as long as the server's `Retry-After` says. A batch the server refuses (4xx other than 429) will
//! never be accepted: its records are resent one by one, and those refused go to a dead-letter file
//! in the spool directory with the server's reason; the line moves on.

use super::spool::{Position, Spool, MEMORY_BYTES};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Points per POST when catching up: well within a server's default request limits.
const MAX_POINTS_PER_POST: u64 = 10_000;

/// Where a producer sends, as whom, and where its points wait.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The ingest endpoint (`/api/telemetry`).
    pub url: String,
    /// Presented as `Authorization: Bearer`.
    pub token: Option<String>,
    /// The spool directory; `None` keeps the backlog in memory.
    pub spool: Option<PathBuf>,
    /// Most bytes the spool holds; past them the oldest points are dropped.
    pub spool_bytes: u64,
    /// Whether each spooled record is flushed to the disk before it counts as spooled.
    pub sync: bool,
    /// Most points a second sent, so a server recovering from an outage is not overrun by the
    /// backlog of every producer at once; `None` sends as fast as the server answers.
    pub max_rate: Option<f64>,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            url: String::new(),
            token: None,
            spool: None,
            spool_bytes: MEMORY_BYTES,
            sync: false,
            max_rate: None,
        }
    }
}

pub struct Delivery {
    client: reqwest::Client,
    url: String,
    spool: Spool,
    dead_letters: Option<PathBuf>,
    max_rate: Option<f64>,
    /// Failures in a row, and when the next try may be.
    failures: u32,
    next_try: Instant,
    /// After a batch was refused, its records are sent one at a time up to here: each record is
    /// one request the producer made, and only the refused ones go to the dead letters.
    alone_through: Option<Position>,
}

/// What one POST came to.
enum Outcome {
    Delivered,
    /// Refused for good: 4xx other than 429.
    Refused(String),
    /// Worth trying again later, after at least this long if the server said so.
    Retry(String, Option<Duration>),
}

impl Delivery {
    pub async fn open(upstream: Upstream) -> anyhow::Result<Delivery> {
        use anyhow::Context;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &upstream.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("the producer's token is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .default_headers(headers)
            .build()?;
        let spool = Spool::open(
            upstream.spool.as_deref(),
            upstream.spool_bytes,
            upstream.sync,
        )
        .await
        .with_context(|| format!("opening the spool {:?}", upstream.spool))?;
        let waiting = spool.stats().waiting_points;
        if waiting > 0 {
            tracing::info!(
                waiting,
                "the spool holds points from before: delivering them first"
            );
        }
        Ok(Delivery {
            client,
            url: upstream.url,
            spool,
            dead_letters: upstream.spool.map(|dir| dir.join("dead.jsonl")),
            max_rate: upstream.max_rate,
            failures: 0,
            next_try: Instant::now(),
            alone_through: None,
        })
    }

    /// The spool this delivers from, to add to.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// When `deliver` will try again: after a failure's backoff, or the rate limit's pause.
    pub fn next_try(&self) -> Instant {
        self.next_try
    }

    /// Delivers what the spool holds, unless a failure or the rate limit says to wait. Returns
    /// whether the spool is empty.
    pub async fn deliver(&mut self) -> anyhow::Result<bool> {
        loop {
            if Instant::now() < self.next_try {
                return Ok(false);
            }
            let max_points = match self.alone_through {
                Some(_) => 0,
                None => MAX_POINTS_PER_POST,
            };
            let batch = self.spool.oldest(max_points).await?;
            let Some(last) = batch.last() else {
                return Ok(true);
            };
            let (end, points) = (last.end, batch.iter().map(|r| u64::from(r.points)).sum());
            let body = format!(
                "[{}]",
                batch
                    .iter()
                    .map(|s| s.json.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match self.post(&body).await {
                Outcome::Delivered => {
                    if self.failures > 0 {
                        tracing::info!("reconnected to {}; delivering the spool", self.url);
                    }
                    self.failures = 0;
                    self.pace(points);
                }
                Outcome::Refused(_) if batch.len() > 1 => {
                    self.alone_through = Some(end);
                    continue;
                }
                Outcome::Refused(reason) => {
                    tracing::error!(%reason, points, "the server refused points for good");
                    self.dead_letter(&reason, &body);
                }
                Outcome::Retry(reason, retry_after) => {
                    if self.failures == 0 {
                        tracing::warn!(%reason, "cannot deliver to {}; keeping points until it can", self.url);
                    }
                    self.failures += 1;
                    self.next_try =
                        Instant::now() + retry_after.unwrap_or_else(|| backoff(self.failures));
                    return Ok(false);
                }
            }
            self.acknowledge(end, points).await?;
        }
    }

    async fn acknowledge(&mut self, end: Position, points: u64) -> anyhow::Result<()> {
        self.spool.acknowledge(end, points).await?;
        if self.alone_through == Some(end) {
            self.alone_through = None;
        }
        Ok(())
    }

    /// After sending `points`, waits as long as sending them takes at the rate limit.
    fn pace(&mut self, points: u64) {
        if let Some(rate) = self.max_rate {
            self.next_try = Instant::now() + Duration::from_secs_f64(points as f64 / rate);
        }
    }

    /// Posts a JSON array of samples, gzipped.
    async fn post(&self, body: &str) -> Outcome {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(body.as_bytes())
            .expect("writing to memory does not fail");
        let compressed = gzip.finish().expect("writing to memory does not fail");
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(compressed)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Outcome::Retry(e.to_string(), None),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        if status.is_success() {
            return Outcome::Delivered;
        }
        let reason = format!("{status}: {}", response.text().await.unwrap_or_default());
        if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
            Outcome::Refused(reason)
        } else {
            Outcome::Retry(reason, retry_after)
        }
    }

    /// Appends a refused record and the server's reason to the dead-letter file (one JSON object
    /// a line), or only to the log without a spool directory.
    fn dead_letter(&self, reason: &str, batch: &str) {
        let Some(path) = &self.dead_letters else {
            return;
        };
        let samples: serde_json::Value = serde_json::from_str(batch).unwrap_or_default();
        let line = serde_json::json!({"reason": reason, "samples": samples});
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| writeln!(file, "{line}"));
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the dead-letter file {}", path.display());
        }
    }
}

/// The wait after `failures` failures in a row: doubling from `FIRST_BACKOFF` up to `MAX_BACKOFF`,
/// each between half and all of that.
fn backoff(failures: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << failures.min(16).saturating_sub(1))
        .min(MAX_BACKOFF);
    full.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_a_ceiling() {
        for failures in 1..40 {
            let full = FIRST_BACKOFF
                .saturating_mul(1 << (failures.min(16) - 1))
                .min(MAX_BACKOFF);
            let wait = backoff(failures);
            assert!(wait >= full / 2 && wait <= full, "{failures}: {wait:?}");
        }
        assert!(backoff(30) <= MAX_BACKOFF);
    }
}

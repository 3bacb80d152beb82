//! Delivering spooled samples to the server, at least once: oldest first, each batch removed from
//! the spool only once the server acknowledged it. After a failure the next try waits, doubling up
//! to `MAX_BACKOFF` with jitter (so producers that lost the same server do not return in step), or
//! as long as the server's `Retry-After` says. A batch the server refuses (4xx other than 429) will
//! never be accepted: it goes to a dead-letter file beside the spool with the server's reason, and
//! the line moves on.

use super::spool::{Spool, MAX_SAMPLES};
use super::MAX_SAMPLES_PER_POST;
use crate::model::Sample;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where a producer sends, as whom, and where its samples wait.
#[derive(Clone, Debug, Default)]
pub struct Upstream {
    /// The ingest endpoint (`/api/telemetry`).
    pub url: String,
    /// Presented as `Authorization: Bearer`.
    pub token: Option<String>,
    /// The spool file; `None` keeps the backlog in memory.
    pub spool: Option<PathBuf>,
}

pub struct Delivery {
    client: reqwest::Client,
    url: String,
    spool: Spool,
    dead_letters: Option<PathBuf>,
    /// Failures in a row, and when the next try may be.
    failures: u32,
    next_try: Instant,
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
        let spool = Spool::open(upstream.spool.as_deref(), MAX_SAMPLES)
            .await
            .with_context(|| format!("opening the spool {:?}", upstream.spool))?;
        let waiting = spool.len();
        if waiting > 0 {
            tracing::info!(
                waiting,
                "the spool holds samples from before: delivering them first"
            );
        }
        Ok(Delivery {
            client,
            url: upstream.url,
            spool,
            dead_letters: upstream.spool.map(|s| s.with_extension("dead.jsonl")),
            failures: 0,
            next_try: Instant::now(),
        })
    }

    pub async fn push(&mut self, sample: &Sample) -> anyhow::Result<()> {
        Ok(self.spool.push(sample).await?)
    }

    /// Delivers what the spool holds, unless a failure says to wait. Returns whether it is empty.
    pub async fn deliver(&mut self) -> anyhow::Result<bool> {
        if Instant::now() < self.next_try {
            return Ok(false);
        }
        loop {
            let batch = self.spool.oldest(MAX_SAMPLES_PER_POST).await?;
            let Some(last) = batch.last().map(|s| s.id) else {
                return Ok(true);
            };
            let body = format!(
                "[{}]",
                batch
                    .iter()
                    .map(|s| s.json.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match self.post(body.clone()).await {
                Outcome::Delivered => {
                    if self.failures > 0 {
                        tracing::info!(
                            "producer reconnected to {}; delivering its spool",
                            self.url
                        );
                    }
                    self.failures = 0;
                    self.spool.remove_through(last).await?;
                }
                Outcome::Refused(reason) => {
                    tracing::error!(%reason, samples = batch.len(), "the server refused samples for good");
                    self.dead_letter(&reason, &body);
                    self.spool.remove_through(last).await?;
                }
                Outcome::Retry(reason, retry_after) => {
                    if self.failures == 0 {
                        tracing::warn!(%reason, "producer cannot deliver to {}; keeping samples until it can", self.url);
                    }
                    self.failures += 1;
                    self.next_try =
                        Instant::now() + retry_after.unwrap_or_else(|| backoff(self.failures));
                    return Ok(false);
                }
            }
        }
    }

    async fn post(&self, body: String) -> Outcome {
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
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

    /// Appends a refused batch and the server's reason to the dead-letter file (one JSON object a
    /// line), or only to the log without a spool file.
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

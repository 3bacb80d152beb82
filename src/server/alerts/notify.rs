//! Notifications: what a webhook receives, and the sender that empties the outbox. A notification
//! leaves the outbox only when its receiver answered 2xx, or refused it for good (4xx other than
//! 408 and 429); after a 5xx, a timeout or no answer it is tried again, waiting twice as long each
//! time up to `MAX_WAIT`, for as long as it takes. Every attempt is recorded.

use super::evaluate::Change;
use super::rule::RuleSpec;
use super::Alerts;
use crate::server::store::Attempt;
use serde::Serialize;
use std::time::Duration;

/// How long a receiver has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Waits between attempts: from `FIRST_WAIT`, doubling, at most `MAX_WAIT` (ms).
const FIRST_WAIT: i64 = 1_000;
const MAX_WAIT: i64 = 10 * 60_000;
/// How long a sender holds the notifications it took, before another may take them (ms): longer
/// than an attempt can take.
const LEASE: i64 = 60_000;
/// Notifications taken at once, and how often the outbox is looked at without a wake-up.
const BATCH: i64 = 16;
const POLL: Duration = Duration::from_secs(1);

/// The JSON a webhook receives.
#[derive(Clone, Debug, Serialize)]
pub struct Notice {
    pub rule: RuleRef,
    pub signal: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub condition: String,
    pub value: Option<f64>,
    /// When the condition began to hold.
    pub since_ms: i64,
    /// When it fired or resolved: the time of the point that decided it (for a no-data rule's
    /// firing, the server's clock).
    pub at_ms: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleRef {
    pub id: i64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Notice {
    pub fn of(rule_id: i64, spec: &RuleSpec, signal: &str, change: &Change) -> Notice {
        let (state, value, since_ms, at_ms) = match change {
            Change::Fire(e) => ("firing", e.value, e.since_ms, e.fired_ms),
            Change::Resolve {
                since, at, value, ..
            } => ("resolved", *value, *since, *at),
        };
        Notice {
            rule: RuleRef {
                id: rule_id,
                name: spec.name.clone(),
                note: spec.note.clone(),
            },
            signal: signal.to_owned(),
            state,
            condition: spec.condition.describe(),
            value,
            since_ms,
            at_ms,
        }
    }

    /// One line: `[FIRING] hot: boiler.a = 93 (above 90)`.
    pub fn summary(&self) -> String {
        let value = self.value.map_or(String::new(), |v| format!(" = {v}"));
        format!(
            "[{}] {}: {}{value} ({})",
            self.state.to_uppercase(),
            self.rule.name,
            self.signal,
            self.condition
        )
    }

    /// The webhook's body: this notice as JSON, or Slack's `{"text": …}`.
    pub fn body(&self, slack: bool) -> String {
        let json = match slack {
            true => serde_json::json!({ "text": self.summary() }),
            false => serde_json::to_value(self).expect("a notice serialises"),
        };
        json.to_string()
    }
}

/// Sends what the outbox holds, whenever a notification is queued and every `POLL`.
pub async fn deliver(alerts: Alerts) {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a plain HTTP client builds");
    loop {
        let now = alerts.0.clock.now().millis();
        match alerts
            .0
            .store
            .take_due_notifications(now, now + LEASE, BATCH)
            .await
        {
            Ok(due) if !due.is_empty() => {
                for notification in due {
                    let (outcome, attempt) =
                        send(&client, &notification.url, &notification.body).await;
                    let at = alerts.0.clock.now().millis();
                    let attempt = match attempt {
                        Some(attempt) => attempt,
                        None => Attempt::Retry {
                            next_ms: at + wait(notification.attempts),
                        },
                    };
                    if let Err(e) = alerts
                        .0
                        .store
                        .record_attempt(notification.id, at, &outcome, attempt)
                        .await
                    {
                        tracing::error!(error = %e, "recording a notification attempt failed");
                    }
                }
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "reading the notification outbox failed"),
        }
        let _ = tokio::time::timeout(POLL, alerts.0.queued.notified()).await;
    }
}

/// POSTs `body` to `url`: what came of it in words, and `Some` when that settles it (delivered,
/// or refused for good), `None` when it is worth another try.
async fn send(client: &reqwest::Client, url: &str, body: &str) -> (String, Option<Attempt>) {
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status();
            let outcome = status.as_u16().to_string();
            if status.is_success() {
                (outcome, Some(Attempt::Delivered))
            } else if status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                tracing::error!(%url, %status, "a webhook refused a notification for good");
                (outcome, Some(Attempt::GiveUp))
            } else {
                (outcome, None)
            }
        }
        Err(e) if e.is_timeout() => ("timeout".into(), None),
        Err(e) => (format!("error: {e}"), None),
    }
}

/// The wait before the next try after `attempts` earlier ones (ms).
fn wait(attempts: i64) -> i64 {
    FIRST_WAIT
        .saturating_mul(1 << attempts.clamp(0, 20))
        .min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_ten_minutes() {
        assert_eq!(wait(0), 1_000);
        assert_eq!(wait(1), 2_000);
        assert_eq!(wait(5), 32_000);
        assert_eq!(wait(40), MAX_WAIT);
    }
}

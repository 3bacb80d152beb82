//! Live fan-out: the writer publishes each committed group here, and every `/api/live` WebSocket
//! subscriber gets it. Both ways a subscriber can fall behind are bounded, so one slow or stalled
//! browser can neither slow ingest nor grow memory: the broadcast keeps a bounded number of points
//! (a subscriber that lags past them is disconnected, reconnects and backfills from history), and a
//! send that the client does not take within a deadline closes its connection.

use crate::model::{LiveMessage, Point};
use crate::server::access::check_origin;
use crate::server::domain::SignalName;
use crate::server::error::ApiError;
use crate::server::metrics::{LiveMetrics, Reason};
use crate::server::store::Heard;
use crate::server::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};

/// Most points in one live message: a large commit goes out in several, so that the broadcast,
/// which counts messages, holds a bounded number of points.
const MESSAGE_POINTS: usize = 1_000;

/// A piece of a committed group, serialised once for all unfiltered subscribers.
pub struct Published {
    message: LiveMessage,
    json: Utf8Bytes,
    /// Points were lost before this (another server's could not be relayed): subscribers must
    /// reconnect and backfill.
    gap: bool,
}

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<Published>>,
    /// Points per message: `MESSAGE_POINTS`, or the whole backlog when that is smaller.
    message_points: usize,
    /// How long a subscriber may take to accept one message before it is disconnected.
    send_timeout: Duration,
    metrics: LiveMetrics,
}

impl LiveFeed {
    /// `backlog_points` is how many points a subscriber may lag behind before it is dropped.
    pub fn new(backlog_points: usize, send_timeout: Duration, metrics: LiveMetrics) -> LiveFeed {
        let message_points = MESSAGE_POINTS.min(backlog_points).max(1);
        LiveFeed {
            tx: broadcast::channel((backlog_points / message_points).max(1)).0,
            message_points,
            send_timeout,
            metrics,
        }
    }

    /// Whether anyone is subscribed: with nobody watching, the writer skips building messages.
    pub fn has_subscribers(&self) -> bool {
        self.subscribers() > 0
    }

    /// Live clients connected now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    pub fn publish(&self, points: Vec<Point>) {
        // The points are moved into their messages, not copied: each holds its signal's name.
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let message = LiveMessage {
                points: points.by_ref().take(self.message_points).collect(),
            };
            let json = serde_json::to_string(&message)
                .expect("a LiveMessage of finite floats always serialises")
                .into();
            // No subscribers is not an error: nobody is watching.
            let _ = self.tx.send(Arc::new(Published {
                message,
                json,
                gap: false,
            }));
        }
    }

    /// What another server committed (`Heard::Points`), or that some of it was lost (`Heard::Gap`):
    /// then every subscriber is disconnected, to reconnect and backfill from the database.
    pub fn deliver(&self, heard: Heard) {
        match heard {
            Heard::Points(points) => self.publish(points),
            Heard::Gap => {
                let _ = self.tx.send(Arc::new(Published {
                    message: LiveMessage { points: Vec::new() },
                    json: Utf8Bytes::from_static(""),
                    gap: true,
                }));
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }
}

#[derive(Deserialize)]
pub struct LiveParams {
    /// Comma-separated signal names; absent means all.
    signals: Option<String>,
}

/// `GET /api/live`: upgrade to a WebSocket that streams `{"points": […]}` for every committed write.
pub async fn live_socket(
    State(state): State<AppState>,
    params: Result<Query<LiveParams>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // Another site's page could otherwise read the feed with the user's network position.
    check_origin(&headers)?;
    let Query(params) = params?;
    let filter = match params.signals {
        Some(list) => Some(
            SignalName::parse_list(&list)
                .map_err(ApiError::BadRequest)?
                .into_iter()
                .map(SignalName::into_string)
                .collect::<HashSet<_>>(),
        ),
        None => None,
    };
    let updates = state.live.subscribe();
    let (send_timeout, metrics) = (state.live.send_timeout, state.live.metrics.clone());
    Ok(upgrade.on_upgrade(move |socket| stream(socket, updates, filter, send_timeout, metrics)))
}

async fn stream(
    mut socket: WebSocket,
    mut updates: broadcast::Receiver<Arc<Published>>,
    filter: Option<HashSet<String>>,
    send_timeout: Duration,
    metrics: LiveMetrics,
) {
    let dropped = |reason| {
        metrics.dropped.get_or_create(&Reason::of(reason)).inc();
    };
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Ok(published) if published.gap => {
                    return close(socket, "missed part of the live feed", send_timeout).await;
                }
                Ok(published) => {
                    let Some(text) = render(&published, filter.as_ref()) else { continue };
                    let send = tokio::time::timeout(send_timeout, socket.send(Message::Text(text)));
                    match send.await {
                        Ok(Ok(())) => {
                            metrics.messages.inc();
                        }
                        Ok(Err(_)) => return,
                        Err(_) => {
                            dropped("send_timeout");
                            return close(socket, "stopped reading the live feed", send_timeout).await;
                        }
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    dropped("lagged");
                    return close(socket, "lagged behind the live feed", send_timeout).await;
                }
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                // Clients have nothing to say; anything but a close is ignored.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Closes with 1013 "try again later": the client reconnects and backfills what it missed. A
/// client that does not take even the close frame in time is cut off all the same.
async fn close(mut socket: WebSocket, reason: &'static str, deadline: Duration) {
    let frame = CloseFrame {
        code: 1013,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(deadline, socket.send(Message::Close(Some(frame)))).await;
}

/// The text to send to one subscriber, or `None` when its filter leaves nothing of this group.
fn render(published: &Published, filter: Option<&HashSet<String>>) -> Option<Utf8Bytes> {
    let Some(filter) = filter else {
        return Some(published.json.clone());
    };
    let points: Vec<Point> = published
        .message
        .points
        .iter()
        .filter(|p| filter.contains(&p.signal))
        .cloned()
        .collect();
    if points.is_empty() {
        return None;
    }
    serde_json::to_string(&LiveMessage { points })
        .ok()
        .map(Utf8Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                signal: "s".into(),
                timestamp: i as i64,
                value: 1.0,
            })
            .collect()
    }

    #[test]
    fn the_backlog_is_counted_in_points_not_commits() {
        let feed = LiveFeed::new(2_000, Duration::from_secs(1), LiveMetrics::default());
        let mut subscriber = feed.subscribe();
        // Three commits of 1,000 points: more than the 2,000 a subscriber may lag behind.
        for _ in 0..3 {
            feed.publish(points(1_000));
        }
        assert!(matches!(
            subscriber.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        // A large commit goes out in pieces of at most `MESSAGE_POINTS`.
        let mut subscriber = feed.subscribe();
        feed.publish(points(1_500));
        let sizes: Vec<usize> = std::iter::from_fn(|| subscriber.try_recv().ok())
            .map(|p| p.message.points.len())
            .collect();
        assert_eq!(sizes, [1_000, 500]);
    }
}

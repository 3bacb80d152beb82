//! Live fan-out: the writer publishes each committed group here, and every `/api/live` WebSocket
//! subscriber gets it. The broadcast is bounded: a client that falls behind is disconnected (it then
//! reconnects and backfills from history), so one slow browser can neither slow ingest nor grow memory.

use crate::model::{LiveMessage, Point};
use crate::server::domain::SignalName;
use crate::server::error::ApiError;
use crate::server::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::broadcast::{self, error::RecvError};

/// A committed group, serialised once for all unfiltered subscribers.
pub struct Published {
    message: LiveMessage,
    json: Utf8Bytes,
}

#[derive(Clone)]
pub struct LiveFeed {
    tx: broadcast::Sender<Arc<Published>>,
}

impl LiveFeed {
    /// `capacity` is how many groups a subscriber may lag behind before it is dropped.
    pub fn new(capacity: usize) -> LiveFeed {
        LiveFeed {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Whether anyone is subscribed: with nobody watching, the writer skips building messages.
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, points: Vec<Point>) {
        let message = LiveMessage { points };
        let json = serde_json::to_string(&message)
            .expect("a LiveMessage of finite floats always serialises")
            .into();
        // No subscribers is not an error: nobody is watching.
        let _ = self.tx.send(Arc::new(Published { message, json }));
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
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = match params.signals {
        Some(list) => Some(
            parse_signal_list(&list)?
                .into_iter()
                .map(SignalName::into_string)
                .collect::<HashSet<_>>(),
        ),
        None => None,
    };
    let updates = state.live.subscribe();
    Ok(upgrade.on_upgrade(move |socket| stream(socket, updates, filter)))
}

/// Parses `a,b,c` into validated names, the shared syntax of every `signals=` parameter.
pub fn parse_signal_list(list: &str) -> Result<Vec<SignalName>, ApiError> {
    parse_signal_names(list.split(','))
}

/// Validates a list of signal names, as every `signals` parameter does.
pub fn parse_signal_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<SignalName>, ApiError> {
    names
        .into_iter()
        .map(|name| {
            SignalName::parse(name).map_err(|e| ApiError::BadRequest(format!("signals: {e}")))
        })
        .collect()
}

async fn stream(
    mut socket: WebSocket,
    mut updates: broadcast::Receiver<Arc<Published>>,
    filter: Option<HashSet<String>>,
) {
    loop {
        tokio::select! {
            update = updates.recv() => match update {
                Ok(published) => {
                    let Some(text) = render(&published, filter.as_ref()) else { continue };
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // 1013 "try again later": the client reconnects and backfills what it missed.
                    let frame = CloseFrame { code: 1013, reason: "lagged behind the live feed".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
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

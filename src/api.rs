//! The dashboard's server functions. Both builds compile this file: the browser gets a stub that POSTs to
//! the server, the server the body below, which reads through the same `server::query` as the REST API.

use crate::model::{History, SignalInfo};
use leptos::prelude::*;

#[cfg(feature = "ssr")]
fn state() -> Result<crate::server::AppState, ServerFnError> {
    use_context::<crate::server::AppState>()
        .ok_or_else(|| ServerFnError::new("server state is missing from the Leptos context"))
}

/// Every signal with its last point.
#[server]
pub async fn list_signals() -> Result<Vec<SignalInfo>, ServerFnError> {
    let state = state()?;
    state.store.signals().await.map_err(ServerFnError::new)
}

/// The points between `from` and `to` (epoch ms), for the given signals or all; with `max_points`,
/// decimated to at most that many per signal, each bucket's extremes kept.
#[server]
pub async fn read_history(
    from: i64,
    to: i64,
    signals: Option<Vec<String>>,
    max_points: Option<usize>,
) -> Result<History, ServerFnError> {
    use crate::server::query;
    let state = state()?;
    let range = query::range_from_millis(from, to, signals).map_err(ServerFnError::new)?;
    let cap = state.limits.max_raw_points;
    let max_points = max_points.map(|n| n.clamp(query::MIN_MAX_POINTS, cap));
    query::history(&state.store, range, max_points, cap)
        .await
        .map_err(ServerFnError::new)
}

//! The retention task: once a minute, deletes raw points and rollups past their retention (see
//! `store::Retention`), in small transactions that never hold the write lock for long.

use crate::server::domain::Timestamp;
use crate::server::store::Store;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(60);

/// Runs until aborted (at shutdown).
pub async fn run(store: Store) {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match store.expire(Timestamp::now().millis()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: expired rows deleted"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next minute"),
        }
    }
}

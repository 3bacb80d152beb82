//! Background upkeep of the store: a WAL checkpoint every second (so commits never pay for one), and
//! once a minute, retention: raw points and rollups past their age (see `store::Retention`) deleted in
//! small transactions that never hold the write lock for long, and the packing of closed hours'
//! minutes (see `store::Store::pack`).

use crate::server::domain::Timestamp;
use crate::server::store::Store;
use std::time::Duration;

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const RETENTION_EVERY: u32 = 60;

/// Runs until aborted (at shutdown).
pub async fn run(store: Store) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u32.. {
        ticks.tick().await;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed; retrying in a second");
        }
        if n % RETENTION_EVERY != 0 {
            continue;
        }
        match store.expire(Timestamp::now().millis()).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "retention: expired rows deleted"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next minute"),
        }
        match store.pack(Timestamp::now().millis()).await {
            Ok(0) => {}
            Ok(hours) => tracing::info!(hours, "packed the minutes of closed hours"),
            Err(e) => tracing::warn!(error = %e, "packing failed; retrying next minute"),
        }
    }
}

//! Background upkeep of the store: a WAL checkpoint every second (so commits never pay for one), the
//! database's size on disk every few seconds (for `/metrics`), and once a minute, retention: raw points and rollups past their age (see `store::Retention`) deleted in
//! small transactions that never hold the write lock for long, and the packing of closed hours'
//! minutes (see `store::Store::pack`).
//!
//! They run side by side: a first retention or packing pass over a large database can take
//! minutes, and checkpoints must go on meanwhile, or the WAL would grow for as long as it lasts.

use crate::server::clock::SharedClock;
use crate::server::metrics::UpkeepMetrics;
use crate::server::store::{PackedSpans, Store};
use std::time::Duration;

const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
const SIZE_EVERY: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Runs until aborted (at shutdown).
pub async fn run(store: Store, clock: SharedClock, metrics: UpkeepMetrics) {
    tokio::join!(
        checkpoints(&store),
        size(&store, &metrics),
        retention_and_packing(&store, clock, &metrics)
    );
}

async fn checkpoints(store: &Store) {
    let mut ticks = every(CHECKPOINT_EVERY);
    loop {
        ticks.tick().await;
        if let Err(e) = store.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed; retrying in a second");
        }
    }
}

async fn size(store: &Store, metrics: &UpkeepMetrics) {
    let mut ticks = every(SIZE_EVERY);
    loop {
        ticks.tick().await;
        if let Ok(size) = store.size().await {
            metrics.database_bytes.set(size.database_bytes as i64);
            metrics.wal_bytes.set(size.wal_bytes as i64);
        }
    }
}

async fn retention_and_packing(store: &Store, clock: SharedClock, metrics: &UpkeepMetrics) {
    let mut ticks = every(RETENTION_EVERY);
    loop {
        ticks.tick().await;
        match store.expire(clock.now().millis()).await {
            Ok(0) => {}
            Ok(deleted) => {
                metrics.rows_expired.inc_by(deleted);
                tracing::info!(deleted, "retention: expired rows deleted");
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying next minute"),
        }
        match store.pack(clock.now().millis()).await {
            Ok(PackedSpans { hours: 0, days: 0 }) => {}
            Ok(PackedSpans { hours, days }) => {
                metrics.rollup_packs.inc_by(hours + days);
                tracing::info!(hours, days, "packed the rollups of closed hours and days");
            }
            Err(e) => tracing::warn!(error = %e, "packing failed; retrying next minute"),
        }
    }
}

/// Ticks from now on, the first at once; a pass that overruns delays the next instead of bunching.
pub fn every(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

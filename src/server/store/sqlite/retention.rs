//! Retention: what is older than each kind of data's age goes, a little at a time.

use super::*;
use crate::model::DAY;

/// Rows one retention transaction deletes: few, so the writer never waits long for the lock.
const EXPIRE_BATCH: i64 = 5_000;
/// Blocks one retention transaction deletes (~90 points each).
const EXPIRE_BLOCKS: i64 = 64;

impl SqliteStore {
    /// Deletes what retention no longer keeps, in small transactions so that the writer never waits
    /// long. Returns the points and rollup rows deleted.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        self.settle().await?;
        let ids: Vec<SeriesId> = sqlx::query_scalar("SELECT id FROM series")
            .fetch_all(&self.pool)
            .await?;
        let minutes = now - self.retention.minute_rollups_ms;
        let hours = now - self.retention.hour_rollups_ms;
        let rollups = [
            (table(Interval::Minute), minutes),
            // An hour is kept packed while any of its minutes is kept.
            ("minutes_packed", minutes - HOUR),
            (table(Interval::Hour), hours),
            // A day is kept packed while any of its hours is kept.
            ("hours_packed", hours - DAY),
        ];
        let mut deleted = 0;
        for id in ids {
            deleted += self.expire_points(id, now - self.retention.raw_ms).await?;
            for (table, cutoff) in rollups {
                // Looked for on a reading connection first: a pass that finds nothing to delete (the
                // common case, for most signals) takes no write lock at all.
                let any: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT bucket FROM {table} WHERE series_id = ?1 AND bucket < ?2 LIMIT 1"
                ))
                .bind(id)
                .bind(cutoff)
                .fetch_optional(&self.pool)
                .await?;
                if any.is_none() {
                    continue;
                }
                loop {
                    // The batch's last bucket; with fewer than a batch left, the cutoff itself.
                    let sql = format!(
                        "DELETE FROM {table} WHERE series_id = ?1 AND bucket < ?2 AND bucket <= \
                         coalesce((SELECT bucket FROM {table} WHERE series_id = ?1 AND bucket < ?2 \
                                   ORDER BY bucket LIMIT 1 OFFSET ?3), ?2)"
                    );
                    let n = sqlx::query(&sql)
                        .bind(id)
                        .bind(cutoff)
                        .bind(EXPIRE_BATCH - 1)
                        .execute(&self.writes)
                        .await?
                        .rows_affected();
                    deleted += n;
                    if n < EXPIRE_BATCH as u64 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes one series' raw points older than `cutoff`: whole blocks a few at a time, then the part
    /// of the block that straddles the cutoff. Points from the start of the cutoff's hour on stay,
    /// and so do those from the series' rollups' mark on, until the packer builds them
    /// (`built.rs`): a late point moves the mark back to its hour's start, and the rollups built
    /// again from there must find the whole hour. Returns the points deleted.
    async fn expire_points(&self, id: SeriesId, cutoff: i64) -> Result<u64, StoreError> {
        let cutoff = bucket(cutoff, HOUR);
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT first_ts FROM blocks WHERE series_id = ?1 ORDER BY first_ts LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if oldest.is_none_or(|first| first >= cutoff) {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let mut state = self.state.lock().await;
            let cutoff = cutoff.min(state.marks.get(id));
            let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
            // Blocks never overlap, so those wholly before the cutoff come first.
            let counts: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM blocks WHERE series_id = ?1 AND first_ts IN \
                   (SELECT first_ts FROM blocks WHERE series_id = ?1 AND last_ts < ?2 \
                    ORDER BY first_ts LIMIT ?3) \
                 RETURNING count",
            )
            .bind(id)
            .bind(cutoff)
            .bind(EXPIRE_BLOCKS)
            .fetch_all(&mut *tx)
            .await?;
            let whole = counts.len() as i64 == EXPIRE_BLOCKS;
            let mut n: i64 = counts.iter().sum();
            if !whole {
                n += cut_block(&mut tx, id, cutoff).await?;
            }
            if n > 0 {
                sqlx::query("UPDATE series SET points = points - ?2 WHERE id = ?1")
                    .bind(id)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                state.tails.forget(id);
            }
            tx.commit().await?;
            drop(state);
            deleted += u64::try_from(n).unwrap_or(0);
            if !whole {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }
}

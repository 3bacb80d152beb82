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
        // Raw points go an hour at a time (`expire_points`), and never past a signal's mark.
        let raw_cutoff = bucket(now - self.retention.raw_ms, HOUR);
        let blocks =
            "(SELECT first_ts FROM blocks WHERE series_id = s.id ORDER BY first_ts LIMIT 1) \
                      < min(?1, coalesce(s.rollups_to, ?1))";
        for id in self.series_where(blocks, raw_cutoff).await? {
            deleted += self.expire_points(id, raw_cutoff).await?;
        }
        for (table, cutoff) in rollups {
            let rows =
                format!("EXISTS (SELECT 1 FROM {table} WHERE series_id = s.id AND bucket < ?1)");
            for id in self.series_where(&rows, cutoff).await? {
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

    /// The signals for which `condition` (on `series s`, with ?1 bound to `at`) holds, looked for
    /// in one statement on a reading connection: most signals, most passes, have nothing to delete,
    /// and a statement a signal and table took ~13 s of CPU a minute at 100,000 signals.
    async fn series_where(&self, condition: &str, at: i64) -> Result<Vec<SeriesId>, StoreError> {
        Ok(
            sqlx::query_scalar(&format!("SELECT s.id FROM series s WHERE {condition}"))
                .bind(at)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Deletes one series' raw points older than `cutoff` (an hour's start: a late point moves a
    /// mark back to its hour's start, and the rollups built again from there must find the whole
    /// hour): whole blocks a few at a time, then the part of the block that straddles the cutoff.
    /// Points from the series' rollups' mark on stay until the packer builds them (`built.rs`).
    /// Returns the points deleted.
    async fn expire_points(&self, id: SeriesId, cutoff: i64) -> Result<u64, StoreError> {
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

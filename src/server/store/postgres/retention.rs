//! Retention on PostgreSQL: raw points go a day at a time, by dropping the day's partition once the
//! whole day is past raw retention (reads stop at the cutoff meanwhile); rollup rows are deleted.

use super::partitions;
use super::write::table;
use super::*;
use crate::server::store::rollup::Interval;

/// Signals whose old rollup rows one transaction deletes.
const EXPIRE_SERIES: i64 = 256;

/// A signal and how many of its points a dropped day held.
#[derive(sqlx::FromRow)]
struct DayCount {
    series_id: i64,
    points: i64,
}

impl PostgresStore {
    /// Drops the days of raw points past retention and deletes the rollup rows past theirs.
    /// Returns the points and rollup rows deleted.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        let raw_cutoff = now - self.retention.raw_ms;
        let mut deleted = 0;
        for day in partitions::expired(&self.pool, raw_cutoff).await? {
            deleted += self.drop_day(&day.table).await?;
            self.partitions.forget_before(day.day + 1);
        }
        for (interval, cutoff) in [
            (Interval::Minute, now - self.retention.minute_rollups_ms),
            (Interval::Hour, now - self.retention.hour_rollups_ms),
        ] {
            deleted += self.expire_rollups(table(interval), cutoff).await?;
        }
        Ok(deleted)
    }

    /// Drops one day's partition and takes its points off its signals' counts, in one transaction.
    async fn drop_day(&self, day_table: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Dropping waits for the reads and writes of the table to finish, and holds up new ones
        // meanwhile: rather give up and try again next pass than stall ingest behind a long read.
        sqlx::query("SET LOCAL lock_timeout = '2s'")
            .execute(&mut *tx)
            .await?;
        let counts: Vec<DayCount> = sqlx::query_as(&format!(
            "SELECT series_id, count(*) AS points FROM {day_table} GROUP BY series_id ORDER BY series_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let (ids, points): (Vec<i64>, Vec<i64>) =
            counts.iter().map(|c| (c.series_id, c.points)).unzip();
        // In id order, as writes lock them: neither waits for the other in a cycle.
        sqlx::query("SELECT id FROM series WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE series s SET points = s.points - d.points \
             FROM unnest($1::bigint[], $2::bigint[]) AS d(id, points) WHERE s.id = d.id",
        )
        .bind(&ids)
        .bind(&points)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!("DROP TABLE {day_table}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(points.iter().map(|&n| u64::try_from(n).unwrap_or(0)).sum())
    }

    /// Deletes the rows of `table` older than `cutoff`, a few signals per transaction. Signals with
    /// such rows are found by one probe of the primary key each, not by scanning the table.
    async fn expire_rollups(&self, table: &str, cutoff: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut after = 0_i64;
        loop {
            let ids: Vec<i64> = sqlx::query_scalar(&format!(
                "SELECT s.id FROM series s WHERE s.id > $1 AND EXISTS \
                   (SELECT 1 FROM {table} r WHERE r.series_id = s.id AND r.bucket < $2) \
                 ORDER BY s.id LIMIT $3"
            ))
            .bind(after)
            .bind(cutoff)
            .bind(EXPIRE_SERIES)
            .fetch_all(&self.pool)
            .await?;
            let Some(&last) = ids.last() else {
                return Ok(deleted);
            };
            let done = sqlx::query(&format!(
                "DELETE FROM {table} WHERE series_id = ANY($1) AND bucket < $2"
            ))
            .bind(&ids)
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
            deleted += done.rows_affected();
            after = last;
        }
    }
}

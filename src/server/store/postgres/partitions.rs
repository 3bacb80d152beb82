//! Day partitions of `points`: made by whichever server first writes into a day, dropped by
//! retention once the whole day is past raw retention.
//!
//! A day gets its own partition only from the oldest day raw retention keeps up to two days ahead of
//! now: a point far in the future goes to the default partition (`points_ahead`), so a client cannot
//! make a table per day of the next millennium. When such a day comes, its partition is made with
//! the points already waiting for it moved in.

use super::StoreError;
use crate::model::DAY;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// How far ahead of now a day gets its own partition.
const DAYS_AHEAD: i64 = 2;
/// Serialises partition changes between servers (an arbitrary key of `pg_advisory_xact_lock`).
const PARTITION_LOCK: i64 = 0x5167_6e61_6c62_6f61;

/// The days this server knows to have a partition.
#[derive(Default)]
pub(super) struct Partitions {
    days: Mutex<BTreeSet<i64>>,
}

/// The day (days since the Unix epoch) that holds `t`.
pub(super) fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY)
}

/// The partition's table name: `points_20261126`.
fn table(day: i64) -> String {
    let date = chrono::DateTime::from_timestamp_millis(day * DAY)
        .map_or_else(|| day.to_string(), |d| d.format("%Y%m%d").to_string());
    format!("points_{date}")
}

/// The day a partition's table name stands for, if it is one.
fn day_of_table(name: &str) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(name.strip_prefix("points_")?, "%Y%m%d").ok()?;
    let midnight = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    Some(day_of(midnight))
}

impl Partitions {
    /// Makes sure each day of `times` (epoch ms, at or after `oldest`) that should have a partition
    /// as of `now` has one.
    pub async fn ensure(
        &self,
        pool: &sqlx::PgPool,
        times: impl Iterator<Item = i64>,
        oldest: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let newest_day = day_of(now) + DAYS_AHEAD;
        let wanted: BTreeSet<i64> = times
            .filter(|&t| t >= oldest)
            .map(day_of)
            .filter(|&day| day <= newest_day)
            .collect();
        let missing: Vec<i64> = {
            let known = self.days.lock().unwrap_or_else(|e| e.into_inner());
            wanted.difference(&known).copied().collect()
        };
        for day in missing {
            create(pool, day).await?;
            self.days
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(day);
        }
        Ok(())
    }

    /// Forgets the days before `day` (their partitions were dropped).
    pub fn forget_before(&self, day: i64) {
        let mut days = self.days.lock().unwrap_or_else(|e| e.into_inner());
        *days = days.split_off(&day);
    }
}

/// Creates the partition of `day` unless another server did, moving in the points that waited for
/// it in the default partition.
async fn create(pool: &sqlx::PgPool, day: i64) -> Result<(), StoreError> {
    let (name, from, to) = (table(day), day * DAY, (day + 1) * DAY);
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PARTITION_LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        // Names and bounds are made here from integers: nothing a client sent is spliced in.
        for statement in [
            format!("CREATE TABLE {name} (LIKE points INCLUDING ALL)"),
            format!(
                "WITH waiting AS (DELETE FROM points_ahead WHERE ts >= {from} AND ts < {to} \
                 RETURNING *) INSERT INTO {name} SELECT * FROM waiting"
            ),
            format!(
                "ALTER TABLE points ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
            ),
        ] {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// A partition whose whole day is before the raw cutoff.
pub(super) struct Expired {
    pub table: String,
    pub day: i64,
}

/// The partitions of `points` whose day ends at or before `cutoff`, oldest first.
pub(super) async fn expired(pool: &sqlx::PgPool, cutoff: i64) -> Result<Vec<Expired>, StoreError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'points'::regclass ORDER BY c.relname",
    )
    .fetch_all(pool)
    .await?;
    Ok(names
        .into_iter()
        .filter_map(|table| {
            let day = day_of_table(&table)?;
            ((day + 1) * DAY <= cutoff).then_some(Expired { table, day })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_is_named_by_its_utc_date_and_read_back() {
        let day = day_of(1_795_687_200_000); // 2026-11-26T10:00Z
        assert_eq!(table(day), "points_20261126");
        assert_eq!(day_of_table("points_20261126"), Some(day));
        assert_eq!(day_of_table("points_ahead"), None);
        assert_eq!(day_of(-1), -1, "before 1970 too");
    }
}

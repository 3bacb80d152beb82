//! Packing: each closed hour's minute rollups in one row (migrations 0004 and 0008), and back into
//! minute rows when a late point lands in it.

use super::super::packed_hour::{self, Minute};
use super::super::rows::Row;
use super::write::{push_rollup_merge, ROLLUP_BINDS};
use super::*;
use std::sync::atomic::Ordering;

/// Hours one packing transaction packs (see `SqliteStore::pack`).
const PACK_HOURS: i64 = 24;

impl SqliteStore {
    /// Packs the minutes of closed hours (see migrations 0004 and 0008), each signal from its packing mark on,
    /// a day at a time per transaction so the writer never waits long. The current hour and the one
    /// before stay minute rows: late points for them are common (a producer's retries), and each one
    /// sends the mark back. Returns the hours packed.
    pub async fn pack(&self, now: i64) -> Result<u64, StoreError> {
        self.settle().await?;
        let limit = bucket(now, HOUR) - HOUR;
        let ids: Vec<SeriesId> =
            sqlx::query_scalar("SELECT id FROM series WHERE packed_to IS NULL OR packed_to < ?1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        let mut packed = 0;
        for id in ids {
            // Looked for on a reading connection first: most signals, most minutes, have nothing
            // to pack, and then take no write lock.
            while first_unpacked_hour(&self.pool, id)
                .await?
                .is_some_and(|h| h < limit)
            {
                let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
                // Again inside the transaction: a write may have moved the mark back since.
                let Some(from) = first_unpacked_hour(&mut *tx, id)
                    .await?
                    .filter(|&h| h < limit)
                else {
                    tx.commit().await?;
                    break;
                };
                let to = (from + PACK_HOURS * HOUR).min(limit);
                let rows: Vec<MinuteRow> = sqlx::query_as(
                    "SELECT bucket, count, sum, first_ts, first, low_ts, low, high_ts, high, \
                       last_ts, last \
                     FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 \
                     ORDER BY bucket",
                )
                .bind(id)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                let minutes: Vec<Minute> = rows.into_iter().map(Minute::from).collect();
                let hours: Vec<PackedHour> = minutes
                    .chunk_by(|a, b| bucket(a.start, HOUR) == bucket(b.start, HOUR))
                    .map(|hour| {
                        let start = bucket(hour[0].start, HOUR);
                        PackedHour {
                            start,
                            data: packed_hour::encode(start, hour),
                        }
                    })
                    .collect();
                let mut batch = QueryBuilder::<Sqlite>::new("");
                if !hours.is_empty() {
                    batch.push("INSERT INTO minutes_packed (series_id, bucket, data) ");
                    batch.push_values(&hours, |mut row, hour| {
                        row.push_bind(id)
                            .push_bind(hour.start)
                            .push_bind(hour.data.clone());
                    });
                    batch.push("; ");
                }
                batch
                    .push("DELETE FROM rollup_1m WHERE series_id = ")
                    .push_bind(id)
                    .push(" AND bucket >= ")
                    .push_bind(from)
                    .push(" AND bucket < ")
                    .push_bind(to)
                    .push("; UPDATE series SET packed_to = ")
                    .push_bind(to)
                    .push(" WHERE id = ")
                    .push_bind(id);
                batch.build().execute(&mut *tx).await?;
                // Raised before the commit: a write that begins after it unpacks what it writes into.
                self.packed_before.fetch_max(to, Ordering::SeqCst);
                tx.commit().await?;
                packed += hours.len() as u64;
                tokio::task::yield_now().await;
            }
        }
        Ok(packed)
    }
}

/// The first hour of series `id` at or after its packing mark that has minutes: hours without
/// any (before the first, or in a gap) are skipped, not walked through.
pub(super) async fn first_unpacked_hour<'c, E>(
    db: E,
    id: SeriesId,
) -> Result<Option<i64>, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let (first,): (Option<i64>,) = sqlx::query_as(
        "SELECT min(bucket) FROM rollup_1m WHERE series_id = ?1 AND bucket >= \
           coalesce((SELECT packed_to FROM series WHERE id = ?1), -9223372036854775808)",
    )
    .bind(id)
    .fetch_one(db)
    .await?;
    Ok(first.map(|minute| bucket(minute, HOUR)))
}

/// An hour of minutes packed into one row of `minutes_packed`.
struct PackedHour {
    start: i64,
    data: Vec<u8>,
}

/// A row of `rollup_1m`, whole.
#[derive(sqlx::FromRow)]
struct MinuteRow {
    bucket: i64,
    count: i64,
    sum: f64,
    #[sqlx(flatten)]
    extremes: Extremes,
}

impl From<MinuteRow> for Minute {
    fn from(row: MinuteRow) -> Minute {
        let e = row.extremes;
        Minute {
            start: row.bucket,
            aggregate: Aggregate {
                count: row.count,
                sum: row.sum,
                first: TimeValue::new(e.first_ts, e.first),
                low: TimeValue::new(e.low_ts, e.low),
                high: TimeValue::new(e.high_ts, e.high),
                last: TimeValue::new(e.last_ts, e.last),
            },
        }
    }
}

/// A row of `minutes_packed`.
#[derive(sqlx::FromRow)]
struct PackedRow {
    bucket: i64,
    data: Vec<u8>,
}

impl SqliteStore {
    /// Before a fold merges `rows` (sorted by series) into the minute rollups: the packed hours
    /// they write into come back as minute rows (see migration 0008). Only a series written before
    /// the newest packed hour's end is looked up; an ordinary write, into the current hour, is not.
    pub(super) async fn unpack_written(
        &self,
        conn: &mut sqlx::SqliteConnection,
        rows: &[Row],
    ) -> Result<(), StoreError> {
        let packed_before = self.packed_before.load(Ordering::SeqCst);
        for series in rows.chunk_by(|a, b| a.series == b.series) {
            let hour = bucket(series[0].ts, HOUR);
            if hour < packed_before {
                unpack(conn, series[0].series, hour).await?;
            }
        }
        Ok(())
    }
}

/// Unpacks series `id`'s packed hours from `hour` on into minute rows and moves its packing mark
/// back to `hour`: a mark, not a hole, so every later packed hour comes back too.
async fn unpack(
    conn: &mut sqlx::SqliteConnection,
    id: SeriesId,
    hour: i64,
) -> Result<(), StoreError> {
    let packed: Vec<PackedRow> = sqlx::query_as(
        "SELECT bucket, data FROM minutes_packed WHERE series_id = ?1 AND bucket >= ?2",
    )
    .bind(id)
    .bind(hour)
    .fetch_all(&mut *conn)
    .await?;
    if packed.is_empty() {
        return Ok(());
    }
    let mut merges = Vec::new();
    for row in packed {
        for minute in packed_hour::decode(row.bucket, &row.data)? {
            merges.push(rollup::Merge {
                series: id,
                bucket: minute.start,
                delta: minute.aggregate,
            });
        }
    }
    let mut batch = Batch::default();
    let push = |sql: &mut _, chunk: &[_]| push_rollup_merge(sql, Interval::Minute, chunk);
    batch.statements(conn, &merges, ROLLUP_BINDS, push).await?;
    batch.send(conn).await?;
    sqlx::query(
        "DELETE FROM minutes_packed WHERE series_id = ?1 AND bucket >= ?2; \
         UPDATE series SET packed_to = ?2 WHERE id = ?1 AND packed_to > ?2",
    )
    .bind(id)
    .bind(hour)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

//! Packing: each closed hour's minute rollups in one row (migration 0004).

use super::*;

/// Hours one packing transaction packs (see `SqliteStore::pack`).
const PACK_HOURS: i64 = 24;

impl SqliteStore {
    /// Packs the minutes of closed hours (see 0004's migration), each signal from its packing mark on,
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
                let minutes: Vec<Extremes> = sqlx::query_as(
                    "SELECT first_ts, first, low_ts, low, high_ts, high, last_ts, last \
                     FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 \
                     ORDER BY bucket",
                )
                .bind(id)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                let hours =
                    minutes.chunk_by(|a, b| bucket(a.first_ts, HOUR) == bucket(b.first_ts, HOUR));
                let hours: Vec<PackedHour> = hours
                    .map(|hour| {
                        let start = bucket(hour[0].first_ts, HOUR);
                        let points: Points = hour.iter().flat_map(Extremes::points).collect();
                        PackedHour {
                            start,
                            data: block::pack_run(start, &points),
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
                    batch.push(
                        " ON CONFLICT (series_id, bucket) DO UPDATE SET data = excluded.data; ",
                    );
                }
                batch
                    .push("UPDATE series SET packed_to = ")
                    .push_bind(to)
                    .push(" WHERE id = ")
                    .push_bind(id);
                batch.build().execute(&mut *tx).await?;
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

/// An hour of minute extremes packed into one row of `minutes_packed`.
struct PackedHour {
    start: i64,
    data: Vec<u8>,
}

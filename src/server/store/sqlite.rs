//! SQLite: the embedded default. One file, WAL mode so reads never wait for the writer.

use super::rollup::{self, bucket, Changes, Interval, Source};
use super::{Durability, Range, Retention, Shape, Sink, StoreError};
use crate::downsample::{bucket_points, M4};
use crate::model::{Series, SignalInfo};
use crate::server::domain::{DataPoint, Timestamp};
use futures::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rows per multi-row INSERT: 3 bound parameters each, inside SQLite's limit of 32,766 per statement;
/// fewer, larger statements cost less per row.
const ROWS_PER_INSERT: usize = 5_000;
/// Raw points read per query: large enough that queries are few, small enough to bound memory.
const RAW_PAGE: usize = 100_000;
/// Rollup rows per multi-row upsert: 12 parameters each.
const ROLLUPS_PER_UPSERT: usize = 2_000;
/// Rows one retention transaction deletes: small, so the writer never waits long for the lock.
const EXPIRE_BATCH: i64 = 5_000;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Signal name → `series.id`, so a write looks names up in memory, not in the database.
    /// Only filled after a commit, so it never holds an id that a rolled-back transaction invented.
    ids: Arc<Mutex<HashMap<String, i64>>>,
    /// Series id → its newest timestamp: a point after it cannot replace a stored one, so only points
    /// at or before it are looked up.
    newest: Arc<Mutex<HashMap<i64, i64>>>,
    retention: Retention,
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        durability: Durability,
        retention: Retention,
    ) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Fsync => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(5))
            // With many signals a commit dirties one leaf page per signal: a 16 MiB page cache (per
            // connection, so memory stays bounded) keeps them hot between commits.
            .pragma("cache_size", "-16384")
            // No checkpoint inside a commit: that would stall whichever request happened to cross the
            // threshold. `checkpoint` runs them in the background instead.
            .pragma("wal_autocheckpoint", "0");
        // `sqlite://data/signalboard.db` should work on a fresh clone: create the folder, not only the file.
        if let Some(dir) = options.get_filename().parent() {
            if !dir.as_os_str().is_empty() {
                tokio::fs::create_dir_all(dir).await?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("src/server/store/migrations")
            .run(&pool)
            .await?;
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT name, id, last_ts FROM series")
                .fetch_all(&pool)
                .await?;
        let newest = rows
            .iter()
            .filter_map(|(_, id, last)| Some((*id, (*last)?)))
            .collect();
        let ids = rows.into_iter().map(|(name, id, _)| (name, id)).collect();
        Ok(SqliteStore {
            pool,
            ids: Arc::new(Mutex::new(ids)),
            newest: Arc::new(Mutex::new(newest)),
            retention,
        })
    }

    pub async fn write(&self, points: &[&DataPoint]) -> Result<(), StoreError> {
        let cached: Vec<Option<i64>> = {
            let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            points
                .iter()
                .map(|p| ids.get(p.signal.as_str()).copied())
                .collect()
        };
        // IMMEDIATE takes the write lock up front. A deferred transaction that reads first (the lookup
        // of replaced points) could not upgrade to a writer after retention's deletes committed in
        // between: SQLite would refuse at once, not wait.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut fresh: HashMap<&str, i64> = HashMap::new();
        let mut rows = Vec::with_capacity(points.len());
        for (point, cached) in points.iter().zip(cached) {
            let name = point.signal.as_str();
            let id = match cached.or_else(|| fresh.get(name).copied()) {
                Some(id) => id,
                None => {
                    // The no-op update makes RETURNING yield the id whether the row is new or not.
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO series (name) VALUES (?1) \
                         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
                    )
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                    fresh.insert(name, id);
                    id
                }
            };
            rows.push((id, point.timestamp.millis(), point.value.get()));
        }
        // Key order means each b-tree page is visited once per commit. Of two points with the same key
        // in one batch the later one wins, as it would in two requests.
        rows.sort_by_key(|&(id, ts, _)| (id, ts));
        let mut unique: Vec<(i64, i64, f64)> = Vec::with_capacity(rows.len());
        for row in rows {
            match unique.last_mut() {
                Some(last) if (last.0, last.1) == (row.0, row.1) => *last = row,
                _ => unique.push(row),
            }
        }

        let raw_cutoff = Timestamp::now().millis() - self.retention.raw_ms;
        let series: Vec<&[(i64, i64, f64)]> = unique.chunk_by(|a, b| a.0 == b.0).collect();
        // Only the batch's signals: the map holds every signal there is.
        let newest: Vec<Option<i64>> = {
            let newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
            series
                .iter()
                .map(|s| newest.get(&s[0].0).copied())
                .collect()
        };
        let mut changes = Changes::default();
        let mut raw = Vec::with_capacity(unique.len());
        // Per series: raw points added, and the newest point written.
        let mut stats: Vec<(i64, i64, (i64, f64))> = Vec::new();
        for (series, newest) in series.into_iter().zip(newest) {
            let id = series[0].0;
            let stored = self
                .stored_among(&mut tx, id, series, raw_cutoff, newest)
                .await?;
            let mut added = 0;
            for &(_, t, v) in series {
                if t < raw_cutoff {
                    // Older than raw retention: kept in the rollups only (backfill).
                    changes.added(id, t, v);
                    continue;
                }
                raw.push((id, t, v));
                if stored.contains(&t) {
                    changes.replaced(id, t);
                } else {
                    changes.added(id, t, v);
                    added += 1;
                }
            }
            let &(_, t, v) = series.last().expect("chunk_by yields non-empty chunks");
            stats.push((id, added, (t, v)));
        }

        // Raw points, rollup deltas and signal figures go to SQLite as one multi-statement batch: one
        // round trip to sqlx's SQLite thread instead of one per statement.
        let mut batch = QueryBuilder::<Sqlite>::new("");
        for chunk in raw.chunks(ROWS_PER_INSERT) {
            push_raw_insert(&mut batch, chunk);
        }
        for (interval, merges) in changes.merges() {
            for chunk in merges.chunks(ROLLUPS_PER_UPSERT) {
                push_rollup_merge(&mut batch, interval, chunk);
            }
        }
        for chunk in stats.chunks(ROWS_PER_INSERT / 2) {
            push_stats_update(&mut batch, chunk);
        }
        batch.build().execute(&mut *tx).await?;
        // Rare: buckets where a point was replaced. Minutes first, since an hour is rebuilt from them.
        for (interval, stale) in [
            (Interval::Minute, &changes.stale_minutes),
            (Interval::Hour, &changes.stale_hours),
        ] {
            for &(id, start) in stale {
                recompute_rollup(&mut tx, interval, id, start).await?;
            }
        }
        tx.commit().await?;

        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.extend(fresh.into_iter().map(|(name, id)| (name.to_owned(), id)));
        let mut newest = self.newest.lock().unwrap_or_else(|e| e.into_inner());
        for (id, _, (t, _)) in stats {
            let entry = newest.entry(id).or_insert(t);
            *entry = (*entry).max(t);
        }
        Ok(())
    }

    /// The timestamps among `series` (one signal's points, sorted) that are already stored. Only points
    /// at or before the signal's newest can be, so an in-order write costs no lookup at all.
    async fn stored_among(
        &self,
        tx: &mut sqlx::SqliteConnection,
        id: i64,
        series: &[(i64, i64, f64)],
        raw_cutoff: i64,
        newest: Option<i64>,
    ) -> Result<HashSet<i64>, StoreError> {
        let Some(newest) = newest else {
            return Ok(HashSet::new());
        };
        let candidates: Vec<i64> = series
            .iter()
            .map(|&(_, t, _)| t)
            .filter(|&t| t >= raw_cutoff && t <= newest)
            .collect();
        let (Some(&first), Some(&last)) = (candidates.first(), candidates.last()) else {
            return Ok(HashSet::new());
        };
        let stored: Vec<(i64,)> =
            sqlx::query_as("SELECT ts FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3")
                .bind(id)
                .bind(first)
                .bind(last)
                .fetch_all(&mut *tx)
                .await?;
        Ok(stored.into_iter().map(|(t,)| t).collect())
    }

    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        let (from, to) = (range.from.millis(), range.to.millis());
        // Raw reads stop one point past the limit, so the caller can tell "more than the limit".
        let mut budget = match shape {
            Shape::Raw { limit } => limit.saturating_add(1),
            Shape::Decimated { .. } => usize::MAX,
        };
        let mut out = Vec::new();
        for (id, name) in self.series_in(range).await? {
            if budget == 0 {
                break;
            }
            let (mut sink, stretches) = match shape {
                Shape::Raw { .. } => (
                    Sink::Raw(Vec::new(), Vec::new()),
                    vec![(Source::Raw, from, to)],
                ),
                Shape::Decimated { max_points } => decimation(from, to, max_points),
            };
            let mut from_rollups = false;
            for (source, start, end) in stretches {
                match source {
                    Source::Raw => {
                        self.raw_points(id, start, end, budget, &mut sink).await?;
                    }
                    Source::Rollup(interval) => {
                        from_rollups = true;
                        let sql = format!(
                            "SELECT first_ts, first, low_ts, low, high_ts, high, last_ts, last \
                             FROM {} WHERE series_id = ?1 AND bucket >= ?2 AND bucket <= ?3 \
                             ORDER BY bucket",
                            table(interval)
                        );
                        let mut rows = sqlx::query_as::<_, RollupPoints>(&sql)
                            .bind(id)
                            .bind(start)
                            .bind(end)
                            .fetch(&self.pool);
                        while let Some(r) = rows.try_next().await? {
                            let points = [(r.0, r.1), (r.2, r.3), (r.4, r.5), (r.6, r.7)];
                            for (t, v) in bucket_points(points) {
                                sink.push(t, v);
                            }
                        }
                    }
                }
            }
            let (timestamps, values, decimated) = sink.finish();
            if timestamps.is_empty() {
                continue;
            }
            if let Shape::Raw { .. } = shape {
                budget = budget.saturating_sub(timestamps.len());
            }
            out.push(Series {
                signal: name,
                timestamps,
                values,
                downsampled: decimated || from_rollups,
            });
        }
        Ok(out)
    }

    /// Feeds one signal's raw points in `start..=end` (at most `limit`) to `sink`, page by page: a
    /// primary-key range scan that SQLite hands over as two comma-separated texts per page, far
    /// cheaper than a row at a time through sqlx. `%!.17g` prints every `f64` exactly.
    async fn raw_points(
        &self,
        id: i64,
        start: i64,
        end: i64,
        limit: usize,
        sink: &mut Sink,
    ) -> Result<(), StoreError> {
        let (mut cursor, mut left) = (start, limit);
        while left > 0 {
            let page = left.min(RAW_PAGE);
            let (times, values, count): (Option<String>, Option<String>, i64) = sqlx::query_as(
                "SELECT group_concat(ts, ','), group_concat(printf('%!.17g', value), ','), count(*) \
                 FROM (SELECT ts, value FROM points \
                       WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts LIMIT ?4)",
            )
            .bind(id)
            .bind(cursor)
            .bind(end)
            .bind(i64::try_from(page).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await?;
            let (Some(times), Some(values)) = (times, values) else {
                return Ok(());
            };
            // The subquery's order carries through the aggregate (an ORDER BY inside group_concat
            // would sort again, in a temporary b-tree); the check below makes sure of it.
            for (t, v) in times.split(',').zip(values.split(',')) {
                let (Ok(t), Ok(v)) = (t.parse::<i64>(), v.parse::<f64>()) else {
                    return Err(std::io::Error::other(format!("unreadable point {t}: {v}")).into());
                };
                if t < cursor {
                    return Err(std::io::Error::other("points came out of time order").into());
                }
                sink.push(t, v);
                cursor = t + 1;
            }
            let count = usize::try_from(count).unwrap_or(0);
            if count < page {
                return Ok(());
            }
            left -= count;
        }
        Ok(())
    }

    /// The ids and names of the signals a range asks for (all, or the named ones that exist), by name,
    /// leaving out those whose newest point is older than the range: they cost no query.
    async fn series_in(&self, range: &Range) -> Result<Vec<(i64, String)>, StoreError> {
        let from = range.from.millis();
        let Some(names) = &range.signals else {
            return Ok(sqlx::query_as(
                "SELECT id, name FROM series WHERE last_ts >= ?1 ORDER BY name",
            )
            .bind(from)
            .fetch_all(&self.pool)
            .await?);
        };
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let row =
                sqlx::query_as("SELECT id, name FROM series WHERE name = ?1 AND last_ts >= ?2")
                    .bind(name.as_str())
                    .bind(from)
                    .fetch_optional(&self.pool)
                    .await?;
            found.extend(row);
        }
        found.sort_by(|a: &(i64, String), b| a.1.cmp(&b.1));
        found.dedup();
        Ok(found)
    }

    pub async fn signals(&self) -> Result<Vec<SignalInfo>, StoreError> {
        let rows: Vec<(String, i64, i64, f64)> = sqlx::query_as(
            "SELECT name, points, last_ts, last_value FROM series \
             WHERE last_ts IS NOT NULL ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(signal, points, last_timestamp, last_value)| SignalInfo {
                signal,
                points: u64::try_from(points).unwrap_or(0),
                last_timestamp,
                last_value,
            })
            .collect())
    }

    /// Deletes what retention no longer keeps, a few thousand rows per transaction so that the writer
    /// never waits long. Returns the rows deleted.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM series")
            .fetch_all(&self.pool)
            .await?;
        let tables = [
            ("points", "ts", now - self.retention.raw_ms),
            (
                table(Interval::Minute),
                "bucket",
                now - self.retention.minute_rollups_ms,
            ),
            (
                table(Interval::Hour),
                "bucket",
                now - self.retention.hour_rollups_ms,
            ),
        ];
        let mut deleted = 0;
        for (id,) in ids {
            for (table, time, cutoff) in tables {
                loop {
                    let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                    // The batch's last timestamp; with fewer than a batch left, the cutoff itself.
                    let sql = format!(
                        "DELETE FROM {table} WHERE series_id = ?1 AND {time} < ?2 AND {time} <= \
                         coalesce((SELECT {time} FROM {table} WHERE series_id = ?1 AND {time} < ?2 \
                                   ORDER BY {time} LIMIT 1 OFFSET ?3), ?2)"
                    );
                    let n = sqlx::query(&sql)
                        .bind(id)
                        .bind(cutoff)
                        .bind(EXPIRE_BATCH - 1)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if table == "points" && n > 0 {
                        sqlx::query("UPDATE series SET points = points - ?2 WHERE id = ?1")
                            .bind(id)
                            .bind(i64::try_from(n).unwrap_or(i64::MAX))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
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

    /// Copies committed pages from the WAL into the database file without waiting for anyone
    /// (PASSIVE), so the WAL stays small and commits never pay for it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// A rollup row's first, lowest, highest and last points as (timestamp, value) pairs.
type RollupPoints = (i64, f64, i64, f64, i64, f64, i64, f64);

fn table(interval: Interval) -> &'static str {
    match interval {
        Interval::Minute => "rollup_1m",
        Interval::Hour => "rollup_1h",
    }
}

/// The decimator and the stretches to read for `max_points` over `from..=to`: rollups wherever their
/// buckets are narrower than the answer's, with the answer's buckets aligned to theirs, so each rollup
/// bucket falls wholly inside one answer bucket and its extremes land where they belong.
fn decimation(from: i64, to: i64, max_points: usize) -> (Sink, Vec<(Source, i64, i64)>) {
    let buckets = (max_points / 4).max(1) as i64;
    let span = to - from + 1;
    let source = Source::for_width(span / buckets);
    if source == Source::Raw {
        return (
            Sink::Decimated(M4::over(from, to, max_points)),
            vec![(Source::Raw, from, to)],
        );
    }
    let r = source.interval();
    let origin = bucket(from, r);
    let per_bucket = (to + 1 - origin + r * buckets - 1) / (r * buckets);
    let m4 = M4::with_buckets(origin, per_bucket * r, max_points);
    (Sink::Decimated(m4), rollup::plan(source, from, to))
}

/// Appends the multi-row upsert of raw points (a later value for the same key replaces the earlier).
fn push_raw_insert(batch: &mut QueryBuilder<'_, Sqlite>, rows: &[(i64, i64, f64)]) {
    batch.push("INSERT INTO points (series_id, ts, value) ");
    batch.push_values(rows, |mut row, &(id, ts, value)| {
        row.push_bind(id).push_bind(ts).push_bind(value);
    });
    batch.push(" ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value; ");
}

/// Appends the statement that adds a write's deltas to rollup rows (or creates them).
fn push_rollup_merge(
    batch: &mut QueryBuilder<'_, Sqlite>,
    interval: Interval,
    merges: &[rollup::Merge],
) {
    batch.push(format!(
        "INSERT INTO {} (series_id, bucket, count, sum, low, low_ts, high, high_ts, \
         first, first_ts, last, last_ts) ",
        table(interval)
    ));
    batch.push_values(merges, |mut row, (id, start, a)| {
        row.push_bind(*id)
            .push_bind(*start)
            .push_bind(a.count)
            .push_bind(a.sum)
            .push_bind(a.low.1)
            .push_bind(a.low.0)
            .push_bind(a.high.1)
            .push_bind(a.high.0)
            .push_bind(a.first.1)
            .push_bind(a.first.0)
            .push_bind(a.last.1)
            .push_bind(a.last.0);
    });
    // Every right-hand side reads the row as it was before this update.
    batch.push(
        " ON CONFLICT (series_id, bucket) DO UPDATE SET \
          count = count + excluded.count, \
          sum = sum + excluded.sum, \
          low_ts = CASE WHEN excluded.low < low THEN excluded.low_ts ELSE low_ts END, \
          low = min(low, excluded.low), \
          high_ts = CASE WHEN excluded.high > high THEN excluded.high_ts ELSE high_ts END, \
          high = max(high, excluded.high), \
          first = CASE WHEN excluded.first_ts < first_ts THEN excluded.first ELSE first END, \
          first_ts = min(first_ts, excluded.first_ts), \
          last = CASE WHEN excluded.last_ts > last_ts THEN excluded.last ELSE last END, \
          last_ts = max(last_ts, excluded.last_ts); ",
    );
}

/// Rebuilds one rollup row from what it summarises: a minute from raw points, an hour from minutes.
async fn recompute_rollup(
    tx: &mut sqlx::SqliteConnection,
    interval: Interval,
    id: i64,
    start: i64,
) -> Result<(), StoreError> {
    let sql = match interval {
        Interval::Minute => {
            "INSERT OR REPLACE INTO rollup_1m \
             SELECT ?1, ?2, count(*), sum(value), \
               (SELECT value FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY value, ts LIMIT 1), \
               (SELECT ts FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY value, ts LIMIT 1), \
               (SELECT value FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY value DESC, ts LIMIT 1), \
               (SELECT ts FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY value DESC, ts LIMIT 1), \
               (SELECT value FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT 1), \
               min(ts), \
               (SELECT value FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts DESC LIMIT 1), \
               max(ts) \
             FROM points WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 HAVING count(*) > 0"
        }
        Interval::Hour => {
            "INSERT OR REPLACE INTO rollup_1h \
             SELECT ?1, ?2, sum(count), sum(sum), \
               (SELECT low FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY low, low_ts LIMIT 1), \
               (SELECT low_ts FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY low, low_ts LIMIT 1), \
               (SELECT high FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY high DESC, high_ts LIMIT 1), \
               (SELECT high_ts FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY high DESC, high_ts LIMIT 1), \
               (SELECT first FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket LIMIT 1), \
               min(first_ts), \
               (SELECT last FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket DESC LIMIT 1), \
               max(last_ts) \
             FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 HAVING count(*) > 0"
        }
    };
    sqlx::query(sql)
        .bind(id)
        .bind(start)
        .bind(start + interval.millis())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Appends the statement that adds each series' new raw points to its count and moves its last point
/// forward.
fn push_stats_update(batch: &mut QueryBuilder<'_, Sqlite>, stats: &[(i64, i64, (i64, f64))]) {
    batch.push(
        "UPDATE series SET points = points + d.added, \
           last_value = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.value ELSE last_value END, \
           last_ts = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.ts ELSE last_ts END \
         FROM (SELECT column1 AS id, column2 AS added, column3 AS ts, column4 AS value FROM (",
    );
    batch.push_values(stats, |mut row, &(id, added, (t, v))| {
        row.push_bind(id).push_bind(added).push_bind(t).push_bind(v);
    });
    batch.push(")) AS d WHERE series.id = d.id; ");
}

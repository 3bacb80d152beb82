//! SQLite: the embedded default. One file, WAL mode so reads never wait for the writer.

use super::block::{self, Packed, Points};
use super::lock::DatabaseLock;
use super::rollup::{self, bucket, Aggregate, Changes, Interval, Source, HOUR, MINUTE};
use super::{Durability, Hold, Range, Retention, Shape, Sink, StoreError, TokenRecord};
use crate::downsample::{bucket_points, M4};
use crate::model::{Series, SignalInfo};
use crate::server::domain::{DataPoint, SignalName, Timestamp};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
// Signal names come from clients: a seeded hash, but a fast one (each point is looked up).
use foldhash::HashMap;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads at once (of different requests): the pool's connections.
const CONCURRENT_READS: usize = 4;
/// Bound values a batch of statements sent to SQLite's thread holds at most. A usual write is one
/// batch, one round trip; a large one goes in several, so its memory stays small: 10,000 new signals
/// in one batch held 17 MB of bound values, and SQLite's compiled statements 19 MB more.
const BATCH_BINDS: usize = 8_192;
/// Bound values per row of a block upsert (`push_block_upsert`).
const BLOCK_BINDS: usize = 5;
/// Bound values per row of a rollup merge (`push_rollup_merge`).
const ROLLUP_BINDS: usize = 12;
/// Bound values per signal of a figures update (`push_stats_update`).
const STATS_BINDS: usize = 5;
/// Rows one retention transaction deletes: few, so the writer never waits long for the lock.
const EXPIRE_BATCH: i64 = 5_000;
/// Blocks one retention transaction deletes (~90 points each).
const EXPIRE_BLOCKS: i64 = 64;
/// Hours one packing transaction packs (see `SqliteStore::pack`).
const PACK_HOURS: i64 = 24;

/// Of series `$series`'s blocks, those that hold points in `$from..=$to`: those starting inside, and
/// the one before, which may reach in.
macro_rules! overlapping {
    ($series:literal, $from:literal, $to:literal) => {
        concat!(
            "b.series_id = ",
            $series,
            " AND b.first_ts <= ",
            $to,
            " AND b.first_ts >= coalesce(",
            "(SELECT first_ts FROM blocks WHERE series_id = ",
            $series,
            " AND first_ts <= ",
            $from,
            " ORDER BY first_ts DESC LIMIT 1), ",
            $from,
            ")"
        )
    };
}

/// The blocks of series ?1 that hold points in `?2..=?3`, in time order.
const BLOCKS_OVERLAPPING: &str = concat!(
    "SELECT b.first_ts, b.data FROM blocks b WHERE ",
    overlapping!("?1", "?2", "?3"),
    " ORDER BY b.first_ts"
);

/// IMMEDIATE takes the write lock up front. A deferred transaction that reads first (a tail or the
/// blocks late points fall into) could not upgrade to a writer after retention's deletes committed in
/// between: SQLite would refuse at once, not wait.
const BEGIN: &str = "BEGIN IMMEDIATE; ";

/// The writer's connection and whether it is inside a transaction. Most writes read nothing, so
/// `BEGIN` is only sent on a first read; otherwise it rides in the commit's batch. A write that fails
/// (or is dropped) midway leaves `begun` set, and the connection is closed rather than returned to
/// the pool: closing rolls the transaction back.
struct WriteTx {
    conn: PoolConnection<Sqlite>,
    begun: bool,
}

impl WriteTx {
    /// The connection, inside the transaction (begun now if it was not yet).
    async fn begun(&mut self) -> Result<&mut sqlx::SqliteConnection, StoreError> {
        if !self.begun {
            self.begun = true;
            sqlx::query(BEGIN).execute(&mut *self.conn).await?;
        }
        Ok(&mut self.conn)
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.begun {
            self.conn.close_on_drop();
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads: several connections, so requests are read side by side.
    pool: SqlitePool,
    /// Writes (the writer and retention): a connection of their own, so readers never hold up a
    /// commit by taking the last pooled connection. SQLite allows one writer at a time anyway.
    writes: SqlitePool,
    /// Signal name → `series.id`, so a write looks names up in memory, not in the database.
    /// Only filled after a commit, so it never holds an id that a rolled-back transaction invented.
    ids: Arc<Mutex<HashMap<Arc<str>, i64>>>,
    /// Series id → the points of its newest block (empty: no block yet), the block nearly every write
    /// appends to, so appending costs no read. Filled after commits; retention drops what it cuts.
    tails: Arc<tokio::sync::Mutex<HashMap<i64, Points>>>,
    retention: Retention,
    /// This process' hold on the file, released by `close`.
    lock: Arc<Mutex<Option<DatabaseLock>>>,
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        durability: Durability,
        retention: Retention,
        hold: Hold,
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
            .pragma("wal_autocheckpoint", "0")
            // After a burst, the WAL file is cut back to this size when it starts over.
            .pragma("journal_size_limit", "67108864");
        // `sqlite://data/signalboard.db` should work on a fresh clone: create the folder, not only the file.
        let file = options.get_filename();
        if let Some(dir) = file.parent() {
            if !dir.as_os_str().is_empty() {
                tokio::fs::create_dir_all(dir).await?;
            }
        }
        let lock = match (hold, file.to_str()) {
            (Hold::Shared, _) | (_, Some(":memory:")) => None,
            (Hold::Exclusive, _) => Some(DatabaseLock::acquire(file)?),
        };
        // No ping before each use: a SQLite connection is a file in this process, it cannot have gone
        // away, and each ping is a round trip to the connection's thread.
        let writes = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/server/store/migrations")
            .run(&writes)
            .await?;
        repack_rows(&writes).await?;
        // Rows come from SQLite's thread over a channel: with room for many (sqlx's default is 50), that
        // thread runs ahead instead of waiting to be woken row by row. A week of minute rollups (tens
        // of thousands of rows) reads a third faster; what may wait in it stays under a megabyte.
        let pool = SqlitePoolOptions::new()
            .max_connections(CONCURRENT_READS as u32)
            .test_before_acquire(false)
            .connect_with(options.row_buffer_size(4096))
            .await?;
        let ids: HashMap<Arc<str>, i64> = sqlx::query_as("SELECT name, id FROM series")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|(name, id): (String, i64)| (name.into(), id))
            .collect();
        Ok(SqliteStore {
            pool,
            writes,
            ids: Arc::new(Mutex::new(ids)),
            tails: Arc::default(),
            retention,
            lock: Arc::new(Mutex::new(lock)),
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
        // Held until the new tails are cached: retention, which may cut a tail, waits for it, so a
        // cached tail always matches its row.
        let mut tails = self.tails.lock().await;
        let mut tx = WriteTx {
            conn: self.writes.acquire().await?,
            begun: false,
        };
        let mut unknown: Vec<&str> = points
            .iter()
            .zip(&cached)
            .filter(|(_, cached)| cached.is_none())
            .map(|(point, _)| point.signal.as_str())
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        let fresh = if unknown.is_empty() {
            HashMap::default()
        } else {
            insert_series(tx.begun().await?, &unknown).await?
        };
        // Names missing from the cache are missing from the database (the cache holds every
        // committed name), so every id just returned belongs to a new signal.
        let created: foldhash::HashSet<i64> = fresh.values().copied().collect();
        let mut rows = Vec::with_capacity(points.len());
        for (point, cached) in points.iter().zip(cached) {
            let name = point.signal.as_str();
            let id = match cached.or_else(|| fresh.get(name).copied()) {
                Some(id) => id,
                None => {
                    return Err(StoreError::damaged(sqlx::Error::RowNotFound));
                }
            };
            rows.push((id, point.timestamp.millis(), point.value.get()));
        }
        // Of two points with the same key in one batch the later one wins, as it would in two requests.
        rows.sort_by_key(|&(id, ts, _)| (id, ts));
        let mut unique: Vec<(i64, i64, f64)> = Vec::with_capacity(rows.len());
        for row in rows {
            match unique.last_mut() {
                Some(last) if (last.0, last.1) == (row.0, row.1) => *last = row,
                _ => unique.push(row),
            }
        }

        let raw_cutoff = Timestamp::now().millis() - self.retention.raw_ms;
        let mut changes = Changes::default();
        let mut blocks: Vec<(i64, Packed)> = Vec::new();
        let mut new_tails: Vec<(i64, Points)> = Vec::new();
        let mut stats: Vec<Stats> = Vec::new();
        for series in unique.chunk_by(|a, b| a.0 == b.0) {
            let id = series[0].0;
            let mut raw: Points = Vec::with_capacity(series.len());
            for &(_, t, v) in series {
                if t < raw_cutoff {
                    // Older than raw retention: kept in the rollups only (backfill).
                    changes.added(id, t, v);
                } else {
                    raw.push((t, v));
                }
            }
            let mut replaced = Vec::new();
            if !raw.is_empty() {
                let tail = match tails.get(&id) {
                    Some(tail) => tail.clone(),
                    // A signal created by this write has no block yet: nothing to read.
                    None if created.contains(&id) => Points::new(),
                    None => load_tail(tx.begun().await?, id).await?,
                };
                let (packed, tail) = place(&mut tx, id, tail, &raw, &mut replaced).await?;
                blocks.extend(packed.into_iter().map(|b| (id, b)));
                new_tails.extend(tail.map(|tail| (id, tail)));
            }
            // `merge` reports replaced timestamps in ascending order.
            for &(t, v) in &raw {
                if replaced.binary_search(&t).is_ok() {
                    changes.replaced(id, t);
                } else {
                    changes.added(id, t, v);
                }
            }
            stats.push(Stats {
                id,
                added: (raw.len() - replaced.len()) as i64,
                oldest_hour: bucket(series[0].1, HOUR),
                newest: (series[series.len() - 1].1, series[series.len() - 1].2),
            });
        }

        // Blocks, rollup deltas and signal figures go to SQLite as multi-statement batches (`Batch`):
        // a round trip to sqlx's SQLite thread per batch instead of one per statement. Unless
        // something had to be read or must be recomputed inside the transaction (rare), the first
        // batch also begins it and the last commits it.
        let recompute = !changes.stale_minutes.is_empty() || !changes.stale_hours.is_empty();
        let whole = !tx.begun && !recompute;
        let conn = if whole {
            tx.begun = true;
            &mut *tx.conn
        } else {
            tx.begun().await?
        };
        let mut batch = Batch::new(if whole { BEGIN } else { "" });
        batch
            .statements(conn, &blocks, BLOCK_BINDS, push_block_upsert)
            .await?;
        for (interval, merges) in changes.merges() {
            let push = |sql: &mut _, chunk: &[_]| push_rollup_merge(sql, interval, chunk);
            batch.statements(conn, &merges, ROLLUP_BINDS, push).await?;
        }
        batch
            .statements(conn, &stats, STATS_BINDS, push_stats_update)
            .await?;
        if whole {
            batch.sql.push("COMMIT;");
            batch.send(conn).await?;
        } else {
            batch.send(conn).await?;
            // Buckets where a point was replaced. Minutes first, since an hour is rebuilt from them.
            for &(id, start) in &changes.stale_minutes {
                recompute_minute(conn, id, start).await?;
            }
            for &(id, start) in &changes.stale_hours {
                recompute_hour(conn, id, start).await?;
            }
            sqlx::query("COMMIT").execute(&mut *conn).await?;
        }
        tx.begun = false;

        tails.extend(new_tails);
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.extend(fresh.into_iter().map(|(name, id)| (name.into(), id)));
        Ok(())
    }

    /// Reads a range stretch by stretch (raw points, or minute or hour rollups), each in one query
    /// for every signal: a round trip to SQLite's thread costs more than the rows of an hour.
    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        let (from, to) = (range.from.millis(), range.to.millis());
        let (empty, stretches, limit) = match shape {
            // Raw reads stop one point past the limit, so the caller can tell "more than the limit".
            Shape::Raw { limit } => (
                Sink::Raw(Vec::new(), Vec::new()),
                vec![(Source::Raw, from, to)],
                limit.saturating_add(1),
            ),
            Shape::Decimated { max_points } => {
                let now = Timestamp::now().millis();
                let finest_at = |t| self.retention.finest_at(t, now);
                let (sink, stretches) = decimation(from, to, max_points, finest_at);
                (sink, stretches, usize::MAX)
            }
        };
        let from_rollups = stretches.iter().any(|(source, ..)| *source != Source::Raw);
        let named = match &range.signals {
            Some(names) => Some(
                serde_json::to_string(&names.iter().map(|n| n.as_str()).collect::<Vec<_>>())
                    .map_err(StoreError::damaged)?,
            ),
            None => None,
        };
        let mut answer = Answer {
            sinks: BTreeMap::new(),
            empty,
            left: limit,
            from,
            to,
        };
        // One snapshot for the whole read: the packed and the unpacked minutes of a stretch are split
        // at each signal's packing mark, which a write or the packer may move in between.
        let mut tx = self.pool.begin().await?;
        for (source, start, end) in stretches {
            let bounds = (start, end, named.as_deref());
            let sql = stretch_sql(source, named.is_some());
            match source {
                Source::Raw => answer.runs(&mut tx, &sql, bounds).await?,
                Source::Rollup(interval) => {
                    // Packed hours come before the mark, minute rows after: in time order.
                    if interval == Interval::Minute {
                        let packed = packed_minutes_sql(named.is_some());
                        answer.runs(&mut tx, &packed, bounds).await?;
                    }
                    answer.rollups(&mut tx, &sql, bounds).await?;
                }
            }
            if answer.left == 0 {
                break;
            }
        }
        tx.commit().await?;
        let Answer { sinks, .. } = answer;
        Ok(sinks
            .into_iter()
            .filter_map(|(signal, sink)| {
                let (timestamps, values, decimated) = sink.finish();
                (!timestamps.is_empty()).then_some(Series {
                    signal,
                    timestamps,
                    values,
                    downsampled: decimated || from_rollups,
                })
            })
            .collect())
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

    /// Deletes what retention no longer keeps, in small transactions so that the writer never waits
    /// long. Returns the points and rollup rows deleted.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM series")
            .fetch_all(&self.pool)
            .await?;
        let minutes = now - self.retention.minute_rollups_ms;
        let rollups = [
            (table(Interval::Minute), minutes),
            // An hour is kept packed while any of its minutes is kept.
            ("minutes_packed", minutes - HOUR),
            (table(Interval::Hour), now - self.retention.hour_rollups_ms),
        ];
        let mut deleted = 0;
        for (id,) in ids {
            deleted += self.expire_points(id, now - self.retention.raw_ms).await?;
            for (table, cutoff) in rollups {
                // Looked for on a reading connection first: a pass that finds nothing to delete (the
                // common case, for most signals) takes no write lock at all.
                let any: Option<(i64,)> = sqlx::query_as(&format!(
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

    /// Packs the minutes of closed hours (see 0004's migration), each signal from its packing mark on,
    /// a day at a time per transaction so the writer never waits long. The current hour and the one
    /// before stay minute rows: late points for them are common (a producer's retries), and each one
    /// sends the mark back. Returns the hours packed.
    pub async fn pack(&self, now: i64) -> Result<u64, StoreError> {
        let limit = bucket(now, HOUR) - HOUR;
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM series WHERE packed_to IS NULL OR packed_to < ?1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        let mut packed = 0;
        for (id,) in ids {
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
                let hours = minutes.chunk_by(|a, b| bucket(a.0, HOUR) == bucket(b.0, HOUR));
                let hours: Vec<(i64, Vec<u8>)> = hours
                    .map(|hour| {
                        let start = bucket(hour[0].0, HOUR);
                        let points: Points = hour
                            .iter()
                            .flat_map(|m| {
                                bucket_points([(m.0, m.1), (m.2, m.3), (m.4, m.5), (m.6, m.7)])
                            })
                            .collect();
                        (start, block::pack_run(start, &points))
                    })
                    .collect();
                let mut batch = QueryBuilder::<Sqlite>::new("");
                if !hours.is_empty() {
                    batch.push("INSERT INTO minutes_packed (series_id, bucket, data) ");
                    batch.push_values(&hours, |mut row, (start, data)| {
                        row.push_bind(id).push_bind(*start).push_bind(data.clone());
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

    /// Deletes one series' raw points older than `cutoff`: whole blocks a few at a time, then the part
    /// of the block that straddles the cutoff. Returns the points deleted.
    async fn expire_points(&self, id: i64, cutoff: i64) -> Result<u64, StoreError> {
        let oldest: Option<(i64,)> = sqlx::query_as(
            "SELECT first_ts FROM blocks WHERE series_id = ?1 ORDER BY first_ts LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        if oldest.is_none_or(|(first,)| first >= cutoff) {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let mut tails = self.tails.lock().await;
            let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
            // Blocks never overlap, so those wholly before the cutoff come first.
            let counts: Vec<(i64,)> = sqlx::query_as(
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
            let mut n: i64 = counts.iter().map(|c| c.0).sum();
            if !whole {
                n += cut_block(&mut tx, id, cutoff).await?;
            }
            if n > 0 {
                sqlx::query("UPDATE series SET points = points - ?2 WHERE id = ?1")
                    .bind(id)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                tails.remove(&id);
            }
            tx.commit().await?;
            drop(tails);
            deleted += u64::try_from(n).unwrap_or(0);
            if !whole {
                return Ok(deleted);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Copies committed pages from the WAL into the database file without waiting for anyone
    /// (PASSIVE), so the WAL stays small and commits never pay for it.
    ///
    /// Under steady writes that pass never catches up: the writer commits more while it copies, and
    /// SQLite only starts the WAL over once every frame is copied. The WAL would grow for as long as
    /// the load lasts (half a gigabyte a minute at full speed), every commit extending the file. So a
    /// second pass runs on the writer's own connection, between two commits: it copies only what was
    /// committed during the first, and the next commit starts the WAL over at its beginning, writing
    /// into file pages the system already holds.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        for connections in [&self.pool, &self.writes] {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(connections)
                .await?;
        }
        Ok(())
    }

    /// Closes every connection, the writer's last: SQLite's last close checkpoints the WAL and removes
    /// it. sqlx's `Pool::close` can return while a connection is still on its way back to the pool (in
    /// the task its drop spawned), and one that lands there afterwards is never closed (sqlx issue
    /// #3217): so close again until none is left, for a few seconds at most.
    pub async fn close(&self) {
        for pool in [&self.pool, &self.writes] {
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                while pool.size() > 0 {
                    pool.close().await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            if closed.await.is_err() {
                tracing::warn!("a database connection was still open five seconds after closing");
            }
        }
        self.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub fn count_new_signals<'a>(&self, names: impl Iterator<Item = &'a SignalName>) -> usize {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        let mut new: foldhash::HashSet<&str> = foldhash::HashSet::default();
        for name in names {
            if !ids.contains_key(name.as_str()) {
                new.insert(name.as_str());
            }
        }
        new.len()
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    pub fn signal_count(&self) -> usize {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub async fn create_token(&self, token: &TokenRecord) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO tokens (name, scope, sha256, created_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&token.name)
        .bind(&token.scope)
        .bind(&token.sha256)
        .bind(token.created_ms)
        .execute(&self.writes)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let tokens =
            sqlx::query_as("SELECT name, scope, sha256, created_ms FROM tokens ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(tokens)
    }

    pub async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM tokens WHERE name = ?1")
            .bind(name)
            .execute(&self.writes)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The ids of `names` in `series`, each inserted unless it is there already: a statement per
/// `BATCH_BINDS` names, not a round trip per name (100,000 new signals held the writer 6.5 s).
async fn insert_series<'a>(
    conn: &mut sqlx::SqliteConnection,
    names: &[&'a str],
) -> Result<HashMap<&'a str, i64>, StoreError> {
    let mut ids = HashMap::default();
    for chunk in names.chunks(BATCH_BINDS) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO series (name) ");
        insert.push_values(chunk, |mut row, name| {
            row.push_bind(*name);
        });
        // The no-op update makes RETURNING yield the id whether the row is new or not.
        insert.push(" ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING name, id");
        let rows: Vec<(String, i64)> = insert.build_query_as().fetch_all(&mut *conn).await?;
        for (name, id) in rows {
            // RETURNING gives rows in no stated order: matched back by name.
            let at = chunk.binary_search(&name.as_str()).map_err(|_| {
                StoreError::damaged(sqlx::Error::Protocol(format!(
                    "inserting signals returned one not asked for: {name:?}"
                )))
            })?;
            ids.insert(chunk[at], id);
        }
    }
    Ok(ids)
}

/// A rollup row's signal, and its first, lowest, highest and last points as timestamps and values.
type RollupPoints = (String, i64, f64, i64, f64, i64, f64, i64, f64);

/// A rollup row's first, lowest, highest and last points as timestamps and values.
type Extremes = (i64, f64, i64, f64, i64, f64, i64, f64);

/// A stretch of a range: `start..=end`, and the signals asked for (a JSON array), or `None` for all.
type Bounds<'a> = (i64, i64, Option<&'a str>);

/// A range read's answer as it is collected: one sink per signal, by name as the answer lists them.
struct Answer {
    sinks: BTreeMap<String, Sink>,
    /// A new signal's sink.
    empty: Sink,
    /// Points still to read before a raw read stops.
    left: usize,
    /// The range asked for: a stretch may reach out of it to read whole rollup buckets.
    from: i64,
    to: i64,
}

impl Answer {
    /// Adds the points within the stretch of each packed run of points (raw blocks, or packed hours
    /// of minutes) that `sql` selects as (signal, the run's origin, its bytes).
    async fn runs(
        &mut self,
        db: &mut sqlx::SqliteConnection,
        sql: &str,
        (start, end, named): Bounds<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query_as::<_, (String, i64, Vec<u8>)>(sql)
            .bind(start)
            .bind(end)
            .bind(named)
            .fetch(db);
        let (start, end) = (start.max(self.from), end.min(self.to));
        let mut points = Vec::new();
        while let Some((name, first, data)) = rows.try_next().await? {
            let sink = self.sinks.entry(name).or_insert_with(|| self.empty.clone());
            for &(t, v) in points_within(first, &data, start, end, &mut points)? {
                sink.push(t, v);
                self.left -= 1;
                if self.left == 0 {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Adds the first, lowest, highest and last points of each rollup row `sql` selects.
    async fn rollups(
        &mut self,
        db: &mut sqlx::SqliteConnection,
        sql: &str,
        (start, end, named): Bounds<'_>,
    ) -> Result<(), StoreError> {
        let mut rows = sqlx::query_as::<_, RollupPoints>(sql)
            .bind(start)
            .bind(end)
            .bind(named)
            .fetch(db);
        while let Some(r) = rows.try_next().await? {
            let sink = self.sinks.entry(r.0).or_insert_with(|| self.empty.clone());
            for (t, v) in bucket_points([(r.1, r.2), (r.3, r.4), (r.5, r.6), (r.7, r.8)]) {
                if (self.from..=self.to).contains(&t) {
                    sink.push(t, v);
                }
            }
        }
        Ok(())
    }
}

/// The SQL choosing signals for a stretch's query: every signal, or (`named`) those in the JSON
/// array ?3.
fn signals_sql(named: bool) -> &'static str {
    if named {
        "s.name IN (SELECT value FROM json_each(?3))"
    } else {
        "?3 IS NULL"
    }
}

/// The query for one stretch of a range read from `source`, over `?1..=?2`, for the signals chosen
/// (`signals_sql`) with points since ?1: rows by name, then by time. Minute rows are read from each
/// signal's packing mark on.
fn stretch_sql(source: Source, named: bool) -> String {
    let signals = signals_sql(named);
    match source {
        Source::Raw => format!(
            "SELECT s.name, b.first_ts, b.data FROM series s JOIN blocks b ON {} \
             WHERE s.last_ts >= ?1 AND {signals} ORDER BY s.name, b.first_ts",
            overlapping!("s.id", "?1", "?2")
        ),
        Source::Rollup(interval) => {
            let from = match interval {
                Interval::Minute => "max(?1, coalesce(s.packed_to, ?1))",
                Interval::Hour => "?1",
            };
            format!(
                "SELECT s.name, r.first_ts, r.first, r.low_ts, r.low, r.high_ts, r.high, r.last_ts, \
                 r.last FROM series s JOIN {} r ON r.series_id = s.id AND r.bucket >= {from} \
                 AND r.bucket <= ?2 WHERE s.last_ts >= ?1 AND {signals} ORDER BY s.name, r.bucket",
                table(interval)
            )
        }
    }
}

/// The packed hours before each signal's packing mark that reach into `?1..=?2`, as `stretch_sql`
/// chooses signals and orders rows.
fn packed_minutes_sql(named: bool) -> String {
    format!(
        "SELECT s.name, p.bucket, p.data FROM series s JOIN minutes_packed p \
         ON p.series_id = s.id AND p.bucket > ?1 - {HOUR} AND p.bucket <= ?2 AND p.bucket < s.packed_to \
         WHERE s.last_ts >= ?1 AND {} ORDER BY s.name, p.bucket",
        signals_sql(named)
    )
}

fn table(interval: Interval) -> &'static str {
    match interval {
        Interval::Minute => "rollup_1m",
        Interval::Hour => "rollup_1h",
    }
}

/// The decimator and the stretches to read for `max_points` over `from..=to`: rollups wherever their
/// buckets are narrower than the answer's, with the answer's buckets aligned to theirs, so each rollup
/// bucket falls wholly inside one answer bucket and its extremes land where they belong.
///
/// Where retention kept only coarser data (`finest_at`), that is read instead: the rollup kept at
/// `from` at least, and the range's ends widened to whole buckets of what is kept there, since finer
/// data for its ragged ends is gone. The answer still holds only points within `from..=to`.
fn decimation(
    from: i64,
    to: i64,
    max_points: usize,
    finest_at: impl Fn(i64) -> Source,
) -> (Sink, Vec<(Source, i64, i64)>) {
    let buckets = (max_points / 4).max(1) as i64;
    let span = to - from + 1;
    let source = Source::for_width(span / buckets).max(finest_at(from));
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
    let kept = |t: i64| finest_at(t).interval();
    let (from, to) = (
        bucket(from, kept(from)),
        bucket(to, kept(to)) + kept(to) - 1,
    );
    (Sink::Decimated(m4), rollup::plan(source, from, to))
}

/// Statements queued for one transaction, sent in batches of at most `BATCH_BINDS` bound values.
struct Batch {
    sql: QueryBuilder<'static, Sqlite>,
    binds: usize,
}

impl Batch {
    fn new(start: &str) -> Batch {
        Batch {
            sql: QueryBuilder::new(start),
            binds: 0,
        }
    }

    /// Queues the multi-row statements `push` writes for `rows`, each of `binds_per_row` bound
    /// values, as many rows to a statement as a batch holds, sending what is queued whenever the
    /// next statement would not fit.
    async fn statements<T>(
        &mut self,
        conn: &mut sqlx::SqliteConnection,
        rows: &[T],
        binds_per_row: usize,
        push: impl Fn(&mut QueryBuilder<'static, Sqlite>, &[T]),
    ) -> Result<(), StoreError> {
        for chunk in rows.chunks(BATCH_BINDS / binds_per_row) {
            let binds = chunk.len() * binds_per_row;
            if self.binds > 0 && self.binds + binds > BATCH_BINDS {
                self.send(conn).await?;
            }
            self.binds += binds;
            push(&mut self.sql, chunk);
        }
        Ok(())
    }

    async fn send(&mut self, conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        let mut sql = std::mem::replace(&mut self.sql, QueryBuilder::new(""));
        self.binds = 0;
        sql.build().execute(conn).await?;
        Ok(())
    }
}

/// Appends the multi-row upsert of blocks (a block rewritten with more points replaces its row).
fn push_block_upsert(batch: &mut QueryBuilder<'_, Sqlite>, blocks: &[(i64, Packed)]) {
    batch.push("INSERT INTO blocks (series_id, first_ts, last_ts, count, data) ");
    batch.push_values(blocks, |mut row, (id, b)| {
        row.push_bind(*id)
            .push_bind(b.first)
            .push_bind(b.last)
            .push_bind(b.count)
            .push_bind(b.data.clone());
    });
    batch.push(
        " ON CONFLICT (series_id, first_ts) DO UPDATE SET \
          last_ts = excluded.last_ts, count = excluded.count, data = excluded.data; ",
    );
}

/// The first hour of series `id` at or after its packing mark that has minutes: hours without
/// any (before the first, or in a gap) are skipped, not walked through.
async fn first_unpacked_hour<'c, E>(db: E, id: i64) -> Result<Option<i64>, StoreError>
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

/// Calls `f` with each point of one series in `from..=to`, in time order, until it returns false.
async fn each_point<'c, E>(
    db: E,
    id: i64,
    from: i64,
    to: i64,
    mut f: impl FnMut(i64, f64) -> bool,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut rows = sqlx::query_as::<_, (i64, Vec<u8>)>(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch(db);
    let mut points = Vec::new();
    while let Some((first, data)) = rows.try_next().await? {
        for &(t, v) in points_within(first, &data, from, to, &mut points)? {
            if !f(t, v) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The points in `from..=to` of the stored block that starts at `first`, unpacked into `buffer`.
fn points_within<'b>(
    first: i64,
    data: &[u8],
    from: i64,
    to: i64,
    buffer: &'b mut Points,
) -> Result<&'b [(i64, f64)], StoreError> {
    buffer.clear();
    block::unpack(first, data, buffer)?;
    // A block's points are in time order.
    let (start, end) = (
        buffer.partition_point(|p| p.0 < from),
        buffer.partition_point(|p| p.0 <= to),
    );
    Ok(&buffer[start..end])
}

/// The blocks of one series that hold points in `from..=to`, unpacked, each with its start.
async fn blocks_overlapping(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Points)>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter()
        .map(|(first, data)| {
            let mut points = Vec::new();
            block::unpack(first, &data, &mut points)?;
            Ok((first, points))
        })
        .collect()
}

/// The points of a series' newest block (empty if it has none).
async fn load_tail(tx: &mut sqlx::SqliteConnection, id: i64) -> Result<Points, StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 ORDER BY first_ts DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let mut points = Vec::new();
    if let Some((first, data)) = row {
        block::unpack(first, &data, &mut points)?;
    }
    Ok(points)
}

/// Places one series' new raw points (ascending, unique) into its blocks: merged into the block each
/// belongs to (its tail, for points in time order; blocks read back only for late points), repacked,
/// with replaced timestamps added to `replaced`. Returns the blocks to store, and the new tail if the
/// tail changed.
async fn place(
    tx: &mut WriteTx,
    id: i64,
    tail: Points,
    new: &[(i64, f64)],
    replaced: &mut Vec<i64>,
) -> Result<(Vec<Packed>, Option<Points>), StoreError> {
    let oldest_new = new[0].0;
    let mut blocks: Vec<(i64, Points)> = match tail.first() {
        Some(&(tail_start, _)) if oldest_new < tail_start => {
            let mut older =
                blocks_overlapping(tx.begun().await?, id, oldest_new, tail_start - 1).await?;
            older.push((tail_start, tail));
            older
        }
        Some(&(tail_start, _)) => vec![(tail_start, tail)],
        None => vec![(oldest_new, Vec::new())],
    };
    // Points older than every block start a block of their own.
    if oldest_new < blocks[0].0 {
        blocks.insert(0, (oldest_new, Vec::new()));
    }
    let (mut packed, mut new_tail) = (Vec::new(), None);
    let mut rest = new;
    for (k, (_, old)) in blocks.iter().enumerate() {
        let next = blocks.get(k + 1).map_or(i64::MAX, |b| b.0);
        let (mine, after) = rest.split_at(rest.partition_point(|p| p.0 < next));
        rest = after;
        if mine.is_empty() {
            continue;
        }
        let merged = block::merge(old, mine, replaced);
        let pieces = block::pack(&merged);
        if k + 1 == blocks.len() {
            let last = pieces.last().map_or(0, |b| b.count as usize);
            new_tail = Some(merged[merged.len() - last..].to_vec());
        }
        packed.extend(pieces);
    }
    Ok((packed, new_tail))
}

/// Cuts the points before `cutoff` from the one block of a series that straddles it. Returns the
/// points cut.
async fn cut_block(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    cutoff: i64,
) -> Result<i64, StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 AND first_ts < ?2 AND last_ts >= ?2",
    )
    .bind(id)
    .bind(cutoff)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((first, data)) = row else {
        return Ok(0);
    };
    let mut points = Vec::new();
    block::unpack(first, &data, &mut points)?;
    let cut = points.partition_point(|p| p.0 < cutoff);
    let mut batch = QueryBuilder::<Sqlite>::new("DELETE FROM blocks WHERE series_id = ");
    batch
        .push_bind(id)
        .push(" AND first_ts = ")
        .push_bind(first)
        .push("; ");
    let rest: Vec<(i64, Packed)> = block::pack(&points[cut..])
        .into_iter()
        .map(|b| (id, b))
        .collect();
    push_block_upsert(&mut batch, &rest);
    batch.build().execute(&mut *tx).await?;
    Ok(cut as i64)
}

/// Databases written before blocks (migration 0001) kept a row per point: packs them into blocks once,
/// in one transaction, and drops the old table.
async fn repack_rows(pool: &SqlitePool) -> Result<(), StoreError> {
    let legacy: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'points'")
            .fetch_optional(pool)
            .await?;
    if legacy.is_none() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT DISTINCT series_id FROM points")
        .fetch_all(&mut *tx)
        .await?;
    let signals = ids.len();
    for (id,) in ids {
        let points: Points =
            sqlx::query_as("SELECT ts, value FROM points WHERE series_id = ?1 ORDER BY ts")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let blocks: Vec<(i64, Packed)> =
            block::pack(&points).into_iter().map(|b| (id, b)).collect();
        let mut batch = Batch::new("");
        batch
            .statements(&mut tx, &blocks, BLOCK_BINDS, push_block_upsert)
            .await?;
        batch.send(&mut tx).await?;
    }
    sqlx::query("DROP TABLE points").execute(&mut *tx).await?;
    tx.commit().await?;
    // A new database passes through migration 0001 too: only a real repacking is worth a line.
    if signals > 0 {
        tracing::info!(signals, "repacked stored points into blocks");
    }
    Ok(())
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

/// Rebuilds a minute's rollup row from the raw points, after one of them was replaced.
async fn recompute_minute(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    start: i64,
) -> Result<(), StoreError> {
    let mut minute: Option<Aggregate> = None;
    each_point(&mut *tx, id, start, start + MINUTE - 1, |t, v| {
        match &mut minute {
            Some(a) => a.add(t, v),
            None => minute = Some(Aggregate::of(t, v)),
        }
        true
    })
    .await?;
    let Some(minute) = minute else { return Ok(()) };
    // Merging into no row at all stores the aggregate as it is.
    let mut batch = QueryBuilder::<Sqlite>::new("DELETE FROM rollup_1m WHERE series_id = ");
    batch
        .push_bind(id)
        .push(" AND bucket = ")
        .push_bind(start)
        .push("; ");
    push_rollup_merge(&mut batch, Interval::Minute, &[(id, start, minute)]);
    batch.build().execute(&mut *tx).await?;
    Ok(())
}

/// Rebuilds an hour's rollup row from its minutes.
async fn recompute_hour(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    start: i64,
) -> Result<(), StoreError> {
    sqlx::query(
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
         FROM rollup_1m WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 HAVING count(*) > 0",
    )
    .bind(id)
    .bind(start)
    .bind(start + HOUR)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What one write changes in a series' row.
struct Stats {
    id: i64,
    /// Raw points added (not replacing stored ones).
    added: i64,
    /// The start of the oldest hour written into: its minutes may have changed.
    oldest_hour: i64,
    /// The newest point written.
    newest: (i64, f64),
}

/// Appends the statement that adds each series' new raw points to its count, moves its last point
/// forward, and moves its packing mark back to the oldest hour written into (see 0004's migration).
fn push_stats_update(batch: &mut QueryBuilder<'_, Sqlite>, stats: &[Stats]) {
    batch.push(
        "UPDATE series SET points = points + d.added, \
           last_value = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.value ELSE last_value END, \
           last_ts = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.ts ELSE last_ts END, \
           packed_to = CASE WHEN packed_to > d.hour THEN d.hour ELSE packed_to END \
         FROM (SELECT column1 AS id, column2 AS added, column3 AS ts, column4 AS value, \
                      column5 AS hour FROM (",
    );
    batch.push_values(stats, |mut row, s| {
        row.push_bind(s.id)
            .push_bind(s.added)
            .push_bind(s.newest.0)
            .push_bind(s.newest.1)
            .push_bind(s.oldest_hour);
    });
    batch.push(")) AS d WHERE series.id = d.id; ");
}

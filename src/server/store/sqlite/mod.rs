//! SQLite: the embedded default. One file, WAL mode so reads never wait for the writer. The store is
//! split by operation: opening and the small queries here, `write.rs` (a group commit in named
//! steps), `journal.rs` (where writes wait to be folded into blocks), `read.rs` (ranges, raw or decimated), `blocks.rs` (raw points packed in blocks, in and out),
//! `built.rs` (rollups built from the blocks once their hour closes), `retention.rs`, `pack.rs`
//! (closed hours' minutes in one row, and back) and `legacy.rs` (what an old database needs once).

use super::block::{self, Packed, Points};
use super::ids::SeriesIds;
use super::lock::DatabaseLock;
use super::rollup::{self, bucket, Aggregate, Changes, Interval, Source, HOUR, MINUTE};
use super::rows::{Extremes, SERIES_SQL};
use super::{Durability, Hold, Range, Retention, SeriesId, Shape, StoreError, StoreSize};
use crate::downsample::TimeValue;
use crate::model::Series;
use crate::server::clock::SharedClock;
use blocks::{
    append, blocks_from, cut_block, for_each_series, merge_into, points_within, push_series_from,
    Append, Known, Placement, SeriesFrom, SeriesStoredBlock, Tail, Tails, Unpack,
    SERIES_FROM_BINDS,
};
use built::Marks;
use futures::TryStreamExt;
use journal::{Journal, WriteState};
use pack::PackedBefore;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use write::{push_block_upsert, Batch, SeriesBlock, BLOCK_BINDS};
// Signal names come from clients: a seeded hash, but a fast one (each point is looked up).
use foldhash::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Reads at once (of different requests): the pool's connections.
const CONCURRENT_READS: usize = 4;

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

// Declared after `overlapping!`, which they use.
mod blocks;
mod built;
mod journal;
mod legacy;
mod pack;
mod read;
mod retention;
mod write;

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

/// Frames the WAL may hold before a checkpoint holds up the writer to start it over: 64 MiB of
/// 4 KiB pages, as `journal_size_limit` cuts it back to.
const WAL_FRAMES: i64 = 16_384;

/// What `PRAGMA wal_checkpoint` reports: frames in the WAL, and how many of them are copied.
#[derive(sqlx::FromRow)]
struct Checkpointed {
    log: i64,
    checkpointed: i64,
}

impl Checkpointed {
    /// Every frame copied: the next commit starts the WAL over.
    fn all(&self) -> bool {
        self.checkpointed == self.log
    }

    /// Frames left over, in a WAL past `WAL_FRAMES`: a pass must hold the writes up to catch up.
    fn is_long(&self) -> bool {
        !self.all() && self.log > WAL_FRAMES
    }
}

/// Copies committed pages from a WAL into its database file without waiting for anyone (PASSIVE),
/// so the WAL stays small and commits never pay for it.
///
/// SQLite starts the WAL over at the first commit after every frame is copied. Under steady
/// writes a pass rarely gets there: the writer commits more while it copies. A second pass
/// copies only what came meanwhile and usually gets there. If the WAL still grows past
/// `WAL_FRAMES` (it would for as long as the load lasts, every commit extending the file), the
/// caller runs a pass with the writes held up: the database's when frames are left over
/// (`Checkpointed::is_long`), the journal's whenever the WAL is that long (`Journal::checkpoint`).
async fn passes(connections: &SqlitePool) -> Result<Checkpointed, StoreError> {
    let copied = pass(connections).await?;
    if copied.all() {
        return Ok(copied);
    }
    pass(connections).await
}

async fn pass(connections: &SqlitePool) -> Result<Checkpointed, StoreError> {
    let copied = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(connections)
        .await?;
    Ok(copied)
}

#[derive(Clone)]
pub struct SqliteStore {
    /// Reads: several connections, so requests are read side by side.
    pub(super) pool: SqlitePool,
    /// Writes (the writer and retention): a connection of their own, so readers never hold up a
    /// commit by taking the last pooled connection. SQLite allows one writer at a time anyway.
    pub(super) writes: SqlitePool,
    /// Signal name → `series.id`, so a write looks names up in memory, not in the database.
    /// Only filled after a commit, so it never holds an id that a rolled-back transaction invented.
    pub(super) ids: Arc<SeriesIds>,
    /// The newest block and rollups mark of each series, as committed.
    state: Arc<tokio::sync::Mutex<WriteState>>,
    pub(super) retention: Retention,
    clock: SharedClock,
    /// This process' hold on the file, released by `close`.
    lock: Arc<Mutex<Option<DatabaseLock>>>,
    /// Where writes wait to be folded (`journal.rs`). Only with `Hold::Exclusive`: the server's
    /// store, whose memory holds the newest blocks; a `token` command's store beside it leaves the
    /// journal alone.
    journal: Option<Journal>,
    /// Where packed spans end, so a write knows whether it may land in one.
    packed_before: Arc<PackedBefore>,
}

impl SqliteStore {
    pub async fn open(
        url: &str,
        durability: Durability,
        retention: Retention,
        hold: Hold,
        clock: SharedClock,
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
        sqlx::migrate!("src/server/store/sqlite/migrations")
            .run(&writes)
            .await?;
        legacy::repack_rows(&writes).await?;
        // Rows come from SQLite's thread over a channel: with room for many (sqlx's default is 50), that
        // thread runs ahead instead of waiting to be woken row by row. A week of minute rollups (tens
        // of thousands of rows) reads a third faster; what may wait in it stays under a megabyte.
        // A read touches few pages, and the system keeps the file's pages anyway: a 4 MiB page cache
        // each, as listing 100,000 signals filled 16 MiB in every reading connection it took.
        let reads = options
            .clone()
            .row_buffer_size(4096)
            .pragma("cache_size", "-4096");
        let pool = SqlitePoolOptions::new()
            .max_connections(CONCURRENT_READS as u32)
            .test_before_acquire(false)
            .connect_with(reads)
            .await?;
        let ids = SeriesIds::of(sqlx::query_as(SERIES_SQL).fetch_all(&pool).await?);
        let packed_before = PackedBefore::load(&pool).await?;
        let state = WriteState {
            marks: Marks::load(&pool).await?,
            ..WriteState::default()
        };
        let journal = match hold {
            Hold::Exclusive => {
                let journal = Journal::open(&options).await?;
                legacy::move_journal(&writes, &journal).await?;
                journal.load().await?;
                Some(journal)
            }
            Hold::Shared => None,
        };
        let store = SqliteStore {
            pool,
            writes,
            ids: Arc::new(ids),
            state: Arc::new(tokio::sync::Mutex::new(state)),
            retention,
            clock,
            lock: Arc::new(Mutex::new(lock)),
            journal,
            packed_before: Arc::new(packed_before),
        };
        store.settle().await?;
        Ok(store)
    }

    /// The database file and its WAL, as the file system counts them.
    pub async fn size(&self) -> Result<StoreSize, StoreError> {
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&self.pool)
                .await?;
        let bytes = |path: &str| std::fs::metadata(path).map_or(0, |m| m.len());
        Ok(StoreSize {
            database_bytes: bytes(&file),
            wal_bytes: bytes(&format!("{file}-wal")),
        })
    }

    /// Copies committed pages from the database's WAL, then the journal's, into their files: see
    /// `passes`. When the database's WAL stays long, a pass runs on the writer's own connection,
    /// between two commits, so nothing comes meanwhile — but the writer waits for it, so only then.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if passes(&self.pool).await?.is_long() {
            pass(&self.writes).await?;
        }
        if let Some(journal) = &self.journal {
            journal.checkpoint().await?;
        }
        Ok(())
    }

    /// Closes every connection, the writer's last: SQLite's last close checkpoints the WAL and removes
    /// it. sqlx's `Pool::close` can return while a connection is still on its way back to the pool (in
    /// the task its drop spawned), and one that lands there afterwards is never closed (sqlx issue
    /// #3217): so close again until none is left, for a few seconds at most.
    pub async fn close(&self) {
        // Opening would fold them too, but a stopped server's file should hold them in place.
        if let Err(e) = self.settle().await {
            tracing::warn!("the journal's points were left to fold at the next start: {e}");
        }
        let journal = self.journal.as_ref().map(Journal::pool);
        for pool in [Some(&self.pool), journal, Some(&self.writes)]
            .into_iter()
            .flatten()
        {
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
}

pub(super) fn table(interval: Interval) -> &'static str {
    match interval {
        Interval::Minute => "rollup_1m",
        Interval::Hour => "rollup_1h",
    }
}

//! The storage seam. Everything above this module (writer, query, handlers) talks to `Store` in whole
//! batches and ranges and never sees SQL. Below it, two databases: `sqlite/` (the default, one server
//! owns one file) and `postgres/` (several servers share one database). What they share is written
//! once beside them: the rows both read (`rows.rs`), how a range read is planned and collected
//! (`answer.rs`, `rollup.rs`), the name → id cache (`ids.rs`). `tests/store.rs` holds both to the
//! same behaviour.

mod answer;
mod block;
mod dense;
mod ids;
mod lock;
mod packed_rollups;
mod postgres;
pub mod rollup;
mod rows;
mod sqlite;

use crate::downsample::M4;
use crate::model::{Series, SignalInfo};
use crate::server::clock::{self, SharedClock};
use crate::server::domain::{DataPoint, SignalName, Timestamp};
pub use postgres::relay::{Heard, Relay};

/// Appends the points of a stored block (its `first_ts` and `data`) to `out`: for the benchmark's
/// measure of decoding speed.
pub fn unpack_block(
    first: i64,
    data: &[u8],
    out: &mut Vec<crate::downsample::TimeValue>,
) -> Result<(), StoreError> {
    Ok(block::unpack(first, data, out)?)
}
use rollup::{bucket, Interval, Source, MINUTE};
pub use rows::Rows;
use rows::{FiguresRow, SIGNALS_SQL, TOKENS_SQL, TOKEN_DELETE_SQL, TOKEN_INSERT_SQL};
use std::sync::Arc;

/// A database failure, by what a client can do about it. Cloneable because one failed group commit
/// fails every request in the group.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// Busy, out of disk, or unreachable for now: nothing was stored, and retrying later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
    /// What is stored cannot be read (a corrupt block or file), or the schema cannot be brought up
    /// to date: retrying will not help, an operator must look.
    #[error("the database is damaged: {0}")]
    Damaged(Arc<dyn std::error::Error + Send + Sync>),
    /// The database cannot be opened as asked: another server holds it, or its URL names a database
    /// this build does not store in.
    #[error("{0}")]
    CannotOpen(String),
}

impl StoreError {
    fn damaged(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Damaged(Arc::new(e))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let damaged = match &e {
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // SQLite's primary result codes (the low byte of an extended code) that mean the
                    // file itself is broken, as opposed to busy, locked, full or failing to reach
                    // the disk for now: CORRUPT and NOTADB.
                    let primary = code.parse::<u32>().map(|c| c & 0xff);
                    matches!(primary, Ok(11 | 26))
                } else {
                    // PostgreSQL's class XX: internal error, data or index corrupted.
                    code.starts_with("XX")
                }
            }
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => false,
            // A row or a column that does not decode as the schema says.
            _ => true,
        };
        if damaged {
            StoreError::damaged(e)
        } else {
            StoreError::Unavailable(Arc::new(e))
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::damaged(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(Arc::new(e))
    }
}

impl From<block::CorruptBlock> for StoreError {
    fn from(e: block::CorruptBlock) -> Self {
        StoreError::damaged(e)
    }
}

/// How hard a commit works to survive failures, traded against ingest speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A commit survives a crash of the server process (WAL, `synchronous=NORMAL`).
    #[default]
    Normal,
    /// A commit also survives power loss: every commit waits for fsync (`synchronous=FULL`).
    Fsync,
}

impl Durability {
    /// The setting's spelling in flags, environment and Leptos.toml.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Fsync => "fsync",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Durability::Normal, Durability::Fsync]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown durability {s:?}: expected normal or fsync"))
    }
}

/// How long each kind of data is kept. Points older than `raw_ms` are still accepted: they go into the
/// rollups only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_rollups_ms: i64,
    pub hour_rollups_ms: i64,
}

impl Retention {
    /// The finest source that still holds what happened at `t`, as of `now`: raw points, then
    /// minute rollups (a minute is deleted whole once its start is past the age), then hour rollups.
    /// Reads go by this rule, not by what the last retention pass left, so an answer does not
    /// depend on when that pass ran.
    pub fn finest_at(&self, t: i64, now: i64) -> Source {
        if t >= now - self.raw_ms {
            Source::Raw
        } else if bucket(t, MINUTE) >= now - self.minute_rollups_ms {
            Source::Rollup(Interval::Minute)
        } else {
            Source::Rollup(Interval::Hour)
        }
    }

    pub fn days(raw: u32, minute_rollups: u32, hour_rollups: u32) -> Retention {
        let ms = |days: u32| i64::from(days) * crate::model::DAY;
        Retention {
            raw_ms: ms(raw),
            minute_rollups_ms: ms(minute_rollups),
            hour_rollups_ms: ms(hour_rollups),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::days(7, 90, 730)
    }
}

/// How a range read returns its points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Every point, up to `limit` in all (one more is read, to tell "exactly the limit" from "more").
    Raw { limit: usize },
    /// At most `max_points` per series, keeping each bucket's first, last, lowest and highest point.
    Decimated { max_points: usize },
}

/// Collects one series' points in the shape asked for.
#[derive(Clone)]
enum Sink {
    Raw(Vec<i64>, Vec<f64>),
    Decimated(M4),
}

impl Sink {
    fn push(&mut self, t: i64, v: f64) {
        match self {
            Sink::Raw(ts, vs) => {
                ts.push(t);
                vs.push(v);
            }
            Sink::Decimated(m4) => m4.push(t, v),
        }
    }

    /// The points, and whether they were decimated.
    fn finish(self) -> (Vec<i64>, Vec<f64>, bool) {
        match self {
            Sink::Raw(ts, vs) => (ts, vs, false),
            Sink::Decimated(m4) => m4.finish(),
        }
    }
}

/// Which points a range read returns.
#[derive(Clone, Debug)]
pub struct Range {
    pub from: Timestamp,
    pub to: Timestamp,
    /// `None`: every signal.
    pub signals: Option<Vec<SignalName>>,
}

/// A signal's id in the store: a key, never a time or a count, though all three are integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct SeriesId(pub i64);

/// A stored access token: never the token itself, only its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRecord {
    pub name: String,
    /// `read`, `write` or `admin`.
    pub scope: String,
    pub sha256: Vec<u8>,
    pub created_ms: i64,
}

/// Whether a store holds its database alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// A server: it writes points, and keeps the journal and the newest blocks in memory, so no one
    /// else may.
    Exclusive,
    /// Beside a running server, for what is safe to change next to it: tokens.
    Shared,
}

/// Runs `$body` with `$pool` bound to the store's connections for reads or for writes: what both
/// databases do with the same SQL is written once (the body compiles once for each).
macro_rules! on_pool {
    ($store:expr, $kind:ident, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite(s) => {
                let $pool = on_pool!(@sqlite s, $kind);
                $body
            }
            Store::Postgres(s) => {
                let $pool = &s.pool;
                $body
            }
        }
    };
    (@sqlite $s:ident, reads) => {
        &$s.pool
    };
    (@sqlite $s:ident, writes) => {
        &$s.writes
    };
}

mod alerts;
pub use alerts::{
    Aftermath, AnnotationRecord, Attempt, AttemptRecord, Due, Episode, NewAnnotation, Outgoing,
    RuleRecord,
};

/// A database's size on disk: its files, and its write-ahead log's (0 where it cannot be read).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreSize {
    pub database_bytes: u64,
    pub wal_bytes: u64,
}

/// What one packing pass packed: hours of a signal's minutes, days of its hours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackedSpans {
    pub hours: u64,
    pub days: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolUse {
    pub open: u32,
    pub in_use: u32,
}

impl PoolUse {
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolUse {
        let open = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(open);
        PoolUse {
            open,
            in_use: open.saturating_sub(idle),
        }
    }
}

impl std::ops::Add for PoolUse {
    type Output = PoolUse;

    fn add(self, other: PoolUse) -> PoolUse {
        PoolUse {
            open: self.open + other.open,
            in_use: self.in_use + other.in_use,
        }
    }
}

#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl Store {
    /// Opens (creating if missing) the database at `url` and brings its schema up to date.
    /// `clock` says what time it is: where retention cuts, which rollups a range reads.
    pub async fn open(
        url: &str,
        durability: Durability,
        retention: Retention,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        Store::open_holding(url, durability, retention, Hold::Exclusive, clock).await
    }

    /// Opens the database beside a server that may hold it, for `token` commands.
    pub async fn open_shared(url: &str) -> Result<Store, StoreError> {
        let (durability, retention) = (Durability::default(), Retention::default());
        Store::open_holding(url, durability, retention, Hold::Shared, clock::system()).await
    }

    async fn open_holding(
        url: &str,
        durability: Durability,
        retention: Retention,
        hold: Hold,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => {
                let store =
                    sqlite::SqliteStore::open(url, durability, retention, hold, clock).await?;
                Ok(Store::Sqlite(store))
            }
            // Several servers share one PostgreSQL database: nothing to hold alone.
            "postgres" | "postgresql" => {
                let store =
                    postgres::PostgresStore::open(url, durability, retention, clock).await?;
                Ok(Store::Postgres(store))
            }
            _ => Err(StoreError::CannotOpen(format!(
                "unsupported database URL scheme {scheme:?}: expected sqlite://PATH (e.g. {}) or \
                 postgres://USER:PASSWORD@HOST/DATABASE",
                crate::config::DEFAULT_DATABASE_URL
            ))),
        }
    }

    /// Stores every point in one transaction, raw points and rollups together: all of them or, on
    /// error, none. A point whose (signal, timestamp) is already stored replaces it. Signals not
    /// stored before are inserted first, in transactions of their own (`create_signals`).
    pub async fn write(&self, points: &[&DataPoint]) -> Result<(), StoreError> {
        let rows = self
            .to_rows(points.iter().copied(), |_| Ok::<_, StoreError>(()))
            .await?;
        self.write_rows(rows).await
    }

    /// `write` for points made rows (`to_rows`).
    pub async fn write_rows(&self, rows: Rows) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.write(rows.into_vec()).await,
            Store::Postgres(s) => s.write(rows.into_vec()).await,
        }
    }

    /// `points` as rows of their signals' ids, for `write_rows`. Signals not stored yet are
    /// stored first (`create_signals`), if `admit` lets them in. Handlers resolve their own
    /// points, all at once, so the one writer looks up no names.
    pub async fn to_rows<'p, E: From<StoreError>>(
        &self,
        points: impl Iterator<Item = &'p DataPoint> + Clone,
        admit: impl FnOnce(&[&SignalName]) -> Result<(), E>,
    ) -> Result<Rows, E> {
        match self.ids().rows(points.clone()) {
            Ok(rows) => Ok(rows),
            Err(unknown) => {
                admit(&unknown)?;
                self.create_signals(&unknown).await?;
                let rows = self.ids().rows(points);
                Ok(rows.map_err(|_| StoreError::damaged(sqlx::Error::RowNotFound))?)
            }
        }
    }

    /// The points of `range`, one `Series` per signal that has any, ascending in time.
    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        match self {
            Store::Sqlite(s) => s.read(range, shape).await,
            Store::Postgres(s) => s.read(range, shape).await,
        }
    }

    /// Every signal with its point count and last point, by name.
    pub async fn signals(&self) -> Result<Vec<SignalInfo>, StoreError> {
        if let Store::Sqlite(s) = self {
            s.settle().await?;
        }
        on_pool!(self, reads, |pool| {
            let rows: Vec<FiguresRow> = sqlx::query_as(SIGNALS_SQL).fetch_all(pool).await?;
            Ok(rows.into_iter().map(SignalInfo::from).collect())
        })
    }

    /// Stores `names` (distinct, by name, not stored yet), ahead of the write that brings their
    /// points and in transactions of their own: a signal without points is listed nowhere, and a
    /// request naming 100,000 new signals holds other writes up a few milliseconds at a time
    /// (SQLite), not for all of them at once.
    async fn create_signals(&self, names: &[&SignalName]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.create_signals(names).await,
            Store::Postgres(s) => s.create_signals(names).await,
        }
    }

    /// How long each kind of data is kept.
    pub fn retention(&self) -> Retention {
        match self {
            Store::Sqlite(s) => s.retention,
            Store::Postgres(s) => s.retention,
        }
    }

    /// How many signals are stored (known to this store: cheap, no query).
    pub fn signal_count(&self) -> usize {
        self.ids().len()
    }

    /// Signal name → id, as this store knows them: every name in SQLite, where this server is the
    /// only writer; with PostgreSQL, those known at start and written through this server since,
    /// so counts of new signals may come out higher than the truth, never lower.
    fn ids(&self) -> &ids::SeriesIds {
        match self {
            Store::Sqlite(s) => &s.ids,
            Store::Postgres(s) => &s.ids,
        }
    }

    /// Deletes what retention no longer keeps as of `now` (epoch ms), in small transactions: raw
    /// points and rollups past their ages, and alert notifications done with, which are kept as
    /// long as raw points. Returns the rows deleted.
    pub async fn expire(&self, now: i64) -> Result<u64, StoreError> {
        let data = match self {
            Store::Sqlite(s) => s.expire(now).await?,
            Store::Postgres(s) => s.expire(now).await?,
        };
        let raw_cutoff = now.saturating_sub(self.retention().raw_ms);
        Ok(data + self.expire_notifications(raw_cutoff).await?)
    }

    /// Packs the minute rollups of closed hours into one row an hour, and the hour rollups of
    /// closed days into one row a day, which reads take instead of the rows. Returns what it packed.
    pub async fn pack(&self, now: i64) -> Result<PackedSpans, StoreError> {
        match self {
            Store::Sqlite(s) => s.pack(now).await,
            // Rollup rows are read from an index in PostgreSQL: nothing to pack.
            Store::Postgres(_) => Ok(PackedSpans::default()),
        }
    }

    /// Moves committed data from the write-ahead log into the database file, off the commit path.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.checkpoint().await,
            // PostgreSQL checkpoints by itself.
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Waits for the connections to finish and closes them.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    /// Stores a new token; `false` when one of that name exists (nothing is changed then).
    pub async fn create_token(&self, token: &TokenRecord) -> Result<bool, StoreError> {
        on_pool!(self, writes, |pool| {
            let query = sqlx::query(TOKEN_INSERT_SQL).bind(&token.name);
            let query = query.bind(&token.scope).bind(&token.sha256);
            let done = query.bind(token.created_ms).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        on_pool!(self, reads, |pool| Ok(sqlx::query_as(TOKENS_SQL)
            .fetch_all(pool)
            .await?))
    }

    /// Deletes the token named `name`; `false` when there is none.
    pub async fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        on_pool!(self, writes, |pool| {
            let done = sqlx::query(TOKEN_DELETE_SQL)
                .bind(name)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Starts relaying live points between the servers that share this database, handing what the
    /// others commit to `heard`; `None` for a database only this server writes (SQLite).
    pub fn start_relay(&self, heard: impl Fn(Heard) + Send + Sync + 'static) -> Option<Relay> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(Relay::start(s.pool.clone(), heard)),
        }
    }

    /// The database's size on disk.
    pub async fn size(&self) -> Result<StoreSize, StoreError> {
        match self {
            Store::Sqlite(s) => s.size().await,
            Store::Postgres(s) => s.size().await,
        }
    }

    /// The connections of this store's pools, open and busy.
    pub fn pool_use(&self) -> PoolUse {
        match self {
            Store::Sqlite(s) => PoolUse::of(&s.pool) + PoolUse::of(&s.writes),
            Store::Postgres(s) => PoolUse::of(&s.pool),
        }
    }

    /// Whether other servers may write this database too (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Succeeds when the database answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, reads, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finest_source_kept_coarsens_with_age() {
        use crate::model::DAY;
        let retention = Retention::days(1, 2, 3);
        let now = 10 * DAY + 30_000;
        let minute = Source::Rollup(Interval::Minute);
        assert_eq!(retention.finest_at(now - DAY, now), Source::Raw);
        assert_eq!(retention.finest_at(now - DAY - 1, now), minute);
        // The minute holding the cutoff started before it: deleted whole.
        assert_eq!(retention.finest_at(now - 2 * DAY + 30_000, now), minute);
        assert_eq!(
            retention.finest_at(now - 2 * DAY + 29_999, now),
            Source::Rollup(Interval::Hour)
        );
    }
}

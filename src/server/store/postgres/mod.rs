//! The PostgreSQL store, for several servers on one database: `DATABASE_URL=postgres://…`.
//!
//! What differs from SQLite, and why: several servers write at once, so nothing a write needs is
//! kept in memory between commits except signal ids (a name's id never changes). Points are a row
//! each in a table partitioned by day (`partitions.rs`), so retention drops days; a write copies its
//! points in, then locks its signals' rows, so the rollups and figures of one signal are updated by
//! one server at a time (`write.rs`); rollups are kept in the write's transaction (SQLite builds
//! them from its blocks later). Hours of minutes are not packed: PostgreSQL reads a day of minute
//! rows in one index scan.

mod partitions;
mod read;
pub mod relay;
mod retention;
mod write;

use super::ids::SeriesIds;
use super::rows::SERIES_SQL;
use super::{Durability, Retention, SeriesId, StoreError, StoreSize};
use crate::server::clock::SharedClock;
use partitions::Partitions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Connections of one server: the writer's, the background passes', and reads side by side.
const CONNECTIONS: u32 = 8;

#[derive(sqlx::FromRow)]
struct SizeRow {
    database_bytes: i64,
    wal_bytes: i64,
}

#[derive(Clone)]
pub struct PostgresStore {
    pub(super) pool: PgPool,
    /// Signal name → `series.id`. Ids are never reused, so a cached id stays right whoever wrote it.
    pub(super) ids: Arc<SeriesIds>,
    partitions: Arc<Partitions>,
    pub(super) retention: Retention,
    clock: SharedClock,
}

impl PostgresStore {
    /// The database's files; the WAL's only where this role may list it (pg_monitor, or a
    /// superuser), else 0.
    pub async fn size(&self) -> Result<StoreSize, StoreError> {
        let row: SizeRow = sqlx::query_as(
            "SELECT pg_database_size(current_database()) AS database_bytes, \
                    CASE WHEN has_function_privilege('pg_ls_waldir()', 'EXECUTE') \
                         THEN (SELECT COALESCE(sum(size), 0)::bigint FROM pg_ls_waldir()) \
                         ELSE 0 END AS wal_bytes",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreSize {
            database_bytes: row.database_bytes.max(0) as u64,
            wal_bytes: row.wal_bytes.max(0) as u64,
        })
    }

    pub async fn open(
        url: &str,
        durability: Durability,
        retention: Retention,
        clock: SharedClock,
    ) -> Result<PostgresStore, StoreError> {
        // `normal` survives a crash of this server, as SQLite's does: a commit is in PostgreSQL once
        // acknowledged, written to disk within a fraction of a second. `fsync` waits for the disk.
        let synchronous_commit = match durability {
            Durability::Normal => "off",
            Durability::Fsync => "on",
        };
        let options = PgConnectOptions::from_str(url)?
            // JIT compiling took longer than the queries it would speed up (each reads one index).
            .options([("synchronous_commit", synchronous_commit), ("jit", "off")])
            .application_name("signalboard");
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::CannotOpen(format!("connecting to PostgreSQL: {e}")))?;
        // Several servers may start at once: one migrates, the others wait on its lock.
        sqlx::migrate!("src/server/store/postgres/migrations")
            .run(&pool)
            .await?;
        let ids = SeriesIds::of(sqlx::query_as(SERIES_SQL).fetch_all(&pool).await?);
        Ok(PostgresStore {
            pool,
            ids: Arc::new(ids),
            partitions: Arc::default(),
            retention,
            clock,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

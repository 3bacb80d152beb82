//! SQLite: the embedded default. One file, WAL mode so reads never wait for the writer.

use super::{Durability, Range, Shape, Sink, StoreError};
use crate::model::{Series, SignalInfo};
use crate::server::domain::DataPoint;
use futures::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rows per multi-row INSERT: 3 bound parameters each, inside SQLite's 32,766-parameter limit. Each
/// statement is a round trip to sqlx's SQLite worker thread, so fewer, larger statements win.
const ROWS_PER_INSERT: usize = 5_000;

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Signal name → `series.id`, so a write looks names up in memory, not in the database.
    /// Only filled after a commit, so it never holds an id that a rolled-back transaction invented.
    ids: Arc<Mutex<HashMap<String, i64>>>,
}

impl SqliteStore {
    pub async fn open(url: &str, durability: Durability) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Normal => SqliteSynchronous::Normal,
                Durability::Fsync => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(5))
            // With many signals a commit dirties one leaf page per signal: a 16 MiB page cache (per connection: memory stays bounded) keeps
            // them hot between commits, and rarer checkpoints write each page back once, not per commit.
            .pragma("cache_size", "-16384")
            .pragma("wal_autocheckpoint", "10000");
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
        let ids: HashMap<String, i64> = sqlx::query_as("SELECT name, id FROM series")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
        Ok(SqliteStore {
            pool,
            ids: Arc::new(Mutex::new(ids)),
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
        let mut tx = self.pool.begin().await?;
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
        // Key order means each b-tree page is visited once per commit. The sort is stable, so of two points
        // with the same key in one batch the later one is inserted last and wins.
        rows.sort_by_key(|&(id, ts, _)| (id, ts));
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO points (series_id, ts, value) ");
            insert.push_values(chunk, |mut row, &(id, ts, value)| {
                row.push_bind(id).push_bind(ts).push_bind(value);
            });
            insert.push(" ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value");
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.extend(fresh.into_iter().map(|(name, id)| (name.to_owned(), id)));
        Ok(())
    }

    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        let mut out = Vec::new();
        // Raw reads stop one point past the limit, so the caller can tell "more than the limit".
        let mut budget = match shape {
            Shape::Raw { limit } => limit.saturating_add(1),
            Shape::Decimated { .. } => usize::MAX,
        };
        for (id, name) in self.series_in(range).await? {
            if budget == 0 {
                break;
            }
            let mut sink = Sink::new(shape, range);
            // One primary-key range scan per signal, streamed: a decimated read of a month holds
            // a few thousand points in memory, not millions.
            let mut rows = sqlx::query_as::<_, (i64, f64)>(
                "SELECT ts, value FROM points \
                 WHERE series_id = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts LIMIT ?4",
            )
            .bind(id)
            .bind(range.from.millis())
            .bind(range.to.millis())
            .bind(i64::try_from(budget).unwrap_or(i64::MAX))
            .fetch(&self.pool);
            while let Some((t, v)) = rows.try_next().await? {
                sink.push(t, v);
            }
            let (timestamps, values, downsampled) = sink.finish();
            if timestamps.is_empty() {
                continue;
            }
            if !downsampled {
                budget = budget.saturating_sub(timestamps.len());
            }
            out.push(Series {
                signal: name,
                timestamps,
                values,
                downsampled,
            });
        }
        Ok(out)
    }

    /// The ids and names of the signals a range asks for (all, or the named ones that exist), by name.
    async fn series_in(&self, range: &Range) -> Result<Vec<(i64, String)>, StoreError> {
        let Some(names) = &range.signals else {
            return Ok(sqlx::query_as("SELECT id, name FROM series ORDER BY name")
                .fetch_all(&self.pool)
                .await?);
        };
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let row = sqlx::query_as("SELECT id, name FROM series WHERE name = ?1")
                .bind(name.as_str())
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
            "SELECT s.name, \
                    (SELECT count(*) FROM points c WHERE c.series_id = s.id), \
                    last.ts, last.value \
             FROM series s \
             JOIN points last ON last.series_id = s.id \
              AND last.ts = (SELECT max(ts) FROM points m WHERE m.series_id = s.id) \
             ORDER BY s.name",
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

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

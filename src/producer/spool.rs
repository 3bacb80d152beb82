//! Where samples wait for the server: a SQLite file (`--spool FILE`), so the backlog outlives a
//! restart of the producer, or the same in memory. A row per sample, its JSON as posted; bounded at
//! `MAX_SAMPLES`, past which the oldest are dropped, counted and logged.

use crate::model::Sample;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::str::FromStr;

/// Samples kept while the server is unreachable: a day at 1 Hz, a few tens of MB at most.
pub const MAX_SAMPLES: i64 = 86_400;

pub struct Spool {
    pool: SqlitePool,
    /// Most samples kept.
    capacity: i64,
    /// Samples in it: counted once on opening, then kept up to date, so a push never counts the
    /// table (which, for a spool filling at thousands of lines a second, grew with every line).
    len: i64,
    /// Samples dropped because the spool was full, since it was opened.
    pub dropped: u64,
}

/// A spooled sample: its place in line and its JSON.
#[derive(sqlx::FromRow)]
pub struct Spooled {
    pub id: i64,
    pub json: String,
}

impl Spool {
    /// The spool in `file` (made if missing), or in memory, keeping at most `capacity` samples.
    pub async fn open(file: Option<&Path>, capacity: i64) -> Result<Spool, sqlx::Error> {
        let options = match file {
            Some(file) => SqliteConnectOptions::new()
                .filename(file)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                // A sample is acknowledged to nobody: surviving a crash of the producer is enough.
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
            None => SqliteConnectOptions::from_str("sqlite::memory:")?,
        };
        // One connection: an in-memory database lives in it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS samples (id INTEGER PRIMARY KEY AUTOINCREMENT, json TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let len = sqlx::query_scalar("SELECT count(*) FROM samples")
            .fetch_one(&pool)
            .await?;
        Ok(Spool {
            pool,
            capacity,
            len,
            dropped: 0,
        })
    }

    /// Adds a sample at the end of the line; drops the oldest past the capacity.
    pub async fn push(&mut self, sample: &Sample) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(sample).expect("a sample of finite values serialises");
        sqlx::query("INSERT INTO samples (json) VALUES ($1)")
            .bind(json)
            .execute(&self.pool)
            .await?;
        self.len += 1;
        let over = self.len - self.capacity;
        if over > 0 {
            let deleted = sqlx::query(
                "DELETE FROM samples WHERE id IN (SELECT id FROM samples ORDER BY id LIMIT $1)",
            )
            .bind(over)
            .execute(&self.pool)
            .await?
            .rows_affected();
            self.len -= deleted as i64;
            self.dropped += deleted;
            tracing::error!(
                dropped = self.dropped,
                "producer spool full: dropped the oldest samples"
            );
        }
        Ok(())
    }

    /// The oldest `n` samples.
    pub async fn oldest(&self, n: usize) -> Result<Vec<Spooled>, sqlx::Error> {
        sqlx::query_as("SELECT id, json FROM samples ORDER BY id LIMIT $1")
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await
    }

    /// Removes the samples up to and including `id`: delivered, or given up on.
    pub async fn remove_through(&mut self, id: i64) -> Result<(), sqlx::Error> {
        let deleted = sqlx::query("DELETE FROM samples WHERE id <= $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        self.len -= deleted as i64;
        Ok(())
    }

    pub fn len(&self) -> i64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: i64) -> Sample {
        Sample {
            timestamp: t,
            signals: [("s".to_owned(), 1.0)].into(),
        }
    }

    #[tokio::test]
    async fn a_full_spool_drops_the_oldest_and_counts_them() {
        let mut spool = Spool::open(None, 3).await.unwrap();
        for t in 0..5 {
            spool.push(&sample(t)).await.unwrap();
        }
        assert_eq!((spool.len(), spool.dropped), (3, 2));
        let kept: Vec<Sample> = spool
            .oldest(10)
            .await
            .unwrap()
            .iter()
            .map(|s| serde_json::from_str(&s.json).unwrap())
            .collect();
        assert_eq!(kept, [sample(2), sample(3), sample(4)]);
    }

    #[tokio::test]
    async fn a_torn_spool_tail_loses_only_the_sample_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spool.db");
        let mut spool = Spool::open(Some(&file), MAX_SAMPLES).await.unwrap();
        for t in 0..100 {
            spool.push(&sample(t)).await.unwrap();
        }
        // The files as a crash leaves them (copied while the spool is open), the write-ahead log
        // cut short mid-frame: SQLite ignores the torn frame; what was committed before it is there.
        let crashed = tempfile::tempdir().unwrap();
        for name in ["spool.db", "spool.db-wal"] {
            std::fs::copy(dir.path().join(name), crashed.path().join(name)).unwrap();
        }
        drop(spool);
        let wal = crashed.path().join("spool.db-wal");
        let len = std::fs::metadata(&wal).unwrap().len();
        let torn = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
        torn.set_len(len - 100).unwrap();
        let file = crashed.path().join("spool.db");
        let reopened = Spool::open(Some(&file), MAX_SAMPLES).await.unwrap();
        let kept = reopened.len();
        assert_eq!(
            kept, 99,
            "the sample in the torn frame is lost, the 99 before it kept"
        );
        let first: Sample =
            serde_json::from_str(&reopened.oldest(1).await.unwrap()[0].json).unwrap();
        assert_eq!(first, sample(0));
    }
}

//! Range reads on PostgreSQL: a query per stretch (raw points, or minute or hour rollups) for every
//! signal asked for, in one snapshot.

use super::super::answer::Answer;
use super::super::rollup::{Source, Stretch};
use super::super::rows::RollupRow;
use super::super::{Range, Shape};
use super::write::table;
use super::*;
use crate::downsample::TimeValue;
use crate::model::Series;
use futures::TryStreamExt;
use sqlx::postgres::PgConnection;

/// The signals a stretch's query reads: those with points since its start, all of them or those
/// named in the array $3.
const CHOSEN: &str = "s.last_ts >= $1 AND ($3::text[] IS NULL OR s.name = ANY($3))";

/// One signal's raw points in a stretch, as two arrays.
#[derive(sqlx::FromRow)]
struct RawRun {
    name: String,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

impl PostgresStore {
    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        let now = self.clock.now().millis();
        let (mut answer, stretches) = Answer::plan(range, shape, self.retention, now);
        let named: Option<Vec<&str>> = range
            .signals
            .as_ref()
            .map(|names| names.iter().map(|n| n.as_str()).collect());
        // One snapshot for the whole read, so its stretches agree with each other.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        for stretch in stretches {
            match stretch.source {
                Source::Raw => raw(&mut answer, &mut tx, stretch, &named).await?,
                Source::Rollup(interval) => {
                    let sql = format!(
                        "SELECT s.name, r.first_ts, r.first, r.low_ts, r.low, r.high_ts, r.high, \
                           r.last_ts, r.last \
                         FROM series s JOIN {} r ON r.series_id = s.id AND r.bucket >= $1 \
                           AND r.bucket <= $2 \
                         WHERE {CHOSEN} ORDER BY r.series_id, r.bucket",
                        table(interval)
                    );
                    let mut rows = sqlx::query_as::<_, RollupRow>(&sql)
                        .bind(stretch.start)
                        .bind(stretch.end)
                        .bind(&named)
                        .fetch(&mut *tx);
                    while let Some(row) = rows.try_next().await? {
                        answer.push_extremes(row.name, &row.extremes);
                    }
                }
            }
            if answer.left() == 0 {
                break;
            }
        }
        tx.commit().await?;
        Ok(answer.finish())
    }
}

/// Adds a stretch's raw points, at most as many as the answer may still take: in series order
/// along the primary key, so the limit stops the scan, not a sort of everything.
async fn raw(
    answer: &mut Answer,
    db: &mut PgConnection,
    stretch: Stretch,
    named: &Option<Vec<&str>>,
) -> Result<(), StoreError> {
    let (start, end) = answer.clip(stretch);
    let limit = i64::try_from(answer.left()).unwrap_or(i64::MAX);
    let sql = format!(
        "WITH chosen AS (SELECT s.id, s.name FROM series s WHERE {CHOSEN}), \
         picked AS (SELECT p.series_id, p.ts, p.value FROM points p \
           WHERE p.series_id IN (SELECT id FROM chosen) AND p.ts >= $1 AND p.ts <= $2 \
           ORDER BY p.series_id, p.ts LIMIT $4) \
         SELECT c.name, array_agg(k.ts ORDER BY k.ts) AS timestamps, \
           array_agg(k.value ORDER BY k.ts) AS values \
         FROM picked k JOIN chosen c ON c.id = k.series_id GROUP BY c.name"
    );
    let mut rows = sqlx::query_as::<_, RawRun>(&sql)
        .bind(start)
        .bind(end)
        .bind(named)
        .bind(limit)
        .fetch(db);
    let mut points = Vec::new();
    while let Some(run) = rows.try_next().await? {
        points.clear();
        let pairs = run.timestamps.iter().zip(&run.values);
        points.extend(pairs.map(|(&t, &v)| TimeValue::new(t, v)));
        if !answer.push_run(run.name, &points) {
            break;
        }
    }
    Ok(())
}

//! Range reads: stretch by stretch (raw blocks, or minute or hour rollups), each one query for
//! every signal asked for.

use super::super::answer::Answer;
use super::super::packed_rollups;
use super::super::rows::RollupRow;
use super::pack::Packing;
use super::*;
use rollup::Stretch;
use sqlx::sqlite::SqliteArguments;

impl SqliteStore {
    /// Reads a range stretch by stretch (raw points, or minute or hour rollups), each in one query
    /// for every signal: a round trip to SQLite's thread costs more than the rows of an hour.
    pub async fn read(&self, range: &Range, shape: Shape) -> Result<Vec<Series>, StoreError> {
        self.settle().await?;
        let now = self.clock.now().millis();
        let (mut answer, stretches) = Answer::plan(range, shape, self.retention, now);
        let named = match &range.signals {
            Some(names) => Some(
                serde_json::to_string(&names.iter().map(|n| n.as_str()).collect::<Vec<_>>())
                    .map_err(StoreError::damaged)?,
            ),
            None => None,
        };
        // One snapshot for the whole read: the packed and the unpacked minutes of a stretch are split
        // at each signal's packing mark, which a write or the packer may move in between.
        let mut tx = self.pool.begin().await?;
        for stretch in stretches {
            let bounds = Bounds {
                stretch,
                named: named.as_deref(),
            };
            let sql = stretch_sql(stretch.source, named.is_some());
            match stretch.source {
                Source::Raw => runs(&mut answer, &mut tx, &sql, &bounds, block::unpack).await?,
                Source::Rollup(interval) => {
                    // Packed spans come before the packing mark, rows after, raw points from the
                    // rollups' mark on (`built.rs`): in time order.
                    let signals = signals_sql(named.is_some());
                    let packed = Packing::of(interval).packed_sql(signals);
                    runs(
                        &mut answer,
                        &mut tx,
                        &packed,
                        &bounds,
                        packed_rollups::points,
                    )
                    .await?;
                    rollups(&mut answer, &mut tx, &sql, &bounds).await?;
                    let raw = raw_after_rollups_sql(signals);
                    rollups_of_raw(&mut answer, &mut tx, &raw, &bounds, interval).await?;
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

/// A run of packed points (a raw block, or a packed span of rollups) of signal `name`, starting at
/// `first_ts`; `from_ts`, where `raw_after_rollups_sql` gives it, is where its signal's rollups
/// stop being stored.
#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    name: String,
    #[sqlx(default)]
    from_ts: Option<i64>,
    first_ts: i64,
    data: Vec<u8>,
}

/// What one stretch's query binds: the stretch, and the signals asked for (a JSON array), or `None`
/// for all.
pub(super) struct Bounds<'a> {
    stretch: Stretch,
    named: Option<&'a str>,
}

impl<'a> Bounds<'a> {
    fn bind<'q, O>(
        &self,
        query: sqlx::query::QueryAs<'q, Sqlite, O, SqliteArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, Sqlite, O, SqliteArguments<'q>>
    where
        'a: 'q,
    {
        query
            .bind(self.stretch.start)
            .bind(self.stretch.end)
            .bind(self.named)
    }
}

/// Adds the points within the stretch of each packed run of points (raw blocks, or packed hours of
/// minutes) that `sql` selects as `RunRow`s, as `unpack` reads them.
async fn runs(
    answer: &mut Answer,
    db: &mut sqlx::SqliteConnection,
    sql: &str,
    bounds: &Bounds<'_>,
    unpack: Unpack,
) -> Result<(), StoreError> {
    let mut rows = bounds.bind(sqlx::query_as::<_, RunRow>(sql)).fetch(db);
    let (start, end) = answer.clip(bounds.stretch);
    let mut points = Vec::new();
    while let Some(run) = rows.try_next().await? {
        let within = points_within(unpack, run.first_ts, &run.data, start, end, &mut points)?;
        if !answer.push_run(run.name, within) {
            break;
        }
    }
    Ok(())
}

/// Adds the first, lowest, highest and last points of each rollup row `sql` selects.
async fn rollups(
    answer: &mut Answer,
    db: &mut sqlx::SqliteConnection,
    sql: &str,
    bounds: &Bounds<'_>,
) -> Result<(), StoreError> {
    let mut rows = bounds.bind(sqlx::query_as::<_, RollupRow>(sql)).fetch(db);
    while let Some(row) = rows.try_next().await? {
        answer.push_extremes(row.name, &row.extremes);
    }
    Ok(())
}

/// Adds the first, lowest, highest and last points of each `interval` bucket of the raw points
/// `sql` selects (`raw_after_rollups_sql`): what the rollups the packer builds from them will hold,
/// so that an answer is the same before and after.
async fn rollups_of_raw(
    answer: &mut Answer,
    db: &mut sqlx::SqliteConnection,
    sql: &str,
    bounds: &Bounds<'_>,
    interval: Interval,
) -> Result<(), StoreError> {
    let mut rows = bounds.bind(sqlx::query_as::<_, RunRow>(sql)).fetch(db);
    // Whole buckets, as rollups hold them: `push_extremes` keeps what lies in the range.
    let Stretch { start, end, .. } = bounds.stretch;
    let mut points = Vec::new();
    let mut open: Option<OpenBucket> = None;
    while let Some(run) = rows.try_next().await? {
        let from = run.from_ts.map_or(start, |mark| mark.max(start));
        for p in points_within(
            block::unpack,
            run.first_ts,
            &run.data,
            from,
            end,
            &mut points,
        )? {
            let at = bucket(p.time, interval.millis());
            match &mut open {
                Some(b) if b.start == at && b.name == run.name => b.aggregate.add(p.time, p.value),
                _ => {
                    if let Some(done) = open.take() {
                        answer.push_extremes(done.name, &done.aggregate.into());
                    }
                    open = Some(OpenBucket {
                        name: run.name.clone(),
                        start: at,
                        aggregate: Aggregate::of(p.time, p.value),
                    });
                }
            }
        }
    }
    if let Some(done) = open {
        answer.push_extremes(done.name, &done.aggregate.into());
    }
    Ok(())
}

/// A bucket of a signal's raw points being aggregated.
struct OpenBucket {
    name: String,
    start: i64,
    aggregate: Aggregate,
}

/// The SQL choosing signals for a stretch's query: every signal, or (`named`) those in the JSON
/// array ?3.
pub(super) fn signals_sql(named: bool) -> &'static str {
    if named {
        "s.name IN (SELECT value FROM json_each(?3))"
    } else {
        "?3 IS NULL"
    }
}

/// The query for one stretch of a range read from `source`, over `?1..=?2`, for the signals chosen
/// (`signals_sql`) with points since ?1: rows by name, then by time. Rollup rows are read from each
/// signal's packing mark on.
pub(super) fn stretch_sql(source: Source, named: bool) -> String {
    let signals = signals_sql(named);
    match source {
        Source::Raw => format!(
            "SELECT s.name, b.first_ts, b.data FROM series s JOIN blocks b ON {} \
             WHERE s.last_ts >= ?1 AND {signals} ORDER BY s.name, b.first_ts",
            overlapping!("s.id", "?1", "?2")
        ),
        Source::Rollup(interval) => {
            let from = Packing::of(interval).rows_from();
            format!(
                "SELECT s.name, r.first_ts, r.first, r.low_ts, r.low, r.high_ts, r.high, r.last_ts, \
                 r.last FROM series s JOIN {} r ON r.series_id = s.id AND r.bucket >= {from} \
                 AND r.bucket <= ?2 AND r.bucket < coalesce(s.rollups_to, 9223372036854775807) \
                 WHERE s.last_ts >= ?1 AND {signals} ORDER BY s.name, r.bucket",
                table(interval)
            )
        }
    }
}

/// The raw points of a stretch of rollups from each chosen signal's rollups' mark on, where its
/// rollups are not stored (`built.rs`), as `RunRow`s from the mark.
fn raw_after_rollups_sql(signals: &str) -> String {
    format!(
        "SELECT s.name, max(?1, s.rollups_to) AS from_ts, b.first_ts, b.data FROM series s \
         JOIN blocks b ON {} WHERE s.rollups_to <= ?2 AND s.last_ts >= ?1 AND {signals} \
         ORDER BY s.name, b.first_ts",
        overlapping!("s.id", "max(?1, s.rollups_to)", "?2")
    )
}

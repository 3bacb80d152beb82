//! Rollups built from the raw points (migration 0010). A signal's rollups are stored only before its
//! mark, `series.rollups_to`; from the mark on, reads take them from its blocks. So a fold, with
//! many signals mostly rollup upserts on a page each, writes no rollups at all for ordinary points:
//! the packer builds each closed hour's packed minutes and hour row once (`build`), and a raw point
//! written before a signal's mark forgets what was built from its hour on (`forget_built`).

use super::super::packed_rollups::{self, Bucket, Span};
use super::super::rows::Row;
use super::pack::MINUTES;
use super::write::{push_rollup_merge, Batch, ROLLUP_BINDS};
use super::*;
use std::sync::atomic::Ordering;

/// Signals one build transaction takes: each may bring hours of points to read, and the writer
/// waits meanwhile.
const BUILD_SERIES: usize = 256;

/// Points one build transaction reads before it stops at the next hour: a producer catching up
/// may leave millions in one signal's closed hours, and the writer waits while they are read.
pub(super) const BUILD_POINTS: usize = 1 << 20;

/// A mark meaning every rollup of the signal is stored (`rollups_to` NULL).
pub(super) const ALL_STORED: i64 = i64::MAX;

/// Each series' mark as committed, by id (see `Tails` for why a vector).
#[derive(Default)]
pub(super) struct Marks(Vec<i64>);

impl Marks {
    pub async fn load(pool: &SqlitePool) -> Result<Marks, StoreError> {
        let rows: Vec<MarkRow> =
            sqlx::query_as("SELECT id, rollups_to FROM series WHERE rollups_to IS NOT NULL")
                .fetch_all(pool)
                .await?;
        let mut marks = Marks::default();
        for row in rows {
            marks.set(row.id, row.rollups_to);
        }
        Ok(marks)
    }

    /// Series `id`'s mark; ids too far to remember count as every rollup stored, so a write before
    /// it forgets and writes the mark, which is right, only slower.
    pub fn get(&self, id: SeriesId) -> i64 {
        blocks::index(id)
            .and_then(|i| self.0.get(i))
            .copied()
            .unwrap_or(ALL_STORED)
    }

    pub fn set(&mut self, id: SeriesId, mark: i64) {
        let Some(i) = blocks::index(id) else { return };
        if i >= self.0.len() {
            self.0.resize(i + 1, ALL_STORED);
        }
        self.0[i] = mark;
    }
}

#[derive(sqlx::FromRow)]
struct MarkRow {
    id: SeriesId,
    rollups_to: i64,
}

/// How a fold divides each series' rows between the stored rollups and the blocks, and the marks it
/// moves back.
#[derive(Default)]
pub(super) struct Split {
    /// Series with rows that go into the stored rollups alone (older than raw retention and before
    /// the mark), and the time before which a row does.
    rollups_only_before: HashMap<SeriesId, i64>,
    /// Those series, from their oldest row: the packed spans they write into come back as rows.
    pub rollups_only: Vec<SeriesFrom>,
    /// Series written before their mark, and the mark's new place: the start of the hour of the
    /// oldest raw point.
    pub late: Vec<SeriesFrom>,
}

impl Split {
    /// `rows` sorted by series and time, of which those before `raw_cutoff` are older than raw
    /// retention. Such a row is still kept raw from its series' (new) mark on: the packer builds it
    /// into the rollups before retention deletes it.
    pub fn of(rows: &[Row], marks: &Marks, raw_cutoff: i64) -> Split {
        let mut split = Split::default();
        for series in rows.chunk_by(|a, b| a.series == b.series) {
            let id = series[0].series;
            let mark = marks.get(id);
            let recent = series.partition_point(|row| row.ts < raw_cutoff);
            let new_mark = series
                .get(recent)
                .map_or(mark, |row| mark.min(bucket(row.ts, HOUR)));
            let before = raw_cutoff.min(new_mark);
            if series[0].ts < before {
                split.rollups_only_before.insert(id, before);
                split.rollups_only.push(SeriesFrom {
                    series: id,
                    from: series[0].ts,
                });
            }
            if new_mark < mark {
                split.late.push(SeriesFrom {
                    series: id,
                    from: new_mark,
                });
            }
        }
        split
    }

    /// Whether series `id`'s row at `ts` goes into the stored rollups alone.
    pub fn rollups_only(&self, id: SeriesId, ts: i64) -> bool {
        self.rollups_only_before
            .get(&id)
            .is_some_and(|&before| ts < before)
    }

    /// The series that write into stored hour rollups or forget them, each from the earliest time
    /// (once each: `unpack` would merge a span twice).
    pub fn hours_written(&self) -> Vec<SeriesFrom> {
        let mut all: Vec<SeriesFrom> = (self.rollups_only.iter().chain(&self.late))
            .copied()
            .collect();
        all.sort_unstable_by_key(|w| (w.series, w.from));
        all.dedup_by_key(|w| w.series);
        all
    }
}

/// Deletes each late series' stored rollups from its new mark on (its packed days were unpacked
/// first) and moves the mark there: its blocks hold those hours, and the packer builds them again.
pub(super) async fn forget_built(
    conn: &mut sqlx::SqliteConnection,
    late: &[SeriesFrom],
) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    for table in ["minutes_packed", "rollup_1m", "rollup_1h"] {
        let delete = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[SeriesFrom]| {
            sql.push(format!(
                "DELETE FROM {table} WHERE (series_id, bucket) IN \
                 (SELECT r.series_id, r.bucket FROM ("
            ));
            push_series_from(sql, chunk);
            sql.push(format!(
                ") AS w JOIN {table} r ON r.series_id = w.column1 AND r.bucket >= w.column2); "
            ));
        };
        batch
            .statements(conn, late, SERIES_FROM_BINDS, delete)
            .await?;
    }
    let marks = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[SeriesFrom]| {
        sql.push("UPDATE series SET rollups_to = d.column2 FROM (SELECT column1, column2 FROM (");
        push_series_from(sql, chunk);
        sql.push(")) AS d WHERE series.id = d.column1; ");
    };
    batch
        .statements(conn, late, SERIES_FROM_BINDS, marks)
        .await?;
    batch.send(conn).await
}

impl SqliteStore {
    /// Builds the rollups of every closed hour before `limit` still taken from raw points: each
    /// hour's minutes packed in one row, and its hour row; then moves the marks to `limit`. Signals
    /// whose minute rows are not all packed yet wait for the packer (built spans go after them).
    /// A transaction stops at the first hour past `budget` points read. Returns the hours built.
    pub(super) async fn build(&self, limit: i64, budget: usize) -> Result<u64, StoreError> {
        let ids: Vec<SeriesId> = sqlx::query_scalar(
            "SELECT id FROM series WHERE rollups_to < ?1 AND packed_to >= rollups_to ORDER BY id",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut built = 0;
        for chunk in ids.chunks(BUILD_SERIES) {
            // Until every series of the chunk is built: a transaction may stop at an hour.
            while let Some(spans) = self.build_some(chunk, limit, budget).await? {
                built += spans;
            }
        }
        Ok(built)
    }

    /// One build transaction over the series of `chunk` not yet built to `limit`, stopping at the
    /// first hour past `budget` points; returns the hours built, or `None` once none is left.
    async fn build_some(
        &self,
        chunk: &[SeriesId],
        limit: i64,
        budget: usize,
    ) -> Result<Option<u64>, StoreError> {
        let mut state = self.state.lock().await;
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        // Again inside the transaction: a write may have moved a mark since.
        let mut select = QueryBuilder::<Sqlite>::new(
            "SELECT id AS series, rollups_to AS \"from\" FROM series WHERE rollups_to < ",
        );
        select
            .push_bind(limit)
            .push(" AND packed_to >= rollups_to AND id IN (");
        let mut list = select.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        select.push(") ORDER BY id");
        let wanted: Vec<SeriesFrom> = select.build_query_as().fetch_all(&mut *tx).await?;
        if wanted.is_empty() {
            tx.commit().await?;
            return Ok(None);
        }
        let rollups = rollups_from_blocks(&mut tx, &wanted, limit, budget).await?;
        let marks = rollups.marks(&wanted, limit);
        let mut batch = Batch::default();
        let spans = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[BuiltSpan]| {
            sql.push("INSERT OR REPLACE INTO minutes_packed (series_id, bucket, data) ");
            sql.push_values(chunk, |mut row, span| {
                row.push_bind(span.series)
                    .push_bind(span.start)
                    .push_bind(span.data.clone());
            });
            sql.push("; ");
        };
        batch.statements(&mut tx, &rollups.spans, 3, spans).await?;
        let hours = |sql: &mut _, chunk: &[_]| push_rollup_merge(sql, Interval::Hour, chunk);
        batch
            .statements(&mut tx, &rollups.hours, ROLLUP_BINDS, hours)
            .await?;
        let set_marks = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[SeriesFrom]| {
            sql.push(
                "UPDATE series SET rollups_to = d.column2, packed_to = max(packed_to, d.column2) \
                 FROM (SELECT column1, column2 FROM (",
            );
            push_series_from(sql, chunk);
            sql.push(")) AS d WHERE series.id = d.column1; ");
        };
        batch
            .statements(&mut tx, &marks, SERIES_FROM_BINDS, set_marks)
            .await?;
        batch.send(&mut tx).await?;
        // Raised before the commit: a write that begins after it unpacks what it writes into.
        self.packed_before
            .of(MINUTES)
            .fetch_max(limit, Ordering::SeqCst);
        tx.commit().await?;
        for w in &marks {
            state.marks.set(w.series, w.from);
        }
        drop(state);
        tokio::task::yield_now().await;
        Ok(Some(rollups.spans.len() as u64))
    }
}

/// An hour of one series' minute rollups, built and packed.
struct BuiltSpan {
    series: SeriesId,
    start: i64,
    data: Vec<u8>,
}

/// What `rollups_from_blocks` builds.
#[derive(Default)]
struct Built {
    spans: Vec<BuiltSpan>,
    hours: Vec<rollup::Merge>,
    /// Where it stopped, past its budget: the series, and the hour it did not build.
    stopped: Option<SeriesFrom>,
}

impl Built {
    /// The new marks of `wanted` (by id, as read): `limit` for the series built through, the
    /// stopping hour for the one stopped in; those after it keep theirs.
    fn marks(&self, wanted: &[SeriesFrom], limit: i64) -> Vec<SeriesFrom> {
        let through = |w: &SeriesFrom| SeriesFrom {
            series: w.series,
            from: limit,
        };
        match self.stopped {
            None => wanted.iter().map(through).collect(),
            Some(stopped) => (wanted.iter())
                .take_while(|w| w.series < stopped.series)
                .map(through)
                .chain(std::iter::once(stopped))
                .collect(),
        }
    }
}

/// The rollups of each wanted series' points from its time until `limit`, read from its blocks in
/// one statement and aggregated as they stream in: an hour at a time, packed as soon as it ends;
/// past `budget` points, only until the next hour begins.
async fn rollups_from_blocks(
    conn: &mut sqlx::SqliteConnection,
    wanted: &[SeriesFrom],
    limit: i64,
    budget: usize,
) -> Result<Built, StoreError> {
    let join = format!(
        "JOIN blocks b ON b.series_id = w.column1 AND b.first_ts < {limit} AND b.first_ts >= \
           coalesce((SELECT first_ts FROM blocks WHERE series_id = w.column1 \
                     AND first_ts <= w.column2 ORDER BY first_ts DESC LIMIT 1), w.column2) \
         ORDER BY b.series_id, b.first_ts"
    );
    let mut query = for_each_series("b.series_id, b.first_ts, b.data", wanted, &join);
    let mut rows = query
        .build_query_as::<SeriesStoredBlock>()
        .fetch(&mut *conn);
    let from: HashMap<SeriesId, i64> = wanted.iter().map(|w| (w.series, w.from)).collect();
    let mut built = Built::default();
    let mut hour = HourBuilder::default();
    let mut points = Vec::new();
    let mut read = 0;
    'blocks: while let Some(row) = rows.try_next().await? {
        let start = from.get(&row.series_id).copied().unwrap_or(limit);
        let block = &row.block;
        for p in points_within(
            block::unpack,
            block.first_ts,
            &block.data,
            start,
            limit - 1,
            &mut points,
        )? {
            if read >= budget && hour.begins_another(row.series_id, p.time) {
                built.stopped = Some(SeriesFrom {
                    series: row.series_id,
                    from: bucket(p.time, HOUR),
                });
                break 'blocks;
            }
            read += 1;
            hour.add(row.series_id, p.time, p.value, &mut built);
        }
    }
    hour.finish(&mut built);
    Ok(built)
}

/// The hour being built, and its minutes so far.
#[derive(Default)]
struct HourBuilder {
    open: Option<OpenHour>,
    minutes: Vec<Bucket>,
}

/// A series' hour with points: where it starts, and its own rollup so far.
struct OpenHour {
    series: SeriesId,
    start: i64,
    aggregate: Aggregate,
}

impl OpenHour {
    fn holds(&self, series: SeriesId, t: i64) -> bool {
        self.series == series && self.start == bucket(t, HOUR)
    }
}

impl HourBuilder {
    /// Whether a point of `series` at `t` would end the hour being built.
    fn begins_another(&self, series: SeriesId, t: i64) -> bool {
        self.open
            .as_ref()
            .is_some_and(|hour| !hour.holds(series, t))
    }

    /// Adds a point (in series, then time order), packing the hour before once one begins.
    fn add(&mut self, series: SeriesId, t: i64, v: f64, built: &mut Built) {
        match &mut self.open {
            Some(hour) if hour.holds(series, t) => hour.aggregate.add(t, v),
            _ => {
                self.finish(built);
                self.open = Some(OpenHour {
                    series,
                    start: bucket(t, HOUR),
                    aggregate: Aggregate::of(t, v),
                });
            }
        }
        let minute = bucket(t, MINUTE);
        match self.minutes.last_mut() {
            Some(last) if last.start == minute => last.aggregate.add(t, v),
            _ => self.minutes.push(Bucket {
                start: minute,
                aggregate: Aggregate::of(t, v),
            }),
        }
    }

    fn finish(&mut self, built: &mut Built) {
        let Some(OpenHour {
            series,
            start,
            aggregate,
        }) = self.open.take()
        else {
            return;
        };
        let data = packed_rollups::encode(Span::HourOfMinutes, start, &self.minutes);
        built.spans.push(BuiltSpan {
            series,
            start,
            data,
        });
        built.hours.push(rollup::Merge {
            series,
            bucket: start,
            delta: aggregate,
        });
        self.minutes.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::pack::closed_before;
    use super::*;
    use crate::server::clock;
    use crate::server::domain::{DataPoint, SignalName, Timestamp, Value};
    use crate::server::store::{Durability, Store};

    /// A store on a new file in `dir` holding 20 points an hour of `a`, `b` and `c` over three
    /// closed hours, its minute rows packed: ready to build.
    async fn three_hours_of_three_signals(dir: &std::path::Path, now: i64) -> Store {
        let url = format!("sqlite://{}", dir.join("build.db").display());
        let store = Store::open(
            &url,
            Durability::Normal,
            Retention::default(),
            clock::system(),
        )
        .await
        .unwrap();
        let first_hour = bucket(now, HOUR) - 10 * HOUR;
        let points: Vec<DataPoint> = ["a", "b", "c"]
            .into_iter()
            .flat_map(|name| (0..60).map(move |i| (name, i)))
            .map(|(name, i)| DataPoint {
                signal: SignalName::parse(name).unwrap(),
                timestamp: Timestamp::from_millis(first_hour + i / 20 * HOUR + i * 1_000).unwrap(),
                value: Value::new(i as f64).unwrap(),
            })
            .collect();
        store
            .write(&points.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let sqlite = sqlite(&store);
        sqlite.settle().await.unwrap();
        sqlite.pack_spans(MINUTES, now).await.unwrap();
        store
    }

    fn sqlite(store: &Store) -> &SqliteStore {
        match store {
            Store::Sqlite(sqlite) => sqlite,
            _ => unreachable!("a sqlite:// URL opens SQLite"),
        }
    }

    /// Each series' mark, by name, and every built row: the packed minutes and the hour rows.
    async fn marks_and_rollups(store: &SqliteStore) -> Vec<String> {
        let marks: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, rollups_to FROM series ORDER BY name")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let minutes: Vec<(i64, i64, Vec<u8>)> =
            sqlx::query_as("SELECT series_id, bucket, data FROM minutes_packed ORDER BY 1, 2")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let hours: Vec<(i64, i64, i64, f64, f64, f64)> = sqlx::query_as(
            "SELECT series_id, bucket, count, sum, low, high FROM rollup_1h ORDER BY 1, 2",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap();
        vec![
            format!("{marks:?}"),
            format!("{minutes:?}"),
            format!("{hours:?}"),
        ]
    }

    #[tokio::test]
    async fn a_build_past_its_budget_stops_at_an_hour_and_the_next_goes_on_from_there() {
        let now = Timestamp::now().millis();
        let limit = closed_before(MINUTES, now);
        let (whole_dir, part_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let whole = three_hours_of_three_signals(whole_dir.path(), now).await;
        let parts = three_hours_of_three_signals(part_dir.path(), now).await;
        assert_eq!(sqlite(&whole).build(limit, usize::MAX).await.unwrap(), 9);

        // 25 points: a's first two hours (40 points), then a stop where its third begins.
        let (parts, first_hour) = (sqlite(&parts), bucket(now, HOUR) - 10 * HOUR);
        let ids: Vec<SeriesId> = sqlx::query_scalar("SELECT id FROM series ORDER BY name")
            .fetch_all(&parts.pool)
            .await
            .unwrap();
        assert_eq!(parts.build_some(&ids, limit, 25).await.unwrap(), Some(2));
        let marks: Vec<i64> = sqlx::query_scalar("SELECT rollups_to FROM series ORDER BY name")
            .fetch_all(&parts.pool)
            .await
            .unwrap();
        assert_eq!(marks, [first_hour + 2 * HOUR, first_hour, first_hour]);
        assert_eq!(
            parts.state.lock().await.marks.get(ids[0]),
            first_hour + 2 * HOUR
        );
        // The rest, a few hours a transaction, ends where one build would.
        assert_eq!(parts.build(limit, 25).await.unwrap(), 7);
        assert_eq!(
            marks_and_rollups(parts).await,
            marks_and_rollups(sqlite(&whole)).await
        );
    }

    fn row(series: i64, ts: i64) -> Row {
        Row {
            series: SeriesId(series),
            ts,
            value: 1.0,
        }
    }

    #[test]
    fn a_fold_splits_rows_between_stored_rollups_and_blocks_by_mark_and_raw_cutoff() {
        let cutoff = 100 * HOUR + 30 * MINUTE;
        let mut marks = Marks::default();
        // 1: new (every rollup stored, none there); 2: built to hour 103; 3: built to hour 100,
        // behind the cutoff (the packer has not run since); 4: built to hour 103.
        marks.set(SeriesId(2), 103 * HOUR);
        marks.set(SeriesId(3), 100 * HOUR);
        marks.set(SeriesId(4), 103 * HOUR);
        let rows = [
            row(1, 104 * HOUR + 5),
            row(2, 90 * HOUR),
            row(2, 100 * HOUR + 40 * MINUTE),
            row(3, 99 * HOUR),
            row(3, 100 * HOUR + 10 * MINUTE),
            row(4, 103 * HOUR + 1),
        ];
        let split = Split::of(&rows, &marks, cutoff);
        let late: Vec<(i64, i64)> = split.late.iter().map(|w| (w.series.0, w.from)).collect();
        // The mark moves back to the start of the hour of the oldest point kept raw.
        assert_eq!(late, [(1, 104 * HOUR), (2, 100 * HOUR)]);
        // Older than raw retention and before the (new) mark: the stored rollups alone.
        assert!(split.rollups_only(SeriesId(2), 90 * HOUR));
        assert!(!split.rollups_only(SeriesId(2), 100 * HOUR + 40 * MINUTE));
        assert!(split.rollups_only(SeriesId(3), 99 * HOUR));
        // Older than raw retention but from the mark on: kept raw until built.
        assert!(!split.rollups_only(SeriesId(3), 100 * HOUR + 10 * MINUTE));
        assert!(!split.rollups_only(SeriesId(4), 103 * HOUR + 1));
        let unpacked: Vec<(i64, i64)> = split
            .hours_written()
            .iter()
            .map(|w| (w.series.0, w.from))
            .collect();
        assert_eq!(unpacked, [(1, 104 * HOUR), (2, 90 * HOUR), (3, 99 * HOUR)]);
    }
}

//! A group commit: resolve signal ids, then append to the journal or fold it; a fold in named steps:
//! place points in blocks, queue the statements, commit, update the caches.

use super::super::rows::{Row, SeriesRow};
use super::built::{forget_built, Split};
use super::journal::{Journal, SeriesRun, WriteState, FOLD_POINTS, READ_POINTS};
use super::*;
use crate::server::domain::SignalName;

/// Bound values a batch of statements sent to SQLite's thread holds at most. A usual write is one
/// batch, one round trip; a large one goes in several, so its memory stays small (one batch for a
/// write of many new signals held tens of megabytes of bound values and compiled statements).
pub(super) const BATCH_BINDS: usize = 8_192;
/// Bound values per row of a block upsert (`push_block_upsert`).
pub(super) const BLOCK_BINDS: usize = 5;
/// Bound values per row of a block append (`push_block_append`).
pub(super) const APPEND_BINDS: usize = 5;
/// Bound values per row of a rollup merge (`push_rollup_merge`).
pub(super) const ROLLUP_BINDS: usize = 12;
/// Bound values per signal of a figures update (`push_figures_update`).
pub(super) const FIGURES_BINDS: usize = 5;

impl SqliteStore {
    /// A group commit of `rows` (by series and time, one per key): append them to the journal,
    /// or, if they alone would fill it, fold the journal and then them straight away. A fold starts
    /// in the background once the journal is full (`journal.rs`).
    pub(in crate::server::store) async fn write(
        &self,
        mut rows: Vec<Row>,
    ) -> Result<(), StoreError> {
        match &self.journal {
            Some(journal) if rows.len() < FOLD_POINTS => {
                journal.append(&rows).await?;
                self.fold_when_full(journal).await
            }
            _ => {
                self.settle().await?;
                // Held until the caches match the commit: retention, which may cut a tail, waits.
                let mut state = self.state.lock().await;
                let mut tx = WriteTx {
                    conn: self.writes.acquire().await?,
                    begun: false,
                };
                let mut fold = Fold::default();
                self.fold_rows(&mut fold, &mut tx, &state, &mut rows)
                    .await?;
                self.commit_fold(fold, &mut tx, &mut state).await
            }
        }
    }

    /// Folds the journal's rows up to the last one now, and then deletes them from it, reading
    /// them back a run of series at a time so that memory holds a few hundred thousand points, not
    /// the whole journal. Should the fold fail, the journal keeps its rows: the transaction rolls
    /// back.
    pub(super) async fn fold_journal(
        &self,
        journal: &Journal,
        tx: &mut WriteTx,
        state: &mut WriteState,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let taken = journal.take(READ_POINTS).await?;
        let points = taken.runs.iter().map(SeriesRun::points).sum();
        // Until the rows are deleted, a failure leaves them in the journal, their counts gone.
        let folded = async {
            let mut fold = Fold::default();
            for run in &taken.runs {
                let mut rows = journal.rows_in(taken.last, run).await?;
                self.fold_rows(&mut fold, tx, state, &mut rows).await?;
            }
            self.commit_fold(fold, tx, state).await?;
            journal.forget(taken.last, points).await
        };
        if let Err(e) = folded.await {
            journal.recount().await;
            return Err(e);
        }
        tracing::debug!(
            points,
            seconds = started.elapsed().as_secs_f64(),
            "folded the journal"
        );
        Ok(())
    }

    /// Writes `rows` into blocks, rollups and figures within the fold's transaction, a few thousand
    /// series at a time (so its memory stays small whatever the width): split them between stored
    /// rollups and raw points, bring back the packed spans written into and forget the rollups
    /// built where a raw point lands before its series' mark (`built.rs`), place the raw points
    /// in blocks and work out the rollup and figures changes, queue the statements.
    async fn fold_rows(
        &self,
        fold: &mut Fold,
        tx: &mut WriteTx,
        state: &WriteState,
        rows: &mut Vec<Row>,
    ) -> Result<(), StoreError> {
        Row::keep_one_per_key(rows);
        let raw_cutoff = self.clock.now().millis() - self.retention.raw_ms;
        let split = Split::of(rows, &state.marks, raw_cutoff);
        // The packer cannot commit from here on: its marks are as they will be until this commits.
        let conn = tx.begun().await?;
        self.unpack_written(conn, &split).await?;
        forget_built(conn, &split.late).await?;
        for part in by_series(rows, FOLD_PART_ROWS) {
            let placed = self.place_rows(tx, &state.tails, part, &split).await?;
            queue(&mut fold.batch, &mut tx.conn, &placed).await?;
            fold.tails.extend(placed.tails);
        }
        fold.marks.extend(split.late);
        Ok(())
    }

    /// Ends a fold: commits, and caches the new tails and marks.
    async fn commit_fold(
        &self,
        mut fold: Fold,
        tx: &mut WriteTx,
        state: &mut WriteState,
    ) -> Result<(), StoreError> {
        fold.batch.send(&mut tx.conn).await?;
        sqlx::query("COMMIT").execute(&mut *tx.conn).await?;
        tx.begun = false;
        for (id, tail) in fold.tails {
            state.tails.set(id, tail);
        }
        for mark in fold.marks {
            state.marks.set(mark.series, mark.from);
        }
        Ok(())
    }

    /// Inserts the signals of `names` (sorted, distinct, not known before) ahead of the write that
    /// brings their points, `NEW_SIGNALS_AT_ONCE` a transaction: other writes go on in between.
    /// Each transaction holds the writer's state, as a write does, so a name not in the cache then
    /// is not in the database either: every id returned is a new signal's, which has no block.
    pub async fn create_signals(&self, names: &[&SignalName]) -> Result<(), StoreError> {
        for chunk in names.chunks(NEW_SIGNALS_AT_ONCE) {
            let mut state = self.state.lock().await;
            let unknown = self.ids.unknown(chunk.iter().copied());
            if unknown.is_empty() {
                continue;
            }
            let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
            let texts: Vec<&str> = unknown.iter().map(|name| name.as_str()).collect();
            let fresh = insert_series(&mut tx, &texts).await?;
            tx.commit().await?;
            let mut ids = self.ids.write();
            for name in unknown {
                if let Some(&id) = fresh.get(name.as_str()) {
                    state.tails.created(id);
                    ids.insert(name.clone(), id);
                }
            }
        }
        Ok(())
    }

    /// Each series' raw points placed in its blocks (appended to the newest without reading it,
    /// where they follow it and fit; otherwise merged into the blocks they fall into, read for all
    /// such series at once), and what its rows change in the stored rollups and figures.
    async fn place_rows(
        &self,
        tx: &mut WriteTx,
        tails: &Tails,
        rows: &[Row],
        split: &Split,
    ) -> Result<Placed, StoreError> {
        let mut placed = Placed::default();
        let (mut series_points, mut wanted) = (Vec::new(), Vec::new());
        for series in rows.chunk_by(|a, b| a.series == b.series) {
            let id = series[0].series;
            let mut raw: Points = Vec::with_capacity(series.len());
            for row in series {
                if split.rollups_only(id, row.ts) {
                    // Older than raw retention: kept in the rollups only (backfill by the store's
                    // users; the HTTP API refuses such points).
                    placed.changes.added(id, row.ts, row.value);
                } else {
                    raw.push(TimeValue::new(row.ts, row.value));
                }
            }
            let mut appended = None;
            if !raw.is_empty() {
                let known = tails.get(id);
                appended = append(id, known, &raw);
                if appended.is_none() && !matches!(known, Known::NoBlock) {
                    let from = raw[0].time;
                    wanted.push(SeriesFrom { series: id, from });
                }
            }
            series_points.push(SeriesPoints {
                rows: series,
                raw,
                appended,
            });
        }
        let mut read = blocks_from(tx, &wanted).await?;
        for SeriesPoints {
            rows: series,
            raw,
            appended,
        } in series_points
        {
            let id = series[0].series;
            let mut replaced = Vec::new();
            if !raw.is_empty() {
                let placement = appended.unwrap_or_else(|| {
                    let blocks = read.remove(&id).unwrap_or_default();
                    merge_into(blocks, &raw, &mut replaced)
                });
                placed
                    .blocks
                    .extend(SeriesBlock::all(id, placement.rewritten));
                placed.appends.extend(placement.appended);
                placed
                    .tails
                    .extend(placement.tail.map(|tail| (id, Some(tail))));
            }
            let newest = &series[series.len() - 1];
            placed.figures.push(Figures {
                id,
                added: (raw.len() - replaced.len()) as i64,
                oldest_hour: bucket(series[0].ts, HOUR),
                newest_ts: newest.ts,
                newest_value: newest.value,
            });
        }
        Ok(placed)
    }
}

/// One series' rows in a fold, the points of them kept raw, and where they went if they could be
/// appended without reading anything.
struct SeriesPoints<'r> {
    rows: &'r [Row],
    raw: Points,
    appended: Option<Placement>,
}

/// Signals one transaction of `create_signals` inserts: a request naming 100,000 new signals holds
/// other writes up a few milliseconds at a time.
const NEW_SIGNALS_AT_ONCE: usize = 1_024;

/// Rows a fold places before it queues their statements: a few thousand series' worth.
const FOLD_PART_ROWS: usize = 16_384;

/// `rows` (sorted by series) in parts of about `size` rows, a series never split.
fn by_series(rows: &[Row], size: usize) -> impl Iterator<Item = &[Row]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = size.min(rest.len());
        let last = rest[end - 1].series;
        end += rest[end..].partition_point(|row| row.series == last);
        let (part, after) = rest.split_at(end);
        rest = after;
        Some(part)
    })
}

/// What a fold writes for some series, and their tails to cache once it commits.
#[derive(Default)]
struct Placed {
    blocks: Vec<SeriesBlock>,
    appends: Vec<Append>,
    changes: Changes,
    figures: Vec<Figures>,
    tails: Vec<(SeriesId, Option<Tail>)>,
}

/// What a fold has queued so far, and what it changes once it commits.
#[derive(Default)]
struct Fold {
    batch: Batch,
    tails: Vec<(SeriesId, Option<Tail>)>,
    /// Marks moved back (`Split::late`).
    marks: Vec<SeriesFrom>,
}

/// Queues blocks, rollup deltas and signal figures as multi-statement batches (`Batch`): a round
/// trip to sqlx's SQLite thread per batch instead of one per statement.
async fn queue(
    batch: &mut Batch,
    conn: &mut sqlx::SqliteConnection,
    placed: &Placed,
) -> Result<(), StoreError> {
    batch
        .statements(conn, &placed.blocks, BLOCK_BINDS, push_block_upsert)
        .await?;
    batch
        .statements(conn, &placed.appends, APPEND_BINDS, push_block_append)
        .await?;
    for (interval, merges) in placed.changes.merges() {
        let push = |sql: &mut _, chunk: &[_]| push_rollup_merge(sql, interval, chunk);
        batch.statements(conn, &merges, ROLLUP_BINDS, push).await?;
    }
    batch
        .statements(conn, &placed.figures, FIGURES_BINDS, push_figures_update)
        .await
}

/// The ids of `names` in `series`, each inserted unless it is there already: a statement per
/// `BATCH_BINDS` names, not a round trip per name, which held the writer for seconds.
pub(super) async fn insert_series<'a>(
    conn: &mut sqlx::SqliteConnection,
    names: &[&'a str],
) -> Result<HashMap<&'a str, SeriesId>, StoreError> {
    let mut ids = HashMap::default();
    for chunk in names.chunks(BATCH_BINDS) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO series (name) ");
        insert.push_values(chunk, |mut row, name| {
            row.push_bind(*name);
        });
        // The no-op update makes RETURNING yield the id whether the row is new or not.
        insert.push(" ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING name, id");
        let rows: Vec<SeriesRow> = insert.build_query_as().fetch_all(&mut *conn).await?;
        for SeriesRow { name, id } in rows {
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

/// Statements of one transaction, sent to SQLite's thread in as few round trips as their bound
/// values allow (at most `BATCH_BINDS` each). A statement of as many rows as it can hold has the
/// same text every time: it goes alone and is kept prepared (parsing multi-row statements afresh
/// took a third of a fold's time). Shorter ones, whose text varies, are queued together.
#[derive(Default)]
pub(super) struct Batch {
    sql: QueryBuilder<'static, Sqlite>,
    binds: usize,
}

impl Batch {
    /// Sends (or queues) the multi-row statements `push` writes for `rows`, each of `binds_per_row`
    /// bound values, in order.
    pub(super) async fn statements<T>(
        &mut self,
        conn: &mut sqlx::SqliteConnection,
        rows: &[T],
        binds_per_row: usize,
        push: impl Fn(&mut QueryBuilder<'static, Sqlite>, &[T]),
    ) -> Result<(), StoreError> {
        let most = BATCH_BINDS / binds_per_row;
        for chunk in rows.chunks(most) {
            let binds = chunk.len() * binds_per_row;
            if self.binds > 0 && (chunk.len() == most || self.binds + binds > BATCH_BINDS) {
                self.send(conn).await?;
            }
            if chunk.len() == most {
                let mut full = QueryBuilder::new("");
                push(&mut full, chunk);
                full.build().execute(&mut *conn).await?;
            } else {
                self.binds += binds;
                push(&mut self.sql, chunk);
            }
        }
        Ok(())
    }

    /// Sends what is queued.
    pub(super) async fn send(
        &mut self,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<(), StoreError> {
        let mut sql = std::mem::take(&mut self.sql);
        self.binds = 0;
        if !sql.sql().is_empty() {
            sql.build().persistent(false).execute(conn).await?;
        }
        Ok(())
    }
}

/// A block to store, and whose it is.
pub(super) struct SeriesBlock {
    series: SeriesId,
    packed: Packed,
}

impl SeriesBlock {
    pub(super) fn all(series: SeriesId, blocks: Vec<Packed>) -> impl Iterator<Item = SeriesBlock> {
        blocks
            .into_iter()
            .map(move |packed| SeriesBlock { series, packed })
    }
}

/// Appends the multi-row upsert of blocks (a block rewritten with more points replaces its row).
pub(super) fn push_block_upsert(batch: &mut QueryBuilder<'_, Sqlite>, blocks: &[SeriesBlock]) {
    batch.push("INSERT INTO blocks (series_id, first_ts, last_ts, count, data) ");
    batch.push_values(blocks, |mut row, SeriesBlock { series, packed: b }| {
        row.push_bind(*series)
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

/// Appends the statement that appends points to newest blocks. A blob's `||` gives text (the same
/// bytes), cast back.
pub(super) fn push_block_append(batch: &mut QueryBuilder<'_, Sqlite>, appends: &[Append]) {
    batch.push(
        "UPDATE blocks SET last_ts = d.last, count = blocks.count + d.added, \
           data = CAST(blocks.data || d.data AS BLOB) \
         FROM (SELECT column1 AS series, column2 AS first, column3 AS last, column4 AS added, \
                      column5 AS data FROM (",
    );
    batch.push_values(appends, |mut row, a| {
        row.push_bind(a.series)
            .push_bind(a.first)
            .push_bind(a.last)
            .push_bind(a.count)
            .push_bind(a.data.clone());
    });
    batch.push(")) AS d WHERE blocks.series_id = d.series AND blocks.first_ts = d.first; ");
}

/// Appends the statement that adds a write's deltas to rollup rows (or creates them).
pub(super) fn push_rollup_merge(
    batch: &mut QueryBuilder<'_, Sqlite>,
    interval: Interval,
    merges: &[rollup::Merge],
) {
    batch.push(format!(
        "INSERT INTO {} (series_id, bucket, count, sum, low, low_ts, high, high_ts, \
         first, first_ts, last, last_ts) ",
        table(interval)
    ));
    batch.push_values(merges, |mut row, merge| {
        let a = &merge.delta;
        row.push_bind(merge.series)
            .push_bind(merge.bucket)
            .push_bind(a.count)
            .push_bind(a.sum)
            .push_bind(a.low.value)
            .push_bind(a.low.time)
            .push_bind(a.high.value)
            .push_bind(a.high.time)
            .push_bind(a.first.value)
            .push_bind(a.first.time)
            .push_bind(a.last.value)
            .push_bind(a.last.time);
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

/// What one write changes in a series' figures (its point count, last point and packing mark).
pub(super) struct Figures {
    id: SeriesId,
    /// Raw points added (not replacing stored ones).
    added: i64,
    /// The start of the oldest hour written into: its minutes may have changed.
    oldest_hour: i64,
    /// The newest point written.
    newest_ts: i64,
    newest_value: f64,
}

/// Appends the statement that adds each series' new raw points to its count, moves its last point
/// forward, and moves its packing mark back to the oldest hour written into (see 0004's migration).
pub(super) fn push_figures_update(batch: &mut QueryBuilder<'_, Sqlite>, figures: &[Figures]) {
    batch.push(
        "UPDATE series SET points = points + d.added, \
           last_value = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.value ELSE last_value END, \
           last_ts = CASE WHEN last_ts IS NULL OR d.ts >= last_ts THEN d.ts ELSE last_ts END, \
           packed_to = CASE WHEN packed_to > d.hour THEN d.hour ELSE packed_to END \
         FROM (SELECT column1 AS id, column2 AS added, column3 AS ts, column4 AS value, \
                      column5 AS hour FROM (",
    );
    batch.push_values(figures, |mut row, f| {
        row.push_bind(f.id)
            .push_bind(f.added)
            .push_bind(f.newest_ts)
            .push_bind(f.newest_value)
            .push_bind(f.oldest_hour);
    });
    batch.push(")) AS d WHERE series.id = d.id; ");
}

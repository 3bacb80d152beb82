//! The journal: a write commits its points as one row of `journal`, a few bytes a point, instead of
//! updating the newest block, a minute and an hour rollup and the figures of every signal it
//! touches. With a point for each of a thousand signals, that was four thousand rows on as many
//! pages for a thousand points. Journaled points wait on disk, not in memory, until enough have
//! gathered; then a fold reads them back, a few hundred thousand at a time, and writes them into
//! blocks, rollups and figures in one transaction: each signal's rows once per fold, not once per
//! write.
//!
//! The journal is a SQLite file of its own beside the database (`PATH.journal`), so appending to it
//! and folding out of it do not take turns on one write lock: a fold runs in the background while
//! writes go on. A fold commits in the database first and then deletes the rows it folded from the
//! journal; should the server stop in between, the next start folds them again, which changes
//! nothing (a point written again over itself is the same point, counted once).
//!
//! A read folds first, so it sees every committed point; opening folds what a crash left.

use super::super::block::{put_varint, take_varint};
use super::super::dense::{unzigzag, zigzag};
use super::super::rows::Row;
use super::*;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Points the journal gathers before a fold starts in the background. The fewer folds, the fewer
/// times each signal's rows are written; a read may wait for the fold under way and one more.
/// A write of as many points on its own is folded at once.
pub(super) const FOLD_POINTS: usize = 2_000_000;

/// Points a fold takes at least for each series the journal holds, up to `LARGEST_FOLD`: a fold
/// writes each series' newest block and figures once whatever its points, so where the journal
/// holds a hundred thousand series, those rows were most of a fold of `FOLD_POINTS`.
const POINTS_PER_SERIES: usize = 40;

/// The most points a fold waits for.
const LARGEST_FOLD: usize = 4 * FOLD_POINTS;

/// Points a fold reads back from the journal at once (24 bytes each in memory), a series never
/// split between two reads.
pub(super) const READ_POINTS: usize = 524_288;

/// The first byte of a journal row: the encoding below.
const VERSION: u8 = 1;

/// What the writer keeps in memory between folds. Locked through a whole fold (and by retention,
/// which may cut a tail, and by the builder), so it always matches what is committed.
#[derive(Default)]
pub(super) struct WriteState {
    /// Series id → its newest block (`None`: no block yet), which nearly every fold appends to,
    /// so appending costs no read. Retention drops what it cuts.
    pub tails: Tails,
    /// Series id → its `rollups_to`, which says whether a fold writes before it (`built.rs`).
    pub marks: Marks,
}

/// The journal file and what this server knows of it.
#[derive(Clone)]
pub(super) struct Journal {
    /// Three connections: the writer appends on one while a fold reads on another and the upkeep
    /// checkpoints on the third.
    pool: SqlitePool,
    /// Points the journal holds, waiting to be folded.
    points: Arc<AtomicUsize>,
    /// A fold is on its way in the background: no second one is started meanwhile.
    folding: Arc<AtomicBool>,
    /// The series of the last fold's rows, or of `counts` where more: how wide the next fold is,
    /// and the one under way (whose points still count in `points`).
    series: Arc<AtomicUsize>,
    /// The points of each series in the rows no fold has taken yet, counted as they are appended,
    /// so a fold need not read the journal once more to count them. Locked through an append, so a
    /// fold's take sees each row counted or not there yet, and so `checkpoint` can hold appends
    /// up. `None` after a failed fold, whose rows stay in the journal uncounted: the next fold
    /// counts them from the journal.
    counts: Arc<tokio::sync::Mutex<Option<Counts>>>,
}

/// Points by series. Ids are SQLite's rowids, given in order from 1: a vector indexed by id holds
/// nearly all of them without hashing (a map of a hundred thousand series, updated for each write's
/// points, missed the processor's cache at nearly every update), a map the few others.
#[derive(Default)]
struct Counts {
    by_id: Vec<usize>,
    others: HashMap<SeriesId, usize>,
    /// Series with points.
    series: usize,
}

impl Counts {
    fn add(&mut self, series: SeriesId, points: usize) {
        let count = match blocks::index(series) {
            Some(i) => {
                if i >= self.by_id.len() {
                    self.by_id.resize(i + 1, 0);
                }
                &mut self.by_id[i]
            }
            None => self.others.entry(series).or_default(),
        };
        if *count == 0 {
            self.series += 1;
        }
        *count += points;
    }

    fn points(&self) -> usize {
        self.by_id.iter().sum::<usize>() + self.others.values().sum::<usize>()
    }

    /// The series with points, in id order.
    fn in_order(self) -> Vec<SeriesCount> {
        let mut counts: Vec<SeriesCount> = (self.by_id.into_iter().enumerate())
            .filter(|&(_, points)| points > 0)
            .map(|(i, points)| SeriesCount {
                series: SeriesId(i as i64),
                points,
            })
            .collect();
        if !self.others.is_empty() {
            let others = self.others.into_iter();
            counts.extend(others.map(|(series, points)| SeriesCount { series, points }));
            counts.sort_unstable_by_key(|count| count.series);
        }
        counts
    }
}

/// What a fold takes from the journal: its rows up to `last`, their series in runs.
pub(super) struct Taken {
    pub last: i64,
    pub runs: Vec<SeriesRun>,
}

impl Journal {
    /// Opens (or creates) the journal file beside the database `options` opens.
    pub async fn open(options: &SqliteConnectOptions) -> Result<Journal, StoreError> {
        let file = options.get_filename();
        let options = if file.to_str() == Some(":memory:") {
            // A database of its own, in memory too.
            SqliteConnectOptions::from_str("sqlite::memory:")?
        } else {
            let mut name = file.as_os_str().to_owned();
            name.push(".journal");
            options.clone().filename(name)
        };
        // Like the database, the journal never checkpoints inside a commit (`wal_autocheckpoint`
        // is 0 in `options`): the checkpoint's two fsyncs held up every request waiting on it.
        let pool = SqlitePoolOptions::new()
            .max_connections(3)
            .test_before_acquire(false)
            // Rows are appended and read back in order: a small cache serves.
            .connect_with(options.pragma("cache_size", "-2048"))
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
        )
        .execute(&pool)
        .await?;
        Ok(Journal {
            pool,
            points: Arc::default(),
            folding: Arc::default(),
            series: Arc::default(),
            counts: Arc::default(),
        })
    }

    /// Counts what the journal holds (left by a crash or a stop), to be folded.
    pub async fn load(&self) -> Result<(), StoreError> {
        let mut counts = self.counts.lock().await;
        let held = count(&mut *self.pool.acquire().await?, i64::MAX).await?;
        self.points.store(held.points(), Ordering::Relaxed);
        self.series.store(held.series, Ordering::Relaxed);
        *counts = Some(held);
        Ok(())
    }

    /// Points the journal holds: 0 once the database holds every committed point (`forget`).
    pub fn points(&self) -> usize {
        self.points.load(Ordering::Acquire)
    }

    /// Points at which a fold starts: `FOLD_POINTS`, or more where the journal holds many series.
    fn fold_at(&self) -> usize {
        let series = self.series.load(Ordering::Relaxed);
        series
            .saturating_mul(POINTS_PER_SERIES)
            .clamp(FOLD_POINTS, LARGEST_FOLD)
    }

    /// Commits `rows` as one journal row. Counted before the commit: a fold that starts between
    /// the commit and this task's next turn takes the row, and takes its points off the count.
    pub async fn append(&self, rows: &[Row]) -> Result<(), StoreError> {
        let mut counts = self.counts.lock().await;
        self.points.fetch_add(rows.len(), Ordering::Relaxed);
        let insert = sqlx::query("INSERT INTO journal (data) VALUES (?1)").bind(encode(rows));
        if let Err(e) = insert.execute(&self.pool).await {
            self.points.fetch_sub(rows.len(), Ordering::Relaxed);
            return Err(e.into());
        }
        if let Some(counts) = counts.as_mut() {
            let mut counting = Counting::default();
            for row in rows {
                counting.add(row.series, counts);
            }
            counting.end(counts);
            self.series.fetch_max(counts.series, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Appends rows `encode` wrote, in one transaction (an old database's journal, moved here).
    pub async fn insert(&self, entries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for data in entries {
            sqlx::query("INSERT INTO journal (data) VALUES (?1)")
                .bind(data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The rows up to the last one now, for a fold (those appended meanwhile wait for the next),
    /// their series cut into runs of about `size` points each (more where one series has more).
    pub async fn take(&self, size: usize) -> Result<Taken, StoreError> {
        let mut counted = self.counts.lock().await;
        let last = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM journal")
            .fetch_one(&self.pool)
            .await?;
        let counts = match counted.take() {
            Some(counts) => counts,
            None => count(&mut *self.pool.acquire().await?, last).await?,
        };
        *counted = Some(Counts::default());
        self.series.store(counts.series, Ordering::Relaxed);
        drop(counted);
        Ok(Taken {
            last,
            runs: cut(counts.in_order(), size),
        })
    }

    /// After a fold failed: the rows it took stay, and are counted again by the next.
    pub async fn recount(&self) {
        *self.counts.lock().await = None;
    }

    /// Deletes the rows up to `last`, `points` points, folded and committed in the database.
    pub async fn forget(&self, last: i64, points: usize) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM journal WHERE id <= ?1")
            .bind(last)
            .execute(&self.pool)
            .await?;
        self.points.fetch_sub(points, Ordering::Release);
        Ok(())
    }

    /// Copies the journal's WAL into its file as `SqliteStore::checkpoint` does the database's.
    /// Every frame copied is not enough here: SQLite starts a WAL over only when no reader is
    /// inside it, and under full ingest a fold reads the journal nearly all the time. So past
    /// `WAL_FRAMES` the appends wait (through `counts`) while a RESTART pass waits for the read
    /// under way to end, and the next append starts the WAL over.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_past(WAL_FRAMES).await
    }

    /// `checkpoint`, holding appends up once the WAL is longer than `frames`.
    async fn checkpoint_past(&self, frames: i64) -> Result<(), StoreError> {
        if passes(&self.pool).await?.log > frames {
            let _appends = self.counts.lock().await;
            sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl SqliteStore {
    /// Folds the journal's points into blocks, rollups and figures, if it holds any: what a read
    /// does first, so it sees every committed point.
    pub async fn settle(&self) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        // Nothing waiting: every committed point is in the database already (a fold commits there
        // before the journal forgets its points), so a read need not wait for whatever holds the
        // state (a fold, a rollup build, retention) to read it.
        if journal.points() == 0 {
            return Ok(());
        }
        let mut state = self.state.lock().await;
        if journal.points() == 0 {
            return Ok(());
        }
        let mut tx = WriteTx {
            conn: self.writes.acquire().await?,
            begun: false,
        };
        self.fold_journal(journal, &mut tx, &mut state).await
    }

    /// After an append: starts a fold in the background once the journal holds enough points
    /// (`fold_at`; unless one is on its way), and waits for folds while it holds twice as many:
    /// folds that cannot keep up slow writes down instead of letting the journal (and the next
    /// fold) grow without end.
    pub(super) async fn fold_when_full(&self, journal: &Journal) -> Result<(), StoreError> {
        let (points, fold_at) = (journal.points(), journal.fold_at());
        if points >= 2 * fold_at {
            return self.settle().await;
        }
        if points >= fold_at && !journal.folding.swap(true, Ordering::AcqRel) {
            let store = self.clone();
            let folding = journal.folding.clone();
            tokio::spawn(async move {
                if let Err(e) = store.settle().await {
                    tracing::warn!("folding the journal failed; the next write tries again: {e}");
                }
                folding.store(false, Ordering::Release);
            });
        }
        Ok(())
    }
}

/// Calls `f` with each of the journal's rows up to `last`, oldest first, as they are read: a fold
/// reads the journal more than once rather than hold all of it.
async fn each_entry(
    conn: &mut sqlx::SqliteConnection,
    last: i64,
    mut f: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut entries =
        sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM journal WHERE id <= ?1 ORDER BY id")
            .bind(last)
            .fetch(conn);
    while let Some(data) = entries.try_next().await? {
        f(&data)?;
    }
    Ok(())
}

/// The points of each series in the journal's rows up to `last`.
async fn count(conn: &mut sqlx::SqliteConnection, last: i64) -> Result<Counts, StoreError> {
    let mut counts = Counts::default();
    each_entry(conn, last, |data| count_by_series(data, &mut counts)).await?;
    Ok(counts)
}

/// A series and how many of the journal's points are its.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SeriesCount {
    series: SeriesId,
    points: usize,
}

/// Series in id order, and the journal's points of each: what one read of the journal brings back.
#[derive(Debug, Default)]
pub(super) struct SeriesRun {
    series: Vec<SeriesCount>,
    points: usize,
}

impl SeriesRun {
    pub fn points(&self) -> usize {
        self.points
    }
}

impl Journal {
    /// The points of the series in `run` of the journal's rows up to `last`, by series and time;
    /// points of one key in the order they were committed.
    pub async fn rows_in(&self, last: i64, run: &SeriesRun) -> Result<Vec<Row>, StoreError> {
        let mut placed = Placement::of(run);
        let conn = &mut *self.pool.acquire().await?;
        each_entry(conn, last, |data| placed.add(data)).await?;
        let mut rows = placed.rows()?;
        // Already in time order where a series' writes came in order. The sort is stable: of one
        // key, the last committed stays last.
        for series in rows.chunk_by_mut(|a, b| a.series == b.series) {
            if !series.is_sorted_by_key(|row| row.ts) {
                series.sort_by_key(|row| row.ts);
            }
        }
        Ok(rows)
    }
}

/// Adds the points of each series in the journal row `data` to `counts`.
fn count_by_series(data: &[u8], counts: &mut Counts) -> Result<(), StoreError> {
    let mut counting = Counting::default();
    each_row(data, |row| counting.add(row.series, counts))?;
    counting.end(counts);
    Ok(())
}

/// Counts a write's points by series into `Counts`: its points come by series, so one addition to
/// the map per series, not per point.
#[derive(Default)]
struct Counting {
    current: Option<SeriesCount>,
}

impl Counting {
    fn add(&mut self, series: SeriesId, counts: &mut Counts) {
        match &mut self.current {
            Some(count) if count.series == series => count.points += 1,
            _ => {
                let next = SeriesCount { series, points: 1 };
                if let Some(done) = self.current.replace(next) {
                    counts.add(done.series, done.points);
                }
            }
        }
    }

    fn end(self, counts: &mut Counts) {
        if let Some(done) = self.current {
            counts.add(done.series, done.points);
        }
    }
}

/// Series (in id order, with their points) in runs of about `size` points.
fn cut(counts: Vec<SeriesCount>, size: usize) -> Vec<SeriesRun> {
    let mut runs = Vec::new();
    let mut run = SeriesRun::default();
    for count in counts {
        run.points += count.points;
        run.series.push(count);
        if run.points >= size {
            runs.push(std::mem::take(&mut run));
        }
    }
    if !run.series.is_empty() {
        runs.push(run);
    }
    runs
}

/// A run's points placed as the journal is read: each series' points together, in the order they
/// were committed, where the counts say they go. Sorting the run instead took a second buffer of
/// up to 8 MB beside the run's rows.
struct Placement {
    rows: Vec<Row>,
    /// The run's first and last series: runs are cut in id order, so a point of a series outside
    /// them is passed over without a lookup (most points, where a fold reads several runs).
    span: RangeInclusive<SeriesId>,
    /// Series → where its next point goes and where its points end.
    slots: HashMap<SeriesId, Slot>,
}

/// Where a series' points go in a `Placement`.
struct Slot {
    next: usize,
    end: usize,
}

impl Placement {
    fn of(run: &SeriesRun) -> Placement {
        let mut slots = HashMap::default();
        let mut end = 0;
        for count in &run.series {
            let next = end;
            end += count.points;
            slots.insert(count.series, Slot { next, end });
        }
        let unset = Row {
            series: SeriesId(0),
            ts: 0,
            value: 0.0,
        };
        let span = match (run.series.first(), run.series.last()) {
            (Some(first), Some(last)) => first.series..=last.series,
            _ => SeriesId(1)..=SeriesId(0),
        };
        Placement {
            rows: vec![unset; end],
            span,
            slots,
        }
    }

    /// Places the points of the journal row `data` whose series are in the run.
    fn add(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let mut overflow = false;
        each_row(data, |row| {
            if !self.span.contains(&row.series) {
                return;
            }
            if let Some(slot) = self.slots.get_mut(&row.series) {
                if slot.next < slot.end {
                    self.rows[slot.next] = row;
                    slot.next += 1;
                } else {
                    overflow = true;
                }
            }
        })?;
        if overflow {
            return Err(changed());
        }
        Ok(())
    }

    /// The run's rows, once every one counted was placed.
    fn rows(self) -> Result<Vec<Row>, StoreError> {
        if self.slots.values().any(|slot| slot.next != slot.end) {
            return Err(changed());
        }
        Ok(self.rows)
    }
}

/// The journal's rows did not hold, read again, the points counted in them.
fn changed() -> StoreError {
    StoreError::damaged(sqlx::Error::Decode(
        "the journal's rows changed between two reads".into(),
    ))
}

/// Each row as three numbers: its series and timestamp as zigzag varints of the difference from the
/// row before (sorted rows make both small), its value as 8 little-endian bytes.
fn encode(rows: &[Row]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + rows.len() * 12);
    data.push(VERSION);
    let (mut series, mut ts) = (0, 0);
    for row in rows {
        put_varint(&mut data, zigzag(row.series.0.wrapping_sub(series)));
        put_varint(&mut data, zigzag(row.ts.wrapping_sub(ts)));
        data.extend_from_slice(&row.value.to_le_bytes());
        (series, ts) = (row.series.0, row.ts);
    }
    data
}

/// Calls `f` with each row `encode` wrote into `data`, in order.
fn each_row(data: &[u8], mut f: impl FnMut(Row)) -> Result<(), StoreError> {
    let damaged = || StoreError::damaged(sqlx::Error::Decode("a journal row is damaged".into()));
    let Some((&VERSION, mut rest)) = data.split_first() else {
        return Err(damaged());
    };
    let (mut series, mut ts) = (0i64, 0i64);
    while !rest.is_empty() {
        let (d_series, after) = take_varint(rest).ok_or_else(damaged)?;
        let (d_ts, after) = take_varint(after).ok_or_else(damaged)?;
        let (value, after) = after.split_first_chunk::<8>().ok_or_else(damaged)?;
        series = series.wrapping_add(unzigzag(d_series));
        ts = ts.wrapping_add(unzigzag(d_ts));
        f(Row {
            series: SeriesId(series),
            ts,
            value: f64::from_le_bytes(*value),
        });
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::clock;
    use crate::server::store::{Durability, Retention};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_rows_come_back_from_the_journal_as_written(
            raw in prop::collection::vec((any::<i64>(), any::<i64>(), any::<f64>()), 0..200),
        ) {
            let rows: Vec<Row> = raw
                .iter()
                .map(|&(series, ts, value)| Row { series: SeriesId(series), ts, value })
                .collect();
            let mut back = Vec::new();
            each_row(&encode(&rows), |row| back.push(row)).unwrap();
            prop_assert_eq!(back.len(), rows.len());
            for (a, b) in rows.iter().zip(&back) {
                prop_assert_eq!((a.series, a.ts, a.value.to_bits()), (b.series, b.ts, b.value.to_bits()));
            }
        }
    }

    #[test]
    fn a_damaged_journal_row_is_refused() {
        let row = Row {
            series: SeriesId(7),
            ts: 1_700_000_000_000,
            value: 1.5,
        };
        let data = encode(&[row]);
        assert!(each_row(&data[..data.len() - 1], |_| ()).is_err());
        assert!(each_row(&[], |_| ()).is_err());
        assert!(each_row(&[9], |_| ()).is_err());
    }

    proptest! {
        #[test]
        fn a_journal_read_back_in_runs_of_series_gives_each_point_once_in_commit_order(
            writes in prop::collection::vec(
                prop::collection::vec((0i64..40, 0i64..5), 0..60), 0..12),
            size in 1usize..100,
        ) {
            // Each write's rows sorted by (series, time), as a write journals them; the value
            // says which point it is.
            let mut all = Vec::new();
            let entries: Vec<Vec<u8>> = writes
                .into_iter()
                .map(|mut keys| {
                    keys.sort_unstable();
                    let rows: Vec<Row> = keys
                        .into_iter()
                        .map(|(series, ts)| {
                            let value = all.len() as f64;
                            let row = Row { series: SeriesId(series), ts, value };
                            all.push(row);
                            row
                        })
                        .collect();
                    encode(&rows)
                })
                .collect();
            let runs = cut(counted(&entries), size);
            let mut back = Vec::new();
            for pair in runs.windows(2) {
                let (end, start) = (pair[0].series.last().unwrap(), pair[1].series[0]);
                prop_assert!(end.series < start.series, "{runs:?}");
            }
            for run in &runs {
                let mut placed = Placement::of(run);
                for data in &entries {
                    placed.add(data).unwrap();
                }
                let rows = placed.rows().unwrap();
                prop_assert_eq!(rows.len(), run.points);
                prop_assert!(!rows.is_empty());
                // A run ends with the series that takes it to `size`.
                let last = rows.iter().map(|r| r.series).max();
                let before_last = rows.iter().filter(|r| Some(r.series) != last).count();
                prop_assert!(before_last < size, "{before_last} points before the last series");
                back.extend(rows);
            }
            // Commit order within each series, every point once.
            back.sort_by_key(|row| row.series);
            all.sort_by_key(|row| row.series);
            let values = |rows: &[Row]| rows.iter().map(|r| (r.series, r.value)).collect::<Vec<_>>();
            prop_assert_eq!(values(&back), values(&all));
        }
    }

    /// The series of `entries` with their points, in id order, as `Journal::take` counts them.
    fn counted(entries: &[Vec<u8>]) -> Vec<SeriesCount> {
        let mut counts = Counts::default();
        for data in entries {
            count_by_series(data, &mut counts).unwrap();
        }
        counts.in_order()
    }

    #[tokio::test]
    async fn a_fold_waits_for_more_points_where_the_journal_holds_more_series() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("width.db"))
            .create_if_missing(true);
        let journal = Journal::open(&options).await.unwrap();
        journal.load().await.unwrap();
        let rows = |series: std::ops::Range<i64>| -> Vec<Row> {
            let row = |series| Row {
                series: SeriesId(series),
                ts: 0,
                value: 0.0,
            };
            series.map(row).collect()
        };
        journal.append(&rows(0..1_000)).await.unwrap();
        assert_eq!(journal.fold_at(), FOLD_POINTS);
        journal.append(&rows(0..100_000)).await.unwrap();
        assert_eq!(journal.fold_at(), 4_000_000);
        journal.append(&rows(0..1_000_000)).await.unwrap();
        assert_eq!(journal.fold_at(), LARGEST_FOLD);
        // A fold under way keeps its width, whatever is written meanwhile; the next has its own.
        let taken = journal.take(READ_POINTS).await.unwrap();
        journal.append(&rows(0..5)).await.unwrap();
        assert_eq!(journal.fold_at(), LARGEST_FOLD);
        let folded = taken.runs.iter().map(SeriesRun::points).sum();
        journal.forget(taken.last, folded).await.unwrap();
        journal.take(READ_POINTS).await.unwrap();
        assert_eq!(journal.fold_at(), FOLD_POINTS);
    }

    /// A store on a new file in `dir`, with its journal.
    async fn store_in(dir: &std::path::Path) -> SqliteStore {
        let url = format!("sqlite://{}", dir.join("wal.db").display());
        let (retention, hold) = (Retention::default(), Hold::Exclusive);
        SqliteStore::open(&url, Durability::Normal, retention, hold, clock::system())
            .await
            .unwrap()
    }

    /// 1,000 rows of one series: 12 KB in the journal, three pages and more.
    fn a_thousand_rows() -> Vec<Row> {
        let row = |ts| Row {
            series: SeriesId(1),
            ts,
            value: 0.5,
        };
        (0..1_000).map(row).collect()
    }

    /// Frames in the journal's WAL (a checkpoint pass counts them, and copies what it can).
    async fn wal_frames(journal: &Journal) -> i64 {
        pass(&journal.pool).await.unwrap().log
    }

    #[tokio::test]
    async fn appends_leave_the_journals_checkpoints_to_the_upkeep() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let journal = store.journal.as_ref().unwrap();
        for _ in 0..1_000 {
            journal.append(&a_thousand_rows()).await.unwrap();
        }
        // 12 MB in 4 KiB pages: no append copied them out and started the WAL over.
        assert!(wal_frames(journal).await > 3_000);
        store.checkpoint().await.unwrap();
        journal.append(&a_thousand_rows()).await.unwrap();
        assert!(wal_frames(journal).await < 10);
    }

    #[tokio::test]
    async fn a_long_journal_wal_starts_over_though_a_fold_was_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let journal = store.journal.clone().unwrap();
        journal.append(&a_thousand_rows()).await.unwrap();
        // A fold's read, under way when the checkpoint starts: no pass can copy what came after it.
        let mut reader = journal.pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
        let count = "SELECT count(*) FROM journal";
        let _: i64 = sqlx::query_scalar(count)
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        for _ in 0..100 {
            journal.append(&a_thousand_rows()).await.unwrap();
        }
        let checkpoint = tokio::spawn({
            let journal = journal.clone();
            async move { journal.checkpoint_past(100).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!checkpoint.is_finished(), "it waits for the read to end");
        sqlx::query("COMMIT").execute(&mut *reader).await.unwrap();
        drop(reader);
        checkpoint.await.unwrap().unwrap();
        journal.append(&a_thousand_rows()).await.unwrap();
        assert!(wal_frames(&journal).await < 10);
    }

    #[tokio::test]
    async fn a_read_with_nothing_to_fold_waits_for_nothing_holding_the_write_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path()).await;
        let journal = store.journal.as_ref().unwrap();
        let series = "INSERT INTO series (id, name) VALUES (1, 'a')";
        sqlx::query(series).execute(&store.writes).await.unwrap();
        journal.append(&a_thousand_rows()).await.unwrap();
        store.settle().await.unwrap();
        assert_eq!(journal.points(), 0);
        // A rollup build (or retention) under way, holding the state through its transaction.
        let _building = store.state.lock().await;
        let settled = tokio::time::timeout(Duration::from_secs(1), store.settle()).await;
        assert!(matches!(settled, Ok(Ok(()))));
        // With points waiting, a read folds them first, so it waits its turn.
        journal.append(&a_thousand_rows()).await.unwrap();
        let settled = tokio::time::timeout(Duration::from_millis(100), store.settle()).await;
        assert!(settled.is_err());
    }

    #[test]
    fn a_journal_read_back_other_than_counted_is_refused_not_misplaced() {
        let row = |series, ts| Row {
            series: SeriesId(series),
            ts,
            value: 1.0,
        };
        let first = encode(&[row(1, 10), row(2, 10)]);
        let second = encode(&[row(1, 20)]);
        let runs = cut(counted(std::slice::from_ref(&first)), 100);
        // A row more than counted.
        let mut placed = Placement::of(&runs[0]);
        placed.add(&first).unwrap();
        assert!(placed.add(&second).is_err());
        // A row fewer.
        let runs = cut(counted(&[first.clone(), second.clone()]), 100);
        let mut placed = Placement::of(&runs[0]);
        placed.add(&first).unwrap();
        assert!(placed.rows().is_err());
    }
}

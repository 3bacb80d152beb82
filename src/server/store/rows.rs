//! Rows as both stores' tables hold them: the same column names in SQLite and PostgreSQL, so one
//! struct reads either (sqlx's `FromRow` derive is generic over the database).

use super::SeriesId;
use crate::downsample::{bucket_points, Aggregate, TimeValue};
use crate::model::SignalInfo;

/// A rollup bucket's first, lowest, highest and last points: the columns of the same names in
/// `rollup_1m` and `rollup_1h`.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Extremes {
    pub first_ts: i64,
    pub first: f64,
    pub low_ts: i64,
    pub low: f64,
    pub high_ts: i64,
    pub high: f64,
    pub last_ts: i64,
    pub last: f64,
}

impl Extremes {
    /// The points a chart takes from the bucket, in time order, each once.
    pub fn points(&self) -> impl Iterator<Item = TimeValue> {
        bucket_points([
            TimeValue::new(self.first_ts, self.first),
            TimeValue::new(self.low_ts, self.low),
            TimeValue::new(self.high_ts, self.high),
            TimeValue::new(self.last_ts, self.last),
        ])
    }
}

impl From<Aggregate> for Extremes {
    fn from(a: Aggregate) -> Extremes {
        Extremes {
            first_ts: a.first.time,
            first: a.first.value,
            low_ts: a.low.time,
            low: a.low.value,
            high_ts: a.high.time,
            high: a.high.value,
            last_ts: a.last.time,
            last: a.last.value,
        }
    }
}

/// A rollup row of signal `name`.
#[derive(sqlx::FromRow)]
pub(super) struct RollupRow {
    pub name: String,
    #[sqlx(flatten)]
    pub extremes: Extremes,
}

/// A signal's figures as `series` keeps them.
#[derive(sqlx::FromRow)]
pub(super) struct FiguresRow {
    pub name: String,
    pub points: i64,
    pub last_ts: i64,
    pub last_value: f64,
}

impl From<FiguresRow> for SignalInfo {
    fn from(row: FiguresRow) -> SignalInfo {
        SignalInfo {
            signal: row.name,
            points: u64::try_from(row.points).unwrap_or(0),
            last_timestamp: row.last_ts,
            last_value: row.last_value,
        }
    }
}

/// A signal's name and id, as `series` holds them.
#[derive(sqlx::FromRow)]
pub(super) struct SeriesRow {
    pub name: String,
    pub id: SeriesId,
}

/// One point of a write, with its signal's id.
#[derive(Clone, Copy, Debug)]
pub(super) struct Row {
    pub series: SeriesId,
    pub ts: i64,
    pub value: f64,
}

/// A write's points as rows of their signals' ids, by (series, time), one per key: what handlers
/// hand the writer, so that it looks up no names (`Store::to_rows`).
#[derive(Debug, Default)]
pub struct Rows(Vec<Row>);

impl Rows {
    pub(super) fn of(mut rows: Vec<Row>) -> Rows {
        Row::keep_one_per_key(&mut rows);
        Rows(rows)
    }

    /// The rows of several writes as one, each kept in order: of two points with the same key, the
    /// one of the later write wins.
    pub fn concat(writes: impl IntoIterator<Item = Rows>) -> Rows {
        let mut writes = writes.into_iter();
        let mut all = writes.next().unwrap_or_default().0;
        for Rows(rows) in writes {
            all.extend(rows);
        }
        // Sorted runs, one a write: the stable sort merges them.
        Rows::of(all)
    }

    pub(super) fn into_vec(self) -> Vec<Row> {
        self.0
    }
}

impl Row {
    /// Sorts `rows` by (series, time), one per key: of two points with the same key in one write
    /// the later one wins, as it would in two requests.
    pub fn keep_one_per_key(rows: &mut Vec<Row>) {
        // A stable sort keeps arrival order within a key: the last of each key is the one kept.
        // Rows read back from SQLite's journal come sorted already.
        if !rows.is_sorted_by_key(|row| (row.series, row.ts)) {
            rows.sort_by_key(|row| (row.series, row.ts));
        }
        rows.dedup_by(|next, kept| {
            let same = (next.series, next.ts) == (kept.series, kept.ts);
            if same {
                *kept = *next;
            }
            same
        });
    }
}

/// Every signal with points, by name: the same query for both stores.
pub(super) const SIGNALS_SQL: &str = "SELECT name, points, last_ts, last_value FROM series \
     WHERE last_ts IS NOT NULL ORDER BY name";

/// Every known signal's name and id, as a store loads them on opening.
pub(super) const SERIES_SQL: &str = "SELECT name, id FROM series";

// Tokens: the same statements in both stores (SQLite reads `$1` as PostgreSQL does).
pub(super) const TOKEN_INSERT_SQL: &str = "INSERT INTO tokens (name, scope, sha256, created_ms) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING";
pub(super) const TOKENS_SQL: &str =
    "SELECT name, scope, sha256, created_ms FROM tokens ORDER BY name";
pub(super) const TOKEN_DELETE_SQL: &str = "DELETE FROM tokens WHERE name = $1";

//! Packing: each closed hour's minute rollups in one row (migrations 0004 and 0008), each closed
//! day's hour rollups in one row (0009), and back into rows when a late point lands in them.

use super::super::packed_rollups::{self, Bucket, Span};
use super::super::PackedSpans;
use super::built::{Split, BUILD_POINTS};
use super::write::{push_rollup_merge, BATCH_BINDS, ROLLUP_BINDS};
use super::*;
use std::sync::atomic::{AtomicI64, Ordering};

/// Rollup rows one packing transaction packs at most (a day of minutes, two months of hours), so
/// the writer never waits long.
const PACK_ROWS: i64 = 1_440;

/// One kind of packing: the closed spans of a table of rollup rows, each packed into one row of
/// another table, every signal from its mark (a column of `series`) on. Before the mark a span is
/// packed alone, from it on it is rows alone.
#[derive(Clone, Copy)]
pub(super) struct Packing {
    span: Span,
    /// The rollups packed.
    interval: Interval,
    /// Where they go packed.
    packed: &'static str,
    /// The column of `series` marking how far a signal's spans are packed.
    mark: &'static str,
}

/// An hour of minute rollups in a row of `minutes_packed` (0008).
pub(super) const MINUTES: Packing = Packing {
    span: Span::HourOfMinutes,
    interval: Interval::Minute,
    packed: "minutes_packed",
    mark: "packed_to",
};

/// A day of hour rollups in a row of `hours_packed` (0009).
pub(super) const HOURS: Packing = Packing {
    span: Span::DayOfHours,
    interval: Interval::Hour,
    packed: "hours_packed",
    mark: "hours_packed_to",
};

impl Packing {
    /// The one that packs rollups of `interval`.
    pub(super) fn of(interval: Interval) -> Packing {
        match interval {
            Interval::Minute => MINUTES,
            Interval::Hour => HOURS,
        }
    }

    /// Where its rows are.
    fn rows(self) -> &'static str {
        table(self.interval)
    }

    /// The rows of the packed spans before each signal's mark that reach into `?1..=?2`, as
    /// `read::stretch_sql` chooses signals and orders rows.
    pub(super) fn packed_sql(self, signals: &str) -> String {
        let (packed, mark, length) = (self.packed, self.mark, self.span.length());
        format!(
            "SELECT s.name, p.bucket AS first_ts, p.data FROM series s JOIN {packed} p \
             ON p.series_id = s.id AND p.bucket > ?1 - {length} AND p.bucket <= ?2 \
             AND p.bucket < s.{mark} AND p.bucket < coalesce(s.rollups_to, 9223372036854775807) \
             WHERE s.last_ts >= ?1 AND {signals} ORDER BY s.name, p.bucket"
        )
    }

    /// Where a signal's rows begin within a read from ?1: at its mark, or ?1 if later.
    pub(super) fn rows_from(self) -> String {
        format!("max(?1, coalesce(s.{}, ?1))", self.mark)
    }

    /// How far a signal's spans may be packed, closed ones ending before ?1: only spans wholly
    /// before its rollups' mark are stored whole (`built.rs`), and a day packed before all its
    /// hours are built would hide the hour rows built later.
    fn limit_sql(self) -> String {
        let length = self.span.length();
        format!(
            "min(?1, coalesce(rollups_to - ((rollups_to % {length}) + {length}) % {length}, ?1))"
        )
    }
}

/// Where the closed spans of `packing` end, as of `now`: before the current span and the one
/// before.
pub(super) fn closed_before(packing: Packing, now: i64) -> i64 {
    let length = packing.span.length();
    bucket(now, length) - length
}

/// Where a signal's first span with rows begins, if it has one, and how far its spans may be
/// packed (`Packing::limit_sql`).
#[derive(sqlx::FromRow)]
struct FirstSpanRow {
    from: Option<i64>,
    limit: i64,
}

/// A signal's first span to pack, and how far its spans may be packed.
struct ToPack {
    from: i64,
    limit: i64,
}

/// Per packing, how far the furthest mark of any signal reaches: a write older than this may land
/// before its signal's mark and has to unpack (and move the mark back) first (`unpack_written`).
/// Raised by the packer before it commits.
#[derive(Default)]
pub(super) struct PackedBefore {
    minutes: AtomicI64,
    hours: AtomicI64,
}

impl PackedBefore {
    /// As the database's marks say. A mark passes the empty spans after a signal's last packed one,
    /// so the packed spans themselves would say too little.
    pub(super) async fn load(pool: &SqlitePool) -> Result<PackedBefore, StoreError> {
        let marks = PackedBefore::default();
        for packing in [MINUTES, HOURS] {
            let furthest: Option<i64> =
                sqlx::query_scalar(&format!("SELECT max({}) FROM series", packing.mark))
                    .fetch_one(pool)
                    .await?;
            marks
                .of(packing)
                .store(furthest.unwrap_or(i64::MIN), Ordering::SeqCst);
        }
        Ok(marks)
    }

    pub(super) fn of(&self, packing: Packing) -> &AtomicI64 {
        match packing.span {
            Span::HourOfMinutes => &self.minutes,
            Span::DayOfHours => &self.hours,
        }
    }
}

impl SqliteStore {
    /// Packs the minute rows of closed hours, builds the closed hours still taken from raw points
    /// (`built.rs`), then packs the hours of closed days. The current span and the one before stay
    /// as they are: late points for them are common (a producer's retries), and each one would
    /// unpack them again.
    pub async fn pack(&self, now: i64) -> Result<PackedSpans, StoreError> {
        self.settle().await?;
        let minutes = self.pack_spans(MINUTES, now).await?;
        let built = self
            .build(closed_before(MINUTES, now), BUILD_POINTS)
            .await?;
        Ok(PackedSpans {
            hours: minutes + built,
            days: self.pack_spans(HOURS, now).await?,
        })
    }

    /// Packs the closed spans of `packing`, each signal from its mark on, in transactions of at
    /// most `PACK_ROWS` rows. Returns the spans packed.
    pub(super) async fn pack_spans(&self, packing: Packing, now: i64) -> Result<u64, StoreError> {
        let length = packing.span.length();
        let limit = closed_before(packing, now);
        self.mark_empty_spans_packed(packing, limit).await?;
        let ids: Vec<SeriesId> = sqlx::query_scalar(&format!(
            "SELECT id FROM series WHERE {mark} IS NULL OR {mark} < {limit}",
            mark = packing.mark,
            limit = packing.limit_sql(),
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let spans_at_once = PACK_ROWS / (length / packing.span.bucket());
        let mut packed = 0;
        for id in ids {
            // Looked for on a reading connection first: most signals, most spans, have nothing
            // to pack, and then take no write lock.
            while first_unpacked_span(&self.pool, packing, id, limit)
                .await?
                .is_some()
            {
                let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
                // Again inside the transaction: a write may have moved a mark back since.
                let Some(ToPack { from, limit }) =
                    first_unpacked_span(&mut *tx, packing, id, limit).await?
                else {
                    tx.commit().await?;
                    break;
                };
                let to = (from + spans_at_once * length).min(limit);
                let rows: Vec<BucketRow> = sqlx::query_as(&format!(
                    "SELECT bucket, count, sum, first_ts, first, low_ts, low, high_ts, high, \
                       last_ts, last \
                     FROM {} WHERE series_id = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket",
                    packing.rows()
                ))
                .bind(id)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *tx)
                .await?;
                let buckets: Vec<Bucket> = rows.into_iter().map(Bucket::from).collect();
                let spans: Vec<PackedSpan> = buckets
                    .chunk_by(|a, b| bucket(a.start, length) == bucket(b.start, length))
                    .map(|span| {
                        let start = bucket(span[0].start, length);
                        PackedSpan {
                            start,
                            data: packed_rollups::encode(packing.span, start, span),
                        }
                    })
                    .collect();
                let mut batch = QueryBuilder::<Sqlite>::new("");
                if !spans.is_empty() {
                    batch.push(format!(
                        "INSERT INTO {} (series_id, bucket, data) ",
                        packing.packed
                    ));
                    batch.push_values(&spans, |mut row, span| {
                        row.push_bind(id)
                            .push_bind(span.start)
                            .push_bind(span.data.clone());
                    });
                    batch.push("; ");
                }
                batch
                    .push(format!("DELETE FROM {} WHERE series_id = ", packing.rows()))
                    .push_bind(id)
                    .push(" AND bucket >= ")
                    .push_bind(from)
                    .push(" AND bucket < ")
                    .push_bind(to)
                    .push(format!("; UPDATE series SET {} = ", packing.mark))
                    .push_bind(to)
                    .push(" WHERE id = ")
                    .push_bind(id);
                batch.build().execute(&mut *tx).await?;
                // Raised before the commit: a write that begins after it unpacks what it writes into.
                self.packed_before
                    .of(packing)
                    .fetch_max(to, Ordering::SeqCst);
                tx.commit().await?;
                packed += spans.len() as u64;
                tokio::task::yield_now().await;
            }
        }
        Ok(packed)
    }
}

impl SqliteStore {
    /// Moves the mark of every signal with no rows between it and `limit` to `limit`, in one
    /// statement: otherwise the packer looks each one up again every pass (a new signal's for its
    /// first day or two), seconds a pass at 100,000 signals. A write before the mark unpacks, and
    /// so moves it back, even with nothing packed.
    async fn mark_empty_spans_packed(
        &self,
        packing: Packing,
        limit: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writes.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(&format!(
            "UPDATE series SET {mark} = {limit} WHERE ({mark} IS NULL OR {mark} < {limit}) \
             AND NOT EXISTS (SELECT 1 FROM {rows} r WHERE r.series_id = series.id \
               AND r.bucket < {limit} AND r.bucket >= coalesce(series.{mark}, -9223372036854775808))",
            mark = packing.mark,
            rows = packing.rows(),
            limit = packing.limit_sql(),
        ))
        .bind(limit)
        .execute(&mut *tx)
        .await?;
        // Raised before the commit, as when packing.
        self.packed_before
            .of(packing)
            .fetch_max(limit, Ordering::SeqCst);
        tx.commit().await?;
        Ok(())
    }
}

/// The first span of series `id` at or after its mark that has rows, if it closes before the
/// series' limit (`Packing::limit_sql` of `limit`), and that limit: spans without any rows (before
/// the first, or in a gap) are skipped, not walked through.
async fn first_unpacked_span<'c, E>(
    db: E,
    packing: Packing,
    id: SeriesId,
    limit: i64,
) -> Result<Option<ToPack>, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let found: FirstSpanRow = sqlx::query_as(&format!(
        "SELECT (SELECT min(bucket) FROM {rows} WHERE series_id = ?2 AND bucket >= \
                  coalesce(series.{mark}, -9223372036854775808)) AS \"from\", \
                {limit} AS \"limit\" \
         FROM series WHERE id = ?2",
        rows = packing.rows(),
        mark = packing.mark,
        limit = packing.limit_sql(),
    ))
    .bind(limit)
    .bind(id)
    .fetch_optional(db)
    .await?
    .unwrap_or(FirstSpanRow { from: None, limit });
    let length = packing.span.length();
    Ok(found
        .from
        .map(|start| bucket(start, length))
        .filter(|&start| start < found.limit)
        .map(|from| ToPack {
            from,
            limit: found.limit,
        }))
}

/// A span of rollups packed into one row.
struct PackedSpan {
    start: i64,
    data: Vec<u8>,
}

/// A rollup row, whole (`rows::RollupRow` is the part a read takes).
#[derive(sqlx::FromRow)]
struct BucketRow {
    bucket: i64,
    count: i64,
    sum: f64,
    #[sqlx(flatten)]
    extremes: Extremes,
}

impl From<BucketRow> for Bucket {
    fn from(row: BucketRow) -> Bucket {
        let e = row.extremes;
        Bucket {
            start: row.bucket,
            aggregate: Aggregate {
                count: row.count,
                sum: row.sum,
                first: TimeValue::new(e.first_ts, e.first),
                low: TimeValue::new(e.low_ts, e.low),
                high: TimeValue::new(e.high_ts, e.high),
                last: TimeValue::new(e.last_ts, e.last),
            },
        }
    }
}

/// A row of a table of packed spans, and whose it is.
#[derive(sqlx::FromRow)]
struct PackedRow {
    id: i64,
    series_id: SeriesId,
    bucket: i64,
    data: Vec<u8>,
}

impl SqliteStore {
    /// Before a fold merges rows into the stored rollups, or forgets them from a series' new mark
    /// on: the packed spans written into come back as rows (see migrations 0008 and 0009). Only
    /// series written before the furthest packing mark are looked up (an ordinary write, into the
    /// current hour, is not), all of a fold part's at once: a producer catching up writes hours
    /// back for every signal, and statements of their own cost ~30 µs each.
    pub(super) async fn unpack_written(
        &self,
        conn: &mut sqlx::SqliteConnection,
        split: &Split,
    ) -> Result<(), StoreError> {
        // Minute rows are written only by rows kept in the rollups alone; hour rows are also
        // deleted from a moved-back mark on, so a packed day holding that hour comes back first.
        for (packing, written) in [
            (MINUTES, &split.rollups_only),
            (HOURS, &split.hours_written()),
        ] {
            let length = packing.span.length();
            let packed_before = self.packed_before.of(packing).load(Ordering::SeqCst);
            // Each series written into a packed span, from that span's start.
            let written: Vec<SeriesFrom> = written
                .iter()
                .map(|w| SeriesFrom {
                    series: w.series,
                    from: bucket(w.from, length),
                })
                .filter(|w| w.from < packed_before)
                .collect();
            for chunk in written.chunks(BATCH_BINDS / SERIES_FROM_BINDS) {
                unpack(conn, packing, chunk).await?;
            }
        }
        Ok(())
    }
}

/// Unpacks each written series' spans packed by `packing` from its span's start on into rows and
/// moves its mark back to that start: a mark, not a hole, so every later packed span comes back
/// too. The mark moves back even with nothing packed from the start on: a mark passes the empty
/// spans after the last one packed, and rows written there would otherwise be read as if packed,
/// which they are not.
async fn unpack(
    conn: &mut sqlx::SqliteConnection,
    packing: Packing,
    written: &[SeriesFrom],
) -> Result<(), StoreError> {
    let join = format!(
        "JOIN {} p ON p.series_id = w.column1 AND p.bucket >= w.column2",
        packing.packed
    );
    let mut select = for_each_series("p.id, p.series_id, p.bucket, p.data", written, &join);
    let packed: Vec<PackedRow> = select.build_query_as().fetch_all(&mut *conn).await?;
    let mut merges = Vec::new();
    for row in &packed {
        for bucket in packed_rollups::decode(row.bucket, &row.data)? {
            merges.push(rollup::Merge {
                series: row.series_id,
                bucket: bucket.start,
                delta: bucket.aggregate,
            });
        }
    }
    let mut batch = Batch::default();
    let push = |sql: &mut _, chunk: &[_]| push_rollup_merge(sql, packing.interval, chunk);
    batch.statements(conn, &merges, ROLLUP_BINDS, push).await?;
    let ids: Vec<i64> = packed.iter().map(|row| row.id).collect();
    let delete = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[i64]| {
        sql.push(format!("DELETE FROM {} WHERE id IN (", packing.packed));
        let mut ids = sql.separated(", ");
        for &id in chunk {
            ids.push_bind(id);
        }
        sql.push("); ");
    };
    batch.statements(conn, &ids, 1, delete).await?;
    let marks = |sql: &mut QueryBuilder<'static, Sqlite>, chunk: &[SeriesFrom]| {
        sql.push(format!(
            "UPDATE series SET {mark} = d.start FROM (SELECT column1 AS id, column2 AS start \
             FROM (",
            mark = packing.mark
        ));
        sql.push_values(chunk, |mut row, w| {
            row.push_bind(w.series).push_bind(w.from);
        });
        sql.push(format!(
            ")) AS d WHERE series.id = d.id AND series.{} > d.start; ",
            packing.mark
        ));
    };
    batch
        .statements(conn, written, SERIES_FROM_BINDS, marks)
        .await?;
    batch.send(conn).await
}

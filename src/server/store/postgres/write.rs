//! A group commit on PostgreSQL, in named steps: make the day partitions, then in one transaction
//! insert the points, lock their signals, merge rollups, update figures.
//!
//! Several servers write at once. Writes of one signal take turns on its `series` row (locked in id
//! order, so two writes cannot wait for each other in a cycle) for what must add up exactly: rollup
//! deltas, figures, and which points a write replaced. Most writes only add new points: they insert
//! them first, unlocked, and take the locks just for their short ending, so two servers writing the
//! same signals copy their points side by side. A write that would replace a stored point fails
//! that insert on the primary key and starts again locking first (`commit_replacing`).

use super::super::rollup::{Changes, Interval, Merge};
use super::super::rows::{Row, SeriesRow};
use super::*;
use crate::model::{HOUR, MINUTE};
use crate::server::domain::SignalName;
use sqlx::postgres::PgConnection;

/// Times a write is tried when PostgreSQL cancels it to break a deadlock or a serialisation
/// conflict (which the lock order makes rare, not impossible: retention locks rows too).
const ATTEMPTS: usize = 3;

impl PostgresStore {
    /// Stores `rows` (by series and time, one per key) in one transaction: all of them or, on
    /// error, none.
    pub(in crate::server::store) async fn write(&self, rows: Vec<Row>) -> Result<(), StoreError> {
        let now = self.clock.now().millis();
        let raw_cutoff = now - self.retention.raw_ms;
        // Step 1: the day partitions the points go to, made outside the transaction.
        let times = rows.iter().map(|row| row.ts);
        self.partitions
            .ensure(&self.pool, times, raw_cutoff, now)
            .await?;
        let mut attempt = 1;
        loop {
            let committed = match self.commit_appending(&rows, raw_cutoff).await {
                Err(StoreError::Unavailable(e)) if sqlstate(&*e) == Some(UNIQUE_VIOLATION) => {
                    self.commit_replacing(&rows, raw_cutoff).await
                }
                done => done,
            };
            match committed {
                Err(StoreError::Unavailable(e)) if attempt < ATTEMPTS && is_conflict(&*e) => {
                    attempt += 1;
                }
                done => return done,
            }
        }
    }

    /// Inserts the signals of `names` (sorted, distinct, not known here) in a statement of their
    /// own, committed at once: a signal row without points is listed nowhere, and no write waits
    /// inside its transaction for another server's new name.
    pub async fn create_signals(&self, names: &[&SignalName]) -> Result<(), StoreError> {
        let names: Vec<&str> = names.iter().map(|name| name.as_str()).collect();
        sqlx::query("INSERT INTO series (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING")
            .bind(&names)
            .execute(&self.pool)
            .await?;
        let rows: Vec<SeriesRow> =
            sqlx::query_as("SELECT name, id FROM series WHERE name = ANY($1)")
                .bind(&names)
                .fetch_all(&self.pool)
                .await?;
        self.ids.add(rows);
        Ok(())
    }

    /// Steps 2 to 6 for a write that replaces nothing: its points copied in before any lock (a
    /// stored key, or one another write is adding, fails the copy on the primary key), then its
    /// signals locked for the rollups and figures. `rows` are by (series, time), one per key; those
    /// before `raw_cutoff` go to the rollups only.
    async fn commit_appending(&self, rows: &[Row], raw_cutoff: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let raw: Vec<&Row> = rows.iter().filter(|r| r.ts >= raw_cutoff).collect();
        copy_points(&mut tx, &raw).await?;
        lock_series(&mut tx, rows).await?;
        let mut changes = Changes::default();
        for row in rows {
            changes.added(row.series, row.ts, row.value);
        }
        finish(&mut tx, rows, raw_cutoff, &changes, &Default::default()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Steps 2 to 6 for a write that may replace stored points: its signals locked first, so which
    /// points it replaced holds until it commits; the buckets holding them rebuilt.
    async fn commit_replacing(&self, rows: &[Row], raw_cutoff: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let newest: foldhash::HashMap<SeriesId, i64> = lock_series(&mut tx, rows)
            .await?
            .into_iter()
            .filter_map(|row| Some((row.id, row.last_ts?)))
            .collect();
        let (old, raw): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.ts < raw_cutoff);
        // A point after its signal's newest cannot replace one: copied in. The others may.
        let (appended, others): (Vec<&Row>, Vec<&Row>) = raw
            .iter()
            .partition(|r| newest.get(&r.series).is_none_or(|&last| r.ts > last));
        copy_points(&mut tx, &appended).await?;
        let replaced = upsert_points(&mut tx, &others).await?;
        let mut changes = Changes::default();
        for row in &old {
            changes.added(row.series, row.ts, row.value);
        }
        for row in &raw {
            if replaced.contains(&(row.series, row.ts)) {
                changes.replaced(row.series, row.ts);
            } else {
                changes.added(row.series, row.ts, row.value);
            }
        }
        finish(&mut tx, rows, raw_cutoff, &changes, &replaced).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Step 2: locks the `series` rows of `rows`' signals, in id order; returns each one's newest point.
async fn lock_series(conn: &mut PgConnection, rows: &[Row]) -> Result<Vec<Newest>, StoreError> {
    Ok(
        sqlx::query_as("SELECT id, last_ts FROM series WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(dedup_series(rows))
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Steps 4 to 6, under the signals' locks: rollup deltas merged, buckets holding a replaced point
/// rebuilt, figures updated.
async fn finish(
    conn: &mut PgConnection,
    rows: &[Row],
    raw_cutoff: i64,
    changes: &Changes,
    replaced: &foldhash::HashSet<(SeriesId, i64)>,
) -> Result<(), StoreError> {
    for (interval, merges) in changes.merges() {
        merge_rollups(&mut *conn, interval, &merges).await?;
    }
    recompute(&mut *conn, changes).await?;
    update_figures(conn, rows, raw_cutoff, replaced).await
}

/// The distinct series of `rows` (sorted by series), in order.
fn dedup_series(rows: &[Row]) -> Vec<SeriesId> {
    let mut series: Vec<SeriesId> = rows.iter().map(|r| r.series).collect();
    series.dedup();
    series
}

/// A point that replaced a stored one.
#[derive(sqlx::FromRow)]
struct ReplacedRow {
    series_id: SeriesId,
    ts: i64,
}

/// A signal's newest stored point, as the lock reads it.
#[derive(sqlx::FromRow)]
struct Newest {
    id: SeriesId,
    last_ts: Option<i64>,
}

/// Step 3a: stores points that replace nothing, with COPY in PostgreSQL's binary format: no text
/// to format here and parse there, and every value exactly as it is.
async fn copy_points(conn: &mut PgConnection, rows: &[&Row]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // The format's signature, flags and header extension length; then a tuple per row, each field
    // with its byte length, big-endian; then -1.
    let mut data = Vec::with_capacity(19 + rows.len() * 38 + 2);
    data.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    data.extend_from_slice(&[0; 8]);
    for row in rows {
        let SeriesId(id) = row.series;
        data.extend_from_slice(&3_i16.to_be_bytes());
        for field in [
            id.to_be_bytes(),
            row.ts.to_be_bytes(),
            row.value.to_be_bytes(),
        ] {
            data.extend_from_slice(&8_i32.to_be_bytes());
            data.extend_from_slice(&field);
        }
    }
    data.extend_from_slice(&(-1_i16).to_be_bytes());
    let mut copy = conn
        .copy_in_raw("COPY points (series_id, ts, value) FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// Step 3b: stores points that may replace stored ones of the same key. Returns the keys replaced.
/// The statement's parts share one snapshot: the update sees only the rows stored before it, the
/// ones the insert skipped. (The signals are locked, so no other write adds any meanwhile.)
async fn upsert_points(
    conn: &mut PgConnection,
    raw: &[&Row],
) -> Result<foldhash::HashSet<(SeriesId, i64)>, StoreError> {
    if raw.is_empty() {
        return Ok(Default::default());
    }
    let series: Vec<SeriesId> = raw.iter().map(|r| r.series).collect();
    let ts: Vec<i64> = raw.iter().map(|r| r.ts).collect();
    let values: Vec<f64> = raw.iter().map(|r| r.value).collect();
    let replaced: Vec<ReplacedRow> = sqlx::query_as(
        "WITH new AS ( \
           SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[]) AS n(series_id, ts, value)), \
         inserted AS ( \
           INSERT INTO points (series_id, ts, value) SELECT * FROM new ON CONFLICT DO NOTHING), \
         replaced AS ( \
           UPDATE points p SET value = new.value FROM new \
           WHERE p.series_id = new.series_id AND p.ts = new.ts RETURNING p.series_id, p.ts) \
         SELECT series_id, ts FROM replaced",
    )
    .bind(&series)
    .bind(&ts)
    .bind(&values)
    .fetch_all(&mut *conn)
    .await?;
    Ok(replaced.into_iter().map(|r| (r.series_id, r.ts)).collect())
}

/// Column arrays of rollup rows, for `unnest`: one statement whatever their number.
#[derive(Default)]
struct RollupColumns {
    series: Vec<SeriesId>,
    bucket: Vec<i64>,
    count: Vec<i64>,
    sum: Vec<f64>,
    low: Vec<f64>,
    low_ts: Vec<i64>,
    high: Vec<f64>,
    high_ts: Vec<i64>,
    first: Vec<f64>,
    first_ts: Vec<i64>,
    last: Vec<f64>,
    last_ts: Vec<i64>,
}

impl RollupColumns {
    fn of(merges: &[Merge]) -> RollupColumns {
        let mut c = RollupColumns::default();
        for Merge {
            series,
            bucket,
            delta: a,
        } in merges
        {
            c.series.push(*series);
            c.bucket.push(*bucket);
            c.count.push(a.count);
            c.sum.push(a.sum);
            c.low.push(a.low.value);
            c.low_ts.push(a.low.time);
            c.high.push(a.high.value);
            c.high_ts.push(a.high.time);
            c.first.push(a.first.value);
            c.first_ts.push(a.first.time);
            c.last.push(a.last.value);
            c.last_ts.push(a.last.time);
        }
        c
    }
}

/// Step 4: adds each write's deltas to its rollup rows (or creates them).
async fn merge_rollups(
    conn: &mut PgConnection,
    interval: Interval,
    merges: &[Merge],
) -> Result<(), StoreError> {
    if merges.is_empty() {
        return Ok(());
    }
    let c = RollupColumns::of(merges);
    let table = table(interval);
    sqlx::query(&format!(
        "INSERT INTO {table} AS r (series_id, bucket, count, sum, low, low_ts, high, high_ts, \
           first, first_ts, last, last_ts) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], \
           $5::float8[], $6::bigint[], $7::float8[], $8::bigint[], $9::float8[], $10::bigint[], \
           $11::float8[], $12::bigint[]) \
         ON CONFLICT (series_id, bucket) DO UPDATE SET \
           count = r.count + excluded.count, \
           sum = r.sum + excluded.sum, \
           low_ts = CASE WHEN excluded.low < r.low THEN excluded.low_ts ELSE r.low_ts END, \
           low = least(r.low, excluded.low), \
           high_ts = CASE WHEN excluded.high > r.high THEN excluded.high_ts ELSE r.high_ts END, \
           high = greatest(r.high, excluded.high), \
           first = CASE WHEN excluded.first_ts < r.first_ts THEN excluded.first ELSE r.first END, \
           first_ts = least(r.first_ts, excluded.first_ts), \
           last = CASE WHEN excluded.last_ts > r.last_ts THEN excluded.last ELSE r.last END, \
           last_ts = greatest(r.last_ts, excluded.last_ts)"
    ))
    .bind(&c.series)
    .bind(&c.bucket)
    .bind(&c.count)
    .bind(&c.sum)
    .bind(&c.low)
    .bind(&c.low_ts)
    .bind(&c.high)
    .bind(&c.high_ts)
    .bind(&c.first)
    .bind(&c.first_ts)
    .bind(&c.last)
    .bind(&c.last_ts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) fn table(interval: Interval) -> &'static str {
    match interval {
        Interval::Minute => "rollup_1m",
        Interval::Hour => "rollup_1h",
    }
}

/// The aggregate columns of a bucket rebuilt from `src` rows (`p`, with the bucket as `k.bucket`):
/// the lowest and highest with the earliest time among equals, as the merges keep them.
macro_rules! rebuilt {
    ($count:literal, $sum:literal, $low:literal, $low_ts:literal, $high:literal, $high_ts:literal,
     $first:literal, $first_ts:literal, $last:literal, $last_ts:literal) => {
        concat!(
            $count,
            ", ",
            $sum,
            ", ",
            "(array_agg(",
            $low,
            " ORDER BY ",
            $low,
            ", ",
            $low_ts,
            "))[1], ",
            "(array_agg(",
            $low_ts,
            " ORDER BY ",
            $low,
            ", ",
            $low_ts,
            "))[1], ",
            "(array_agg(",
            $high,
            " ORDER BY ",
            $high,
            " DESC, ",
            $high_ts,
            "))[1], ",
            "(array_agg(",
            $high_ts,
            " ORDER BY ",
            $high,
            " DESC, ",
            $high_ts,
            "))[1], ",
            "(array_agg(",
            $first,
            " ORDER BY ",
            $first_ts,
            "))[1], min(",
            $first_ts,
            "), ",
            "(array_agg(",
            $last,
            " ORDER BY ",
            $last_ts,
            " DESC))[1], max(",
            $last_ts,
            ")"
        )
    };
}

/// Overwrites every column of a rollup row with the rebuilt one.
const REPLACE_ROW: &str = "ON CONFLICT (series_id, bucket) DO UPDATE SET count = excluded.count, \
     sum = excluded.sum, low = excluded.low, low_ts = excluded.low_ts, high = excluded.high, \
     high_ts = excluded.high_ts, first = excluded.first, first_ts = excluded.first_ts, \
     last = excluded.last, last_ts = excluded.last_ts";

/// Step 5: rebuilds the buckets holding a replaced point: minutes from the raw points, then hours
/// from their minutes.
async fn recompute(conn: &mut PgConnection, changes: &Changes) -> Result<(), StoreError> {
    let minutes_from_points = rebuilt!(
        "count(*)",
        "sum(p.value)",
        "p.value",
        "p.ts",
        "p.value",
        "p.ts",
        "p.value",
        "p.ts",
        "p.value",
        "p.ts"
    );
    let hours_from_minutes = rebuilt!(
        "sum(p.count)",
        "sum(p.sum)",
        "p.low",
        "p.low_ts",
        "p.high",
        "p.high_ts",
        "p.first",
        "p.first_ts",
        "p.last",
        "p.last_ts"
    );
    // Minutes first: the hours are rebuilt from them.
    let passes = [
        Rebuild {
            stale: &changes.stale_minutes,
            table: "rollup_1m",
            columns: minutes_from_points,
            source: "points",
            time: "ts",
            width: MINUTE,
        },
        Rebuild {
            stale: &changes.stale_hours,
            table: "rollup_1h",
            columns: hours_from_minutes,
            source: "rollup_1m",
            time: "bucket",
            width: HOUR,
        },
    ];
    for Rebuild {
        stale,
        table,
        columns,
        source,
        time,
        width,
    } in passes
    {
        if stale.is_empty() {
            continue;
        }
        let (series, buckets) = keys(stale);
        sqlx::query(&format!(
            "INSERT INTO {table} SELECT k.series_id, k.bucket, {columns} \
             FROM unnest($1::bigint[], $2::bigint[]) AS k(series_id, bucket) \
             JOIN {source} p ON p.series_id = k.series_id AND p.{time} >= k.bucket \
               AND p.{time} < k.bucket + {width} \
             GROUP BY k.series_id, k.bucket {REPLACE_ROW}"
        ))
        .bind(&series)
        .bind(&buckets)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// How one rollup table's stale buckets are rebuilt: from which rows of which table.
struct Rebuild<'c> {
    stale: &'c std::collections::BTreeSet<(SeriesId, i64)>,
    table: &'static str,
    /// The aggregate columns, computed over the source rows `p`.
    columns: &'static str,
    source: &'static str,
    /// The source's time column.
    time: &'static str,
    width: i64,
}

/// (series, bucket) keys as two column arrays.
fn keys(keys: &std::collections::BTreeSet<(SeriesId, i64)>) -> (Vec<SeriesId>, Vec<i64>) {
    keys.iter().copied().unzip()
}

/// Step 6: each signal's raw points added (not replacing stored ones) and its newest point. Last,
/// as in SQLite: a commit refused here has sent everything else.
async fn update_figures(
    conn: &mut PgConnection,
    rows: &[Row],
    raw_cutoff: i64,
    replaced: &foldhash::HashSet<(SeriesId, i64)>,
) -> Result<(), StoreError> {
    let (mut ids, mut added, mut ts, mut values) = (vec![], vec![], vec![], vec![]);
    for series in rows.chunk_by(|a, b| a.series == b.series) {
        let new = series
            .iter()
            .filter(|r| r.ts >= raw_cutoff && !replaced.contains(&(r.series, r.ts)))
            .count();
        let newest = series[series.len() - 1];
        ids.push(newest.series);
        added.push(new as i64);
        ts.push(newest.ts);
        values.push(newest.value);
    }
    sqlx::query(
        "UPDATE series s SET points = s.points + d.added, \
           last_value = CASE WHEN s.last_ts IS NULL OR d.ts >= s.last_ts THEN d.value \
             ELSE s.last_value END, \
           last_ts = CASE WHEN s.last_ts IS NULL OR d.ts >= s.last_ts THEN d.ts ELSE s.last_ts END \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[]) \
           AS d(id, added, ts, value) \
         WHERE s.id = d.id",
    )
    .bind(&ids)
    .bind(&added)
    .bind(&ts)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A copied point's key is stored already (or being stored by another write): the write may
/// replace points, and starts again as one that does.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether PostgreSQL cancelled the transaction to break a deadlock or a serialisation conflict:
/// trying again may succeed.
fn is_conflict(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(sqlstate(e), Some("40P01" | "40001"))
}

/// The SQLSTATE code of a PostgreSQL error.
fn sqlstate<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e str> {
    let db = e.downcast_ref::<sqlx::Error>()?.as_database_error()?;
    Some(
        db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
            .code(),
    )
}

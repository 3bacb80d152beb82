//! The store in a real SQLite file, down to its tables: rollup rows checked against the raw points,
//! packed hours, retention, old schemas repacked on open, and the WAL under steady
//! writes and on close. What every store must do, through `Store` alone, is `tests/store.rs`.

mod common;

use common::{figures, point, write};
use proptest::prelude::*;
use signalboard::server::clock;
use signalboard::server::domain::{DataPoint, SignalName, Timestamp};
use signalboard::server::store::{Durability, PackedSpans, Range, Retention, Shape, Store};
use sqlx::Connection;
use std::collections::BTreeMap;

/// An hour boundary, minus 150 s: random writes around it fill minutes of two hours.
const BASE: i64 = 1_795_003_200_000 - 150_000;
const DAY: i64 = 86_400_000;

/// A century of retention: nothing expires.
fn forever() -> Retention {
    Retention::days(36_500, 36_500, 36_500)
}

/// A store on a new database file `name` that keeps everything (a century of retention): the folder
/// (deleted when dropped), the database's URL and the store.
async fn keeping_everything(name: &str) -> (tempfile::TempDir, String, Store) {
    keeping(name, forever()).await
}

/// A store on a new database file `name` with `retention`, as `keeping_everything`.
async fn keeping(name: &str, retention: Retention) -> (tempfile::TempDir, String, Store) {
    keeping_on(name, retention, clock::system()).await
}

/// As `keeping`, on `clock`.
async fn keeping_on(
    name: &str,
    retention: Retention,
    clock: clock::SharedClock,
) -> (tempfile::TempDir, String, Store) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join(name).display());
    let store = Store::open(&database, Durability::Normal, retention, clock)
        .await
        .unwrap();
    (dir, database, store)
}

/// Runs `sql` on the database while no store has it open (leaving it as an older version would
/// have), then opens a store on it again.
async fn reopen_after(database: &str, sql: &str) -> Store {
    let mut db = sqlx::SqliteConnection::connect(database).await.unwrap();
    sqlx::query(sql).execute(&mut db).await.unwrap();
    db.close().await.unwrap();
    Store::open(database, Durability::Normal, forever(), clock::system())
        .await
        .unwrap()
}

/// The raw points of every signal from `BASE + from` to `BASE + to`.
async fn read_raw(store: &Store, from: i64, to: i64) -> Vec<signalboard::model::Series> {
    let range = Range {
        from: Timestamp::from_millis(BASE + from).unwrap(),
        to: Timestamp::from_millis(BASE + to).unwrap(),
        signals: None,
    };
    store
        .read(&range, Shape::Raw { limit: 100_000 })
        .await
        .unwrap()
}

/// Each signal's raw points from `BASE + from` to `BASE + to`, as (time, value) pairs.
async fn raw_pairs(store: &Store, from: i64, to: i64) -> Vec<Vec<(i64, f64)>> {
    let series = read_raw(store, from, to).await;
    let pairs = |s: &signalboard::model::Series| {
        let values = s.values.iter().copied();
        s.timestamps.iter().copied().zip(values).collect()
    };
    series.iter().map(pairs).collect()
}

/// One rollup row as stored: (series name, bucket) → (count, sum, low, high, first, first_ts, last, last_ts).
type Row = (i64, f64, f64, f64, f64, i64, f64, i64);

async fn rollup_rows(database: &str, table: &str) -> BTreeMap<(String, i64), Row> {
    let mut db = sqlx::SqliteConnection::connect(database).await.unwrap();
    let sql = format!(
        "SELECT s.name, r.bucket, r.count, r.sum, r.low, r.high, r.first, r.first_ts, r.last, r.last_ts \
         FROM {table} r JOIN series s ON s.id = r.series_id"
    );
    let mut rows = BTreeMap::new();
    for row in sqlx::query(&sql).fetch_all(&mut db).await.unwrap() {
        use sqlx::Row as _;
        let key = (row.get::<String, _>(0), row.get::<i64, _>(1));
        let value = (
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            row.get(6),
            row.get(7),
            row.get(8),
            row.get(9),
        );
        rows.insert(key, value);
    }
    rows
}

/// The starts of the spans packed in `table` (`minutes_packed`: hours, `hours_packed`: days), of
/// every signal.
async fn packed(database: &str, table: &str) -> Vec<i64> {
    let mut db = sqlx::SqliteConnection::connect(database).await.unwrap();
    sqlx::query_scalar(&format!("SELECT bucket FROM {table}"))
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// What the rollup rows must be, computed from the final raw points.
fn expected(raw: &BTreeMap<(String, i64), f64>, interval: i64) -> BTreeMap<(String, i64), Row> {
    let mut out: BTreeMap<(String, i64), Row> = BTreeMap::new();
    for ((signal, t), &v) in raw {
        let bucket = t - t.rem_euclid(interval);
        out.entry((signal.clone(), bucket))
            .and_modify(|r| {
                r.0 += 1;
                r.1 += v;
                r.2 = r.2.min(v);
                r.3 = r.3.max(v);
                // Keys iterate in time order: the last seen is the last.
                (r.6, r.7) = (v, *t);
            })
            .or_insert((1, v, v, v, v, *t, v, *t));
    }
    out
}

fn close(a: &BTreeMap<(String, i64), Row>, b: &BTreeMap<(String, i64), Row>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, ra), (kb, rb))| {
            ka == kb
                && (ra.0, ra.2, ra.3, ra.4, ra.5, ra.6, ra.7)
                    == (rb.0, rb.2, rb.3, rb.4, rb.5, rb.6, rb.7)
                && (ra.1 - rb.1).abs() < 1e-6
        })
}

fn batches() -> impl Strategy<Value = Vec<Vec<(u8, i64, i32)>>> {
    // Few signals and seconds, so that batches repeat and reorder keys across and within themselves,
    // and enough points that a signal spans several blocks and late points land in older ones.
    let point = (0u8..3, 0i64..300, -1000i32..1000);
    prop::collection::vec(prop::collection::vec(point, 1..120), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn rollups_and_raw_reads_match_any_write_history(batches in batches()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (_dir, database, store) = keeping_everything("r.db").await;
            let mut raw = BTreeMap::new();
            for batch in &batches {
                let points: Vec<DataPoint> = batch
                    .iter()
                    .map(|&(s, sec, v)| point(&format!("s{s}"), BASE + sec * 1000, f64::from(v) / 4.0))
                    .collect();
                for p in &points {
                    raw.insert((p.signal.to_string(), p.timestamp.millis()), p.value.get());
                }
                write(&store, &points).await;
            }
            let range = Range {
                from: Timestamp::from_millis(BASE).unwrap(),
                to: Timestamp::from_millis(BASE + 300_000).unwrap(),
                signals: None,
            };
            let mut read = BTreeMap::new();
            for series in store.read(&range, Shape::Raw { limit: 100_000 }).await.unwrap() {
                prop_assert!(series.timestamps.windows(2).all(|w| w[0] < w[1]), "in time order, once each");
                for (t, v) in series.timestamps.iter().zip(&series.values) {
                    read.insert((series.signal.clone(), *t), *v);
                }
            }
            prop_assert_eq!(&read, &raw, "raw points read back as last written");
            // Until the packer builds them, minute rollups are read from the raw points; built once
            // both hours have closed, they answer the same, and the hour rows hold the raw points'
            // aggregates.
            let by_minute = Shape::Decimated { max_points: 20 };
            let from_raw = store.read(&range, by_minute).await.unwrap();
            prop_assert!(from_raw.iter().all(|s| s.downsampled));
            let hours = expected(&raw, 3_600_000);
            let built = store.pack(BASE + 150_000 + 2 * 3_600_000).await.unwrap();
            prop_assert_eq!(built, PackedSpans { hours: hours.len() as u64, days: 0 });
            prop_assert_eq!(store.read(&range, by_minute).await.unwrap(), from_raw);
            store.close().await;
            prop_assert!(rollup_rows(&database, "rollup_1m").await.is_empty(), "minutes are packed");
            let stored = rollup_rows(&database, "rollup_1h").await;
            prop_assert!(close(&stored, &hours), "hours {stored:?}\nraw {raw:?}");
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn packed_hours_and_days_answer_as_their_rows_did_and_never_hide_a_later_write() {
    // Three signals over two days, one point every 7 s with a six-hour gap, values from a simple
    // generator: minutes with up to four distinct points.
    let mut seed = 12_345u64;
    let mut points = Vec::new();
    for i in 0..(2 * DAY / 7_000) {
        let t = BASE + i * 7_000;
        if (DAY / 2..DAY / 2 + 6 * 3_600_000).contains(&(t - BASE)) {
            continue;
        }
        for signal in ["a", "b", "c"] {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            points.push(point(signal, t, (seed >> 40) as f64 / 1e3));
        }
    }
    let (_dir, database, store) = keeping_everything("packed.db").await;
    write(&store, &points).await;
    // Ranges read from minute rollups (1,000 points) and from hour rollups (100, 60): whole days,
    // and ragged ends that cut packed hours and days.
    let b = || Some(vec![SignalName::parse("b").unwrap()]);
    let ranges = [
        (0, 2 * DAY, None, 1_000),
        (1_234_567, 2 * DAY - 98_765, None, 1_000),
        (DAY / 3, DAY + 17, b(), 1_000),
        (0, 2 * DAY, None, 100),
        (1_234_567, 2 * DAY - 98_765, b(), 60),
        (0, 4 * DAY, None, 100),
    ];
    let read = |store: Store| {
        let ranges = ranges.clone();
        async move {
            let mut answers = Vec::new();
            for (from, to, signals, max_points) in ranges {
                let range = Range {
                    from: Timestamp::from_millis(BASE + from).unwrap(),
                    to: Timestamp::from_millis(BASE + to).unwrap(),
                    signals,
                };
                let shape = Shape::Decimated { max_points };
                answers.push(store.read(&range, shape).await.unwrap());
            }
            answers
        }
    };
    let unpacked = read(store.clone()).await;
    assert!(unpacked[0]
        .iter()
        .all(|s| s.downsampled && s.values.len() > 600));
    let now = Timestamp::now().millis();
    // Two days from 150 s before noon touch 49 hours, the gap empties five of them; and 3 days.
    let all = PackedSpans {
        hours: 3 * 44,
        days: 3 * 3,
    };
    assert_eq!(store.pack(now).await.unwrap(), all);
    assert_eq!(packed(&database, "minutes_packed").await.len(), 3 * 44);
    assert_eq!(packed(&database, "hours_packed").await.len(), 3 * 3);
    for table in ["rollup_1m", "rollup_1h"] {
        let rows = rollup_rows(&database, table).await;
        assert!(rows.is_empty(), "packed {table} is kept packed alone");
    }
    assert_eq!(read(store.clone()).await, unpacked);
    let nothing = PackedSpans::default();
    assert_eq!(store.pack(now).await.unwrap(), nothing, "nothing left");

    // A point in a day after the last with points: before the packing marks, with nothing packed
    // from it on. Read from hour rollups, it is there.
    let beyond = [point("c", BASE + 3 * DAY + 5_000, 7.0)];
    write(&store, &beyond).await;
    let answer = read(store.clone()).await;
    let c = answer[5].iter().find(|s| s.signal == "c").unwrap();
    assert!(c.values.contains(&7.0), "{c:?}");
    // A late spike into a packed hour, a replaced point in another, a point in the gap.
    let late = [
        point("a", BASE + DAY + 3_333, 1e9),
        point("b", BASE + DAY / 3 + 7_000 * 50, -1e9),
        point("c", BASE + DAY / 2 + 3_600_000, 0.5),
    ];
    write(&store, &late).await;
    // The same points written into a store that never packed.
    let (_dir2, fresh_database, fresh) = keeping_everything("fresh.db").await;
    write(&fresh, &points).await;
    write(&fresh, &beyond).await;
    write(&fresh, &late).await;
    let expected = read(fresh.clone()).await;
    fresh.close().await;
    assert_ne!(expected, unpacked);
    assert_eq!(read(store.clone()).await, expected, "before packing again");
    // From the hour of each late point on, its signal's rollups are read from the raw points
    // again: what was built there is gone, and the days from the one it fell into are hour rows
    // again. Built hours left: a's 19 before its point a day in, b's 9 before the ninth hour, c's
    // 13 before the gap; packed days: a's first, c's first (its point is at midnight).
    assert_eq!(packed(&database, "minutes_packed").await.len(), 19 + 9 + 13);
    assert_eq!(packed(&database, "hours_packed").await.len(), 2);
    assert!(rollup_rows(&database, "rollup_1m").await.is_empty());
    assert!(rollup_rows(&fresh_database, "rollup_1h").await.is_empty());
    let again = store.pack(now).await.unwrap();
    assert!(again.hours > 0 && again.days > 0, "{again:?}");
    for table in ["rollup_1m", "rollup_1h"] {
        assert!(rollup_rows(&database, table).await.is_empty(), "{table}");
    }
    assert_eq!(read(store.clone()).await, expected, "after packing again");
    store.close().await;
}

#[tokio::test]
async fn signals_with_nothing_to_pack_are_marked_so_and_late_points_behind_the_marks_still_show() {
    let (_dir, database, store) = keeping_everything("marks.db").await;
    let now = Timestamp::now().millis();
    write(&store, &[point("new", now - 60_000, 1.0)]).await;
    assert_eq!(store.pack(now).await.unwrap(), PackedSpans::default());
    // Both marks moved to their limits, so the next passes skip the signal.
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    let marks: (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT packed_to, hours_packed_to FROM series WHERE name = 'new'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    let hour = 3_600_000;
    assert_eq!(
        marks,
        (Some(now - now % hour - hour), Some(now - now % DAY - DAY))
    );
    // Opened again, the store knows how far marks reach without having packed anything itself.
    store.close().await;
    let store = Store::open(&database, Durability::Normal, forever(), clock::system())
        .await
        .unwrap();
    // A point three days back lands behind both marks: minute and hour reads show it.
    let t = now - 3 * DAY;
    write(&store, &[point("new", t, 5.0)]).await;
    for (from, to, max_points) in [(t - 6 * hour, t + 6 * hour, 200), (t - DAY, now, 100)] {
        let range = Range {
            from: Timestamp::from_millis(from).unwrap(),
            to: Timestamp::from_millis(to).unwrap(),
            signals: None,
        };
        let answer = store
            .read(&range, Shape::Decimated { max_points })
            .await
            .unwrap();
        assert!(answer[0].values.contains(&5.0), "{answer:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn ranges_past_a_retention_are_read_from_what_is_kept() {
    let (_dir, _, store) = keeping("kept.db", Retention::days(1, 2, 3)).await;
    let now = Timestamp::now().millis();
    // Six hours at a point every 10 s, with a spike, around 1.5 days ago (past raw retention: minute
    // rollups left) and around 2.5 days ago (past minute retention too: hour rollups left).
    let centres = [now - 3 * DAY / 2, now - 5 * DAY / 2];
    let mut written = BTreeMap::new();
    for centre in centres {
        for i in -1_080..1_080 {
            let v = if i == 7 { 1e6 } else { (i as f64 / 50.0).sin() };
            written.insert(centre + i * 10_000, v);
        }
    }
    let points: Vec<DataPoint> = written.iter().map(|(&t, &v)| point("a", t, v)).collect();
    write(&store, &points).await;
    assert!(store.expire(now).await.unwrap() > 0);

    for centre in centres {
        // Buckets of about a minute, and of 14 s: both finer than what is kept.
        for half in [2 * 3_600_000 + 1_234, 1_800_000] {
            let (from, to) = (centre - half, centre + half);
            let range = Range {
                from: Timestamp::from_millis(from).unwrap(),
                to: Timestamp::from_millis(to).unwrap(),
                signals: None,
            };
            let shape = Shape::Decimated { max_points: 1_000 };
            let answer = store.read(&range, shape).await.unwrap();
            let a = &answer[0];
            assert!(a.downsampled);
            assert!(
                a.values.contains(&1e6),
                "the spike {} ms back",
                now - centre
            );
            assert!(a.timestamps.windows(2).all(|w| w[0] < w[1]));
            for (t, v) in a.timestamps.iter().zip(&a.values) {
                assert!((from..=to).contains(t), "{t} is outside the range");
                assert_eq!(written.get(t), Some(v), "a written point, at its time");
            }
        }
    }
    store.close().await;
}

#[tokio::test]
async fn retention_deletes_what_it_should_and_nothing_else() {
    // Half past an hour: the runs of points below stay inside their hours, whatever today's time.
    let now = BASE + 150_000 + 30 * 60_000;
    let clock = clock::FixedClock::at(Timestamp::from_millis(now).unwrap());
    let (_dir, database, store) = keeping_on(
        "ret.db",
        Retention::days(1, 2, 3),
        std::sync::Arc::new(clock),
    )
    .await;
    // 12,000 points from 12 h ago (more than one deletion batch), one point an hour ago.
    let old: Vec<DataPoint> = (0..12_000)
        .map(|i| point("a", now - DAY / 2 + i, 1.0))
        .collect();
    write(&store, &old).await;
    write(&store, &[point("a", now - 3_600_000, 2.0)]).await;
    // Older than raw retention already: accepted into the rollups only.
    write(&store, &[point("a", now - DAY - 3_600_000, 3.0)]).await;
    assert_eq!(store.signals().await.unwrap()[0].points, 12_001);

    // 13 hours later, the 12,000 are past the 1-day raw retention; the newer point is not. The
    // packer has built their rollups by then (the server's upkeep packs once a minute): until
    // it has, raw points are kept.
    let later = now + 13 * 3_600_000;
    assert_eq!(store.expire(later).await.unwrap(), 0, "not built yet");
    // Packed, an hour's minutes are kept as long as any of the minutes themselves: 36 hours on,
    // the minutes of 12 hours ago and later are kept (2 days), so is their hour. The day before
    // yesterday's hours are packed too (yesterday's and today's are not yet).
    let packed_then = store.pack(later).await.unwrap();
    assert_eq!(packed_then, PackedSpans { hours: 3, days: 1 });
    assert_eq!(packed(&database, "minutes_packed").await.len(), 3);
    assert_eq!(store.expire(later).await.unwrap(), 12_000);
    let signal = &store.signals().await.unwrap()[0];
    assert_eq!((signal.points, signal.last_value), (1, 2.0));
    // Minute rollups outlive raw points: the expired points and the backfilled one read back at
    // minute resolution.
    for (t, value) in [(now - DAY / 2, 1.0), (now - DAY - 3_600_000, 3.0)] {
        let range = Range {
            from: Timestamp::from_millis(t - 600_000).unwrap(),
            to: Timestamp::from_millis(t + 600_000).unwrap(),
            signals: None,
        };
        let answer = store
            .read(&range, Shape::Decimated { max_points: 80 })
            .await
            .unwrap();
        let values = &answer[0].values;
        assert!(
            !values.is_empty() && values.iter().all(|&v| v == value),
            "at {t}"
        );
    }
    store.expire(now + DAY + 12 * 3_600_000).await.unwrap();
    assert_eq!(packed(&database, "minutes_packed").await.len(), 2);
    assert_eq!(packed(&database, "hours_packed").await.len(), 1);

    // Three days on, minute rollups (2 days) are gone, hour rollups (3 days) are not yet; the
    // packed day's hours are past that too.
    store.expire(now + 3 * DAY - 4 * 3_600_000).await.unwrap();
    assert!(packed(&database, "minutes_packed").await.is_empty());
    assert!(packed(&database, "hours_packed").await.is_empty());
    assert!(!rollup_rows(&database, "rollup_1h").await.is_empty());
    store.expire(now + 10 * DAY).await.unwrap();
    assert!(rollup_rows(&database, "rollup_1h").await.is_empty());
    store.close().await;
}

#[tokio::test]
async fn points_stored_a_row_each_before_blocks_are_repacked_on_open() {
    let (_dir, database, store) = keeping_everything("old.db").await;
    store.close().await;
    // The table as migration 0001 made it, holding 1,000 points of "a" and 3 of "b".
    let store = reopen_after(
        &database,
        "CREATE TABLE points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, \
         PRIMARY KEY (series_id, ts)) WITHOUT ROWID; \
         INSERT INTO series (id, name, points, last_ts, last_value) \
           VALUES (1, 'a', 1000, 1795004049000, 499.5), (2, 'b', 3, 1795003050009, 0.1); \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
         INSERT INTO points SELECT 1, 1795003050000 + i * 1000, i * 0.5 FROM n; \
         INSERT INTO points SELECT id, 1795003050000 + 7, -7.25 FROM series WHERE name = 'b'; \
         INSERT INTO points SELECT id, 1795003050000 + 8, 1e300 FROM series WHERE name = 'b'; \
         INSERT INTO points SELECT id, 1795003050000 + 9, 0.1 FROM series WHERE name = 'b';",
    )
    .await;
    let series = read_raw(&store, 0, 2_000_000).await;
    let a = &series[0];
    assert_eq!((a.signal.as_str(), a.timestamps.len()), ("a", 1_000));
    assert_eq!((a.timestamps[2], a.values[2]), (BASE + 2_000, 1.0));
    let b = &series[1];
    assert_eq!(b.values, [-7.25, 1e300, 0.1]);
    // Writes go on into the repacked blocks.
    write(&store, &[point("b", BASE + 8, 2.0)]).await;
    let b = &read_raw(&store, 0, 2_000_000).await[1];
    assert_eq!(b.values, [-7.25, 2.0, 0.1]);
    store.close().await;
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    let left: Option<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_master WHERE name = 'points'")
            .fetch_optional(&mut db)
            .await
            .unwrap();
    assert!(left.is_none(), "the old table is gone");
}

/// Closed blocks are stored densely: a sensor's readings at 1 Hz in about two bytes a point, read
/// back exactly; a late point rewrites a closed block as it would the open one.
#[tokio::test]
async fn closed_blocks_keep_a_sensor_at_one_hertz_in_about_two_bytes_a_point() {
    let (_dir, database, store) = keeping_everything("dense.db").await;
    // Two decimals, as a thermometer reads.
    let reading = |i: i64| (5_000.0 + 2_500.0 * (i as f64 / 60.0).sin()).round() / 100.0;
    let seconds: Vec<i64> = (0..3_600).collect();
    for minute in seconds.chunks(60) {
        let points: Vec<DataPoint> = minute
            .iter()
            .map(|&i| point("temp", BASE + i * 1_000, reading(i)))
            .collect();
        write(&store, &points).await;
    }
    write(&store, &[point("temp", BASE + 500, 99.25)]).await;
    let series = &read_raw(&store, 0, 3_600_000).await[0];
    let mut expected: Vec<(i64, f64)> = seconds
        .iter()
        .map(|&i| (BASE + i * 1_000, reading(i)))
        .collect();
    expected.insert(1, (BASE + 500, 99.25));
    let read: Vec<(i64, f64)> = series
        .timestamps
        .iter()
        .copied()
        .zip(series.values.iter().copied())
        .collect();
    assert_eq!(read, expected);
    store.close().await;
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    let (bytes, points): (i64, i64) =
        sqlx::query_as("SELECT SUM(length(data)), SUM(count) FROM blocks")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(points, 3_601);
    assert!(bytes < 3 * points, "{bytes} bytes for {points} points");
}

/// A write waits in the journal until something reads; a `token` command's store opened beside the
/// server leaves it there (only the server, whose memory holds the journal and the newest blocks,
/// may fold it), and the server's next read finds the point.
#[tokio::test]
async fn the_journal_is_folded_by_its_server_alone() {
    let (_dir, database, store) = keeping_everything("journal.db").await;
    write(&store, &[point("journaled", BASE, 1.5)]).await;
    // The journal is a file of its own beside the database.
    let rows = |url: String, table: &'static str| async move {
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&mut db).await.unwrap();
        db.close().await.unwrap();
        n
    };
    let journaled_and_blocks = || async {
        (
            rows(format!("{database}.journal"), "journal").await,
            rows(database.clone(), "blocks").await,
        )
    };
    assert_eq!(journaled_and_blocks().await, (1, 0));
    let beside = Store::open_shared(&database).await.unwrap();
    beside.close().await;
    assert_eq!(journaled_and_blocks().await, (1, 0));
    let series = read_raw(&store, 0, 1).await;
    assert_eq!((series[0].timestamps[0], series[0].values[0]), (BASE, 1.5));
    assert_eq!(journaled_and_blocks().await, (0, 1));
    store.close().await;
}

/// A fold commits in the database before it deletes the rows it folded from the journal: a server
/// stopped in between folds those rows again at its next start, which must change nothing.
#[tokio::test]
async fn journal_rows_folded_again_after_a_stop_change_nothing() {
    let (dir, database, store) = keeping_everything("twice.db").await;
    write(&store, &[point("a", BASE, 1.0), point("b", BASE, 2.0)]).await;
    read_raw(&store, 0, 1).await;
    // In the journal now: a replacement of a folded point, a point replaced within the journal,
    // and new ones.
    let journaled = [
        point("a", BASE, 3.0),
        point("b", BASE + 5, 5.0),
        point("a", BASE + 1_000, 4.0),
    ];
    write(&store, &journaled).await;
    write(&store, &[point("b", BASE + 5, 6.0)]).await;
    let journal = |suffix: &str| dir.path().join(format!("twice.db.journal{suffix}"));
    let kept = dir.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    for suffix in ["", "-wal"] {
        std::fs::copy(journal(suffix), kept.join(suffix.len().to_string())).unwrap();
    }
    let figures_and_points = |store: Store| async move {
        let signals = figures(&store).await;
        let points = raw_pairs(&store, 0, 2_000).await;
        store.close().await;
        (signals, points)
    };
    let once = figures_and_points(store).await;
    assert_eq!(
        once,
        (
            vec![("a".into(), 2, 4.0), ("b".into(), 2, 6.0)],
            vec![
                vec![(BASE, 3.0), (BASE + 1_000, 4.0)],
                vec![(BASE, 2.0), (BASE + 5, 6.0)]
            ]
        )
    );
    // As if the server had stopped between the fold's commit and the journal's delete.
    let _ = std::fs::remove_file(journal("-shm"));
    for suffix in ["", "-wal"] {
        std::fs::copy(kept.join(suffix.len().to_string()), journal(suffix)).unwrap();
    }
    let mut db = sqlx::SqliteConnection::connect(&format!("{database}.journal"))
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM journal")
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_eq!(rows, 2, "both writes' rows back in the journal");
    let reopened = Store::open(&database, Durability::Normal, forever(), clock::system())
        .await
        .unwrap();
    assert_eq!(figures_and_points(reopened).await, once);
}

/// A fold that fails leaves the rows it took in the journal, and the next fold takes them with those
/// written since: none lost, none refused as other than counted.
#[tokio::test]
async fn a_failed_fold_leaves_its_points_to_the_next() {
    let (_dir, database, store) = keeping_everything("failed.db").await;
    let execute = |sql: &'static str| {
        let database = database.clone();
        async move {
            let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
            sqlx::query(sql).execute(&mut db).await.unwrap();
            db.close().await.unwrap();
        }
    };
    write(&store, &[point("a", BASE, 1.0)]).await;
    execute(
        "CREATE TRIGGER refuse_2 BEFORE UPDATE ON series WHEN NEW.last_value = 2 \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .await;
    write(&store, &[point("a", BASE + 1, 2.0), point("b", BASE, 2.0)]).await;
    // Listing the signals folds first: the fold fails, and so does the listing.
    assert!(store.signals().await.is_err());
    execute("DROP TRIGGER refuse_2").await;
    write(&store, &[point("b", BASE + 1, 3.0)]).await;
    assert_eq!(
        raw_pairs(&store, 0, 2).await,
        vec![
            vec![(BASE, 1.0), (BASE + 1, 2.0)],
            vec![(BASE, 2.0), (BASE + 1, 3.0)]
        ]
    );
    assert_eq!(
        figures(&store).await,
        vec![("a".into(), 2, 2.0), ("b".into(), 2, 3.0)]
    );
    store.close().await;
}

/// Under steady writes the WALs (the database's and its journal's) still start over: they stay a
/// small fraction of what was written, instead of growing for as long as the writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_the_wal_small_under_steady_writes() {
    let (dir, _, store) = keeping_everything("wal.db").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let mut t = BASE;
            let mut written = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let batch: Vec<DataPoint> = (0..1_000)
                    .map(|i| point(&format!("s{}", i % 5), t + i / 5, i as f64))
                    .collect();
                write(&store, &batch).await;
                t += 200;
                written += batch.len();
            }
            written
        }
    });
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        store.checkpoint().await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    let wal: u64 = ["wal.db-wal", "wal.db.journal-wal"]
        .iter()
        .map(|file| std::fs::metadata(dir.path().join(file)).unwrap().len())
        .sum();
    // Each commit writes whole pages: WAL traffic is over a hundred bytes per point here, and a WAL
    // that never started over would hold all of it. One that does holds what came between two
    // checkpoints, a fraction, even if one checkpoint came late.
    assert!(written >= 20_000, "only {written} points written");
    assert!(
        wal < written as u64 * 30,
        "WAL of {wal} bytes after {written} points"
    );
    store.close().await;
}

/// Blocks written under migration 0002 (a table clustered on series and start) move to the table in
/// commit order (0003) unchanged, and writes go on into them.
#[tokio::test]
async fn blocks_clustered_by_series_move_to_commit_order_on_open() {
    let (_dir, database, store) = keeping_everything("0002.db").await;
    let points: Vec<DataPoint> = (0..500)
        .flat_map(|i| {
            [
                point("a", BASE + i * 1000, i as f64),
                point("b", BASE + i, -(i as f64)),
            ]
        })
        .collect();
    write(&store, &points).await;
    store.close().await;
    // Back to the table as 0002 made it, as if 0003 had never run.
    let store = reopen_after(
        &database,
        "CREATE TABLE clustered (series_id INTEGER NOT NULL, first_ts INTEGER NOT NULL, \
           last_ts INTEGER NOT NULL, count INTEGER NOT NULL, data BLOB NOT NULL, \
           PRIMARY KEY (series_id, first_ts)) WITHOUT ROWID; \
         INSERT INTO clustered SELECT series_id, first_ts, last_ts, count, data FROM blocks; \
         DROP TABLE blocks; \
         ALTER TABLE clustered RENAME TO blocks; \
         DELETE FROM _sqlx_migrations WHERE version = 3;",
    )
    .await;
    write(&store, &[point("a", BASE + 500_000, 500.0)]).await;
    let series = read_raw(&store, 0, 600_000).await;
    let a = &series[0];
    assert_eq!(a.timestamps.len(), 501);
    assert!(a.values.iter().enumerate().all(|(i, &v)| v == i as f64));
    let b = &series[1];
    assert_eq!(b.timestamps, (0..500).map(|i| BASE + i).collect::<Vec<_>>());
    store.close().await;
    let mut db = sqlx::SqliteConnection::connect(&database).await.unwrap();
    let (clustered,): (bool,) = sqlx::query_as(
        "SELECT sql LIKE '%WITHOUT ROWID%' FROM sqlite_master WHERE name = 'blocks'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert!(!clustered, "blocks is in commit order");
}

/// A store's close closes the database: SQLite's last connection to close checkpoints the WAL and
/// removes it. sqlx's `Pool::close` may return while a connection is still on its way back to the
/// pool (the task its drop spawned), and one that lands after that is never closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_store_closes_the_database() {
    for round in 0..40 {
        let (dir, _, store) = keeping_everything("closed.db").await;
        write(&store, &[point("a", BASE + round, 1.0)]).await;
        assert_eq!(read_raw(&store, 0, 60_000).await.len(), 1);
        store.close().await;
        assert!(
            !dir.path().join("closed.db-wal").exists(),
            "round {round}: the WAL outlived the store's close"
        );
    }
}

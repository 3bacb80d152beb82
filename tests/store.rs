//! The store conformance suite: what every store must do, written against `Store` alone (no SQL), so
//! that each store runs the same tests. A store joins with one line in the `conformance!` call at the
//! end. What only SQLite has (its files, its WAL, its old schemas) is tested in `tests/sqlite.rs`.

mod common;

use common::{figures, point, write};
use proptest::prelude::*;
use signalboard::model::Series;
use signalboard::server::clock::{FixedClock, SharedClock};
use signalboard::server::domain::{DataPoint, Timestamp};
use signalboard::server::store::{Range, Retention, Shape, Store};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
/// An hour boundary (2026-11-26T10:00Z): writes around it fill the minutes of two hours.
const HOUR0: i64 = 1_795_687_200_000;
/// The store's clock: a day after `HOUR0`.
const NOW: i64 = HOUR0 + DAY;

/// A fresh, empty store, and the database under it, which lives as long as the test holds it.
pub struct Opened {
    pub store: Store,
    pub database: Box<dyn TestDatabase>,
}

/// Opens a fresh, empty store with a retention, on a clock.
pub type Opener = fn(Retention, SharedClock) -> Pin<Box<dyn Future<Output = Opened> + Send>>;

/// What the suite does to a store's database from outside the store.
pub trait TestDatabase: Send {
    /// From now on, the database refuses any commit that leaves a signal's last value at 13 (with
    /// an error saying "refused by the test"). A write updates figures last, so such a commit fails
    /// at its very end, after everything else of it was sent.
    fn refuse_last_value_13(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

fn clock_at(t: i64) -> Arc<FixedClock> {
    Arc::new(FixedClock::at(Timestamp::from_millis(t).unwrap()))
}

fn range(from: i64, to: i64) -> Range {
    Range {
        from: Timestamp::from_millis(from).unwrap(),
        to: Timestamp::from_millis(to).unwrap(),
        signals: None,
    }
}

async fn raw(store: &Store, from: i64, to: i64) -> Vec<Series> {
    store
        .read(&range(from, to), Shape::Raw { limit: 1_000_000 })
        .await
        .unwrap()
}

/// Two days around `HOUR0` in 40 points a signal: read from the hour rollups.
async fn wide(store: &Store) -> Vec<Series> {
    store
        .read(
            &range(HOUR0 - DAY, HOUR0 + DAY - 1),
            Shape::Decimated { max_points: 40 },
        )
        .await
        .unwrap()
}

fn pairs(series: &Series) -> Vec<(i64, f64)> {
    series
        .timestamps
        .iter()
        .copied()
        .zip(series.values.iter().copied())
        .collect()
}

fn extremes(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

pub async fn a_write_reads_back_in_time_order_by_signal(open: Opener) {
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    write(
        &store,
        &[
            point("b", HOUR0 + 2_000, 2.0),
            point("a", HOUR0 + 1_000, -1.5),
            point("b", HOUR0, 1.0),
        ],
    )
    .await;
    let answer = raw(&store, HOUR0, HOUR0 + 2_000).await;
    let names: Vec<&str> = answer.iter().map(|s| s.signal.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(pairs(&answer[0]), [(HOUR0 + 1_000, -1.5)]);
    assert_eq!(pairs(&answer[1]), [(HOUR0, 1.0), (HOUR0 + 2_000, 2.0)]);
    let signals = store.signals().await.unwrap();
    assert_eq!(signals[1].points, 2);
    assert_eq!(
        (signals[1].last_timestamp, signals[1].last_value),
        (HOUR0 + 2_000, 2.0)
    );
    store.close().await;
}

pub async fn any_finite_value_reads_back_to_the_last_bit(open: Opener) {
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    let values = [
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        -0.0,
        0.1 + 0.2,
        -7.777777707777778e-299,
        123_456_789.123_456_79,
    ];
    let points: Vec<DataPoint> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| point("exact", HOUR0 + i as i64, v))
        .collect();
    write(&store, &points).await;
    // Again, replacing each: the path for points that are not the newest.
    write(&store, &points).await;
    let answer = raw(&store, HOUR0, HOUR0 + 10).await;
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&answer[0].values), bits(&values));
    store.close().await;
}

pub async fn the_same_signal_and_time_again_overwrites_and_counts_once(open: Opener) {
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    write(&store, &[point("s", HOUR0, 1.0)]).await;
    write(&store, &[point("s", HOUR0, 7.0), point("s", HOUR0, 9.0)]).await;
    let answer = raw(&store, HOUR0, HOUR0).await;
    assert_eq!(
        pairs(&answer[0]),
        [(HOUR0, 9.0)],
        "the last write of a key wins"
    );
    assert_eq!(store.signals().await.unwrap()[0].points, 1);
    // Its minute's rollup holds the new value only: a wide read sees 9, never 1 or 7.
    assert_eq!(wide(&store).await[0].values, [9.0]);
    store.close().await;
}

pub async fn raw_reads_stop_one_past_the_limit_and_decimated_ones_keep_every_extreme(open: Opener) {
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    let points: Vec<DataPoint> = (0..2 * 1440)
        .map(|i| {
            let v = match i {
                1000 => 500.0,
                2222 => -500.0,
                _ => (i as f64 / 100.0).sin(),
            };
            point("wave", HOUR0 - DAY + 7_777 + i * MINUTE, v)
        })
        .collect();
    write(&store, &points).await;
    let (from, to) = (HOUR0 - DAY, HOUR0 + DAY);
    let limited = store
        .read(&range(from, to), Shape::Raw { limit: 100 })
        .await
        .unwrap();
    assert_eq!(limited[0].timestamps.len(), 101, "one past the limit");
    let all = raw(&store, from, to).await;
    assert_eq!(all[0].timestamps.len(), points.len());
    for max_points in [8, 100, 1_000] {
        let decimated = store
            .read(&range(from, to), Shape::Decimated { max_points })
            .await
            .unwrap();
        let d = &decimated[0];
        assert!(d.downsampled && d.timestamps.len() <= max_points);
        assert_eq!(extremes(&d.values), (-500.0, 500.0), "{max_points}");
        // Every point kept is a real point, at its real time.
        for (t, v) in pairs(d) {
            let i = all[0].timestamps.binary_search(&t).expect("a stored time");
            assert_eq!(all[0].values[i], v);
        }
    }
    store.close().await;
}

pub async fn packing_changes_no_answer_and_hides_no_later_write(open: Opener) {
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    let points: Vec<DataPoint> = (0..12 * 60)
        .map(|i| point("p", HOUR0 - 12 * HOUR + i * MINUTE + 5_000, (i % 17) as f64))
        .collect();
    write(&store, &points).await;
    let read = |store: &Store| {
        let store = store.clone();
        async move {
            store
                .read(
                    &range(HOUR0 - 12 * HOUR, HOUR0),
                    Shape::Decimated { max_points: 200 },
                )
                .await
                .unwrap()
        }
    };
    let before = read(&store).await;
    // A store may have nothing to pack (PostgreSQL); SQLite's packing is counted in tests/sqlite.rs.
    store.pack(NOW).await.unwrap();
    assert_eq!(read(&store).await, before);
    // A spike late into a packed hour shows at once.
    write(&store, &[point("p", HOUR0 - 6 * HOUR + 30_000, 1_000.0)]).await;
    let after = read(&store).await;
    assert_eq!(extremes(&after[0].values).1, 1_000.0);
    store.close().await;
}

pub async fn retention_deletes_what_is_past_each_age_and_nothing_else(open: Opener) {
    let clock = clock_at(HOUR0);
    let Opened {
        store,
        database: _keep,
    } = open(Retention::days(1, 2, 3), clock.clone()).await;
    write(
        &store,
        &[
            point("r", HOUR0 - 30 * MINUTE, 1.0),
            point("r", HOUR0 - 20 * MINUTE, 5.0),
        ],
    )
    .await;
    // A day and a half later the raw points are past their day; their minutes are kept.
    let later = HOUR0 + DAY + 12 * HOUR;
    clock.set(Timestamp::from_millis(later).unwrap());
    // Past the raw cutoff, points are gone from reads whether or not the pass deleted them yet
    // (PostgreSQL drops whole days).
    store.expire(later).await.unwrap();
    assert!(raw(&store, HOUR0 - HOUR, HOUR0).await.is_empty());
    let kept = store
        .read(
            &range(HOUR0 - HOUR, HOUR0),
            Shape::Decimated { max_points: 40 },
        )
        .await
        .unwrap();
    assert_eq!(extremes(&kept[0].values), (1.0, 5.0));
    // Past every age, nothing of it is left.
    let gone = HOUR0 + 4 * DAY;
    clock.set(Timestamp::from_millis(gone).unwrap());
    store.expire(gone).await.unwrap();
    let none = store
        .read(
            &range(HOUR0 - HOUR, HOUR0),
            Shape::Decimated { max_points: 40 },
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    store.close().await;
}

/// Writes `points`, which the database must refuse.
async fn refused(store: &Store, points: &[DataPoint]) {
    let error = store.write(&points.iter().collect::<Vec<_>>()).await;
    let error = error.expect_err("a refused commit").to_string();
    assert!(error.contains("refused by the test"), "{error}");
}

/// The extremes of each signal over two days, as the hour rollups hold them.
async fn rolled_up(store: &Store) -> BTreeMap<String, (f64, f64)> {
    wide(store)
        .await
        .iter()
        .map(|s| (s.signal.clone(), extremes(&s.values)))
        .collect()
}

pub async fn a_failed_commit_stores_nothing_and_the_next_one_works(open: Opener) {
    let Opened { store, database } = open(Retention::default(), clock_at(NOW)).await;
    write(&store, &[point("a", HOUR0, 1.0)]).await;
    database.refuse_last_value_13().await;
    // Known signals only, then with a new one: a transaction begun before and inside the write.
    refused(&store, &[point("a", HOUR0 + 1_000, 13.0)]).await;
    write(&store, &[point("a", HOUR0 + 2_000, 2.0)]).await;
    let new_signal = [point("a", HOUR0 + 3_000, 30.0), point("b", HOUR0, 13.0)];
    refused(&store, &new_signal).await;
    write(&store, &[point("b", HOUR0 + 1, 5.0)]).await;

    let answer = raw(&store, HOUR0 - DAY, HOUR0 + DAY).await;
    assert_eq!(answer.len(), 2);
    assert_eq!(pairs(&answer[0]), [(HOUR0, 1.0), (HOUR0 + 2_000, 2.0)]);
    assert_eq!(pairs(&answer[1]), [(HOUR0 + 1, 5.0)]);
    let expected = [("a".into(), 2, 2.0), ("b".into(), 1, 5.0)];
    assert_eq!(figures(&store).await, expected);
    let rollups = BTreeMap::from([("a".into(), (1.0, 2.0)), ("b".into(), (5.0, 5.0))]);
    assert_eq!(rolled_up(&store).await, rollups);
    store.close().await;
}

pub async fn a_write_of_thousands_of_new_signals_is_one_transaction(open: Opener) {
    let Opened { store, database } = open(Retention::default(), clock_at(NOW)).await;
    database.refuse_last_value_13().await;
    // 3,000 new signals: more than one statement's worth of rows for any store.
    let many = |last: f64| -> Vec<DataPoint> {
        (0..3_000)
            .map(|i| {
                point(
                    &format!("s.{i}"),
                    HOUR0,
                    if i == 2_999 { last } else { 1.0 },
                )
            })
            .collect()
    };
    // The last signal's figures are refused: everything sent before them rolls back too.
    refused(&store, &many(13.0)).await;
    assert!(store.signals().await.unwrap().is_empty());
    assert!(raw(&store, HOUR0 - DAY, HOUR0 + DAY).await.is_empty());
    assert!(rolled_up(&store).await.is_empty());

    write(&store, &many(2.0)).await;
    let signals = store.signals().await.unwrap();
    assert_eq!(signals.len(), 3_000);
    assert!(signals.iter().all(|s| s.points == 1));
    assert_eq!(raw(&store, HOUR0 - DAY, HOUR0 + DAY).await.len(), 3_000);
    assert_eq!(rolled_up(&store).await.len(), 3_000);
    store.close().await;
}

/// Each signal's points by time, as they should read back.
type Model = BTreeMap<String, BTreeMap<i64, f64>>;

/// Writes `points` and keeps their values in `expected`, later ones over earlier ones.
async fn write_remembering(store: &Store, points: &[DataPoint], expected: &mut Model) {
    for p in points {
        expected
            .entry(p.signal.to_string())
            .or_default()
            .insert(p.timestamp.millis(), p.value.get());
    }
    write(store, points).await;
}

/// Random batches of (signal, minute offset, value): out of order, with duplicates.
fn batches() -> impl Strategy<Value = Vec<Vec<(u8, i64, i32)>>> {
    prop::collection::vec(
        prop::collection::vec((0u8..3, -300i64..300, -1000i32..1000), 1..40),
        1..6,
    )
}

/// Under any order of writes, with repeats, a wide read (from the rollups) agrees with the raw
/// points that were last written for each key: the same signals, the same lowest and highest.
pub fn rollups_agree_with_raw_points_under_any_order_of_writes(open: Opener) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    proptest!(ProptestConfig::with_cases(24), |(batches in batches())| {
        runtime.block_on(async {
            let Opened { store, database: _keep } = open(Retention::default(), clock_at(NOW)).await;
            let mut expected = Model::new();
            for batch in &batches {
                let points: Vec<DataPoint> = batch
                    .iter()
                    .map(|&(s, offset, v)| point(&format!("s{s}"), HOUR0 + offset * 10_000, v.into()))
                    .collect();
                write_remembering(&store, &points, &mut expected).await;
            }
            let wide = store
                .read(&range(HOUR0 - 2 * DAY, HOUR0 + 2 * DAY), Shape::Decimated { max_points: 16 })
                .await
                .unwrap();
            let got: BTreeMap<String, (f64, f64)> =
                wide.iter().map(|s| (s.signal.clone(), extremes(&s.values))).collect();
            let want: BTreeMap<String, (f64, f64)> = expected
                .iter()
                .map(|(s, points)| (s.clone(), extremes(&points.values().copied().collect::<Vec<_>>())))
                .collect();
            store.close().await;
            prop_assert_eq!(got, want);
            Ok(())
        })?;
    });
}

/// A batch of (signal, second, value) points, and whether a read follows it.
#[derive(Debug)]
struct Step {
    points: Vec<(u8, i64, i32)>,
    read_after: bool,
}

/// Batches each later than the one before but reaching back into it (late points, repeats), some
/// followed by a read: enough points a signal to fill blocks.
fn interleaved() -> impl Strategy<Value = Vec<Step>> {
    let points = prop::collection::vec((0u8..3, -40i64..100, -1000i32..1000), 1..150);
    let step = (points, any::<bool>()).prop_map(|(points, read_after)| Step { points, read_after });
    prop::collection::vec(step, 1..8)
}

/// Whether a store appends to a block, rewrites it, or reads it back first, a raw read returns
/// each (signal, time) once with the value last written for it, whichever writes were read between.
pub fn raw_reads_return_the_last_value_of_each_point_however_writes_and_reads_interleave(
    open: Opener,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    proptest!(ProptestConfig::with_cases(24), |(batches in interleaved())| {
        runtime.block_on(async {
            let Opened { store, database: _keep } = open(Retention::default(), clock_at(NOW)).await;
            let mut expected = Model::new();
            for (k, step) in batches.iter().enumerate() {
                let points: Vec<DataPoint> = step
                    .points
                    .iter()
                    .map(|&(s, second, v)| {
                        let t = HOUR0 + (k as i64 * 100 + second) * 1_000;
                        point(&format!("s{s}"), t, v.into())
                    })
                    .collect();
                write_remembering(&store, &points, &mut expected).await;
                if step.read_after {
                    raw(&store, HOUR0, HOUR0 + 1).await;
                }
            }
            let got: BTreeMap<String, Vec<(i64, f64)>> = raw(&store, HOUR0 - DAY, HOUR0 + DAY)
                .await
                .iter()
                .map(|s| (s.signal.clone(), pairs(s)))
                .collect();
            let want: BTreeMap<String, Vec<(i64, f64)>> = expected
                .into_iter()
                .map(|(s, points)| (s, points.into_iter().collect()))
                .collect();
            store.close().await;
            prop_assert_eq!(got, want);
            Ok(())
        })?;
    });
}

/// An alert episode's bookkeeping: fired once with its notification and annotation, the outbox
/// handing a notification to one sender at a time until it is delivered, resolved once.
pub async fn an_episode_fires_once_and_its_notification_leaves_once_delivered(open: Opener) {
    use signalboard::server::store::{Aftermath, Attempt, Episode, NewAnnotation, Outgoing};
    let Opened {
        store,
        database: _keep,
    } = open(Retention::default(), clock_at(NOW)).await;
    let rule = store
        .create_alert_rule(r#"{"name":"r"}"#, NOW)
        .await
        .unwrap();
    let other = store
        .create_alert_rule(r#"{"name":"s"}"#, NOW)
        .await
        .unwrap();
    assert_ne!(rule, other);
    let aftermath = |text: &str| Aftermath {
        notification: Some(Outgoing {
            rule_id: rule,
            url: "http://127.0.0.1:9/hook".into(),
            body: format!("{{\"text\":\"{text}\"}}"),
            created_ms: NOW,
        }),
        annotation: NewAnnotation {
            time_ms: NOW,
            end_ms: None,
            text: text.into(),
            tags: "[]".into(),
            signals: "[\"a\"]".into(),
        },
    };
    let episode = Episode {
        rule_id: rule,
        signal: "a".into(),
        since_ms: NOW - 10_000,
        fired_ms: NOW,
        value: Some(95.5),
    };
    assert!(store.fire(&episode, &aftermath("fired")).await.unwrap());
    assert!(
        !store.fire(&episode, &aftermath("again")).await.unwrap(),
        "once per episode"
    );
    assert_eq!(store.alert_episodes().await.unwrap(), [episode]);

    // Taken, it is leased: nobody takes it again until it is due once more.
    let due = store
        .take_due_notifications(NOW, NOW + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].body, r#"{"text":"fired"}"#);
    assert!(store
        .take_due_notifications(NOW, NOW + 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let retry = Attempt::Retry {
        next_ms: NOW + 1_000,
    };
    store
        .record_attempt(due[0].id, NOW, "503", retry)
        .await
        .unwrap();
    let again = store
        .take_due_notifications(NOW + 1_000, NOW + 61_000, 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    let delivered = Attempt::Delivered;
    store
        .record_attempt(due[0].id, NOW + 1_000, "200", delivered)
        .await
        .unwrap();
    let later = NOW + 10 * MINUTE;
    assert!(store
        .take_due_notifications(later, later, 10)
        .await
        .unwrap()
        .is_empty());
    let attempts = store.notification_attempts(rule).await.unwrap();
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["503", "200"]);

    assert!(store
        .resolve(rule, "a", &aftermath("resolved"))
        .await
        .unwrap());
    assert!(!store.resolve(rule, "a", &aftermath("twice")).await.unwrap());
    assert!(store.alert_episodes().await.unwrap().is_empty());
    let notes = store.annotations(NOW - 1, NOW + 1, 100).await.unwrap();
    let texts: Vec<&str> = notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(texts, ["fired", "resolved"]);

    // Sent notifications and their attempts expire; one not yet sent stays, however old.
    assert_eq!(store.expire_notifications(NOW + 1).await.unwrap(), 3);
    assert!(store.notification_attempts(rule).await.unwrap().is_empty());
    let unsent = store
        .take_due_notifications(later, later, 10)
        .await
        .unwrap();
    assert_eq!(unsent.len(), 1);
    assert_eq!(unsent[0].body, r#"{"text":"resolved"}"#);

    // Rules: edited, silenced, deleted with their episodes.
    assert!(store
        .update_alert_rule(other, r#"{"name":"t"}"#, NOW + 1)
        .await
        .unwrap());
    assert!(store
        .silence_alert_rule(other, Some(NOW + 5))
        .await
        .unwrap());
    assert!(store
        .fire(&episode_of(other), &aftermath("x"))
        .await
        .unwrap());
    assert!(store.delete_alert_rule(other).await.unwrap());
    assert!(!store.delete_alert_rule(other).await.unwrap());
    let rules = store.alert_rules().await.unwrap();
    assert_eq!(rules.iter().map(|r| r.id).collect::<Vec<_>>(), [rule]);
    assert!(store.alert_episodes().await.unwrap().is_empty());
    store.close().await;
}

fn episode_of(rule_id: i64) -> signalboard::server::store::Episode {
    signalboard::server::store::Episode {
        rule_id,
        signal: "b".into(),
        since_ms: NOW,
        fired_ms: NOW,
        value: None,
    }
}

/// Runs every behaviour above for each store named: `conformance!(name => opener, …)`.
macro_rules! conformance {
    ($($store:ident => $open:expr),* $(,)?) => {$(
        mod $store {
            use super::*;

            behaviours!($open;
                any_finite_value_reads_back_to_the_last_bit,
                a_write_reads_back_in_time_order_by_signal,
                the_same_signal_and_time_again_overwrites_and_counts_once,
                raw_reads_stop_one_past_the_limit_and_decimated_ones_keep_every_extreme,
                a_failed_commit_stores_nothing_and_the_next_one_works,
                a_write_of_thousands_of_new_signals_is_one_transaction,
                packing_changes_no_answer_and_hides_no_later_write,
                retention_deletes_what_is_past_each_age_and_nothing_else,
                an_episode_fires_once_and_its_notification_leaves_once_delivered,
            );

            #[test]
            fn rollups_agree_with_raw_points_under_any_order_of_writes() {
                super::rollups_agree_with_raw_points_under_any_order_of_writes($open)
            }

            #[test]
            fn raw_reads_return_the_last_value_of_each_point_however_writes_and_reads_interleave() {
                super::raw_reads_return_the_last_value_of_each_point_however_writes_and_reads_interleave($open)
            }
        }
    )*};
}

/// A `#[tokio::test]` per behaviour, run on the store `$open` opens.
macro_rules! behaviours {
    ($open:expr; $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $behaviour() {
            super::$behaviour($open).await
        }
    )*};
}

/// SQLite: a new file in a new folder, deleted with it.
struct SqliteFile {
    url: String,
    _dir: tempfile::TempDir,
}

impl TestDatabase for SqliteFile {
    fn refuse_last_value_13(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            use sqlx::Connection;
            // A fold updates the signal's figures. A write lands in the journal, a file of its
            // own beside the database, where 13.0 is its eight little-endian bytes.
            for (url, trigger) in [
                (
                    self.url.clone(),
                    "CREATE TRIGGER refuse_13 BEFORE UPDATE ON series WHEN NEW.last_value = 13 \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                ),
                (
                    format!("{}.journal", self.url),
                    "CREATE TRIGGER journal_13 BEFORE INSERT ON journal \
                     WHEN instr(NEW.data, x'0000000000002a40') > 0 \
                     BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
                ),
            ] {
                let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(trigger).execute(&mut db).await.unwrap();
                db.close().await.unwrap();
            }
        })
    }
}

fn sqlite(
    retention: Retention,
    clock: SharedClock,
) -> Pin<Box<dyn Future<Output = Opened> + Send>> {
    Box::pin(async move {
        use signalboard::server::store::Durability;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = Store::open(&url, Durability::Normal, retention, clock)
            .await
            .unwrap();
        let database = Box::new(SqliteFile { url, _dir: dir });
        Opened { store, database }
    })
}

/// PostgreSQL: a new database on the cluster `SIGNALBOARD_TEST_POSTGRES` names (`make test` starts
/// a throwaway one), left there for the cluster's end.
struct PostgresDatabase {
    url: String,
}

impl TestDatabase for PostgresDatabase {
    fn refuse_last_value_13(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            use sqlx::Connection;
            let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
            for statement in [
                "CREATE FUNCTION refuse_13() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF NEW.last_value = 13 THEN RAISE EXCEPTION 'refused by the test'; END IF; \
                   RETURN NEW; END $$",
                "CREATE TRIGGER refuse_13 BEFORE UPDATE ON series FOR EACH ROW \
                   EXECUTE FUNCTION refuse_13()",
            ] {
                sqlx::query(statement).execute(&mut db).await.unwrap();
            }
            db.close().await.unwrap();
        })
    }
}

fn postgres(
    retention: Retention,
    clock: SharedClock,
) -> Pin<Box<dyn Future<Output = Opened> + Send>> {
    Box::pin(async move {
        use signalboard::server::store::Durability;
        let url = common::postgres_database().await;
        let store = Store::open(&url, Durability::Normal, retention, clock)
            .await
            .unwrap();
        let database = Box::new(PostgresDatabase { url });
        Opened { store, database }
    })
}

conformance!(sqlite => sqlite, postgres => postgres);

//! Rollups: per-minute and per-hour aggregates (count, sum, lowest, highest, first, last, each extreme
//! with its timestamp) kept beside the raw points, so a month is read as 720 hour rows, not millions of
//! points. This file is the database-independent part: what a write changes, and which table a read
//! takes each stretch of a range from. The SQL lives with each database.
//!
//! Exactness: PostgreSQL's write adds its new points to the affected buckets incrementally. A point that
//! replaces a stored one (a retry with another value, a correction) cannot be subtracted from a minimum,
//! so its buckets are recomputed from the raw points instead; that is rare and touches one minute and one
//! hour. SQLite builds its rollups from the raw points once the hour has closed (`sqlite/built.rs`).

use super::{SeriesId, Sink};
pub use crate::downsample::Aggregate;
use crate::downsample::M4;
use std::collections::{BTreeMap, BTreeSet};

pub use crate::model::{HOUR, MINUTE};

/// The start of the `interval` bucket holding `t`.
pub fn bucket(t: i64, interval: i64) -> i64 {
    t - t.rem_euclid(interval)
}

/// A delta to merge into one rollup row.
pub struct Merge {
    pub series: SeriesId,
    /// The bucket's start.
    pub bucket: i64,
    /// What the write adds to it.
    pub delta: Aggregate,
}

/// What one write does to the rollups: deltas to merge, keyed by (series id, bucket start), and the
/// buckets to recompute because a point in them was replaced.
#[derive(Default, Debug)]
pub struct Changes {
    pub minutes: BTreeMap<(SeriesId, i64), Aggregate>,
    pub hours: BTreeMap<(SeriesId, i64), Aggregate>,
    pub stale_minutes: BTreeSet<(SeriesId, i64)>,
    pub stale_hours: BTreeSet<(SeriesId, i64)>,
}

impl Changes {
    /// A point that was not stored before.
    pub fn added(&mut self, series: SeriesId, t: i64, v: f64) {
        for (map, interval) in [(&mut self.minutes, MINUTE), (&mut self.hours, HOUR)] {
            let key = (series, bucket(t, interval));
            // Writes come sorted by series and time, so the bucket is nearly always the last one.
            match map.last_entry() {
                Some(mut last) if *last.key() == key => last.get_mut().add(t, v),
                _ => {
                    map.entry(key)
                        .and_modify(|a| a.add(t, v))
                        .or_insert_with(|| Aggregate::of(t, v));
                }
            }
        }
    }

    /// A point that replaced a stored one.
    pub fn replaced(&mut self, series: SeriesId, t: i64) {
        self.stale_minutes.insert((series, bucket(t, MINUTE)));
        self.stale_hours.insert((series, bucket(t, HOUR)));
    }

    /// The deltas to merge: those of buckets that will be recomputed anyway are left out.
    pub fn merges(&self) -> [(Interval, Vec<Merge>); 2] {
        let keep = |map: &BTreeMap<(SeriesId, i64), Aggregate>,
                    stale: &BTreeSet<(SeriesId, i64)>| {
            map.iter()
                .filter(|(key, _)| !stale.contains(key))
                .map(|(&(series, bucket), &delta)| Merge {
                    series,
                    bucket,
                    delta,
                })
                .collect()
        };
        [
            (Interval::Minute, keep(&self.minutes, &self.stale_minutes)),
            (Interval::Hour, keep(&self.hours, &self.stale_hours)),
        ]
    }
}

/// A rollup table, finer first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interval {
    Minute,
    Hour,
}

impl Interval {
    pub fn millis(self) -> i64 {
        match self {
            Interval::Minute => MINUTE,
            Interval::Hour => HOUR,
        }
    }
}

/// Where a stretch of a range is read from, finer first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Raw,
    Rollup(Interval),
}

impl Source {
    /// The coarsest source whose buckets are no wider than `width`: rollup buckets must fit inside
    /// the answer's buckets, or their extremes could not be placed.
    pub fn for_width(width: i64) -> Source {
        if width >= HOUR {
            Source::Rollup(Interval::Hour)
        } else if width >= MINUTE {
            Source::Rollup(Interval::Minute)
        } else {
            Source::Raw
        }
    }

    pub fn interval(self) -> i64 {
        match self {
            Source::Raw => 1,
            Source::Rollup(i) => i.millis(),
        }
    }

    fn finer(self) -> Source {
        match self {
            Source::Rollup(Interval::Hour) => Source::Rollup(Interval::Minute),
            _ => Source::Raw,
        }
    }
}

/// A stretch of a range, `start..=end`, read from one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub source: Source,
    pub start: i64,
    pub end: i64,
}

impl Stretch {
    pub fn new(source: Source, start: i64, end: i64) -> Stretch {
        Stretch { source, start, end }
    }
}

/// Splits `from..=to` into stretches, in time order, each read from `source` where whole buckets of it
/// fit and from finer sources at the ragged ends.
pub fn plan(source: Source, from: i64, to: i64) -> Vec<Stretch> {
    let mut stretches = Vec::new();
    plan_into(source, from, to, &mut stretches);
    stretches
}

fn plan_into(source: Source, from: i64, to: i64, out: &mut Vec<Stretch>) {
    if from > to {
        return;
    }
    let r = source.interval();
    if source == Source::Raw {
        out.push(Stretch::new(Source::Raw, from, to));
        return;
    }
    // Whole buckets: [start, end).
    let start = bucket(from + r - 1, r);
    let end = bucket(to + 1, r);
    if start >= end {
        return plan_into(source.finer(), from, to, out);
    }
    plan_into(source.finer(), from, start - 1, out);
    out.push(Stretch::new(source, start, end - 1));
    plan_into(source.finer(), end, to, out);
}

/// The decimator and the stretches to read for `max_points` over `from..=to`: rollups wherever their
/// buckets are narrower than the answer's, with the answer's buckets aligned to theirs, so each rollup
/// bucket falls wholly inside one answer bucket and its extremes land where they belong.
///
/// Where retention kept only coarser data (`finest_at`), that is read instead: the rollup kept at
/// `from` at least, and the range's ends widened to whole buckets of what is kept there, since finer
/// data for its ragged ends is gone. The answer still holds only points within `from..=to`.
pub(super) fn decimation(
    from: i64,
    to: i64,
    max_points: usize,
    finest_at: impl Fn(i64) -> Source,
) -> (Sink, Vec<Stretch>) {
    let buckets = (max_points / 4).max(1) as i64;
    let span = to - from + 1;
    let source = Source::for_width(span / buckets).max(finest_at(from));
    if source == Source::Raw {
        return (
            Sink::Decimated(M4::over(from, to, max_points)),
            vec![Stretch::new(Source::Raw, from, to)],
        );
    }
    let r = source.interval();
    let origin = bucket(from, r);
    let per_bucket = (to + 1 - origin + r * buckets - 1) / (r * buckets);
    let m4 = M4::with_buckets(origin, per_bucket * r, max_points);
    let kept = |t: i64| finest_at(t).interval();
    let (from, to) = (
        bucket(from, kept(from)),
        bucket(to, kept(to)) + kept(to) - 1,
    );
    (Sink::Decimated(m4), plan(source, from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_points_make_their_buckets_stale_and_drop_their_deltas() {
        let mut c = Changes::default();
        let s = SeriesId(1);
        c.added(s, 61_000, 1.0);
        c.added(s, 125_000, 2.0);
        c.replaced(s, 61_500);
        let [(_, minutes), (_, hours)] = c.merges();
        assert_eq!(
            minutes.iter().map(|m| m.bucket).collect::<Vec<_>>(),
            [120_000]
        );
        assert!(
            hours.is_empty(),
            "the hour holds a replaced point: recomputed, not merged"
        );
    }

    #[test]
    fn plans_use_whole_buckets_and_finer_sources_at_the_ends() {
        let h = Source::Rollup(Interval::Hour);
        let m = Source::Rollup(Interval::Minute);
        let from = HOUR - 90_500; // 22:28:29.500 of the day before, say
        let to = 3 * HOUR + 30_000;
        assert_eq!(
            plan(h, from, to),
            [
                Stretch::new(Source::Raw, from, HOUR - 60_001),
                Stretch::new(m, HOUR - MINUTE, HOUR - 1),
                Stretch::new(h, HOUR, 3 * HOUR - 1),
                Stretch::new(Source::Raw, 3 * HOUR, to),
            ]
        );
        // A stretch shorter than one bucket is read from the finer source alone.
        assert_eq!(plan(m, 10, 20), [Stretch::new(Source::Raw, 10, 20)]);
        assert_eq!(Source::for_width(HOUR), h);
        assert_eq!(Source::for_width(HOUR - 1), m);
        assert_eq!(Source::for_width(59_999), Source::Raw);
    }
}

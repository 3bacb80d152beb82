//! A closed span of one signal's rollups in one blob: an hour of its minutes (SQLite's
//! `minutes_packed`, see migration 0008) or a day of its hours (`hours_packed`, 0009). Every field
//! of every bucket, so the rows themselves can go, and come back exactly when a late point lands in
//! the span. A row per minute took ~93 bytes and was most of a month's database; packed, a minute
//! of a 1 Hz sensor takes ~15. A month read at hour resolution was 720 rows a signal, and each row
//! read through sqlx costs about a microsecond whatever it holds: packed by day, 30.
//!
//! Columns, each as small as it comes: each bucket's start as its distance from the bucket after
//! the previous one (0 when none is missing); its first point's offset within the bucket as a
//! difference from the previous bucket's (a producer's clock keeps its phase); the other extremes'
//! times as offsets from the first in the largest unit of milliseconds that divides them all (a 1 Hz
//! signal's are whole seconds); its count as a difference from the previous count. Then the
//! extremes' values as `dense.rs` stores values (differences of scaled decimals where they come back
//! exactly, else 8 bytes each), and the sums as decimals a few units in the last place off.

use super::block::{put_varint, take_varint, CorruptBlock, Points};
use super::dense::{put_near_values, put_values, take_near_values, take_values, unzigzag, zigzag};
use crate::downsample::{Aggregate, TimeValue};
use crate::model::{DAY, HOUR, MINUTE};

/// Units of the offsets from a bucket's first point, as powers of ten milliseconds: up to 10 s.
const MAX_UNIT: u8 = 4;

/// What a packed span holds; its first byte says which.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Span {
    /// An hour of minute rollups.
    HourOfMinutes,
    /// A day of hour rollups.
    DayOfHours,
}

impl Span {
    /// The first byte of such a span. A raw block starts with 0 and a dense one with 1.
    fn tag(self) -> u8 {
        match self {
            Span::HourOfMinutes => 2,
            Span::DayOfHours => 3,
        }
    }

    fn of_tag(tag: u8) -> Option<Span> {
        [Span::HourOfMinutes, Span::DayOfHours]
            .into_iter()
            .find(|span| span.tag() == tag)
    }

    /// The width of the buckets it holds, in milliseconds.
    pub fn bucket(self) -> i64 {
        match self {
            Span::HourOfMinutes => MINUTE,
            Span::DayOfHours => HOUR,
        }
    }

    /// Its own length, in milliseconds.
    pub fn length(self) -> i64 {
        match self {
            Span::HourOfMinutes => HOUR,
            Span::DayOfHours => DAY,
        }
    }
}

/// One bucket's rollup: its start and what its points come to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub start: i64,
    pub aggregate: Aggregate,
}

/// Packs the buckets (ascending by start) of the `span` starting at `start`.
pub fn encode(span: Span, start: i64, buckets: &[Bucket]) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + buckets.len() * 16);
    data.push(span.tag());
    put_varint(&mut data, buckets.len() as u64);
    let unit = (0..=MAX_UNIT)
        .rev()
        .find(|&e| {
            let unit = 10i64.pow(u32::from(e));
            buckets
                .iter()
                .all(|b| later(&b.aggregate).iter().all(|&t| t % unit == 0))
        })
        .unwrap_or(0);
    data.push(unit);
    let unit = 10i64.pow(u32::from(unit));
    let width = span.bucket();
    let (mut start, mut phase, mut count) = (start.wrapping_sub(width), 0i64, 0i64);
    for bucket in buckets {
        let a = &bucket.aggregate;
        put_varint(
            &mut data,
            zigzag(bucket.start.wrapping_sub(start).wrapping_sub(width)),
        );
        start = bucket.start;
        let first = a.first.time.wrapping_sub(start);
        put_varint(&mut data, zigzag(first.wrapping_sub(phase)));
        phase = first;
        for t in later(a) {
            put_varint(&mut data, zigzag(t / unit));
        }
        put_varint(&mut data, zigzag(a.count.wrapping_sub(count)));
        count = a.count;
    }
    let values = buckets
        .iter()
        .flat_map(|b| extremes(&b.aggregate).map(|p| p.value));
    put_values(&mut data, values);
    let sums: Vec<f64> = buckets.iter().map(|b| b.aggregate.sum).collect();
    put_near_values(&mut data, &sums);
    data
}

/// Unpacks the span starting at `start` that `encode` packed.
pub fn decode(start: i64, data: &[u8]) -> Result<Vec<Bucket>, CorruptBlock> {
    let corrupt = || CorruptBlock { first: start };
    let (&tag, rest) = data.split_first().ok_or_else(corrupt)?;
    let width = Span::of_tag(tag).ok_or_else(corrupt)?.bucket();
    let (n, rest) = take_varint(rest).ok_or_else(corrupt)?;
    // Each bucket takes six bytes at least: a count beyond the data is damage, not a reason to
    // reserve memory.
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= rest.len())
        .ok_or_else(corrupt)?;
    let (&unit, mut rest) = rest.split_first().ok_or_else(corrupt)?;
    if unit > MAX_UNIT {
        return Err(corrupt());
    }
    let unit = 10i64.pow(u32::from(unit));
    let mut buckets = Vec::with_capacity(n);
    let (mut start, mut phase, mut count) = (start.wrapping_sub(width), 0i64, 0i64);
    for _ in 0..n {
        let mut fields = [0i64; 6];
        for field in &mut fields {
            let (value, after) = take_varint(rest).ok_or_else(corrupt)?;
            *field = unzigzag(value);
            rest = after;
        }
        let [gap, phase_change, low, high, last, count_change] = fields;
        start = start.wrapping_add(width).wrapping_add(gap);
        phase = phase.wrapping_add(phase_change);
        count = count.wrapping_add(count_change);
        let first = start.wrapping_add(phase);
        let at = |offset: i64| TimeValue::new(first.wrapping_add(offset.wrapping_mul(unit)), 0.0);
        buckets.push(Bucket {
            start,
            aggregate: Aggregate {
                count,
                sum: 0.0,
                first: at(0),
                low: at(low),
                high: at(high),
                last: at(last),
            },
        });
    }
    let values = buckets.iter_mut().flat_map(|b| {
        let a = &mut b.aggregate;
        [
            &mut a.first.value,
            &mut a.low.value,
            &mut a.high.value,
            &mut a.last.value,
        ]
    });
    let rest = take_values(rest, values).ok_or_else(corrupt)?;
    let sums = buckets.iter_mut().map(|b| &mut b.aggregate.sum);
    let rest = take_near_values(rest, sums).ok_or_else(corrupt)?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(buckets)
}

/// Appends the points a chart takes from each bucket of the packed span starting at `start`: its
/// first, lowest, highest and last, in time order, each once.
pub fn points(start: i64, data: &[u8], out: &mut Points) -> Result<(), CorruptBlock> {
    for bucket in decode(start, data)? {
        out.extend(bucket.aggregate.points());
    }
    Ok(())
}

/// The extremes in the order they are stored.
fn extremes(a: &Aggregate) -> [TimeValue; 4] {
    [a.first, a.low, a.high, a.last]
}

/// The lowest, highest and last points' times, as offsets from the first's.
fn later(a: &Aggregate) -> [i64; 3] {
    [a.low, a.high, a.last].map(|p| p.time.wrapping_sub(a.first.time))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bucket starting at `start` of points at these offsets from it.
    fn bucket(start: i64, points: &[(i64, f64)]) -> Bucket {
        let (t, v) = points[0];
        let mut aggregate = Aggregate::of(start + t, v);
        for &(t, v) in &points[1..] {
            aggregate.add(start + t, v);
        }
        Bucket { start, aggregate }
    }

    fn same(a: &[Bucket], b: &[Bucket]) -> bool {
        let bits = |b: &Bucket| {
            let a = &b.aggregate;
            let e = extremes(a).map(|p| (p.time, p.value.to_bits()));
            (b.start, a.count, a.sum.to_bits(), e)
        };
        a.iter().map(bits).eq(b.iter().map(bits))
    }

    /// A span's buckets of a sensor at 1 Hz, a slow sine of two-decimal values whose clock is not
    /// on the second (its phase is kept).
    fn sensor(span: Span, start: i64) -> Vec<Bucket> {
        let seconds = span.bucket() / 1_000;
        (0..span.length() / span.bucket())
            .map(|b| {
                let points: Vec<(i64, f64)> = (0..seconds)
                    .map(|s| {
                        let i = (b * seconds + s) as f64;
                        let value = (5_000.0 + 2_500.0 * (i / 600.0).sin()).round() / 100.0;
                        (s * 1_000 + 694, value)
                    })
                    .collect();
                bucket(start + b * span.bucket(), &points)
            })
            .collect()
    }

    #[test]
    fn a_sensor_at_one_hertz_packs_into_sixteen_bytes_a_minute_and_twenty_one_an_hour() {
        let t = 1_700_000_000_000;
        for (span, bytes) in [(Span::HourOfMinutes, 16), (Span::DayOfHours, 21)] {
            let start = t - t % span.length();
            let buckets = sensor(span, start);
            let data = encode(span, start, &buckets);
            assert!(same(&decode(start, &data).unwrap(), &buckets), "{span:?}");
            // A rollup row took ~93 bytes, and more for its key in the index.
            let len = data.len();
            assert!(len < bytes * buckets.len(), "{span:?}: {len} bytes");
        }
    }

    #[test]
    fn damaged_packed_spans_are_refused() {
        for span in [Span::HourOfMinutes, Span::DayOfHours] {
            let width = span.bucket();
            let buckets = [
                bucket(0, &[(5, 1.5), (7, -2.25)]),
                bucket(width * 3, &[(0, 0.1 + 0.2)]),
            ];
            let data = encode(span, 0, &buckets);
            for cut in 0..data.len() {
                assert!(decode(0, &data[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = data.clone();
            longer.push(0);
            assert!(decode(0, &longer).is_err(), "trailing bytes");
            assert!(
                decode(0, &[span.tag(), 0xff, 0xff, 0x0f]).is_err(),
                "huge count"
            );
        }
        // A raw block's first byte is 0 or a dense one's 1: neither is a packed span.
        assert!(decode(0, &[0, 0, 0]).is_err());
        assert!(decode(0, &[4, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn any_buckets_round_trip(
            days in prop::bool::ANY,
            start in -1_000_000i64..1_000_000,
            picks in proptest::collection::vec(
                (0i64..3, proptest::collection::vec((0.0..1.0f64, any::<f64>(), 0u8..3), 1..6)),
                0..24,
            ),
        ) {
            let span = if days { Span::DayOfHours } else { Span::HourOfMinutes };
            let width = span.bucket();
            let start = start * span.length();
            let mut at = start - width;
            let buckets: Vec<Bucket> = picks
                .into_iter()
                .map(|(gap, points)| {
                    at += width * (1 + gap);
                    let points: Vec<(i64, f64)> = points
                        .into_iter()
                        .map(|(offset, v, places)| {
                            let t = (offset * width as f64) as i64;
                            // Some rounded to whole seconds and few decimals, some not.
                            let scale = 10f64.powi(i32::from(places));
                            if places > 0 && v.is_finite() {
                                (t - t % 1_000, (v * scale).round() / scale)
                            } else {
                                (t, v)
                            }
                        })
                        .collect();
                    bucket(at, &points)
                })
                .collect();
            let back = decode(start, &encode(span, start, &buckets)).unwrap();
            prop_assert!(same(&back, &buckets), "{back:?} != {buckets:?}");
        }
    }
}

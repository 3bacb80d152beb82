//! A closed hour of one signal's minute rollups in one blob (SQLite's `minutes_packed`, see migration
//! 0008): every field of every minute, so the minute rows themselves can go, and come back exactly
//! when a late point lands in the hour. A row per minute took ~93 bytes and was most of a month's
//! database; packed, a minute of a 1 Hz sensor takes ~15.
//!
//! Columns, each as small as it comes: each minute's start as its distance from the minute after
//! the previous one (0 when none is missing); its first point's offset within the minute as a
//! difference from the previous minute's (a producer's clock keeps its phase); the other extremes'
//! times as offsets from the first in the largest unit of milliseconds that divides them all (a 1 Hz
//! signal's are whole seconds); its count as a difference from the previous count. Then the
//! extremes' values as `dense.rs` stores values (differences of scaled decimals where they come back
//! exactly, else 8 bytes each), and the sums as decimals a few units in the last place off.

use super::block::{put_varint, take_varint, CorruptBlock, Points};
use super::dense::{put_near_values, put_values, take_near_values, take_values, unzigzag, zigzag};
use crate::downsample::{Aggregate, TimeValue};
use crate::model::MINUTE;

/// The first byte of a packed hour.
const PACKED_HOUR: u8 = 2;

/// Units of the offsets from a minute's first point, as powers of ten milliseconds: up to 10 s.
const MAX_UNIT: u8 = 4;

/// One minute's rollup: its start and what its points come to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Minute {
    pub start: i64,
    pub aggregate: Aggregate,
}

/// Packs the minutes (ascending by start) of the hour starting at `hour`.
pub fn encode(hour: i64, minutes: &[Minute]) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + minutes.len() * 16);
    data.push(PACKED_HOUR);
    put_varint(&mut data, minutes.len() as u64);
    let unit = (0..=MAX_UNIT)
        .rev()
        .find(|&e| {
            let unit = 10i64.pow(u32::from(e));
            minutes
                .iter()
                .all(|m| later(&m.aggregate).iter().all(|&t| t % unit == 0))
        })
        .unwrap_or(0);
    data.push(unit);
    let unit = 10i64.pow(u32::from(unit));
    let (mut start, mut phase, mut count) = (hour.wrapping_sub(MINUTE), 0i64, 0i64);
    for minute in minutes {
        let a = &minute.aggregate;
        put_varint(
            &mut data,
            zigzag(minute.start.wrapping_sub(start).wrapping_sub(MINUTE)),
        );
        start = minute.start;
        let first = a.first.time.wrapping_sub(start);
        put_varint(&mut data, zigzag(first.wrapping_sub(phase)));
        phase = first;
        for t in later(a) {
            put_varint(&mut data, zigzag(t / unit));
        }
        put_varint(&mut data, zigzag(a.count.wrapping_sub(count)));
        count = a.count;
    }
    let values = minutes
        .iter()
        .flat_map(|m| extremes(&m.aggregate).map(|p| p.value));
    put_values(&mut data, values);
    let sums: Vec<f64> = minutes.iter().map(|m| m.aggregate.sum).collect();
    put_near_values(&mut data, &sums);
    data
}

/// Unpacks the hour starting at `hour` that `encode` packed.
pub fn decode(hour: i64, data: &[u8]) -> Result<Vec<Minute>, CorruptBlock> {
    let corrupt = || CorruptBlock { first: hour };
    let rest = match data.split_first() {
        Some((&PACKED_HOUR, rest)) => rest,
        _ => return Err(corrupt()),
    };
    let (n, rest) = take_varint(rest).ok_or_else(corrupt)?;
    // Each minute takes six bytes at least: a count beyond the data is damage, not a reason to
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
    let mut minutes = Vec::with_capacity(n);
    let (mut start, mut phase, mut count) = (hour.wrapping_sub(MINUTE), 0i64, 0i64);
    for _ in 0..n {
        let mut fields = [0i64; 6];
        for field in &mut fields {
            let (value, after) = take_varint(rest).ok_or_else(corrupt)?;
            *field = unzigzag(value);
            rest = after;
        }
        let [gap, phase_change, low, high, last, count_change] = fields;
        start = start.wrapping_add(MINUTE).wrapping_add(gap);
        phase = phase.wrapping_add(phase_change);
        count = count.wrapping_add(count_change);
        let first = start.wrapping_add(phase);
        let at = |offset: i64| TimeValue::new(first.wrapping_add(offset.wrapping_mul(unit)), 0.0);
        minutes.push(Minute {
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
    let values = minutes.iter_mut().flat_map(|m| {
        let a = &mut m.aggregate;
        [
            &mut a.first.value,
            &mut a.low.value,
            &mut a.high.value,
            &mut a.last.value,
        ]
    });
    let rest = take_values(rest, values).ok_or_else(corrupt)?;
    let sums = minutes.iter_mut().map(|m| &mut m.aggregate.sum);
    let rest = take_near_values(rest, sums).ok_or_else(corrupt)?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(minutes)
}

/// Appends the points a chart takes from each minute of the packed hour starting at `hour`: its
/// first, lowest, highest and last, in time order, each once.
pub fn points(hour: i64, data: &[u8], out: &mut Points) -> Result<(), CorruptBlock> {
    for minute in decode(hour, data)? {
        out.extend(minute.aggregate.points());
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
    use crate::model::HOUR;
    use proptest::prelude::*;

    fn minute(start: i64, points: &[(i64, f64)]) -> Minute {
        let (t, v) = points[0];
        let mut aggregate = Aggregate::of(start + t, v);
        for &(t, v) in &points[1..] {
            aggregate.add(start + t, v);
        }
        Minute { start, aggregate }
    }

    fn same(a: &[Minute], b: &[Minute]) -> bool {
        let bits = |m: &Minute| {
            let a = &m.aggregate;
            let e = extremes(a).map(|p| (p.time, p.value.to_bits()));
            (m.start, a.count, a.sum.to_bits(), e)
        };
        a.iter().map(bits).eq(b.iter().map(bits))
    }

    #[test]
    fn a_minute_of_a_sensor_at_one_hertz_packs_into_sixteen_bytes() {
        let hour = 1_700_000_000_000 - 1_700_000_000_000 % HOUR;
        let minutes: Vec<Minute> = (0..60)
            .map(|m| {
                let points: Vec<(i64, f64)> = (0..60)
                    .map(|s| {
                        let i = (m * 60 + s) as f64;
                        let value = (5_000.0 + 2_500.0 * (i / 600.0).sin()).round() / 100.0;
                        // A producer's clock is not on the second: its phase is kept.
                        (s * 1_000 + 694, value)
                    })
                    .collect();
                minute(hour + m * MINUTE, &points)
            })
            .collect();
        let data = encode(hour, &minutes);
        assert!(same(&decode(hour, &data).unwrap(), &minutes));
        // A row per minute took ~93 bytes, and more for its key in the index.
        assert!(data.len() < 16 * 60, "{} bytes", data.len());
    }

    #[test]
    fn damaged_packed_hours_are_refused() {
        let minutes = [
            minute(0, &[(5, 1.5), (7, -2.25)]),
            minute(MINUTE * 3, &[(0, 0.1 + 0.2)]),
        ];
        let data = encode(0, &minutes);
        for cut in 0..data.len() {
            assert!(decode(0, &data[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(decode(0, &longer).is_err(), "trailing bytes");
        assert!(
            decode(0, &[PACKED_HOUR, 0xff, 0xff, 0x0f]).is_err(),
            "huge count"
        );
        // A raw block's first byte is 0 or a dense one's 1: neither is a packed hour.
        assert!(decode(0, &[0, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn any_minutes_round_trip(
            hour in -1_000_000i64..1_000_000,
            picks in proptest::collection::vec(
                (0i64..3, proptest::collection::vec((0i64..60_000, any::<f64>(), 0u8..3), 1..6)),
                0..60,
            ),
        ) {
            let hour = hour * HOUR;
            let mut start = hour - MINUTE;
            let minutes: Vec<Minute> = picks
                .into_iter()
                .map(|(gap, points)| {
                    start += MINUTE * (1 + gap);
                    let points: Vec<(i64, f64)> = points
                        .into_iter()
                        .map(|(t, v, places)| {
                            // Some rounded to whole seconds and few decimals, some not.
                            let scale = 10f64.powi(i32::from(places));
                            if places > 0 && v.is_finite() {
                                (t - t % 1_000, (v * scale).round() / scale)
                            } else {
                                (t, v)
                            }
                        })
                        .collect();
                    minute(start, &points)
                })
                .collect();
            let back = decode(hour, &encode(hour, &minutes)).unwrap();
            prop_assert!(same(&back, &minutes), "{back:?} != {minutes:?}");
        }
    }
}

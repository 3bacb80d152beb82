//! The dense encoding of a closed block: one that no write appends to any more (a later block
//! follows it), so it is packed once, for size and for reading. Timestamps are runs of equal steps
//! (a signal sampled every second is one run); values, when they all are decimals of a few places
//! (as most sensors' readings are), are the differences of their scaled integers, as varints; other
//! values are stored as they are. Lossless: a scale is used only when every value comes back
//! bit for bit.
//!
//! A dense block starts with `DENSE`; an appendable one (`block.rs`) starts with its first point's
//! delta from the block's start, which is 0: the first byte tells the two apart, so blocks of both
//! kinds, old and new, sit side by side.

use super::block::{put_varint, take_varint, CorruptBlock, Points, TimeValue};

/// The first byte of a dense block.
pub const DENSE: u8 = 1;

/// Most decimal places tried; `RAW` marks values stored as their 8 bytes.
const MAX_PLACES: u8 = 9;
const RAW: u8 = 0xff;

/// Scaled integers stay below 2^53, where every integer is exactly an f64.
const MAX_SCALED: f64 = 9_007_199_254_740_992.0;

/// Encodes `points` (ascending, unique, none before `first`) of the block starting at `first`.
pub fn encode(first: i64, points: &[TimeValue]) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + points.len() * 2);
    data.push(DENSE);
    put_varint(&mut data, points.len() as u64);
    put_steps(&mut data, first, points);
    put_values(&mut data, points.iter().map(|point| point.value));
    data
}

/// Appends `values`: the fewest decimal places at which all come back exactly, then the varint
/// differences of their scaled integers; or `RAW` and their 8 bytes each.
pub(super) fn put_values(data: &mut Vec<u8>, values: impl Iterator<Item = f64> + Clone) {
    match decimal_places(values.clone()) {
        Some(places) => {
            data.push(places);
            let scale = 10f64.powi(i32::from(places));
            let mut previous = 0i64;
            for value in values {
                let scaled = (value * scale).round() as i64;
                put_varint(data, zigzag(scaled.wrapping_sub(previous)));
                previous = scaled;
            }
        }
        None => put_raw(data, values),
    }
}

/// Appends `RAW` and the values' 8 bytes each.
fn put_raw(data: &mut Vec<u8>, values: impl Iterator<Item = f64>) {
    data.push(RAW);
    for value in values {
        data.extend_from_slice(&value.to_le_bytes());
    }
}

/// Reads what `put_values` wrote into `slots`, one value each; the bytes after them, or `None` if
/// they are damaged.
pub(super) fn take_values<'d, 's>(
    data: &'d [u8],
    slots: impl Iterator<Item = &'s mut f64>,
) -> Option<&'d [u8]> {
    let (&places, mut rest) = data.split_first()?;
    match places {
        RAW => {
            for slot in slots {
                let (value, after) = rest.split_first_chunk::<8>()?;
                *slot = f64::from_le_bytes(*value);
                rest = after;
            }
        }
        places if places <= MAX_PLACES => {
            let scale = 10f64.powi(i32::from(places));
            let mut scaled = 0i64;
            for slot in slots {
                let (delta, after) = take_varint(rest)?;
                scaled = scaled.wrapping_add(unzigzag(delta));
                *slot = scaled as f64 / scale;
                rest = after;
            }
        }
        _ => return None,
    }
    Some(rest)
}

/// Appends `values` that lie near decimals without being them (sums of decimals, whose rounding
/// errors add up): each as the difference of its nearest scaled decimal from the previous one and
/// how many units in the last place it lies from that decimal, at the places that take the fewest
/// bytes; or `RAW` and their 8 bytes each, if that is fewer.
pub(super) fn put_near_values(data: &mut Vec<u8>, values: &[f64]) {
    let near = |places: u8| {
        let mut out = vec![places];
        let scale = 10f64.powi(i32::from(places));
        let mut previous = 0i64;
        for &value in values {
            let scaled = (value * scale).round() as i64;
            put_varint(&mut out, zigzag(scaled.wrapping_sub(previous)));
            previous = scaled;
            let decimal = (scaled as f64 / scale).to_bits() as i64;
            put_varint(
                &mut out,
                zigzag((value.to_bits() as i64).wrapping_sub(decimal)),
            );
        }
        out
    };
    let fewest = (0..=MAX_PLACES).map(near).min_by_key(Vec::len);
    match fewest {
        Some(near) if near.len() < 1 + 8 * values.len() => data.extend_from_slice(&near),
        _ => put_raw(data, values.iter().copied()),
    }
}

/// Reads what `put_near_values` wrote into `slots`, as `take_values` does.
pub(super) fn take_near_values<'d, 's>(
    data: &'d [u8],
    slots: impl Iterator<Item = &'s mut f64>,
) -> Option<&'d [u8]> {
    let (&places, mut rest) = data.split_first()?;
    if places > MAX_PLACES {
        return take_values(data, slots);
    }
    let scale = 10f64.powi(i32::from(places));
    let mut scaled = 0i64;
    for slot in slots {
        let (delta, after) = take_varint(rest)?;
        let (ulps, after) = take_varint(after)?;
        scaled = scaled.wrapping_add(unzigzag(delta));
        let decimal = (scaled as f64 / scale).to_bits() as i64;
        *slot = f64::from_bits(decimal.wrapping_add(unzigzag(ulps)) as u64);
        rest = after;
    }
    Some(rest)
}

/// Runs of (step, how many times), the first step from `first`.
fn put_steps(data: &mut Vec<u8>, first: i64, points: &[TimeValue]) {
    let mut previous = first;
    let mut run: Option<(i64, u64)> = None;
    for point in points {
        let step = point.time - previous;
        previous = point.time;
        run = match run {
            Some((s, n)) if s == step => Some((s, n + 1)),
            Some((s, n)) => {
                put_varint(data, zigzag(s));
                put_varint(data, n);
                Some((step, 1))
            }
            None => Some((step, 1)),
        };
    }
    if let Some((s, n)) = run {
        put_varint(data, zigzag(s));
        put_varint(data, n);
    }
}

/// The fewest decimal places at which every value is a scaled integer that comes back exactly.
fn decimal_places(values: impl Iterator<Item = f64> + Clone) -> Option<u8> {
    (0..=MAX_PLACES).find(|&places| {
        let scale = 10f64.powi(i32::from(places));
        values.clone().all(|value| {
            let scaled = (value * scale).round();
            scaled.abs() < MAX_SCALED
                && ((scaled as i64) as f64 / scale).to_bits() == value.to_bits()
        })
    })
}

/// Appends the points of the dense block starting at `first` (`data` past its `DENSE` byte).
pub fn decode(first: i64, data: &[u8], out: &mut Points) -> Result<(), CorruptBlock> {
    let corrupt = || CorruptBlock { first };
    let (count, mut rest) = take_varint(data).ok_or_else(corrupt)?;
    let count = usize::try_from(count).map_err(|_| corrupt())?;
    // Each point takes at least a byte of value: a count beyond the data is damage, not a reason
    // to reserve memory.
    if count > data.len() {
        return Err(corrupt());
    }
    let start = out.len();
    out.reserve(count);
    let mut t = first;
    while out.len() - start < count {
        let (step, after) = take_varint(rest).ok_or_else(corrupt)?;
        let (run, after) = take_varint(after).ok_or_else(corrupt)?;
        rest = after;
        let step = unzigzag(step);
        if run == 0 || run > (count - (out.len() - start)) as u64 {
            return Err(corrupt());
        }
        for _ in 0..run {
            t = t.checked_add(step).ok_or_else(corrupt)?;
            out.push(TimeValue::new(t, 0.0));
        }
    }
    let values = out[start..].iter_mut().map(|point| &mut point.value);
    let rest = take_values(rest, values).ok_or_else(corrupt)?;
    if !rest.is_empty() {
        return Err(corrupt());
    }
    Ok(())
}

pub(super) fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

pub(super) fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(first: i64, points: &[TimeValue]) -> Vec<u8> {
        let data = encode(first, points);
        let mut back = Vec::new();
        decode(first, &data[1..], &mut back).unwrap();
        assert_eq!(back.len(), points.len());
        for (a, b) in back.iter().zip(points) {
            assert_eq!((a.time, a.value.to_bits()), (b.time, b.value.to_bits()));
        }
        data
    }

    #[test]
    fn a_sensor_at_one_hertz_takes_under_two_bytes_a_point() {
        // Two decimals, as a thermometer reads: a slow wave.
        let points: Points = (0..1_000)
            .map(|i| {
                let value = (5_000.0 + 2_500.0 * (i as f64 / 60.0).sin()).round() / 100.0;
                TimeValue::new(1_000_000 + i * 1_000, value)
            })
            .collect();
        let data = round_trip(1_000_000, &points);
        assert!(data.len() < 2 * points.len(), "{} bytes", data.len());
        // The steps are one run: the timestamps take a handful of bytes in all.
        assert_eq!(data[3..7], [0, 1, 0xd0, 0x0f]);
    }

    #[test]
    fn values_of_no_few_decimals_are_kept_bit_for_bit() {
        let odd = [
            0.1 + 0.2,
            -0.0,
            1e300,
            5e-324,
            f64::MAX,
            std::f64::consts::PI,
            -7.25,
        ];
        let points: Points = odd
            .iter()
            .enumerate()
            .map(|(i, &v)| TimeValue::new(i as i64 * 3, v))
            .collect();
        let data = round_trip(0, &points);
        assert!(data.contains(&RAW));
    }

    #[test]
    fn damaged_dense_blocks_are_refused() {
        let points = [TimeValue::new(10, 1.5), TimeValue::new(20, 2.5)];
        let data = encode(10, &points);
        let mut out = Vec::new();
        for cut in 1..data.len() {
            assert!(decode(10, &data[1..cut], &mut out).is_err(), "cut at {cut}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(
            decode(10, &longer[1..], &mut out).is_err(),
            "trailing bytes"
        );
        assert!(
            decode(10, &[0xff, 0xff, 0xff, 0x0f], &mut out).is_err(),
            "huge count"
        );
    }

    proptest! {
        #[test]
        fn any_points_round_trip_densely(
            start in -4_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((1i64..10_000_000_000, any::<f64>(), 0u8..4), 0..300),
        ) {
            let mut t = start;
            // Some values rounded to a few places, some not: both encodings are exercised.
            let points: Points = steps
                .into_iter()
                .map(|(d, v, places)| {
                    t += d;
                    let scale = 10f64.powi(i32::from(places));
                    let v = if places > 0 && v.is_finite() { (v * scale).round() / scale } else { v };
                    TimeValue::new(t, v)
                })
                .collect();
            let data = encode(start, &points);
            let mut back = Vec::new();
            decode(start, &data[1..], &mut back).unwrap();
            prop_assert_eq!(back.len(), points.len());
            for (a, b) in back.iter().zip(&points) {
                prop_assert_eq!(a.time, b.time);
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }
    }
}

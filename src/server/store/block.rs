//! Raw points are stored in blocks: one row holds a run of one signal's consecutive points. A row per
//! point costs SQLite about a microsecond per point to write and again to read back, and ~23 bytes on
//! disk; a row per ~90 points makes reading a plain loop over bytes. The newest block of a signal,
//! which writes append to, holds timestamp deltas (LEB128 varints) and values (8 little-endian bytes
//! each), ~10 bytes a point at 1 Hz; once another block follows it, it is closed and stored densely
//! (`dense.rs`), ~2 bytes a point for a sensor's readings.
//!
//! The blocks of a signal never overlap: a point belongs to the block with the latest start at or before
//! it, or, if it is older than every block, to a new one. Blocks are database-independent; this file
//! only packs and unpacks them.

use super::dense;
pub use crate::downsample::TimeValue;
use std::fmt;

/// Largest packed block: four rows (with their keys) fit in one 4 KiB SQLite page, so no row needs an
/// overflow page and little of a page is wasted.
pub const BLOCK_BYTES: usize = 960;

/// One signal's points in ascending time, each timestamp once.
pub type Points = Vec<TimeValue>;

/// A run of points ready to store: its first and last timestamp, how many, and the packed bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed {
    pub first: i64,
    pub last: i64,
    pub count: i64,
    pub data: Vec<u8>,
}

/// A stored block that does not unpack: the database file was damaged or written by something else.
#[derive(Debug)]
pub struct CorruptBlock {
    /// Where the block starts.
    pub first: i64,
}

impl fmt::Display for CorruptBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the block of points starting at {} is damaged",
            self.first
        )
    }
}

impl std::error::Error for CorruptBlock {}

/// Splits points (ascending, unique) into blocks of at most `BLOCK_BYTES` each, appendable: every
/// block but the last is then closed, and stored densely where that is smaller.
pub fn pack(points: &[TimeValue]) -> Vec<Packed> {
    let mut blocks: Vec<Packed> = Vec::new();
    let mut open: Option<Packed> = None;
    for &TimeValue { time: t, value: v } in points {
        let block = match &mut open {
            Some(b) if b.data.len() + varint_len((t - b.last) as u64) + 8 <= BLOCK_BYTES => b,
            _ => {
                blocks.extend(open.take());
                open.insert(Packed {
                    first: t,
                    last: t,
                    count: 0,
                    data: Vec::with_capacity(BLOCK_BYTES),
                })
            }
        };
        put_point(&mut block.data, t - block.last, v);
        block.last = t;
        block.count += 1;
    }
    let mut rest = points;
    for closed in &mut blocks {
        let (mine, after) = rest.split_at(closed.count as usize);
        rest = after;
        // Irregular steps and values of many digits can come out a little larger: kept as is.
        let dense = dense::encode(closed.first, mine);
        if dense.len() < closed.data.len() {
            closed.data = dense;
        }
    }
    blocks.extend(open);
    // Each block was given room for `BLOCK_BYTES`: a fold of 100,000 signals holds them all at once.
    for block in &mut blocks {
        block.data.shrink_to_fit();
    }
    blocks
}

/// Packs points (ascending, unique, none before `origin`) into one run of any length, which
/// `unpack(origin, ..)` reads back: for runs read whole, never rewritten point by point (an hour's
/// minute extremes, see `SqliteStore::pack`).
pub fn pack_run(origin: i64, points: &[TimeValue]) -> Vec<u8> {
    let mut data = Vec::with_capacity(points.len() * 11);
    let mut last = origin;
    for &TimeValue { time: t, value: v } in points {
        put_point(&mut data, t - last, v);
        last = t;
    }
    data
}

/// Whether points can be appended to the packed block `data` (`pack_run` from its last point): not
/// to a dense one.
pub fn is_appendable(data: &[u8]) -> bool {
    data.first() != Some(&dense::DENSE)
}

fn put_point(data: &mut Vec<u8>, delta: i64, v: f64) {
    put_varint(data, delta as u64);
    data.extend_from_slice(&v.to_le_bytes());
}

/// Appends the points of the block that starts at `first` to `out`.
pub fn unpack(first: i64, data: &[u8], out: &mut Points) -> Result<(), CorruptBlock> {
    if let Some((&dense::DENSE, dense)) = data.split_first() {
        return dense::decode(first, dense, out);
    }
    let corrupt = || CorruptBlock { first };
    let (mut t, mut rest) = (first, data);
    while !rest.is_empty() {
        let (delta, after) = take_varint(rest).ok_or_else(corrupt)?;
        let (value, after) = after.split_first_chunk::<8>().ok_or_else(corrupt)?;
        t = i64::try_from(delta)
            .ok()
            .and_then(|d| t.checked_add(d))
            .ok_or_else(corrupt)?;
        out.push(TimeValue::new(t, f64::from_le_bytes(*value)));
        rest = after;
    }
    Ok(())
}

/// Merges `new` into `old` (both ascending, unique): a new point replaces an old one at the same
/// timestamp, and that timestamp is added to `replaced`.
pub fn merge(old: &[TimeValue], new: &[TimeValue], replaced: &mut Vec<i64>) -> Points {
    let mut out = Vec::with_capacity(old.len() + new.len());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        let (a, b) = (old[i], new[j]);
        if a.time < b.time {
            out.push(a);
            i += 1;
        } else {
            if a.time == b.time {
                replaced.push(a.time);
                i += 1;
            }
            out.push(b);
            j += 1;
        }
    }
    out.extend_from_slice(&old[i..]);
    out.extend_from_slice(&new[j..]);
    out
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(super) fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packs_into_bounded_blocks_that_unpack_to_the_same_points() {
        let points: Points = (0..1_000)
            .map(|i| TimeValue::new(i * 1_000, i as f64 / 10.0))
            .collect();
        let blocks = pack(&points);
        assert!(blocks.len() > 1);
        let mut back = Vec::new();
        for b in &blocks {
            assert!(b.data.len() <= BLOCK_BYTES);
            let before = back.len();
            unpack(b.first, &b.data, &mut back).unwrap();
            assert_eq!(back.len() - before, b.count as usize);
            assert_eq!(
                (back[before].time, back.last().unwrap().time),
                (b.first, b.last)
            );
        }
        assert_eq!(back, points);
        // The last block is open: 2 bytes of delta and 8 of value per point at 1 Hz, its first
        // delta (0) in 1. The others are closed and dense: a point's value in 1 or 2 bytes.
        let (open, closed) = blocks.split_last().unwrap();
        assert_eq!(open.data.len() as i64, 10 * open.count - 1);
        for block in closed {
            assert_eq!(block.data[0], dense::DENSE);
            assert!(block.data.len() < 2 * block.count as usize + 10);
        }
    }

    #[test]
    fn damaged_blocks_are_refused() {
        let mut out = Vec::new();
        assert!(unpack(5, &[0x80], &mut out).is_err(), "unfinished varint");
        assert!(unpack(5, &[0, 1, 2], &mut out).is_err(), "short value");
        let overflow = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(unpack(i64::MAX - 1, &overflow, &mut out).is_err());
    }

    #[test]
    fn merge_replaces_equal_timestamps_and_reports_them() {
        let tv = TimeValue::new;
        let mut replaced = Vec::new();
        let merged = merge(
            &[tv(1, 1.0), tv(3, 3.0), tv(5, 5.0)],
            &[tv(0, 0.5), tv(3, 30.0), tv(6, 6.0)],
            &mut replaced,
        );
        let expected = [tv(0, 0.5), tv(1, 1.0), tv(3, 30.0), tv(5, 5.0), tv(6, 6.0)];
        assert_eq!(merged, expected);
        assert_eq!(replaced, [3]);
    }

    #[test]
    fn a_run_unpacks_from_its_origin() {
        let tv = TimeValue::new;
        let points = [tv(3_600_000, 1.5), tv(3_600_001, -2.0), tv(3_659_999, 7.0)];
        let mut back = Vec::new();
        unpack(3_600_000, &pack_run(3_600_000, &points), &mut back).unwrap();
        assert_eq!(back, points);
    }

    proptest! {
        #[test]
        fn any_points_round_trip(
            start in -4_000_000_000_000i64..4_000_000_000_000,
            steps in proptest::collection::vec((1i64..10_000_000_000, any::<f64>()), 0..400),
        ) {
            let mut t = start;
            let points: Points = steps.into_iter().map(|(d, v)| { t += d; TimeValue::new(t, v) }).collect();
            let mut back = Vec::new();
            for b in pack(&points) {
                prop_assert!(b.data.len() <= BLOCK_BYTES);
                unpack(b.first, &b.data, &mut back).unwrap();
            }
            prop_assert_eq!(back.len(), points.len());
            for (a, b) in back.iter().zip(&points) {
                prop_assert_eq!(a.time, b.time);
                prop_assert_eq!(a.value.to_bits(), b.value.to_bits());
            }
        }
    }
}

//! Where data is missing. A chart must not draw a straight line across a silence as if it were
//! values: a step between two points much longer than the signal's usual step is a gap, and the line
//! breaks there. The usual step is the median of the steps in view (robust to jitter and to the gaps
//! themselves); in decimated data, whose points sit anywhere in their buckets, a step must also pass
//! two buckets to be a gap — a bucket with no point in it is a hole at least that wide.
//!
//! The same measure says when a signal is stale: silent for several of its usual steps.

/// A step longer than this many usual steps is a gap.
const GAP_STEPS: i64 = 3;
/// A signal silent for this many usual steps is stale…
const STALE_STEPS: i64 = 5;
/// …and for this long at least (ms): a live point takes a moment to arrive, and the page's clock
/// ticks once a second.
const STALE_AT_LEAST: i64 = 5_000;
/// Steps sampled for the median: enough to be robust, few enough for a million points per frame.
const SAMPLED_STEPS: usize = 1_023;

/// The usual step between `times` (ascending): the median of up to `SAMPLED_STEPS` of their steps,
/// taken evenly across them. `None` with fewer than two points.
pub fn usual_step(times: &[i64]) -> Option<i64> {
    let steps = times.len().checked_sub(1).filter(|&n| n > 0)?;
    let stride = steps.div_ceil(SAMPLED_STEPS);
    let mut sampled: Vec<i64> = (0..steps)
        .step_by(stride)
        .map(|i| times[i + 1] - times[i])
        .collect();
    let middle = sampled.len() / 2;
    Some(*sampled.select_nth_unstable(middle).1)
}

/// The longest step between `times` that is not a gap; `bucket` is the width of the buckets they
/// were decimated into (0: raw points).
pub fn gap_threshold(times: &[i64], bucket: i64) -> i64 {
    let usual = usual_step(times).unwrap_or(0);
    usual
        .saturating_mul(GAP_STEPS)
        .max(bucket.saturating_mul(2))
        .max(1)
}

/// The runs of `times` between gaps, as index ranges: each is drawn as one line.
pub fn segments(
    times: &[i64],
    threshold: i64,
) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    let mut i = 1;
    std::iter::from_fn(move || {
        if start >= times.len() {
            return None;
        }
        while i < times.len() && times[i] - times[i - 1] <= threshold {
            i += 1;
        }
        let run = start..i;
        start = i;
        i += 1;
        Some(run)
    })
}

/// Since when a signal whose newest point is at `last` and whose usual step is `usual` has been
/// stale at `now`, if it is.
pub fn stale_since(last: i64, usual: Option<i64>, now: i64) -> Option<i64> {
    let usual = usual?;
    let silence = usual.saturating_mul(STALE_STEPS).max(STALE_AT_LEAST);
    (now - last > silence).then_some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_step_ignores_jitter_and_gaps() {
        let mut times: Vec<i64> = (0..100).map(|k| k * 1_000 + (k * 37) % 200).collect();
        times.extend((0..100).map(|k| 300_000 + k * 1_000));
        let usual = usual_step(&times).unwrap();
        assert!((800..=1_200).contains(&usual), "{usual}");
        assert_eq!(usual_step(&[5]), None);
        // A million points: sampled, not all sorted.
        let many: Vec<i64> = (0..1_000_000).map(|k| k * 10).collect();
        assert_eq!(usual_step(&many), Some(10));
    }

    #[test]
    fn a_silence_splits_the_line_and_jitter_does_not() {
        let times: Vec<i64> = [0, 1_000, 2_100, 2_900, 4_000, 125_000, 126_000, 127_000].into();
        let threshold = gap_threshold(&times, 0);
        let runs: Vec<_> = segments(&times, threshold).collect();
        assert_eq!(runs, [0..5, 5..8]);
        assert_eq!(segments(&[], threshold).count(), 0);
        // A point alone between two silences is a run of its own.
        let lone = [0, 1_000, 2_000, 60_000, 120_000, 121_000, 122_000];
        let runs: Vec<_> = segments(&lone, gap_threshold(&lone, 0)).collect();
        assert_eq!(runs, [0..3, 3..4, 4..7]);
    }

    #[test]
    fn decimated_points_break_only_where_buckets_are_empty() {
        // Buckets of 10 s, four points in each, anywhere in it: steps up to a bucket are no gap.
        let mut times = Vec::new();
        for bucket in (0..10).chain(13..20) {
            let start = bucket * 10_000;
            times.extend([start + 100, start + 2_000, start + 9_000, start + 9_900]);
        }
        let runs: Vec<_> = segments(&times, gap_threshold(&times, 10_000)).collect();
        assert_eq!(runs, [0..40, 40..68]);
    }

    #[test]
    fn a_signal_is_stale_after_several_usual_steps_and_never_sooner_than_seconds() {
        assert_eq!(stale_since(0, Some(1_000), 5_000), None);
        assert_eq!(stale_since(0, Some(1_000), 5_001), Some(0));
        assert_eq!(stale_since(0, Some(60_000), 299_000), None);
        assert_eq!(stale_since(0, Some(60_000), 301_000), Some(0));
        assert_eq!(stale_since(0, Some(100), 4_000), None, "at least 5 s");
        assert_eq!(
            stale_since(0, None, 1_000_000),
            None,
            "unknown step: not judged"
        );
    }
}

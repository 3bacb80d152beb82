//! A histogram with fixed bucket bounds, recorded without a lock: a request or a commit only adds to
//! atomics, so recording costs the same however many threads record at once. Prometheus reads its
//! buckets; the server's own signals (`own_signals`) read quantiles from two snapshots' difference,
//! as Prometheus' `histogram_quantile` over a rate does.

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Request and commit times, in seconds: 100 µs to 30 s, about three buckets a decade.
pub const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Points in one commit: 1 to the writer's 50,000 at most.
pub const POINTS: &[f64] = &[
    1.0, 10.0, 100.0, 1_000.0, 5_000.0, 10_000.0, 25_000.0, 50_000.0,
];

#[derive(Clone, Debug)]
pub struct Histogram(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative; the last counts those above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of observations, as an f64's bits.
    sum: AtomicU64,
}

/// The counts of one moment, to subtract from a later one.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    counts: Vec<u64>,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(Inner {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// The histogram of request and commit times.
    pub fn seconds() -> Histogram {
        Histogram::new(SECONDS)
    }

    pub fn observe(&self, value: f64) {
        let bucket = self.0.bounds.partition_point(|&bound| bound < value);
        self.0.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counts: self
                .0
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
        }
    }

    /// The `q` quantile (0 to 1) of what was observed between `earlier` and `later`, interpolated
    /// within its bucket; `None` when nothing was. Above the last bound it answers that bound.
    pub fn quantile(&self, earlier: &Snapshot, later: &Snapshot, q: f64) -> Option<f64> {
        let counts: Vec<u64> = later
            .counts
            .iter()
            .zip(&earlier.counts)
            .map(|(later, earlier)| later.saturating_sub(*earlier))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (bucket, &count) in counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = self.0.bounds.get(bucket) else {
                    return self.0.bounds.last().copied();
                };
                let lower = bucket.checked_sub(1).map_or(0.0, |b| self.0.bounds[b]);
                let within = (rank - below as f64) / count as f64;
                return Some(lower + (upper - lower) * within);
            }
            below += count;
        }
        self.0.bounds.last().copied()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.snapshot().counts;
        let buckets: Vec<(f64, u64)> = self
            .0
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let sum = f64::from_bits(self.0.sum.load(Ordering::Relaxed));
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_what_was_observed_between_two_snapshots() {
        let histogram = Histogram::new(&[1.0, 2.0, 4.0]);
        for _ in 0..100 {
            histogram.observe(10.0);
        }
        let earlier = histogram.snapshot();
        // 50 in (0, 1], 50 in (2, 4]: the median is at the top of the first bucket.
        for _ in 0..50 {
            histogram.observe(0.5);
            histogram.observe(3.0);
        }
        let later = histogram.snapshot();
        assert_eq!(histogram.quantile(&earlier, &later, 0.5), Some(1.0));
        assert_eq!(histogram.quantile(&earlier, &later, 0.75), Some(3.0));
        assert_eq!(histogram.quantile(&later, &later, 0.5), None);
        // Above every bound, the last bound is the best it can say.
        assert_eq!(
            histogram.quantile(&Snapshot { counts: vec![0; 4] }, &later, 0.99),
            Some(4.0)
        );
    }

    #[test]
    fn a_value_on_a_bound_falls_in_that_bucket_as_prometheus_counts_le() {
        let histogram = Histogram::new(&[1.0, 2.0]);
        histogram.observe(1.0);
        histogram.observe(1.5);
        histogram.observe(7.0);
        assert_eq!(histogram.snapshot().counts, [1, 1, 1]);
    }
}

//! Min/max-preserving decimation (M4): split a time range into equal buckets and keep, in each, the
//! first, the lowest, the highest and the last point. A chart drawn from these is the chart of all the
//! points at that width: no spike or dip is averaged away, unlike mean-based downsampling.
//!
//! One implementation serves the server (history answers with `max_points`) and the browser (charts
//! decimate to their pixel width). It consumes points as a stream in time order, so the server never
//! holds a long range in memory.

/// The decimator. Feed points in ascending time with `push`, then `finish`.
#[derive(Clone)]
pub struct M4 {
    origin: i64,
    width: i64,
    limit: usize,
    /// The points as given, kept while there are at most `limit` of them: a range that fits is
    /// answered exactly, not decimated.
    raw: Option<(Vec<i64>, Vec<f64>)>,
    /// The current bucket's index and summary.
    bucket: Option<(i64, Aggregate)>,
    timestamps: Vec<i64>,
    values: Vec<f64>,
}

/// A value at a time (ms since the Unix epoch): what a signal's series is made of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimeValue {
    pub time: i64,
    pub value: f64,
}

impl TimeValue {
    pub fn new(time: i64, value: f64) -> TimeValue {
        TimeValue { time, value }
    }
}

/// What a bucket of points comes down to: count and sum, and the first, lowest, highest and last point.
/// M4 keeps the last four of each bucket; the server's rollups store all of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregate {
    pub count: i64,
    pub sum: f64,
    pub low: TimeValue,
    pub high: TimeValue,
    pub first: TimeValue,
    pub last: TimeValue,
}

impl Aggregate {
    pub fn of(t: i64, v: f64) -> Aggregate {
        let point = TimeValue::new(t, v);
        Aggregate {
            count: 1,
            sum: v,
            low: point,
            high: point,
            first: point,
            last: point,
        }
    }

    /// Adds a point, in any time order.
    pub fn add(&mut self, t: i64, v: f64) {
        self.count += 1;
        self.sum += v;
        let point = TimeValue::new(t, v);
        if v < self.low.value {
            self.low = point;
        }
        if v > self.high.value {
            self.high = point;
        }
        if t < self.first.time {
            self.first = point;
        }
        if t > self.last.time {
            self.last = point;
        }
    }

    pub fn points(&self) -> impl Iterator<Item = TimeValue> {
        bucket_points([self.first, self.low, self.high, self.last])
    }
}

/// A bucket's first, lowest, highest and last points, in time order, each once: what a
/// min/max-preserving chart needs of it.
pub fn bucket_points(mut points: [TimeValue; 4]) -> impl Iterator<Item = TimeValue> {
    points.sort_by_key(|p| p.time);
    let mut previous = None;
    points.into_iter().filter(move |p| {
        let fresh = previous != Some(p.time);
        previous = Some(p.time);
        fresh
    })
}

/// The width (ms) of the buckets that `M4::over(from, to, max_points)` decimates into.
pub fn bucket_width(from: i64, to: i64, max_points: usize) -> i64 {
    let buckets = (max_points / 4).max(1) as i64;
    let span = to.saturating_sub(from).saturating_add(1).max(1);
    ((span + buckets - 1) / buckets).max(1)
}

impl M4 {
    /// At most `max_points` (≥ 4) points for the range `from..=to`: `max_points / 4` equal buckets.
    pub fn over(from: i64, to: i64, max_points: usize) -> M4 {
        M4::with_buckets(from, bucket_width(from, to, max_points), max_points)
    }

    /// Buckets of `width` ms from `origin`; points are kept raw while there are at most `limit`.
    /// The caller makes sure the range holds at most `limit / 4` buckets.
    pub fn with_buckets(origin: i64, width: i64, limit: usize) -> M4 {
        M4 {
            origin,
            width: width.max(1),
            limit,
            raw: Some((Vec::new(), Vec::new())),
            bucket: None,
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, t: i64, v: f64) {
        if let Some((ts, vs)) = &mut self.raw {
            if ts.len() < self.limit {
                ts.push(t);
                vs.push(v);
            } else {
                self.raw = None;
            }
        }
        let index = (t - self.origin).div_euclid(self.width);
        match &mut self.bucket {
            Some((current, aggregate)) if *current == index => aggregate.add(t, v),
            _ => {
                self.flush();
                self.bucket = Some((index, Aggregate::of(t, v)));
            }
        }
    }

    fn flush(&mut self) {
        let Some((_, aggregate)) = self.bucket.take() else {
            return;
        };
        for point in aggregate.points() {
            self.timestamps.push(point.time);
            self.values.push(point.value);
        }
    }

    /// The points, and whether they were decimated (`false`: exactly the points pushed).
    pub fn finish(mut self) -> (Vec<i64>, Vec<f64>, bool) {
        if let Some((ts, vs)) = self.raw.take() {
            return (ts, vs, false);
        }
        self.flush();
        (self.timestamps, self.values, true)
    }
}

/// Decimates whole slices: at most `max_points` points of `from..=to`.
pub fn m4(
    timestamps: &[i64],
    values: &[f64],
    from: i64,
    to: i64,
    max_points: usize,
) -> (Vec<i64>, Vec<f64>, bool) {
    let mut m4 = M4::over(from, to, max_points);
    for (&t, &v) in timestamps.iter().zip(values) {
        m4.push(t, v);
    }
    m4.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_keep_extremes_ends_and_totals() {
        let mut a = Aggregate::of(10, 5.0);
        for (t, v) in [(30, 1.0), (20, 9.0), (5, 4.0)] {
            a.add(t, v);
        }
        assert_eq!((a.count, a.sum), (4, 19.0));
        let tv = TimeValue::new;
        assert_eq!(
            (a.low, a.high, a.first, a.last),
            (tv(30, 1.0), tv(20, 9.0), tv(5, 4.0), tv(30, 1.0))
        );
        assert_eq!(
            a.points().collect::<Vec<_>>(),
            [tv(5, 4.0), tv(20, 9.0), tv(30, 1.0)]
        );
    }

    fn wave(n: usize) -> (Vec<i64>, Vec<f64>) {
        let ts = (0..n as i64).collect();
        let vs = (0..n).map(|i| (i as f64 / 50.0).sin()).collect();
        (ts, vs)
    }

    #[test]
    fn a_range_that_fits_is_returned_exactly() {
        let (ts, vs) = wave(100);
        let (t, v, decimated) = m4(&ts, &vs, 0, 99, 100);
        assert!(!decimated);
        assert_eq!((t, v), (ts, vs));
    }

    #[test]
    fn a_single_spike_and_a_single_dip_survive() {
        let (ts, mut vs) = wave(20_000);
        vs[7_777] = 50.0;
        vs[12_345] = -50.0;
        let (t, v, decimated) = m4(&ts, &vs, 0, 19_999, 500);
        assert!(decimated);
        assert!(t.len() <= 500, "{} points", t.len());
        assert!(
            t.windows(2).all(|w| w[0] < w[1]),
            "ascending, no duplicates"
        );
        let at = |time: i64| t.iter().position(|&x| x == time).map(|i| v[i]);
        assert_eq!(at(7_777), Some(50.0));
        assert_eq!(at(12_345), Some(-50.0));
    }

    #[test]
    fn every_bucket_keeps_its_extremes() {
        let ts: Vec<i64> = (0..10_000).map(|i| i * 3).collect();
        let vs: Vec<f64> = (0..10_000).map(|i| ((i * 7919) % 1000) as f64).collect();
        let (from, to, max_points) = (0, 29_997, 400);
        let (t, v, _) = m4(&ts, &vs, from, to, max_points);
        assert!(t.len() <= max_points);
        let width = (to - from + 1 + 99) / 100;
        for bucket in 0..100 {
            let inside = |time: &i64| (time - from) / width == bucket;
            let raw: Vec<f64> = ts
                .iter()
                .zip(&vs)
                .filter(|(t, _)| inside(t))
                .map(|(_, v)| *v)
                .collect();
            let kept: Vec<f64> = t
                .iter()
                .zip(&v)
                .filter(|(t, _)| inside(t))
                .map(|(_, v)| *v)
                .collect();
            let max = |x: &[f64]| x.iter().cloned().fold(f64::MIN, f64::max);
            let min = |x: &[f64]| x.iter().cloned().fold(f64::MAX, f64::min);
            assert_eq!(max(&raw), max(&kept), "bucket {bucket}");
            assert_eq!(min(&raw), min(&kept), "bucket {bucket}");
        }
    }
}

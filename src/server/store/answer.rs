//! A range read as every store collects it: the stretches to read (raw points, or minute or hour
//! rollups, as `rollup::decimation` plans them), one sink per signal, and the series they make. A
//! store only runs a query per stretch and hands over what it reads.

use super::rollup::{self, Source, Stretch};
use super::rows::Extremes;
use super::{Range, Retention, Shape, Sink};
use crate::downsample::TimeValue;
use crate::model::Series;
use std::collections::BTreeMap;

pub(super) struct Answer {
    /// By signal name, as the answer lists them.
    sinks: BTreeMap<String, Sink>,
    /// A new signal's sink.
    empty: Sink,
    /// Points still to read before a raw read stops.
    left: usize,
    /// The range asked for: a stretch may reach out of it to read whole rollup buckets.
    from: i64,
    to: i64,
    /// Whether any stretch is read from rollups: its series are then marked downsampled.
    from_rollups: bool,
}

impl Answer {
    /// The answer to `range` in `shape` as of `now`, and the stretches to read for it, in time order.
    pub fn plan(
        range: &Range,
        shape: Shape,
        retention: Retention,
        now: i64,
    ) -> (Answer, Vec<Stretch>) {
        let (from, to) = (range.from.millis(), range.to.millis());
        let (empty, stretches, left) = match shape {
            // Raw reads stop one point past the limit, so the caller can tell "more than the limit".
            // They end at the raw cutoff: what is past it is gone, or will be at the next pass.
            Shape::Raw { limit } => (
                Sink::Raw(Vec::new(), Vec::new()),
                vec![Stretch::new(
                    Source::Raw,
                    from.max(now.saturating_sub(retention.raw_ms)),
                    to,
                )],
                limit.saturating_add(1),
            ),
            Shape::Decimated { max_points } => {
                let finest_at = |t| retention.finest_at(t, now);
                let (sink, stretches) = rollup::decimation(from, to, max_points, finest_at);
                (sink, stretches, usize::MAX)
            }
        };
        let answer = Answer {
            sinks: BTreeMap::new(),
            empty,
            left,
            from,
            to,
            from_rollups: stretches.iter().any(|s| s.source != Source::Raw),
        };
        (answer, stretches)
    }

    /// How many more points a raw read may take (`usize::MAX` when it is not limited).
    pub fn left(&self) -> usize {
        self.left
    }

    /// The part of `stretch` within the range asked for, `(start, end)`: a stretch of rollups may
    /// reach out of it to read whole buckets.
    pub fn clip(&self, stretch: Stretch) -> (i64, i64) {
        (stretch.start.max(self.from), stretch.end.min(self.to))
    }

    /// Adds a run of raw points of signal `name` (ascending, within the `clip`ped stretch read). Returns
    /// false once the read has all the points it may take.
    pub fn push_run(&mut self, name: String, points: &[TimeValue]) -> bool {
        let sink = self.sinks.entry(name).or_insert_with(|| self.empty.clone());
        let taken = points.len().min(self.left);
        for point in &points[..taken] {
            sink.push(point.time, point.value);
        }
        self.left -= taken;
        self.left > 0
    }

    /// Adds the first, lowest, highest and last points of a rollup bucket of signal `name`, those
    /// within the range asked for.
    pub fn push_extremes(&mut self, name: String, extremes: &Extremes) {
        let sink = self.sinks.entry(name).or_insert_with(|| self.empty.clone());
        for point in extremes.points() {
            if (self.from..=self.to).contains(&point.time) {
                sink.push(point.time, point.value);
            }
        }
    }

    /// One series per signal with points, by name.
    pub fn finish(self) -> Vec<Series> {
        let from_rollups = self.from_rollups;
        self.sinks
            .into_iter()
            .filter_map(|(signal, sink)| {
                let (timestamps, values, decimated) = sink.finish();
                (!timestamps.is_empty()).then_some(Series {
                    signal,
                    timestamps,
                    values,
                    downsampled: decimated || from_rollups,
                })
            })
            .collect()
    }
}

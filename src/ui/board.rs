//! The dashboard's state: every known signal with its last point, the points of the charted ones over
//! the view's window, the view itself, the connection state and the shared crosshair. Live messages and
//! history answers are merged here, so a point received twice (once live, once in a backfill) is
//! stored once.

use crate::model::{History, LiveMessage, SignalInfo};
use crate::ui::view::View;
use leptos::prelude::*;

/// A signal's points, ascending in time, without duplicate timestamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesData {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Changes whenever points change other than by being appended: a chart that drew the first `n`
    /// points of a revision may draw just the rest on top of its picture.
    pub revision: u64,
    /// The width (ms) of the buckets the points were decimated into by the server; 0 for raw points.
    /// A step must pass two of them to be a gap (`gaps.rs`).
    pub bucket: i64,
}

/// Revisions are unique across all series, so a replaced series never passes for the one it replaced.
static REVISIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_revision() -> u64 {
    REVISIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A signal's figures over the view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub last: f64,
}

impl SeriesData {
    /// A series of these points (ascending, unique), under a revision of its own.
    pub fn new(timestamps: Vec<i64>, values: Vec<f64>) -> SeriesData {
        SeriesData {
            timestamps,
            values,
            revision: next_revision(),
            bucket: 0,
        }
    }

    /// These points, decimated by the server into buckets of `bucket` ms.
    pub fn decimated_into(self, bucket: i64) -> SeriesData {
        SeriesData { bucket, ..self }
    }

    /// The usual step between the points in `from..=to` (`gaps::usual_step`).
    pub fn usual_step(&self, from: i64, to: i64) -> Option<i64> {
        crate::ui::gaps::usual_step(self.within(from, to).0)
    }

    /// Adds a point; a point at an existing timestamp replaces it, as it does in the store.
    pub fn insert(&mut self, timestamp: i64, value: f64) {
        match self.timestamps.last() {
            Some(&last) if timestamp <= last => {
                self.revision = next_revision();
                match self.timestamps.binary_search(&timestamp) {
                    Ok(i) => self.values[i] = value,
                    Err(i) => {
                        self.timestamps.insert(i, timestamp);
                        self.values.insert(i, value);
                    }
                }
            }
            // The common case, a newer point, is a push.
            _ => {
                self.timestamps.push(timestamp);
                self.values.push(value);
            }
        }
    }

    /// Forgets the points before `timestamp`: the window slides, memory must not grow.
    pub fn trim_before(&mut self, timestamp: i64) {
        let n = self.timestamps.partition_point(|&t| t < timestamp);
        if n > 0 {
            self.revision = next_revision();
            self.timestamps.drain(..n);
            self.values.drain(..n);
        }
    }

    pub fn last(&self) -> Option<(i64, f64)> {
        Some((*self.timestamps.last()?, *self.values.last()?))
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The points in `from..=to`.
    pub fn within(&self, from: i64, to: i64) -> (&[i64], &[f64]) {
        let start = self.timestamps.partition_point(|&t| t < from);
        let end = self.timestamps.partition_point(|&t| t <= to);
        (&self.timestamps[start..end], &self.values[start..end])
    }

    /// Min, max, mean and last of the points in `from..=to`.
    pub fn stats(&self, from: i64, to: i64) -> Option<Stats> {
        let (_, values) = self.within(from, to);
        let last = *values.last()?;
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for &v in values {
            min = min.min(v);
            max = max.max(v);
            sum += v;
        }
        Some(Stats {
            min,
            max,
            mean: sum / values.len() as f64,
            last,
        })
    }

    /// The point nearest to `t`, if it lies within `tolerance` of it.
    pub fn nearest(&self, t: i64, tolerance: i64) -> Option<(i64, f64)> {
        let i = self.timestamps.partition_point(|&x| x < t);
        let candidates = [i.checked_sub(1), Some(i)];
        candidates
            .into_iter()
            .flatten()
            .filter_map(|j| Some((*self.timestamps.get(j)?, self.values[j])))
            .min_by_key(|&(x, _)| (x - t).abs())
            .filter(|&(x, _)| (x - t).abs() <= tolerance)
    }
}

/// One signal on the board. Each has its own reactive parts, so a point redraws only its own chart.
#[derive(Clone)]
pub struct SeriesHandle {
    pub name: String,
    /// The newest point, kept for every signal (the list shows it).
    pub last: ArcRwSignal<Option<(i64, f64)>>,
    /// The points in the view; kept only while the signal is charted.
    pub data: ArcRwSignal<SeriesData>,
    /// Whether `data` came decimated (so the mean is of the kept points, not of every point).
    pub downsampled: ArcRwSignal<bool>,
    /// How often the signal reports, from its recent live points and its history: whether it has
    /// gone stale.
    pub cadence: ArcRwSignal<Cadence>,
}

/// A signal's usual step, robust to jitter and to the odd silence: the median of its last few
/// steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cadence {
    steps: [i64; 5],
    known: usize,
    next: usize,
}

impl Cadence {
    pub fn add(&mut self, step: i64) {
        if step > 0 {
            self.steps[self.next] = step;
            self.next = (self.next + 1) % self.steps.len();
            self.known = (self.known + 1).min(self.steps.len());
        }
    }

    /// The usual step, if at least one is known.
    pub fn usual(&self) -> Option<i64> {
        let mut known = self.steps[..self.known].to_vec();
        let middle = known.len().checked_sub(1)? / 2;
        Some(*known.select_nth_unstable(middle).1)
    }
}

impl SeriesHandle {
    fn new(name: String, last: Option<(i64, f64)>) -> SeriesHandle {
        SeriesHandle {
            name,
            last: ArcRwSignal::new(last),
            data: ArcRwSignal::new(SeriesData::default()),
            downsampled: ArcRwSignal::new(false),
            cadence: ArcRwSignal::new(Cadence::default()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
}

impl Connection {
    /// Stable machine-readable form, for CSS and tests.
    pub fn key(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Reconnecting => "reconnecting",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Connection::Connecting => "Connecting…",
            Connection::Live => "Live",
            Connection::Reconnecting => "Reconnecting…",
        }
    }
}

#[derive(Clone, Copy)]
pub struct Board {
    /// Every known signal, sorted by name.
    pub series: RwSignal<Vec<SeriesHandle>>,
    pub view: RwSignal<View>,
    pub connection: RwSignal<Connection>,
    /// The right edge of a live window, epoch ms: the browser sets it a tick ahead of its clock and
    /// moves it every second.
    pub now: RwSignal<i64>,
    /// The time under the pointer on any chart: every chart draws its crosshair there.
    pub hover: RwSignal<Option<i64>>,
    /// False while the tab is hidden: charts skip drawing and catch up when it is shown.
    pub visible: RwSignal<bool>,
    /// The charted signals' names, in the view's order: what the page lays out, the list ticks and
    /// the history reads fetch. It notifies only when the names change, not on every view change.
    pub charted: Memo<Vec<String>>,
    /// The alert rules and the annotations in view (`ui/alerts.rs`).
    pub alerts: RwSignal<crate::model::AlertOverview>,
    /// The page's own health (`ui/health.rs`).
    pub health: crate::ui::health::PageHealth,
}

impl Board {
    /// A board seeded with the signals the server knows and each one's last point, so the first render
    /// (on the server, then hydrated) already lists them.
    pub fn new(signals: Vec<SignalInfo>, view: View) -> Board {
        let mut series: Vec<SeriesHandle> = signals
            .into_iter()
            .map(|info| {
                SeriesHandle::new(info.signal, Some((info.last_timestamp, info.last_value)))
            })
            .collect();
        series.sort_by(|a, b| a.name.cmp(&b.name));
        let series = RwSignal::new(series);
        let view = RwSignal::new(view);
        let charted = Memo::new(move |_| {
            let view = view.get();
            series.with(|all| charted_in(&view, all).into_iter().map(|h| h.name).collect())
        });
        Board {
            series,
            view,
            connection: RwSignal::new(Connection::Connecting),
            now: RwSignal::new(0),
            hover: RwSignal::new(None),
            visible: RwSignal::new(true),
            charted,
            alerts: RwSignal::new(Default::default()),
            health: crate::ui::health::PageHealth::new(),
        }
    }

    /// The charted signals' handles, in the view's order, tracked through `charted`: a caller reruns
    /// when the charted names change, not on every change of the view or the signal list.
    pub fn charted_handles(&self) -> Vec<SeriesHandle> {
        self.charted.track();
        self.charted_untracked()
    }

    pub fn charted_untracked(&self) -> Vec<SeriesHandle> {
        let view = self.view.get_untracked();
        self.series.with_untracked(|all| charted_in(&view, all))
    }

    pub fn charted_names(&self) -> Vec<String> {
        self.charted.get_untracked()
    }

    /// The handle of `name`, added to the board if it is new.
    fn handle(&self, name: &str) -> SeriesHandle {
        if let Ok(handle) = self
            .series
            .with_untracked(|all| find(all, name).map(|i| all[i].clone()))
        {
            return handle;
        }
        let handle = SeriesHandle::new(name.to_owned(), None);
        self.series.update(|all| {
            let at = all.partition_point(|h| h.name.as_str() < name);
            all.insert(at, handle.clone());
        });
        handle
    }

    /// Live points: every signal's last point moves; charted signals keep the points while the view
    /// follows the clock.
    pub fn merge_live(&self, message: LiveMessage) {
        let mut points = message.points;
        points.sort_by(|a, b| a.signal.cmp(&b.signal));
        let following = self.view.with_untracked(View::is_live);
        // A message holds whole groups of points: update each signal once, not once per point.
        let chunks: Vec<_> = points
            .chunk_by(|a, b| a.signal == b.signal)
            .map(|chunk| (self.handle(&chunk[0].signal), chunk))
            .collect();
        // Asked after new signals joined the board: one of them may be charted at once.
        let charted = self.charted_names();
        for (handle, chunk) in chunks {
            let newest = chunk
                .iter()
                .max_by_key(|p| p.timestamp)
                .map(|p| (p.timestamp, p.value));
            let previous = handle.last.with_untracked(|l| l.map(|(t, _)| t));
            if newest.map(|(t, _)| t) > previous {
                handle.last.set(newest);
                // Steps between points that arrive in order; a resend of older points says nothing.
                let mut times: Vec<i64> = chunk.iter().map(|p| p.timestamp).collect();
                times.sort_unstable();
                let from = previous.into_iter().chain(times.iter().copied());
                let steps: Vec<i64> = from.zip(&times).map(|(a, &b)| b - a).collect();
                handle
                    .cadence
                    .update(|c| steps.iter().for_each(|&s| c.add(s)));
            }
            if following && charted.contains(&handle.name) {
                handle.data.update(|data| {
                    for p in chunk {
                        data.insert(p.timestamp, p.value);
                    }
                });
            }
        }
    }

    /// A history answer for the charted signals: replaces what they held (a new view), or, with
    /// `backfill`, is merged into it (points missed while disconnected).
    /// `max_points` is what was asked for each series: a decimated one was decimated into the
    /// buckets it makes.
    pub fn apply_history(&self, history: History, backfill: bool, max_points: usize) {
        let bucket = crate::downsample::bucket_width(history.from, history.to, max_points);
        let charted = self.charted_names();
        let following = self.view.with_untracked(View::is_live);
        let mut answered: std::collections::HashMap<String, _> = history
            .series
            .into_iter()
            .map(|s| (s.signal.clone(), s))
            .collect();
        for name in charted {
            let handle = self.handle(&name);
            let series = answered.remove(&name);
            match (series, backfill) {
                (Some(series), true) => handle.data.update(|data| {
                    for (&t, &v) in series.timestamps.iter().zip(&series.values) {
                        data.insert(t, v);
                    }
                }),
                (Some(series), false) => {
                    handle.downsampled.set(series.downsampled);
                    let mut fresh = SeriesData::new(series.timestamps, series.values);
                    if series.downsampled {
                        fresh = fresh.decimated_into(bucket);
                    } else if let Some(usual) = crate::ui::gaps::usual_step(&fresh.timestamps) {
                        // Raw history says how often the signal reports until live points do.
                        handle.cadence.update(|c| {
                            if c.usual().is_none() {
                                c.add(usual);
                            }
                        });
                    }
                    // Live points that arrived after the server read this answer stay.
                    let newest = fresh.last().map_or(i64::MIN, |(t, _)| t);
                    handle.data.with_untracked(|old| {
                        if !following {
                            return;
                        }
                        let (times, values) = old.within(newest + 1, i64::MAX);
                        for (&t, &v) in times.iter().zip(values) {
                            fresh.insert(t, v);
                        }
                    });
                    handle.data.set(fresh);
                }
                (None, true) => {}
                (None, false) => handle.data.set(SeriesData::default()),
            }
        }
    }

    /// The newest timestamp charted, where a backfill after a reconnect starts.
    pub fn last_seen(&self) -> Option<i64> {
        self.series.with_untracked(|all| {
            all.iter()
                .filter_map(|h| h.data.with_untracked(|d| d.last()).map(|(t, _)| t))
                .max()
        })
    }

    /// Drops points older than `timestamp` from every series, notifying only the series that changed.
    pub fn trim_before(&self, timestamp: i64) {
        self.series.with_untracked(|all| {
            for handle in all {
                let stale = handle
                    .data
                    .with_untracked(|d| d.timestamps.first().is_some_and(|&t| t < timestamp));
                if stale {
                    handle.data.update(|d| d.trim_before(timestamp));
                }
            }
        });
    }
}

/// The charted points in `from..=to` as CSV: `signal,timestamp,time,value`, times in UTC (RFC 3339) and
/// epoch ms, one row per point, signal by signal.
pub fn csv(series: &[(String, SeriesData)], from: i64, to: i64) -> String {
    let mut out = String::from("signal,timestamp,time,value\n");
    for (name, data) in series {
        let name = csv_text(name);
        let (times, values) = data.within(from, to);
        for (&t, &v) in times.iter().zip(values) {
            out.push_str(&format!("{name},{t},{},{v}\n", crate::ui::axis::rfc3339(t)));
        }
    }
    out
}

/// A text cell: a name that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`,
/// a tab or a carriage return) gets a leading `'`, as OWASP recommends; one holding a comma (tags), a
/// quote or a line break is quoted, inner quotes doubled.
fn csv_text(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn charted_in(view: &View, all: &[SeriesHandle]) -> Vec<SeriesHandle> {
    let names: Vec<String> = all.iter().map(|h| h.name.clone()).collect();
    view.charted(&names)
        .into_iter()
        .filter_map(|name| find(all, name).ok().map(|i| all[i].clone()))
        .collect()
}

fn find(all: &[SeriesHandle], name: &str) -> Result<usize, usize> {
    all.binary_search_by(|h| h.name.as_str().cmp(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Point, Series};
    use crate::ui::view::Window;

    #[test]
    fn insert_keeps_time_order_and_replaces_duplicates() {
        let mut d = SeriesData::default();
        for (t, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 3.5), (5, 0.5)] {
            d.insert(t, v);
        }
        assert_eq!(d.timestamps, [5, 10, 20, 30]);
        assert_eq!(d.values, [0.5, 1.0, 2.0, 3.5]);
        assert_eq!(d.within(6, 20), (&[10, 20][..], &[1.0, 2.0][..]));
        assert_eq!(
            d.stats(6, 30),
            Some(Stats {
                min: 1.0,
                max: 3.5,
                mean: 6.5 / 3.0,
                last: 3.5
            })
        );
        assert_eq!(d.stats(31, 40), None);
        assert_eq!(d.nearest(18, 5), Some((20, 2.0)));
        assert_eq!(d.nearest(14, 5), Some((10, 1.0)));
        assert_eq!(d.nearest(100, 5), None);
        d.trim_before(20);
        assert_eq!(d.timestamps, [20, 30]);
        assert_eq!(d.last(), Some((30, 3.5)));
    }

    fn point(signal: &str, timestamp: i64, value: f64) -> Point {
        Point {
            signal: signal.into(),
            timestamp,
            value,
        }
    }

    fn series(signal: &str, points: &[(i64, f64)]) -> Series {
        Series {
            signal: signal.into(),
            timestamps: points.iter().map(|p| p.0).collect(),
            values: points.iter().map(|p| p.1).collect(),
            downsampled: false,
        }
    }

    #[test]
    fn live_and_history_merge_without_duplicates() {
        let owner = Owner::new();
        owner.with(|| {
            let board = Board::new(vec![], View::default());
            board.merge_live(LiveMessage {
                points: vec![point("b", 2, 2.0), point("a", 3, 3.0)],
            });
            let history = |points: &[(i64, f64)]| History {
                from: 0,
                to: 3,
                series: vec![series("b", points)],
            };
            board.apply_history(history(&[(1, 1.0), (2, 2.0)]), true, 4_000);
            assert_eq!(board.charted_names(), ["a", "b"]);
            let b = board.handle("b");
            assert_eq!(b.data.get_untracked().timestamps, [1, 2]);
            assert_eq!(b.last.get_untracked(), Some((2, 2.0)));
            assert_eq!(board.last_seen(), Some(3));
            // A new view replaces the points; a signal without any in it is emptied.
            board.apply_history(history(&[(7, 7.0)]), false, 4_000);
            assert_eq!(b.data.get_untracked().timestamps, [7]);
            assert!(board.handle("a").data.get_untracked().is_empty());
            board.trim_before(8);
            assert!(b.data.get_untracked().is_empty());
        });
    }

    #[test]
    fn csv_holds_the_points_in_view() {
        let mut a = SeriesData::default();
        for (t, v) in [
            (1_795_687_200_000, 1.5),
            (1_795_687_201_000, -2.0),
            (1_795_687_300_000, 9.0),
        ] {
            a.insert(t, v);
        }
        let mut b = SeriesData::default();
        b.insert(1_795_687_200_500, 0.25);
        let text = csv(
            &[("a".into(), a), ("cpu.usage{dc=eu,host=a}".into(), b)],
            1_795_687_200_000,
            1_795_687_201_000,
        );
        assert_eq!(
            text,
            "signal,timestamp,time,value\n\
             a,1795687200000,2026-11-26T10:00:00.000Z,1.5\n\
             a,1795687201000,2026-11-26T10:00:01.000Z,-2\n\
             \"cpu.usage{dc=eu,host=a}\",1795687200500,2026-11-26T10:00:00.500Z,0.25\n"
        );
    }

    #[test]
    fn csv_names_never_run_as_spreadsheet_formulas() {
        let mut data = SeriesData::default();
        data.insert(1_795_687_200_000, -1.0);
        let row = |name: &str| {
            let text = csv(&[(name.into(), data.clone())], 0, i64::MAX);
            text.lines().nth(1).unwrap().to_owned()
        };
        assert_eq!(
            row("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",1795687200000,2026-11-26T10:00:00.000Z,-1"
        );
        for formula in ["+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            let cell = row(formula);
            assert!(
                cell.starts_with('\'') || cell.starts_with("\"'"),
                "{formula:?} exported as {cell:?}"
            );
        }
        // The value column is a number, negative or not: left as it is.
        assert!(row("cpu").ends_with(",-1"));
    }

    #[test]
    fn only_charted_signals_keep_points_and_only_while_live() {
        let owner = Owner::new();
        owner.with(|| {
            let view = View {
                signals: Some(vec!["shown".into()]),
                ..View::default()
            };
            let board = Board::new(vec![], view.clone());
            board.merge_live(LiveMessage {
                points: vec![point("shown", 1, 1.0), point("hidden", 1, 5.0)],
            });
            assert_eq!(board.handle("shown").data.get_untracked().len(), 1);
            let hidden = board.handle("hidden");
            assert!(hidden.data.get_untracked().is_empty());
            assert_eq!(hidden.last.get_untracked(), Some((1, 5.0)));
            // Paused: the last value moves, the picture does not.
            board
                .view
                .set(view.with_window(Window::Fixed { from: 0, to: 10 }));
            board.merge_live(LiveMessage {
                points: vec![point("shown", 2, 2.0)],
            });
            let shown = board.handle("shown");
            assert_eq!(shown.data.get_untracked().len(), 1);
            assert_eq!(shown.last.get_untracked(), Some((2, 2.0)));
        });
    }
}

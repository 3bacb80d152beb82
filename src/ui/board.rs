//! The dashboard's state: one reactive series per signal, the connection state, and the clock the
//! charts slide with. Live messages and history answers are merged here, so a point received twice (once
//! live, once in a backfill) is stored once.

use crate::model::{History, LiveMessage, SignalInfo};
use leptos::prelude::*;

/// A signal's points, ascending in time, without duplicate timestamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesData {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

impl SeriesData {
    /// Adds a point; a point at an existing timestamp replaces it, as it does in the store.
    pub fn insert(&mut self, timestamp: i64, value: f64) {
        match self.timestamps.last() {
            Some(&last) if timestamp <= last => match self.timestamps.binary_search(&timestamp) {
                Ok(i) => self.values[i] = value,
                Err(i) => {
                    self.timestamps.insert(i, timestamp);
                    self.values.insert(i, value);
                }
            },
            // The common case, a newer point, is a push.
            _ => {
                self.timestamps.push(timestamp);
                self.values.push(value);
            }
        }
    }

    /// Forgets the points before `timestamp`: the charts slide, memory must not grow.
    pub fn trim_before(&mut self, timestamp: i64) {
        let n = self.timestamps.partition_point(|&t| t < timestamp);
        self.timestamps.drain(..n);
        self.values.drain(..n);
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
}

/// One signal on the board. Each has its own reactive data, so a point redraws only its own chart.
#[derive(Clone)]
pub struct SeriesHandle {
    pub name: String,
    pub data: ArcRwSignal<SeriesData>,
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
    /// Sorted by name.
    pub series: RwSignal<Vec<SeriesHandle>>,
    pub connection: RwSignal<Connection>,
    /// The right edge of every chart, epoch ms; the browser sets it on start and ticks it every second.
    pub now: RwSignal<i64>,
}

impl Board {
    /// A board seeded with the signals the server knows and each one's last point, so the first render
    /// (on the server, then hydrated) already lists them.
    pub fn new(signals: Vec<SignalInfo>) -> Board {
        let mut series: Vec<SeriesHandle> = signals
            .into_iter()
            .map(|info| {
                let mut data = SeriesData::default();
                data.insert(info.last_timestamp, info.last_value);
                SeriesHandle {
                    name: info.signal,
                    data: ArcRwSignal::new(data),
                }
            })
            .collect();
        series.sort_by(|a, b| a.name.cmp(&b.name));
        Board {
            series: RwSignal::new(series),
            connection: RwSignal::new(Connection::Connecting),
            now: RwSignal::new(0),
        }
    }

    /// The data of `name`, added to the board if it is new.
    fn data(&self, name: &str) -> ArcRwSignal<SeriesData> {
        let found = self.series.with_untracked(|all| {
            all.binary_search_by(|h| h.name.as_str().cmp(name))
                .map(|i| all[i].data.clone())
        });
        match found {
            Ok(data) => data,
            Err(_) => {
                let data = ArcRwSignal::new(SeriesData::default());
                let handle = SeriesHandle {
                    name: name.to_owned(),
                    data: data.clone(),
                };
                self.series.update(|all| {
                    let at = all.partition_point(|h| h.name.as_str() < name);
                    all.insert(at, handle);
                });
                data
            }
        }
    }

    pub fn merge_live(&self, message: LiveMessage) {
        // A message holds whole groups of points: update each signal once, not once per point.
        let mut points = message.points;
        points.sort_by(|a, b| a.signal.cmp(&b.signal));
        for chunk in points.chunk_by(|a, b| a.signal == b.signal) {
            self.data(&chunk[0].signal).update(|data| {
                for p in chunk {
                    data.insert(p.timestamp, p.value);
                }
            });
        }
    }

    pub fn merge_history(&self, history: History) {
        for series in history.series {
            self.data(&series.signal).update(|data| {
                for (&t, &v) in series.timestamps.iter().zip(&series.values) {
                    data.insert(t, v);
                }
            });
        }
    }

    /// The newest timestamp on the board, where a backfill after a reconnect starts.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Point, Series};

    #[test]
    fn insert_keeps_time_order_and_replaces_duplicates() {
        let mut d = SeriesData::default();
        for (t, v) in [(10, 1.0), (30, 3.0), (20, 2.0), (30, 3.5), (5, 0.5)] {
            d.insert(t, v);
        }
        assert_eq!(d.timestamps, [5, 10, 20, 30]);
        assert_eq!(d.values, [0.5, 1.0, 2.0, 3.5]);
        d.trim_before(20);
        assert_eq!(d.timestamps, [20, 30]);
        assert_eq!(d.last(), Some((30, 3.5)));
    }

    #[test]
    fn live_and_history_merge_without_duplicates() {
        let owner = Owner::new();
        owner.with(|| {
            let board = Board::new(vec![]);
            let point = |signal: &str, timestamp, value| Point {
                signal: signal.into(),
                timestamp,
                value,
            };
            board.merge_live(LiveMessage {
                points: vec![point("b", 2, 2.0), point("a", 3, 3.0)],
            });
            board.merge_history(History {
                from: 0,
                to: 3,
                series: vec![Series {
                    signal: "b".into(),
                    timestamps: vec![1, 2],
                    values: vec![1.0, 2.0],
                    downsampled: false,
                }],
            });
            let names: Vec<String> = board
                .series
                .get_untracked()
                .iter()
                .map(|h| h.name.clone())
                .collect();
            assert_eq!(names, ["a", "b"]);
            let b = board.data("b").get_untracked();
            assert_eq!(b.timestamps, [1, 2]);
            assert_eq!(board.last_seen(), Some(3));
            board.trim_before(3);
            assert!(board.data("b").get_untracked().is_empty());
        });
    }
}

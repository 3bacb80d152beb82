//! Signal name → `series.id`, kept in memory by each store, so a write looks its names up without a
//! query. An id never changes once given, so a cached one stays right whoever wrote it.

use super::rows::{Row, SeriesRow};
use super::SeriesId;
use crate::server::domain::{DataPoint, SignalName};
use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
pub(super) struct SeriesIds {
    by_name: Mutex<HashMap<Arc<str>, SeriesId>>,
}

impl SeriesIds {
    pub fn of(rows: Vec<SeriesRow>) -> SeriesIds {
        let ids = rows.into_iter().map(|row| (row.name.into(), row.id));
        SeriesIds {
            by_name: Mutex::new(ids.collect()),
        }
    }

    /// The map itself (a panic elsewhere while holding it leaves it whole: it is only ever added to).
    pub fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, SeriesId>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, rows: impl IntoIterator<Item = SeriesRow>) {
        let mut ids = self.lock();
        ids.extend(rows.into_iter().map(|row| (row.name.into(), row.id)));
    }

    /// The distinct names of `names` that are not known, by name.
    pub fn unknown<'a>(&self, names: impl Iterator<Item = &'a SignalName>) -> Vec<&'a SignalName> {
        let mut unknown: Vec<&SignalName> = {
            let ids = self.lock();
            names
                .filter(|name| !ids.contains_key(name.as_str()))
                .collect()
        };
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    /// `points` as rows of their series ids, sorted by (series, time), one per key: of two points
    /// with the same key the later one wins, as it would in two requests. `None` if a name is not
    /// known.
    pub fn rows(&self, points: &[&DataPoint]) -> Option<Vec<Row>> {
        let ids = self.lock();
        let mut rows = Vec::with_capacity(points.len());
        for point in points {
            let series = *ids.get(point.signal.as_str())?;
            rows.push(Row {
                series,
                ts: point.timestamp.millis(),
                value: point.value.get(),
            });
        }
        Row::keep_one_per_key(&mut rows);
        Some(rows)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

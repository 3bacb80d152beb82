//! Signal name → `series.id`, kept in memory by each store, so a write looks its names up without a
//! query. An id never changes once given, so a cached one stays right whoever wrote it.

use super::rows::{Row, Rows, SeriesRow};
use super::SeriesId;
use crate::server::domain::{DataPoint, SignalName};
use foldhash::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
pub(super) struct SeriesIds {
    /// Read by every request's handler at once; written only when signals are created.
    by_name: RwLock<HashMap<Arc<str>, SeriesId>>,
}

impl SeriesIds {
    pub fn of(rows: Vec<SeriesRow>) -> SeriesIds {
        let ids = rows.into_iter().map(|row| (row.name.into(), row.id));
        SeriesIds {
            by_name: RwLock::new(ids.collect()),
        }
    }

    /// The map to look names up in (a panic elsewhere while holding it leaves it whole: it is
    /// only ever added to).
    fn read(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, SeriesId>> {
        self.by_name.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The map to add to.
    pub fn write(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, SeriesId>> {
        self.by_name.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, rows: impl IntoIterator<Item = SeriesRow>) {
        let mut ids = self.write();
        ids.extend(rows.into_iter().map(|row| (row.name.into(), row.id)));
    }

    /// The distinct names of `names` that are not known, by name.
    pub fn unknown<'a>(&self, names: impl Iterator<Item = &'a SignalName>) -> Vec<&'a SignalName> {
        let mut unknown: Vec<&SignalName> = {
            let ids = self.read();
            names
                .filter(|name| !ids.contains_key(name.as_str()))
                .collect()
        };
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    /// `points` as rows of their series ids (`Rows`), each name looked up once; or, if some
    /// names are not known, those, distinct and by name.
    pub fn rows<'p>(
        &self,
        points: impl Iterator<Item = &'p DataPoint>,
    ) -> Result<Rows, Vec<&'p SignalName>> {
        let mut rows = Vec::with_capacity(points.size_hint().0);
        let mut unknown = Vec::new();
        {
            let ids = self.read();
            for point in points {
                match ids.get(point.signal.as_str()) {
                    Some(&series) => rows.push(Row {
                        series,
                        ts: point.timestamp.millis(),
                        value: point.value.get(),
                    }),
                    None => unknown.push(&point.signal),
                }
            }
        }
        if !unknown.is_empty() {
            unknown.sort_unstable();
            unknown.dedup();
            return Err(unknown);
        }
        Ok(Rows::of(rows))
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }
}

//! Signal name → `series.id`, kept in memory by each store, so a write looks its names up without a
//! query. An id never changes once given, so a cached one stays right whoever wrote it; and so a
//! store also notes each id on the name it looked up (`SignalName::note`), tagged with the store:
//! a name kept between requests (line protocol's) is then looked up once, not at every point.

use super::rows::{Row, Rows, SeriesRow};
use super::SeriesId;
use crate::server::domain::{DataPoint, SignalName};
use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A note is the store's tag above `ID_BITS` bits of id.
const ID_BITS: u32 = 40;
const ID_END: u64 = 1 << ID_BITS;
const TAG_END: u64 = 1 << (64 - ID_BITS);

/// The tag of the next store opened in this process (tests and `bench` open many).
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

pub(super) struct SeriesIds {
    /// Read by every request's handler at once; written only when signals are created.
    /// Keyed by the names themselves: the map shares each name's text with the writes that
    /// created it and with line protocol's cache.
    by_name: RwLock<HashMap<SignalName, SeriesId>>,
    /// This store's tag in the notes it leaves on names; 0 (past 2^24 stores) leaves none.
    tag: u64,
}

impl SeriesIds {
    pub fn of(rows: Vec<SeriesRow>) -> SeriesIds {
        let ids = named(rows);
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        SeriesIds {
            by_name: RwLock::new(ids.collect()),
            tag: if tag < TAG_END { tag } else { 0 },
        }
    }

    /// The id this store noted on `name`, if it did.
    fn noted(&self, name: &SignalName) -> Option<SeriesId> {
        let note = name.note().load(Ordering::Relaxed);
        (self.tag != 0 && note >> ID_BITS == self.tag).then_some(SeriesId((note % ID_END) as i64))
    }

    /// Notes `id` on `name` for this store (ids too large for a note are looked up every time).
    fn note(&self, name: &SignalName, SeriesId(id): SeriesId) {
        if let (1.., Ok(id @ 0..ID_END)) = (self.tag, u64::try_from(id)) {
            name.note()
                .store(self.tag << ID_BITS | id, Ordering::Relaxed);
        }
    }

    /// The map to look names up in (a panic elsewhere while holding it leaves it whole: it is
    /// only ever added to).
    fn read(&self) -> RwLockReadGuard<'_, HashMap<SignalName, SeriesId>> {
        self.by_name.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The map to add to.
    pub fn write(&self) -> RwLockWriteGuard<'_, HashMap<SignalName, SeriesId>> {
        self.by_name.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn add(&self, rows: impl IntoIterator<Item = SeriesRow>) {
        let mut ids = self.write();
        ids.extend(named(rows));
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
            // Taken at the first name not noted: with every name noted, the lock is not touched.
            let mut ids = None;
            for point in points {
                let name = &point.signal;
                let series = self.noted(name).or_else(|| {
                    let id = *ids.get_or_insert_with(|| self.read()).get(name.as_str())?;
                    self.note(name, id);
                    Some(id)
                });
                match series {
                    Some(series) => rows.push(Row {
                        series,
                        ts: point.timestamp.millis(),
                        value: point.value.get(),
                    }),
                    None => unknown.push(name),
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

/// Stored series by name. A name stored before a rule that now refuses it cannot be written to
/// any more, so it is left out.
fn named(
    rows: impl IntoIterator<Item = SeriesRow>,
) -> impl Iterator<Item = (SignalName, SeriesId)> {
    let name = |row: SeriesRow| Some((SignalName::parse(&row.name).ok()?, row.id));
    rows.into_iter().filter_map(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::domain::{Timestamp, Value};

    fn ids(names: &[(&str, i64)]) -> SeriesIds {
        let rows = names.iter().map(|&(name, id)| SeriesRow {
            name: name.into(),
            id: SeriesId(id),
        });
        SeriesIds::of(rows.collect())
    }

    fn series(ids: &SeriesIds, points: &[DataPoint]) -> Vec<SeriesId> {
        let rows = ids.rows(points.iter()).unwrap_or_else(|_| panic!("known"));
        rows.into_vec().iter().map(|row| row.series).collect()
    }

    #[test]
    fn a_name_noted_by_one_store_is_looked_up_afresh_by_another() {
        let point = |name: &str, t| DataPoint {
            signal: SignalName::parse(name).unwrap(),
            timestamp: Timestamp::from_millis(t).unwrap(),
            value: Value::new(1.0).unwrap(),
        };
        // The same names, kept between writes as line protocol keeps them, and two stores that
        // gave them different ids (as two databases of one process do: tests, `bench`).
        let a = point("a", 1);
        let points = [
            a.clone(),
            point("b", 1),
            DataPoint {
                timestamp: Timestamp::from_millis(2).unwrap(),
                ..a
            },
        ];
        let (one, other) = (ids(&[("a", 1), ("b", 2)]), ids(&[("a", 7), ("b", 1 << 41)]));
        assert_eq!(points[0].signal.note().load(Ordering::Relaxed), 0);
        for _ in 0..2 {
            assert_eq!(series(&one, &points), [1, 1, 2].map(SeriesId));
            assert_eq!(series(&other, &points), [7, 7, 1 << 41].map(SeriesId));
        }
        // Each store's note is its own: the last to look a name up wins it, and `b`'s id is too
        // large to note, so `one`'s note stays on it.
        let noted = |point: &DataPoint| point.signal.note().load(Ordering::Relaxed) & 0xffff;
        assert_eq!([noted(&points[0]), noted(&points[1])], [7, 2]);
        assert_eq!(other.noted(&points[0].signal), Some(SeriesId(7)));
        assert_eq!(one.noted(&points[0].signal), None);
        assert_eq!(one.noted(&points[1].signal), Some(SeriesId(2)));
    }
}

//! Where points wait for the server: records (a request's or a sample's points, as the JSON samples
//! they will be posted as, snappy-compressed) in a log on disk (`log.rs`), so the backlog outlives a
//! restart or a crash of the producer or edge, or in memory. Bounded in bytes: when full, the oldest records are
//! dropped, counted and logged, and new ones still taken. Records leave only once acknowledged.

mod log;

use crate::model::Sample;
use log::Log;
use serde::Serialize;
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A backlog kept in memory (no spool directory) holds at most this much.
pub const MEMORY_BYTES: u64 = 64 << 20;

/// Where a record ends in the spool: acknowledging it acknowledges everything before too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    segment: u64,
    offset: u64,
}

/// A record waiting: where it ends, its points, and its samples as JSON (comma-separated, the
/// inside of an array).
pub struct Spooled {
    pub end: Position,
    pub points: u32,
    pub json: String,
}

/// A record as kept: its JSON compressed (a third of the bytes or less, at hundreds of MB/s).
struct Record {
    end: Position,
    points: u32,
    payload: Vec<u8>,
}

/// What a spool holds and has lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SpoolStats {
    pub waiting_points: u64,
    pub bytes: u64,
    /// Points dropped because the spool was full, since it was opened.
    pub dropped_points: u64,
    /// Bytes found damaged (a torn or corrupt tail) when it was opened, and set aside.
    pub damaged_bytes: u64,
}

/// A handle on one spool; clones share it. File work runs off the async threads.
#[derive(Clone)]
pub struct Spool(Arc<Mutex<Backing>>);

enum Backing {
    Disk(Log),
    Memory(Memory),
}

impl Spool {
    /// The spool in `dir` (made if missing), or in memory without one, holding at most `max_bytes`.
    /// With `sync`, each append is on the disk before it returns (surviving power loss, not only
    /// a crash of the process).
    pub async fn open(dir: Option<&Path>, max_bytes: u64, sync: bool) -> io::Result<Spool> {
        let backing = match dir {
            Some(dir) => {
                let dir = dir.to_owned();
                let log = tokio::task::spawn_blocking(move || Log::open(&dir, max_bytes, sync))
                    .await
                    .expect("opening the spool does not panic")?;
                Backing::Disk(log)
            }
            None => Backing::Memory(Memory {
                max_bytes,
                ..Memory::default()
            }),
        };
        Ok(Spool(Arc::new(Mutex::new(backing))))
    }

    /// Adds a record of `points` points at the end of the line.
    pub async fn push(&self, points: u32, json: String) -> io::Result<()> {
        self.with(move |backing| {
            let payload = snap::raw::Encoder::new()
                .compress_vec(json.as_bytes())
                .map_err(io::Error::other)?;
            match backing {
                Backing::Disk(log) => log.append(points, &payload),
                Backing::Memory(memory) => {
                    memory.append(points, payload);
                    Ok(())
                }
            }
        })
        .await
    }

    pub async fn push_sample(&self, sample: &Sample) -> io::Result<()> {
        let json = serde_json::to_string(sample).expect("a sample of finite values serialises");
        self.push(sample.signals.len() as u32, json).await
    }

    /// The oldest records, as many as fit in `max_points` (at least one, if any is waiting).
    pub async fn oldest(&self, max_points: u64) -> io::Result<Vec<Spooled>> {
        self.with(move |backing| {
            let records = match backing {
                Backing::Disk(log) => log.oldest(max_points)?,
                Backing::Memory(memory) => memory.oldest(max_points),
            };
            records.into_iter().map(Record::unpacked).collect()
        })
        .await
    }

    /// The records up to `through`, holding `points`, were delivered or given up on.
    pub async fn acknowledge(&self, through: Position, points: u64) -> io::Result<()> {
        self.with(move |backing| match backing {
            Backing::Disk(log) => log.acknowledge(through, points),
            Backing::Memory(memory) => {
                memory.acknowledge(through, points);
                Ok(())
            }
        })
        .await
    }

    pub fn stats(&self) -> SpoolStats {
        match &*self.lock() {
            Backing::Disk(log) => SpoolStats {
                waiting_points: log.waiting_points,
                bytes: log.bytes(),
                dropped_points: log.dropped_points,
                damaged_bytes: log.damaged_bytes,
            },
            Backing::Memory(memory) => SpoolStats {
                waiting_points: memory.waiting_points,
                bytes: memory.bytes,
                dropped_points: memory.dropped_points,
                damaged_bytes: 0,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backing> {
        // A panic while holding the lock leaves the log as consistent as a crash would.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Backing) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let spool = self.clone();
        tokio::task::spawn_blocking(move || work(&mut spool.lock()))
            .await
            .map_err(io::Error::other)?
    }
}

impl Record {
    fn unpacked(self) -> io::Result<Spooled> {
        let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
        let json = snap::raw::Decoder::new()
            .decompress_vec(&self.payload)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Spooled {
            end: self.end,
            points: self.points,
            json: String::from_utf8(json).map_err(|e| invalid(e.to_string()))?,
        })
    }
}

/// The spool without a directory: the same queue, lost with the process.
#[derive(Default)]
struct Memory {
    records: VecDeque<Record>,
    appended: u64,
    max_bytes: u64,
    bytes: u64,
    waiting_points: u64,
    dropped_points: u64,
}

impl Memory {
    fn append(&mut self, points: u32, payload: Vec<u8>) {
        self.appended += 1;
        self.bytes += payload.len() as u64;
        self.waiting_points += u64::from(points);
        self.records.push_back(Record {
            end: Position {
                segment: 0,
                offset: self.appended,
            },
            points,
            payload,
        });
        while self.bytes > self.max_bytes && self.records.len() > 1 {
            let oldest = self.records.pop_front().expect("more than one record");
            self.forget(&oldest);
            self.dropped_points += u64::from(oldest.points);
            tracing::error!(
                dropped = self.dropped_points,
                "producer backlog full: dropped its oldest points"
            );
        }
    }

    fn oldest(&self, max_points: u64) -> Vec<Record> {
        let mut points = 0;
        self.records
            .iter()
            .take_while(|record| {
                let first = points == 0;
                points += u64::from(record.points);
                first || points <= max_points
            })
            .map(|record| Record {
                payload: record.payload.clone(),
                ..*record
            })
            .collect()
    }

    fn acknowledge(&mut self, through: Position, _points: u64) {
        while self
            .records
            .front()
            .is_some_and(|r| r.end.offset <= through.offset)
        {
            let delivered = self.records.pop_front().expect("a front record");
            self.forget(&delivered);
        }
    }

    fn forget(&mut self, record: &Record) {
        self.bytes -= record.payload.len() as u64;
        self.waiting_points -= u64::from(record.points);
    }
}

#[cfg(test)]
mod tests;

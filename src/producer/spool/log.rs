//! The spool on disk: an append-only log in numbered segment files (`00000000000000000001.seg`, …)
//! and a `cursor` file naming the first record not yet acknowledged. Each record is a header —
//! payload length, points, CRC-32 of both — and its payload, so a tail torn by a crash or damaged
//! on disk is found on opening: the good records before it are kept and delivered, the bytes from
//! the first bad record on are moved to `N.damaged` beside the segment and reported, never the
//! whole queue lost (as a single database file that no longer opens would lose it). Acknowledged
//! segments are deleted; when the log would pass its size, its oldest segment is dropped, counted.

use super::{Position, Record};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Payload length, points, CRC-32: little-endian u32 each.
const HEADER: u64 = 12;
const CURSOR: &str = "cursor";
/// Segment files are between these sizes: an eighth of the spool, so dropping the oldest when
/// full loses an eighth at most.
const SEGMENT_BYTES: std::ops::RangeInclusive<u64> = 4096..=16 << 20;

/// A segment file: its number and the bytes of good records in it.
struct Segment {
    index: u64,
    bytes: u64,
}

pub struct Log {
    dir: PathBuf,
    /// Oldest first; the last is appended to, through `active`.
    segments: VecDeque<Segment>,
    active: File,
    cursor: Position,
    segment_bytes: u64,
    max_bytes: u64,
    /// Bytes of all segment files together.
    bytes: u64,
    /// Whether each append and cursor move is flushed to the disk before it returns.
    sync: bool,
    pub waiting_points: u64,
    pub dropped_points: u64,
    pub damaged_bytes: u64,
}

/// What reading a segment from some offset found.
struct Scan {
    points: u64,
    /// Where the last good record ends.
    good_end: u64,
    file_len: u64,
}

impl Log {
    /// The log in `dir` (made if missing), checked record by record from the cursor on.
    pub fn open(dir: &Path, max_bytes: u64, sync: bool) -> io::Result<Log> {
        fs::create_dir_all(dir)?;
        let mut indexes = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(index) = name
                .strip_suffix(".seg")
                .and_then(|n| n.parse::<u64>().ok())
            {
                indexes.push(index);
            }
        }
        indexes.sort_unstable();
        let mut cursor = read_cursor(dir);
        // Segments wholly before the cursor were delivered; a cursor pointing nowhere (its file
        // lost or unreadable) restarts at the oldest segment: resending is harmless.
        for &index in indexes.iter().filter(|&&i| i < cursor.segment) {
            fs::remove_file(segment_path(dir, index))?;
        }
        indexes.retain(|&i| i >= cursor.segment);
        if indexes.first() != Some(&cursor.segment) {
            cursor = Position {
                segment: indexes.first().copied().unwrap_or(1),
                offset: 0,
            };
        }
        let mut log_bytes = 0;
        let mut waiting_points = 0;
        let mut damaged_bytes = 0;
        let mut segments = VecDeque::new();
        for &index in &indexes {
            let path = segment_path(dir, index);
            let from = if index == cursor.segment {
                cursor.offset
            } else {
                0
            };
            let scan = scan(&path, from)?;
            if scan.good_end < scan.file_len {
                damaged_bytes += set_aside(dir, index, scan.good_end)?;
            }
            if index == cursor.segment {
                cursor.offset = cursor.offset.min(scan.good_end);
            }
            waiting_points += scan.points;
            log_bytes += scan.good_end;
            segments.push_back(Segment {
                index,
                bytes: scan.good_end,
            });
        }
        if segments.is_empty() {
            segments.push_back(Segment {
                index: cursor.segment,
                bytes: 0,
            });
        }
        let last = segments.back().expect("at least one segment").index;
        let active = open_for_append(&segment_path(dir, last))?;
        Ok(Log {
            dir: dir.to_owned(),
            segments,
            active,
            cursor,
            segment_bytes: (max_bytes / 8).clamp(*SEGMENT_BYTES.start(), *SEGMENT_BYTES.end()),
            max_bytes,
            bytes: log_bytes,
            sync,
            waiting_points,
            dropped_points: 0,
            damaged_bytes,
        })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends a record; drops the oldest segment first when the log would pass `max_bytes`.
    pub fn append(&mut self, points: u32, payload: &[u8]) -> io::Result<()> {
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&n| HEADER + u64::from(n) <= self.max_bytes)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a record of {} bytes is larger than the whole spool ({} bytes)",
                        payload.len(),
                        self.max_bytes
                    ),
                )
            })?;
        let record_bytes = HEADER + u64::from(length);
        let active_bytes = self.segments.back().map_or(0, |s| s.bytes);
        if active_bytes > 0 && active_bytes + record_bytes > self.segment_bytes {
            self.start_segment()?;
        }
        while self.bytes + record_bytes > self.max_bytes && self.segments.len() > 1 {
            self.drop_oldest()?;
        }
        let mut record = Vec::with_capacity(record_bytes as usize);
        record.extend_from_slice(&length.to_le_bytes());
        record.extend_from_slice(&points.to_le_bytes());
        record.extend_from_slice(&checksum(points, payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.active.write_all(&record)?;
        if self.sync {
            self.active.sync_data()?;
        }
        self.segments.back_mut().expect("an active segment").bytes += record_bytes;
        self.bytes += record_bytes;
        self.waiting_points += u64::from(points);
        Ok(())
    }

    /// The oldest records not acknowledged, as many as fit in `max_points` (at least one).
    pub fn oldest(&self, max_points: u64) -> io::Result<Vec<Record>> {
        let mut found = Vec::new();
        let mut total = 0;
        for segment in self
            .segments
            .iter()
            .filter(|s| s.index >= self.cursor.segment)
        {
            let mut offset = match segment.index == self.cursor.segment {
                true => self.cursor.offset,
                false => 0,
            };
            if offset >= segment.bytes {
                continue;
            }
            let mut file = File::open(segment_path(&self.dir, segment.index))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut reader = BufReader::new(file);
            while offset < segment.bytes {
                let (points, payload) = read_record(&mut reader)?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("spool segment {} damaged at byte {offset}", segment.index),
                    )
                })?;
                if !found.is_empty() && total + u64::from(points) > max_points {
                    return Ok(found);
                }
                offset += HEADER + payload.len() as u64;
                total += u64::from(points);
                found.push(Record {
                    end: Position {
                        segment: segment.index,
                        offset,
                    },
                    points,
                    payload,
                });
            }
        }
        Ok(found)
    }

    /// Everything up to `through` was delivered (or given up on): `points` of it.
    pub fn acknowledge(&mut self, through: Position, points: u64) -> io::Result<()> {
        self.cursor = through;
        self.waiting_points = self.waiting_points.saturating_sub(points);
        // At the end of a segment that has a successor, the cursor moves on, so the segment goes.
        while self.segments.len() > 1 {
            let first = &self.segments[0];
            if first.index < self.cursor.segment
                || (first.index == self.cursor.segment && self.cursor.offset >= first.bytes)
            {
                self.remove_oldest()?;
            } else {
                break;
            }
        }
        self.write_cursor()
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let index = self.segments.back().map_or(1, |s| s.index + 1);
        self.active = open_for_append(&segment_path(&self.dir, index))?;
        self.segments.push_back(Segment { index, bytes: 0 });
        if self.sync {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Drops the oldest segment unsent, counting the points that were waiting in it.
    fn drop_oldest(&mut self) -> io::Result<()> {
        let oldest = &self.segments[0];
        let from = match oldest.index == self.cursor.segment {
            true => self.cursor.offset,
            false => 0,
        };
        let lost = scan(&segment_path(&self.dir, oldest.index), from)?.points;
        self.waiting_points = self.waiting_points.saturating_sub(lost);
        self.dropped_points += lost;
        tracing::error!(
            dropped = self.dropped_points,
            "spool full: dropped its oldest {lost} points (setting spool-max-mb)"
        );
        self.remove_oldest()?;
        self.write_cursor()
    }

    fn remove_oldest(&mut self) -> io::Result<()> {
        let oldest = self.segments.pop_front().expect("a segment to remove");
        self.bytes -= oldest.bytes;
        fs::remove_file(segment_path(&self.dir, oldest.index))?;
        let next = &self.segments[0];
        if self.cursor.segment <= oldest.index {
            self.cursor = Position {
                segment: next.index,
                offset: 0,
            };
        }
        Ok(())
    }

    /// Written beside and renamed over, so a crash leaves the old cursor or the new, never half.
    fn write_cursor(&self) -> io::Result<()> {
        let temporary = self.dir.join("cursor.new");
        let mut file = File::create(&temporary)?;
        writeln!(file, "{} {}", self.cursor.segment, self.cursor.offset)?;
        if self.sync {
            file.sync_all()?;
        }
        fs::rename(&temporary, self.dir.join(CURSOR))
    }
}

fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("{index:020}.seg"))
}

fn open_for_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn read_cursor(dir: &Path) -> Position {
    let text = fs::read_to_string(dir.join(CURSOR)).unwrap_or_default();
    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(segment)), Some(Ok(offset))) => Position { segment, offset },
        _ => Position {
            segment: 0,
            offset: 0,
        },
    }
}

fn checksum(points: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&points.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The next record's points and payload, or `None` where the log ends or stops making sense: a header or payload cut
/// short, or a checksum that does not match.
fn read_record(reader: &mut impl Read) -> io::Result<Option<(u32, Vec<u8>)>> {
    let mut header = [0u8; HEADER as usize];
    if !read_all(reader, &mut header)? {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes(header[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let (length, points, crc) = (word(0), word(1), word(2));
    // A length beyond any segment is damage, not a reason to allocate gigabytes.
    if u64::from(length) > *SEGMENT_BYTES.end() * 64 {
        return Ok(None);
    }
    let mut payload = vec![0u8; length as usize];
    if !read_all(reader, &mut payload)? || checksum(points, &payload) != crc {
        return Ok(None);
    }
    Ok(Some((points, payload)))
}

/// Fills `buffer`; false if the input ends first.
fn read_all(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a segment's records from `from` to the first bad one (or the end).
fn scan(path: &Path, from: u64) -> io::Result<Scan> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut good_end = from.min(file_len);
    file.seek(SeekFrom::Start(good_end))?;
    let mut reader = BufReader::new(file);
    let mut points = 0;
    while let Some((record_points, payload)) = read_record(&mut reader)? {
        good_end += HEADER + payload.len() as u64;
        points += u64::from(record_points);
    }
    Ok(Scan {
        points,
        good_end,
        file_len,
    })
}

/// Moves a segment's bytes from `good_end` on to `N.damaged` and cuts the segment there; returns
/// how many bytes were moved.
fn set_aside(dir: &Path, index: u64, good_end: u64) -> io::Result<u64> {
    let path = segment_path(dir, index);
    let mut segment = OpenOptions::new().read(true).write(true).open(&path)?;
    segment.seek(SeekFrom::Start(good_end))?;
    let mut rest = Vec::new();
    segment.read_to_end(&mut rest)?;
    let damaged = dir.join(format!("{index:020}.damaged"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&damaged)?
        .write_all(&rest)?;
    segment.set_len(good_end)?;
    segment.sync_all()?;
    tracing::error!(
        "spool segment {} is damaged at byte {good_end}: the {} bytes after it cannot be read \
         and were moved to {}; the records before it are kept",
        path.display(),
        rest.len(),
        damaged.display()
    );
    Ok(rest.len() as u64)
}

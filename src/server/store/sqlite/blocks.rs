//! Raw points in blocks: a signal's newest block, the blocks a range or a late point touches, and
//! placing points into them.

use super::write::BATCH_BINDS;
use super::*;

/// A row of `blocks` as read back: where the block starts, and its packed points.
#[derive(sqlx::FromRow)]
pub(super) struct StoredBlock {
    pub first_ts: i64,
    pub data: Vec<u8>,
}

impl StoredBlock {
    fn unpack(&self) -> Result<Points, StoreError> {
        let mut points = Vec::new();
        block::unpack(self.first_ts, &self.data, &mut points)?;
        Ok(points)
    }

    fn into_block(self) -> Result<Block, StoreError> {
        Ok(Block {
            first: self.first_ts,
            points: self.unpack()?,
            appendable_bytes: block::is_appendable(&self.data).then_some(self.data.len()),
        })
    }
}

/// A block unpacked: its start, its points, and its packed size if points can be appended to it.
pub(super) struct Block {
    first: i64,
    points: Points,
    appendable_bytes: Option<usize>,
}

/// How a packed run of points is read: `block::unpack` (raw blocks) or `packed_rollups::points`.
pub(super) type Unpack = fn(i64, &[u8], &mut Points) -> Result<(), block::CorruptBlock>;

/// The points in `from..=to` of the packed run that starts at `first`, unpacked into `buffer`.
pub(super) fn points_within<'b>(
    unpack: Unpack,
    first: i64,
    data: &[u8],
    from: i64,
    to: i64,
    buffer: &'b mut Points,
) -> Result<&'b [TimeValue], StoreError> {
    buffer.clear();
    unpack(first, data, buffer)?;
    // A block's points are in time order.
    let (start, end) = (
        buffer.partition_point(|p| p.time < from),
        buffer.partition_point(|p| p.time <= to),
    );
    Ok(&buffer[start..end])
}

/// What the writer remembers of a series' newest block: enough to append points to it in SQL,
/// without its points (which, for 100,000 signals, would take over 100 MB of memory).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tail {
    first: i64,
    last: i64,
    /// Its packed size, for the room left.
    bytes: usize,
}

/// What the writer remembers of each series' newest block, by series id. SQLite's ids count up from
/// 1, so a vector indexed by id holds 16 bytes a series, where a map held 40 and, growing past
/// 100,000 signals, its old and new tables at once.
#[derive(Default)]
pub(super) struct Tails(Vec<Slot>);

/// One series' entry in `Tails`: a `Tail` in 16 bytes.
#[derive(Clone, Copy, Default)]
struct Slot {
    first: i64,
    /// `last - first`.
    span: u32,
    bytes: u16,
    state: SlotState,
}

#[derive(Clone, Copy, Default, PartialEq)]
enum SlotState {
    #[default]
    Unknown,
    NoBlock,
    Tail,
    /// A newest block spanning more than `span` holds (49 days): read when next written.
    TooLong,
}

/// Ids past this are not remembered (read when written): the vector stays bounded whatever the ids.
const MOST_REMEMBERED: usize = 1 << 26;

impl Tails {
    pub fn get(&self, id: SeriesId) -> Known {
        let Some(slot) = index(id).and_then(|i| self.0.get(i)) else {
            return Known::Unknown;
        };
        match slot.state {
            SlotState::Unknown | SlotState::TooLong => Known::Unknown,
            SlotState::NoBlock => Known::NoBlock,
            SlotState::Tail => Known::Tail(Tail {
                first: slot.first,
                last: slot.first + i64::from(slot.span),
                bytes: usize::from(slot.bytes),
            }),
        }
    }

    /// Remembers series `id`'s newest block (`None`: it has none).
    pub fn set(&mut self, id: SeriesId, tail: Option<Tail>) {
        let slot = match tail {
            None => Slot {
                state: SlotState::NoBlock,
                ..Slot::default()
            },
            Some(tail) => match (
                u32::try_from(tail.last - tail.first),
                u16::try_from(tail.bytes),
            ) {
                (Ok(span), Ok(bytes)) => Slot {
                    first: tail.first,
                    span,
                    bytes,
                    state: SlotState::Tail,
                },
                _ => Slot {
                    state: SlotState::TooLong,
                    ..Slot::default()
                },
            },
        };
        let Some(i) = index(id) else { return };
        if i >= self.0.len() {
            self.0.resize(i + 1, Slot::default());
        }
        self.0[i] = slot;
    }

    /// A series this write created: it has no block, unless the write gave it one.
    pub fn created(&mut self, id: SeriesId) {
        let unknown = index(id)
            .and_then(|i| self.0.get(i))
            .is_none_or(|slot| slot.state == SlotState::Unknown);
        if unknown {
            self.set(id, None);
        }
    }

    /// Forgets series `id`'s newest block (retention cut it): read when next written.
    pub fn forget(&mut self, id: SeriesId) {
        if let Some(slot) = index(id).and_then(|i| self.0.get_mut(i)) {
            *slot = Slot::default();
        }
    }
}

pub(super) fn index(id: SeriesId) -> Option<usize> {
    usize::try_from(id.0).ok().filter(|&i| i < MOST_REMEMBERED)
}

/// What a fold knows of a series' newest block before reading anything.
#[derive(Clone, Copy)]
pub(super) enum Known {
    /// Not remembered (since a restart, or retention cut it): read it.
    Unknown,
    NoBlock,
    Tail(Tail),
}

/// Points appended to the end of a series' newest block (`push_block_append`).
pub(super) struct Append {
    pub series: SeriesId,
    /// The block's start, its key.
    pub first: i64,
    /// The new last point's timestamp.
    pub last: i64,
    pub count: i64,
    /// The points, packed after the block's last point.
    pub data: Vec<u8>,
}

/// Where one series' new points went: appended to its newest block, or merged into the blocks they
/// fall into, which are stored again whole.
#[derive(Default)]
pub(super) struct Placement {
    pub appended: Option<Append>,
    pub rewritten: Vec<Packed>,
    /// The newest block as it is now, if known.
    pub tail: Option<Tail>,
}

/// Places one series' new raw points (ascending, unique) after its newest block without reading
/// anything, if they follow its last point and fit in it.
pub(super) fn append(id: SeriesId, known: Known, new: &[TimeValue]) -> Option<Placement> {
    let Known::Tail(tail) = known else {
        return None;
    };
    let (oldest_new, newest_new) = (new[0].time, new[new.len() - 1].time);
    if oldest_new <= tail.last {
        return None;
    }
    let data = block::pack_run(tail.last, new);
    let bytes = tail.bytes + data.len();
    if bytes > block::BLOCK_BYTES {
        return None;
    }
    let (first, last, count) = (tail.first, newest_new, new.len() as i64);
    Some(Placement {
        tail: Some(Tail { first, last, bytes }),
        appended: Some(Append {
            series: id,
            first,
            last,
            count,
            data,
        }),
        rewritten: Vec::new(),
    })
}

/// A series and a time: where a fold reads a series' blocks or packed spans from.
#[derive(Clone, Copy, sqlx::FromRow)]
pub(super) struct SeriesFrom {
    pub series: SeriesId,
    pub from: i64,
}

/// Bound values per series of `for_each_series`'s statements.
pub(super) const SERIES_FROM_BINDS: usize = 2;

/// `SELECT {columns} FROM` a list of `wanted` (columns `w.column1`, the series, and `w.column2`,
/// its time) `{rest}`: one statement for many series, where a statement each cost ~30 µs.
pub(super) fn for_each_series(
    columns: &str,
    wanted: &[SeriesFrom],
    rest: &str,
) -> QueryBuilder<'static, Sqlite> {
    let mut query = QueryBuilder::new(format!("SELECT {columns} FROM ("));
    push_series_from(&mut query, wanted);
    query.push(") AS w ");
    query.push(rest);
    query
}

/// Appends `VALUES (series, time), …` for `wanted`: columns `column1` and `column2`.
pub(super) fn push_series_from(query: &mut QueryBuilder<'static, Sqlite>, wanted: &[SeriesFrom]) {
    query.push_values(wanted, |mut row, w| {
        row.push_bind(w.series).push_bind(w.from);
    });
}

/// The blocks of several series, each from the one holding its time on, unpacked, in one
/// statement per `BATCH_BINDS` values: a fleet's newest blocks fill in the same fold.
pub(super) async fn blocks_from(
    tx: &mut WriteTx,
    wanted: &[SeriesFrom],
) -> Result<HashMap<SeriesId, Vec<Block>>, StoreError> {
    let mut found: HashMap<SeriesId, Vec<Block>> = HashMap::default();
    for chunk in wanted.chunks(BATCH_BINDS / SERIES_FROM_BINDS) {
        let join = concat!(
            "JOIN blocks b ON ",
            overlapping!("w.column1", "w.column2", "9223372036854775807"),
            " ORDER BY b.series_id, b.first_ts"
        );
        let mut query = for_each_series("b.series_id, b.first_ts, b.data", chunk, join);
        let rows: Vec<SeriesStoredBlock> =
            query.build_query_as().fetch_all(tx.begun().await?).await?;
        for row in rows {
            let block = row.block.into_block()?;
            found.entry(row.series_id).or_default().push(block);
        }
    }
    Ok(found)
}

/// A row of `blocks` read for `blocks_from`.
#[derive(sqlx::FromRow)]
pub(super) struct SeriesStoredBlock {
    pub series_id: SeriesId,
    #[sqlx(flatten)]
    pub block: StoredBlock,
}

/// Merges one series' new raw points (ascending, unique) into `blocks`, its blocks from the one
/// holding the oldest new point on (none if it has none), packed to be stored again, with replaced
/// timestamps added to `replaced`.
pub(super) fn merge_into(
    mut blocks: Vec<Block>,
    new: &[TimeValue],
    replaced: &mut Vec<i64>,
) -> Placement {
    let oldest_new = new[0].time;
    // Points older than every block start a block of their own.
    if blocks.first().is_none_or(|b| oldest_new < b.first) {
        let points = Points::new();
        let appendable_bytes = Some(0);
        blocks.insert(
            0,
            Block {
                first: oldest_new,
                points,
                appendable_bytes,
            },
        );
    }
    let mut placement = Placement::default();
    let mut rest = new;
    for (k, old) in blocks.iter().enumerate() {
        let newest = k + 1 == blocks.len();
        let next = blocks.get(k + 1).map_or(i64::MAX, |b| b.first);
        let (mine, after) = rest.split_at(rest.partition_point(|p| p.time < next));
        rest = after;
        if mine.is_empty() {
            if let (true, Some(bytes), Some(last)) =
                (newest, old.appendable_bytes, old.points.last())
            {
                placement.tail = Some(Tail {
                    first: old.first,
                    last: last.time,
                    bytes,
                });
            }
            continue;
        }
        let merged = block::merge(&old.points, mine, replaced);
        let pieces = block::pack(&merged);
        if newest {
            // The last piece of a pack is left appendable.
            placement.tail = pieces.last().map(|piece| Tail {
                first: piece.first,
                last: piece.last,
                bytes: piece.data.len(),
            });
        }
        placement.rewritten.extend(pieces);
    }
    placement
}

/// Cuts the points before `cutoff` from the one block of a series that straddles it. Returns the
/// points cut.
pub(super) async fn cut_block(
    tx: &mut sqlx::SqliteConnection,
    id: SeriesId,
    cutoff: i64,
) -> Result<i64, StoreError> {
    let row: Option<StoredBlock> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 AND first_ts < ?2 AND last_ts >= ?2",
    )
    .bind(id)
    .bind(cutoff)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(0);
    };
    let points = row.unpack()?;
    let cut = points.partition_point(|p| p.time < cutoff);
    let mut batch = QueryBuilder::<Sqlite>::new("DELETE FROM blocks WHERE series_id = ");
    batch
        .push_bind(id)
        .push(" AND first_ts = ")
        .push_bind(row.first_ts)
        .push("; ");
    let rest: Vec<SeriesBlock> = SeriesBlock::all(id, block::pack(&points[cut..])).collect();
    push_block_upsert(&mut batch, &rest);
    batch.build().execute(&mut *tx).await?;
    Ok(cut as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(first: i64, last: i64, bytes: usize) -> Option<Tail> {
        Some(Tail { first, last, bytes })
    }

    fn remembered(tails: &Tails, id: i64) -> Option<(i64, i64, usize)> {
        match tails.get(SeriesId(id)) {
            Known::Tail(t) => Some((t.first, t.last, t.bytes)),
            _ => None,
        }
    }

    #[test]
    fn tails_are_remembered_by_id_as_set() {
        let mut tails = Tails::default();
        tails.set(SeriesId(3), tail(-5_000, 90_000, 960));
        tails.set(SeriesId(1), None);
        assert_eq!(remembered(&tails, 3), Some((-5_000, 90_000, 960)));
        assert!(matches!(tails.get(SeriesId(1)), Known::NoBlock));
        assert!(matches!(tails.get(SeriesId(2)), Known::Unknown));
        assert!(matches!(tails.get(SeriesId(4)), Known::Unknown));
        // A created series has no block, unless its write just gave it one.
        tails.created(SeriesId(3));
        tails.created(SeriesId(7));
        assert_eq!(remembered(&tails, 3), Some((-5_000, 90_000, 960)));
        assert!(matches!(tails.get(SeriesId(7)), Known::NoBlock));
        tails.forget(SeriesId(3));
        assert!(matches!(tails.get(SeriesId(3)), Known::Unknown));
    }

    #[test]
    fn tails_too_long_or_of_far_ids_are_read_instead() {
        let mut tails = Tails::default();
        // Two months between a block's first and last point: more than 16 bytes hold.
        tails.set(SeriesId(1), tail(0, 60 * 86_400_000, 100));
        assert!(matches!(tails.get(SeriesId(1)), Known::Unknown));
        // And it is not taken for a new series' missing block.
        tails.created(SeriesId(1));
        assert!(matches!(tails.get(SeriesId(1)), Known::Unknown));
        for far in [-1, i64::MAX, 1 << 40] {
            tails.set(SeriesId(far), tail(0, 1, 10));
            assert!(matches!(tails.get(SeriesId(far)), Known::Unknown));
        }
        assert!(tails.0.len() <= 2);
    }
}

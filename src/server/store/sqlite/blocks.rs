//! Raw points in blocks: a signal's newest block, the blocks a range or a late point touches, and
//! placing points into them.

use super::*;

/// Calls `f` with each point of one series in `from..=to`, in time order, until it returns false.
pub(super) async fn each_point<'c, E>(
    db: E,
    id: SeriesId,
    from: i64,
    to: i64,
    mut f: impl FnMut(i64, f64) -> bool,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut rows = sqlx::query_as::<_, StoredBlock>(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch(db);
    let mut points = Vec::new();
    while let Some(row) = rows.try_next().await? {
        for point in points_within(row.first_ts, &row.data, from, to, &mut points)? {
            if !f(point.time, point.value) {
                return Ok(());
            }
        }
    }
    Ok(())
}

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
}

/// A block unpacked: its start and its points.
struct Block {
    first: i64,
    points: Points,
}

/// The points in `from..=to` of the packed run that starts at `first`, unpacked into `buffer`.
pub(super) fn points_within<'b>(
    first: i64,
    data: &[u8],
    from: i64,
    to: i64,
    buffer: &'b mut Points,
) -> Result<&'b [TimeValue], StoreError> {
    buffer.clear();
    block::unpack(first, data, buffer)?;
    // A block's points are in time order.
    let (start, end) = (
        buffer.partition_point(|p| p.time < from),
        buffer.partition_point(|p| p.time <= to),
    );
    Ok(&buffer[start..end])
}

/// The blocks of one series that hold points in `from..=to`, unpacked.
async fn blocks_overlapping(
    tx: &mut sqlx::SqliteConnection,
    id: SeriesId,
    from: i64,
    to: i64,
) -> Result<Vec<Block>, StoreError> {
    let rows: Vec<StoredBlock> = sqlx::query_as(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Block {
                first: row.first_ts,
                points: row.unpack()?,
            })
        })
        .collect()
}

/// The points of a series' newest block (empty if it has none).
pub(super) async fn load_tail(
    tx: &mut sqlx::SqliteConnection,
    id: SeriesId,
) -> Result<Points, StoreError> {
    let row: Option<StoredBlock> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 ORDER BY first_ts DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    row.map_or(Ok(Points::new()), |row| row.unpack())
}

/// Places one series' new raw points (ascending, unique) into its blocks: merged into the block each
/// belongs to (its tail, for points in time order; blocks read back only for late points), repacked,
/// with replaced timestamps added to `replaced`. Returns the blocks to store, and the new tail if the
/// tail changed.
pub(super) async fn place(
    tx: &mut WriteTx,
    id: SeriesId,
    tail: Points,
    new: &[TimeValue],
    replaced: &mut Vec<i64>,
) -> Result<(Vec<Packed>, Option<Points>), StoreError> {
    let oldest_new = new[0].time;
    let empty = |first| Block {
        first,
        points: Points::new(),
    };
    let mut blocks: Vec<Block> = match tail.first().map(|p| p.time) {
        Some(tail_start) if oldest_new < tail_start => {
            let mut older =
                blocks_overlapping(tx.begun().await?, id, oldest_new, tail_start - 1).await?;
            older.push(Block {
                first: tail_start,
                points: tail,
            });
            older
        }
        Some(tail_start) => vec![Block {
            first: tail_start,
            points: tail,
        }],
        None => vec![empty(oldest_new)],
    };
    // Points older than every block start a block of their own.
    if oldest_new < blocks[0].first {
        blocks.insert(0, empty(oldest_new));
    }
    let (mut packed, mut new_tail) = (Vec::new(), None);
    let mut rest = new;
    for (k, old) in blocks.iter().enumerate() {
        let next = blocks.get(k + 1).map_or(i64::MAX, |b| b.first);
        let (mine, after) = rest.split_at(rest.partition_point(|p| p.time < next));
        rest = after;
        if mine.is_empty() {
            continue;
        }
        let merged = block::merge(&old.points, mine, replaced);
        let pieces = block::pack(&merged);
        if k + 1 == blocks.len() {
            let last = pieces.last().map_or(0, |b| b.count as usize);
            new_tail = Some(merged[merged.len() - last..].to_vec());
        }
        packed.extend(pieces);
    }
    Ok((packed, new_tail))
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

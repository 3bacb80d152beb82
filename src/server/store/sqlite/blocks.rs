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
    let mut rows = sqlx::query_as::<_, (i64, Vec<u8>)>(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch(db);
    let mut points = Vec::new();
    while let Some((first, data)) = rows.try_next().await? {
        for &(t, v) in points_within(first, &data, from, to, &mut points)? {
            if !f(t, v) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The points in `from..=to` of the stored block that starts at `first`, unpacked into `buffer`.
pub(super) fn points_within<'b>(
    first: i64,
    data: &[u8],
    from: i64,
    to: i64,
    buffer: &'b mut Points,
) -> Result<&'b [(i64, f64)], StoreError> {
    buffer.clear();
    block::unpack(first, data, buffer)?;
    // A block's points are in time order.
    let (start, end) = (
        buffer.partition_point(|p| p.0 < from),
        buffer.partition_point(|p| p.0 <= to),
    );
    Ok(&buffer[start..end])
}

/// The blocks of one series that hold points in `from..=to`, unpacked, each with its start.
pub(super) async fn blocks_overlapping(
    tx: &mut sqlx::SqliteConnection,
    id: SeriesId,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Points)>, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(BLOCKS_OVERLAPPING)
        .bind(id)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
    rows.into_iter()
        .map(|(first, data)| {
            let mut points = Vec::new();
            block::unpack(first, &data, &mut points)?;
            Ok((first, points))
        })
        .collect()
}

/// The points of a series' newest block (empty if it has none).
pub(super) async fn load_tail(
    tx: &mut sqlx::SqliteConnection,
    id: SeriesId,
) -> Result<Points, StoreError> {
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 ORDER BY first_ts DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let mut points = Vec::new();
    if let Some((first, data)) = row {
        block::unpack(first, &data, &mut points)?;
    }
    Ok(points)
}

/// Places one series' new raw points (ascending, unique) into its blocks: merged into the block each
/// belongs to (its tail, for points in time order; blocks read back only for late points), repacked,
/// with replaced timestamps added to `replaced`. Returns the blocks to store, and the new tail if the
/// tail changed.
pub(super) async fn place(
    tx: &mut WriteTx,
    id: SeriesId,
    tail: Points,
    new: &[(i64, f64)],
    replaced: &mut Vec<i64>,
) -> Result<(Vec<Packed>, Option<Points>), StoreError> {
    let oldest_new = new[0].0;
    let mut blocks: Vec<(i64, Points)> = match tail.first() {
        Some(&(tail_start, _)) if oldest_new < tail_start => {
            let mut older =
                blocks_overlapping(tx.begun().await?, id, oldest_new, tail_start - 1).await?;
            older.push((tail_start, tail));
            older
        }
        Some(&(tail_start, _)) => vec![(tail_start, tail)],
        None => vec![(oldest_new, Vec::new())],
    };
    // Points older than every block start a block of their own.
    if oldest_new < blocks[0].0 {
        blocks.insert(0, (oldest_new, Vec::new()));
    }
    let (mut packed, mut new_tail) = (Vec::new(), None);
    let mut rest = new;
    for (k, (_, old)) in blocks.iter().enumerate() {
        let next = blocks.get(k + 1).map_or(i64::MAX, |b| b.0);
        let (mine, after) = rest.split_at(rest.partition_point(|p| p.0 < next));
        rest = after;
        if mine.is_empty() {
            continue;
        }
        let merged = block::merge(old, mine, replaced);
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
    let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT first_ts, data FROM blocks WHERE series_id = ?1 AND first_ts < ?2 AND last_ts >= ?2",
    )
    .bind(id)
    .bind(cutoff)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((first, data)) = row else {
        return Ok(0);
    };
    let mut points = Vec::new();
    block::unpack(first, &data, &mut points)?;
    let cut = points.partition_point(|p| p.0 < cutoff);
    let mut batch = QueryBuilder::<Sqlite>::new("DELETE FROM blocks WHERE series_id = ");
    batch
        .push_bind(id)
        .push(" AND first_ts = ")
        .push_bind(first)
        .push("; ");
    let rest: Vec<(SeriesId, Packed)> = block::pack(&points[cut..])
        .into_iter()
        .map(|b| (id, b))
        .collect();
    push_block_upsert(&mut batch, &rest);
    batch.build().execute(&mut *tx).await?;
    Ok(cut as i64)
}

//! What a database made by an older build needs once, on open.

use super::*;

/// Databases written before blocks (migration 0001) kept a row per point: packs them into blocks once,
/// in one transaction, and drops the old table.
pub(super) async fn repack_rows(pool: &SqlitePool) -> Result<(), StoreError> {
    let legacy: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'points'",
    )
    .fetch_optional(pool)
    .await?;
    if legacy.is_none() {
        return Ok(());
    }
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let ids: Vec<SeriesId> = sqlx::query_scalar("SELECT DISTINCT series_id FROM points")
        .fetch_all(&mut *tx)
        .await?;
    let signals = ids.len();
    for id in ids {
        let points: Points = sqlx::query_as::<_, PointRow>(
            "SELECT ts, value FROM points WHERE series_id = ?1 ORDER BY ts",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| TimeValue::new(row.ts, row.value))
        .collect();
        let blocks: Vec<SeriesBlock> = SeriesBlock::all(id, block::pack(&points)).collect();
        let mut batch = Batch::default();
        batch
            .statements(&mut tx, &blocks, BLOCK_BINDS, push_block_upsert)
            .await?;
        batch.send(&mut tx).await?;
    }
    sqlx::query("DROP TABLE points").execute(&mut *tx).await?;
    tx.commit().await?;
    // A new database passes through migration 0001 too: only a real repacking is worth a line.
    if signals > 0 {
        tracing::info!(signals, "repacked stored points into blocks");
    }
    Ok(())
}

/// A row of the old one-row-per-point table.
#[derive(sqlx::FromRow)]
struct PointRow {
    ts: i64,
    value: f64,
}

/// Databases written before the journal had a file of its own kept it in a table of theirs: moves
/// its rows over once. Should the server stop between the two commits, the rows are in both, and
/// are folded twice, which changes nothing (`journal.rs`).
pub(super) async fn move_journal(pool: &SqlitePool, journal: &Journal) -> Result<(), StoreError> {
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM journal ORDER BY id")
        .fetch_all(pool)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    journal.insert(&rows).await?;
    sqlx::query("DELETE FROM journal").execute(pool).await?;
    tracing::info!(
        rows = rows.len(),
        "moved the journal into a file of its own"
    );
    Ok(())
}

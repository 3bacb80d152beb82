//! The journal: a write commits its points as one row of `journal`, a few bytes a point, instead of
//! updating the newest block, a minute and an hour rollup and the figures of every signal it
//! touches. With a point for each of a thousand signals, that was four thousand rows on as many
//! pages for a thousand points. Journaled points wait (in memory too, `WriteState::journal`) until
//! enough have gathered, then a fold writes them into blocks, rollups and figures in one
//! transaction that also empties the journal: each signal's rows once per fold, not once per write.
//!
//! A read folds first, so it sees every committed point; opening folds what a crash left.

use super::super::block::{put_varint, take_varint};
use super::super::dense::{unzigzag, zigzag};
use super::super::rows::Row;
use super::*;

/// Points the journal gathers before the write that would pass them folds them first. Held in
/// memory as `Row`s, 24 bytes each. A write of as many points on its own is folded at once.
pub(super) const FOLD_POINTS: usize = 500_000;

/// The first byte of a journal row: the encoding below.
const VERSION: u8 = 1;

/// What the writer keeps in memory between commits. Locked through a whole write (and by
/// retention, which may cut a tail), so it always matches what is committed.
#[derive(Default)]
pub(super) struct WriteState {
    /// Series id → its newest block (`None`: no block yet), which nearly every fold appends to,
    /// so appending costs no read. Retention drops what it cuts.
    pub tails: Tails,
    /// The points the journal holds, in commit order, each write's sorted by (series, time).
    pub journal: Vec<Row>,
}

impl SqliteStore {
    /// Folds the journal's points into blocks, rollups and figures, if it holds any: what a read
    /// does first, so it sees every committed point.
    pub async fn settle(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().await;
        if state.journal.is_empty() || !self.owns_journal {
            return Ok(());
        }
        let mut tx = WriteTx {
            conn: self.writes.acquire().await?,
            begun: false,
        };
        self.fold_journal(&mut tx, &mut state).await
    }

    /// Loads what the journal holds (left by a crash or a stop) into memory, to be folded.
    pub(super) async fn load_journal(&self) -> Result<(), StoreError> {
        let entries: Vec<Vec<u8>> = sqlx::query_scalar("SELECT data FROM journal ORDER BY id")
            .fetch_all(&self.writes)
            .await?;
        let mut state = self.state.lock().await;
        for data in entries {
            decode(&data, &mut state.journal)?;
        }
        Ok(())
    }
}

/// Commits `rows` as one journal row (with the signals `tx` has inserted, if it has begun).
pub(super) async fn append(tx: &mut WriteTx, rows: &[Row]) -> Result<(), StoreError> {
    let insert = sqlx::query("INSERT INTO journal (data) VALUES (?1)").bind(encode(rows));
    // Alone, the insert is a transaction of its own.
    insert.execute(&mut *tx.conn).await?;
    if tx.begun {
        sqlx::query("COMMIT").execute(&mut *tx.conn).await?;
        tx.begun = false;
    }
    Ok(())
}

/// Each row as three numbers: its series and timestamp as zigzag varints of the difference from the
/// row before (sorted rows make both small), its value as 8 little-endian bytes.
fn encode(rows: &[Row]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + rows.len() * 12);
    data.push(VERSION);
    let (mut series, mut ts) = (0, 0);
    for row in rows {
        put_varint(&mut data, zigzag(row.series.0.wrapping_sub(series)));
        put_varint(&mut data, zigzag(row.ts.wrapping_sub(ts)));
        data.extend_from_slice(&row.value.to_le_bytes());
        (series, ts) = (row.series.0, row.ts);
    }
    data
}

fn decode(data: &[u8], out: &mut Vec<Row>) -> Result<(), StoreError> {
    let damaged = || StoreError::damaged(sqlx::Error::Decode("a journal row is damaged".into()));
    let Some((&VERSION, mut rest)) = data.split_first() else {
        return Err(damaged());
    };
    let (mut series, mut ts) = (0i64, 0i64);
    while !rest.is_empty() {
        let (d_series, after) = take_varint(rest).ok_or_else(damaged)?;
        let (d_ts, after) = take_varint(after).ok_or_else(damaged)?;
        let (value, after) = after.split_first_chunk::<8>().ok_or_else(damaged)?;
        series = series.wrapping_add(unzigzag(d_series));
        ts = ts.wrapping_add(unzigzag(d_ts));
        out.push(Row {
            series: SeriesId(series),
            ts,
            value: f64::from_le_bytes(*value),
        });
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_rows_come_back_from_the_journal_as_written(
            raw in prop::collection::vec((any::<i64>(), any::<i64>(), any::<f64>()), 0..200),
        ) {
            let rows: Vec<Row> = raw
                .iter()
                .map(|&(series, ts, value)| Row { series: SeriesId(series), ts, value })
                .collect();
            let mut back = Vec::new();
            decode(&encode(&rows), &mut back).unwrap();
            prop_assert_eq!(back.len(), rows.len());
            for (a, b) in rows.iter().zip(&back) {
                prop_assert_eq!((a.series, a.ts, a.value.to_bits()), (b.series, b.ts, b.value.to_bits()));
            }
        }
    }

    #[test]
    fn a_damaged_journal_row_is_refused() {
        let row = Row {
            series: SeriesId(7),
            ts: 1_700_000_000_000,
            value: 1.5,
        };
        let data = encode(&[row]);
        let mut out = Vec::new();
        assert!(decode(&data[..data.len() - 1], &mut out).is_err());
        assert!(decode(&[], &mut out).is_err());
        assert!(decode(&[9], &mut out).is_err());
    }
}

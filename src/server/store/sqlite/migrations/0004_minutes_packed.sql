-- A week at minute resolution was 10,080 minute rows a signal, and reading a row through sqlx costs
-- about a microsecond whatever it holds. Once an hour is closed, its minutes' first, lowest, highest
-- and last points (what a chart takes from each) are packed into one row here, as raw blocks are
-- (block.rs): a week becomes 168 rows. `bucket` is the hour's start.
--
-- `series.packed_to` marks how far a signal's hours are packed: every hour before it has its row
-- here (or no minutes at all), each hour from it on is read from rollup_1m. A write into an hour
-- before the mark moves the mark back to that hour (the same statement that updates the signal's
-- figures), and the packer (SqliteStore::pack) packs forward again. So a late point is never
-- hidden by a stale packed hour, and nothing more has to be written at ingest.
--
-- A table with rowids, not WITHOUT ROWID: a packed hour takes up to ~2.6 KB, and a WITHOUT ROWID
-- row of more than about 1 KB spills into overflow pages.
ALTER TABLE series ADD COLUMN packed_to INTEGER;
CREATE TABLE minutes_packed (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX minutes_packed_key ON minutes_packed (series_id, bucket);

-- Once a day is closed, its hour rollups are packed into one row here as 0008 packs an hour's
-- minutes (packed_rollups.rs): a month read at hour resolution took 720 rows a signal, each a
-- microsecond or more to read, and now takes 30. The same rule as 0008, with its own mark: a day
-- before `series.hours_packed_to` has its hours here alone, a day from the mark on in rollup_1h
-- alone. A write into a packed day first unpacks it and every later packed day of the signal back
-- into hour rows and moves the mark back; the packer packs forward again.
ALTER TABLE series ADD COLUMN hours_packed_to INTEGER;
CREATE TABLE hours_packed (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX hours_packed_key ON hours_packed (series_id, bucket);

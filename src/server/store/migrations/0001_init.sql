-- One row per signal: the points table stores the integer id, not the name, so a point costs ~24 bytes.
CREATE TABLE series (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- Keyed by (series, time) and clustered on that key (WITHOUT ROWID): a range read of one signal is one
-- sequential b-tree scan, and writing the same (signal, timestamp) again replaces the value.
-- No foreign key: the single writer creates the series row first, and a per-row check would cost ingest speed.
CREATE TABLE points (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL, -- milliseconds since the Unix epoch, UTC
    value     REAL    NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

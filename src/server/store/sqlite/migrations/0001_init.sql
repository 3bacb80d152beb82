-- One row per signal: the points table stores the integer id, not the name, so a point costs ~24 bytes.
-- The signal list's figures are kept here as points are written, so listing 10,000 signals reads
-- 10,000 rows, not every point.
CREATE TABLE series (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    points     INTEGER NOT NULL DEFAULT 0, -- raw points stored
    last_ts    INTEGER,                    -- the newest point
    last_value REAL
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

-- Per-minute and per-hour aggregates (see rollup.rs). `bucket` is the bucket's start; each extreme and
-- end is kept with its timestamp, so a chart drawn from rollups puts every extreme where it happened.
CREATE TABLE rollup_1m (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL    NOT NULL,
    low       REAL    NOT NULL,
    low_ts    INTEGER NOT NULL,
    high      REAL    NOT NULL,
    high_ts   INTEGER NOT NULL,
    first     REAL    NOT NULL,
    first_ts  INTEGER NOT NULL,
    last      REAL    NOT NULL,
    last_ts   INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_1h (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL    NOT NULL,
    low       REAL    NOT NULL,
    low_ts    INTEGER NOT NULL,
    high      REAL    NOT NULL,
    high_ts   INTEGER NOT NULL,
    first     REAL    NOT NULL,
    first_ts  INTEGER NOT NULL,
    last      REAL    NOT NULL,
    last_ts   INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

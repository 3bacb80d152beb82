-- The PostgreSQL store: the same tables and columns as SQLite's (so both read rows with the same
-- structs), shaped for several servers writing at once.

-- One row per signal, with the signal list's figures. Every write locks the rows of its signals first
-- (SELECT … FOR UPDATE, in id order): writes of one signal from several servers take turns, so what a
-- write reads back (which points it replaced, the buckets it recomputes) is not changed under it, and
-- writes of different signals never wait for each other. Row locks live in the rows, not in the
-- server's lock table, so a write may lock any number of them.
CREATE TABLE series (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT   NOT NULL UNIQUE,
    points     BIGINT NOT NULL DEFAULT 0, -- raw points stored
    last_ts    BIGINT,                    -- the newest point (NULL: created, nothing committed yet)
    last_value DOUBLE PRECISION
);

-- Raw points, a row each, partitioned by day of `ts` (milliseconds since the Unix epoch, UTC), so
-- retention drops whole days instead of deleting rows. Day partitions are created by the writers as
-- they need them (`postgres/partitions.rs`); points further ahead than that land in the default
-- partition until their day comes. The primary key also makes writing the same (signal, timestamp)
-- again replace the value (ON CONFLICT).
CREATE TABLE points (
    series_id BIGINT           NOT NULL,
    ts        BIGINT           NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE points_ahead PARTITION OF points DEFAULT;

-- Per-minute and per-hour aggregates (see rollup.rs), kept in each write's transaction.
CREATE TABLE rollup_1m (
    series_id BIGINT           NOT NULL,
    bucket    BIGINT           NOT NULL,
    count     BIGINT           NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    low       DOUBLE PRECISION NOT NULL,
    low_ts    BIGINT           NOT NULL,
    high      DOUBLE PRECISION NOT NULL,
    high_ts   BIGINT           NOT NULL,
    first     DOUBLE PRECISION NOT NULL,
    first_ts  BIGINT           NOT NULL,
    last      DOUBLE PRECISION NOT NULL,
    last_ts   BIGINT           NOT NULL,
    PRIMARY KEY (series_id, bucket)
);

CREATE TABLE rollup_1h (LIKE rollup_1m INCLUDING ALL);

-- Access tokens, as in SQLite (sqlite/migrations/0005_tokens.sql): only each token's SHA-256.
CREATE TABLE tokens (
    name       TEXT   PRIMARY KEY,
    scope      TEXT   NOT NULL,
    sha256     BYTEA  NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL
);

-- Raw points move from a row each to packed blocks of ~90 (see block.rs): a tenth of the rows to write
-- and read, and less than half the bytes. The key is the block's first timestamp; `last_ts` lets a
-- range read and retention skip blocks without unpacking them. Rows written under 0001 are repacked by
-- the server when it opens the database (SqliteStore::repack_rows), then that table is dropped.
CREATE TABLE blocks (
    series_id INTEGER NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (series_id, first_ts)
) WITHOUT ROWID;

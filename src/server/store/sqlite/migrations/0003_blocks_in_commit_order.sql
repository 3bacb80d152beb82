-- Blocks move from a table clustered on (series, start) to one in the order they were written, with
-- (series, start) as a unique index. Clustered on the key, every new block went into the middle of the
-- b-tree (each series' range is followed by the next one's), and a full page split there rewrites its
-- siblings too: the WAL took eight bytes for every byte of new block. Appended at the end, a new block
-- costs its own bytes and one small index entry; and the blocks being filled, the newest of every
-- series, sit together in the last pages instead of one page per series.
CREATE TABLE blocks_in_commit_order (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
INSERT INTO blocks_in_commit_order (series_id, first_ts, last_ts, count, data)
    SELECT series_id, first_ts, last_ts, count, data FROM blocks ORDER BY last_ts;
DROP TABLE blocks;
ALTER TABLE blocks_in_commit_order RENAME TO blocks;
CREATE UNIQUE INDEX blocks_key ON blocks (series_id, first_ts);

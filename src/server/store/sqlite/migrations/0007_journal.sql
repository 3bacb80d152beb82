-- A write commits its points here, one row for the whole write (journal.rs), instead of into the
-- block, rollups and figures of every signal it touches; a fold later writes them there, many
-- writes at once, and empties this table in the same transaction.
CREATE TABLE journal (
    id   INTEGER PRIMARY KEY,
    data BLOB    NOT NULL
);

-- A fold wrote a minute and an hour rollup row for every signal it touched, each on a page of its
-- own: most of a fold's time with many signals. Now a signal's rollups are stored only before its
-- `rollups_to` (an hour's start); from it on, reads take them from the raw points, and the packer
-- builds them (packed minutes and hour rows) once the hours have closed, then moves the mark on.
-- A raw point written before the mark deletes the stored rollups from its hour on and moves the
-- mark back to it. Raw points from the mark on are kept until built, whatever raw retention says.
-- NULL: every rollup of the signal is stored (its raw points, if any, all lie before its rollups).
ALTER TABLE series ADD COLUMN rollups_to INTEGER;

-- A packed hour now holds every field of its minutes (count, sum and the four extremes with their
-- times; packed_hour.rs), so packing deletes the hour's minute rows: they were most of a month's
-- database. The rule of 0004 becomes strict: an hour before a signal's packing mark has its minutes
-- in minutes_packed alone, an hour from the mark on in rollup_1m alone. A write into a packed hour
-- first unpacks it and every later packed hour of the signal back into minute rows and moves the
-- mark back (SqliteStore::unpack_written); the packer packs forward again.
--
-- Hours packed the old way held only the extremes, beside minute rows that stay: they are dropped
-- here and packed anew by the server's next packing pass.
DELETE FROM minutes_packed;
UPDATE series SET packed_to = NULL;

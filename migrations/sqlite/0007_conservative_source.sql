-- Rounds may now draw candidates by conservative search: an elite with some of its moves
-- redrawn by the GFlowNet's policy, recorded as 'elite+policy'.
--
-- SQLite cannot change a CHECK constraint in place: the table must be rebuilt with foreign
-- keys off, which cannot be switched inside the transaction a migration runs in. The
-- rebuild therefore runs right after the migrations, in `Store::migrate`
-- (src/store/sqlite_widen_sources.sql), whenever the stored table's check lacks the new
-- source. This file keeps the numbering of the two backends' migrations the same.
select 1;

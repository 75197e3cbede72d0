-- A checkpoint's weights are written in chunks, each in its own short transaction, before the
-- small transaction that makes the checkpoint current, as on SQLite (where the one write lock
-- must not be held for a whole large checkpoint). A checkpoint row with a `run_id` has its
-- weights in the chunks of that run (its `weights` column is empty); older rows keep theirs
-- inline.
create table checkpoint_chunks (
    run_id bigint not null references training_runs (id),
    seq bigint not null check (seq >= 0),
    bytes bytea not null,
    primary key (run_id, seq)
);
alter table checkpoints add column run_id bigint references training_runs (id);

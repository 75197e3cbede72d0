-- A checkpoint's weights are written in chunks, each in its own short transaction, before the
-- small transaction that makes the checkpoint current: SQLite's one write lock is then never
-- held for the time it takes to write a whole large checkpoint. A checkpoint row with a
-- `run_id` has its weights in the chunks of that run (its `weights` column is empty);
-- older rows keep theirs inline.
create table checkpoint_chunks (
    run_id integer not null references training_runs (id),
    seq integer not null check (seq >= 0),
    bytes blob not null,
    primary key (run_id, seq)
);
alter table checkpoints add column run_id integer references training_runs (id);

-- The active-learning loop: rounds of proposed candidates, their labels, model checkpoints,
-- training runs, and the per-campaign training lease.

-- round_seq is bumped by the first statement of every round transaction: it numbers the
-- rounds and takes the write lock before anything is read.
alter table campaigns add column round_seq integer not null default 0;
alter table campaigns add column model_status text not null default 'untrained'
    check (model_status in ('untrained', 'training', 'ready', 'failed'));
alter table campaigns add column model_error text;

create table rounds (
    id integer primary key autoincrement,
    campaign_id integer not null references campaigns (id),
    number integer not null,
    key text,
    model_version integer not null,
    batch_size integer not null,
    exhausted integer not null default 0 check (exhausted in (0, 1)),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    unique (campaign_id, number),
    unique (campaign_id, key)
);

-- value is the canonical JSON text of the terminal state, so equality of text is equality
-- of candidates. Aggregates are maintained by the label transaction.
create table candidates (
    id integer primary key autoincrement,
    campaign_id integer not null references campaigns (id),
    round_id integer references rounds (id),
    value text not null,
    status text not null check (status in ('pending', 'labelled', 'failed', 'abandoned')),
    n_success integer not null default 0,
    n_failed integer not null default 0,
    reward_sum real not null default 0,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    unique (campaign_id, value)
);
create index candidates_round on candidates (round_id);

create table labels (
    id integer primary key autoincrement,
    campaign_id integer not null references campaigns (id),
    candidate_id integer not null references candidates (id),
    reward real,
    failed integer not null default 0 check (failed in (0, 1)),
    error text,
    key text,
    metadata text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    unique (campaign_id, key),
    check ((failed = 1 and reward is null) or (failed = 0 and reward is not null))
);
create index labels_candidate on labels (candidate_id);
create index labels_campaign on labels (campaign_id, id);

create table checkpoints (
    campaign_id integer not null references campaigns (id),
    version integer not null check (version > 0),
    weights blob not null,
    trained_on_labels integer not null,
    steps integer not null,
    loss real,
    metrics text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (campaign_id, version)
);

create table training_runs (
    id integer primary key autoincrement,
    campaign_id integer not null references campaigns (id),
    owner text not null,
    status text not null check (status in ('running', 'succeeded', 'failed', 'cancelled')),
    labels integer not null default 0,
    steps integer not null default 0,
    loss real,
    version integer,
    error text,
    metrics text,
    started_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at text
);
create index training_runs_campaign on training_runs (campaign_id, id);

-- One row per campaign being trained: the owner process, a fencing token that grows with
-- every acquisition, and the expiry in Unix milliseconds (the owner's heartbeat extends it).
create table leases (
    campaign_id integer primary key references campaigns (id),
    owner text not null,
    token integer not null,
    expires_at_ms integer not null
);

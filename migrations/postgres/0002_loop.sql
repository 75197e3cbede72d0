-- The active-learning loop: rounds of proposed candidates, their labels, model checkpoints,
-- training runs, and the per-campaign training lease.

-- round_seq is bumped by the first statement of every round transaction: it numbers the
-- rounds and locks the campaign row so concurrent rounds of one campaign run one by one.
alter table campaigns add column round_seq bigint not null default 0;
alter table campaigns add column model_status text not null default 'untrained'
    check (model_status in ('untrained', 'training', 'ready', 'failed'));
alter table campaigns add column model_error text;

create table rounds (
    id bigint generated always as identity primary key,
    campaign_id bigint not null references campaigns (id),
    number bigint not null,
    key text,
    model_version bigint not null,
    batch_size bigint not null,
    exhausted boolean not null default false,
    created_at timestamptz not null default now(),
    unique (campaign_id, number),
    unique (campaign_id, key)
);

-- value is the canonical JSON text of the terminal state, so equality of text is equality
-- of candidates. Aggregates are maintained by the label transaction.
create table candidates (
    id bigint generated always as identity primary key,
    campaign_id bigint not null references campaigns (id),
    round_id bigint references rounds (id),
    value text not null,
    status text not null check (status in ('pending', 'labelled', 'failed', 'abandoned')),
    n_success bigint not null default 0,
    n_failed bigint not null default 0,
    reward_sum double precision not null default 0,
    created_at timestamptz not null default now(),
    unique (campaign_id, value)
);
create index candidates_round on candidates (round_id);

create table labels (
    id bigint generated always as identity primary key,
    campaign_id bigint not null references campaigns (id),
    candidate_id bigint not null references candidates (id),
    reward double precision,
    failed boolean not null default false,
    error text,
    key text,
    metadata text,
    created_at timestamptz not null default now(),
    unique (campaign_id, key),
    check ((failed and reward is null) or (not failed and reward is not null))
);
create index labels_candidate on labels (candidate_id);
create index labels_campaign on labels (campaign_id, id);

create table checkpoints (
    campaign_id bigint not null references campaigns (id),
    version bigint not null check (version > 0),
    weights bytea not null,
    trained_on_labels bigint not null,
    steps bigint not null,
    loss double precision,
    metrics text not null,
    created_at timestamptz not null default now(),
    primary key (campaign_id, version)
);

create table training_runs (
    id bigint generated always as identity primary key,
    campaign_id bigint not null references campaigns (id),
    owner text not null,
    status text not null check (status in ('running', 'succeeded', 'failed', 'cancelled')),
    labels bigint not null default 0,
    steps bigint not null default 0,
    loss double precision,
    version bigint,
    error text,
    metrics text,
    started_at timestamptz not null default now(),
    finished_at timestamptz
);
create index training_runs_campaign on training_runs (campaign_id, id);

-- One row per campaign being trained: the owner process, a fencing token that grows with
-- every acquisition, and the expiry in Unix milliseconds (the owner's heartbeat extends it).
create table leases (
    campaign_id bigint primary key references campaigns (id),
    owner text not null,
    token bigint not null,
    expires_at_ms bigint not null
);

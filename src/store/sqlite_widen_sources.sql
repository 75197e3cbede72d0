-- Rebuilds SQLite's candidates table so that its `source` check admits 'elite+policy'
-- (see `Store::migrate`). Runs with foreign keys off, inside one transaction: a new table,
-- the rows copied with their ids, the old one dropped, the new one renamed, the id
-- sequence carried over, the indexes made again. Running it twice is harmless.
create table candidates_next (
    id integer primary key autoincrement,
    campaign_id integer not null references campaigns (id),
    round_id integer references rounds (id),
    value text not null,
    status text not null check (status in ('pending', 'labelled', 'failed', 'abandoned')),
    n_success integer not null default 0,
    n_failed integer not null default 0,
    reward_sum real not null default 0,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    proxy_mean real,
    proxy_std real,
    source text default 'imported'
        check (source in ('uniform', 'policy', 'policy+local', 'local', 'elite+policy', 'imported')),
    entity text,
    unique (campaign_id, value)
);
insert into candidates_next (id, campaign_id, round_id, value, status, n_success, n_failed,
    reward_sum, created_at, proxy_mean, proxy_std, source, entity)
select id, campaign_id, round_id, value, status, n_success, n_failed,
    reward_sum, created_at, proxy_mean, proxy_std, source, entity
from candidates;
-- Ids are never reused: the new table continues the old one's sequence.
create temp table candidates_sequence as
    select seq from sqlite_sequence where name = 'candidates';
drop table candidates;
alter table candidates_next rename to candidates;
update sqlite_sequence
set seq = max(seq, coalesce((select max(seq) from temp.candidates_sequence), 0))
where name = 'candidates';
drop table temp.candidates_sequence;
create index candidates_round on candidates (round_id);
create index candidates_entity on candidates (campaign_id, entity);
create index candidates_campaign_id on candidates (campaign_id, id);
create index candidates_reward on candidates (
    campaign_id, (case when n_success > 0 then reward_sum / n_success end) desc, id
);

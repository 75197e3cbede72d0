-- Campaigns: one candidate space and its settings, stored as the validated JSON the client
-- sent with defaults filled in.
create table campaigns (
    id integer primary key autoincrement,
    name text not null check (length(name) between 1 and 200),
    spec text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Campaigns: one candidate space and its settings, stored as the validated JSON the client
-- sent with defaults filled in.
create table campaigns (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 200),
    spec jsonb not null,
    created_at timestamptz not null default now()
);

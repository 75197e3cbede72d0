-- Each campaign's candidate counts by status, its rounds and its distinct labelled objects,
-- kept up to date by the transactions that store rounds, labels and abandonments, so that
-- `GET /campaigns/{id}` and the dashboard read one row instead of counting over every
-- candidate (seconds at a million).
alter table campaigns add column candidate_count bigint not null default 0;
alter table campaigns add column pending_count bigint not null default 0;
alter table campaigns add column labelled_count bigint not null default 0;
alter table campaigns add column failed_count bigint not null default 0;
alter table campaigns add column abandoned_count bigint not null default 0;
alter table campaigns add column round_count bigint not null default 0;
alter table campaigns add column object_count bigint not null default 0;
update campaigns set
    candidate_count = (select count(*) from candidates where campaign_id = campaigns.id),
    pending_count = (select count(*) from candidates where campaign_id = campaigns.id and status = 'pending'),
    labelled_count = (select count(*) from candidates where campaign_id = campaigns.id and status = 'labelled'),
    failed_count = (select count(*) from candidates where campaign_id = campaigns.id and status = 'failed'),
    abandoned_count = (select count(*) from candidates where campaign_id = campaigns.id and status = 'abandoned'),
    round_count = (select count(*) from rounds where campaign_id = campaigns.id),
    object_count = (select count(distinct entity) + count(*) - count(entity) from candidates where campaign_id = campaigns.id and status = 'labelled');

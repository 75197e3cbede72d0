-- Each campaign's observation counts (failed ones included in `observations`), kept up to
-- date by the transaction that stores labels, so that the trainer's scan and every round read
-- one row per campaign instead of summing over all of its candidates.
alter table campaigns add column observations integer not null default 0;
alter table campaigns add column successes integer not null default 0;
update campaigns set
    observations = (select coalesce(sum(n_success + n_failed), 0) from candidates where campaign_id = campaigns.id),
    successes = (select coalesce(sum(n_success), 0) from candidates where campaign_id = campaigns.id);

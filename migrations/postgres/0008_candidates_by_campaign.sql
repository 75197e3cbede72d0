-- A round reads only the candidates its campaign stored since the last round it drew
-- (`id > the highest it has seen`): this index serves that range without a walk over every
-- candidate of the campaign.
create index candidates_campaign_id on candidates (campaign_id, id);

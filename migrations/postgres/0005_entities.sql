-- Entities: the oracle's canonical identity of what a label measured (a canonical SMILES, a
-- construct id). Labels keep the entity they named; a candidate takes the entity of its
-- first label that names one and keeps it (a label naming another one is refused), so
-- candidates sharing an entity are replicates of one object.
alter table labels add column entity text;
alter table candidates add column entity text;
create index candidates_entity on candidates (campaign_id, entity);

-- Every observation, failed ones included, trains the model. trained_on_labels and
-- training_runs.labels keep counting successful observations; these count them all.
-- Existing rows are taken to have seen only their successful observations, so a campaign
-- with failures is trained once more after the upgrade and learns from them.
alter table checkpoints add column trained_on_observations bigint not null default 0;
update checkpoints set trained_on_observations = trained_on_labels;
alter table training_runs add column observations bigint not null default 0;
update training_runs set observations = labels;

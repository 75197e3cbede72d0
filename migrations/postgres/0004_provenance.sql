-- How each candidate was made: 'uniform', 'policy', 'policy+local' or 'local' for proposals
-- (the engine's provenance), 'imported' for a value first seen in a label. Rounds always
-- name the source of what they insert; the default covers the label path, which inserts
-- imported candidates without naming one. Null: proposed before provenance was recorded.
alter table candidates add column source text default 'imported'
    check (source in ('uniform', 'policy', 'policy+local', 'local', 'imported'));

-- Existing rows all took the default. Rounds of model version 0 drew only from the uniform
-- policy (or listed a small space), so their candidates are 'uniform'; later rounds mixed
-- sources that were not recorded.
update candidates c
set source = case when r.model_version = 0 then 'uniform' end
from rounds r
where r.id = c.round_id;

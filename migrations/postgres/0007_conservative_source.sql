-- Rounds may now draw candidates by conservative search: an elite with some of its moves
-- redrawn by the GFlowNet's policy, recorded as 'elite+policy'.
alter table candidates drop constraint candidates_source_check;
alter table candidates add constraint candidates_source_check
    check (source in ('uniform', 'policy', 'policy+local', 'local', 'elite+policy', 'imported'));

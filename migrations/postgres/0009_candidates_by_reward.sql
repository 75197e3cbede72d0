-- Candidates in order of mean reward, best first for campaigns that maximise: pages by
-- reward, a campaign's best candidate and a training run's elites walk this index instead of
-- sorting the whole campaign. The expression is the one the queries order by, word for word.
create index candidates_reward on candidates (
    campaign_id, (case when n_success > 0 then reward_sum / n_success end) desc nulls last, id
);

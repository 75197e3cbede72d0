//! Objects: candidates grouped by their entity (the oracle's identity of what a label
//! measured). Candidates sharing an entity are replicates of one object; a candidate
//! without an entity is an object of its own. Campaign statistics count objects, and the
//! candidate listing can show one row per object.
//!
//! Imports no axum; SQL for both backends lives in `sql` below.

use super::{CandidateRow, CandidateStatus, PageOrder, PageQuery, PageStart, Store};
use crate::error::Error;
use std::collections::HashMap;

/// One object of a campaign as the listing shows it: its best candidate, with the
/// object's totals in place of the candidate's own.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObjectRow {
    /// The object's best candidate (best mean reward per `maximize`, then the oldest); its
    /// `n_success`, `n_failed` and `mean_reward` are the object's, over all its candidates.
    #[sqlx(flatten)]
    pub candidate: CandidateRow,
    /// The entity; `None` for a candidate that is an object of its own.
    pub entity: Option<String>,
    /// How many candidates the object has.
    pub replicates: i64,
}

mod sql {
    /// The window that groups a campaign's candidates into objects: one partition per
    /// entity, and one per candidate without an entity.
    macro_rules! object {
        () => {
            "partition by c.entity, case when c.entity is null then c.id end"
        };
    }

    /// Whether an object comes after a cursor in the page's order (`key` descending, unset
    /// keys last, then id): `key` is the order's key (the mean times the direction's sign;
    /// null for unmeasured objects and in creation order), `$cursor_key` and `$cursor_id`
    /// the cursor's, a null id meaning no cursor. The window ranks every object of the
    /// campaign whatever the page, so a cursor saves the offset's rows, not the ranking.
    macro_rules! after {
        ($key:literal, $cursor_key:literal, $cursor_id:literal) => {
            concat!(
                "(",
                $cursor_id,
                " is null or case when ",
                $cursor_key,
                " is null then ",
                $key,
                " is null and o.id > ",
                $cursor_id,
                " else ",
                $key,
                " < ",
                $cursor_key,
                " or (",
                $key,
                " = ",
                $cursor_key,
                " and o.id > ",
                $cursor_id,
                ") or ",
                $key,
                " is null end)"
            )
        };
    }

    pub mod sqlite {
        pub const ENTITIES: &str = "select id, entity from candidates where campaign_id = $1 and entity is not null and id in (select value from json_each($2))";
        pub const OBJECTS: &str = concat!(
            "select * from (select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.entity, sum(c.n_success) over w as n_success, sum(c.n_failed) over w as n_failed, case when sum(c.n_success) over w > 0 then sum(c.reward_sum) over w / sum(c.n_success) over w end as mean_reward, count(*) over w as replicates, c.created_at, row_number() over (",
            object!(),
            " order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) * $4 desc nulls last, c.id) as place from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 window w as (",
            object!(),
            ")) o where o.place = 1 and ($2 is null or o.status = $2) and ",
            after!(
                "case when $3 = 'reward' then o.mean_reward end * $4",
                "$7",
                "$8"
            ),
            " order by case when $3 = 'reward' then o.mean_reward end * $4 desc nulls last, o.id limit $5 offset $6"
        );
    }

    pub mod postgres {
        pub const ENTITIES: &str = "select id, entity from candidates where campaign_id = $1 and entity is not null and id in (select (jsonb_array_elements_text($2::jsonb))::bigint)";
        pub const OBJECTS: &str = concat!(
            "select * from (select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.entity, (sum(c.n_success) over w)::bigint as n_success, (sum(c.n_failed) over w)::bigint as n_failed, case when sum(c.n_success) over w > 0 then sum(c.reward_sum) over w / (sum(c.n_success) over w)::float8 end as mean_reward, count(*) over w as replicates, ",
            pg_ts!("c.created_at"),
            " as created_at, row_number() over (",
            object!(),
            " order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) * $4::float8 desc nulls last, c.id) as place from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 window w as (",
            object!(),
            ")) o where o.place = 1 and ($2::text is null or o.status = $2) and ",
            after!(
                "case when $3::text = 'reward' then o.mean_reward end * $4::float8",
                "$7::float8",
                "$8::bigint"
            ),
            " order by case when $3::text = 'reward' then o.mean_reward end * $4::float8 desc nulls last, o.id limit $5 offset $6"
        );
    }
}

impl Store {
    /// The entities of those of `ids` (candidates of the campaign) that have one.
    pub async fn candidate_entities(
        &self,
        campaign_id: i64,
        ids: &[i64],
    ) -> Result<HashMap<i64, String>, Error> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids = serde_json::json!(ids).to_string();
        let rows: Vec<(i64, String)> = on_backend!(self, ENTITIES, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(&ids)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    /// A page of the campaign's objects, each as its best candidate with the object's
    /// totals. The status filters on that candidate's status (an object is `labelled` when
    /// any of its candidates is); an order by reward places the object by its mean reward,
    /// creation order by its best candidate's id. A position to start after is that of an
    /// object's row (its best candidate's id).
    pub async fn list_objects(
        &self,
        campaign_id: i64,
        query: &PageQuery,
    ) -> Result<Vec<ObjectRow>, Error> {
        let PageQuery {
            status,
            order,
            limit,
            start,
        } = *query;
        let (order_name, sign) = match order {
            PageOrder::Created => ("created", 1.0f64),
            PageOrder::HighestReward => ("reward", 1.0),
            PageOrder::LowestReward => ("reward", -1.0),
        };
        // Negating a float is exact, and an object's mean comes out of the same sums on
        // every page while its observations stay: the cursor's key equals the key the
        // query computes for the row it was made from.
        let (offset, cursor_key, cursor_id) = match start {
            PageStart::Offset(offset) => (offset, None, None),
            PageStart::After(after) => (
                0,
                after
                    .mean_reward
                    .filter(|_| order.by_reward())
                    .map(|mean| mean * sign),
                Some(after.id),
            ),
        };
        Ok(on_backend!(self, OBJECTS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(status.map(CandidateStatus::as_str))
                .bind(order_name)
                .bind(sign)
                .bind(limit)
                .bind(offset)
                .bind(cursor_key)
                .bind(cursor_id)
                .fetch_all(pool)
                .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OnTaken, Pool, ProposedValue, RoundDraft, RoundInsert, Stats, Store};
    use crate::domain::campaign::NewCampaign;
    use crate::domain::label::{LabelTarget, NewLabel};
    use crate::gfn::Source;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The counts as `GET /campaigns/{id}` computed them before the campaign kept its own:
    /// over every candidate and round of the campaign.
    async fn recount(store: &Store, campaign_id: i64) -> Stats {
        const RECOUNT: &str = "select
            (select count(*) from candidates where campaign_id = $1),
            (select count(*) from candidates where campaign_id = $1 and status = 'labelled'),
            (select count(*) from candidates where campaign_id = $1 and status = 'failed'),
            (select count(*) from candidates where campaign_id = $1 and status = 'pending'),
            (select count(*) from candidates where campaign_id = $1 and status = 'abandoned'),
            (select count(*) from rounds where campaign_id = $1),
            (select count(distinct entity) + count(*) - count(entity) from candidates
                where campaign_id = $1 and status = 'labelled')";
        type Row = (i64, i64, i64, i64, i64, i64, i64);
        let row: Row = match &store.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_as(RECOUNT)
                    .bind(campaign_id)
                    .fetch_one(pool)
                    .await
            }
            Pool::Postgres(pool) => {
                sqlx::query_as(RECOUNT)
                    .bind(campaign_id)
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("recount");
        let (candidates, labelled, failed, pending, abandoned, rounds, objects) = row;
        Stats {
            candidates,
            labelled,
            failed,
            pending,
            abandoned,
            rounds,
            objects,
        }
    }

    /// A label for `target`: a success or a failure, with an entity from a small set (so
    /// that replicates, conflicts and entities named late all happen) and sometimes a key
    /// from a small set (so that retries and refused batches happen too).
    fn random_label(rng: &mut StdRng, target: LabelTarget) -> NewLabel {
        let failed = rng.random_bool(0.3);
        NewLabel {
            target,
            reward: (!failed).then(|| rng.random_range(0.0..1.0)),
            failed,
            error: failed.then(|| "assay failed".to_string()),
            key: rng
                .random_bool(0.2)
                .then(|| format!("k{}", rng.random_range(0..30))),
            metadata: None,
            entity: rng
                .random_bool(0.5)
                .then(|| format!("e{}", rng.random_range(0..6))),
        }
    }

    /// Rounds, label batches (over two campaigns at once, with imports, failures, entities,
    /// duplicates and refused batches) and abandonments in a random order: after each, every
    /// campaign's kept counts equal a recount over its candidates.
    #[tokio::test]
    async fn kept_counts_equal_a_recount_after_every_write() {
        let mut urls = vec!["sqlite::memory:".to_string()];
        urls.extend(std::env::var("FLOWLAB_TEST_POSTGRES_URL").ok());
        for url in urls {
            let store = Store::connect(&url).await.expect("connects");
            store.migrate().await.expect("migrates");
            let mut campaigns = Vec::new();
            for name in ["counted-a", "counted-b"] {
                let body = serde_json::json!({
                    "name": name,
                    "space": {"type": "grid", "dims": 2, "size": 4},
                });
                let campaign: NewCampaign = serde_json::from_value(body).expect("body");
                let spec = campaign.validate().expect("valid");
                campaigns.push(store.insert_campaign(&spec).await.expect("stored").id);
            }
            let mut rng = StdRng::seed_from_u64(7);
            let mut rounds: Vec<i64> = Vec::new();
            let mut refused = 0;
            for step in 0..120 {
                let campaign_id = campaigns[rng.random_range(0..campaigns.len())];
                match rng.random_range(0..10) {
                    0..=2 => {
                        let values: Vec<ProposedValue> = (0..rng.random_range(1..8))
                            .map(|_| ProposedValue {
                                value: format!("v{}", rng.random_range(0..60)),
                                proxy: None,
                                source: Source::Uniform,
                            })
                            .collect();
                        let draft = RoundDraft {
                            campaign_id,
                            key: None,
                            model_version: 0,
                            batch_size: rng.random_range(1..6),
                            exhausted: false,
                            values: &values,
                            on_taken: OnTaken::CommitShort,
                        };
                        if let RoundInsert::Created(id) =
                            store.insert_round(&draft).await.expect("round")
                        {
                            rounds.push(id);
                        }
                    }
                    3 if !rounds.is_empty() => {
                        let round = rounds[rng.random_range(0..rounds.len())];
                        store.abandon_round(round).await.expect("abandons");
                    }
                    _ => {
                        let mut labels = Vec::new();
                        for _ in 0..rng.random_range(1..10) {
                            let target = LabelTarget::Value {
                                campaign_id: campaigns[rng.random_range(0..campaigns.len())],
                                value: format!("v{}", rng.random_range(0..60)),
                            };
                            labels.push(random_label(&mut rng, target));
                        }
                        if store.insert_labels(&labels).await.is_err() {
                            refused += 1;
                        }
                    }
                }
                for &id in &campaigns {
                    let kept = store.stats(id).await.expect("stats");
                    assert_eq!(kept, recount(&store, id).await, "{url}: step {step}");
                }
            }
            let end = store.stats(campaigns[0]).await.expect("stats");
            assert!(
                end.labelled > 0 && end.failed > 0 && end.abandoned > 0 && end.objects > 0,
                "{url}: the walk reached every count: {end:?}"
            );
            assert!(
                end.objects < end.labelled,
                "{url}: replicates happened: {end:?}"
            );
            assert!(refused > 0, "{url}: refused batches happened");
        }
    }
}

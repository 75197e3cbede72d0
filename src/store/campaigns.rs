//! Objects: candidates grouped by their entity (the oracle's identity of what a label
//! measured). Candidates sharing an entity are replicates of one object; a candidate
//! without an entity is an object of its own. Campaign statistics count objects, and the
//! candidate listing can show one row per object.
//!
//! Imports no axum; SQL for both backends lives in `sql` below.

use super::{CandidateRow, CandidateStatus, Store};
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

    pub mod sqlite {
        /// `indexed by`: SQLite, without statistics, may otherwise walk a campaign through
        /// the reward index and so visit its rows in random order (several times slower at a
        /// million candidates); the `(campaign_id, id)` index visits them in table order.
        pub const OBJECT_COUNT: &str = "select count(distinct entity) + count(*) - count(entity) from candidates indexed by candidates_campaign_id where campaign_id = $1 and status = 'labelled'";
        pub const ENTITIES: &str = "select id, entity from candidates where campaign_id = $1 and entity is not null and id in (select value from json_each($2))";
        pub const OBJECTS: &str = concat!(
            "select * from (select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.entity, sum(c.n_success) over w as n_success, sum(c.n_failed) over w as n_failed, case when sum(c.n_success) over w > 0 then sum(c.reward_sum) over w / sum(c.n_success) over w end as mean_reward, count(*) over w as replicates, c.created_at, row_number() over (",
            object!(),
            " order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) * $4 desc nulls last, c.id) as place from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 window w as (",
            object!(),
            ")) o where o.place = 1 and ($2 is null or o.status = $2) order by case when $3 = 'reward' then o.mean_reward end * $4 desc nulls last, o.id limit $5 offset $6"
        );
    }

    pub mod postgres {
        pub const OBJECT_COUNT: &str = "select count(distinct entity) + count(*) - count(entity) from candidates where campaign_id = $1 and status = 'labelled'";
        pub const ENTITIES: &str = "select id, entity from candidates where campaign_id = $1 and entity is not null and id in (select (jsonb_array_elements_text($2::jsonb))::bigint)";
        pub const OBJECTS: &str = concat!(
            "select * from (select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.entity, (sum(c.n_success) over w)::bigint as n_success, (sum(c.n_failed) over w)::bigint as n_failed, case when sum(c.n_success) over w > 0 then sum(c.reward_sum) over w / (sum(c.n_success) over w)::float8 end as mean_reward, count(*) over w as replicates, ",
            pg_ts!("c.created_at"),
            " as created_at, row_number() over (",
            object!(),
            " order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) * $4::float8 desc nulls last, c.id) as place from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 window w as (",
            object!(),
            ")) o where o.place = 1 and ($2::text is null or o.status = $2) order by case when $3::text = 'reward' then o.mean_reward end * $4::float8 desc nulls last, o.id limit $5 offset $6"
        );
    }
}

impl Store {
    /// Distinct objects among the campaign's labelled candidates: each entity once, and
    /// each labelled candidate without an entity.
    pub async fn object_count(&self, campaign_id: i64) -> Result<i64, Error> {
        let (n,): (i64,) = on_backend!(self, OBJECT_COUNT, |pool, q| {
            sqlx::query_as(q).bind(campaign_id).fetch_one(pool).await?
        });
        Ok(n)
    }

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
    /// totals. `status` filters on that candidate's status (an object is `labelled` when
    /// any of its candidates is); `by_reward` orders by the object's mean reward (best
    /// first, `maximize` deciding which end is best), else by the best candidate's id.
    pub async fn list_objects(
        &self,
        campaign_id: i64,
        status: Option<CandidateStatus>,
        by_reward: bool,
        maximize: bool,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ObjectRow>, Error> {
        let order = if by_reward { "reward" } else { "created" };
        let sign = if maximize { 1.0f64 } else { -1.0 };
        Ok(on_backend!(self, OBJECTS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(status.map(CandidateStatus::as_str))
                .bind(order)
                .bind(sign)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?
        }))
    }
}

//! What the dashboard reads beyond the API's own queries: a page of campaigns, a campaign's
//! last activity, the best candidates of each round, its pending rounds and its training
//! runs with their durations. Every query is bounded by a limit its caller passes, so a
//! campaign of 100,000 candidates answers in rows per round, never per candidate.
//!
//! Imports no axum; SQL for both backends lives in `sql` below.

use super::{CampaignRow, Store};
use crate::domain::campaign::Campaign;
use crate::error::Error;

/// One of the best labelled candidates of a round (see [`Store::round_leaders`]).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RoundLeader {
    /// The round's number in the campaign.
    pub number: i64,
    /// Canonical JSON text of the value.
    pub value: String,
    /// Mean of its successful observations.
    pub mean_reward: f64,
}

/// A round with candidates still waiting for a label.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingRound {
    pub number: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Candidates of the round without any observation.
    pub pending: i64,
    /// Seconds since the round was created, by the database's clock.
    pub age_seconds: f64,
}

/// A training run as the dashboard lists it: the API's run without its metrics, with its
/// duration (so far, while running) measured by the database's clock.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunSummary {
    pub id: i64,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Successful observations the run trained on.
    pub labels: i64,
    /// Optimisation steps of this run alone.
    pub steps: i64,
    pub loss: Option<f64>,
    /// The checkpoint version it wrote (succeeded runs only).
    pub version: Option<i64>,
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_seconds: f64,
}

mod sql {
    pub mod sqlite {
        pub const CAMPAIGN_PAGE: &str =
            "select id, spec, created_at from campaigns order by id desc limit $1 offset $2";
        pub const CAMPAIGN_COUNT: &str = "select count(*) from campaigns";
        /// The latest of the campaign's creation, its newest round, its newest label (the
        /// `(campaign_id, id)` index finds it) and its newest training run.
        pub const LAST_ACTIVITY: &str = "select max(a.t) from (select created_at as t from campaigns where id = $1 union all select max(created_at) from rounds where campaign_id = $1 union all select l.created_at from (select created_at from labels where campaign_id = $1 order by id desc limit 1) as l union all select max(coalesce(finished_at, started_at)) from training_runs where campaign_id = $1) as a";
        /// The best `$4` labelled candidates of each of the newest `$2` rounds, best first
        /// (`$3` is 1 to maximise, -1 to minimise), oldest round first.
        pub const ROUND_LEADERS: &str = "select t.number, t.value, t.mean_reward from (select r.number, c.value, c.reward_sum / c.n_success as mean_reward, row_number() over (partition by r.id order by (c.reward_sum / c.n_success) * $3 desc, c.id) as place from (select id, number from rounds where campaign_id = $1 order by number desc limit $2) as r join candidates c on c.round_id = r.id where c.n_success > 0) as t where t.place <= $4 order by t.number, t.place";
        pub const PENDING_ROUNDS: &str = "select r.number, r.created_at, count(c.id) as pending, (julianday('now') - julianday(r.created_at)) * 86400.0 as age_seconds from rounds r join candidates c on c.round_id = r.id and c.status = 'pending' where r.campaign_id = $1 group by r.id, r.number, r.created_at order by r.number limit $2";
        pub const RUNS: &str = "select id, status, labels, steps, loss, version, error, started_at, (julianday(coalesce(finished_at, 'now')) - julianday(started_at)) * 86400.0 as duration_seconds from training_runs where campaign_id = $1 order by id desc limit $2";
    }

    pub mod postgres {
        pub const CAMPAIGN_PAGE: &str = concat!(
            "select id, spec::text as spec, ",
            pg_ts!("created_at"),
            " as created_at from campaigns order by id desc limit $1 offset $2"
        );
        pub const CAMPAIGN_COUNT: &str = super::sqlite::CAMPAIGN_COUNT;
        pub const LAST_ACTIVITY: &str = concat!(
            "select ",
            pg_ts!("max(a.t)"),
            " from (select created_at as t from campaigns where id = $1 union all select max(created_at) from rounds where campaign_id = $1 union all select l.created_at from (select created_at from labels where campaign_id = $1 order by id desc limit 1) as l union all select max(coalesce(finished_at, started_at)) from training_runs where campaign_id = $1) as a"
        );
        pub const ROUND_LEADERS: &str = "select t.number, t.value, t.mean_reward from (select r.number, c.value, c.reward_sum / c.n_success as mean_reward, row_number() over (partition by r.id order by (c.reward_sum / c.n_success) * $3::float8 desc, c.id) as place from (select id, number from rounds where campaign_id = $1 order by number desc limit $2) as r join candidates c on c.round_id = r.id where c.n_success > 0) as t where t.place <= $4 order by t.number, t.place";
        pub const PENDING_ROUNDS: &str = concat!(
            "select r.number, ",
            pg_ts!("r.created_at"),
            " as created_at, count(c.id) as pending, extract(epoch from now() - r.created_at)::float8 as age_seconds from rounds r join candidates c on c.round_id = r.id and c.status = 'pending' where r.campaign_id = $1 group by r.id, r.number, r.created_at order by r.number limit $2"
        );
        pub const RUNS: &str = concat!(
            "select id, status, labels, steps, loss, version, error, ",
            pg_ts!("started_at"),
            " as started_at, extract(epoch from coalesce(finished_at, now()) - started_at)::float8 as duration_seconds from training_runs where campaign_id = $1 order by id desc limit $2"
        );
    }
}

impl Store {
    /// A page of campaigns, newest first, and how many there are in all.
    #[tracing::instrument(skip_all)]
    pub async fn campaign_page(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Campaign>, i64), Error> {
        let rows: Vec<CampaignRow> = on_backend!(self, CAMPAIGN_PAGE, |pool, q| {
            sqlx::query_as(q)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?
        });
        let (total,): (i64,) = on_backend!(self, CAMPAIGN_COUNT, |pool, q| {
            sqlx::query_as(q).fetch_one(pool).await?
        });
        let campaigns = rows
            .into_iter()
            .map(CampaignRow::into_campaign)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((campaigns, total))
    }

    /// When anything last happened to the campaign (RFC 3339, UTC): its creation, a round,
    /// a label or a training run.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn last_activity(&self, campaign_id: i64) -> Result<Option<String>, Error> {
        let (at,): (Option<String>,) = on_backend!(self, LAST_ACTIVITY, |pool, q| {
            sqlx::query_as(q).bind(campaign_id).fetch_one(pool).await?
        });
        Ok(at)
    }

    /// The best `per_round` labelled candidates of each of the newest `rounds` rounds, oldest
    /// round first and best first within a round; `maximize` decides which end is best.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn round_leaders(
        &self,
        campaign_id: i64,
        rounds: i64,
        per_round: i64,
        maximize: bool,
    ) -> Result<Vec<RoundLeader>, Error> {
        let sign = if maximize { 1.0f64 } else { -1.0 };
        Ok(on_backend!(self, ROUND_LEADERS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(rounds)
                .bind(sign)
                .bind(per_round)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The oldest `limit` rounds that still have pending candidates.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn pending_rounds(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<PendingRound>, Error> {
        Ok(on_backend!(self, PENDING_ROUNDS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The campaign's newest `limit` training runs, newest first, with their durations.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn run_summaries(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<RunSummary>, Error> {
        Ok(on_backend!(self, RUNS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }
}

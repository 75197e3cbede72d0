//! The trainer's storage: training data and label counts, checkpoints, training runs, the
//! campaign's model status, and the per-campaign training lease.
//!
//! Leases (one row per campaign in `leases`): acquiring is one upsert that succeeds when the
//! row is absent, expired, or already ours, and bumps the fencing token every time.
//! Releasing expires the row instead of deleting it, so a campaign's tokens never repeat.
//! Every write a training run makes to the campaign's model (the checkpoint above all) is
//! guarded by `exists (lease with our owner and token, not expired)`, so a process that lost
//! its lease while computing cannot overwrite the work of the one that took it over.
//!
//! Imports no axum; SQL for both backends lives in `sql` below, next to the methods.

use super::{Pool, Store};
use crate::error::Error;

/// Most training runs listed by [`Store::model_overview`].
pub const HISTORY_LIMIT: i64 = 50;

/// A labelled candidate as training reads it: id, canonical value text, mean reward over
/// its successful observations, entity.
pub type LabelledRow = (i64, String, f64, Option<String>);

/// A held training lease: the campaign, this process's owner name, and the fencing token
/// of this acquisition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The campaign trained under the lease.
    pub campaign_id: i64,
    /// The holder's name (one per trainer instance).
    pub owner: String,
    /// Fencing token: grows with every acquisition of the campaign's lease.
    pub token: i64,
}

/// A checkpoint's bookkeeping, without its weights.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CheckpointInfo {
    /// 1, 2, ... per campaign.
    pub version: i64,
    /// Successful observations the checkpoint was trained on.
    pub trained_on_labels: i64,
    /// Observations the checkpoint was trained on, failed ones included.
    pub trained_on_observations: i64,
    /// Optimisation steps the network has had in total, over every run it resumed from.
    pub steps: i64,
    /// Mean loss of the last steps of the run that wrote it.
    pub loss: Option<f64>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// One training run, as `GET /campaigns/{id}/model` lists it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TrainingRunRow {
    /// The run's id, increasing in start order.
    pub id: i64,
    /// The trainer (process) that ran it.
    pub owner: String,
    /// `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Successful observations the run trained on.
    pub labels: i64,
    /// Observations the run trained on, failed ones included.
    pub observations: i64,
    /// Optimisation steps of this run alone.
    pub steps: i64,
    /// Mean loss of the run's last steps (succeeded runs only).
    pub loss: Option<f64>,
    /// The checkpoint version it wrote (succeeded runs only).
    pub version: Option<i64>,
    /// Why the run failed or was cancelled.
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; null while running.
    pub finished_at: Option<String>,
    /// The proxy's held-out quality measured by the run (`spearman`, `rmse`, `train`,
    /// `test`); null when the run fit no proxy or had too few labels to hold some out.
    #[sqlx(skip)]
    pub proxy: Option<serde_json::Value>,
    /// The run's metrics as stored (JSON text); read for `proxy`.
    pub metrics: Option<String>,
}

/// The model's state as `GET /campaigns/{id}/model` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOverview {
    /// Newest checkpoint version, 0 before any.
    pub version: i64,
    /// `untrained`, `training`, `ready` or `failed`.
    pub status: String,
    /// Why the last run failed, when `status` is `failed`.
    pub error: Option<String>,
    /// Successful observations the newest checkpoint was trained on, 0 before any.
    pub trained_on_labels: i64,
    /// Observations the newest checkpoint was trained on, failed ones included, 0 before
    /// any.
    pub trained_on_observations: i64,
    /// Total optimisation steps of the newest checkpoint.
    pub steps: i64,
    /// Loss reported with the newest checkpoint.
    pub loss: Option<f64>,
    /// The held-out quality of the newest checkpoint's proxy (`spearman`, `rmse`, `train`,
    /// `test`); null until a run measured one.
    pub proxy: Option<serde_json::Value>,
    /// Latest of the newest checkpoint's creation and the newest run's start or finish;
    /// null before any training.
    pub updated_at: Option<String>,
    /// Training runs, newest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<TrainingRunRow>,
}

/// Bytes of one chunk of a checkpoint's weights: each is written in its own statement, so
/// SQLite's write lock is held for a few milliseconds at a time, never for a whole large
/// checkpoint.
pub const CHECKPOINT_CHUNK_BYTES: usize = 4 << 20;

/// What a finished run stores along with its checkpoint.
#[derive(Debug, Clone)]
pub struct NewCheckpoint<'a> {
    /// Safetensors bytes.
    pub weights: &'a [u8],
    /// Successful observations the run trained on.
    pub trained_on_labels: i64,
    /// Observations the run trained on, failed ones included.
    pub trained_on_observations: i64,
    /// Total steps of the network, over every run it resumed from (the checkpoint's).
    pub total_steps: i64,
    /// Steps of this run (the training run's).
    pub run_steps: i64,
    /// Mean loss of the run's last steps.
    pub loss: Option<f64>,
    /// JSON text.
    pub metrics: &'a str,
    /// Versions of the campaign to keep, this one included: older ones are deleted with
    /// the commit (at least 1).
    pub keep_versions: i64,
}

/// The observation counts a run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCounts {
    /// Successful observations.
    pub labels: i64,
    /// Observations, failed ones included.
    pub observations: i64,
}

/// How [`Store::begin_training_run`] went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunStart {
    /// The run is recorded as `running`, with this id.
    Started(i64),
    /// Another owner holds the lease now; nothing was written.
    LeaseLost,
    /// Too many runs of the campaign in a row died with their trainer: the campaign is now
    /// `failed` with this reason, and no run was started.
    GaveUp(String),
}

/// How an unsuccessful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Training broke (bad data, unreadable checkpoint, panic): the campaign is `failed`.
    Failed,
    /// Stopped from outside (shutdown, lost lease): the campaign's status is restored.
    Cancelled,
}

mod sql {
    /// `now` as SQLite stores timestamps.
    macro_rules! sqlite_now {
        () => {
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        };
    }

    /// `exists (our live lease)` with `$1` campaign, and the owner, token and now (ms) at
    /// the given placeholders. The same text on both backends.
    macro_rules! our_lease {
        ($owner:literal, $token:literal, $now:literal) => {
            concat!(
                "exists (select 1 from leases where campaign_id = $1 and owner = ",
                $owner,
                " and token = ",
                $token,
                " and expires_at_ms > ",
                $now,
                ")"
            )
        };
    }

    /// `not exists (someone else's live lease)`, placeholders as in `our_lease!`.
    macro_rules! no_other_lease {
        ($owner:literal, $token:literal, $now:literal) => {
            concat!(
                "not exists (select 1 from leases where campaign_id = $1 and expires_at_ms > ",
                $now,
                " and not (owner = ",
                $owner,
                " and token = ",
                $token,
                "))"
            )
        };
    }

    pub mod sqlite {
        pub const OBSERVATIONS: &str = "select coalesce(max(successes), 0), coalesce(max(observations), 0) from campaigns where id = $1";
        /// `$2` is a stride: about one candidate in `$2`, chosen by a scramble of the id (1:
        /// all of them). Scrambled, because one campaign's ids may share a residue (two
        /// campaigns storing in turn), which a plain `id % $2` would then take all or none of.
        pub const LABELLED_DATA: &str = "select id, value, reward_sum / n_success, entity from candidates indexed by candidates_campaign_id where campaign_id = $1 and n_success > 0 and ((id * 7919) % 1000003) % $2 = 0 order by id limit $3";
        /// Greatest mean reward first, walking the `candidates_reward` index (its expression
        /// word for word).
        pub const LABELLED_BEST_HIGH: &str = "select id, value, reward_sum / n_success, entity from candidates where campaign_id = $1 and n_success > 0 order by (case when n_success > 0 then reward_sum / n_success end) desc, id limit $2";
        pub const LABELLED_BEST_LOW: &str = "select id, value, reward_sum / n_success, entity from candidates where campaign_id = $1 and n_success > 0 order by (case when n_success > 0 then reward_sum / n_success end) asc, id limit $2";
        /// `indexed by`: SQLite, without statistics, may otherwise walk a campaign through
        /// the reward index and so visit its rows in random order (several times slower at a
        /// million candidates); the `(campaign_id, id)` index visits them in table order.
        pub const LABELLED_COUNT: &str =
            "select count(*) from candidates indexed by candidates_campaign_id where campaign_id = $1 and n_success > 0";
        /// `indexed by`: SQLite, without statistics, may otherwise walk a campaign through
        /// the reward index and so visit its rows in random order (several times slower at a
        /// million candidates); the `(campaign_id, id)` index visits them in table order.
        pub const FAILED_VALUES: &str =
            "select value from candidates indexed by candidates_campaign_id where campaign_id = $1 and status = 'failed' and ((id * 7919) % 1000003) % $2 = 0 order by id limit $3";
        /// `indexed by`: SQLite, without statistics, may otherwise walk a campaign through
        /// the reward index and so visit its rows in random order (several times slower at a
        /// million candidates); the `(campaign_id, id)` index visits them in table order.
        pub const FAILED_COUNT: &str =
            "select count(*) from candidates indexed by candidates_campaign_id where campaign_id = $1 and status = 'failed'";
        pub const MODEL_STATUS: &str =
            "select model_status, model_error from campaigns where id = $1";
        pub const NEWEST_CHECKPOINT: &str = "select version, trained_on_labels, trained_on_observations, steps, loss, created_at from checkpoints where campaign_id = $1 order by version desc limit 1";
        pub const NEWEST_VERSION: &str =
            "select max(version) from checkpoints where campaign_id = $1";
        pub const NEWEST_VERSIONS: &str = "select campaign_id, max(version) from checkpoints group by campaign_id order by campaign_id";
        pub const CHECKPOINT_WEIGHTS: &str =
            "select weights, run_id from checkpoints where campaign_id = $1 and version = $2";
        pub const CHECKPOINT_CHUNKS: &str =
            "select bytes from checkpoint_chunks where run_id = $1 order by seq";
        pub const INSERT_CHUNK: &str =
            "insert into checkpoint_chunks (run_id, seq, bytes) values ($1, $2, $3)";
        // One chunk of the campaign's that no checkpoint holds (pruned versions, runs that
        // never committed) and no running run is still writing.
        pub const DELETE_ORPHAN_CHUNK: &str = "delete from checkpoint_chunks where (run_id, seq) in (select c.run_id, c.seq from training_runs r join checkpoint_chunks c on c.run_id = r.id where r.campaign_id = $1 and r.status <> 'running' and not exists (select 1 from checkpoints k where k.campaign_id = $1 and k.run_id = r.id) limit 1)";
        pub const CHECKPOINT_VERSIONS: &str =
            "select version from checkpoints where campaign_id = $1 order by version desc limit $2";
        pub const PRUNE_CHECKPOINTS: &str =
            "delete from checkpoints where campaign_id = $1 and version <= $2";
        pub const TRAINING_RUNS: &str = "select id, owner, status, labels, observations, steps, loss, version, error, started_at, finished_at, metrics from training_runs where campaign_id = $1 order by id desc limit $2";
        // Campaigns with observations (failed ones included) their newest checkpoint has
        // not seen. Failed campaigns wait for new labels (a notification) rather than a
        // retry loop.
        pub const TO_TRAIN: &str = "select c.id from campaigns c where c.model_status <> 'failed' and c.observations > coalesce((select k.trained_on_observations from checkpoints k where k.campaign_id = c.id order by k.version desc limit 1), 0) order by c.id";
        pub const ACQUIRE_LEASE: &str = "insert into leases (campaign_id, owner, token, expires_at_ms) values ($1, $2, 1, $3) on conflict (campaign_id) do update set owner = excluded.owner, token = leases.token + 1, expires_at_ms = excluded.expires_at_ms where leases.expires_at_ms < $4 or leases.owner = excluded.owner returning token";
        pub const RENEW_LEASE: &str = "update leases set expires_at_ms = $4 where campaign_id = $1 and owner = $2 and token = $3";
        pub const RELEASE_LEASE: &str = "update leases set expires_at_ms = 0 where campaign_id = $1 and owner = $2 and token = $3";
        pub const CLOCK_MS: &str =
            "select cast((julianday('now') - 2440587.5) * 86400000.0 as integer)";
        // `begin immediate` already holds the database's write lock: a plain read suffices.
        pub const LOCK_LEASE: &str = "select campaign_id from leases where campaign_id = $1";
        // Runs left `running` by a trainer that died: whoever holds the lease now knows
        // nobody else is running, so they are closed when the next run starts.
        pub const CLOSE_ABANDONED_RUNS: &str = concat!(
            "update training_runs set status = 'cancelled', error = 'abandoned: its trainer stopped without finishing', finished_at = ",
            sqlite_now!(),
            " where campaign_id = $1 and status = 'running'"
        );
        // Runs of the campaign closed as abandoned since its last successful one: each is a
        // trainer that died mid-run (a graceful stop records `cancelled` without this reason).
        pub const ABANDONED_IN_A_ROW: &str = "select count(*) from training_runs where campaign_id = $1 and status = 'cancelled' and error like 'abandoned:%' and id > coalesce((select max(id) from training_runs where campaign_id = $1 and status = 'succeeded'), 0)";
        pub const GIVE_UP: &str =
            "update campaigns set model_status = 'failed', model_error = $2 where id = $1";
        pub const INSERT_RUN: &str = concat!(
            "insert into training_runs (campaign_id, owner, status, labels, observations) select $1, $2, 'running', $4, $6 where ",
            our_lease!("$2", "$3", "$5"),
            " returning id"
        );
        pub const MARK_TRAINING: &str =
            "update campaigns set model_status = 'training', model_error = null where id = $1";
        pub const INSERT_CHECKPOINT: &str = concat!(
            "insert into checkpoints (campaign_id, version, weights, trained_on_labels, steps, loss, metrics, trained_on_observations, run_id) select $1, coalesce((select max(version) from checkpoints where campaign_id = $1), 0) + 1, $5, $6, $7, $8, $9, $10, $11 where ",
            our_lease!("$2", "$3", "$4"),
            " returning version"
        );
        pub const MARK_READY: &str =
            "update campaigns set model_status = 'ready', model_error = null where id = $1";
        pub const FINISH_RUN: &str = concat!(
            "update training_runs set status = 'succeeded', labels = $2, steps = $3, loss = $4, version = $5, metrics = $6, observations = $7, finished_at = ",
            sqlite_now!(),
            " where id = $1 and status = 'running'"
        );
        pub const END_RUN: &str = concat!(
            "update training_runs set status = $2, error = $3, finished_at = ",
            sqlite_now!(),
            " where id = $1 and status = 'running'"
        );
        pub const MARK_FAILED: &str = concat!(
            "update campaigns set model_status = 'failed', model_error = $5 where id = $1 and ",
            no_other_lease!("$2", "$3", "$4")
        );
        pub const RESTORE_STATUS: &str = concat!(
            "update campaigns set model_status = case when exists (select 1 from checkpoints where campaign_id = $1) then 'ready' else 'untrained' end where id = $1 and model_status = 'training' and ",
            no_other_lease!("$2", "$3", "$4")
        );
    }

    pub mod postgres {
        pub const OBSERVATIONS: &str = super::sqlite::OBSERVATIONS;
        pub const LABELLED_DATA: &str = "select id, value, reward_sum / n_success, entity from candidates where campaign_id = $1 and n_success > 0 and ((id * 7919) % 1000003) % $2 = 0 order by id limit $3";
        pub const LABELLED_BEST_HIGH: &str = "select id, value, reward_sum / n_success, entity from candidates where campaign_id = $1 and n_success > 0 order by (case when n_success > 0 then reward_sum / n_success end) desc nulls last, id limit $2";
        pub const LABELLED_BEST_LOW: &str = super::sqlite::LABELLED_BEST_LOW;
        pub const LABELLED_COUNT: &str =
            "select count(*) from candidates where campaign_id = $1 and n_success > 0";
        pub const FAILED_VALUES: &str = "select value from candidates where campaign_id = $1 and status = 'failed' and ((id * 7919) % 1000003) % $2 = 0 order by id limit $3";
        pub const FAILED_COUNT: &str =
            "select count(*) from candidates where campaign_id = $1 and status = 'failed'";
        pub const MODEL_STATUS: &str = super::sqlite::MODEL_STATUS;
        pub const NEWEST_CHECKPOINT: &str = concat!(
            "select version, trained_on_labels, trained_on_observations, steps, loss, ",
            pg_ts!("created_at"),
            " as created_at from checkpoints where campaign_id = $1 order by version desc limit 1"
        );
        pub const NEWEST_VERSION: &str = super::sqlite::NEWEST_VERSION;
        pub const NEWEST_VERSIONS: &str = super::sqlite::NEWEST_VERSIONS;
        pub const CHECKPOINT_WEIGHTS: &str = super::sqlite::CHECKPOINT_WEIGHTS;
        pub const CHECKPOINT_CHUNKS: &str = super::sqlite::CHECKPOINT_CHUNKS;
        pub const INSERT_CHUNK: &str = super::sqlite::INSERT_CHUNK;
        pub const DELETE_ORPHAN_CHUNK: &str = super::sqlite::DELETE_ORPHAN_CHUNK;
        pub const CHECKPOINT_VERSIONS: &str = super::sqlite::CHECKPOINT_VERSIONS;
        pub const CLOCK_MS: &str = "select (extract(epoch from clock_timestamp()) * 1000)::bigint";
        // Held to the commit: a replica taking the lease over waits for this transaction,
        // and this one sees a takeover that committed first.
        pub const LOCK_LEASE: &str =
            "select campaign_id from leases where campaign_id = $1 for update";
        pub const PRUNE_CHECKPOINTS: &str = super::sqlite::PRUNE_CHECKPOINTS;
        pub const TRAINING_RUNS: &str = concat!(
            "select id, owner, status, labels, observations, steps, loss, version, error, ",
            pg_ts!("started_at"),
            " as started_at, ",
            pg_ts!("finished_at"),
            " as finished_at, metrics from training_runs where campaign_id = $1 order by id desc limit $2"
        );
        pub const TO_TRAIN: &str = super::sqlite::TO_TRAIN;
        pub const ACQUIRE_LEASE: &str = super::sqlite::ACQUIRE_LEASE;
        pub const RENEW_LEASE: &str = super::sqlite::RENEW_LEASE;
        pub const RELEASE_LEASE: &str = super::sqlite::RELEASE_LEASE;
        pub const CLOSE_ABANDONED_RUNS: &str = "update training_runs set status = 'cancelled', error = 'abandoned: its trainer stopped without finishing', finished_at = now() where campaign_id = $1 and status = 'running'";
        pub const ABANDONED_IN_A_ROW: &str = super::sqlite::ABANDONED_IN_A_ROW;
        pub const GIVE_UP: &str = super::sqlite::GIVE_UP;
        pub const INSERT_RUN: &str = super::sqlite::INSERT_RUN;
        pub const MARK_TRAINING: &str = super::sqlite::MARK_TRAINING;
        pub const INSERT_CHECKPOINT: &str = super::sqlite::INSERT_CHECKPOINT;
        pub const MARK_READY: &str = super::sqlite::MARK_READY;
        pub const FINISH_RUN: &str = "update training_runs set status = 'succeeded', labels = $2, steps = $3, loss = $4, version = $5, metrics = $6, observations = $7, finished_at = now() where id = $1 and status = 'running'";
        pub const END_RUN: &str = "update training_runs set status = $2, error = $3, finished_at = now() where id = $1 and status = 'running'";
        pub const MARK_FAILED: &str = super::sqlite::MARK_FAILED;
        pub const RESTORE_STATUS: &str = super::sqlite::RESTORE_STATUS;
    }
}

/// Opens a write transaction (SQLite: `begin immediate`, so the write lock is taken up front
/// and two writers never deadlock upgrading a read lock) and runs `$body` with `q` naming
/// the backend's SQL module.
macro_rules! write_tx {
    ($store:expr, |$tx:ident, $q:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("begin immediate").await?;
                use sql::sqlite as $q;
                $body
            }
            Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                use sql::postgres as $q;
                $body
            }
        }
    };
}

impl Store {
    /// The campaign's observations: `(successful, all)`, failed ones included in `all`.
    /// Training is scheduled, and waited for, on `all`.
    pub async fn observation_counts(&self, campaign_id: i64) -> Result<(i64, i64), Error> {
        Ok(on_backend!(self, OBSERVATIONS, |pool, q| {
            sqlx::query_as(q).bind(campaign_id).fetch_one(pool).await?
        }))
    }

    /// Number of observations stored for the campaign, failed ones included: what a model
    /// must have been trained on to be up to date.
    pub async fn observation_count(&self, campaign_id: i64) -> Result<i64, Error> {
        Ok(self.observation_counts(campaign_id).await?.1)
    }

    /// About one in `stride` of the campaign's labelled candidates (1: all of them), at most
    /// `limit`, in insertion order: id, canonical value text, mean reward over the
    /// successful observations, and the entity (the oracle's identity of the object; `None`
    /// when no label named one).
    pub async fn labelled_data(
        &self,
        campaign_id: i64,
        stride: i64,
        limit: i64,
    ) -> Result<Vec<LabelledRow>, Error> {
        Ok(on_backend!(self, LABELLED_DATA, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(stride.max(1))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// The campaign's `limit` best labelled candidates, best first (`maximize` says which
    /// end is best), as [`labelled_data`](Self::labelled_data) gives them.
    pub async fn labelled_best(
        &self,
        campaign_id: i64,
        maximize: bool,
        limit: i64,
    ) -> Result<Vec<LabelledRow>, Error> {
        Ok(if maximize {
            on_backend!(self, LABELLED_BEST_HIGH, |pool, q| {
                sqlx::query_as(q)
                    .bind(campaign_id)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        } else {
            on_backend!(self, LABELLED_BEST_LOW, |pool, q| {
                sqlx::query_as(q)
                    .bind(campaign_id)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?
            })
        })
    }

    /// Number of the campaign's candidates with a successful observation.
    pub async fn labelled_count(&self, campaign_id: i64) -> Result<i64, Error> {
        Ok(on_backend!(self, LABELLED_COUNT, |pool, q| {
            sqlx::query_scalar(q)
                .bind(campaign_id)
                .fetch_one(pool)
                .await?
        }))
    }

    /// Canonical texts of about one in `stride` of the campaign's candidates whose every
    /// observation failed (1: all of them), at most `limit`, in insertion order: what the
    /// proxy's feasibility model learns from.
    pub async fn failed_values(
        &self,
        campaign_id: i64,
        stride: i64,
        limit: i64,
    ) -> Result<Vec<String>, Error> {
        let rows: Vec<(String,)> = on_backend!(self, FAILED_VALUES, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(stride.max(1))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// Number of the campaign's candidates whose every observation failed.
    pub async fn failed_count(&self, campaign_id: i64) -> Result<i64, Error> {
        Ok(on_backend!(self, FAILED_COUNT, |pool, q| {
            sqlx::query_scalar(q)
                .bind(campaign_id)
                .fetch_one(pool)
                .await?
        }))
    }

    /// The campaign's `model_status` and `model_error`; `NotFound` for an unknown campaign.
    pub async fn model_status(&self, campaign_id: i64) -> Result<(String, Option<String>), Error> {
        let row: Option<(String, Option<String>)> = on_backend!(self, MODEL_STATUS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| Error::not_found("campaign", campaign_id))
    }

    /// Bookkeeping of the newest checkpoint, if any.
    pub async fn newest_checkpoint(
        &self,
        campaign_id: i64,
    ) -> Result<Option<CheckpointInfo>, Error> {
        Ok(on_backend!(self, NEWEST_CHECKPOINT, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The newest checkpoint version (an index lookup, cheap enough for every round).
    pub async fn newest_checkpoint_version(&self, campaign_id: i64) -> Result<Option<i64>, Error> {
        let (version,): (Option<i64>,) = on_backend!(self, NEWEST_VERSION, |pool, q| {
            sqlx::query_as(q).bind(campaign_id).fetch_one(pool).await?
        });
        Ok(version)
    }

    /// `(campaign_id, newest checkpoint version)` of every campaign that has a checkpoint,
    /// by campaign id (for the metrics; one index scan).
    pub async fn newest_checkpoint_versions(&self) -> Result<Vec<(i64, i64)>, Error> {
        Ok(on_backend!(self, NEWEST_VERSIONS, |pool, q| {
            sqlx::query_as(q).fetch_all(pool).await?
        }))
    }

    /// The safetensors bytes of one checkpoint.
    pub async fn checkpoint_weights(
        &self,
        campaign_id: i64,
        version: i64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let row: Option<(Vec<u8>, Option<i64>)> =
            on_backend!(self, CHECKPOINT_WEIGHTS, |pool, q| {
                sqlx::query_as(q)
                    .bind(campaign_id)
                    .bind(version)
                    .fetch_optional(pool)
                    .await?
            });
        let Some((inline, run_id)) = row else {
            return Ok(None);
        };
        let Some(run_id) = run_id else {
            // Written before checkpoints were chunked.
            return Ok(Some(inline));
        };
        let chunks: Vec<(Vec<u8>,)> = on_backend!(self, CHECKPOINT_CHUNKS, |pool, q| {
            sqlx::query_as(q).bind(run_id).fetch_all(pool).await?
        });
        // Missing chunks give bytes that do not parse: the caller falls back to an older
        // version, as for any checkpoint that does not load.
        Ok(Some(
            chunks.into_iter().flat_map(|(bytes,)| bytes).collect(),
        ))
    }

    /// The database's clock in milliseconds since the Unix epoch: the one clock every
    /// replica shares, so lease times compare on it, not on each machine's own.
    pub async fn clock_ms(&self) -> Result<i64, Error> {
        let (now,): (i64,) = on_backend!(self, CLOCK_MS, |pool, q| {
            sqlx::query_as(q).fetch_one(pool).await?
        });
        Ok(now)
    }

    /// The campaign's stored checkpoint versions, newest first, at most `limit`.
    pub async fn checkpoint_versions(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<i64>, Error> {
        let rows: Vec<(i64,)> = on_backend!(self, CHECKPOINT_VERSIONS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    /// The campaign's training runs, newest first, at most `limit`.
    pub async fn training_runs(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<TrainingRunRow>, Error> {
        let mut runs: Vec<TrainingRunRow> = on_backend!(self, TRAINING_RUNS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        for run in &mut runs {
            run.proxy = run
                .metrics
                .as_deref()
                .and_then(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .and_then(|m| m.get("proxy").cloned())
                .filter(|p| !p.is_null());
        }
        Ok(runs)
    }

    /// Status, newest checkpoint and run history of the campaign's model; `NotFound` for an
    /// unknown campaign.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn model_overview(&self, campaign_id: i64) -> Result<ModelOverview, Error> {
        let (status, error) = self.model_status(campaign_id).await?;
        let newest = self.newest_checkpoint(campaign_id).await?;
        let history = self.training_runs(campaign_id, HISTORY_LIMIT).await?;
        // Both backends write the same fixed-width RFC 3339 form, so text order is time order.
        let updated_at = history
            .first()
            .map(|r| {
                r.finished_at
                    .clone()
                    .unwrap_or_else(|| r.started_at.clone())
            })
            .into_iter()
            .chain(newest.as_ref().map(|c| c.created_at.clone()))
            .max();
        Ok(ModelOverview {
            version: newest.as_ref().map_or(0, |c| c.version),
            error: if status == "failed" { error } else { None },
            status,
            trained_on_labels: newest.as_ref().map_or(0, |c| c.trained_on_labels),
            trained_on_observations: newest.as_ref().map_or(0, |c| c.trained_on_observations),
            steps: newest.as_ref().map_or(0, |c| c.steps),
            loss: newest.as_ref().and_then(|c| c.loss),
            // The quality of the newest checkpoint's proxy is its run's.
            proxy: newest.as_ref().and_then(|c| {
                history
                    .iter()
                    .find(|r| r.version == Some(c.version))
                    .and_then(|r| r.proxy.clone())
            }),
            updated_at,
            history,
        })
    }

    /// Campaigns that are not `failed` and have observations (failed ones included) that
    /// their newest checkpoint was not trained on.
    pub async fn campaigns_to_train(&self) -> Result<Vec<i64>, Error> {
        let rows: Vec<(i64,)> = on_backend!(self, TO_TRAIN, |pool, q| {
            sqlx::query_as(q).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Takes the campaign's training lease for `owner` until `now_ms + ttl_ms` (Unix ms)
    /// when nobody holds it, it expired, or `owner` already holds it. Returns the lease with
    /// its new fencing token, or `None` while another owner's lease is live.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id, owner = owner))]
    pub async fn acquire_lease(
        &self,
        campaign_id: i64,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Option<Lease>, Error> {
        let row: Option<(i64,)> = on_backend!(self, ACQUIRE_LEASE, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(owner)
                .bind(now_ms.saturating_add(ttl_ms))
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(token,)| Lease {
            campaign_id,
            owner: owner.to_string(),
            token,
        }))
    }

    /// Extends a held lease to `expires_at_ms`. `false` means the lease is lost: another
    /// owner took it (the token moved on), and the work under it must stop.
    pub async fn renew_lease(&self, lease: &Lease, expires_at_ms: i64) -> Result<bool, Error> {
        let done = on_backend!(self, RENEW_LEASE, |pool, q| {
            sqlx::query(q)
                .bind(lease.campaign_id)
                .bind(&lease.owner)
                .bind(lease.token)
                .bind(expires_at_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }

    /// Gives a lease up (expires it; a lease already taken over is left alone).
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), Error> {
        on_backend!(self, RELEASE_LEASE, |pool, q| {
            sqlx::query(q)
                .bind(lease.campaign_id)
                .bind(&lease.owner)
                .bind(lease.token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(())
    }

    /// Records the start of a run under `lease` on `counts`: closes runs a dead trainer left
    /// `running`, inserts the `running` row and marks the campaign `training`; returns the
    /// run id. Nothing is written when the lease was lost meanwhile. When `max_abandoned`
    /// runs in a row died with their trainer (the process crashed training this campaign),
    /// the campaign is marked `failed` instead, so that a restart does not crash again.
    #[tracing::instrument(skip_all, fields(campaign_id = lease.campaign_id))]
    pub async fn begin_training_run(
        &self,
        lease: &Lease,
        counts: RunCounts,
        max_abandoned: i64,
        now_ms: i64,
    ) -> Result<RunStart, Error> {
        write_tx!(self, |tx, q| {
            sqlx::query(q::CLOSE_ABANDONED_RUNS)
                .bind(lease.campaign_id)
                .execute(&mut *tx)
                .await?;
            let (abandoned,): (i64,) = sqlx::query_as(q::ABANDONED_IN_A_ROW)
                .bind(lease.campaign_id)
                .fetch_one(&mut *tx)
                .await?;
            if abandoned >= max_abandoned {
                let reason = format!(
                    "training stopped the server {abandoned} times in a row without finishing (out of memory, say); the campaign is not trained again"
                );
                sqlx::query(q::GIVE_UP)
                    .bind(lease.campaign_id)
                    .bind(&reason)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(RunStart::GaveUp(reason));
            }
            let run: Option<(i64,)> = sqlx::query_as(q::INSERT_RUN)
                .bind(lease.campaign_id)
                .bind(&lease.owner)
                .bind(lease.token)
                .bind(counts.labels)
                .bind(now_ms)
                .bind(counts.observations)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((run_id,)) = run else {
                tx.rollback().await?;
                return Ok(RunStart::LeaseLost);
            };
            sqlx::query(q::MARK_TRAINING)
                .bind(lease.campaign_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(RunStart::Started(run_id))
        })
    }

    /// Stores a finished run's checkpoint as version `previous + 1`, marks the campaign
    /// `ready` and the run `succeeded`, and deletes the versions beyond the newest
    /// `keep_versions`, in one transaction, only while `lease` is still held at `now_ms`.
    /// The weights go in first, in chunks outside that transaction, so that on SQLite the
    /// write lock is never held while a large checkpoint is written. Returns the version,
    /// or `None` (nothing made current; the staged chunks are deleted later) when the lease
    /// was lost.
    #[tracing::instrument(skip_all, fields(campaign_id = lease.campaign_id, run_id = run_id))]
    pub async fn commit_checkpoint(
        &self,
        lease: &Lease,
        run_id: i64,
        checkpoint: &NewCheckpoint<'_>,
        now_ms: i64,
    ) -> Result<Option<i64>, Error> {
        self.stage_checkpoint(run_id, checkpoint.weights).await?;
        let committed = self
            .commit_staged_checkpoint(lease, run_id, checkpoint, now_ms)
            .await?;
        // Pruned versions and runs that never committed leave chunks behind; each goes in
        // its own statement, so the write lock is again held only briefly.
        self.delete_orphan_chunks(lease.campaign_id).await?;
        Ok(committed)
    }

    /// Writes the weights of `run_id`'s checkpoint in chunks of [`CHECKPOINT_CHUNK_BYTES`],
    /// one statement (and on SQLite one short hold of the write lock) each.
    async fn stage_checkpoint(&self, run_id: i64, weights: &[u8]) -> Result<(), Error> {
        for (seq, chunk) in weights.chunks(CHECKPOINT_CHUNK_BYTES).enumerate() {
            let seq = i64::try_from(seq).unwrap_or(i64::MAX);
            on_backend!(self, INSERT_CHUNK, |pool, q| {
                sqlx::query(q)
                    .bind(run_id)
                    .bind(seq)
                    .bind(chunk)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
        }
        Ok(())
    }

    /// Deletes the campaign's chunks that no checkpoint holds, one per statement.
    async fn delete_orphan_chunks(&self, campaign_id: i64) -> Result<(), Error> {
        loop {
            let deleted = on_backend!(self, DELETE_ORPHAN_CHUNK, |pool, q| {
                sqlx::query(q)
                    .bind(campaign_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            if deleted == 0 {
                return Ok(());
            }
        }
    }

    /// The small transaction that makes the staged weights of `run_id` the campaign's
    /// newest checkpoint, fenced by the lease.
    async fn commit_staged_checkpoint(
        &self,
        lease: &Lease,
        run_id: i64,
        checkpoint: &NewCheckpoint<'_>,
        now_ms: i64,
    ) -> Result<Option<i64>, Error> {
        write_tx!(self, |tx, q| {
            sqlx::query(q::LOCK_LEASE)
                .bind(lease.campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
            let inserted: Option<(i64,)> = sqlx::query_as(q::INSERT_CHECKPOINT)
                .bind(lease.campaign_id)
                .bind(&lease.owner)
                .bind(lease.token)
                .bind(now_ms)
                .bind(&[] as &[u8])
                .bind(checkpoint.trained_on_labels)
                .bind(checkpoint.total_steps)
                .bind(checkpoint.loss)
                .bind(checkpoint.metrics)
                .bind(checkpoint.trained_on_observations)
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((version,)) = inserted else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query(q::MARK_READY)
                .bind(lease.campaign_id)
                .execute(&mut *tx)
                .await?;
            let finished = sqlx::query(q::FINISH_RUN)
                .bind(run_id)
                .bind(checkpoint.trained_on_labels)
                .bind(checkpoint.run_steps)
                .bind(checkpoint.loss)
                .bind(version)
                .bind(checkpoint.metrics)
                .bind(checkpoint.trained_on_observations)
                .execute(&mut *tx)
                .await?;
            // A run someone already closed (as abandoned) stays closed, and its checkpoint
            // is not written.
            if finished.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // Rounds record the version they came from, never its weights: older
            // checkpoints are only a fallback, and a few of them are enough.
            sqlx::query(q::PRUNE_CHECKPOINTS)
                .bind(lease.campaign_id)
                .bind(version - checkpoint.keep_versions.max(1))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(version))
        })
    }

    /// Ends a run that wrote no checkpoint. `Failed`: the campaign becomes `failed` with
    /// `reason`; `Cancelled`: it goes back to `ready` or `untrained`. The campaign is left
    /// alone while another owner holds a live lease on it (that owner's status wins).
    #[tracing::instrument(skip_all, fields(campaign_id = lease.campaign_id, run_id = run_id))]
    pub async fn end_training_run(
        &self,
        lease: &Lease,
        run_id: i64,
        end: RunEnd,
        reason: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        let status = match end {
            RunEnd::Failed => "failed",
            RunEnd::Cancelled => "cancelled",
        };
        write_tx!(self, |tx, q| {
            sqlx::query(q::LOCK_LEASE)
                .bind(lease.campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(q::END_RUN)
                .bind(run_id)
                .bind(status)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            let campaign = match end {
                RunEnd::Failed => sqlx::query(q::MARK_FAILED),
                RunEnd::Cancelled => sqlx::query(q::RESTORE_STATUS),
            };
            let campaign = campaign
                .bind(lease.campaign_id)
                .bind(&lease.owner)
                .bind(lease.token)
                .bind(now_ms);
            match end {
                RunEnd::Failed => campaign.bind(reason).execute(&mut *tx).await?,
                RunEnd::Cancelled => campaign.execute(&mut *tx).await?,
            };
            tx.commit().await?;
            Ok::<(), Error>(())
        })?;
        // Chunks a refused checkpoint of this run staged.
        self.delete_orphan_chunks(lease.campaign_id).await
    }
}

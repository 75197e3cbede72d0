//! Rounds and candidates: creating a round with its candidates in one transaction, reading
//! rounds back with their labels, abandoning, listing candidates, campaign statistics.
//!
//! Concurrency: the first statement of a round transaction bumps `campaigns.round_seq`,
//! which takes SQLite's write lock (`begin immediate`) or PostgreSQL's row lock on the
//! campaign, so the rounds of one campaign are created one at a time; `unique (campaign_id,
//! value)` makes sure no two rounds ever share a candidate whatever the timing.

use super::{Pool, Store};
use crate::error::Error;
use crate::gfn::Source;
use std::collections::BTreeMap;

/// Most rounds [`Store::recent_round_tallies`] and [`Store::recent_round_outcomes`] read:
/// the window of per-round figures in `GET /campaigns/{id}/model`. With batches of at most
/// 10,000 this bounds the outcome rows at 500,000.
pub const ROUND_FIGURES_LIMIT: i64 = 50;

/// The key of [`RoundTally::sources`] for candidates proposed before provenance was
/// recorded.
pub const UNKNOWN_SOURCE: &str = "unknown";

/// Outcome of [`Store::insert_round`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundInsert {
    Created(i64),
    /// The key was already used in the campaign: that round.
    Existing(i64),
    /// Concurrent rounds took some of the values first, and the draft asked to
    /// [`OnTaken::RollBack`]: nothing was written.
    Taken,
}

/// What [`Store::insert_round`] does when the campaign already holds some of a draft's values
/// (rounds drawing at the same moment took them first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTaken {
    /// Write nothing and answer [`RoundInsert::Taken`], so the caller can draw again: a round
    /// is committed once, whole, and never grows after a client could have seen it.
    RollBack,
    /// Commit the round with the values that are still free (a short batch): the last try.
    CommitShort,
}

/// A round to create: its candidates' values in order of preference, at most `batch_size` of
/// them taken.
#[derive(Debug, Clone, Copy)]
pub struct RoundDraft<'a> {
    pub campaign_id: i64,
    /// The client's idempotency key, if any.
    pub key: Option<&'a str>,
    pub model_version: i64,
    pub batch_size: i64,
    /// The draw ran out of values the campaign does not hold.
    pub exhausted: bool,
    pub values: &'a [ProposedValue],
    pub on_taken: OnTaken,
}

/// A round's own columns.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoundRow {
    pub id: i64,
    pub campaign_id: i64,
    pub number: i64,
    pub key: Option<String>,
    pub model_version: i64,
    pub batch_size: i64,
    pub exhausted: bool,
    pub created_at: String,
}

/// A candidate with its aggregates.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateRow {
    pub id: i64,
    pub campaign_id: i64,
    /// Canonical JSON text of the value.
    pub value: String,
    pub round_id: Option<i64>,
    pub round_number: Option<i64>,
    pub status: String,
    pub n_success: i64,
    pub n_failed: i64,
    pub mean_reward: Option<f64>,
    pub created_at: String,
    /// The proxy's mean and standard deviation when a round proposed the candidate; only
    /// the round queries read them.
    #[sqlx(default)]
    pub proxy_mean: Option<f64>,
    #[sqlx(default)]
    pub proxy_std: Option<f64>,
    /// How the candidate was made: a [`Source`] text, `imported`, or null when it was
    /// proposed before provenance was recorded.
    #[sqlx(default)]
    pub source: Option<String>,
}

/// A value a round proposes: canonical text, the proxy's mean and standard deviation for it
/// when a proxy scored it, and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposedValue {
    pub value: String,
    pub proxy: Option<(f64, f64)>,
    pub source: Source,
}

/// `[[value, mean, std, source], ...]`, the JSON array the candidate inserts read.
fn proposed_json<'a>(values: impl Iterator<Item = &'a ProposedValue>) -> String {
    let rows: Vec<serde_json::Value> = values
        .map(|v| {
            let (mean, std) = v.proxy.map_or((None, None), |(m, s)| (Some(m), Some(s)));
            serde_json::json!([v.value, mean, std, v.source.as_str()])
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// One stored label.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LabelRow {
    pub candidate_id: i64,
    pub reward: Option<f64>,
    pub failed: bool,
    pub error: Option<String>,
    pub key: Option<String>,
    pub metadata: Option<String>,
    pub created_at: String,
}

/// One round of the figures window, its candidates counted (see
/// [`Store::recent_round_tallies`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundTally {
    pub number: i64,
    /// The checkpoint the round drew from; 0: the uniform policy.
    pub model_version: i64,
    /// Candidates the round holds.
    pub proposed: i64,
    /// Of those, candidates with a successful observation.
    pub labelled: i64,
    /// Of those, candidates with only failed observations.
    pub failed: i64,
    /// Candidates by source text ([`UNKNOWN_SOURCE`] for those proposed before provenance
    /// was recorded); sources the round did not use are absent.
    pub sources: BTreeMap<String, i64>,
}

/// A row of [`sql`]'s `ROUND_TALLIES`: one (round, source) group.
#[derive(Debug, Clone, sqlx::FromRow)]
struct TallyRow {
    number: i64,
    model_version: i64,
    source: Option<String>,
    proposed: i64,
    labelled: i64,
    failed: i64,
}

/// A proposal of a recent round that the proxy scored and the oracle has measured
/// successfully: what the proxy predicted when the round proposed it, and what came back.
#[derive(Debug, Clone, Copy, PartialEq, sqlx::FromRow)]
pub struct ProposalOutcome {
    pub round_number: i64,
    /// The proxy's mean, oracle units.
    pub proxy_mean: f64,
    /// The proxy's standard deviation, oracle units.
    pub proxy_std: f64,
    /// Mean of the candidate's successful observations.
    pub mean_reward: f64,
}

/// Filter of the candidate listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateStatus {
    Pending,
    Labelled,
    Failed,
    Abandoned,
}

impl CandidateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Labelled => "labelled",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }
}

/// A row's place in a candidate page's order: a keyset page continues just after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PagePosition {
    /// The row's mean reward in an order by reward (`None`: unmeasured, in the tail);
    /// ignored in creation order.
    pub mean_reward: Option<f64>,
    pub id: i64,
}

/// Where a candidate page starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PageStart {
    /// After skipping this many rows of the order.
    Offset(i64),
    /// Just after this row: the order's index is entered at it, so a page deep in a large
    /// campaign costs what the first one does (an offset walks every row it skips).
    After(PagePosition),
}

/// The order of a candidate page; ties in mean reward go oldest first, and unmeasured
/// candidates come after every measured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOrder {
    /// Oldest first.
    Created,
    /// Greatest mean reward first.
    HighestReward,
    /// Smallest mean reward first.
    LowestReward,
}

impl PageOrder {
    /// Best mean reward first for a campaign that maximises (`maximize`) or minimises.
    pub fn best_first(maximize: bool) -> Self {
        if maximize {
            Self::HighestReward
        } else {
            Self::LowestReward
        }
    }

    /// Whether rows are placed by their mean reward.
    pub fn by_reward(self) -> bool {
        self != Self::Created
    }
}

/// Which rows a page of a campaign's candidates (or objects) holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageQuery {
    /// Only candidates of this status; `None`: all.
    pub status: Option<CandidateStatus>,
    pub order: PageOrder,
    /// Rows at most.
    pub limit: i64,
    pub start: PageStart,
}

impl PageQuery {
    /// The campaign's `limit` best labelled candidates, best first.
    pub fn best_labelled(maximize: bool, limit: i64) -> Self {
        Self {
            status: Some(CandidateStatus::Labelled),
            order: PageOrder::best_first(maximize),
            limit,
            start: PageStart::Offset(0),
        }
    }
}

/// Counts for `GET /campaigns/{id}`.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct Stats {
    #[sqlx(rename = "candidate_count")]
    pub candidates: i64,
    #[sqlx(rename = "labelled_count")]
    pub labelled: i64,
    #[sqlx(rename = "failed_count")]
    pub failed: i64,
    #[sqlx(rename = "pending_count")]
    pub pending: i64,
    #[sqlx(rename = "abandoned_count")]
    pub abandoned: i64,
    #[sqlx(rename = "round_count")]
    pub rounds: i64,
    /// Distinct objects among the labelled candidates (see `store::campaigns`).
    #[sqlx(rename = "object_count")]
    pub objects: i64,
}

mod sql {
    /// A candidate's mean reward: the expression of the `candidates_reward` index, word for
    /// word, so that the queries that order or compare by it can walk that index.
    macro_rules! mean {
        () => {
            "(case when c.n_success > 0 then c.reward_sum / c.n_success end)"
        };
    }

    /// A candidate page's columns and rows before its order: `$1` the campaign, `$2` a
    /// status or null for all.
    macro_rules! sqlite_page {
        () => {
            concat!(
                "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, ",
                mean!(),
                " as mean_reward, c.created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2 is null or c.status = $2)"
            )
        };
    }

    /// [`sqlite_page`] for PostgreSQL.
    macro_rules! postgres_page {
        () => {
            concat!(
                "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, ",
                mean!(),
                " as mean_reward, ",
                pg_ts!("c.created_at"),
                " as created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2::text is null or c.status = $2)"
            )
        };
    }

    /// The measured rows after a cursor `($4, $5)` (mean reward, id) in an order by mean
    /// reward, `$3` of them: the cursor's ties with a greater id, then the means past it
    /// (`$cmp`, in `$order`). Two bounded index ranges instead of one condition with `or`,
    /// which neither backend can seek with; each part reads at most `$3` rows. The order
    /// by id inside a tie is the opposite of the index's direction when the lowest mean
    /// comes first: the backends sort each tie group, which is small. The unmeasured rows,
    /// which come after all of these, are read by `AFTER_UNMEASURED` when these run out.
    macro_rules! reward_after {
        ($page:ident, $cmp:literal, $order:literal, $outer:literal) => {
            concat!(
                "select * from (",
                $page!(),
                " and ",
                mean!(),
                " = $4 and c.id > $5 order by c.id limit $3) tie union all select * from (",
                $page!(),
                " and ",
                mean!(),
                $cmp,
                "$4 order by ",
                mean!(),
                $order,
                ", c.id limit $3) past order by mean_reward ",
                $outer,
                ", id limit $3"
            )
        };
    }

    pub mod sqlite {
        pub const BUMP_ROUND: &str =
            "update campaigns set round_seq = round_seq + 1 where id = $1 returning round_seq";
        pub const ROUND_BY_KEY: &str = "select id from rounds where campaign_id = $1 and key = $2";
        pub const INSERT_ROUND: &str = "insert into rounds (campaign_id, number, key, model_version, batch_size, exhausted) values ($1, $2, $3, $4, $5, $6) returning id";
        /// All values of a JSON array in one statement, in array order (ids follow it);
        /// values the campaign already has are skipped.
        pub const INSERT_CANDIDATES: &str = "insert into candidates (campaign_id, round_id, value, status, proxy_mean, proxy_std, source) select $1, $2, json_extract(j.value, '$[0]'), 'pending', json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), json_extract(j.value, '$[3]') from json_each($3) j where true order by j.key on conflict (campaign_id, value) do nothing";
        pub const ROUND: &str = "select id, campaign_id, number, key, model_version, batch_size, exhausted, created_at from rounds where id = $1";
        pub const CANDIDATES_OF_ROUND: &str = "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, c.created_at, c.proxy_mean, c.proxy_std, c.source from candidates c left join rounds r on r.id = c.round_id where c.round_id = $1 order by c.id";
        pub const LABELS_OF_ROUND: &str = "select l.candidate_id, l.reward, l.failed, l.error, l.key, l.metadata, l.created_at from labels l join candidates c on c.id = l.candidate_id where c.round_id = $1 order by l.id";
        pub const ABANDON: &str =
            "update candidates set status = 'abandoned' where round_id = $1 and status = 'pending'";
        /// `begin immediate` already holds SQLite's write lock.
        pub const LOCK_CAMPAIGN: &str = "select id from campaigns where id = $1";
        pub const COUNT_ROUND: &str = "update campaigns set round_count = round_count + 1, candidate_count = candidate_count + $2, pending_count = pending_count + $2 where id = $1";
        pub const COUNT_ABANDONED: &str = "update campaigns set pending_count = pending_count - $2, abandoned_count = abandoned_count + $2 where id = $1";
        pub const STATS: &str = "select candidate_count, labelled_count, failed_count, pending_count, abandoned_count, round_count, object_count from campaigns where id = $1";
        /// Served by the `(campaign_id, id)` index: a round reads only what is new.
        pub const VALUES_AFTER: &str =
            "select id, value from candidates where campaign_id = $1 and id > $2 order by id";
        /// Two statements rather than one with the order as a parameter: a plan made for
        /// any order must sort the whole campaign, where creation order can walk the
        /// `(campaign_id, id)` index and stop after the page.
        pub const LIST_CREATED: &str = "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, c.created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2 is null or c.status = $2) order by c.id limit $3 offset $4";
        /// Greatest mean reward first: walks the `candidates_reward` index (its expression
        /// word for word; in a descending order SQLite puts nulls last by itself).
        pub const LIST_BY_REWARD_HIGH: &str = "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, c.created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2 is null or c.status = $2) order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) desc, c.id limit $3 offset $4";
        /// Smallest mean reward first, unmeasured candidates last.
        pub const LIST_BY_REWARD_LOW: &str = "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, c.created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2 is null or c.status = $2) order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) asc nulls last, c.id limit $3 offset $4";
        /// Creation order after the candidate `$4`: a seek into `(campaign_id, id)`.
        pub const AFTER_CREATED: &str =
            concat!(sqlite_page!(), " and c.id > $4 order by c.id limit $3");
        /// Greatest mean first, after `($4, $5)`.
        pub const AFTER_REWARD_HIGH: &str = reward_after!(sqlite_page, " < ", " desc", "desc");
        /// Smallest mean first, after `($4, $5)`; no unmeasured candidate passes `>`, so
        /// SQLite's nulls-first ascending order is the order here.
        pub const AFTER_REWARD_LOW: &str = reward_after!(sqlite_page, " > ", " asc", "asc");
        /// Either direction, the unmeasured candidates after `$4`, by id: they come last,
        /// after every measured one.
        pub const AFTER_UNMEASURED: &str = concat!(
            sqlite_page!(),
            " and ",
            mean!(),
            " is null and c.id > $4 order by c.id limit $3"
        );
        /// The newest `$2` rounds (the `(campaign_id, number)` key serves the order), then
        /// their candidates grouped by source: at most five rows a round. A round without
        /// candidates gives one row with `proposed` 0.
        pub const ROUND_TALLIES: &str = "select r.number, r.model_version, c.source, count(c.id) as proposed, coalesce(sum(case when c.status = 'labelled' then 1 else 0 end), 0) as labelled, coalesce(sum(case when c.status = 'failed' then 1 else 0 end), 0) as failed from (select id, number, model_version from rounds where campaign_id = $1 order by number desc limit $2) r left join candidates c on c.round_id = r.id group by r.id, r.number, r.model_version, c.source order by r.number desc, c.source";
        /// Proposals of the newest `$2` rounds with a prediction and a successful
        /// observation.
        pub const ROUND_OUTCOMES: &str = "select r.number as round_number, c.proxy_mean, c.proxy_std, c.reward_sum / c.n_success as mean_reward from (select id, number from rounds where campaign_id = $1 order by number desc limit $2) r join candidates c on c.round_id = r.id where c.n_success > 0 and c.proxy_mean is not null and c.proxy_std is not null order by r.number desc, c.id";
    }

    pub mod postgres {
        pub const BUMP_ROUND: &str = super::sqlite::BUMP_ROUND;
        pub const ROUND_BY_KEY: &str = super::sqlite::ROUND_BY_KEY;
        pub const INSERT_ROUND: &str = super::sqlite::INSERT_ROUND;
        pub const INSERT_CANDIDATES: &str = "insert into candidates (campaign_id, round_id, value, status, proxy_mean, proxy_std, source) select $1, $2, x.e ->> 0, 'pending', (x.e ->> 1)::float8, (x.e ->> 2)::float8, x.e ->> 3 from jsonb_array_elements($3::jsonb) with ordinality as x(e, i) order by x.i on conflict (campaign_id, value) do nothing";
        pub const ROUND: &str = concat!(
            "select id, campaign_id, number, key, model_version, batch_size, exhausted, ",
            pg_ts!("created_at"),
            " as created_at from rounds where id = $1"
        );
        pub const CANDIDATES_OF_ROUND: &str = concat!(
            "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, ",
            pg_ts!("c.created_at"),
            " as created_at, c.proxy_mean, c.proxy_std, c.source from candidates c left join rounds r on r.id = c.round_id where c.round_id = $1 order by c.id"
        );
        pub const LABELS_OF_ROUND: &str = concat!(
            "select l.candidate_id, l.reward, l.failed, l.error, l.key, l.metadata, ",
            pg_ts!("l.created_at"),
            " as created_at from labels l join candidates c on c.id = l.candidate_id where c.round_id = $1 order by l.id"
        );
        pub const ABANDON: &str = super::sqlite::ABANDON;
        /// Label batches, rounds and abandonments of a campaign change its counts one at a
        /// time: each takes the campaign's row first.
        pub const LOCK_CAMPAIGN: &str = "select id from campaigns where id = $1 for update";
        pub const COUNT_ROUND: &str = super::sqlite::COUNT_ROUND;
        pub const COUNT_ABANDONED: &str = super::sqlite::COUNT_ABANDONED;
        pub const STATS: &str = super::sqlite::STATS;
        pub const VALUES_AFTER: &str = super::sqlite::VALUES_AFTER;
        pub const LIST_CREATED: &str = concat!(
            "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, ",
            pg_ts!("c.created_at"),
            " as created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2::text is null or c.status = $2) order by c.id limit $3 offset $4"
        );
        pub const LIST_BY_REWARD_HIGH: &str = concat!(
            "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, ",
            pg_ts!("c.created_at"),
            " as created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2::text is null or c.status = $2) order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) desc nulls last, c.id limit $3 offset $4"
        );
        pub const LIST_BY_REWARD_LOW: &str = concat!(
            "select c.id, c.campaign_id, c.value, c.round_id, r.number as round_number, c.status, c.n_success, c.n_failed, case when c.n_success > 0 then c.reward_sum / c.n_success end as mean_reward, ",
            pg_ts!("c.created_at"),
            " as created_at, c.source from candidates c left join rounds r on r.id = c.round_id where c.campaign_id = $1 and ($2::text is null or c.status = $2) order by (case when c.n_success > 0 then c.reward_sum / c.n_success end) asc nulls last, c.id limit $3 offset $4"
        );
        pub const AFTER_CREATED: &str =
            concat!(postgres_page!(), " and c.id > $4 order by c.id limit $3");
        pub const AFTER_REWARD_HIGH: &str =
            reward_after!(postgres_page, " < ", " desc nulls last", "desc");
        /// `nulls first` though no unmeasured candidate passes `>`: it is the order of the
        /// reward index read backwards, which PostgreSQL then only sorts within ties
        /// (written `nulls last`, it sorts the whole campaign).
        pub const AFTER_REWARD_LOW: &str =
            reward_after!(postgres_page, " > ", " asc nulls first", "asc");
        pub const AFTER_UNMEASURED: &str = concat!(
            postgres_page!(),
            " and ",
            mean!(),
            " is null and c.id > $4 order by c.id limit $3"
        );
        pub const ROUND_TALLIES: &str = super::sqlite::ROUND_TALLIES;
        pub const ROUND_OUTCOMES: &str = super::sqlite::ROUND_OUTCOMES;
    }
}

/// Inserts a round and as many of the draft's values as fit in its batch, skipping any value
/// the campaign already has (or rolling back when the draft says so). Generic over the
/// transaction type of each backend.
macro_rules! insert_round_tx {
    ($tx:ident, $sql:path, $draft:expr) => {{
        use $sql as q;
        let draft: &RoundDraft<'_> = $draft;
        let bumped: Option<(i64,)> = sqlx::query_as(q::BUMP_ROUND)
            .bind(draft.campaign_id)
            .fetch_optional(&mut *$tx)
            .await?;
        let Some((number,)) = bumped else {
            return Err(Error::not_found("campaign", draft.campaign_id));
        };
        if let Some(key) = draft.key {
            let existing: Option<(i64,)> = sqlx::query_as(q::ROUND_BY_KEY)
                .bind(draft.campaign_id)
                .bind(key)
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some((id,)) = existing {
                return Ok(RoundInsert::Existing(id));
            }
        }
        let (round_id,): (i64,) = sqlx::query_as(q::INSERT_ROUND)
            .bind(draft.campaign_id)
            .bind(number)
            .bind(draft.key)
            .bind(draft.model_version)
            .bind(draft.batch_size)
            .bind(draft.exhausted)
            .fetch_one(&mut *$tx)
            .await?;
        let wanted = draft.values.len().min(draft.batch_size.max(0) as usize);
        let inserted = sqlx::query(q::INSERT_CANDIDATES)
            .bind(draft.campaign_id)
            .bind(round_id)
            .bind(proposed_json(draft.values[..wanted].iter()))
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if inserted < wanted as u64 && draft.on_taken == OnTaken::RollBack {
            $tx.rollback().await?;
            return Ok(RoundInsert::Taken);
        }
        sqlx::query(q::COUNT_ROUND)
            .bind(draft.campaign_id)
            .bind(inserted as i64)
            .execute(&mut *$tx)
            .await?;
        $tx.commit().await?;
        Ok(RoundInsert::Created(round_id))
    }};
}

/// Marks a round's pending candidates abandoned and moves them between its campaign's
/// counts, in one transaction.
macro_rules! abandon_round_tx {
    ($tx:ident, $sql:path, $round:expr) => {{
        use $sql as q;
        let round: &RoundRow = $round;
        sqlx::query(q::LOCK_CAMPAIGN)
            .bind(round.campaign_id)
            .execute(&mut *$tx)
            .await?;
        let abandoned = sqlx::query(q::ABANDON)
            .bind(round.id)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        sqlx::query(q::COUNT_ABANDONED)
            .bind(round.campaign_id)
            .bind(abandoned as i64)
            .execute(&mut *$tx)
            .await?;
        $tx.commit().await?;
        Ok(abandoned)
    }};
}

impl Store {
    /// Creates round `number = previous + 1` of the draft's campaign with the first
    /// `batch_size` of its values (in order of preference) that the campaign does not have
    /// yet, in one transaction. A `key` already used in the campaign returns that round
    /// instead; nothing is written.
    #[tracing::instrument(skip_all, fields(campaign_id = draft.campaign_id))]
    pub async fn insert_round(&self, draft: &RoundDraft<'_>) -> Result<RoundInsert, Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                insert_round_tx!(tx, sql::sqlite, draft)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert_round_tx!(tx, sql::postgres, draft)
            }
        }
    }

    /// The round that used `key` in the campaign, if any.
    pub async fn round_id_by_key(&self, campaign_id: i64, key: &str) -> Result<Option<i64>, Error> {
        let row: Option<(i64,)> = on_backend!(self, ROUND_BY_KEY, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(id,)| id))
    }

    /// A round's columns, or `NotFound`.
    pub async fn round(&self, id: i64) -> Result<RoundRow, Error> {
        let row: Option<RoundRow> = on_backend!(self, ROUND, |pool, q| {
            sqlx::query_as(q).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| Error::not_found("round", id))
    }

    /// The candidates of a round, in proposal order.
    pub async fn round_candidates(&self, round_id: i64) -> Result<Vec<CandidateRow>, Error> {
        Ok(on_backend!(self, CANDIDATES_OF_ROUND, |pool, q| {
            sqlx::query_as(q).bind(round_id).fetch_all(pool).await?
        }))
    }

    /// The labels of a round's candidates, oldest first.
    pub async fn round_labels(&self, round_id: i64) -> Result<Vec<LabelRow>, Error> {
        Ok(on_backend!(self, LABELS_OF_ROUND, |pool, q| {
            sqlx::query_as(q).bind(round_id).fetch_all(pool).await?
        }))
    }

    /// Marks the round's still-pending candidates abandoned.
    #[tracing::instrument(skip_all, fields(round_id = round_id))]
    pub async fn abandon_round(&self, round_id: i64) -> Result<u64, Error> {
        let round = self.round(round_id).await?;
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                abandon_round_tx!(tx, sql::sqlite, &round)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                abandon_round_tx!(tx, sql::postgres, &round)
            }
        }
    }

    /// Canonical texts of the values the campaign has proposed or imported as candidates with
    /// an id above `after_id`, with their ids, oldest first. Candidates are never deleted and
    /// one campaign's inserts commit one at a time in id order, so reading on from the
    /// highest id seen misses nothing.
    pub async fn campaign_values_after(
        &self,
        campaign_id: i64,
        after_id: i64,
    ) -> Result<Vec<(i64, String)>, Error> {
        Ok(on_backend!(self, VALUES_AFTER, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(after_id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A page of the campaign's candidates from an offset into the order, which walks every
    /// row it skips.
    async fn candidates_from_offset(
        &self,
        campaign_id: i64,
        status: Option<CandidateStatus>,
        order: PageOrder,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<CandidateRow>, Error> {
        let status = status.map(CandidateStatus::as_str);
        let store = self;
        // One page statement or another, the same binds.
        macro_rules! page {
            ($name:ident) => {
                on_backend!(store, $name, |pool, q| {
                    sqlx::query_as(q)
                        .bind(campaign_id)
                        .bind(status)
                        .bind(limit)
                        .bind(offset)
                        .fetch_all(pool)
                        .await?
                })
            };
        }
        Ok(match order {
            PageOrder::Created => page!(LIST_CREATED),
            PageOrder::HighestReward => page!(LIST_BY_REWARD_HIGH),
            PageOrder::LowestReward => page!(LIST_BY_REWARD_LOW),
        })
    }

    /// A page of the campaign's candidates: from an offset, or just after a position of the
    /// same order.
    pub async fn candidate_page(
        &self,
        campaign_id: i64,
        query: &PageQuery,
    ) -> Result<Vec<CandidateRow>, Error> {
        let PageQuery {
            status,
            order,
            limit,
            start,
        } = *query;
        let after = match (start, order) {
            (PageStart::After(after), _) => after,
            // The first page by reward is a page after a position before every row (no
            // mean is infinite: rewards are bounded), so that it enters the reward index
            // as later pages do. By offset, PostgreSQL sorts a whole campaign that
            // minimises: its `asc nulls last` is no direction of the index.
            (PageStart::Offset(0), PageOrder::HighestReward) => PagePosition {
                mean_reward: Some(f64::INFINITY),
                id: 0,
            },
            (PageStart::Offset(0), PageOrder::LowestReward) => PagePosition {
                mean_reward: Some(f64::NEG_INFINITY),
                id: 0,
            },
            (PageStart::Offset(offset), _) => {
                return self
                    .candidates_from_offset(campaign_id, status, order, limit, offset)
                    .await
            }
        };
        // A labelled candidate is one with a successful observation: never unmeasured.
        let measured_only = status == Some(CandidateStatus::Labelled);
        let status = status.map(CandidateStatus::as_str);
        let store = self;
        // A statement that takes a row count and an id, or a count, a mean and an id.
        macro_rules! after {
            ($name:ident, $limit:expr, $id:expr $(, $mean:expr)?) => {
                on_backend!(store, $name, |pool, q| {
                    sqlx::query_as(q)
                        .bind(campaign_id)
                        .bind(status)
                        .bind($limit)
                        $(.bind($mean))?
                        .bind($id)
                        .fetch_all(pool)
                        .await?
                })
            };
        }
        let mut rows: Vec<CandidateRow> = match (order, after.mean_reward) {
            (PageOrder::Created, _) => return Ok(after!(AFTER_CREATED, limit, after.id)),
            (_, None) => return Ok(after!(AFTER_UNMEASURED, limit, after.id)),
            (PageOrder::HighestReward, Some(mean)) => {
                after!(AFTER_REWARD_HIGH, limit, after.id, mean)
            }
            (PageOrder::LowestReward, Some(mean)) => {
                after!(AFTER_REWARD_LOW, limit, after.id, mean)
            }
        };
        // The unmeasured rows follow the measured ones: read only once those run out, so
        // that a page among the measured never walks them (a status filter may refuse every
        // one). Ids start at 1: after 0 is the first. A candidate measured for the first time
        // between the two statements is missed by this page, as by a later one.
        let missing = limit.saturating_sub(i64::try_from(rows.len()).unwrap_or(i64::MAX));
        if missing > 0 && !measured_only {
            rows.extend(after!(AFTER_UNMEASURED, missing, 0i64));
        }
        Ok(rows)
    }

    /// The newest [`ROUND_FIGURES_LIMIT`] rounds at most (`limit`), newest first, each with
    /// its candidates counted by status and by source.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn recent_round_tallies(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<RoundTally>, Error> {
        let rows: Vec<TallyRow> = on_backend!(self, ROUND_TALLIES, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        // Rows come newest round first, each round's groups together.
        let mut tallies: Vec<RoundTally> = Vec::new();
        for row in rows {
            if tallies.last().map(|t| t.number) != Some(row.number) {
                tallies.push(RoundTally {
                    number: row.number,
                    model_version: row.model_version,
                    ..RoundTally::default()
                });
            }
            let Some(tally) = tallies.last_mut() else {
                continue;
            };
            tally.proposed += row.proposed;
            tally.labelled += row.labelled;
            tally.failed += row.failed;
            if row.proposed > 0 {
                let source = row.source.unwrap_or_else(|| UNKNOWN_SOURCE.to_string());
                *tally.sources.entry(source).or_default() += row.proposed;
            }
        }
        Ok(tallies)
    }

    /// The proposals of the newest `limit` rounds that carry the proxy's prediction and
    /// have a successful observation, newest round first: the raw material of the
    /// prospective figures. At most `limit` times the largest batch rows.
    #[tracing::instrument(skip_all, fields(campaign_id = campaign_id))]
    pub async fn recent_round_outcomes(
        &self,
        campaign_id: i64,
        limit: i64,
    ) -> Result<Vec<ProposalOutcome>, Error> {
        Ok(on_backend!(self, ROUND_OUTCOMES, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Candidate counts by status, the number of rounds and of labelled objects: the
    /// campaign's own counts, which every write that changes them keeps up to date.
    pub async fn stats(&self, campaign_id: i64) -> Result<Stats, Error> {
        let row: Option<Stats> = on_backend!(self, STATS, |pool, q| {
            sqlx::query_as(q)
                .bind(campaign_id)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| Error::not_found("campaign", campaign_id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PageOrder, PagePosition, PageQuery, PageStart, Pool, Store};
    use super::{CandidateStatus, OnTaken, ProposedValue, RoundDraft, RoundInsert};
    use crate::domain::campaign::NewCampaign;
    use crate::domain::label::{LabelTarget, NewLabel};
    use crate::gfn::Source;

    /// SQLite, and PostgreSQL when `FLOWLAB_TEST_POSTGRES_URL` names one.
    fn urls() -> Vec<String> {
        let mut urls = vec!["sqlite::memory:".to_string()];
        urls.extend(std::env::var("FLOWLAB_TEST_POSTGRES_URL").ok());
        urls
    }

    fn label(
        campaign_id: i64,
        value: &str,
        reward: Option<f64>,
        entity: Option<String>,
    ) -> NewLabel {
        NewLabel {
            target: LabelTarget::Value {
                campaign_id,
                value: value.to_string(),
            },
            reward,
            failed: reward.is_none(),
            error: None,
            key: None,
            metadata: None,
            entity,
        }
    }

    /// A campaign whose candidates have every status, many ties in mean reward (rewards of
    /// 0, 0.5 and 1, some averaged over two observations into another 0.5), unmeasured
    /// candidates (pending, failed, abandoned), imported ones and shared entities.
    async fn populated(store: &Store, maximize: bool) -> i64 {
        let body = serde_json::json!({
            "name": "paged",
            "space": {"type": "grid", "dims": 2, "size": 8},
            "reward": {"maximize": maximize},
        });
        let campaign: NewCampaign = serde_json::from_value(body).expect("body");
        let spec = campaign.validate().expect("valid");
        let id = store.insert_campaign(&spec).await.expect("stored").id;
        let mut rounds = Vec::new();
        for values in [0..30, 30..40] {
            let values: Vec<ProposedValue> = values
                .map(|i| ProposedValue {
                    value: format!("v{i}"),
                    proxy: None,
                    source: Source::Uniform,
                })
                .collect();
            let draft = RoundDraft {
                campaign_id: id,
                key: None,
                model_version: 0,
                batch_size: values.len() as i64,
                exhausted: false,
                values: &values,
                on_taken: OnTaken::CommitShort,
            };
            match store.insert_round(&draft).await.expect("round") {
                RoundInsert::Created(round) => rounds.push(round),
                other => panic!("{other:?}"),
            }
        }
        store.abandon_round(rounds[1]).await.expect("abandons");
        let entity = |i: usize| (i % 5 < 2).then(|| format!("e{}", i % 4));
        let mut labels = Vec::new();
        for i in 0..30 {
            let value = format!("v{i}");
            match i % 6 {
                0 => {}
                1 => labels.push(label(id, &value, None, entity(i))),
                _ => {
                    let reward = [0.0, 0.5, 1.0][i % 3];
                    labels.push(label(id, &value, Some(reward), entity(i)));
                    if i % 4 == 0 {
                        labels.push(label(id, &value, Some(1.0 - reward), entity(i)));
                    }
                }
            }
        }
        for i in 0..10 {
            let reward = (i % 4 != 3).then(|| [0.0, 0.5, 1.0][i % 3]);
            labels.push(label(id, &format!("w{i}"), reward, entity(i + 30)));
        }
        store.insert_labels(&labels).await.expect("labels");
        id
    }

    /// `(id, mean reward)` of each row of a candidate page, or of an object page.
    async fn page(
        store: &Store,
        campaign_id: i64,
        (status, order, objects): (Option<CandidateStatus>, PageOrder, bool),
        limit: i64,
        start: PageStart,
    ) -> Vec<(i64, Option<f64>)> {
        let query = PageQuery {
            status,
            order,
            limit,
            start,
        };
        if objects {
            let rows = store
                .list_objects(campaign_id, &query)
                .await
                .expect("objects");
            return rows
                .into_iter()
                .map(|o| (o.candidate.id, o.candidate.mean_reward))
                .collect();
        }
        let rows = store
            .candidate_page(campaign_id, &query)
            .await
            .expect("candidates");
        rows.into_iter().map(|c| (c.id, c.mean_reward)).collect()
    }

    /// Walking a listing page by page, each page after the last row of the one before,
    /// gives exactly the rows of one big offset page in the same order: for both orders,
    /// both directions, every status filter, candidates and objects, and page sizes that
    /// end inside runs of equal means and inside the unmeasured tail. The big page is read
    /// from offset 1 (after the first row), since a first page by reward is itself a page
    /// after a position.
    #[tokio::test]
    async fn pages_after_a_cursor_walk_the_listing_as_one_page_does() {
        let statuses = [
            None,
            Some(CandidateStatus::Labelled),
            Some(CandidateStatus::Failed),
            Some(CandidateStatus::Pending),
            Some(CandidateStatus::Abandoned),
        ];
        for url in urls() {
            let store = Store::connect(&url).await.expect("connects");
            store.migrate().await.expect("migrates");
            for maximize in [true, false] {
                let id = populated(&store, maximize).await;
                for (order, objects, status) in
                    [PageOrder::Created, PageOrder::best_first(maximize)]
                        .into_iter()
                        .flat_map(|r| [false, true].map(|o| (r, o)))
                        .flat_map(|(r, o)| statuses.map(|s| (r, o, s)))
                {
                    let listing = (status, order, objects);
                    let mut whole = page(&store, id, listing, 1, PageStart::Offset(0)).await;
                    assert_eq!(whole.len(), 1, "{url}: {listing:?}");
                    whole.extend(page(&store, id, listing, 1000, PageStart::Offset(1)).await);
                    for size in [1, 2, 3, 7] {
                        let mut walked =
                            page(&store, id, listing, size, PageStart::Offset(0)).await;
                        while let Some(&(last, mean)) = walked.last() {
                            let after = PagePosition {
                                mean_reward: mean.filter(|_| order.by_reward()),
                                id: last,
                            };
                            let next =
                                page(&store, id, listing, size, PageStart::After(after)).await;
                            assert!(next.len() <= size as usize);
                            // A cursor that repeats rows would walk for ever.
                            if next.is_empty() || walked.len() > whole.len() {
                                break;
                            }
                            walked.extend(next);
                        }
                        assert_eq!(walked, whole, "{url}: {listing:?} by {size}");
                    }
                }
                // The walks above crossed ties and the unmeasured tail.
                let all = (None, PageOrder::best_first(maximize), false);
                let whole = page(&store, id, all, 1000, PageStart::Offset(1)).await;
                assert_eq!(whole.len(), 49, "{url}");
                let means: Vec<f64> = whole.iter().filter_map(|r| r.1).collect();
                assert!(
                    means.windows(2).filter(|w| w[0] == w[1]).count() > 5,
                    "{url}"
                );
                assert!(whole.iter().filter(|r| r.1.is_none()).count() > 10, "{url}");
                if maximize {
                    assert!(means.windows(2).all(|w| w[0] >= w[1]), "{url}: {means:?}");
                } else {
                    assert!(means.windows(2).all(|w| w[0] <= w[1]), "{url}: {means:?}");
                }
            }
        }
    }

    /// On SQLite, every part of a page after a cursor is a seek into an index of the
    /// campaign's candidates: no statement scans the table, so a deep page reads what a
    /// first one does.
    #[tokio::test]
    async fn pages_after_a_cursor_seek_an_index_on_sqlite() {
        use super::sql::sqlite::{
            AFTER_CREATED, AFTER_REWARD_HIGH, AFTER_REWARD_LOW, AFTER_UNMEASURED,
        };
        let store = Store::connect("sqlite::memory:").await.expect("connects");
        store.migrate().await.expect("migrates");
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("SQLite")
        };
        for (statement, with_mean) in [
            (AFTER_CREATED, false),
            (AFTER_REWARD_HIGH, true),
            (AFTER_REWARD_LOW, true),
            (AFTER_UNMEASURED, false),
        ] {
            let explain = format!("explain query plan {statement}");
            let query = sqlx::query_as(&explain)
                .bind(1i64)
                .bind(None::<&str>)
                .bind(100i64);
            let query = if with_mean { query.bind(0.5f64) } else { query };
            let plan: Vec<(i64, i64, i64, String)> =
                query.bind(7i64).fetch_all(pool).await.expect("a plan");
            let searches: Vec<&str> = plan
                .iter()
                .map(|row| row.3.as_str())
                .filter(|detail| detail.contains(" c "))
                .collect();
            assert!(!searches.is_empty(), "{plan:?}");
            for detail in searches {
                assert!(
                    detail.starts_with("SEARCH c USING INDEX candidates_reward (campaign_id=?")
                        || detail.starts_with(
                            "SEARCH c USING INDEX candidates_campaign_id (campaign_id=? AND id>?)"
                        ),
                    "{statement}: {detail}"
                );
            }
        }
    }
}

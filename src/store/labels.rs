//! Labels: the all-or-nothing batch insert behind `POST /labels`.
//!
//! A batch of up to 10,000 labels is a handful of set-based statements, each taking the
//! whole batch as one JSON array parameter (`json_each` on SQLite, `jsonb_to_recordset` on
//! PostgreSQL), so its cost does not grow with round trips per item. Steps, in one
//! transaction: resolve candidate ids; import values never proposed; look up label keys
//! already stored (same reward: a duplicate, another reward: 409) and the entities of the
//! candidates (another entity than the one a candidate has: 409); insert the new labels;
//! add the batch's counts and sums to every touched candidate, and give candidates without
//! an entity the one their labels name.

use super::{Pool, Store};
use crate::domain::label::{LabelTarget, LabelsOutcome, NewLabel};
use crate::error::Error;
use serde_json::json;
use std::collections::HashMap;

mod sql {
    pub mod sqlite {
        /// `begin immediate` already holds SQLite's write lock.
        pub const LOCK_CAMPAIGNS: &str =
            "select id from campaigns where id in (select value from json_each($1)) order by id";
        pub const CANDIDATES_BY_ID: &str =
            "select id, campaign_id from candidates where id in (select value from json_each($1))";
        /// Returns a row per candidate it inserted (values already there are skipped).
        pub const IMPORT: &str = "insert into candidates (campaign_id, value, status) select json_extract(j.value, '$.c'), json_extract(j.value, '$.v'), 'pending' from json_each($1) j where true on conflict (campaign_id, value) do nothing returning campaign_id";
        pub const CANDIDATES_BY_VALUE: &str = "select c.id, c.campaign_id, c.value from candidates c join json_each($1) j on c.campaign_id = json_extract(j.value, '$.c') and c.value = json_extract(j.value, '$.v')";
        pub const KEYS: &str = "select l.campaign_id, l.key, l.candidate_id, l.reward, l.failed from labels l join json_each($1) j on l.campaign_id = json_extract(j.value, '$.c') and l.key = json_extract(j.value, '$.k')";
        pub const ENTITIES: &str = "select id, entity from candidates where entity is not null and id in (select value from json_each($1))";
        pub const INSERT: &str = "insert into labels (campaign_id, candidate_id, reward, failed, error, key, metadata, entity) select json_extract(j.value, '$.c'), json_extract(j.value, '$.id'), json_extract(j.value, '$.r'), json_extract(j.value, '$.f'), json_extract(j.value, '$.e'), json_extract(j.value, '$.k'), json_extract(j.value, '$.m'), json_extract(j.value, '$.n') from json_each($1) j";
        /// `[{"id", "n"}]`: candidates and the entity their labels name, set only where the
        /// candidate has none (the batch was checked against the ones it has).
        pub const SET_ENTITIES: &str = "update candidates set entity = json_extract(j.value, '$.n') from json_each($1) j where candidates.id = json_extract(j.value, '$.id') and candidates.entity is null";
        /// Adds the batch's counts and sums to each touched candidate and sets its status, in
        /// one statement, from the same JSON rows the labels were inserted from.
        pub const AGGREGATE: &str = "update candidates set n_success = candidates.n_success + a.s, n_failed = candidates.n_failed + a.f, reward_sum = candidates.reward_sum + a.r, status = case when candidates.n_success + a.s > 0 then 'labelled' when candidates.n_failed + a.f > 0 then 'failed' else candidates.status end from (select json_extract(j.value, '$.id') as id, sum(json_extract(j.value, '$.f') = 0) as s, sum(json_extract(j.value, '$.f') = 1) as f, coalesce(sum(json_extract(j.value, '$.r')), 0) as r from json_each($1) j group by 1) as a where candidates.id = a.id";
        /// Adds the batch's counts to each touched campaign's totals.
        pub const COUNT_CAMPAIGNS: &str = "update campaigns set observations = campaigns.observations + a.n, successes = campaigns.successes + a.s from (select json_extract(j.value, '$.c') as c, count(*) as n, sum(json_extract(j.value, '$.f') = 0) as s from json_each($1) j group by 1) as a where campaigns.id = a.c";
        /// Per campaign, the statuses of the given candidates, and how many of them are
        /// labelled objects of their own (no entity).
        pub const STATUS_TALLY: &str = "select campaign_id, sum(status = 'pending'), sum(status = 'labelled'), sum(status = 'failed'), sum(status = 'abandoned'), sum(status = 'labelled' and entity is null) from candidates where id in (select value from json_each($1)) group by campaign_id";
        /// Per campaign, how many of the given `{"c", "n"}` entities have a labelled candidate
        /// (each is one object); served by the `(campaign_id, entity)` index.
        pub const ENTITY_TALLY: &str = "select e.c, count(*) from (select distinct json_extract(j.value, '$.c') as c, json_extract(j.value, '$.n') as n from json_each($1) j) e where exists (select 1 from candidates c where c.campaign_id = e.c and c.entity = e.n and c.status = 'labelled') group by e.c";
        /// Adds `{"c", "new", "p", "l", "f", "a", "o"}` changes to each campaign's counts.
        pub const COUNT_STATUSES: &str = "update campaigns set candidate_count = candidate_count + json_extract(j.value, '$.new'), pending_count = pending_count + json_extract(j.value, '$.p'), labelled_count = labelled_count + json_extract(j.value, '$.l'), failed_count = failed_count + json_extract(j.value, '$.f'), abandoned_count = abandoned_count + json_extract(j.value, '$.a'), object_count = object_count + json_extract(j.value, '$.o') from json_each($1) j where campaigns.id = json_extract(j.value, '$.c')";
    }

    pub mod postgres {
        /// Label batches and rounds of a campaign write one at a time (in campaign order), so
        /// no two transactions wait on each other's uncommitted candidates or keys.
        pub const LOCK_CAMPAIGNS: &str = "select id from campaigns where id in (select (jsonb_array_elements_text($1::jsonb))::bigint) order by id for update";
        pub const CANDIDATES_BY_ID: &str = "select id, campaign_id from candidates where id in (select (jsonb_array_elements_text($1::jsonb))::bigint)";
        /// Returns a row per candidate it inserted (values already there are skipped).
        pub const IMPORT: &str = "insert into candidates (campaign_id, value, status) select x.c, x.v, 'pending' from jsonb_to_recordset($1::jsonb) as x(c bigint, v text) on conflict (campaign_id, value) do nothing returning campaign_id";
        pub const CANDIDATES_BY_VALUE: &str = "select c.id, c.campaign_id, c.value from candidates c join jsonb_to_recordset($1::jsonb) as x(c bigint, v text) on c.campaign_id = x.c and c.value = x.v";
        pub const KEYS: &str = "select l.campaign_id, l.key, l.candidate_id, l.reward, l.failed from labels l join jsonb_to_recordset($1::jsonb) as x(c bigint, k text) on l.campaign_id = x.c and l.key = x.k";
        pub const ENTITIES: &str = "select id, entity from candidates where entity is not null and id in (select (jsonb_array_elements_text($1::jsonb))::bigint)";
        pub const INSERT: &str = "insert into labels (campaign_id, candidate_id, reward, failed, error, key, metadata, entity) select x.c, x.id, x.r, x.f, x.e, x.k, x.m, x.n from jsonb_to_recordset($1::jsonb) as x(c bigint, id bigint, r double precision, f boolean, e text, k text, m text, n text)";
        pub const SET_ENTITIES: &str = "update candidates set entity = x.n from jsonb_to_recordset($1::jsonb) as x(id bigint, n text) where candidates.id = x.id and candidates.entity is null";
        /// Adds the batch's counts and sums to each touched candidate and sets its status, in
        /// one statement, from the same JSON rows the labels were inserted from.
        pub const AGGREGATE: &str = "update candidates set n_success = candidates.n_success + a.s, n_failed = candidates.n_failed + a.f, reward_sum = candidates.reward_sum + a.r, status = case when candidates.n_success + a.s > 0 then 'labelled' when candidates.n_failed + a.f > 0 then 'failed' else candidates.status end from (select x.id, count(*) filter (where not x.f) as s, count(*) filter (where x.f) as f, coalesce(sum(x.r) filter (where not x.f), 0) as r from jsonb_to_recordset($1::jsonb) as x(id bigint, f boolean, r double precision) group by x.id) as a where candidates.id = a.id";
        /// Adds the batch's counts to each touched campaign's totals.
        pub const COUNT_CAMPAIGNS: &str = "update campaigns set observations = campaigns.observations + a.n, successes = campaigns.successes + a.s from (select x.c, count(*) as n, count(*) filter (where not x.f) as s from jsonb_to_recordset($1::jsonb) as x(c bigint, f boolean) group by x.c) as a where campaigns.id = a.c";
        pub const STATUS_TALLY: &str = "select campaign_id, count(*) filter (where status = 'pending'), count(*) filter (where status = 'labelled'), count(*) filter (where status = 'failed'), count(*) filter (where status = 'abandoned'), count(*) filter (where status = 'labelled' and entity is null) from candidates where id in (select (jsonb_array_elements_text($1::jsonb))::bigint) group by campaign_id";
        pub const ENTITY_TALLY: &str = "select e.c, count(*) from (select distinct x.c, x.n from jsonb_to_recordset($1::jsonb) as x(c bigint, n text)) e where exists (select 1 from candidates c where c.campaign_id = e.c and c.entity = e.n and c.status = 'labelled') group by e.c";
        pub const COUNT_STATUSES: &str = "update campaigns set candidate_count = candidate_count + x.new, pending_count = pending_count + x.p, labelled_count = labelled_count + x.l, failed_count = failed_count + x.f, abandoned_count = abandoned_count + x.a, object_count = object_count + x.o from jsonb_to_recordset($1::jsonb) as x(c bigint, new bigint, p bigint, l bigint, f bigint, a bigint, o bigint) where campaigns.id = x.c";
    }
}

/// A stored or pending label's identity for duplicate detection: candidate, reward, failed.
type KeyRecord = (i64, Option<f64>, bool);

/// One campaign's counts over the candidates a label batch touches.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    pending: i64,
    labelled: i64,
    failed: i64,
    abandoned: i64,
    /// Labelled candidates without an entity: each is an object of its own.
    own_objects: i64,
    /// Entities of the touched candidates that have a labelled candidate.
    entity_objects: i64,
}

/// Counts the touched candidates per campaign, by status and as objects. Run before and
/// after a batch's updates, the difference is what the batch changed in each campaign's
/// counts: objects are groups of candidates by entity, and every group a batch can change
/// holds a touched candidate.
macro_rules! tally_tx {
    ($tx:ident, $q:ident, $ids:expr, $entities:expr) => {{
        let mut tally: HashMap<i64, Tally> = HashMap::new();
        let rows: Vec<(i64, i64, i64, i64, i64, i64)> = sqlx::query_as($q::STATUS_TALLY)
            .bind($ids)
            .fetch_all(&mut *$tx)
            .await?;
        for (campaign_id, pending, labelled, failed, abandoned, own_objects) in rows {
            let t = tally.entry(campaign_id).or_default();
            (t.pending, t.labelled, t.failed, t.abandoned) = (pending, labelled, failed, abandoned);
            t.own_objects = own_objects;
        }
        let rows: Vec<(i64, i64)> = sqlx::query_as($q::ENTITY_TALLY)
            .bind($entities)
            .fetch_all(&mut *$tx)
            .await?;
        for (campaign_id, objects) in rows {
            tally.entry(campaign_id).or_default().entity_objects = objects;
        }
        tally
    }};
}

/// The changes to each campaign's counts as `COUNT_STATUSES` takes them: candidates the
/// batch imported (pending at `before`, so new to the campaign) plus what its updates moved.
fn count_changes(
    before: &HashMap<i64, Tally>,
    after: &HashMap<i64, Tally>,
    imported: &HashMap<i64, i64>,
) -> Vec<serde_json::Value> {
    let mut campaigns: Vec<i64> = before.keys().chain(after.keys()).copied().collect();
    campaigns.sort_unstable();
    campaigns.dedup();
    let mut changes = Vec::new();
    for c in campaigns {
        let b = before.get(&c).copied().unwrap_or_default();
        let a = after.get(&c).copied().unwrap_or_default();
        let new = imported.get(&c).copied().unwrap_or_default();
        let objects = |t: Tally| t.own_objects + t.entity_objects;
        let change = json!({
            "c": c,
            "new": new,
            "p": new + a.pending - b.pending,
            "l": a.labelled - b.labelled,
            "f": a.failed - b.failed,
            "a": a.abandoned - b.abandoned,
            "o": objects(a) - objects(b),
        });
        if new != 0 || a != b {
            changes.push(change);
        }
    }
    changes
}

/// The transaction body, the same on both backends but for the SQL module.
macro_rules! insert_labels_tx {
    ($tx:ident, $sql:path, $labels:expr) => {{
        use $sql as q;
        let labels: &[NewLabel] = $labels;
        // 1. Candidates named by id.
        let ids: Vec<i64> = labels
            .iter()
            .filter_map(|l| match l.target {
                LabelTarget::Candidate(id) => Some(id),
                LabelTarget::Value { .. } => None,
            })
            .collect();
        let mut campaign_of: HashMap<i64, i64> = HashMap::new();
        if !ids.is_empty() {
            let rows: Vec<(i64, i64)> =
                sqlx::query_as(q::CANDIDATES_BY_ID).bind(json!(ids).to_string()).fetch_all(&mut *$tx).await?;
            campaign_of.extend(rows);
        }
        for (index, l) in labels.iter().enumerate() {
            if let LabelTarget::Candidate(id) = l.target {
                if !campaign_of.contains_key(&id) {
                    return Err(Error::ItemNotFound { index, what: "candidate", id: id.to_string() });
                }
            }
        }
        let mut campaigns: Vec<i64> = campaign_of
            .values()
            .copied()
            .chain(labels.iter().filter_map(|l| match l.target {
                LabelTarget::Value { campaign_id, .. } => Some(campaign_id),
                LabelTarget::Candidate(_) => None,
            }))
            .collect();
        campaigns.sort_unstable();
        campaigns.dedup();
        sqlx::query(q::LOCK_CAMPAIGNS).bind(json!(campaigns).to_string()).execute(&mut *$tx).await?;
        // 2. Values: import the ones the campaign never proposed, then resolve all.
        let values: Vec<serde_json::Value> = labels
            .iter()
            .filter_map(|l| match &l.target {
                LabelTarget::Value { campaign_id, value } => Some(json!({ "c": campaign_id, "v": value })),
                LabelTarget::Candidate(_) => None,
            })
            .collect();
        let mut id_of_value: HashMap<(i64, String), i64> = HashMap::new();
        let mut imported: HashMap<i64, i64> = HashMap::new();
        if !values.is_empty() {
            let values = serde_json::Value::Array(values).to_string();
            let inserted: Vec<(i64,)> = sqlx::query_as(q::IMPORT).bind(&values).fetch_all(&mut *$tx).await?;
            for (campaign_id,) in inserted {
                *imported.entry(campaign_id).or_default() += 1;
            }
            let rows: Vec<(i64, i64, String)> =
                sqlx::query_as(q::CANDIDATES_BY_VALUE).bind(&values).fetch_all(&mut *$tx).await?;
            for (id, campaign_id, value) in rows {
                campaign_of.insert(id, campaign_id);
                id_of_value.insert((campaign_id, value), id);
            }
        }
        // 3. Keys already stored, then duplicates within the batch itself.
        let keyed: Vec<serde_json::Value> = labels
            .iter()
            .filter_map(|l| {
                let campaign = match &l.target {
                    LabelTarget::Candidate(id) => campaign_of.get(id).copied(),
                    LabelTarget::Value { campaign_id, .. } => Some(*campaign_id),
                };
                Some(json!({ "c": campaign?, "k": l.key.as_ref()? }))
            })
            .collect();
        let mut known: HashMap<(i64, String), KeyRecord> = HashMap::new();
        if !keyed.is_empty() {
            let rows: Vec<(i64, String, i64, Option<f64>, bool)> = sqlx::query_as(q::KEYS)
                .bind(serde_json::Value::Array(keyed).to_string())
                .fetch_all(&mut *$tx)
                .await?;
            known.extend(rows.into_iter().map(|(c, k, id, r, f)| ((c, k), (id, r, f))));
        }
        // Every label's candidate id, in batch order.
        let mut candidates = Vec::with_capacity(labels.len());
        for (index, l) in labels.iter().enumerate() {
            candidates.push(match &l.target {
                LabelTarget::Candidate(id) => *id,
                LabelTarget::Value { campaign_id, value } => {
                    match id_of_value.get(&(*campaign_id, value.clone())) {
                        Some(id) => *id,
                        None => return Err(Error::Storage(format!("label {index}: imported candidate vanished").into())),
                    }
                }
            });
        }
        // 3b. Entities the candidates already have: a candidate is one object, so a label
        // naming another entity for it is refused, like a key stored with another result.
        // (All of them, not only those named: the campaign's object count needs them.)
        let mut touched = candidates.clone();
        touched.sort_unstable();
        touched.dedup();
        let touched = json!(touched).to_string();
        let mut entity_of: HashMap<i64, String> = HashMap::new();
        let rows: Vec<(i64, String)> =
            sqlx::query_as(q::ENTITIES).bind(&touched).fetch_all(&mut *$tx).await?;
        entity_of.extend(rows);
        let mut new_entities = Vec::new();
        for (index, (l, candidate)) in labels.iter().zip(&candidates).enumerate() {
            let Some(entity) = &l.entity else { continue };
            match entity_of.get(candidate) {
                Some(known) if known != entity => {
                    return Err(Error::Conflict(format!(
                        "label {index}: candidate {candidate} is already entity {known:?}, not {entity:?}"
                    )))
                }
                Some(_) => {}
                None => {
                    entity_of.insert(*candidate, entity.clone());
                    new_entities.push(json!({ "id": candidate, "n": entity }));
                }
            }
        }
        let mut rows = Vec::with_capacity(labels.len());
        let mut duplicates = 0usize;
        for (index, (l, &candidate)) in labels.iter().zip(&candidates).enumerate() {
            let campaign = campaign_of.get(&candidate).copied().unwrap_or_default();
            if let Some(key) = &l.key {
                let record = (candidate, l.reward, l.failed);
                match known.get(&(campaign, key.clone())) {
                    Some(stored) if *stored == record => {
                        duplicates += 1;
                        continue;
                    }
                    // The same key on another candidate is another measurement under a
                    // reused key, not a retry: refused, so nothing is silently dropped.
                    Some((other, _, _)) if *other != candidate => {
                        return Err(Error::Conflict(format!(
                            "label {index}: key {key:?} is already stored for candidate {other}"
                        )))
                    }
                    Some(_) => {
                        return Err(Error::Conflict(format!(
                            "label {index}: key {key:?} is already stored with another result"
                        )))
                    }
                    None => {
                        known.insert((campaign, key.clone()), record);
                    }
                }
            }
            rows.push(json!({
                "c": campaign, "id": candidate, "r": l.reward, "f": l.failed,
                "e": l.error, "k": l.key, "m": l.metadata, "n": l.entity,
            }));
        }
        // 4 and 5. Insert, then add what the new labels bring to their candidates, and
        // what that changes in their campaigns' counts (by status and of objects).
        let accepted = rows.len();
        let entities = json!(entity_of
            .iter()
            .map(|(id, n)| json!({ "c": campaign_of.get(id).copied().unwrap_or_default(), "n": n }))
            .collect::<Vec<_>>())
        .to_string();
        let before = tally_tx!($tx, q, &touched, &entities);
        if accepted > 0 {
            let rows = serde_json::Value::Array(rows).to_string();
            sqlx::query(q::INSERT).bind(&rows).execute(&mut *$tx).await?;
            sqlx::query(q::AGGREGATE).bind(&rows).execute(&mut *$tx).await?;
            sqlx::query(q::COUNT_CAMPAIGNS)
                .bind(&rows)
                .execute(&mut *$tx)
                .await?;
        }
        if !new_entities.is_empty() {
            sqlx::query(q::SET_ENTITIES)
                .bind(serde_json::Value::Array(new_entities).to_string())
                .execute(&mut *$tx)
                .await?;
        }
        let after = tally_tx!($tx, q, &touched, &entities);
        let changes = count_changes(&before, &after, &imported);
        if !changes.is_empty() {
            sqlx::query(q::COUNT_STATUSES)
                .bind(serde_json::Value::Array(changes).to_string())
                .execute(&mut *$tx)
                .await?;
        }
        $tx.commit().await?;
        Ok((LabelsOutcome { accepted, duplicates }, campaigns))
    }};
}

impl Store {
    /// Stores a validated batch of labels, all or nothing. Returns the counts and the
    /// campaigns the batch touched (for the trainer).
    #[tracing::instrument(skip_all, fields(labels = labels.len()))]
    pub async fn insert_labels(
        &self,
        labels: &[NewLabel],
    ) -> Result<(LabelsOutcome, Vec<i64>), Error> {
        // Two writers racing on the same new key: the loser's insert violates the unique
        // key; a second attempt sees the winner's label and counts a duplicate or a conflict.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.insert_labels_once(labels).await {
                Err(Error::Conflict(_)) if attempt < 3 => continue,
                other => return other,
            }
        }
    }

    async fn insert_labels_once(
        &self,
        labels: &[NewLabel],
    ) -> Result<(LabelsOutcome, Vec<i64>), Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("begin immediate").await?;
                insert_labels_tx!(tx, sql::sqlite, labels)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert_labels_tx!(tx, sql::postgres, labels)
            }
        }
    }
}

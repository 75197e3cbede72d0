//! flowlab's side of the loop, as a lab would run it over HTTP: `POST /rounds` (waiting for
//! the model trained on every label so far), the oracle on each candidate, `POST /labels`
//! with the scores and the failures.

use super::metrics::Evaluation;
use crate::bench::oracles::Task;
use crate::kit::ApiClient;
use anyhow::{bail, Context};
use serde_json::{json, Value};

/// How often a round answered 503 (a `wait_for_model` timeout) is asked again, with the same
/// key, before the loop gives up.
const ROUND_RETRIES: usize = 3;

/// The campaign settings the bench and the demo choose (each a command-line flag).
#[derive(Debug, Clone, clap::Args)]
pub struct CampaignArgs {
    /// `training.steps` of the campaign: optimisation steps per training run. The default
    /// keeps a full `bench loop` (2 tasks × 3 seeds × 9 training runs) near 10 minutes on
    /// 2 cores.
    #[arg(long = "training-steps", default_value_t = 250)]
    pub training_steps: usize,
    /// `training.batch_size` of the campaign: trajectories per step.
    #[arg(long = "training-batch-size", default_value_t = 32)]
    pub training_batch_size: usize,
    /// `model.hidden` of the campaign: width of the policy's hidden layers. Half the
    /// server's default (256): on these tasks it learns as well and trains twice as fast.
    #[arg(long, default_value = "128")]
    pub hidden: Option<usize>,
    /// More campaign settings as JSON, merged over the above into the `POST /campaigns`
    /// body (objects merge key by key), e.g. `{"reward": {"beta": 8}}`.
    #[arg(long = "campaign-json")]
    pub campaign_json: Option<String>,
    /// Threads of the embedded server's trainer.
    #[arg(long = "training-threads", default_value_t = 1)]
    pub training_threads: usize,
}

impl CampaignArgs {
    /// The `POST /campaigns` body for `task`, seeded with `seed`.
    pub fn campaign_body(&self, task: &Task, name: &str, seed: u64) -> anyhow::Result<Value> {
        self.campaign_body_with(task, name, seed, None)
    }

    /// [`campaign_body`](Self::campaign_body) with `patch` (a JSON object, e.g. a bench
    /// method's settings) merged over everything else, `--campaign-json` included, so that
    /// a method stays what its name says.
    pub fn campaign_body_with(
        &self,
        task: &Task,
        name: &str,
        seed: u64,
        patch: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut body = self.base_body(task, name, seed)?;
        if let Some(patch) = patch {
            let patch: Value =
                serde_json::from_str(patch).context("a method's campaign patch is not JSON")?;
            if !patch.is_object() {
                bail!("a method's campaign patch must be a JSON object");
            }
            merge(&mut body, patch);
        }
        Ok(body)
    }

    fn base_body(&self, task: &Task, name: &str, seed: u64) -> anyhow::Result<Value> {
        let mut body = json!({
            "name": name,
            "space": task.space_spec(),
            "training": {
                "steps": self.training_steps,
                "batch_size": self.training_batch_size,
                "seed": seed,
            },
        });
        if let Some(hidden) = self.hidden {
            body["model"] = json!({ "hidden": hidden });
        }
        if let Some(extra) = &self.campaign_json {
            let extra: Value =
                serde_json::from_str(extra).context("--campaign-json is not valid JSON")?;
            if !extra.is_object() {
                bail!("--campaign-json must be a JSON object");
            }
            merge(&mut body, extra);
        }
        Ok(body)
    }
}

/// Merges `patch` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// A round as proposed by the server.
#[derive(Debug, Clone)]
pub struct Proposal {
    /// `(candidate id, value)` in the server's order.
    pub candidates: Vec<(i64, Value)>,
    /// The server said the space ran out.
    pub exhausted: bool,
    /// Version of the model that sampled the round (0: none yet, uniform).
    pub model_version: i64,
    /// Share of the candidates the trained policy had a hand in (sources `policy`,
    /// `policy+local` and `elite+policy`): how much of the batch the GFlowNet made.
    pub policy_share: f64,
}

/// Whether the server's `source` of a candidate names a move of the trained policy.
fn policy_made(source: &Value) -> bool {
    matches!(
        source.as_str(),
        Some("policy" | "policy+local" | "elite+policy")
    )
}

/// `POST /rounds` with `wait_for_model` and the key `round-<number>` (a retry after a 503 or
/// a lost answer gets the same round back instead of a new one).
pub async fn propose(
    client: &ApiClient,
    campaign_id: i64,
    number: usize,
    batch_size: usize,
) -> anyhow::Result<Proposal> {
    let body = json!({
        "campaign_id": campaign_id,
        "batch_size": batch_size,
        "wait_for_model": true,
        "key": format!("round-{number}"),
    });
    let mut attempt = 0;
    let round = loop {
        let (status, round) = client.post("/rounds", &body).await?;
        match status {
            200 | 201 => break round,
            503 if attempt < ROUND_RETRIES => {
                attempt += 1;
                eprintln!("round {number}: the server answered 503 ({round}); asking again");
            }
            _ => bail!("POST /rounds answered {status}: {round}"),
        }
    };
    let listed = round["candidates"]
        .as_array()
        .with_context(|| format!("POST /rounds: no candidates in {round}"))?;
    let candidates = listed
        .iter()
        .map(|c| {
            let id = c["id"]
                .as_i64()
                .with_context(|| format!("POST /rounds: a candidate without id: {c}"))?;
            Ok((id, c["value"].clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let made = listed.iter().filter(|c| policy_made(&c["source"])).count();
    Ok(Proposal {
        policy_share: made as f64 / listed.len().max(1) as f64,
        candidates,
        exhausted: round["exhausted"].as_bool().unwrap_or(false),
        model_version: round["model_version"].as_i64().unwrap_or(0),
    })
}

/// Scores every proposed candidate with the task's oracle. A value the oracle cannot parse
/// means the server and the task disagree on the space: an error, not a failed assay.
pub fn score(task: &Task, proposal: &Proposal) -> anyhow::Result<Vec<Evaluation>> {
    proposal
        .candidates
        .iter()
        .map(|(id, value)| {
            let candidate = task.parse(value).map_err(|e| {
                anyhow::anyhow!("candidate {id}: {value} is not in the task's space: {e}")
            })?;
            let outcome = task.score_candidate(&candidate);
            Ok(Evaluation { candidate, outcome })
        })
        .collect()
}

/// `POST /labels` with one label per scored candidate: the score as reward, or `failed`
/// with the oracle's reason.
pub async fn post_labels(
    client: &ApiClient,
    proposal: &Proposal,
    evaluations: &[Evaluation],
) -> anyhow::Result<()> {
    let labels: Vec<Value> = proposal
        .candidates
        .iter()
        .zip(evaluations)
        .map(|((id, _), e)| outcome_label(json!({"candidate_id": id}), e, None))
        .collect();
    send_labels(client, labels).await
}

/// [`post_labels`] for the bench: with `send_entity`, each label also carries the entity the
/// oracle reported for its candidate (tasks with a many-to-one encoding only).
pub async fn post_labels_with_entities(
    client: &ApiClient,
    task: &Task,
    proposal: &Proposal,
    evaluations: &[Evaluation],
    send_entity: bool,
) -> anyhow::Result<()> {
    let labels: Vec<Value> = proposal
        .candidates
        .iter()
        .zip(evaluations)
        .map(|((id, _), e)| {
            let entity = send_entity.then(|| task.entity(&e.candidate)).flatten();
            outcome_label(json!({"candidate_id": id}), e, entity)
        })
        .collect();
    send_labels(client, labels).await
}

/// Imports measurements of values the server never proposed (`POST /labels` with
/// `campaign_id` and `value`): the bench's common initial batch.
pub async fn import_labels(
    client: &ApiClient,
    campaign_id: i64,
    task: &Task,
    evaluations: &[Evaluation],
    send_entity: bool,
) -> anyhow::Result<()> {
    let labels: Vec<Value> = evaluations
        .iter()
        .map(|e| {
            let entity = send_entity.then(|| task.entity(&e.candidate)).flatten();
            let target = json!({"campaign_id": campaign_id, "value": task.to_value(&e.candidate)});
            outcome_label(target, e, entity)
        })
        .collect();
    send_labels(client, labels).await
}

/// `target` (the candidate's id, or campaign and value) completed with the score as reward,
/// or `failed` with the oracle's reason, and the entity when there is one.
fn outcome_label(mut target: Value, e: &Evaluation, entity: Option<String>) -> Value {
    match &e.outcome {
        Ok(score) => target["reward"] = json!(score),
        Err(reason) => {
            target["failed"] = json!(true);
            target["error"] = json!(reason);
        }
    }
    if let Some(entity) = entity {
        target["entity"] = json!(entity);
    }
    target
}

/// `POST /labels` in requests of at most the server's limit each.
async fn send_labels(client: &ApiClient, labels: Vec<Value>) -> anyhow::Result<()> {
    for chunk in labels.chunks(::flowlab::domain::label::MAX_LABELS) {
        let (status, answer) = client.post("/labels", &json!({ "labels": chunk })).await?;
        if status != 200 {
            bail!("POST /labels answered {status}: {answer}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::oracles::TaskName;

    #[test]
    fn only_the_policys_sources_count_as_policy_made() {
        for made in ["policy", "policy+local", "elite+policy"] {
            assert!(policy_made(&json!(made)), "{made}");
        }
        for other in [
            json!("local"),
            json!("uniform"),
            json!("imported"),
            Value::Null,
        ] {
            assert!(!policy_made(&other), "{other}");
        }
    }

    fn args(campaign_json: Option<&str>) -> CampaignArgs {
        CampaignArgs {
            training_steps: 10,
            training_batch_size: 8,
            hidden: Some(64),
            campaign_json: campaign_json.map(str::to_string),
            training_threads: 1,
        }
    }

    #[test]
    fn campaign_json_merges_over_the_flags_key_by_key() {
        let task = Task::new(TaskName::Cocktail).expect("task");
        let body = args(Some(
            r#"{"training": {"steps": 99}, "reward": {"beta": 8}}"#,
        ))
        .campaign_body(&task, "c", 4)
        .expect("body");
        assert_eq!(
            body["training"],
            json!({"steps": 99, "batch_size": 8, "seed": 4})
        );
        assert_eq!(body["reward"], json!({"beta": 8}));
        assert_eq!(body["model"], json!({"hidden": 64}));
        assert_eq!(body["space"]["type"], "set");
        assert!(args(Some("[1]")).campaign_body(&task, "c", 0).is_err());
        assert!(args(Some("{")).campaign_body(&task, "c", 0).is_err());
    }

    #[test]
    fn a_method_patch_wins_over_campaign_json() {
        let task = Task::new(TaskName::Motif).expect("task");
        let body = args(Some(r#"{"round": {"pool": 4}, "training": {"steps": 7}}"#))
            .campaign_body_with(&task, "c", 0, Some(r#"{"round": {"pool": 1}}"#))
            .expect("body");
        assert_eq!(body["round"]["pool"], 1);
        assert_eq!(body["training"]["steps"], 7);
        assert!(args(None)
            .campaign_body_with(&task, "c", 0, Some("[]"))
            .is_err());
    }

    #[test]
    fn labels_carry_the_outcome_and_the_entity() {
        let ok = Evaluation {
            candidate: ::flowlab::gfn::State(vec![0]),
            outcome: Ok(1.5),
        };
        let failed = Evaluation {
            candidate: ::flowlab::gfn::State(vec![1]),
            outcome: Err("reactive".into()),
        };
        assert_eq!(
            outcome_label(json!({"candidate_id": 3}), &ok, Some("Me".into())),
            json!({"candidate_id": 3, "reward": 1.5, "entity": "Me"})
        );
        assert_eq!(
            outcome_label(json!({"campaign_id": 1, "value": "x"}), &failed, None),
            json!({"campaign_id": 1, "value": "x", "failed": true, "error": "reactive"})
        );
    }

    #[test]
    fn the_campaign_body_is_a_valid_campaign() {
        for name in TaskName::ALL {
            let task = Task::new(name).expect("task");
            let body = args(None).campaign_body(&task, "bench", 1).expect("body");
            let campaign: ::flowlab::domain::campaign::NewCampaign =
                serde_json::from_value(body).expect("a campaign body");
            campaign.validate().expect("a valid campaign");
        }
    }
}

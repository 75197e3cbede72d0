//! `GET /metrics`: the Prometheus text format, parsed line by line, and counts that move with
//! the requests, rounds, labels and training runs the test makes.

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// One sample of the exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A histogram bucket: its upper bound `le` and its cumulative count.
type Bucket = (f64, f64);

/// A parsed exposition: the samples and the declared type of each metric family.
struct Exposition {
    samples: Vec<Sample>,
    types: HashMap<String, String>,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `{name="value",...}` at the start of `rest`: the labels and what follows the brace.
fn parse_labels(rest: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    assert_eq!(chars.next(), Some('{'), "{line}");
    loop {
        if chars.peek() == Some(&'}') {
            chars.next();
            break;
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|&c| c != '=')).collect();
        assert!(is_label_name(&name), "bad label name {name:?} in {line}");
        assert_eq!(chars.next(), Some('='), "{line}");
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                Some('"') => break,
                Some('\n') | None => panic!("unterminated label value in {line}"),
                Some(c) => value.push(c),
            }
        }
        assert!(
            labels.insert(name.clone(), value).is_none(),
            "label {name} twice in {line}"
        );
        match chars.next() {
            Some(',') => {}
            Some('}') => break,
            other => panic!("expected , or }} but found {other:?} in {line}"),
        }
    }
    (labels, chars.collect())
}

/// Parses the text format 0.0.4, panicking on any line that breaks its grammar: HELP and
/// TYPE comments, `name{labels} value [timestamp]` samples, every sample of a declared
/// family (histograms through `_bucket` with `le`, `_sum`, `_count`).
fn parse(text: &str) -> Exposition {
    let mut samples = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(_)) => {
                    assert!(is_metric_name(name), "{line}")
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_metric_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    let of_family = |s: &Sample| {
                        s.name == name
                            || ["_bucket", "_sum", "_count"]
                                .iter()
                                .any(|suffix| s.name == format!("{name}{suffix}"))
                    };
                    assert!(!samples.iter().any(of_family), "TYPE after samples: {line}");
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "TYPE twice: {line}"
                    );
                }
                _ => {} // any other comment
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad metric name in {line}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..], line)
        } else {
            (BTreeMap::new(), line[name_end..].to_string())
        };
        let rest = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value: {line}"));
        let mut fields = rest.split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .unwrap_or_else(|| panic!("bad value in {line}"));
        if let Some(timestamp) = fields.next() {
            assert!(timestamp.parse::<i64>().is_ok(), "bad timestamp in {line}");
        }
        assert!(fields.next().is_none(), "trailing text in {line}");
        let family = match types.get(name).map(String::as_str) {
            Some("histogram") => panic!("a histogram's samples have suffixes: {line}"),
            Some(_) => name,
            None => ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
                })
                .unwrap_or_else(|| panic!("sample of an undeclared family: {line}")),
        };
        if name.ends_with("_bucket") && family != name {
            assert!(labels.contains_key("le"), "bucket without le: {line}");
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Exposition { samples, types }
}

impl Exposition {
    /// The value of the sample with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }

    /// Checks every histogram: cumulative buckets that never decrease, the `+Inf` bucket
    /// equal to `_count`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let mut series: BTreeMap<Vec<(String, String)>, Vec<Bucket>> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let le = parse_value(&s.labels["le"]).expect("le is a number");
                let key = s
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                series.entry(key).or_default().push((le, s.value));
            }
            for (key, mut buckets) in series {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                for pair in buckets.windows(2) {
                    assert!(pair[0].1 <= pair[1].1, "{family} {key:?}: {buckets:?}");
                }
                let labels: Vec<(&str, &str)> =
                    key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let count = self.get(&format!("{family}_count"), &labels);
                assert_eq!(buckets.last().map(|b| b.0), Some(f64::INFINITY));
                assert_eq!(buckets.last().map(|b| b.1), Some(count), "{family} {key:?}");
            }
        }
    }
}

async fn scrape(app: &TestApp) -> Exposition {
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let exposition = parse(&response.text().await.expect("text"));
    exposition.check_histograms();
    exposition
}

fn requests(m: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    m.value(
        "flowlab_http_requests_total",
        &[("method", method), ("route", route), ("status", status)],
    )
    .unwrap_or(0.0)
}

async fn metrics_count_requests_rounds_labels_and_training(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let fresh = scrape(&app).await;
    assert_eq!(fresh.get("flowlab_rounds_total", &[]), 0.0);
    assert_eq!(
        fresh.get("flowlab_training_runs_total", &[("outcome", "succeeded")]),
        0.0
    );

    let steps = 30;
    let id = app
        .create_campaign(
            json!({"name": "metered", "space": {"type": "grid", "dims": 2, "size": 8},
            "model": {"hidden": 16}, "training": {"steps": steps, "batch_size": 4}}),
        )
        .await;
    let (status, first) = app.round(json!({"campaign_id": id, "batch_size": 3})).await;
    assert_eq!(status, 201, "{first}");
    let keyed = json!({"campaign_id": id, "batch_size": 2, "key": "retry-me"});
    let (status, second) = app.round(keyed.clone()).await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        app.round(keyed).await.0,
        200,
        "a repeated key is no new round"
    );

    let candidates: Vec<i64> = first["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    let labels = json!({"labels": [
        {"candidate_id": candidates[0], "reward": 1.5, "key": "a"},
        {"candidate_id": candidates[1], "reward": 0.5, "key": "b"},
        {"candidate_id": candidates[2], "failed": true, "error": "assay broke"},
    ]});
    let (status, outcome) = app.post_json("/labels", &labels).await;
    assert_eq!((status, outcome["accepted"].clone()), (200, json!(3)));
    let again = json!({"labels": [{"candidate_id": candidates[0], "reward": 1.5, "key": "a"}]});
    let (status, outcome) = app.post_json("/labels", &again).await;
    assert_eq!((status, outcome["duplicates"].clone()), (200, json!(1)));

    assert_eq!(app.get("/campaigns/987654").await.0, 404);
    let round_id = first["id"].as_i64().expect("round id");
    assert_eq!(app.get(&format!("/rounds/{round_id}")).await.0, 200);
    assert_eq!(app.get("/no/such/route").await.0, 404);
    let (status, waited) = app
        .round(json!({"campaign_id": id, "batch_size": 1, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{waited}");
    let (_, model) = app.get(&format!("/campaigns/{id}/model")).await;

    let m = scrape(&app).await;
    // Requests by route template and status; raw paths never become labels.
    assert_eq!(requests(&m, "POST", "/campaigns", "201"), 1.0);
    assert_eq!(requests(&m, "POST", "/rounds", "201"), 3.0);
    assert_eq!(requests(&m, "POST", "/rounds", "200"), 1.0);
    assert_eq!(requests(&m, "POST", "/labels", "200"), 2.0);
    assert_eq!(requests(&m, "GET", "/campaigns/{id}", "404"), 1.0);
    assert_eq!(requests(&m, "GET", "/rounds/{id}", "200"), 1.0);
    assert_eq!(requests(&m, "GET", "unmatched", "404"), 1.0);
    assert_eq!(
        requests(&m, "GET", "/metrics", "200"),
        1.0,
        "the earlier scrape; this one is counted once answered"
    );
    for s in &m.samples {
        for value in s.labels.values() {
            assert!(
                !value.contains("987654") && !value.contains("/no/such"),
                "a raw path became a label: {s:?}"
            );
        }
    }
    assert_eq!(
        m.get(
            "flowlab_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/rounds")]
        ),
        4.0
    );
    assert_eq!(m.get("flowlab_http_requests_in_flight", &[]), 1.0);

    // The loop: 3 new rounds of 3 + 2 + 1 candidates, 3 labels accepted and 1 duplicate.
    assert_eq!(m.get("flowlab_rounds_total", &[]), 3.0);
    assert_eq!(m.get("flowlab_candidates_proposed_total", &[]), 6.0);
    // The same candidates by source, as the rounds reported them; every source's series
    // exists, at 0 when unused.
    let mut by_source: BTreeMap<String, f64> =
        ["uniform", "policy", "policy+local", "local", "elite+policy"]
            .into_iter()
            .map(|s| (s.to_string(), 0.0))
            .collect();
    for round in [&first, &second, &waited] {
        for c in round["candidates"].as_array().expect("candidates") {
            let source = c["source"].as_str().expect("a source").to_string();
            *by_source.get_mut(&source).expect("a known source") += 1.0;
        }
    }
    assert_eq!(by_source["uniform"], 5.0, "rounds at version 0 are uniform");
    for (source, n) in &by_source {
        assert_eq!(
            m.get(
                "flowlab_candidates_proposed_by_source_total",
                &[("source", source.as_str())]
            ),
            *n,
            "{source}"
        );
    }
    assert_eq!(
        m.get("flowlab_labels_total", &[("result", "accepted")]),
        3.0
    );
    assert_eq!(
        m.get("flowlab_labels_total", &[("result", "duplicate")]),
        1.0
    );

    // Training, against the runs the database recorded (this app is the only trainer).
    let runs = model["history"].as_array().expect("history");
    let succeeded: Vec<&Value> = runs.iter().filter(|r| r["status"] == "succeeded").collect();
    assert!(!succeeded.is_empty(), "{model}");
    assert_eq!(succeeded.len(), runs.len(), "{model}");
    let n = succeeded.len() as f64;
    assert_eq!(
        m.get("flowlab_training_runs_total", &[("outcome", "succeeded")]),
        n
    );
    assert_eq!(
        m.get("flowlab_training_runs_total", &[("outcome", "failed")]),
        0.0
    );
    assert_eq!(
        m.get(
            "flowlab_training_run_duration_seconds_count",
            &[("outcome", "succeeded")]
        ),
        n
    );
    let run_steps: i64 = succeeded
        .iter()
        .map(|r| r["steps"].as_i64().expect("steps"))
        .sum();
    assert_eq!(run_steps, steps * succeeded.len() as i64);
    assert_eq!(m.get("flowlab_training_steps_total", &[]), run_steps as f64);
    let campaign = id.to_string();
    assert_eq!(
        m.get("flowlab_model_version", &[("campaign_id", &campaign)]),
        model["version"].as_f64().expect("version")
    );
    assert_eq!(
        m.get("flowlab_training_loss", &[("campaign_id", &campaign)]),
        model["loss"].as_f64().expect("loss")
    );

    // Each app has its own registry: another server in this process counted none of it.
    let other = TestApp::spawn(backend).await;
    let o = scrape(&other).await;
    assert_eq!(o.get("flowlab_rounds_total", &[]), 0.0);
    assert_eq!(requests(&o, "POST", "/rounds", "201"), 0.0);
    assert_eq!(
        o.value("flowlab_model_version", &[("campaign_id", &campaign)]),
        None
    );
}
on_both_backends!(
    metrics_count_requests_rounds_labels_and_training,
    metrics_count_requests_rounds_labels_and_training
);

#[test]
fn the_parser_rejects_what_breaks_the_grammar() {
    let good = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"b\\\"c\"} 2\n";
    assert_eq!(parse(good).get("x_total", &[("a", "b\"c")]), 2.0);
    for bad in [
        "x_total 1\n",                              // undeclared family
        "# TYPE x counter\nx{a=\"b\" 1\n",          // unterminated labels
        "# TYPE x counter\nx one\n",                // not a number
        "# TYPE x counter\n9x 1\n",                 // bad name
        "# TYPE h histogram\nh_bucket 1\n",         // bucket without le
        "# TYPE x counter\nx{a=\"1\",a=\"2\"} 1\n", // label twice
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// A round too large for the full pool under `--max-step-memory` screens a smaller one and
/// is counted; a small round of the same campaign is not.
async fn a_round_with_a_shrunk_pool_is_counted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!({"name": "long rounds", "space": {"type": "sequence",
        "alphabet": ["A", "C", "D", "E", "F", "G", "H", "I", "K", "L",
                     "M", "N", "P", "Q", "R", "S", "T", "V", "W", "Y"],
        "min_length": 32, "max_length": 32}});
    // The first of these batch sizes whose round the server gives a smaller pool, found by
    // the library's own pricing at the server's budget (1000 today).
    let spec = serde_json::from_value::<flowlab::domain::campaign::NewCampaign>(body.clone())
        .expect("campaign body")
        .validate()
        .expect("valid campaign");
    let space = spec.build_space().expect("space");
    let cost = flowlab::proxy::campaign_cost(&spec, space.as_ref());
    let budget = flowlab::domain::cost::DEFAULT_BUDGET;
    let batch = [100, 500, 1000, 2000, 5000, 10_000]
        .into_iter()
        .find(|&n| {
            cost.admit_round(n, budget)
                .is_ok_and(|pool| pool < spec.round.pool)
        })
        .expect("some batch screens a smaller pool");
    let id = app.create_campaign(body).await;
    let shrunk = || async {
        scrape(&app)
            .await
            .get("flowlab_round_pools_shrunk_total", &[])
    };
    assert_eq!(shrunk().await, 0.0);
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 10}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(shrunk().await, 0.0, "a round of 10 screens the whole pool");
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": batch}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(shrunk().await, 1.0, "a round of {batch}");
}
on_both_backends!(
    a_round_with_a_shrunk_pool_is_counted,
    a_round_with_a_shrunk_pool_is_counted
);

//! Limits: requests that would cost the server unbounded memory, time or connections are
//! refused or cut off with the error shape, nothing is stored that should not be, and the
//! server answers `/healthz` afterwards.
//!
//! One test (at least) per way a single request, campaign or client could take the server
//! down, each ending with `/healthz` answering within a second:
//!
//! | threat | tests |
//! |---|---|
//! | a training step too large for memory, and the crash loop after it | `a_campaign_whose_training_step_would_not_fit_is_refused`, `a_refused_campaign_leaves_a_memory_capped_server_alive`, `a_smaller_budget_refuses_large_previews_and_fails_stored_campaigns`, `a_campaign_that_crashes_the_server_is_given_up` |
//! | a round's draw too large for memory | `a_round_whose_draw_would_not_fit_is_refused`, `large_draws_leave_a_memory_capped_server_alive` |
//! | enumeration beyond the space | `an_impossible_min_distance_is_refused_at_once`, `large_draws_leave_a_memory_capped_server_alive` |
//! | unbounded token, item and label text lengths | `tokens_items_and_label_texts_have_a_byte_limit` |
//! | quadratic rounds nobody waits for | `a_round_whose_client_leaves_stops_drawing` |
//! | bodies parsed before their limits | `label_lists_are_refused_while_they_are_read`, `bodies_have_a_limit_per_route` |
//! | slow, idle and too many connections | `slow_and_idle_connections_are_closed`, `connections_beyond_the_limit_wait_their_turn` |
//! | one campaign's training holding up the others | `a_long_training_run_does_not_hold_up_another_campaign`, `runs_that_do_not_fit_together_wait_for_each_other` |
//! | unbounded reads | `campaigns_are_listed_in_pages` |
//! | checkpoints that pile up, and a corrupt newest one | `old_checkpoints_are_pruned_and_a_corrupt_one_falls_back` |
//! | a label key reused on another candidate | `a_key_reused_on_another_candidate_is_a_conflict` |
//! | U+0000 in stored text | `a_nul_character_is_refused_alike_on_both_backends` |
//! | replicas with different clocks | `replicas_with_skewed_clocks_never_train_a_campaign_at_once` |
//! | a round stored in parts | `a_round_is_stored_whole_or_not_at_all` |
//! | a database password in the logs | `a_password_in_the_database_url_query_is_never_printed` |
//! | spreadsheet formulas in exports | `values_a_spreadsheet_would_run_are_exported_as_text` |

use crate::helpers::{assert_error, Backend, TestApp};
use crate::labels::{candidates, sequence_campaign};
use crate::on_both_backends;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn grid_campaign(name: &str) -> Value {
    json!({"name": name, "space": {"type": "grid", "dims": 2, "size": 6},
           "model": {"hidden": 16}, "training": {"steps": 10, "batch_size": 8}})
}

/// The field an error body names.
fn field_of(body: &Value) -> &str {
    body["error"]["details"]["field"]
        .as_str()
        .unwrap_or_default()
}

async fn label_lists_are_refused_while_they_are_read(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("counted")).await;
    let items = |n: usize| {
        let item = json!({"campaign_id": id, "value": [1, 1], "reward": 1.0}).to_string();
        format!("{{\"labels\": [{}]}}", vec![item; n].join(","))
    };
    let (status, body) = app
        .post_raw("/labels", "application/json", items(10_001))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("labels")),
        "{body}"
    );
    // About 2.6 million empty items, just under the label body limit: turned down at the
    // 10,001st instead of being built one by one (about a gigabyte).
    let empties = format!("{{\"labels\": [{}]}}", vec!["{}"; 2_600_000].join(","));
    assert!(empties.len() < 8 << 20);
    let (status, body) = app.post_raw("/labels", "application/json", empties).await;
    assert_eq!(status, 400, "{body}");
    // The same as a CSV file: 10,001 rows, and then millions of one-character rows.
    let rows = |n: usize| format!("value,reward\n{}", "\"[1,1]\",1\n".repeat(n));
    for body in [rows(10_001), format!("value\n{}", "x\n".repeat(3_000_000))] {
        let (status, answer) = app
            .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", body)
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(field_of(&answer), "labels", "{answer}");
    }
    let stored = app
        .query_i64(&format!(
            "select count(*) from candidates where campaign_id = {id}"
        ))
        .await;
    assert_eq!(stored, 0, "nothing stored");
    app.assert_healthy().await;
}
on_both_backends!(
    label_lists_are_refused_while_they_are_read,
    label_lists_are_refused_while_they_are_read
);

async fn bodies_have_a_limit_per_route(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| {
        c.max_body_bytes = 64 << 10;
        c.max_label_body_bytes = 1 << 20;
    })
    .await;
    let id = app.create_campaign(grid_campaign("bodies")).await;
    // 200 KiB: over the limit of every route but the labels'.
    let mut campaign = grid_campaign("x");
    campaign["name"] = json!("x".repeat(200 << 10));
    let (status, body) = app.post_json("/campaigns", &campaign).await;
    assert_eq!(status, 413, "{body}");
    assert_error(&body, "payload_too_large");
    let padded = json!({"labels": [{"campaign_id": id, "value": [2, 3], "reward": 1.0,
                                      "metadata": {"notes": "n".repeat(12 << 10)}}]});
    let mut labels = Vec::new();
    for x in 0..6 {
        for y in 0..2 {
            let mut item = padded["labels"][0].clone();
            item["value"] = json!([x, y]);
            labels.push(item);
        }
    }
    let body = json!({ "labels": labels });
    assert!(body.to_string().len() > 64 << 10);
    let (status, answer) = app.post_json("/labels", &body).await;
    assert_eq!(status, 200, "the labels' own limit applies: {answer}");
    let too_big = "n".repeat(2 << 20);
    let (status, answer) = app
        .post_raw(
            "/labels",
            "text/csv",
            format!("value,reward\n{too_big},1\n"),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    let (_, list) = app.get("/campaigns").await;
    assert_eq!(list["campaigns"].as_array().map(Vec::len), Some(1));
    app.assert_healthy().await;
}
on_both_backends!(bodies_have_a_limit_per_route, bodies_have_a_limit_per_route);

/// Reads until the server closes the connection; `None` if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()
}

async fn slow_and_idle_connections_are_closed(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| c.header_timeout_seconds = 0.5).await;
    let address = app.address.trim_start_matches("http://").to_string();
    // Headers that never end (slowloris), and a connection that never sends anything.
    let mut slow = TcpStream::connect(&address).await.expect("connects");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("writes");
    let mut silent = TcpStream::connect(&address).await.expect("connects");
    // A kept-alive connection that went quiet after one request.
    let mut idle = TcpStream::connect(&address).await.expect("connects");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    for (name, stream) in [
        ("slow headers", &mut slow),
        ("silent", &mut silent),
        ("idle", &mut idle),
    ] {
        let seen = closed_within(stream, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("the {name} connection is still open"));
        if name == "idle" {
            let text = String::from_utf8_lossy(&seen);
            assert!(text.starts_with("HTTP/1.1 200"), "answered first: {text}");
        }
    }
    app.assert_healthy().await;
}
on_both_backends!(
    slow_and_idle_connections_are_closed,
    slow_and_idle_connections_are_closed
);

async fn connections_beyond_the_limit_wait_their_turn(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| {
        c.max_connections = 2;
        c.header_timeout_seconds = 1.0;
    })
    .await;
    let address = app.address.trim_start_matches("http://").to_string();
    // Two connections that send nothing hold both slots until their header timeout.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(&address).await.expect("connects"));
    }
    // Meanwhile a third client is queued, not refused, and served once a slot frees.
    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        reqwest::Client::new().get(app.url("/healthz")).send(),
    )
    .await
    .expect("served once the idle connections are closed")
    .expect("a response");
    assert_eq!(answer.status().as_u16(), 200);
    for mut stream in held {
        assert!(
            closed_within(&mut stream, Duration::from_secs(30))
                .await
                .is_some(),
            "the server closed the idle connection"
        );
    }
    app.assert_healthy().await;
}
on_both_backends!(
    connections_beyond_the_limit_wait_their_turn,
    connections_beyond_the_limit_wait_their_turn
);

async fn campaigns_are_listed_in_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(app.create_campaign(grid_campaign(name)).await);
    }
    let page_ids = |page: &Value| -> Vec<i64> {
        page["campaigns"]
            .as_array()
            .expect("campaigns")
            .iter()
            .map(|c| c["id"].as_i64().expect("an id"))
            .collect()
    };
    let (status, first) = app.get("/campaigns?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(page_ids(&first), ids[..2]);
    assert_eq!(
        (first["limit"].clone(), first["offset"].clone()),
        (json!(2), json!(0))
    );
    let (_, rest) = app.get("/campaigns?limit=2&offset=2").await;
    assert_eq!(page_ids(&rest), ids[2..]);
    let (_, all) = app.get("/campaigns").await;
    assert_eq!(page_ids(&all), ids, "the default page holds 100");
    for (query, field) in [
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
        ("page=2", "page"),
    ] {
        let (status, body) = app.get(&format!("/campaigns?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_error(&body, "invalid_value");
        assert_eq!(field_of(&body), field, "{body}");
    }
    // A round reads its own candidates' labels (one query over that round), not the
    // campaign's: 3 candidates keep their 6 labels among 30 labelled imports.
    let (_, round) = app
        .post_json("/rounds", &json!({"campaign_id": ids[0], "batch_size": 3}))
        .await;
    let proposed: Vec<Value> = round["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["value"].clone())
        .collect();
    let mut labels: Vec<Value> = proposed
        .iter()
        .flat_map(|v| [1.0, 2.0].map(|r| json!({"campaign_id": ids[0], "value": v, "reward": r})))
        .collect();
    labels.extend(
        (0..6)
            .flat_map(|x| (0..6).map(move |y| json!([x, y])))
            .filter(|v| !proposed.contains(v))
            .take(30)
            .map(|v| json!({"campaign_id": ids[0], "value": v, "reward": 0.5})),
    );
    let (status, body) = app.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
    let (_, detail) = app.get(&format!("/rounds/{}", round["id"])).await;
    let counts: Vec<usize> = detail["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| c["labels"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(counts, [2, 2, 2], "{detail}");
    app.assert_healthy().await;
}
on_both_backends!(campaigns_are_listed_in_pages, campaigns_are_listed_in_pages);

async fn values_a_spreadsheet_would_run_are_exported_as_text(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app
        .create_campaign(json!({"name": "formulas", "space": {"type": "sequence",
            "alphabet": ["=", "+", "A", "B"], "min_length": 3, "max_length": 3}}))
        .await;
    let (status, body) = app
        .post_json(
            "/labels",
            &json!({"labels": [
                {"campaign_id": id, "value": "=AB", "reward": 1.0, "entity": "@risky"},
                {"campaign_id": id, "value": "A+B", "reward": 2.0},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let csv = app
        .client
        .get(app.url(&format!("/campaigns/{id}/candidates?format=csv")))
        .send()
        .await
        .expect("a response")
        .text()
        .await
        .expect("text");
    let mut rows = csv.lines().skip(1);
    let first: Vec<&str> = rows.next().expect("a row").split(',').collect();
    assert_eq!(first[1], "'=AB", "{csv}");
    assert_eq!(first[7], "'@risky", "{csv}");
    let second: Vec<&str> = rows.next().expect("a row").split(',').collect();
    assert_eq!(second[1], "A+B", "{csv}");
    // The exported file comes back as it is: the escaped value names the same candidate.
    let upload = "value,reward\n'=AB,3\n";
    let (status, body) = app
        .post_raw(&format!("/labels?campaign_id={id}"), "text/csv", upload)
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, page) = app.get(&format!("/campaigns/{id}/candidates")).await;
    let candidates = page["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 2, "no third candidate: {page}");
    assert_eq!(candidates[0]["observations"], 2, "{page}");
    app.assert_healthy().await;
}
on_both_backends!(
    values_a_spreadsheet_would_run_are_exported_as_text,
    values_a_spreadsheet_would_run_are_exported_as_text
);

/// Labels one round of `n` on the grid, reward `x + y`, and waits for the training it
/// schedules.
async fn play_and_train(app: &TestApp, campaign_id: i64, n: usize) -> Value {
    let (status, round) = app
        .post_json(
            "/rounds",
            &json!({"campaign_id": campaign_id, "batch_size": n}),
        )
        .await;
    assert_eq!(status, 201, "{round}");
    let labels: Vec<Value> = round["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .map(|c| {
            let reward: i64 = c["value"]
                .as_array()
                .expect("a grid point")
                .iter()
                .map(|x| x.as_i64().expect("a coordinate"))
                .sum();
            json!({"candidate_id": c["id"], "reward": reward as f64})
        })
        .collect();
    let (status, body) = app.post_json("/labels", &json!({ "labels": labels })).await;
    assert_eq!(status, 200, "{body}");
    app.train_until_idle().await;
    round
}

async fn old_checkpoints_are_pruned_and_a_corrupt_one_falls_back(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| c.keep_checkpoints = 2).await;
    let id = app.create_campaign(grid_campaign("pruned")).await;
    for _ in 0..4 {
        play_and_train(&app, id, 3).await;
    }
    let newest = app
        .query_i64(&format!(
            "select max(version) from checkpoints where campaign_id = {id}"
        ))
        .await;
    assert_eq!(newest, 4, "four trainings");
    let kept = app
        .query_i64(&format!(
            "select count(*) from checkpoints where campaign_id = {id}"
        ))
        .await;
    assert_eq!(kept, 2, "only the newest two are kept");

    // The newest checkpoint is damaged (its weights are in chunks of the run that wrote
    // it): rounds use the one before, with a warning, instead of answering 500 for ever.
    let damaged = app
        .execute_sql(&format!(
            "update checkpoint_chunks set bytes = {} where run_id = (select run_id from checkpoints where campaign_id = {id} and version = {newest})",
            if backend == Backend::Sqlite {
                "x'00ff00ff'"
            } else {
                "'\\x00ff00ff'::bytea"
            }
        ))
        .await;
    assert!(damaged >= 1, "the newest checkpoint has chunks");
    let (status, round) = app
        .post_json("/rounds", &json!({"campaign_id": id, "batch_size": 2}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(round["model_version"], json!(newest - 1), "{round}");
    // The model status says so: the newest version, and the older one rounds draw from.
    let (_, model) = app.get(&format!("/campaigns/{id}/model")).await;
    assert_eq!(model["version"], json!(newest), "{model}");
    assert_eq!(model["serving_version"], json!(newest - 1), "{model}");
    // The next training resumes from nothing it cannot read: a fresh network, a new version.
    let round = play_and_train(&app, id, 2).await;
    assert_eq!(round["model_version"], json!(newest - 1));
    let (_, model) = app.get(&format!("/campaigns/{id}/model")).await;
    assert_eq!(model["status"], "ready", "{model}");
    assert_eq!(model["version"], json!(newest + 1), "{model}");
    assert_eq!(model["serving_version"], json!(newest + 1), "{model}");
    app.assert_healthy().await;
}
on_both_backends!(
    old_checkpoints_are_pruned_and_a_corrupt_one_falls_back,
    old_checkpoints_are_pruned_and_a_corrupt_one_falls_back
);

/// A campaign whose training kills the process (the test's fault switch aborts it, as an
/// allocation the machine cannot give would) is tried a few times over restarts, then marked
/// `failed` with the reason; the server stays up and trains its other campaigns.
async fn a_campaign_that_crashes_the_server_is_given_up(backend: Backend) {
    use crate::durability::Server;
    let database = crate::helpers::TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let flags = ["--lease-ttl", "1"];
    let crash = [("FLOWLAB_TEST_CRASH_TRAINING", "doomed")];
    let post = |url: String, body: Value| post_to(&client, url, body);
    let mut server = Server::start_with_env(&database.url, &flags, &crash);
    let (status, doomed) = post(
        format!("{}/campaigns", server.address),
        grid_campaign("doomed"),
    )
    .await;
    assert_eq!(status, 201, "{doomed}");
    let doomed = doomed["id"].as_i64().expect("an id");
    let (status, body) = post(
        format!("{}/labels", server.address),
        json!({"labels": [{"campaign_id": doomed, "value": [1, 2], "reward": 1.0}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Each start trains the campaign again (the dead trainer's lease expires after 1 s) and
    // dies: three runs in a row die with their trainer.
    for start in 1..=3 {
        let exit = server.wait_exit(Duration::from_secs(120)).await;
        assert!(exit.is_some_and(|e| !e.success()), "start {start} crashed");
        server = Server::start_with_env(&database.url, &flags, &crash);
    }
    // The fourth start gives the campaign up instead of training it.
    let model = model_once_failed(&client, &server.address, doomed).await;
    assert_eq!(model["status"], "failed", "{model}");
    assert!(
        model["error"]
            .as_str()
            .is_some_and(|e| e.contains("3 times in a row")),
        "{model}"
    );
    assert!(
        server.wait_exit(Duration::from_millis(500)).await.is_none(),
        "still up"
    );
    // Another campaign on the same server trains as usual.
    let (_, healthy) = post(
        format!("{}/campaigns", server.address),
        grid_campaign("healthy"),
    )
    .await;
    let healthy = healthy["id"].as_i64().expect("an id");
    post(
        format!("{}/labels", server.address),
        json!({"labels": [{"campaign_id": healthy, "value": [1, 2], "reward": 1.0}]}),
    )
    .await;
    let (status, round) = post(
        format!("{}/rounds", server.address),
        json!({"campaign_id": healthy, "batch_size": 2, "wait_for_model": true}),
    )
    .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(round["model_version"], 1, "{round}");
    assert_healthy_at(&server.address).await;
}
on_both_backends!(
    a_campaign_that_crashes_the_server_is_given_up,
    a_campaign_that_crashes_the_server_is_given_up
);

async fn an_impossible_min_distance_is_refused_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(grid_campaign("apart")).await;
    let (status, body) = app
        .round(json!({"campaign_id": id, "batch_size": 2, "min_distance": 1000.0}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_error(&body, "invalid_value");
    assert_eq!(field_of(&body), "min_distance", "{body}");
    let stored = app
        .query_i64(&format!(
            "select count(*) from rounds where campaign_id = {id}"
        ))
        .await;
    assert_eq!(stored, 0, "nothing stored");
    // One candidate has no pair to keep apart; a reachable distance is served as usual.
    let (status, body) = app
        .round(json!({"campaign_id": id, "batch_size": 1, "min_distance": 1000.0}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .round(json!({"campaign_id": id, "batch_size": 2, "min_distance": 3.0}))
        .await;
    assert_eq!(status, 201, "{body}");
    app.assert_healthy().await;
}
on_both_backends!(
    an_impossible_min_distance_is_refused_at_once,
    an_impossible_min_distance_is_refused_at_once
);

/// A campaign training a million steps does not hold up another's training: runs take
/// turns on the compute thread, so the second campaign's `wait_for_model` round is served
/// while the first is still training (first come, first served would answer 503 after
/// the wait).
async fn a_long_training_run_does_not_hold_up_another_campaign(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| c.wait_timeout_seconds = 60.0).await;
    let slow = app
        .create_campaign(
            json!({"name": "hog", "space": {"type": "grid", "dims": 4, "size": 8},
                                "training": {"steps": 1000000, "batch_size": 64}}),
        )
        .await;
    let (status, _) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": slow, "value": [1, 2, 3, 4], "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 200);
    // The long run must have started before the short campaign's labels arrive.
    let running = format!(
        "select count(*) from training_runs where campaign_id = {slow} and status = 'running'"
    );
    let mut waited = 0;
    while app.query_i64(&running).await == 0 {
        assert!(waited < 300, "the long run never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let quick = app.create_campaign(grid_campaign("quick")).await;
    let labels: Vec<Value> = (0..6)
        .map(|i| json!({"campaign_id": quick, "value": [i, 5 - i], "reward": i as f64}))
        .collect();
    let (status, _) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200);
    let (status, round) = app
        .round(json!({"campaign_id": quick, "batch_size": 2, "wait_for_model": true}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert!(round["model_version"].as_i64().unwrap_or(0) >= 1, "{round}");
    let (_, hog) = app.get(&format!("/campaigns/{slow}/model")).await;
    assert_eq!(
        hog["status"], "training",
        "the long run is still going: {hog}"
    );
    assert_eq!(app.query_i64(&running).await, 1);
    app.assert_healthy().await;
}
on_both_backends!(
    a_long_training_run_does_not_hold_up_another_campaign,
    a_long_training_run_does_not_hold_up_another_campaign
);

/// The largest `training.batch_size` the step budget admits for `space`, read from the
/// refusal of a batch far too large: a campaign at its admitted maximum.
async fn admitted_batch(app: &TestApp, space: &Value) -> u64 {
    let (status, body) = app
        .post_json(
            "/campaigns",
            &json!({"name": "probe", "space": space, "training": {"batch_size": 4096}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    let fits = message
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no batch that fits in {message}"));
    assert!(fits >= 2, "{message}");
    fits
}

/// The newest run of a campaign once its model is ready: (started_at, finished_at).
async fn finished_run(app: &TestApp, id: i64) -> (String, String) {
    for _ in 0..1200 {
        let (status, model) = app.get(&format!("/campaigns/{id}/model")).await;
        assert_eq!(status, 200, "{model}");
        assert_ne!(model["status"], "failed", "{model}");
        if model["status"] == "ready" {
            let run = &model["history"][0];
            let at = |field: &str| run[field].as_str().expect("a time").to_string();
            return (at("started_at"), at("finished_at"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("campaign {id} never finished training");
}

/// Training runs share `--max-training-memory`: two campaigns, each at the largest batch the
/// step budget admits, need more together than a total of one budget, so the second run
/// starts only after the first has finished, although runs otherwise take turns.
async fn runs_that_do_not_fit_together_wait_for_each_other(backend: Backend) {
    let app = TestApp::spawn_configured(backend, |c| {
        c.max_training_memory_bytes = Some(c.max_step_memory_bytes);
        c.training_slice_seconds = 0.05;
    })
    .await;
    let space = json!({"type": "sequence", "alphabet": ["A", "B"],
        "min_length": 128, "max_length": 128});
    let batch = admitted_batch(&app, &space).await;
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let id = app
            .create_campaign(json!({"name": name, "space": space,
                "training": {"batch_size": batch, "steps": 3}}))
            .await;
        ids.push(id);
    }
    let labels: Vec<Value> = ids
        .iter()
        .map(|id| json!({"campaign_id": id, "value": "AB".repeat(64), "reward": 1.0}))
        .collect();
    let (status, body) = app.post_json("/labels", &json!({"labels": labels})).await;
    assert_eq!(status, 200, "{body}");
    let (start_a, end_a) = finished_run(&app, ids[0]).await;
    let (start_b, end_b) = finished_run(&app, ids[1]).await;
    // RFC 3339 in one format: the text order is the time order.
    assert!(
        end_a <= start_b || end_b <= start_a,
        "runs overlapped: {start_a}..{end_a} and {start_b}..{end_b}"
    );
    app.assert_healthy().await;
}
on_both_backends!(
    runs_that_do_not_fit_together_wait_for_each_other,
    runs_that_do_not_fit_together_wait_for_each_other
);

/// Campaigns listed by `GET /campaigns`.
async fn campaign_count(app: &TestApp) -> usize {
    let (status, list) = app.get("/campaigns").await;
    assert_eq!(status, 200, "{list}");
    list["campaigns"].as_array().map_or(0, Vec::len)
}

/// The refusal of a step too large: 400 `invalid_value` naming `field`, with the figures.
fn assert_too_large(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 400, "{body}");
    assert_error(body, "invalid_value");
    assert_eq!(field_of(body), field, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("needs") && message.contains("limit 256 MiB"),
        "the figures: {message}"
    );
}

fn alphabet(tokens: usize) -> Vec<String> {
    (0..tokens).map(|i| format!("t{i}")).collect()
}

async fn a_campaign_whose_training_step_would_not_fit_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Two tokens, 512 of them, 4096 trajectories a step: tens of GiB for one step.
    let (status, body) = app
        .post_json(
            "/campaigns",
            &json!({"name": "long", "space": {"type": "sequence", "alphabet": ["A", "B"],
                "min_length": 512, "max_length": 512},
                "training": {"batch_size": 4096}}),
        )
        .await;
    assert_too_large(status, &body, "training.batch_size");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("GiB") && message.contains("at most"),
        "{message}"
    );
    // A grid of 16 dimensions of 1024 at the defaults: no batch is small enough.
    let (status, body) = app
        .post_json(
            "/campaigns",
            &json!({"name": "vast", "space": {"type": "grid", "dims": 16, "size": 1024}}),
        )
        .await;
    assert_too_large(status, &body, "space");
    // 1024 tokens, 512 of them: the encoding alone is half a million wide.
    let (status, body) = app
        .post_json(
            "/campaigns",
            &json!({"name": "wide", "space": {"type": "sequence", "alphabet": alphabet(1024),
                "min_length": 1, "max_length": 512, "separator": "-"}}),
        )
        .await;
    assert_too_large(status, &body, "space");
    assert_eq!(campaign_count(&app).await, 0, "nothing stored");
    // The same long sequence with a batch that fits is admitted.
    app.create_campaign(json!({"name": "long", "space": {"type": "sequence",
        "alphabet": ["A", "B"], "min_length": 512, "max_length": 512},
        "training": {"batch_size": 8}}))
        .await;
    assert_eq!(campaign_count(&app).await, 1);
    app.assert_healthy().await;
}
on_both_backends!(
    a_campaign_whose_training_step_would_not_fit_is_refused,
    a_campaign_whose_training_step_would_not_fit_is_refused
);

async fn a_round_whose_draw_would_not_fit_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // 1024 tokens, up to 8 of them: admitted, but 10,000 candidates at once (80,000 walks
    // with the network's 2050 outputs for each of their states) are not.
    let id = app
        .create_campaign(json!({"name": "tokens", "space": {"type": "sequence",
            "alphabet": alphabet(1024), "min_length": 1, "max_length": 8, "separator": "-"},
            "model": {"hidden": 16}, "training": {"steps": 5, "batch_size": 4}}))
        .await;
    let (status, body) = app
        .round(json!({"campaign_id": id, "batch_size": 10000, "key": "huge"}))
        .await;
    assert_too_large(status, &body, "batch_size");
    let stored = app
        .query_i64(&format!(
            "select count(*) from rounds where campaign_id = {id}"
        ))
        .await;
    assert_eq!(stored, 0, "nothing stored");
    let candidates = app
        .query_i64(&format!(
            "select count(*) from candidates where campaign_id = {id}"
        ))
        .await;
    assert_eq!(candidates, 0, "nothing stored");
    // A batch that fits is drawn as usual, under the same key.
    let (status, round) = app
        .round(json!({"campaign_id": id, "batch_size": 20, "key": "huge"}))
        .await;
    assert_eq!(status, 201, "{round}");
    assert_eq!(round["candidates"].as_array().map(Vec::len), Some(20));
    app.assert_healthy().await;
}
on_both_backends!(
    a_round_whose_draw_would_not_fit_is_refused,
    a_round_whose_draw_would_not_fit_is_refused
);

async fn a_smaller_budget_refuses_large_previews_and_fails_stored_campaigns(backend: Backend) {
    let database = crate::helpers::TestDatabase::create(backend).await;
    // Stored under the default budget, which admits it.
    let long = json!({"name": "long", "space": {"type": "sequence", "alphabet": ["A", "B"],
        "min_length": 512, "max_length": 512}, "training": {"steps": 5, "batch_size": 8}});
    let id = {
        let app = TestApp::spawn_on(&database.url).await;
        app.create_campaign(long.clone()).await
    };
    // The smallest budget: the campaign no longer fits.
    let app =
        TestApp::spawn_on_configured(&database.url, |c| c.max_step_memory_bytes = 64 << 20).await;
    let (status, body) = app.post_json("/campaigns", &long).await;
    assert_eq!(status, 400, "refused under the smaller budget: {body}");
    let refusal = body["error"]["message"].as_str().unwrap_or_default();
    assert!(refusal.contains("limit 64 MiB"), "{body}");
    // A preview of 1000 walks of 513 states is refused; five are drawn.
    let (status, body) = app
        .get(&format!("/campaigns/{id}/model/sample?n=1000"))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(field_of(&body), "n", "{body}");
    let (status, body) = app.get(&format!("/campaigns/{id}/model/sample?n=5")).await;
    assert_eq!(status, 200, "a small preview: {body}");
    assert_eq!(body["values"].as_array().map(Vec::len), Some(5), "{body}");
    // Not even a round of one fits now.
    let (status, body) = app.round(json!({"campaign_id": id, "batch_size": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(field_of(&body), "batch_size", "{body}");
    // Labels schedule training, which fails with the reason instead of running the server
    // out of memory.
    let value = "AB".repeat(256);
    let (status, body) = app
        .post_json(
            "/labels",
            &json!({"labels": [{"campaign_id": id, "value": value, "reward": 1.0}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.train_until_idle().await;
    let (_, model) = app.get(&format!("/campaigns/{id}/model")).await;
    assert_eq!(model["status"], "failed", "{model}");
    assert!(
        model["error"]
            .as_str()
            .is_some_and(|e| e.contains("a training step needs") && e.contains("limit 64 MiB")),
        "{model}"
    );
    app.assert_healthy().await;
}
on_both_backends!(
    a_smaller_budget_refuses_large_previews_and_fails_stored_campaigns,
    a_smaller_budget_refuses_large_previews_and_fails_stored_campaigns
);

/// A server in 1.5 GiB of address space: a stored campaign whose training would need more
/// kills a server whose limit admits it, and only fails its run on a server with the default
/// limit, which stays up and refuses such campaigns at once.
async fn a_refused_campaign_leaves_a_memory_capped_server_alive(backend: Backend) {
    use crate::durability::Server;
    const ADDRESS_SPACE: u64 = 1536 << 20;
    let database = crate::helpers::TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let post = |url: String, body: Value| post_to(&client, url, body);
    // Admitted by a server whose limit is 1 TiB: 512 trajectories of 513 states a step.
    let admits_all = ["--lease-ttl", "1", "--max-step-memory", "1099511627776"];
    let Some(mut server) = Server::start_limited(&database.url, &admits_all, ADDRESS_SPACE) else {
        eprintln!("prlimit is missing: the memory-capped server is not tested");
        return;
    };
    let big = json!({"name": "big", "space": {"type": "sequence", "alphabet": ["A", "B"],
        "min_length": 512, "max_length": 512}, "training": {"steps": 5, "batch_size": 512}});
    let (status, created) = post(format!("{}/campaigns", server.address), big.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let label = json!({"labels": [{"campaign_id": id, "value": "AB".repeat(256), "reward": 1.0}]});
    let (status, body) = post(format!("{}/labels", server.address), label).await;
    assert_eq!(status, 200, "{body}");
    // Its training asks for more than the address space holds: the process aborts (SIGABRT,
    // Rust's answer to an allocation that fails).
    let exit = server.wait_exit(Duration::from_secs(120)).await;
    assert!(
        exit.is_some_and(|e| std::os::unix::process::ExitStatusExt::signal(&e) == Some(6)),
        "the training the limit let through ran the server out of memory: {exit:?}"
    );
    // The same campaign on a server with the default limit: its run fails, the server lives.
    let server = Server::start_limited(&database.url, &["--lease-ttl", "1"], ADDRESS_SPACE)
        .expect("prlimit");
    let model = model_once_failed(&client, &server.address, id).await;
    assert_eq!(model["status"], "failed", "{model}");
    assert!(
        model["error"]
            .as_str()
            .is_some_and(|e| e.contains("a training step needs") && e.contains("limit 256 MiB")),
        "{model}"
    );
    let mut bigger = big;
    bigger["training"]["batch_size"] = json!(4096);
    let (status, body) = post(format!("{}/campaigns", server.address), bigger).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(field_of(&body), "training.batch_size", "{body}");
    assert_healthy_at(&server.address).await;
}
on_both_backends!(
    a_refused_campaign_leaves_a_memory_capped_server_alive,
    a_refused_campaign_leaves_a_memory_capped_server_alive
);

/// The round and enumeration cases on a real server process in 1.5 GiB of address space: a
/// draw of 10,000 candidates over 1,024 tokens and a `min_distance` no batch can keep are
/// refused at once with the field named, nothing is stored, and the
/// process is alive and answers `/healthz` within a second.
async fn large_draws_leave_a_memory_capped_server_alive(backend: Backend) {
    use crate::durability::Server;
    const ADDRESS_SPACE: u64 = 1536 << 20;
    let database = crate::helpers::TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let post = |url: String, body: Value| post_to(&client, url, body);
    let Some(mut server) = Server::start_limited(&database.url, &[], ADDRESS_SPACE) else {
        eprintln!("prlimit is missing: the memory-capped server is not tested");
        return;
    };
    let campaign = json!({"name": "tokens", "space": {"type": "sequence",
        "alphabet": alphabet(1024), "min_length": 1, "max_length": 8, "separator": "-"},
        "model": {"hidden": 16}, "training": {"steps": 5, "batch_size": 4}});
    let (status, created) = post(format!("{}/campaigns", server.address), campaign).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let huge = json!({"campaign_id": id, "batch_size": 10000});
    let (status, body) = post(format!("{}/rounds", server.address), huge.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(field_of(&body), "batch_size", "{body}");
    let far = json!({"campaign_id": id, "batch_size": 2, "min_distance": 9});
    let (status, body) = post(format!("{}/rounds", server.address), far).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(field_of(&body), "min_distance", "{body}");
    let stats: Value = client
        .get(format!("{}/campaigns/{id}", server.address))
        .send()
        .await
        .expect("the server is up")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stats["stats"]["rounds"], 0, "{stats}");
    assert_eq!(stats["stats"]["candidates"], 0, "{stats}");
    assert_healthy_at(&server.address).await;
    assert!(server.wait_exit(Duration::ZERO).await.is_none(), "alive");
}
on_both_backends!(
    large_draws_leave_a_memory_capped_server_alive,
    large_draws_leave_a_memory_capped_server_alive
);

/// A round whose client goes away stops working: its draw is called off and frees its
/// sampling permit at once, instead of computing for many seconds for nobody (here 10,000
/// values of different lengths each kept 12 edits from all the others: about 5e7 edit
/// distances).
async fn a_round_whose_client_leaves_stops_drawing(backend: Backend) {
    // A budget that admits the round: what is tested is what happens when its client leaves.
    let app = TestApp::spawn_configured(backend, |c| c.max_step_memory_bytes = 1 << 40).await;
    let free = app.free_sampling_permits();
    let alphabet: Vec<String> = (0..20).map(|i| format!("{}", (b'A' + i) as char)).collect();
    let id = app
        .create_campaign(json!({"name": "left", "space": {"type": "sequence",
            "alphabet": alphabet, "min_length": 1, "max_length": 64}}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let sent = impatient
        .post(app.url("/rounds"))
        .json(&json!({"campaign_id": id, "batch_size": 10000, "min_distance": 12}))
        .send()
        .await;
    assert!(sent.is_err(), "the round answered within 500 ms: {sent:?}");
    // The permit comes back within a few candidates of the client leaving.
    let mut waited = 0;
    while app.free_sampling_permits() < free {
        assert!(
            waited < 100,
            "the draw kept its permit for 10 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 0, "nothing stored: {campaign}");
    assert_eq!(
        campaign["stats"]["candidates"], 0,
        "nothing stored: {campaign}"
    );
    app.assert_healthy().await;
}
on_both_backends!(
    a_round_whose_client_leaves_stops_drawing,
    a_round_whose_client_leaves_stops_drawing
);

/// Waits until every sampling permit is back: no draw is running any more.
async fn draws_finished(app: &TestApp, free: usize) {
    let mut waited = 0;
    while app.free_sampling_permits() < free {
        assert!(waited < 100, "a draw kept its permit for 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
}

/// A round is committed once, whole: two replicas on one database each draw a round of the
/// same campaign at the same moment, from the same values and the same seed, so they draw
/// the same batch, and the one that commits second finds it taken and draws again before it
/// stores anything. Its client leaving during that second draw leaves no round and no
/// candidate behind (a round committed before its top-ups used to stay, with pending
/// candidates nobody was given).
async fn a_round_is_stored_whole_or_not_at_all(backend: Backend) {
    let budget = |c: &mut flowlab::config::Config| c.max_step_memory_bytes = 1 << 40;
    let app = TestApp::spawn_configured(backend, budget).await;
    let url = app.database_url().expect("its own database").to_string();
    let replica = TestApp::spawn_on_configured(&url, budget).await;
    let free = app.free_sampling_permits();
    let alphabet: Vec<String> = (0..20).map(|i| format!("{}", (b'A' + i) as char)).collect();
    let id = app
        .create_campaign(json!({"name": "whole", "space": {"type": "sequence",
            "alphabet": alphabet, "min_length": 1, "max_length": 64}}))
        .await;
    let batch = 1500;
    let round = |server: &TestApp, key: &str| {
        let (client, url) = (server.client.clone(), server.url("/rounds"));
        let body = json!({"campaign_id": id, "batch_size": batch, "min_distance": 12, "key": key});
        tokio::spawn(async move { client.post(url).json(&body).send().await })
    };
    let started = std::time::Instant::now();
    let (mut first, mut second) = (round(&app, "first"), round(&replica, "second"));
    let (answered, other) = tokio::select! {
        answer = &mut first => (answer, second),
        answer = &mut second => (answer, first),
    };
    let drawn = started.elapsed();
    let answered = answered.expect("round task").expect("an answer");
    assert_eq!(answered.status().as_u16(), 201);
    let winner: Value = answered.json().await.expect("JSON");
    assert_eq!(winner["candidates"].as_array().map(Vec::len), Some(batch));
    // The other found its batch taken and is drawing again (as long again): its client
    // leaves then.
    let redraws = |server: &TestApp| {
        let (client, url) = (server.client.clone(), server.url("/metrics"));
        async move {
            let metrics = client
                .get(url)
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text");
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("flowlab_round_redraws_total "))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let redrawing = async {
        while redraws(&app).await + redraws(&replica).await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(drawn + Duration::from_secs(30), redrawing)
        .await
        .expect("the second round draws again");
    assert!(!other.is_finished(), "the second round answered");
    other.abort();
    draws_finished(&app, free).await;
    draws_finished(&replica, free).await;
    let (_, campaign) = app.get(&format!("/campaigns/{id}")).await;
    assert_eq!(campaign["stats"]["rounds"], 1, "{campaign}");
    assert_eq!(campaign["stats"]["candidates"], batch, "{campaign}");
    let keys = app
        .query_i64(&format!(
            "select count(*) from rounds where campaign_id = {id} and key is not null"
        ))
        .await;
    assert_eq!(keys, 1, "only the answered round holds its key");
    app.assert_healthy().await;
    replica.assert_healthy().await;
}
on_both_backends!(
    a_round_is_stored_whole_or_not_at_all,
    a_round_is_stored_whole_or_not_at_all
);

/// libfaketime's preload (Debian's `libfaketime`, which `.ci/run` installs): a process
/// started with it reads a wall clock moved by `FAKETIME`.
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// The environment of a process whose wall clock is `offset` away from this machine's
/// (libfaketime's syntax, e.g. `+1h`); its monotonic clock stays true, so its timers and
/// heartbeats keep their length.
fn skewed_clock(offset: &str) -> [(&'static str, &str); 3] {
    [
        ("LD_PRELOAD", FAKETIME),
        ("FAKETIME", offset),
        ("DONT_FAKE_MONOTONIC", "1"),
    ]
}

/// The wall clock, in seconds since the epoch, of `date` started with `env`.
fn clock_of(env: &[(&str, &str)]) -> i64 {
    let out = std::process::Command::new("date")
        .arg("+%s")
        .envs(env.iter().copied())
        .output()
        .expect("date runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("date prints seconds")
}

/// The database's clock in Unix ms.
async fn database_ms(pool: &sqlx::PgPool) -> i64 {
    let (ms,): (i64,) =
        sqlx::query_as("select (extract(epoch from clock_timestamp()) * 1000)::bigint")
            .fetch_one(pool)
            .await
            .expect("the database's clock");
    ms
}

/// Two replicas whose own clocks are two hours apart keep the one-trainer guarantee: the
/// one an hour behind trains, and the one an hour ahead, scanning every second, never
/// takes its live lease (on its own clock that lease expired an hour ago), because lease
/// times are written and compared on the database's clock. Once the trainer is killed,
/// the one ahead takes over after the lease's true expiry.
#[tokio::test]
async fn replicas_with_skewed_clocks_never_train_a_campaign_at_once() {
    if crate::helpers::skip_postgres().await {
        return;
    }
    if !std::path::Path::new(FAKETIME).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{FAKETIME} is missing: install Debian's libfaketime"
        );
        eprintln!("skipped: {FAKETIME} is missing (install Debian's libfaketime)");
        return;
    }
    let (behind_clock, ahead_clock) = (skewed_clock("-1h"), skewed_clock("+1h"));
    let here = clock_of(&[]);
    assert!((clock_of(&behind_clock) - (here - 3600)).abs() < 60);
    assert!((clock_of(&ahead_clock) - (here + 3600)).abs() < 60);

    let db = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("database");
    let client = reqwest::Client::new();
    let ttl_ms = 2000;
    let flags = ["--lease-ttl", "2"];
    let behind = crate::durability::Server::start_with_env(&db.url, &flags, &behind_clock);
    let campaign = json!({"name": "skewed", "space": {"type": "grid", "dims": 2, "size": 40},
                          "model": {"hidden": 32}, "training": {"steps": 1_000_000, "batch_size": 16}});
    let (status, created) =
        post_to(&client, format!("{}/campaigns", behind.address), campaign).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    let labels: Vec<Value> = (0..8)
        .map(|i| json!({"campaign_id": id, "value": [i, 2 * i], "reward": i as f64}))
        .collect();
    let labels = json!({ "labels": labels });
    let (status, body) = post_to(&client, format!("{}/labels", behind.address), labels).await;
    assert_eq!(status, 200, "{body}");
    let started = crate::replicas::wait_runs(&pool, id, "the first run", |r| !r.is_empty()).await;
    assert!(behind.owns(&started[0].owner), "{started:?}");

    let ahead = crate::durability::Server::start_with_env(&db.url, &flags, &ahead_clock);
    // Three lease lifetimes: `behind` heartbeats every third of one, `ahead` scans every
    // second.
    let watch_until = std::time::Instant::now() + Duration::from_millis(3 * ttl_ms as u64);
    while std::time::Instant::now() < watch_until {
        let runs = crate::replicas::runs(&pool, id).await;
        assert_eq!(runs.len(), 1, "a second trainer started: {runs:?}");
        assert_eq!(runs[0].status, "running", "{runs:?}");
        let (owner, expires_ms) = crate::replicas::lease(&pool, id).await;
        assert!(behind.owns(&owner), "the lease moved to {owner}");
        let left = expires_ms - database_ms(&pool).await;
        assert!(
            (0..=ttl_ms).contains(&left),
            "the lease expires {left} ms from now on the database's clock"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_healthy_at(&ahead.address).await;

    let (_, expires_ms) = crate::replicas::lease(&pool, id).await;
    behind.kill();
    let runs = crate::replicas::wait_runs(&pool, id, "the takeover", |r| r.len() == 2).await;
    assert!(ahead.owns(&runs[1].owner), "{runs:?}");
    assert!(
        runs[1].started_ms + 1.0 >= expires_ms as f64,
        "the takeover started before the lease expired: {runs:?}, expiry {expires_ms}"
    );
}

/// A label key names one measurement: the same key and reward on another candidate is
/// refused with 409, and nothing of the refused batch is stored.
async fn a_key_reused_on_another_candidate_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.create_campaign(sequence_campaign()).await;
    let label = |value: &str| json!({"campaign_id": id, "value": value, "reward": 1.0, "key": "k"});
    let (status, body) = app
        .post_json("/labels", &json!({"labels": [label("AC")]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The same key and result on another value is another measurement, not a retry.
    let (status, err) = app
        .post_json("/labels", &json!({"labels": [label("GT")]}))
        .await;
    assert_eq!(status, 409, "{err}");
    assert_error(&err, "conflict");
    // Within one batch as well; and nothing of a refused batch is stored, not even the
    // imported value's candidate.
    let (status, err) = app
        .post_json(
            "/labels",
            &json!({"labels": [
                {"campaign_id": id, "value": "TT", "reward": 1.0, "key": "fresh"},
                {"campaign_id": id, "value": "CC", "reward": 1.0, "key": "fresh"},
            ]}),
        )
        .await;
    assert_eq!(status, 409, "{err}");
    let cands = candidates(&app, id).await;
    let values: Vec<&Value> = cands.iter().map(|c| &c["value"]).collect();
    assert_eq!(
        values,
        [&json!("AC")],
        "only the first label's candidate exists"
    );
    assert_eq!(cands[0]["observations"], 1);
    app.assert_healthy().await;
}
on_both_backends!(
    a_key_reused_on_another_candidate_is_a_conflict,
    a_key_reused_on_another_candidate_is_a_conflict
);

/// U+0000 in a name, token, key, error or entity is the same 400 on both backends
/// (PostgreSQL cannot store it in text).
async fn a_nul_character_is_refused_alike_on_both_backends(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, err) = app
        .post_json(
            "/campaigns",
            &json!({"name": "a\u{0}b", "space": {"type": "sequence", "alphabet": ["A", "C"],
                    "min_length": 2, "max_length": 2}}),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["details"]["field"], "name", "{err}");
    for (space, field) in [
        (
            json!({"type": "sequence", "alphabet": ["A", "C\u{0}"], "min_length": 2, "max_length": 2}),
            "space.alphabet",
        ),
        (
            json!({"type": "set", "items": ["x", "y\u{0}"], "min_size": 1, "max_size": 2}),
            "space.items",
        ),
    ] {
        let (status, err) = app
            .post_json("/campaigns", &json!({"name": "nul", "space": space}))
            .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["details"]["field"], field, "{err}");
    }
    let id = app.create_campaign(sequence_campaign()).await;
    let cases = [
        (
            "key",
            json!({"campaign_id": id, "value": "AC", "reward": 1.0, "key": "k\u{0}"}),
        ),
        (
            "error",
            json!({"campaign_id": id, "value": "AC", "failed": true, "error": "x\u{0}"}),
        ),
        (
            "entity",
            json!({"campaign_id": id, "value": "AC", "reward": 1.0, "entity": "e\u{0}"}),
        ),
    ];
    for (field, label) in cases {
        let (status, err) = app.post_json("/labels", &json!({"labels": [label]})).await;
        assert_eq!(status, 400, "{field}: {err}");
        assert_eq!(
            err["error"]["details"]["field"],
            format!("labels[0].{field}"),
            "{err}"
        );
    }
    assert!(candidates(&app, id).await.is_empty(), "nothing stored");
    app.assert_healthy().await;
}
on_both_backends!(
    a_nul_character_is_refused_alike_on_both_backends,
    a_nul_character_is_refused_alike_on_both_backends
);

/// A password given as `?password=` in the database URL is as secret as one in its user
/// part: a server logging at debug level and a start that fails on that URL print it
/// nowhere, and show the URL with `password=***`.
#[tokio::test]
async fn a_password_in_the_database_url_query_is_never_printed() {
    if crate::helpers::skip_postgres().await {
        return;
    }
    let db = crate::helpers::TestDatabase::create(Backend::Postgres).await;
    let secret = "q-s3cret-71c4";
    // The test server's trust authentication accepts any password.
    let url = format!("{}?application_name=limits&password={secret}", db.url);
    let log_dir = tempfile::tempdir().expect("temporary directory");
    let log_path = log_dir.path().join("stderr.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "debug")
        .env_remove("FLOWLAB_API_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdout = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = stdout.next().expect("a line").expect("text");
    let address = first
        .strip_prefix("flowlab listening on ")
        .unwrap_or_else(|| panic!("not the listening line: {first:?}"))
        .to_string();
    let client = reqwest::Client::new();
    let refused = client
        .post(format!("{address}/campaigns"))
        .json(&json!({"name": ""}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 400);
    assert_healthy_at(&address).await;
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let rest: Vec<String> = stdout.map_while(Result::ok).collect();
    let logged = std::fs::read_to_string(&log_path).expect("log read");
    assert!(
        logged.contains("password=***"),
        "the connection line shows the redacted URL:\n{logged}"
    );
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", url.replace("?", "_missing?"))
        .env("RUST_LOG", "debug")
        .output()
        .expect("the binary runs");
    assert!(!failed.status.success());
    let failed = crate::logs::printed(&failed);
    for text in [&logged, &first, &rest.join("\n"), &failed] {
        assert!(!text.contains(secret), "the password was printed:\n{text}");
    }
}

/// Tokens, set items and separators are at most 256 bytes, so no stored value can grow
/// without bound from its space; a label's value, error, key and metadata have their own
/// limits. Each refusal names its field, and nothing of it is stored.
async fn tokens_items_and_label_texts_have_a_byte_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let long = "x".repeat(257);
    for (space, field) in [
        (
            json!({"type": "sequence", "alphabet": ["A", long], "min_length": 1, "max_length": 4}),
            "space.alphabet",
        ),
        (
            json!({"type": "sequence", "alphabet": ["A", "C"], "separator": long, "min_length": 1, "max_length": 4}),
            "space.separator",
        ),
        (
            json!({"type": "set", "items": ["a", long], "min_size": 1, "max_size": 2}),
            "space.items",
        ),
    ] {
        let (status, err) = app
            .post_json("/campaigns", &json!({"name": "long", "space": space}))
            .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(field_of(&err), field, "{err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("257") && m.contains("256")),
            "the figures: {err}"
        );
    }
    assert_eq!(campaign_count(&app).await, 0, "no campaign stored");
    // The longest tokens are still fine.
    let id = app
        .create_campaign(json!({"name": "widest", "space": {"type": "sequence",
            "alphabet": ["y".repeat(256), "z".repeat(256)], "min_length": 1, "max_length": 4}}))
        .await;
    let megabyte = "y".repeat(256 * 4096);
    for (field, label) in [
        (
            "value",
            json!({"campaign_id": id, "value": megabyte, "reward": 1.0}),
        ),
        (
            "error",
            json!({"campaign_id": id, "value": "y".repeat(256), "failed": true, "error": "e".repeat(4097)}),
        ),
        (
            "key",
            json!({"campaign_id": id, "value": "y".repeat(256), "reward": 1.0, "key": "k".repeat(201)}),
        ),
        (
            "metadata",
            json!({"campaign_id": id, "value": "y".repeat(256), "reward": 1.0, "metadata": {"m": "m".repeat(17 << 10)}}),
        ),
    ] {
        let (status, err) = app.post_json("/labels", &json!({"labels": [label]})).await;
        assert_eq!(status, 400, "{field}: {err}");
        assert_eq!(field_of(&err), format!("labels[0].{field}"), "{err}");
    }
    assert!(candidates(&app, id).await.is_empty(), "nothing stored");
    app.assert_healthy().await;
}
on_both_backends!(
    tokens_items_and_label_texts_have_a_byte_limit,
    tokens_items_and_label_texts_have_a_byte_limit
);

/// POSTs `body` as JSON to `url` of a server process: the status and the answer's JSON (null
/// when it has none).
async fn post_to(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let answer = client
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = answer.status().as_u16();
    (status, answer.json::<Value>().await.unwrap_or(Value::Null))
}

/// Asserts that the server process at `address` answers `/healthz` with 200 within a second.
async fn assert_healthy_at(address: &str) {
    let health = reqwest::Client::new()
        .get(format!("{address}/healthz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/healthz answers within 1 s");
    assert_eq!(health.status().as_u16(), 200);
}

/// `GET /campaigns/{id}/model` of the server at `address` once its status is `failed`, or
/// as it is after 60 s.
async fn model_once_failed(client: &reqwest::Client, address: &str, id: i64) -> Value {
    let model_url = format!("{address}/campaigns/{id}/model");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let model: Value = client
            .get(&model_url)
            .send()
            .await
            .expect("the server is up")
            .json()
            .await
            .expect("JSON");
        if model["status"] == "failed" || std::time::Instant::now() > deadline {
            return model;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

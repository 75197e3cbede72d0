//! Request ids and logs: every answer carries an `x-request-id` (the client's when usable);
//! `--log-format json` writes one JSON object per line, each request's lines naming its id;
//! and the database password appears nowhere in what the process prints.

use crate::helpers::{Backend, TestApp, TestDatabase};
use crate::on_both_backends;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

fn request_id(answer: &reqwest::Response) -> String {
    answer
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn every_answer_carries_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut seen = BTreeSet::new();
    for (path, expected_status) in [("/healthz", 200), ("/campaigns", 200), ("/no/such", 404)] {
        let answer = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(answer.status().as_u16(), expected_status, "{path}");
        let id = request_id(&answer);
        assert!(!id.is_empty(), "{path} has no x-request-id");
        assert!(seen.insert(id.clone()), "{path} reuses the id {id}");
    }

    // A client's own id comes back as it was sent.
    let answer = app
        .client
        .get(app.url("/campaigns"))
        .header("x-request-id", "plate-7/A3")
        .send()
        .await
        .expect("request");
    assert_eq!(request_id(&answer), "plate-7/A3");

    // One that could forge log fields is replaced by a fresh id.
    let answer = app
        .client
        .get(app.url("/campaigns"))
        .header("x-request-id", "x request_id=forged")
        .send()
        .await
        .expect("request");
    let replaced = request_id(&answer);
    assert!(
        !replaced.is_empty() && !replaced.contains("forged"),
        "{replaced:?}"
    );
}
on_both_backends!(
    every_answer_carries_a_request_id,
    every_answer_carries_a_request_id
);

/// `url` with a password in it, and that password: the one it has, or a new one (the test
/// server's trust authentication accepts any).
pub fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (credentials, host) = rest.split_once('@').expect("a URL with a user");
    match credentials.split_once(':') {
        Some((_, password)) => (url.to_string(), password.to_string()),
        None => {
            let password = "s3cret-pw-5e8a".to_string();
            (
                format!("{scheme}://{credentials}:{password}@{host}"),
                password,
            )
        }
    }
}

/// Everything a finished `flowlab` process printed.
pub fn printed(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn json_logs_name_each_request_and_never_the_database_password() {
    if crate::helpers::skip_postgres().await {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let (url, password) = with_password(&db.url);
    let log_dir = tempfile::tempdir().expect("temporary directory");
    let log_path = log_dir.path().join("stderr.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .env("DATABASE_URL", &url)
        // The most the server logs short of trace: the password must not be in any of it.
        .env("RUST_LOG", "debug")
        .env_remove("FLOWLAB_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let address = line
        .trim()
        .strip_prefix("flowlab listening on ")
        .unwrap_or_else(|| panic!("not the listening line: {line:?}"))
        .to_string();

    let client = reqwest::Client::new();
    let named = client
        .get(format!("{address}/campaigns"))
        .header("x-request-id", "json-log-test-1")
        .send()
        .await
        .expect("request");
    assert_eq!(named.status().as_u16(), 200);
    let unnamed = client
        .get(format!("{address}/no/such/route"))
        .send()
        .await
        .expect("request");
    assert_eq!(unnamed.status().as_u16(), 404);
    let assigned = request_id(&unnamed);
    // The request log line is written before the answer goes out, so it is in the file now.
    child.kill().expect("kill");
    child.wait().expect("reaped");
    let mut rest_of_stdout = String::new();
    stdout
        .read_to_string(&mut rest_of_stdout)
        .expect("stdout read");

    let logged = std::fs::read_to_string(&log_path).expect("log read");
    assert!(!logged.is_empty(), "nothing was logged");
    let lines: Vec<Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ids_of = |line: &Value| -> BTreeSet<String> {
        line["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(std::iter::once(&line["span"]))
            .filter_map(|span| span["request_id"].as_str().map(String::from))
            .collect()
    };
    for id in ["json-log-test-1", assigned.as_str()] {
        assert!(
            lines.iter().any(|l| ids_of(l).contains(id)),
            "no log line names request {id}:\n{logged}"
        );
    }
    assert!(
        logged.contains(":***@"),
        "the connection line shows the redacted URL:\n{logged}"
    );
    for text in [&logged, &line, &rest_of_stdout] {
        assert!(
            !text.contains(&password),
            "the password was printed:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_failed_start_does_not_print_the_database_password() {
    if crate::helpers::skip_postgres().await {
        return;
    }
    let db = TestDatabase::create(Backend::Postgres).await;
    let (url, password) = with_password(&db.url);
    // The same server and role, a database that does not exist: the start fails after
    // the URL has been read and used.
    let missing = format!("{}_missing", url);
    let output = Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &missing])
        .env("RUST_LOG", "debug")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let text = printed(&output);
    assert!(text.contains("error"), "{text}");
    assert!(
        !text.contains(&password),
        "the password was printed:\n{text}"
    );
}

#[test]
fn help_does_not_show_the_database_password_from_the_environment() {
    let (url, password) = with_password("postgres://flowlab@db:5432/flowlab");
    for command in [["serve", "--help"], ["migrate", "--help"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_flowlab"))
            .args(command)
            .env("DATABASE_URL", &url)
            .env("FLOWLAB_API_TOKEN", &password)
            .output()
            .expect("the binary runs");
        assert!(output.status.success());
        let text = printed(&output);
        assert!(text.contains("DATABASE_URL"), "{text}");
        assert!(!text.contains(&password), "{command:?} printed it:\n{text}");
    }
}

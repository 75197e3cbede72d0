//! Durability with a real process: every 2xx on a write is committed. The binary is started,
//! killed with SIGKILL right after each acknowledged write, and restarted on the same
//! database; everything acknowledged must be there.

use crate::helpers::{Backend, TestDatabase};
use crate::on_both_backends;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `flowlab serve` process on port 0.
pub struct Server {
    child: Child,
    pub address: String,
}

impl Server {
    pub fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    /// With more flags of `serve` (e.g. `--lease-ttl 2`).
    pub fn start_with(database_url: &str, flags: &[&str]) -> Self {
        Self::start_with_env(database_url, flags, &[])
    }

    /// With more flags and environment variables.
    pub fn start_with_env(database_url: &str, flags: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_flowlab")),
            database_url,
            flags,
            env,
        )
    }

    /// With more flags, in at most `bytes` of address space (`prlimit --as`): an allocation
    /// beyond it fails, and the process aborts as it would on a machine out of memory.
    /// `None` where `prlimit` (util-linux) is missing.
    pub fn start_limited(database_url: &str, flags: &[&str], bytes: u64) -> Option<Self> {
        let found = Command::new("prlimit")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return None;
        }
        let mut command = Command::new("prlimit");
        // No core file from the abort that running out of it ends in.
        command
            .arg(format!("--as={bytes}"))
            .arg("--core=0")
            .arg(env!("CARGO_BIN_EXE_flowlab"));
        Some(Self::spawn(command, database_url, flags, &[]))
    }

    fn spawn(
        mut command: Command,
        database_url: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = command
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(flags)
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let address = line
            .trim()
            .strip_prefix("flowlab listening on ")
            .expect("listening line")
            .to_string();
        Self { child, address }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    /// The process id, which the trainer's owner name in the database contains.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether `owner` (of a lease or a training run) is this process's trainer: owners are
    /// `HOST-PID/SUFFIX`.
    pub fn owns(&self, owner: &str) -> bool {
        owner
            .rsplit_once('/')
            .is_some_and(|(process, _)| process.ends_with(&format!("-{}", self.pid())))
    }

    /// Sends SIGTERM (what `docker stop` and systemd send).
    pub fn terminate(&self) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("signal sent");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let server = Server::start(&db.url);
    let campaign = json!({"name": "durable", "space": {"type": "grid", "dims": 3, "size": 10},
                          "training": {"steps": 5, "batch_size": 4}, "model": {"hidden": 8}});
    let (status, created) = post(&client, format!("{}/campaigns", server.address), campaign).await;
    assert_eq!(status, 201);
    let id = created["id"].as_i64().expect("id");
    server.kill();

    let mut rounds = Vec::new();
    let mut labels_acknowledged = 0;
    for i in 0..8 {
        let server = Server::start(&db.url);
        if i % 2 == 0 {
            let (status, round) = post(
                &client,
                format!("{}/rounds", server.address),
                json!({"campaign_id": id, "batch_size": 3}),
            )
            .await;
            assert_eq!(status, 201, "{round}");
            server.kill();
            rounds.push(round);
        } else {
            let labels: Vec<Value> = (0..25)
                .map(|j| json!({"campaign_id": id, "value": [i, j % 10, j / 10], "reward": j as f64, "key": format!("{i}-{j}")}))
                .collect();
            let (status, outcome) = post(
                &client,
                format!("{}/labels", server.address),
                json!({"labels": labels}),
            )
            .await;
            assert_eq!(status, 200, "{outcome}");
            labels_acknowledged += outcome["accepted"].as_i64().expect("accepted");
            server.kill();
        }
    }

    let server = Server::start(&db.url);
    for round in &rounds {
        let r = client
            .get(format!("{}/rounds/{}", server.address, round["id"]))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
        let stored: Value = r.json().await.expect("json");
        let ids: Vec<&Value> = stored["candidates"]
            .as_array()
            .expect("c")
            .iter()
            .map(|c| &c["id"])
            .collect();
        let acked: Vec<&Value> = round["candidates"]
            .as_array()
            .expect("c")
            .iter()
            .map(|c| &c["id"])
            .collect();
        assert_eq!(
            ids, acked,
            "the acknowledged round and its candidates are stored"
        );
    }
    let page: Value = client
        .get(format!(
            "{}/campaigns/{id}/candidates?status=labelled&limit=1000",
            server.address
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let stored: i64 = page["candidates"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["observations"].as_i64().expect("n"))
        .sum();
    assert_eq!(stored, labels_acknowledged);
    assert_eq!(labels_acknowledged, 100);
    server.kill();
}
on_both_backends!(
    acknowledged_writes_survive_sigkill,
    acknowledged_writes_survive_sigkill
);

async fn get(client: &reqwest::Client, url: String) -> Value {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn a_restarted_server_resumes_from_the_newest_checkpoint(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let client = reqwest::Client::new();
    let server = Server::start(&db.url);
    let campaign = json!({"name": "resume", "space": {"type": "grid", "dims": 2, "size": 6},
                          "training": {"steps": 40, "batch_size": 8}, "model": {"hidden": 16}});
    let (_, created) = post(&client, format!("{}/campaigns", server.address), campaign).await;
    let id = created["id"].as_i64().expect("id");
    let labels: Vec<Value> = (0..10)
        .map(|i| json!({"campaign_id": id, "value": [i % 6, i / 6], "reward": (i % 4) as f64}))
        .collect();
    let (status, _) = post(
        &client,
        format!("{}/labels", server.address),
        json!({"labels": labels}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, round) = post(
        &client,
        format!("{}/rounds", server.address),
        json!({"campaign_id": id, "batch_size": 2, "wait_for_model": true}),
    )
    .await;
    assert_eq!(status, 201, "{round}");
    let before = get(&client, format!("{}/campaigns/{id}/model", server.address)).await;
    let version = before["version"].as_i64().expect("version");
    assert!(version >= 1, "{before}");
    let sample_url = |address: &str| format!("{address}/campaigns/{id}/model/sample?n=25&seed=7");
    let sampled = get(&client, sample_url(&server.address)).await;
    assert_eq!(sampled["model_version"], version);
    server.kill();

    let server = Server::start(&db.url);
    let after = get(&client, format!("{}/campaigns/{id}/model", server.address)).await;
    assert_eq!(
        after["version"], version,
        "same model version after the restart"
    );
    let resampled = get(&client, sample_url(&server.address)).await;
    assert_eq!(
        resampled, sampled,
        "same seed, same checkpoint, same candidates"
    );
    server.kill();
}
on_both_backends!(
    a_restarted_server_resumes_from_the_newest_checkpoint,
    a_restarted_server_resumes_from_the_newest_checkpoint
);

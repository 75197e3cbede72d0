//! The deployment files against the code, since no Docker engine runs here: the Dockerfile
//! and docker-compose.yml set only variables the server reads, agree on the port with
//! `--bind`, probe a route that exists, and point DATABASE_URL at the compose PostgreSQL; and
//! README's configuration reference lists exactly the settings `flowlab serve --help` shows.

use clap::CommandFactory;
use flowlab::http::ROUTES;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn repository_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `serve` subcommand as clap builds it.
fn serve_command() -> clap::Command {
    let mut cli = flowlab_cli::cli::Cli::command();
    cli.build();
    cli.find_subcommand("serve")
        .expect("a serve subcommand")
        .clone()
}

/// The settings of `serve`, without clap's own `--help`.
fn serve_arguments() -> Vec<clap::Arg> {
    serve_command()
        .get_arguments()
        .filter(|a| a.get_id() != "help")
        .cloned()
        .collect()
}

/// Every environment variable the server reads: those beside its flags, and the few read
/// elsewhere (the log filter, candle's thread count).
fn variables_the_server_reads() -> BTreeSet<String> {
    serve_arguments()
        .iter()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .chain(
            flowlab::config::ENVIRONMENT_ONLY
                .iter()
                .map(|v| v.to_string()),
        )
        .collect()
}

/// The port of `serve --bind`'s default.
fn default_port() -> u16 {
    let bind = serve_arguments()
        .into_iter()
        .find(|a| a.get_long() == Some("bind"))
        .expect("--bind");
    let default = bind.get_default_values()[0].to_string_lossy().into_owned();
    default
        .parse::<std::net::SocketAddr>()
        .expect("an address")
        .port()
}

/// `KEY=value` lines of .env.example.
fn env_example() -> BTreeMap<String, String> {
    repository_file(".env.example")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Compose's `${NAME}`, `${NAME:?message}`, `${NAME:-default}` with .env.example's values.
fn interpolate(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closing brace") + start;
        let expression = &rest[start + 2..end];
        let name_end = expression
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(expression.len());
        let (name, modifier) = expression.split_at(name_end);
        let value = match (env.get(name), modifier.strip_prefix(":-")) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => default.to_string(),
            (None, None) => panic!("${{{name}}} is not in .env.example"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// docker-compose.yml as JSON values.
fn compose() -> Value {
    serde_norway::from_str(&repository_file("docker-compose.yml")).expect("docker-compose.yml")
}

/// The compose service built from this repository's Dockerfile.
fn flowlab_service(compose: &Value) -> (&String, &Value) {
    let services = compose["services"].as_object().expect("services");
    let built: Vec<_> = services
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .collect();
    assert_eq!(built.len(), 1, "one service builds the Dockerfile");
    built[0]
}

/// The PostgreSQL service.
fn postgres_service(compose: &Value) -> (&String, &Value) {
    let services = compose["services"].as_object().expect("services");
    let postgres: Vec<_> = services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("postgres"))
        })
        .collect();
    assert_eq!(postgres.len(), 1, "one PostgreSQL service");
    postgres[0]
}

/// A service's `environment`, in either of compose's forms (map or `KEY=value` list).
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), value)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                let (k, v) = i.as_str().expect("KEY=value").split_once('=').expect("=");
                (k.to_string(), v.to_string())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("unexpected environment {other}"),
    }
}

/// One Dockerfile instruction: its keyword in upper case and its arguments, continuation
/// lines joined.
struct Instruction {
    keyword: String,
    arguments: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = repository_file("Dockerfile");
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, arguments) = pending
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((pending.trim(), ""));
                instructions.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    arguments: arguments.trim().to_string(),
                });
                pending.clear();
            }
        }
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside an instruction"
    );
    instructions
}

fn arguments_of<'a>(instructions: &'a [Instruction], keyword: &str) -> Vec<&'a str> {
    instructions
        .iter()
        .filter(|i| i.keyword == keyword)
        .map(|i| i.arguments.as_str())
        .collect()
}

/// Variables set by `ENV` in the final stage: `ENV K=V K2=V2` or the older `ENV K V`.
fn dockerfile_environment(instructions: &[Instruction]) -> BTreeMap<String, String> {
    let last_stage = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("a FROM");
    let mut env = BTreeMap::new();
    for arguments in arguments_of(&instructions[last_stage..], "ENV") {
        let first = arguments.split_whitespace().next().unwrap_or_default();
        if first.contains('=') {
            for pair in arguments.split_whitespace() {
                let (k, v) = pair.split_once('=').expect("KEY=value");
                env.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        } else {
            let (k, v) = arguments
                .split_once(char::is_whitespace)
                .expect("KEY value");
            env.insert(k.to_string(), v.trim().to_string());
        }
    }
    env
}

/// Port and path of the `http://host:port/path` a health check command probes.
fn probed_url(command: &str) -> (u16, String) {
    let url = command
        .split_whitespace()
        .find_map(|word| {
            word.trim_matches(['"', '\'', ',', '[', ']'])
                .strip_prefix("http://")
        })
        .unwrap_or_else(|| panic!("no http:// URL in {command}"));
    let (authority, path) = url.split_once('/').expect("a path");
    let port = authority
        .rsplit_once(':')
        .map(|(_, p)| p.parse().expect("a port"))
        .unwrap_or(80);
    (port, format!("/{path}"))
}

fn route_exists(path: &str) -> bool {
    ROUTES
        .iter()
        .any(|r| r.path == path && r.method.as_str() == "GET")
}

#[test]
fn deployment_files_set_only_variables_the_server_reads() {
    let reads = variables_the_server_reads();
    for name in [
        "FLOWLAB_BIND",
        "DATABASE_URL",
        "FLOWLAB_API_TOKEN",
        "RAYON_NUM_THREADS",
    ] {
        assert!(reads.contains(name), "the server no longer reads {name}?");
    }
    let from_dockerfile = dockerfile_environment(&dockerfile());
    let compose = compose();
    let (_, flowlab) = flowlab_service(&compose);
    let from_compose = environment(flowlab);
    for (file, set) in [
        ("Dockerfile", &from_dockerfile),
        ("docker-compose.yml", &from_compose),
    ] {
        let unknown: Vec<&String> = set.keys().filter(|k| !reads.contains(*k)).collect();
        assert!(
            unknown.is_empty(),
            "{file} sets variables flowlab never reads: {unknown:?}"
        );
    }
    // The candle thread cap is set in the image and by compose.
    for set in [&from_dockerfile, &from_compose] {
        assert!(set.contains_key("RAYON_NUM_THREADS"), "{set:?}");
    }
    // The secrets come from .env, and .env.example names each of them.
    let example = env_example();
    for name in ["DATABASE_URL", "FLOWLAB_API_TOKEN"] {
        assert!(
            from_compose[name].contains(&format!("${{{name}")),
            "compose takes {name} from .env"
        );
        assert!(example.contains_key(name), ".env.example lacks {name}");
    }
    let ignored = repository_file(".gitignore");
    assert!(
        ignored.lines().any(|l| l.trim() == ".env"),
        ".env is not ignored"
    );
}

#[test]
fn the_image_and_compose_listen_on_the_port_of_bind() {
    let port = default_port();
    let instructions = dockerfile();
    let exposed: Vec<u16> = arguments_of(&instructions, "EXPOSE")
        .iter()
        .flat_map(|a| a.split_whitespace())
        .map(|p| p.trim_end_matches("/tcp").parse().expect("a port"))
        .collect();
    assert_eq!(exposed, vec![port], "EXPOSE");
    let bind = &dockerfile_environment(&instructions)["FLOWLAB_BIND"];
    let bind: std::net::SocketAddr = bind.parse().expect("FLOWLAB_BIND is an address");
    assert_eq!(bind.port(), port, "the image's FLOWLAB_BIND");
    assert!(
        bind.ip().is_unspecified(),
        "reachable from outside the container"
    );

    let compose = compose();
    let (_, flowlab) = flowlab_service(&compose);
    if let Some(bind) = environment(flowlab).get("FLOWLAB_BIND") {
        let bind: std::net::SocketAddr = bind.parse().expect("compose's FLOWLAB_BIND");
        assert_eq!(bind.port(), port, "compose's FLOWLAB_BIND");
    }
    let mappings = flowlab["ports"].as_array().expect("a port mapping");
    assert!(!mappings.is_empty());
    for mapping in mappings {
        let mapping = mapping.as_str().expect("HOST:CONTAINER");
        let container: u16 = mapping
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches("/tcp").parse().ok())
            .expect("a container port");
        assert_eq!(container, port, "{mapping}");
    }
}

#[test]
fn health_checks_probe_the_open_healthz_route() {
    let instructions = dockerfile();
    let checks = arguments_of(&instructions, "HEALTHCHECK");
    assert_eq!(checks.len(), 1, "one HEALTHCHECK");
    let (port, path) = probed_url(checks[0]);
    assert_eq!(path, "/healthz");
    assert!(route_exists(&path), "GET {path} is not a route");
    assert!(
        flowlab::http::auth::OPEN_PATHS.contains(&path.as_str()),
        "{path} would need the token"
    );
    assert_eq!(port, default_port());
    // A health check of the flowlab service in compose, if any, probes the same.
    let compose = compose();
    let (_, flowlab) = flowlab_service(&compose);
    if let Some(test) = flowlab.get("healthcheck").map(|h| h["test"].to_string()) {
        assert_eq!(probed_url(&test), (port, path));
    }
}

#[test]
fn compose_runs_flowlab_after_a_healthy_postgres_with_its_data_on_a_volume() {
    let compose = compose();
    let (postgres_name, postgres) = postgres_service(&compose);
    let (_, flowlab) = flowlab_service(&compose);
    assert!(
        postgres["healthcheck"]["test"]
            .to_string()
            .contains("pg_isready"),
        "PostgreSQL has a health check"
    );
    assert_eq!(
        flowlab["depends_on"][postgres_name]["condition"], "service_healthy",
        "flowlab starts once PostgreSQL is healthy"
    );
    for service in [flowlab, postgres] {
        assert!(
            service["restart"]
                .as_str()
                .is_some_and(|r| r == "always" || r == "unless-stopped"),
            "a restart policy: {service}"
        );
    }
    // The data directory is on a named volume declared at the top level.
    let volumes = postgres["volumes"].as_array().expect("volumes");
    let data = volumes
        .iter()
        .filter_map(Value::as_str)
        .find(|v| v.ends_with(":/var/lib/postgresql/data"))
        .expect("a volume on the data directory");
    let volume = data.split(':').next().expect("a volume name");
    assert!(
        compose["volumes"].get(volume).is_some(),
        "{volume} is not a named volume"
    );
}

#[test]
fn the_database_url_names_the_compose_postgres_with_its_role_and_database() {
    let compose = compose();
    let (postgres_name, postgres) = postgres_service(&compose);
    let (_, flowlab) = flowlab_service(&compose);
    let example = env_example();
    let url = interpolate(&environment(flowlab)["DATABASE_URL"], &example);
    let postgres_env: BTreeMap<String, String> = environment(postgres)
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, &example)))
        .collect();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("not a PostgreSQL URL: {url}"));
    let (credentials, location) = rest.split_once('@').expect("user@host");
    let (user, password) = credentials.split_once(':').expect("user:password");
    let (authority, database) = location.split_once('/').expect("host/database");
    let host = authority.split(':').next().expect("a host");
    assert_eq!(host, postgres_name, "DATABASE_URL's host");
    assert_eq!(user, postgres_env["POSTGRES_USER"]);
    assert_eq!(password, postgres_env["POSTGRES_PASSWORD"]);
    assert_eq!(database, postgres_env["POSTGRES_DB"]);
}

#[test]
fn the_image_is_built_in_stages_and_runs_as_an_unprivileged_user() {
    let instructions = dockerfile();
    let stages = arguments_of(&instructions, "FROM");
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    assert!(
        arguments_of(&instructions, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release")),
        "a release build"
    );
    let runtime = stages.last().expect("a runtime stage");
    assert!(
        !runtime.starts_with("rust"),
        "the runtime image is not the Rust toolchain: {runtime}"
    );
    let last_stage = instructions
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("FROM");
    let users = arguments_of(&instructions[last_stage..], "USER");
    let user = users.last().expect("a USER in the runtime stage");
    assert!(!["root", "0"].contains(user), "runs as {user}");
    let ignored = repository_file(".dockerignore");
    assert!(ignored.lines().any(|l| l.trim() == "target"));
}

/// README's configuration reference as (flag, variable, default) rows; a variable without a
/// flag has an empty flag.
fn readme_reference() -> Vec<(String, String, String)> {
    let readme = repository_file("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Configuration reference"))
        .expect("a \"Configuration reference\" section in README.md");
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect();
            assert!(cells.len() >= 4, "a row of four cells: {l}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

#[test]
fn readme_configuration_reference_matches_serve_help() {
    let help = Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--help"])
        .output()
        .expect("the binary runs");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut expected = BTreeSet::new();
    for arg in serve_arguments() {
        let flag = format!("--{}", arg.get_long().expect("a long flag"));
        let variable = arg
            .get_env()
            .unwrap_or_else(|| panic!("{flag} has no environment variable"))
            .to_string_lossy()
            .into_owned();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let default = if !arg.get_action().takes_values() {
            "off".to_string()
        } else if defaults.is_empty() {
            "none".to_string()
        } else {
            defaults.join(",")
        };
        assert!(help.contains(&flag), "--help lacks {flag}");
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help lacks {variable}"
        );
        if arg.get_action().takes_values() && !defaults.is_empty() {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "--help lacks the default of {flag}"
            );
        }
        expected.insert((flag, variable, default));
    }
    for variable in flowlab::config::ENVIRONMENT_ONLY {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().next() == Some(variable))
            .unwrap_or_else(|| panic!("--help does not list {variable}"));
        let default = line
            .rsplit_once("[default: ")
            .and_then(|(_, d)| d.strip_suffix(']'))
            .unwrap_or_else(|| panic!("no default for {variable} in --help: {line}"));
        expected.insert((String::new(), variable.to_string(), default.to_string()));
    }
    let documented: BTreeSet<(String, String, String)> = readme_reference().into_iter().collect();
    let undocumented: Vec<_> = expected.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "in `serve --help` but not (or otherwise) in README's reference: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&expected).collect();
    assert!(
        unknown.is_empty(),
        "in README's reference but not (or otherwise) in `serve --help`: {unknown:?}"
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn serve_on_cuda_without_the_feature_refuses_to_start_and_says_why() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let database = dir.path().join("flowlab.db");
    let output = Command::new(env!("CARGO_BIN_EXE_flowlab"))
        .args(["serve", "--bind", "127.0.0.1:0", "--device", "cuda"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .expect("the binary runs");
    assert!(!output.status.success(), "it started");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--device cuda") && stderr.contains("--features cuda"),
        "{stderr}"
    );
    assert!(!database.exists(), "refused before opening the database");
}

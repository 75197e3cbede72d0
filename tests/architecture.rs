//! The rules of the server library's layout, read off its source so that they stay true:
//! which layer may name which, where SQL, HTTP and tensor crates may appear, what the server
//! may depend on, and that the documents a user reads stand on their own.
//!
//! Layers are the top-level modules of `src/` (`gfn/` is the engine). Comment lines are
//! skipped: a module's documentation may say what it does not import.

#![allow(clippy::expect_used)] // an unreadable source file is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// A source file of the server library: its layer and its code without comment lines.
struct Source {
    /// Path relative to `src/`, e.g. `gfn/space/mod.rs`.
    relative: String,
    /// `gfn`, `store`, ... for a directory module; the file stem for `app.rs` and the like.
    layer: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = root().join("src");
    rust_files(&src)
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            let layer = relative
                .split('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            let text = std::fs::read_to_string(&path).expect("readable source");
            let code = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            Source {
                relative,
                layer,
                code,
            }
        })
        .collect()
}

/// The modules of this crate that `code` names as `crate::NAME`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Whether `code` uses the external crate `name` (as a path `name::` or `use name`).
fn uses_crate(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = &code[at + name.len()..];
        let starts_word =
            !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        starts_word
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

/// The crate modules each layer may name (besides itself).
fn allowed_layers(layer: &str) -> Option<&'static [&'static str]> {
    Some(match layer {
        // The engine stands alone: spaces, networks, objectives, sampling.
        "gfn" => &[],
        "error" | "telemetry" => &[],
        "domain" => &["gfn", "error"],
        "proxy" => &["gfn", "domain"],
        "model" => &["gfn", "proxy"],
        "store" => &["gfn", "domain", "error"],
        "trainer" => &[
            "gfn", "domain", "proxy", "model", "store", "metrics", "error",
        ],
        "service" => &[
            "gfn", "domain", "proxy", "model", "store", "trainer", "metrics", "config", "error",
        ],
        "http" => &[
            "service", "gfn", "domain", "proxy", "model", "store", "trainer", "metrics", "config",
            "error",
        ],
        _ => return None,
    })
}

#[test]
fn each_layer_names_only_the_layers_beneath_it() {
    let mut broken = Vec::new();
    for source in sources() {
        let Some(allowed) = allowed_layers(&source.layer) else {
            continue;
        };
        for module in crate_modules(&source.code) {
            if module != source.layer && !allowed.contains(&module.as_str()) {
                broken.push(format!("{} names crate::{module}", source.relative));
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn sql_lives_in_the_store_and_http_in_the_web_layer() {
    let mut broken = Vec::new();
    for source in sources() {
        let layer = source.layer.as_str();
        if uses_crate(&source.code, "sqlx") && layer != "store" {
            broken.push(format!("{}: sqlx outside store/", source.relative));
        }
        for web in ["axum", "tower_http"] {
            if uses_crate(&source.code, web) && !matches!(layer, "http" | "app") {
                broken.push(format!(
                    "{}: {web} outside http/ and app.rs",
                    source.relative
                ));
            }
        }
        // The engine is synchronous: no async runtime, no web or storage crates.
        if layer == "gfn" {
            for forbidden in ["tokio", "axum", "sqlx", "prometheus"] {
                if uses_crate(&source.code, forbidden) {
                    broken.push(format!("{}: the engine uses {forbidden}", source.relative));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The OpenAPI document comes from the web layer's own bodies: no other layer names
/// `utoipa` (the engine's and the domain's settings are described by types in `http/`).
#[test]
fn openapi_schemas_stay_in_the_web_layer() {
    let outside: Vec<String> = sources()
        .into_iter()
        .filter(|s| s.layer != "http" && uses_crate(&s.code, "utoipa"))
        .map(|s| s.relative)
        .collect();
    assert!(outside.is_empty(), "utoipa outside http/ in {outside:?}");
}

/// The `[dependencies]` table of a manifest: the names of its entries.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && !line.is_empty() && !line.starts_with('#') {
            let name = line
                .split(['=', '.', ' '])
                .next()
                .unwrap_or_default()
                .trim();
            names.insert(name.to_string());
        }
    }
    names
}

#[test]
fn the_server_library_depends_on_no_client_progress_bar_or_plotting_crate() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let deps = dependencies(&manifest);
    assert!(deps.contains("axum"), "the table was read: {deps:?}");
    for tool in ["reqwest", "indicatif", "plotters", "anyhow"] {
        assert!(!deps.contains(tool), "the server depends on {tool}");
    }
}

/// What a reader who cloned the repository does not have: the planning documents beside
/// it, and the numbers of the tracker's issues.
fn outside_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = text.to_lowercase();
    for needle in [
        "../shared",
        "shared/bench",
        "spec.md",
        "design.md",
        "style.md",
        "spec §",
    ] {
        if lower.contains(needle) {
            found.push(needle.to_string());
        }
    }
    for (at, _) in lower.match_indices("issue") {
        let rest = lower[at + "issue".len()..].trim_start_matches([' ', '#']);
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            found.push(lower[at..(at + 12).min(lower.len())].to_string());
        }
    }
    found
}

#[test]
fn outside_references_are_found() {
    assert_eq!(
        outside_references("see ../shared/SPEC.md"),
        ["../shared", "spec.md"]
    );
    assert_eq!(outside_references("fixed in issue 4."), ["issue 4."]);
    assert_eq!(outside_references("Issue #12 says"), ["issue #12 sa"]);
    assert!(outside_references("an issue of the proxy; issues with 3 seeds").is_empty());
}

#[test]
fn the_documents_a_user_reads_stand_on_their_own() {
    let mut documents = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("proto-docs")).expect("proto-docs") {
        documents.push(entry.expect("an entry").path());
    }
    let architecture = root().join("ARCHITECTURE.md");
    if architecture.exists() {
        documents.push(architecture);
    }
    let mut found = Vec::new();
    for document in &documents {
        let text = std::fs::read_to_string(document).expect("readable");
        for reference in outside_references(&text) {
            found.push(format!("{}: {reference}", document.display()));
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}

/// Most lines (comment lines not counted) of a production function.
const FUNCTION_LINES: usize = 80;

/// Functions still longer than [`FUNCTION_LINES`], with their length today. The list may
/// only shrink: a function may not grow past its figure, a new long function fails, and an
/// entry whose function got short enough must go.
const LONG_FUNCTIONS: &[(&str, &str, usize)] = &[];

/// A function of a source file outside its test module.
struct Function {
    name: String,
    /// Whether it is declared `async`.
    asynchronous: bool,
    /// From the `fn` line to the line that opens the body.
    signature: String,
    /// The body's lines, after the signature up to the closing brace.
    body: String,
    /// Length in lines from the `fn` line to the closing brace.
    lines: usize,
}

/// The functions of `code` (a source without comment lines) outside its test module. rustfmt
/// puts a body's closing brace at the indentation of the `fn` line, which is what this
/// relies on.
fn functions(code: &str) -> Vec<Function> {
    let lines: Vec<&str> = code.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].starts_with("mod tests"))
        .unwrap_or(lines.len());
    let mut found = Vec::new();
    let mut i = 0;
    while i < end {
        let line = lines[i];
        let trimmed = line.trim_start();
        let Some(name) = function_name(trimmed) else {
            i += 1;
            continue;
        };
        let indent = line.len() - trimmed.len();
        // The signature runs to a line ending in `{` (a body) or `;` (a declaration).
        let mut open = i;
        while open < end && !lines[open].trim_end().ends_with(['{', ';']) {
            open += 1;
        }
        if open >= end || lines[open].trim_end().ends_with(';') {
            i = open + 1;
            continue;
        }
        let closing = format!("{}}}", " ".repeat(indent));
        let mut close = open;
        while close < end && lines[close].trim_end() != closing {
            close += 1;
        }
        found.push(Function {
            name,
            asynchronous: trimmed.contains("async fn "),
            signature: lines[i..=open].join("\n"),
            body: lines[(open + 1).min(close)..close].join("\n"),
            lines: close - i + 1,
        });
        i = close + 1;
    }
    found
}

/// The functions of `code` with their length in lines.
fn function_lengths(code: &str) -> Vec<(String, usize)> {
    functions(code)
        .into_iter()
        .map(|f| (f.name, f.lines))
        .collect()
}

/// The name of the function a line declares, if it does.
fn function_name(trimmed: &str) -> Option<String> {
    let mut rest = trimmed;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "async ",
        "const ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
        rest = rest.strip_prefix("async ").unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[test]
fn function_lengths_are_measured_to_the_closing_brace() {
    let code = "fn a() {\n    x();\n}\npub async fn b(\n    y: u8,\n) -> u8 {\n    if y {\n    }\n    y\n}\n    fn c();\n#[cfg(test)]\nmod tests {\nfn d() {\n}\n}";
    assert_eq!(
        function_lengths(code),
        [("a".to_string(), 3), ("b".to_string(), 7)]
    );
}

#[test]
fn production_functions_stay_short() {
    let mut broken = Vec::new();
    let mut still_long = BTreeSet::new();
    for source in sources() {
        for (name, length) in function_lengths(&source.code) {
            let listed = LONG_FUNCTIONS
                .iter()
                .find(|(file, f, _)| *file == source.relative && *f == name);
            match listed {
                Some(&(_, _, max)) if length <= max && length > FUNCTION_LINES => {
                    still_long.insert((source.relative.clone(), name));
                }
                Some(&(_, _, max)) if length <= max => {}
                Some(&(_, _, max)) => broken.push(format!(
                    "{}: {name} grew to {length} lines (listed at {max})",
                    source.relative
                )),
                None if length > FUNCTION_LINES => broken.push(format!(
                    "{}: {name} has {length} lines (at most {FUNCTION_LINES})",
                    source.relative
                )),
                None => {}
            }
        }
    }
    for (file, name, _) in LONG_FUNCTIONS {
        if !still_long.contains(&(file.to_string(), name.to_string())) {
            broken.push(format!(
                "{file}: {name} is no longer over {FUNCTION_LINES} lines: take it off LONG_FUNCTIONS"
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Most lines of a request handler: it reads the request, calls one service function and
/// shapes the answer; anything longer belongs in the service layer.
const HANDLER_LINES: usize = 40;

/// Whether `signature` is that of an axum handler: an `async fn` taking an extractor.
fn is_handler(function: &Function) -> bool {
    function.asynchronous
        && ["State<", "Path<", "Query<", "Json<", "Bytes", "HeaderMap"]
            .iter()
            .any(|extractor| function.signature.contains(extractor))
}

#[test]
fn handlers_are_short_and_answer_with_typed_bodies() {
    let mut broken = Vec::new();
    let mut handlers = 0;
    for source in sources().into_iter().filter(|s| s.layer == "http") {
        for function in functions(&source.code).iter().filter(|f| is_handler(f)) {
            handlers += 1;
            if function.lines > HANDLER_LINES {
                broken.push(format!(
                    "{}: handler {} has {} lines (at most {HANDLER_LINES})",
                    source.relative, function.name, function.lines
                ));
            }
            if function.body.contains("json!") {
                broken.push(format!(
                    "{}: handler {} builds its body with json!; answer with a typed body",
                    source.relative, function.name
                ));
            }
        }
    }
    assert!(handlers >= 20, "the handlers were found: {handlers}");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// Where an error is turned into text before it reaches the edge, its source is lost: the
/// service's errors and the layers beneath keep theirs as typed sources.
#[test]
fn errors_are_typed_not_strings() {
    let mut broken = Vec::new();
    for source in sources() {
        if matches!(source.layer.as_str(), "http" | "config" | "main") {
            continue;
        }
        for function in functions(&source.code) {
            // A `Result<_, String>` return type closes the signature as `, String> {`.
            let returns = function.signature.split("->").nth(1).unwrap_or_default();
            if returns.contains("Result<") && returns.trim_end().ends_with(", String> {") {
                broken.push(format!(
                    "{}: {} fails with a String",
                    source.relative, function.name
                ));
            }
        }
        if source.code.contains("map_err(|e| e.to_string())") {
            broken.push(format!(
                "{}: an error flattened to a String",
                source.relative
            ));
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

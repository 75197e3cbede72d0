//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types. `flowlab openapi` prints it;
//! proto-docs/openapi.json is that output, and a test here fails when the file is stale or
//! when a route of [`super::ROUTES`] or [`super::dashboard::ROUTES`] is missing from the
//! document.
//!
//! The browser dashboard's routes are in it too, apart: tagged `dashboard`, each operation
//! marked `x-flowlab-html: true`, with `text/html` answers for the pages. They are not part
//! of the JSON API, and a browser's session cookie (scheme `session`) opens them.
//!
//! Most schemas are derived from the types the handlers (de)serialise. Where a handler builds
//! its JSON with `json!` or returns a type from a module that stays free of utoipa, a
//! documentation-only type beside the handler (or here) describes the shape.

use super::dashboard::{self, assets, signin};
use super::{campaigns, candidates, error, health, labels, metrics, model, preview, rounds};
use crate::domain::{campaign, label, round, CandidateValue};
use crate::gfn::{BackwardPolicy, GfnConfig, Objective, SpaceSpec};
use utoipa::OpenApi;

/// The model of a campaign as `GET /campaigns/{id}/model` answers it: documents
/// `store::training::ModelOverview` (the store does not depend on utoipa); a test holds the
/// two together.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ModelOverview {
    /// Newest checkpoint version, 0 before any.
    pub version: i64,
    pub status: ModelStatus,
    /// Why the last run failed, when `status` is `failed`.
    #[schema(required)]
    pub error: Option<String>,
    /// Successful observations the newest checkpoint was trained on, 0 before any.
    pub trained_on_labels: i64,
    /// Observations the newest checkpoint was trained on, failed ones included, 0 before
    /// any. Every accepted label schedules training, and `wait_for_model` waits on this.
    pub trained_on_observations: i64,
    /// Total optimisation steps of the newest checkpoint.
    pub steps: i64,
    /// Loss reported with the newest checkpoint.
    #[schema(required)]
    pub loss: Option<f64>,
    /// Held-out quality of the newest checkpoint's proxy; null until a run measured one (it
    /// needs at least 10 labels).
    #[schema(required)]
    pub proxy: Option<crate::proxy::ProxyQuality>,
    /// RFC 3339, UTC: latest of the newest checkpoint's creation and the newest run's start
    /// or finish; null before any training.
    #[schema(required)]
    pub updated_at: Option<String>,
    /// Training runs, newest first, at most 50.
    pub history: Vec<TrainingRun>,
}

/// Where a campaign's model stands.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// No checkpoint and no run yet.
    Untrained,
    /// A run is in progress.
    Training,
    /// The newest run finished; rounds use its checkpoint.
    Ready,
    /// The last run failed; `error` says why.
    Failed,
}

/// One training run (documents `store::training::TrainingRunRow`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TrainingRun {
    /// The run's id, increasing in start order.
    pub id: i64,
    /// The trainer (process) that ran it.
    pub owner: String,
    pub status: RunStatus,
    /// Successful observations the run trained on.
    pub labels: i64,
    /// Observations the run trained on, failed ones included.
    pub observations: i64,
    /// Optimisation steps of this run alone.
    pub steps: i64,
    /// Mean loss of the run's last steps (succeeded runs only).
    #[schema(required)]
    pub loss: Option<f64>,
    /// The checkpoint version it wrote (succeeded runs only).
    #[schema(required)]
    pub version: Option<i64>,
    /// Why the run failed or was cancelled.
    #[schema(required)]
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; null while running.
    #[schema(required)]
    pub finished_at: Option<String>,
    /// Held-out quality of the proxy the run fit; null when it fit none or had too few
    /// labels to hold some out.
    #[schema(required)]
    pub proxy: Option<crate::proxy::ProxyQuality>,
}

/// How a training run ended, or that it has not yet.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// The document: every route of [`super::ROUTES`] and the schemas they use.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowlab",
        version = env!("CARGO_PKG_VERSION"),
        description = "Active-learning service for black-box reward oracles, driven by GFlowNets. \
            This document says what each endpoint takes and answers; what the answers mean \
            (the loop, idempotency keys, all-or-nothing batches, error codes) is in \
            proto-docs/PROTOCOL.md. Generated by `flowlab openapi`.",
    ),
    paths(
        health::healthz,
        campaigns::create,
        campaigns::list,
        campaigns::get,
        candidates::list,
        model::get,
        preview::sample,
        rounds::create,
        rounds::get,
        rounds::abandon,
        labels::create,
        metrics::metrics,
        dashboard::index,
        dashboard::page,
        dashboard::data,
        assets::asset,
        signin::form,
        signin::submit,
    ),
    components(schemas(
        campaign::NewCampaign,
        campaign::CampaignSpec,
        campaign::Campaign,
        campaign::RewardSpec,
        campaign::Acquisition,
        campaign::Transform,
        campaign::TrainingSpec,
        SpaceSpec,
        GfnConfig,
        Objective,
        BackwardPolicy,
        CandidateValue,
        round::RoundRequest,
        round::Round,
        round::ProposedCandidate,
        round::CandidateSource,
        label::LabelsRequest,
        label::LabelItem,
        label::LabelsOutcome,
        error::ErrorBody,
        error::ErrorDetail,
        error::ErrorCode,
        health::Health,
        campaigns::CampaignList,
        campaigns::CampaignDetail,
        campaigns::CampaignStats,
        campaigns::BestCandidate,
        candidates::CandidatePage,
        candidates::ListedCandidate,
        candidates::CandidateStatusDoc,
        rounds::RoundDetail,
        rounds::RoundCandidate,
        rounds::StoredLabel,
        preview::ModelSample,
        ModelOverview,
        model::ModelDetail,
        model::RoundFigures,
        crate::proxy::prospective::ProspectiveQuality,
        crate::proxy::prospective::ProspectiveSummary,
        ModelStatus,
        TrainingRun,
        RunStatus,
        signin::SignIn,
    )),
    modifiers(&BearerAuth, &Links, &AssetNames),
    tags(
        (name = "health", description = "Liveness and metrics"),
        (name = "campaigns", description = "A candidate space with its reward, model and training settings"),
        (name = "rounds", description = "Batches of new candidates proposed for measurement"),
        (name = "labels", description = "Measurements posted by the lab"),
        (name = "candidates", description = "Every candidate of a campaign with its aggregates"),
        (name = "model", description = "The campaign's GFlowNet"),
        (name = "dashboard", description = "The browser dashboard: HTML pages, the data their script polls, their assets and the sign-in form. Not part of the JSON API (each operation is marked `x-flowlab-html: true`); their answers follow the pages and may change with them."),
    )
)]
pub struct ApiDoc;

/// The bearer token of the protocol: declared once as the document's security requirement, lifted
/// on the open paths, and a 401 added to every other operation of the JSON API, so that the
/// handlers' annotations need not repeat it. The dashboard's operations say what they
/// answer themselves (a page redirects to the sign-in form rather than answering 401) and
/// also take the browser's session cookie, declared here as the scheme `session`.
struct BearerAuth;

/// The tag of the dashboard's operations.
pub const DASHBOARD_TAG: &str = "dashboard";

/// The extension that marks the dashboard's operations.
pub const HTML_EXTENSION: &str = "x-flowlab-html";

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::content::ContentBuilder;
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{HeaderBuilder, Ref, ResponseBuilder};
        const SCHEME: &str = "bearer";
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                SCHEME,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "The server's FLOWLAB_API_TOKEN, when it has one; without a \
                             token the server accepts every request.",
                        ))
                        .build(),
                ),
            );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    super::auth::SESSION_COOKIE,
                    "The dashboard's session: set by `POST /signin` for the right token, \
                     derived from it without containing it. Opens the dashboard's pages, their \
                     data and `GET /campaigns/{id}/candidates` only, never a write.",
                ))),
            );
        openapi.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
        let unauthorized = ResponseBuilder::new()
            .description("`unauthorized`: the server requires a bearer token and the request has none, or another one")
            .header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .description(Some("`Bearer realm=\"flowlab\"`"))
                    .build(),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                let browser = operation
                    .tags
                    .as_ref()
                    .is_some_and(|tags| tags.iter().any(|t| t == DASHBOARD_TAG));
                let open = if browser {
                    super::dashboard::is_open(path)
                } else {
                    super::auth::OPEN_PATHS.contains(&path.as_str())
                };
                if browser && !open {
                    // Its annotation names the bearer header and the session, and its answers.
                    continue;
                }
                if open {
                    // An empty requirement: this operation needs nothing.
                    operation.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    operation
                        .responses
                        .responses
                        .insert("401".to_string(), unauthorized.clone().into());
                }
            }
        }
    }
}

/// OpenAPI links from the answers that create a campaign or a round to the operations that
/// take its id, so that a client generator (or a schema fuzzer's stateful phase) can follow
/// the loop: create a campaign, ask for a round, post labels for its candidates, read it back.
struct Links;

/// `(source operation, answer status, link name, target operation, path or query parameters,
/// request body)`: runtime expressions in the body are evaluated where they appear.
type LinkSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<fn() -> serde_json::Value>,
);

const CAMPAIGN_ID: &str = "$response.body#/id";
const ROUND_ID: &str = "$response.body#/id";

const LINKS: &[LinkSpec] = &[
    (
        "create_campaign",
        "201",
        "GetCampaign",
        "get_campaign",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "ListCandidates",
        "list_candidates",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "GetModel",
        "get_model",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "SampleModel",
        "sample_model",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "DashboardPage",
        "dashboard_page",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "DashboardData",
        "dashboard_data",
        &[("id", CAMPAIGN_ID)],
        None,
    ),
    (
        "create_campaign",
        "201",
        "CreateRound",
        "create_round",
        &[],
        Some(|| serde_json::json!({ "campaign_id": CAMPAIGN_ID, "batch_size": 4 })),
    ),
    (
        "create_round",
        "201",
        "GetRound",
        "get_round",
        &[("id", ROUND_ID)],
        None,
    ),
    (
        "create_round",
        "201",
        "AbandonRound",
        "abandon_round",
        &[("id", ROUND_ID)],
        None,
    ),
    (
        "create_round",
        "201",
        "GetRoundCampaign",
        "get_campaign",
        &[("id", "$response.body#/campaign_id")],
        None,
    ),
    (
        "create_round",
        "201",
        "LabelFirstCandidate",
        "create_labels",
        &[],
        Some(|| {
            serde_json::json!({
                "labels": [{ "candidate_id": "$response.body#/candidates/0/id", "reward": 1.0 }]
            })
        }),
    ),
];

impl utoipa::Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::link::LinkBuilder;
        use utoipa::openapi::RefOr;
        for (source, status, name, target, parameters, body) in LINKS {
            let operation = openapi.paths.paths.values_mut().find_map(|item| {
                [&mut item.get, &mut item.post]
                    .into_iter()
                    .flatten()
                    .find(|operation| operation.operation_id.as_deref() == Some(*source))
            });
            // A link from an operation or answer that is not in the document would be a
            // mistake in the table above; the tests below catch it, the document skips it.
            let Some(operation) = operation else { continue };
            let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
                continue;
            };
            let mut link = LinkBuilder::new().operation_id(*target);
            for (parameter, expression) in *parameters {
                link = link.parameter(*parameter, *expression);
            }
            link = link.request_body(body.map(|make| make()));
            response
                .links
                .insert((*name).to_string(), link.build().into());
        }
    }
}

/// Lists the dashboard's asset names as the values of `GET /dashboard/assets/{name}`'s
/// parameter, from the table the handler serves, so that a client (or a schema fuzzer)
/// knows which names exist.
struct AssetNames;

impl utoipa::Modify for AssetNames {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let Some(get) = openapi
            .paths
            .paths
            .get_mut("/dashboard/assets/{name}")
            .and_then(|item| item.get.as_mut())
        else {
            return;
        };
        for parameter in get.parameters.iter_mut().flatten() {
            if parameter.name == "name" {
                let names: Vec<&str> = assets::names().collect();
                parameter.schema = Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(names))
                        .into(),
                );
            }
        }
    }
}

/// The document as pretty JSON with a final newline: exactly what `flowlab openapi` prints
/// and proto-docs/openapi.json holds. Paths, schemas and maps are in a fixed order
/// (properties as declared), so the text only changes when the API does.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    let text = ApiDoc::openapi().to_pretty_json()?;
    // utoipa 5.5 writes a Link Object's fields under their Rust names; OpenAPI spells them
    // in camel case. No other object of the document has fields of these names (a test
    // checks that none is left).
    let mut text = text
        .replace("\"operation_id\": ", "\"operationId\": ")
        .replace("\"request_body\": ", "\"requestBody\": ");
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    fn document() -> Value {
        serde_json::from_str(&openapi_json().expect("the document serialises")).expect("JSON")
    }

    fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {schema} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    #[test]
    fn committed_openapi_json_matches_the_code() {
        let generated = openapi_json().expect("the document serialises");
        // Read at run time: a missing file is stale too, not a build failure.
        let committed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proto-docs/openapi.json"
        ))
        .unwrap_or_default();
        assert!(
            committed == generated,
            "proto-docs/openapi.json is stale: run `cargo run -- openapi > proto-docs/openapi.json`"
        );
    }

    /// (path, lower-case method) of each route.
    fn pairs(routes: &[super::super::Route]) -> BTreeSet<(String, String)> {
        routes
            .iter()
            .map(|r| (r.path.to_string(), r.method.as_str().to_ascii_lowercase()))
            .collect()
    }

    /// Every operation of the document: (path, method, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .iter()
                    .filter(|(method, _)| *method != "parameters")
                    .map(move |(method, op)| (path.clone(), method.clone(), op.clone()))
            })
            .collect()
    }

    /// The content types a response names; none for a redirect.
    fn content_types(response: &Value) -> BTreeSet<String> {
        response["content"]
            .as_object()
            .map(|content| content.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn is_dashboard(operation: &Value) -> bool {
        operation["tags"]
            .as_array()
            .is_some_and(|tags| tags.contains(&Value::from(DASHBOARD_TAG)))
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let doc = document();
        let api = pairs(super::super::ROUTES);
        let browser = pairs(super::super::dashboard::ROUTES);
        assert_eq!(
            api.len(),
            super::super::ROUTES.len(),
            "ROUTES lists a route twice"
        );
        assert_eq!(
            browser.len(),
            super::super::dashboard::ROUTES.len(),
            "dashboard::ROUTES lists a route twice"
        );
        assert!(
            api.is_disjoint(&browser),
            "a route is both API and dashboard"
        );
        let routed: BTreeSet<(String, String)> = api.union(&browser).cloned().collect();
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                keys(item)
                    .into_iter()
                    .filter(|k| k != "parameters")
                    .map(move |method| (path.clone(), method))
            })
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        assert!(
            undocumented.is_empty(),
            "routes without #[utoipa::path] in ApiDoc: {undocumented:?}"
        );
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            unrouted.is_empty(),
            "documented operations missing from http::ROUTES: {unrouted:?}"
        );
        // The dashboard's routes, and only they, are tagged and marked as the browser's.
        for (path, method, operation) in operations(&doc) {
            let dashboard = browser.contains(&(path.clone(), method.clone()));
            assert_eq!(is_dashboard(&operation), dashboard, "{method} {path}'s tag");
            let marked = operation.get(HTML_EXTENSION);
            if dashboard {
                assert_eq!(marked, Some(&Value::Bool(true)), "{method} {path}");
            } else {
                assert_eq!(marked, None, "{method} {path} is API, not HTML");
            }
        }
    }

    #[test]
    fn the_dashboard_pages_answer_html_and_the_api_answers_json() {
        let doc = document();
        let mut pages = BTreeSet::new();
        for (path, method, operation) in operations(&doc) {
            let ok = operation["responses"]
                .as_object()
                .expect("responses")
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .map(|(_, response)| content_types(response))
                .unwrap_or_default();
            if ok.contains("text/html") {
                assert!(is_dashboard(&operation), "{method} {path} answers HTML");
                pages.insert(format!("{} {path}", method.to_ascii_uppercase()));
            } else if !is_dashboard(&operation) && path != "/metrics" {
                assert!(ok.contains("application/json"), "{method} {path}: {ok:?}");
            }
        }
        let expected = ["GET /", "GET /campaigns/{id}/dashboard", "GET /signin"];
        assert_eq!(pages, expected.map(String::from).into());
        // Prometheus' text format, as before the dashboard.
        let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"];
        assert_eq!(
            content_types(metrics),
            ["text/plain; version=0.0.4".to_string()].into()
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = document();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("path item").values())
            .map(|op| op["operationId"].as_str().expect("an operationId"))
            .collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    #[test]
    fn every_link_lands_on_an_operation_and_names_its_parameters() {
        let doc = document();
        let ops = operations(&doc);
        let by_id = |id: &str| {
            ops.iter()
                .find(|(_, _, op)| op["operationId"] == id)
                .map(|(_, _, op)| op.clone())
        };
        let text = openapi_json().expect("the document serialises");
        assert!(
            !text.contains("\"operation_id\"") && !text.contains("\"request_body\""),
            "a link field under its Rust name"
        );
        let mut followed = BTreeSet::new();
        for (source, status, name, target, parameters, body) in LINKS {
            let op = by_id(source).unwrap_or_else(|| panic!("no operation {source}"));
            let link = &op["responses"][*status]["links"][*name];
            assert_eq!(link["operationId"], *target, "{source} {status} {name}");
            let target_op = by_id(target).unwrap_or_else(|| panic!("no operation {target}"));
            let declared: BTreeSet<&str> = target_op["parameters"]
                .as_array()
                .map(|list| list.iter().filter_map(|p| p["name"].as_str()).collect())
                .unwrap_or_default();
            for (parameter, _) in *parameters {
                assert!(
                    declared.contains(parameter),
                    "{target} takes no {parameter}"
                );
            }
            // A link with a body goes to an operation that takes one, and every required
            // parameter of the target is given.
            assert_eq!(
                body.is_some(),
                target_op.get("requestBody").is_some(),
                "{name}"
            );
            for required in target_op["parameters"].as_array().into_iter().flatten() {
                if required["required"] == true {
                    let given = required["name"].as_str().expect("a name");
                    assert!(
                        parameters.iter().any(|(p, _)| *p == given),
                        "{name} leaves {target}'s {given} out"
                    );
                }
            }
            followed.insert(*target);
        }
        // Every operation of the JSON API that takes a campaign's or a round's id is reached.
        for (path, _, op) in &ops {
            if path.contains("{id}") && !is_dashboard(op) {
                let id = op["operationId"].as_str().expect("an operationId");
                assert!(followed.contains(id), "no link reaches {id}");
            }
        }
    }

    #[test]
    fn every_schema_reference_resolves() {
        fn refs(value: &Value, out: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        match (k.as_str(), v) {
                            ("$ref", Value::String(r)) => out.push(r.clone()),
                            _ => refs(v, out),
                        }
                    }
                }
                Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} is not in components.schemas"
            );
        }
    }

    #[test]
    fn every_operation_answers_errors_with_the_error_body() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let error = status.starts_with('4') || status.starts_with('5');
                    // A dashboard page answers its errors with a page (HTML or text).
                    let page = is_dashboard(operation)
                        && response["content"].get("application/json").is_none();
                    if page && error {
                        assert!(
                            !content_types(response).is_empty(),
                            "{method} {path} {status} says what it answers"
                        );
                    }
                    // /healthz answers 503 with its own body, the database being down.
                    if error && path != "/healthz" && !page {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_operation_but_the_open_ones_requires_the_bearer_token() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
        for r in super::super::ROUTES {
            let operation = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            let open = super::super::auth::OPEN_PATHS.contains(&r.path);
            assert_eq!(
                operation["responses"].get("401").is_some(),
                !open,
                "{} {}",
                r.method.as_str(),
                r.path
            );
            // An open operation overrides the document's requirement with an empty one.
            assert_eq!(
                operation["security"] == serde_json::json!([{}]),
                open,
                "{} {}",
                r.method.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn the_dashboard_takes_the_session_or_the_token_and_its_form_and_assets_are_open() {
        let doc = document();
        let session = &doc["components"]["securitySchemes"]["session"];
        assert_eq!(
            (&session["type"], &session["in"], &session["name"]),
            (
                &json!("apiKey"),
                &json!("cookie"),
                &json!(super::super::auth::SESSION_COOKIE)
            )
        );
        for r in super::super::dashboard::ROUTES {
            let method = r.method.as_str().to_ascii_lowercase();
            let operation = &doc["paths"][r.path][&method];
            let what = format!("{} {}", r.method.as_str(), r.path);
            if super::super::dashboard::is_open(r.path) {
                assert_eq!(operation["security"], json!([{}]), "{what}");
                // No bearer 401 added: the form's refusal is a page.
                let refusal = &operation["responses"]["401"]["content"];
                assert!(refusal.get("application/json").is_none(), "{what}");
            } else {
                assert_eq!(
                    operation["security"],
                    json!([{"bearer": []}, {"session": []}]),
                    "{what}"
                );
                // A page sends a browser to the form; its data answers 401.
                let signs_in = if r.path.ends_with("/data") {
                    "401"
                } else {
                    "303"
                };
                assert!(operation["responses"].get(signs_in).is_some(), "{what}");
            }
        }
        // The JSON API needs the header: the cookie is named on the dashboard only.
        for r in super::super::ROUTES {
            let operation = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
            assert!(
                !operation["security"].to_string().contains("session"),
                "{} {}",
                r.method.as_str(),
                r.path
            );
        }
    }

    #[test]
    fn space_spec_schema_shows_the_type_tag() {
        let doc = document();
        let variants = doc["components"]["schemas"]["SpaceSpec"]["oneOf"]
            .as_array()
            .expect("SpaceSpec is a oneOf");
        let tags: BTreeSet<String> = variants
            .iter()
            .map(|v| {
                assert!(
                    v["required"]
                        .as_array()
                        .is_some_and(|r| r.contains(&Value::from("type"))),
                    "{v}"
                );
                v["properties"]["type"]["enum"][0]
                    .as_str()
                    .expect("a type tag")
                    .to_string()
            })
            .collect();
        assert_eq!(tags, ["grid", "sequence", "set"].map(String::from).into());
    }

    #[test]
    fn documented_model_overview_matches_the_store_type() {
        use crate::store::training::{ModelOverview, TrainingRunRow};
        let run = TrainingRunRow {
            id: 1,
            owner: "a".into(),
            status: "succeeded".into(),
            labels: 3,
            observations: 4,
            steps: 10,
            loss: Some(0.5),
            version: Some(1),
            error: None,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            proxy: None,
            metrics: None,
        };
        let overview = ModelOverview {
            version: 1,
            status: "ready".into(),
            error: None,
            trained_on_labels: 3,
            trained_on_observations: 4,
            steps: 10,
            loss: Some(0.5),
            proxy: None,
            updated_at: None,
            history: vec![run],
        };
        let json = serde_json::to_value(&overview).expect("serialises");
        let doc = document();
        assert_eq!(keys(&json), properties(&doc, "ModelOverview"));
        assert_eq!(keys(&json["history"][0]), properties(&doc, "TrainingRun"));
    }

    #[test]
    fn documented_campaign_stats_match_the_store_counts_with_best_and_model() {
        let json = serde_json::to_value(crate::store::Stats::default()).expect("serialises");
        let mut expected = keys(&json);
        expected.extend(["best".into(), "model".into()]);
        assert_eq!(expected, properties(&document(), "CampaignStats"));
    }
}

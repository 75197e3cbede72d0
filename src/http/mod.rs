//! The HTTP layer: router, shared state, error mapping, extractors. Handlers are thin: parse,
//! call the store or a service function, map the result.

pub mod auth;
pub mod campaigns;
pub mod candidates;
pub mod dashboard;
mod engine_schemas;
pub mod error;
pub mod extract;
pub mod health;
pub mod labels;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod preview;
pub mod request_id;
pub mod rounds;
pub mod server;
pub mod settings;
pub mod spreadsheet;

/// A candidate value as the API reads and writes it; its form depends on the campaign's space.
/// Only documents the OpenAPI schema: values travel as `serde_json::Value` and each space parses
/// its own.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CandidateValue {
    /// `sequence`: the tokens joined by the separator.
    Sequence(String),
    /// `grid`: `dims` integers in `[0, size)`.
    Grid(Vec<u16>),
    /// `set`: items of the space (any order in; in the order of `items` out).
    Set(Vec<String>),
}

/// A status the store wrote as text, read back as one of `T`'s (snake_case) variants;
/// `fallback`, logged, if a newer server wrote one this one does not know.
pub(crate) fn stored_status<T: for<'de> serde::Deserialize<'de>>(text: &str, fallback: T) -> T {
    serde_json::from_value(serde_json::Value::from(text)).unwrap_or_else(|_| {
        tracing::warn!(status = text, "an unknown stored status");
        fallback
    })
}

use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

/// State shared by every handler: the service's context; cheap to clone.
pub type AppState = crate::service::Service;

/// An HTTP method the API routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// The method's name in upper case, as HTTP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
        }
    }
}

/// One route: the router serves `handler` at `method` and `path`, and the OpenAPI document
/// must describe that pair (`http::openapi`'s tests check every entry of [`ROUTES`] and
/// [`dashboard::ROUTES`]).
pub struct Route {
    pub method: Method,
    /// In axum's syntax, which is also OpenAPI's: `/rounds/{id}`.
    pub path: &'static str,
    /// The handler, routed for the method filter it is given.
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
    /// Which body limit of the configuration applies.
    pub body: BodyLimit,
}

/// The request body limit a route takes (both are settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `--max-body`: campaigns, rounds and everything else.
    Standard,
    /// `--max-label-body`: label batches of up to 10,000 items.
    Labels,
}

const fn route(
    method: Method,
    path: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        handler,
        body: BodyLimit::Standard,
    }
}

/// Every route of the API. The router is built from this list and the browser dashboard's
/// ([`dashboard::ROUTES`], HTML pages, not API), so that no route can be served without the
/// OpenAPI test seeing it: add new API routes here, never with a `.route(..)` of their own.
pub const ROUTES: &[Route] = &[
    route(Method::Get, "/healthz", |m| on(m, health::healthz)),
    route(Method::Post, "/campaigns", |m| on(m, campaigns::create)),
    route(Method::Get, "/campaigns", |m| on(m, campaigns::list)),
    route(Method::Get, "/campaigns/{id}", |m| on(m, campaigns::get)),
    route(Method::Get, "/campaigns/{id}/candidates", |m| {
        on(m, candidates::list)
    }),
    route(Method::Get, "/campaigns/{id}/model", |m| on(m, model::get)),
    route(Method::Get, "/campaigns/{id}/model/sample", |m| {
        on(m, preview::sample)
    }),
    route(Method::Post, "/rounds", |m| on(m, rounds::create)),
    route(Method::Get, "/rounds/{id}", |m| on(m, rounds::get)),
    route(Method::Post, "/rounds/{id}/abandon", |m| {
        on(m, rounds::abandon)
    }),
    Route {
        body: BodyLimit::Labels,
        ..route(Method::Post, "/labels", |m| on(m, labels::create))
    },
    route(Method::Get, "/metrics", |m| on(m, metrics::metrics)),
];

/// The application's routes with their layers.
pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let config = state.config.clone();
    let body_limit = |limit: BodyLimit| {
        axum::extract::DefaultBodyLimit::max(match limit {
            BodyLimit::Standard => config.max_body_bytes,
            BodyLimit::Labels => config.max_label_body_bytes,
        })
    };
    // Routes sharing a path (GET and POST /campaigns) merge into one method router.
    // The browser's pages come after the API's routes; `/signin` takes GET and POST.
    let routes = ROUTES
        .iter()
        .chain(dashboard::ROUTES)
        .fold(Router::new(), |router, r| {
            router.route(
                r.path,
                (r.handler)(r.method.filter()).layer(body_limit(r.body)),
            )
        })
        .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            error::ApiError::MethodNotAllowed("this path does not take that method".into())
        })
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async {
                        error::ApiError::Unavailable(
                            "the request took longer than the server's --request-timeout".into(),
                        )
                    },
                ))
                .layer(tower::timeout::TimeoutLayer::new(
                    std::time::Duration::from_secs_f64(config.request_timeout_seconds),
                )),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panicked,
        ));
    let routes = match auth::RequiredToken::from_config(config.token()) {
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_bearer,
        )),
        None => routes,
    };
    // Inside the router (a `Router::layer`), where the matched route template is known, and
    // around everything else, so that refusals, timeouts and panics are counted too.
    let routes = routes.layer(axum::middleware::from_fn_with_state(
        metrics,
        metrics::track,
    ));
    with_request_layers(routes).with_state(state)
}

/// Request ids and the request log around `routes`. Each `.layer` wraps what comes before
/// it, so a request meets them bottom-up: an unusable client id is dropped, an id is
/// assigned, the request span opens (and logs the response), the id is copied onto the
/// response; the router then checks the token, so that 401s are logged and carry an id too.
fn with_request_layers(routes: Router<AppState>) -> Router<AppState> {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    use tower_http::trace::{DefaultOnResponse, TraceLayer};
    use tower_http::LatencyUnit;
    routes
        .layer(PropagateRequestIdLayer::new(request_id::REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_id::request_span)
                // One line per answered request at the default level: the access log.
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(SetRequestIdLayer::new(
            request_id::REQUEST_ID,
            MakeRequestUuid,
        ))
        .layer(axum::middleware::map_request(request_id::drop_unusable))
}

//! The dashboard a lab lead opens in a browser: `GET /` lists the campaigns, `GET
//! /campaigns/{id}/dashboard` shows one, and its script polls `GET
//! /campaigns/{id}/dashboard/data` to stay current without reloading. These pages are not
//! part of the JSON API: they are routed here, apart from [`super::ROUTES`], and the
//! OpenAPI document lists them under the tag `dashboard`, each operation marked
//! `x-flowlab-html: true`, so that API clients can tell them apart.
//!
//! With an API token configured the pages need it too: `/signin` trades the token for a
//! session cookie, which [`super::auth`] accepts on the reads in [`takes_session`] only, so
//! the cookie never authorises a write.

pub mod assets;
pub mod signin;
pub mod views;

use super::error::ApiError;
use super::{route, AppState, Method, Route};
use crate::error::Error;
use crate::service::dashboard;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::on;
use axum::Json;
use maud::Markup;
use views::DashboardData;

/// Scripts, styles and data from this server only; no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'";

/// The dashboard's routes: the browser's pages, their data and assets, apart from the JSON
/// API's [`super::ROUTES`]. The OpenAPI document describes each of them too (tag
/// `dashboard`, `x-flowlab-html`), which `http::openapi`'s tests check.
pub const ROUTES: &[Route] = &[
    route(Method::Get, "/", |m| on(m, index)),
    route(Method::Get, "/campaigns/{id}/dashboard", |m| on(m, page)),
    route(Method::Get, "/campaigns/{id}/dashboard/data", |m| {
        on(m, data)
    }),
    route(Method::Get, "/dashboard/assets/{name}", |m| {
        on(m, assets::asset)
    }),
    route(Method::Get, "/signin", |m| on(m, signin::form)),
    route(Method::Post, "/signin", |m| on(m, signin::submit)),
];

/// Paths served without a token: the sign-in form and the static assets, which hold no data.
pub fn is_open(path: &str) -> bool {
    path == "/signin" || path.starts_with(assets::PREFIX)
}

/// Whether a signed-in browser's session cookie may stand in for the bearer token: GET
/// requests to the pages, their data and the candidate export they link. Never a write.
pub fn takes_session(method: &axum::http::Method, path: &str) -> bool {
    if method != axum::http::Method::GET {
        return false;
    }
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix("/campaigns/") else {
        return false;
    };
    let Some((id, tail)) = rest.split_once('/') else {
        return false;
    };
    !id.is_empty() && matches!(tail, "dashboard" | "dashboard/data" | "candidates")
}

/// The answer to a page request without a valid session: the sign-in form for a page, 401
/// for the data the page's script polls (it then reloads into the form).
pub fn sign_in_first(path: &str) -> Response {
    if path.ends_with("/dashboard/data") || path.ends_with("/candidates") {
        return ApiError::Unauthorized("sign in at /signin or send the bearer token".into())
            .into_response();
    }
    Redirect::to(&signin::location(path)).into_response()
}

/// An HTML response with the dashboard's security headers.
fn html(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup,
    )
        .into_response()
}

/// The page for a failed request: 404 for a missing campaign, else 500 (logged).
fn problem(error: Error) -> Response {
    match error {
        Error::NotFound { what, id } => html(
            StatusCode::NOT_FOUND,
            views::problem(
                "Not found",
                &format!("There is no {what} {id} on this server."),
            ),
        ),
        other => {
            tracing::error!(error = %other, "dashboard page failed");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                views::problem(
                    "Something went wrong",
                    "The server could not build this page; its log says why.",
                ),
            )
        }
    }
}

/// A campaign id from the path; anything but a positive integer names no campaign.
fn campaign_id(raw: &str) -> Result<i64, Error> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::NotFound {
            what: "campaign",
            id: raw.to_string(),
        })
}

/// `?page=` of the index.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IndexQuery {
    /// 1-based page number; any other text is page 1, and past the end is an empty page.
    #[param(value_type = Option<String>)]
    page: Option<String>,
}

/// `GET /`: the campaigns, a page at a time.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard_index",
    tag = "dashboard",
    summary = "HTML page: the campaigns with their counts, best value and model, 20 a page, newest first",
    params(IndexQuery),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 303, description = "A token is configured and the request has neither the bearer header nor a session: to `/signin?next=/`",
            headers(("Location" = String, description = "`/signin?next=...`"))),
        (status = 500, description = "A page saying that the server could not build this one (its log says why)", body = String, content_type = "text/html"),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
#[tracing::instrument(skip_all)]
pub async fn index(State(state): State<AppState>, Query(query): Query<IndexQuery>) -> Response {
    let page = query.page.and_then(|p| p.parse::<i64>().ok()).unwrap_or(1);
    match dashboard::campaign_index(&state, page).await {
        Ok(index) => html(StatusCode::OK, views::index(&index)),
        Err(e) => problem(e),
    }
}

/// `GET /campaigns/{id}/dashboard`: one campaign's page.
#[utoipa::path(
    get,
    path = "/campaigns/{id}/dashboard",
    operation_id = "dashboard_page",
    tag = "dashboard",
    summary = "HTML page: one campaign's dashboard (charts, model, best candidates, pending rounds), redrawn from its data every 3 s",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id; anything but a positive integer is 404")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 303, description = "A token is configured and the request has neither the bearer header nor a session: to `/signin?next=...`",
            headers(("Location" = String, description = "`/signin?next=/campaigns/{id}/dashboard`"))),
        (status = 404, description = "A page saying that there is no such campaign", body = String, content_type = "text/html"),
        (status = 500, description = "A page saying that the server could not build this one (its log says why)", body = String, content_type = "text/html"),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
#[tracing::instrument(skip_all)]
pub async fn page(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = match campaign_id(&id) {
        Ok(id) => dashboard::dashboard(&state, id).await,
        Err(e) => Err(e),
    };
    match found {
        Ok(d) => html(StatusCode::OK, views::dashboard(&d)),
        Err(e) => problem(e),
    }
}

/// `GET /campaigns/{id}/dashboard/data`: what the page's script redraws from.
#[utoipa::path(
    get,
    path = "/campaigns/{id}/dashboard/data",
    operation_id = "dashboard_data",
    tag = "dashboard",
    summary = "The dashboard page's figures and tables, which its script polls; not part of the JSON API",
    params(("id" = i64, Path, minimum = 1, description = "Campaign id; anything but a positive integer is 404")),
    security(("bearer" = []), ("session" = [])),
    responses(
        (status = 200, description = "`series` (per round, oldest first), `runs`, `proxy` and `html` (the tables as HTML fragments) and `best`; the shape follows the page and may change with it", body = Object),
        (status = 401, description = "`unauthorized`: a token is configured and the request has neither the bearer header nor a session", body = super::error::ErrorBody),
        (status = 404, description = "`not_found`: unknown campaign", body = super::error::ErrorBody),
        (status = 500, description = "`internal`", body = super::error::ErrorBody),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
#[tracing::instrument(skip_all)]
pub async fn data(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DashboardData>, ApiError> {
    let id = campaign_id(&id)?;
    let d = dashboard::dashboard(&state, id).await?;
    Ok(Json(DashboardData::new(&d)))
}

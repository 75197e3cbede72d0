//! The dashboard's scripts and styles, compiled into the binary so that the pages work
//! without any network beyond this server: uPlot (MIT, vendored unchanged with its licence
//! beside it) and the dashboard's own script, stylesheet and icon. The pages use system
//! fonts, so there is no font to serve.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Where the assets are served; the pages link them under this prefix.
pub const PREFIX: &str = "/dashboard/assets/";

/// (file name, content type, bytes) of every asset.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/dashboard.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/uPlot.min.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("assets/uPlot.LICENSE"),
    ),
];

/// The name of every asset, as the OpenAPI document lists them.
pub fn names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _, _)| *name)
}

/// `GET /dashboard/assets/{name}`: an embedded file, or 404.
#[utoipa::path(
    get,
    path = "/dashboard/assets/{name}",
    operation_id = "dashboard_asset",
    tag = "dashboard",
    summary = "A script, stylesheet or icon of the dashboard's pages, compiled into the binary",
    params(("name" = String, Path, description = "The file's name; the document lists them")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/javascript"),
            (String = "text/css"),
            (String = "image/svg+xml"),
            (String = "text/plain"),
        )),
        (status = 404, description = "No such asset", body = String, content_type = "text/plain"),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // The files change only with the binary; an hour keeps upgrades visible.
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

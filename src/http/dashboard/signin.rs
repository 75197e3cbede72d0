//! `GET /signin` and `POST /signin`: a browser trades the API token for a session cookie.
//! The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
//! sends it), and holds a digest derived from the token, never the token itself (see
//! [`RequiredToken::session_value`]). The token travels in the form's body only, never in
//! a URL, and is not logged.

use super::views;
use crate::http::auth::{RequiredToken, SESSION_COOKIE};
use crate::http::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

/// Where to go after signing in: a path of this server made of plain characters only, so
/// that it can go into a URL unencoded and never leads to another site; else the index.
pub fn safe_next(next: &str) -> &str {
    let plain = next
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
    if plain && next.starts_with('/') && !next.starts_with("//") {
        next
    } else {
        "/"
    }
}

/// The sign-in form's address, coming back to `path` afterwards.
pub fn location(path: &str) -> String {
    format!("/signin?next={}", safe_next(path))
}

/// `?next=` of the form.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Next {
    /// Where to go after signing in: a path of this server (anything else is `/`).
    next: Option<String>,
}

/// The form's fields (`application/x-www-form-urlencoded`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(as = SignInForm)]
pub struct SignIn {
    /// The server's API token.
    token: String,
    /// Where to go once signed in: a path of this server (anything else is `/`).
    next: Option<String>,
}

/// `GET /signin`: the form; without a token configured there is nothing to sign in to.
#[utoipa::path(
    get,
    path = "/signin",
    operation_id = "dashboard_signin_form",
    tag = "dashboard",
    summary = "HTML page: the form that asks a browser for the API token",
    params(Next),
    responses(
        (status = 200, description = "The form", body = String, content_type = "text/html"),
        (status = 303, description = "No token is configured, so there is nothing to sign in to: to `next`",
            headers(("Location" = String, description = "`next`, or `/`"))),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
#[tracing::instrument(skip_all)]
pub async fn form(State(state): State<AppState>, Query(query): Query<Next>) -> Response {
    let next = safe_next(query.next.as_deref().unwrap_or("/")).to_string();
    if RequiredToken::from_config(state.config.token()).is_none() {
        return Redirect::to(&next).into_response();
    }
    super::html(StatusCode::OK, views::sign_in(&next, None))
}

/// `POST /signin`: the right token sets the session cookie and goes on to `next`; a wrong
/// one is refused with 401 and the form again.
#[utoipa::path(
    post,
    path = "/signin",
    operation_id = "dashboard_signin",
    tag = "dashboard",
    summary = "Trades the API token, sent by the form, for a session cookie that opens the dashboard's pages",
    request_body(content = SignIn, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "The right token (or none configured): to `next`, with the session cookie",
            headers(
                ("Location" = String, description = "`next`, or `/`"),
                ("Set-Cookie" = String, description = "`flowlab_session=...; HttpOnly; SameSite=Strict; Path=/`: derived from the token, never the token itself"),
            )),
        (status = 400, description = "Not the form's fields (no `token`, or not `application/x-www-form-urlencoded`): the form again, saying so", body = String, content_type = "text/html"),
        (status = 401, description = "Not this server's token: the form again, saying so", body = String, content_type = "text/html"),
    ),
    extensions(("x-flowlab-html" = json!(true))),
)]
#[tracing::instrument(skip_all)]
pub async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        let message = "The form did not arrive as the sign-in page sends it; please try again.";
        return super::html(StatusCode::BAD_REQUEST, views::sign_in("/", Some(message)));
    };
    let next = safe_next(form.next.as_deref().unwrap_or("/")).to_string();
    let Some(required) = RequiredToken::from_config(state.config.token()) else {
        return Redirect::to(&next).into_response();
    };
    if !required.accepts(form.token.trim()) {
        tracing::info!("dashboard sign-in refused");
        let message = "That token is not this server's API token.";
        return super::html(
            StatusCode::UNAUTHORIZED,
            views::sign_in(&next, Some(message)),
        );
    }
    let cookie = Cookie::build((SESSION_COOKIE, required.session_value().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .build();
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_plain_local_paths_are_followed() {
        assert_eq!(
            safe_next("/campaigns/3/dashboard"),
            "/campaigns/3/dashboard"
        );
        for outside in [
            "//evil.example/x",
            "https://evil.example/",
            "/a?b=c",
            "/a\\b",
            "javascript:alert(1)",
            "",
            "/%2F%2Fevil",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside}");
        }
    }
}

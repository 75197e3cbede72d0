//! Bearer-token authentication. With a token configured, every request except those
//! to [`OPEN_PATHS`] must carry `Authorization: Bearer <token>`; anything else is answered 401
//! `unauthorized` with `WWW-Authenticate: Bearer` before it reaches a handler. Without a token
//! the layer is not installed at all (`Config::validate` keeps such a server on loopback).
//!
//! The dashboard's browsers sign in once instead (`/signin`) and carry a session cookie; it
//! stands in for the header on the dashboard's own reads only
//! ([`super::dashboard::takes_session`]), never on a write.

use super::dashboard;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Paths served without a token: container and load-balancer health checks hold no secret.
pub const OPEN_PATHS: &[&str] = &["/healthz"];

/// The dashboard's session cookie.
pub const SESSION_COOKIE: &str = "flowlab_session";

/// The token requests must present, kept as its SHA-256 digest. Comparing digests of equal
/// length in constant time reveals neither the token's bytes nor its length through timing.
#[derive(Clone)]
pub struct RequiredToken {
    digest: [u8; 32],
    /// The session cookie's value, derived from the token (see [`Self::session_value`]).
    session: String,
    /// Its SHA-256 digest, compared like the token's.
    session_digest: [u8; 32],
}

impl std::fmt::Debug for RequiredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequiredToken(***)")
    }
}

impl RequiredToken {
    /// The configured token, if any; an empty one counts as none, as in `Config::validate`.
    pub fn from_config(token: Option<&str>) -> Option<Self> {
        token.filter(|t| !t.is_empty()).map(|t| {
            let digest: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            // A digest of the token's digest under a label of its own: the cookie differs
            // from anything else derived from the token, and reveals nothing of it.
            let mut session = Sha256::new();
            session.update(b"flowlab dashboard session\0");
            session.update(digest);
            let session = format!("{:x}", session.finalize());
            Self {
                digest,
                session_digest: Sha256::digest(session.as_bytes()).into(),
                session,
            }
        })
    }

    /// The value of a signed-in browser's session cookie: the same on every replica that
    /// shares the token, and void once the token changes.
    pub fn session_value(&self) -> &str {
        &self.session
    }

    /// Whether `presented` is the session cookie's value, in time independent of where
    /// they differ.
    pub fn accepts_session(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.session_digest).into()
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 7235).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Middleware: lets the request through when it may pass, else answers 401.
pub async fn require_bearer(
    State(required): State<RequiredToken>,
    request: Request,
    next: Next,
) -> Response {
    // Owned: the request moves on while the path is still read.
    let path = request.uri().path().to_owned();
    let path = path.as_str();
    if OPEN_PATHS.contains(&path) || dashboard::is_open(path) {
        return next.run(request).await;
    }
    match bearer_token(request.headers()) {
        Some(token) if required.accepts(token) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not valid".into()).into_response(),
        None if dashboard::takes_session(request.method(), path) => {
            let jar = CookieJar::from_headers(request.headers());
            let signed_in = jar
                .get(SESSION_COOKIE)
                .is_some_and(|c| required.accepts_session(c.value()));
            if signed_in {
                next.run(request).await
            } else {
                dashboard::sign_in_first(path)
            }
        }
        None => ApiError::Unauthorized(
            "this server requires `Authorization: Bearer <token>` (FLOWLAB_API_TOKEN)".into(),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).expect("a header value"),
        );
        h
    }

    #[test]
    fn only_the_configured_token_is_accepted() {
        let required = RequiredToken::from_config(Some("s3cret-token")).expect("a token");
        assert!(required.accepts("s3cret-token"));
        for wrong in [
            "",
            "s3cret-toke",
            "s3cret-token ",
            "S3CRET-TOKEN",
            "s3cret-tokenx",
        ] {
            assert!(!required.accepts(wrong), "{wrong:?} accepted");
        }
    }

    #[test]
    fn only_the_token_s_own_session_is_accepted() {
        let required = RequiredToken::from_config(Some("s3cret-token")).expect("a token");
        let other = RequiredToken::from_config(Some("another-token")).expect("a token");
        let session = required.session_value().to_string();
        assert!(required.accepts_session(&session));
        assert!(!required.accepts_session("s3cret-token"));
        assert!(!required.accepts_session(other.session_value()));
        assert!(!required.accepts(&session), "the cookie is no bearer token");
        assert!(!session.contains("s3cret"));
        assert!(!format!("{required:?}").contains(&session));
    }

    #[test]
    fn an_empty_token_requires_nothing() {
        assert!(RequiredToken::from_config(Some("")).is_none());
        assert!(RequiredToken::from_config(None).is_none());
    }

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_others_are_not() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(&headers("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&headers("Bearer   ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}

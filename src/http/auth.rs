//! Bearer-token authentication. With a token configured, every request except those
//! to [`OPEN_PATHS`] must carry `Authorization: Bearer <token>`; anything else is answered 401
//! `unauthorized` with `WWW-Authenticate: Bearer` before it reaches a handler. Without a token
//! the layer is not installed at all (`Config::validate` keeps such a server on loopback).

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Paths served without a token: container and load-balancer health checks hold no secret.
pub const OPEN_PATHS: &[&str] = &["/healthz"];

/// The token requests must present, kept as its SHA-256 digest. Comparing digests of equal
/// length in constant time reveals neither the token's bytes nor its length through timing.
#[derive(Clone)]
pub struct RequiredToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for RequiredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequiredToken(***)")
    }
}

impl RequiredToken {
    /// The configured token, if any; an empty one counts as none, as in `Config::validate`.
    pub fn from_config(token: Option<&str>) -> Option<Self> {
        token.filter(|t| !t.is_empty()).map(|t| Self {
            digest: Sha256::digest(t.as_bytes()).into(),
        })
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
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match bearer_token(request.headers()) {
        Some(token) if required.accepts(token) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not valid".into()).into_response(),
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

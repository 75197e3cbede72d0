//! Request ids: every request gets an `x-request-id` (the client's own when it sent a usable
//! one, else a fresh UUID), every log line of the request carries it through the `request`
//! span, and the response returns it, so that a client's report and the server's log meet.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use tracing::Span;

/// The header that carries the id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent id kept, in bytes.
pub const MAX_CLIENT_ID_BYTES: usize = 128;

/// Whether a client-sent id may go into logs and back out as it is: short, and of the
/// characters ids are made of, so that it cannot forge fields or lines in the text log.
pub fn is_usable(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_CLIENT_ID_BYTES
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// Middleware (outermost): forgets a client-sent id that is not usable, so that the next
/// layer assigns a fresh one.
pub async fn drop_unusable(mut request: Request) -> Request {
    if request
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|id| !is_usable(id))
    {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// The span of one request, named `request`, with its id, method and path (not the query,
/// which may be long).
pub fn request_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_the_usual_shapes_are_usable_and_odd_ones_are_not() {
        for ok in [
            "3f2b9c1e-8a4d-4b7e-9f00-1c2d3e4f5a6b",
            "plate-1/A3",
            "abc.DEF_123:4",
        ] {
            assert!(is_usable(&HeaderValue::from_static(ok)), "{ok}");
        }
        let long = "a".repeat(MAX_CLIENT_ID_BYTES + 1);
        for bad in ["", "two words", "quote\"d", "k=v x=y", long.as_str()] {
            let value = HeaderValue::from_str(bad).expect("a header value");
            assert!(!is_usable(&value), "{bad}");
        }
    }
}

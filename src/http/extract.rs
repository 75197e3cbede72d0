//! `ApiJson`: a JSON body extractor whose every rejection (syntax, wrong type, unknown or
//! missing field, wrong content type, body too large) is an `ApiError` in the protocol's shape,
//! where axum's own would answer some of them with 422 and a plain-text body.

use super::error::{ApiError, ErrorCode};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON request body parsed into `T`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
                }
                JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                    code: ErrorCode::MalformedJson,
                    message: e.body_text(),
                    details: Value::Null,
                },
                JsonRejection::JsonDataError(e) => ApiError::BadRequest {
                    code: ErrorCode::InvalidBody,
                    message: e.body_text(),
                    details: Value::Null,
                },
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge("request body is over the size limit".into())
                }
                other => ApiError::BadRequest {
                    code: ErrorCode::BadRequest,
                    message: other.body_text(),
                    details: Value::Null,
                },
            }),
        }
    }
}

/// The integer query parameter `name` in `0..=max`, `default` when absent; anything else is
/// an error naming the parameter.
pub fn integer_param(
    params: &std::collections::HashMap<String, String>,
    name: &str,
    default: i64,
    max: i64,
) -> Result<i64, crate::error::Error> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| {
                crate::error::Error::invalid(name, format!("must be an integer in 0..={max}"))
            }),
    }
}

/// Refuses any query parameter not in `known`, naming it.
pub fn only_params(
    params: &std::collections::HashMap<String, String>,
    known: &[&str],
) -> Result<(), crate::error::Error> {
    match params.keys().find(|name| !known.contains(&name.as_str())) {
        Some(unknown) => Err(crate::error::Error::invalid(
            unknown.clone(),
            "unknown query parameter",
        )),
        None => Ok(()),
    }
}

/// A path segment as text, like axum's `Path<String>`, but a segment that does not decode
/// (percent-escapes of bytes that are not UTF-8) is answered in the API's error shape: 404,
/// since no resource has such a name.
pub struct PathText(pub String);

impl<S> axum::extract::FromRequestParts<S> for PathText
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(text)) => Ok(Self(text)),
            Err(rejection) => Err(ApiError::NotFound(format!(
                "no such resource: {}",
                rejection.body_text()
            ))),
        }
    }
}

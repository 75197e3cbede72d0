//! `ApiError`: every failure of a request, mapped to a status code and the protocol's error body
//! `{"error": {"code", "message", "details"}}` with a stable snake_case `code`.

use crate::error::Error;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The body of every error answer, `{"error": {"code", "message", "details"}}`, as the
/// OpenAPI document describes it. `into_response` below writes it; a test holds the two
/// together.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: names the field, token, position or bound at fault. 5xx answers say
    /// only "internal error".
    pub message: String,
    /// `{"field"}` with `invalid_value`, `{"index", "field"}` with `invalid_item`,
    /// `{"index"}` with a `not_found` in a label batch; null otherwise.
    #[schema(required)]
    pub details: Option<Value>,
}

/// The stable codes of error bodies (the table of proto-docs/PROTOCOL.md).
// The single source of the codes: `ApiError::code` answers with one of these.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body is not JSON.
    MalformedJson,
    /// 400: wrong type, unknown field, missing field.
    InvalidBody,
    /// 400: a field or query parameter breaks a rule; `details.field` names it.
    InvalidValue,
    /// 400: one item of a label batch is invalid; `details.index`, `details.field`.
    InvalidItem,
    /// 400: any other unreadable request.
    BadRequest,
    /// 401: a token is required and the request has none, or another.
    Unauthorized,
    /// 404: unknown campaign, round, candidate or route.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: a label key already stored with another result.
    Conflict,
    /// 413: the body is over 8 MiB.
    PayloadTooLarge,
    /// 415: not `application/json` (or `text/csv` for labels).
    UnsupportedMediaType,
    /// 503: `wait_for_model` timed out, or the campaign's training failed.
    Unavailable,
    /// 500: a fault of the server; the log has the cause.
    Internal,
}

/// A request failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        code: ErrorCode,
        message: String,
        details: Value,
    },
    /// Answered with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotFoundWith(String, Value),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged with its cause; the client only learns that it happened.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The stable code of the error body (listed in proto-docs).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. } => *code,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::NotFound(_) | Self::NotFoundWith(..) => ErrorCode::NotFound,
            Self::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            Self::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) | Self::NotFoundWith(..) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { .. } => Self::NotFound(e.to_string()),
            Error::Invalid { ref field, .. } => Self::BadRequest {
                code: ErrorCode::InvalidValue,
                details: json!({ "field": field }),
                message: e.to_string(),
            },
            Error::InvalidItem {
                index, ref field, ..
            } => Self::BadRequest {
                code: ErrorCode::InvalidItem,
                details: json!({ "index": index, "field": field }),
                message: e.to_string(),
            },
            Error::ItemNotFound { index, .. } => {
                Self::NotFoundWith(e.to_string(), json!({ "index": index }))
            }
            Error::Conflict(m) => Self::Conflict(m),
            Error::Unavailable(m) => Self::Unavailable(m),
            Error::Storage(_) => Self::Internal(e.to_string()),
            Error::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = match &self {
            Self::BadRequest { details, .. } | Self::NotFoundWith(_, details) => {
                Some(details.clone()).filter(|d| !d.is_null())
            }
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                None
            }
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                details,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Self::Unauthorized(_) = self {
            // RFC 6750: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"flowlab\""),
            );
        }
        response
    }
}

/// The answer to a request whose handler panicked: the error shape with a 500, the panic
/// logged. The connection and every other request carry on.
pub fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::Internal(format!("a request handler panicked: {cause}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: ApiError) -> (StatusCode, ErrorBody) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).expect("an ErrorBody");
        (status, body)
    }

    #[tokio::test]
    async fn every_error_answer_has_the_documented_error_body() {
        let errors = [
            ApiError::from(Error::invalid("name", "too long")),
            ApiError::from(Error::InvalidItem {
                index: 3,
                field: "labels[3].reward".into(),
                reason: "missing".into(),
            }),
            ApiError::from(Error::ItemNotFound {
                index: 1,
                what: "campaign",
                id: "9".into(),
            }),
            ApiError::BadRequest {
                code: ErrorCode::MalformedJson,
                message: "eof".into(),
                details: Value::Null,
            },
            ApiError::BadRequest {
                code: ErrorCode::InvalidBody,
                message: "unknown field".into(),
                details: Value::Null,
            },
            ApiError::BadRequest {
                code: ErrorCode::BadRequest,
                message: "?".into(),
                details: Value::Null,
            },
            ApiError::Unauthorized("no token".into()),
            ApiError::NotFound("no such route".into()),
            ApiError::MethodNotAllowed("DELETE".into()),
            ApiError::Conflict("key".into()),
            ApiError::UnsupportedMediaType("csv".into()),
            ApiError::PayloadTooLarge("big".into()),
            ApiError::Unavailable("training failed".into()),
            ApiError::Internal("disk on fire".into()),
        ];
        for error in errors {
            let (code, status) = (error.code(), error.status());
            let (answered, body) = body_of(error).await;
            assert_eq!(answered, status);
            assert_eq!(body.error.code, code);
        }
    }
}

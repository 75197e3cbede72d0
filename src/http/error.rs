//! `ApiError`: every failure of a request, mapped to a status code and the SPEC's error body
//! `{"error": {"code", "message", "details"}}` with a stable snake_case `code`.

use crate::error::Error;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A request failure with its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        code: &'static str,
        message: String,
        details: Value,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotFoundWith(String, Value),
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
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } => code,
            Self::NotFound(_) | Self::NotFoundWith(..) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) | Self::NotFoundWith(..) => StatusCode::NOT_FOUND,
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
                code: "invalid_value",
                details: json!({ "field": field }),
                message: e.to_string(),
            },
            Error::InvalidItem {
                index, ref field, ..
            } => Self::BadRequest {
                code: "invalid_item",
                details: json!({ "index": index, "field": field }),
                message: e.to_string(),
            },
            Error::ItemNotFound { index, .. } => {
                Self::NotFoundWith(e.to_string(), json!({ "index": index }))
            }
            Error::Conflict(m) => Self::Conflict(m),
            Error::Unavailable(m) => Self::Unavailable(m),
            Error::Storage(cause) => Self::Internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = match &self {
            Self::BadRequest { details, .. } | Self::NotFoundWith(_, details) => details.clone(),
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                Value::Null
            }
            _ => Value::Null,
        };
        let body = json!({ "error": { "code": self.code(), "message": self.to_string(), "details": details } });
        (self.status(), Json(body)).into_response()
    }
}

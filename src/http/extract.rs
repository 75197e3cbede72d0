//! `ApiJson`: a JSON body extractor whose every rejection (syntax, wrong type, unknown or
//! missing field, wrong content type, body too large) is an `ApiError` in the protocol's shape,
//! where axum's own would answer some of them with 422 and a plain-text body.

use super::error::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

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
                    code: "malformed_json",
                    message: e.body_text(),
                    details: json!(null),
                },
                JsonRejection::JsonDataError(e) => ApiError::BadRequest {
                    code: "invalid_body",
                    message: e.body_text(),
                    details: json!(null),
                },
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge("request body is over the size limit".into())
                }
                other => ApiError::BadRequest {
                    code: "bad_request",
                    message: other.body_text(),
                    details: json!(null),
                },
            }),
        }
    }
}

//! Domain errors: what went wrong, in the service's own terms. No axum or sqlx types appear
//! in their shape; `http::error` maps each to a status code and a stable `code`.

/// An error of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resource that does not exist (campaign, round, candidate).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// Input that breaks a rule; `field` is the JSON path of the offending value.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The storage layer failed (connection lost, constraint broken unexpectedly).
    #[error("storage: {0}")]
    Storage(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Storage(e.to_string())
    }
}

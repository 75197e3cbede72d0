//! Domain errors: what went wrong, in the service's own terms. No axum or sqlx types appear
//! in their shape; `http::error` maps each to a status code and a stable `code`.

/// The underlying error of a [`Error::Storage`]: the database driver's, or a message where
/// the store found a broken invariant itself.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// An error of the service layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resource that does not exist (campaign, round, candidate).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// Input that breaks a rule; `field` is the JSON path of the offending value.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// One item of a batch is invalid; nothing of the batch is stored.
    #[error("item {index}: {field}: {reason}")]
    InvalidItem {
        index: usize,
        field: String,
        reason: String,
    },
    /// One item of a batch names a resource that does not exist.
    #[error("item {index}: {what} {id} not found")]
    ItemNotFound {
        index: usize,
        what: &'static str,
        id: String,
    },
    /// A write that contradicts what is stored (the same label key with another reward).
    #[error("{0}")]
    Conflict(String),
    /// A wait that ran out (the model did not catch up in time).
    #[error("{0}")]
    Unavailable(String),
    /// The storage layer failed (connection lost, constraint broken unexpectedly, a stored
    /// row that cannot be read back). The cause is kept as the error's source; its type
    /// stays the store's business.
    #[error("storage: {0}")]
    Storage(#[source] Cause),
    /// A fault of the server itself, neither the request's nor the storage's (a metric that
    /// cannot be registered).
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

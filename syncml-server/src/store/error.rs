//! The error type shared by every storage backend.

/// Why a storage operation failed.
///
/// The variants are backend-neutral: a SQLite or PostgreSQL backend maps its own error codes onto
/// them, so callers (the session engine, the HTTP layer, the CLI) can decide what to answer
/// without knowing which database is underneath. `Busy` in particular is meant to become SyncML
/// status 101 (busy signalling) rather than a hard failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The addressed row does not exist (or is not visible to the subscriber named in the call).
    ///
    /// Deliberately the same answer for "absent" and "belongs to another subscriber", so that
    /// callers cannot learn of other subscribers' data.
    #[error("not found: {0}")]
    NotFound(String),
    /// A row with the same identity already exists (subscriber id, terminal id, ...).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The operation contradicts stored state (e.g. a session key owned by another terminal).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A value passed in is not acceptable (empty id, security level out of range, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database is locked by someone else for longer than the configured wait; retry later.
    #[error("database busy: {0}")]
    Busy(String),
    /// Stored data cannot be interpreted (unknown enum value, wrong column type, damaged file).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database schema is not one this build can use (e.g. written by a newer version).
    #[error("incompatible database schema: {0}")]
    Schema(String),
    /// The transaction closure asked for a rollback.
    ///
    /// Returned by [`Store::run`](super::Store::run) when the closure failed with an error of the
    /// caller's own type (see [`StoreExt::transaction_with_error`](super::StoreExt::transaction_with_error));
    /// the helpers translate it back, so callers normally never see it.
    #[error("transaction aborted by the caller")]
    Aborted,
    /// Any other failure of the storage backend (I/O, driver, misuse).
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the whole transaction later may succeed (currently: [`StoreError::Busy`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Busy(_))
    }
}

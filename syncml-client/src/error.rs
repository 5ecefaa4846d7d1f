//! Errors of the handset engine: refused gates, transport failures, protocol failures.

use syncml_core::StatusCode;

/// Why a gate (FIG. 9-12) refused to let a sync start. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GateRefusal {
    /// No SIM card is mounted.
    #[error("no SIM card is mounted")]
    NoSim,
    /// The user cancelled the PIN prompt.
    #[error("PIN entry was cancelled")]
    PinCancelled,
    /// The PIN did not match the SIM's (FIG. 9 S12 / FIG. 8 S2).
    #[error("wrong PIN ({tries_left} tries left)")]
    PinWrong {
        /// Attempts left before the SIM blocks.
        tries_left: u8,
    },
    /// The SIM is blocked (too many wrong PINs).
    #[error("the SIM is blocked")]
    PinBlocked,
    /// The user cancelled the terminal password prompt.
    #[error("terminal password entry was cancelled")]
    PasswordCancelled,
    /// The terminal password did not match the terminal's (FIG. 9 S14 / FIG. 12 S44).
    #[error("wrong terminal password")]
    PasswordWrong,
    /// No subscriber ID is registered in the terminal (FIG. 10-B S32: registration area 6b
    /// is empty).
    #[error("no subscriber is registered in this terminal")]
    SubscriberNotRegistered,
    /// The SIM's subscriber ID differs from the one registered in the terminal (FIG. 10-B
    /// S32, FIG. 12 S42): the SIM is mounted in an unexpected terminal.
    #[error("the SIM's subscriber is not the one registered in this terminal")]
    SubscriberMismatch,
    /// The terminal's ID is not among the terminal IDs registered on the SIM (FIG. 11-B
    /// S32a).
    #[error("this terminal is not registered on the SIM")]
    TerminalNotListed,
    /// The user did not give permission for an automatic sync (para. 0042).
    #[error("the user did not permit the sync")]
    PermissionDenied,
    /// No credentials are available: the policy asks no terminal password and no stored
    /// password is configured.
    #[error("no credentials: neither an entered terminal password nor a stored one")]
    NoCredentials,
}

/// Why the transport could not deliver a message or bring back the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL is not one this transport can reach.
    #[error("bad URL {0:?}")]
    BadUrl(String),
    /// Connecting, sending or receiving failed.
    #[error("I/O: {0}")]
    Io(String),
    /// The server answered with an HTTP status other than 200.
    #[error("HTTP status {status}: {body}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (at most 200 characters).
        body: String,
    },
    /// The request took too long.
    #[error("timed out")]
    Timeout,
    /// TLS could not be set up: no trusted roots, a bad certificate, a failed handshake.
    #[error("TLS: {0}")]
    Tls(String),
}

/// An error reported by a [`DataStore`](crate::DataStore) implementation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data store {store}: {message}")]
pub struct StoreError {
    /// The store's local URI.
    pub store: String,
    /// What went wrong.
    pub message: String,
}

impl StoreError {
    /// A store error for `store`.
    pub fn new(store: impl Into<String>, message: impl Into<String>) -> StoreError {
        StoreError {
            store: store.into(),
            message: message.into(),
        }
    }
}

/// Why a client DS session failed (after the gates let it start).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The server refused our credentials (401/407), also after the one retry with a fresh
    /// nonce.
    #[error("authentication failed: server answered {0}")]
    AuthFailed(StatusCode),
    /// The server answered the message header with an error status.
    #[error("server refused the session: {0}")]
    ServerRefused(StatusCode),
    /// `syncml:auth-basic` would send the password in clear over plain HTTP.
    #[error("auth-basic refused over plain HTTP (use https or md5)")]
    BasicWithoutTls,
    /// The server's message breaks the protocol in a way we cannot go on from.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The server answered with a message that is not SyncML.
    #[error("undecodable reply: {0}")]
    Decode(String),
    /// Our message could not be encoded or laid out.
    #[error("encoding our message: {0}")]
    Encode(String),
    /// A data store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The session was fed a message after it ended.
    #[error("the session is already over")]
    Finished,
    /// The exchange did not end within the message limit.
    #[error("no end of session after {0} messages")]
    TooManyMessages(u32),
    /// A refresh from client was asked for a store that holds items only as summaries
    /// (titles first): the server would keep the summaries, or lose the items. Fetch
    /// their bodies first ([`Engine::fetch_body`](crate::Engine::fetch_body)).
    #[error("store {store} holds summaries: fetch their bodies before a refresh from client")]
    SummariesHeld {
        /// The store's local URI.
        store: String,
    },
}

/// Everything [`Engine::sync`](crate::Engine::sync) can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A gate refused: nothing was sent to the server.
    #[error("sync refused before connecting: {0}")]
    Refused(#[from] GateRefusal),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The DS session failed.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A data store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

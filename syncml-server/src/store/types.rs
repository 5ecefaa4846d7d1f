//! Plain data types passed through the [`Tx`](super::Tx) API.
//!
//! Nothing here knows about a particular database; the same types serve every backend.

use std::fmt;

use super::error::StoreError;

/// A point in time, in whole seconds since the Unix epoch (UTC).
///
/// The store never reads a clock: every operation that records or compares a time takes one of
/// these from the caller, which keeps behaviour deterministic and testable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The timestamp `secs` seconds since the Unix epoch.
    pub const fn from_unix_secs(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix_secs(self) -> i64 {
        self.0
    }

    /// This timestamp moved by `secs` seconds (saturating).
    pub const fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs))
    }
}

/// A secret string (password verifier, PIN verifier, md5 digest) that must not end up in logs.
///
/// `Debug` prints `Secret(<redacted>)`; there is no `Display` and no `PartialEq`, so that
/// comparisons go through a constant-time routine of the auth layer rather than `==`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for verification or storage.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Highest accepted subscriber security level (levels are `0..=MAX_SECURITY_LEVEL`).
///
/// The store only stores the number; what each level checks is defined by the auth layer.
pub const MAX_SECURITY_LEVEL: u8 = 2;

/// Longest identifier (subscriber id, terminal id, datastore name, GUID, LUID, session key) the
/// store accepts, in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// Checks an identifier: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
pub fn validate_id(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() {
        return Err(StoreError::InvalidInput(format!(
            "{what} must not be empty"
        )));
    }
    if value.len() > MAX_ID_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(StoreError::InvalidInput(format!(
            "{what} contains control characters"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// subscribers and terminals

/// A subscriber (the SIM's IMSI or MSISDN) as stored.
#[derive(Clone, Debug)]
pub struct Subscriber {
    /// Subscriber id (IMSI or MSISDN); primary key.
    pub id: String,
    /// Optional human-readable name.
    pub display_name: Option<String>,
    /// Security level `0..=MAX_SECURITY_LEVEL`; its meaning belongs to the auth layer.
    pub security_level: u8,
    /// Argon2 PHC string of the subscriber's PIN, when a server-side PIN check is configured.
    pub pin_verifier: Option<Secret>,
    /// Argon2 PHC string of the subscriber's login password (registration API), if set.
    pub login_verifier: Option<Secret>,
    /// When the subscriber was created.
    pub created_at: Timestamp,
}

/// Input of [`Tx::subscriber_create`](super::Tx::subscriber_create).
#[derive(Clone, Debug)]
pub struct NewSubscriber {
    /// Subscriber id (IMSI or MSISDN).
    pub id: String,
    /// Optional human-readable name.
    pub display_name: Option<String>,
    /// Initial security level.
    pub security_level: u8,
}

/// Who registered a terminal (FIG. 10-A/11-A: the user; FIG. 18-19: a shop; or the operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisteredBy {
    /// The subscriber, from the handset or the registration API.
    User,
    /// A shop registration device (may register without the terminal password).
    Shop,
    /// The operator, e.g. through the CLI.
    Operator,
}

impl RegisteredBy {
    /// The stored spelling: `user`, `shop` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            RegisteredBy::User => "user",
            RegisteredBy::Shop => "shop",
            RegisteredBy::Operator => "operator",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(RegisteredBy::User),
            "shop" => Some(RegisteredBy::Shop),
            "operator" => Some(RegisteredBy::Operator),
            _ => None,
        }
    }
}

/// A terminal (handset) as stored; bound to exactly one subscriber.
///
/// The terminal's last DevInf is not part of this struct (it can be large and is rarely needed
/// on the hot path); read it with [`Tx::terminal_devinf`](super::Tx::terminal_devinf).
#[derive(Clone, Debug)]
pub struct Terminal {
    /// Terminal id as sent in `SyncHdr/Source/LocURI`, e.g. `IMEI:356938035643809`. Unique in
    /// the whole database.
    pub terminal_id: String,
    /// The subscriber this terminal is bound to.
    pub subscriber_id: String,
    /// The `syncml:auth-md5` verifier: `B64(MD5(username ":" password))`.
    ///
    /// The md5 scheme makes the server recompute `B64(MD5(verifier ":" nonce))` for every fresh
    /// nonce, so this value is **password-equivalent**: anyone who reads it can authenticate as
    /// the terminal. It is stored because the protocol forces it; treat it like a password
    /// (never log it, restrict access to the database file and its backups).
    pub md5_verifier: Option<Secret>,
    /// Argon2 PHC string of the terminal password, for `syncml:auth-basic` over TLS.
    pub basic_verifier: Option<Secret>,
    /// Datastores (data classes) this terminal may sync, sorted, e.g. `calendar`, `contacts`.
    pub classes: Vec<String>,
    /// Who registered the terminal.
    pub registered_by: RegisteredBy,
    /// When the terminal was registered.
    pub registered_at: Timestamp,
    /// A revoked terminal stays bound (its id cannot be reused) but must be refused.
    pub revoked: bool,
    /// When the terminal's last session completed, if ever.
    pub last_session_at: Option<Timestamp>,
    /// The nonce the server last handed to this terminal for its next md5 credential.
    pub next_nonce: Option<String>,
}

/// Input of [`Tx::terminal_register`](super::Tx::terminal_register).
#[derive(Clone, Debug)]
pub struct NewTerminal {
    /// Terminal id (`SyncHdr/Source/LocURI`).
    pub terminal_id: String,
    /// Subscriber to bind the terminal to; must exist.
    pub subscriber_id: String,
    /// `B64(MD5(username ":" password))`, see [`Terminal::md5_verifier`].
    pub md5_verifier: Option<Secret>,
    /// Argon2 PHC string of the terminal password.
    pub basic_verifier: Option<Secret>,
    /// Datastores the terminal may sync.
    pub classes: Vec<String>,
    /// Who registers it.
    pub registered_by: RegisteredBy,
}

// ---------------------------------------------------------------------------------------------
// datastores and items

/// Addresses one datastore of one subscriber. Every item operation is scoped by it.
///
/// Datastore names are opaque to the store: resolving client spellings (`./contacts`,
/// `addressbook`, ...) to a canonical name is the caller's job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DatastoreKey<'a> {
    /// Subscriber id.
    pub subscriber: &'a str,
    /// Canonical datastore name.
    pub datastore: &'a str,
}

impl<'a> DatastoreKey<'a> {
    /// Builds a key.
    pub fn new(subscriber: &'a str, datastore: &'a str) -> Self {
        DatastoreKey {
            subscriber,
            datastore,
        }
    }
}

/// Addresses the sync relationship of one terminal with one datastore of its subscriber:
/// anchors, acknowledged revision and the LUID↔GUID map hang off it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncKey<'a> {
    /// Subscriber id.
    pub subscriber: &'a str,
    /// Terminal id; must be registered to `subscriber` for writes to succeed.
    pub terminal: &'a str,
    /// Canonical datastore name.
    pub datastore: &'a str,
}

impl<'a> SyncKey<'a> {
    /// Builds a key.
    pub fn new(subscriber: &'a str, terminal: &'a str, datastore: &'a str) -> Self {
        SyncKey {
            subscriber,
            terminal,
            datastore,
        }
    }

    /// The subscriber's datastore this key refers to.
    pub fn datastore_key(&self) -> DatastoreKey<'a> {
        DatastoreKey::new(self.subscriber, self.datastore)
    }
}

/// One item to write in [`Tx::items_put`](super::Tx::items_put).
#[derive(Clone, Debug)]
pub struct NewItem {
    /// `None`: a new item, the store assigns a fresh GUID. `Some(guid)`: replace that existing
    /// item (a tombstone is revived); an unknown GUID fails the call with
    /// [`StoreError::NotFound`].
    pub guid: Option<String>,
    /// MIME type of `data`, e.g. `text/x-vcard`.
    pub content_type: String,
    /// The item body, opaque to the store.
    pub data: Vec<u8>,
}

/// Result of writing one item: its GUID and the revision the write took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutResult {
    /// The item's GUID (freshly assigned for new items).
    pub guid: String,
    /// The datastore revision of this write.
    pub revision: i64,
}

/// An item, or one stored version of it (history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Server-assigned GUID, stable for the item's life, unique within its datastore.
    pub guid: String,
    /// MIME type of `data`.
    pub content_type: String,
    /// The body; empty for a tombstone.
    pub data: Vec<u8>,
    /// Datastore revision of this version.
    pub revision: i64,
    /// Terminal that wrote this version; `None` for writes not made by a terminal (operator).
    pub origin_terminal: Option<String>,
    /// Whether this version is a deletion (tombstone).
    pub deleted: bool,
    /// When this version was written.
    pub updated_at: Timestamp,
}

/// What happened to an item, as seen by [`Tx::changes_since`](super::Tx::changes_since).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The item exists; send it as Add or Replace (the caller decides from its map).
    Upsert,
    /// The item was deleted; send a Delete if the terminal knows it.
    Delete,
}

/// The latest state of one item above a revision mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The item's GUID.
    pub guid: String,
    /// Revision of the latest change.
    pub revision: i64,
    /// Upsert or delete.
    pub kind: ChangeKind,
    /// MIME type of `data`.
    pub content_type: String,
    /// The body (empty for deletes).
    pub data: Vec<u8>,
    /// Terminal that made the latest change (`None`: not a terminal).
    pub origin_terminal: Option<String>,
}

/// A live item without its data: what a package 4 needs to plan a download before it
/// reads the items a message at a time ([`Tx::items_list_live_sizes`](super::Tx::items_list_live_sizes)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemSize {
    /// The item's GUID.
    pub guid: String,
    /// MIME type of its data.
    pub content_type: String,
    /// Datastore revision of this version.
    pub revision: i64,
    /// Length of its data in bytes.
    pub size: u64,
}

/// Live-item statistics of one datastore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ItemStats {
    /// Number of live (non-deleted) items.
    pub count: u64,
    /// Sum of the live items' data lengths in bytes.
    pub total_bytes: u64,
}

/// One datastore of a subscriber, with its current revision and live-item statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatastoreInfo {
    /// Canonical datastore name.
    pub name: String,
    /// Current revision (revision of the latest change; 0 when nothing was ever written).
    pub revision: i64,
    /// Live-item statistics.
    pub stats: ItemStats,
}

// ---------------------------------------------------------------------------------------------
// per-terminal sync state and maps

/// Per (subscriber, terminal, datastore) sync state.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SyncState {
    /// The client's `Next` anchor from the last completed session.
    pub client_anchor: Option<String>,
    /// The server's `Next` anchor from the last completed session.
    pub server_anchor: Option<String>,
    /// Highest datastore revision this terminal has acknowledged.
    pub acked_revision: i64,
    /// Alert code of the last completed sync (200-210), if any.
    pub last_sync_type: Option<u16>,
    /// When the state was written (set by the caller).
    pub updated_at: Timestamp,
}

/// One LUID↔GUID pair of a terminal's map.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapEntry {
    /// The client's local id.
    pub luid: String,
    /// The server's GUID.
    pub guid: String,
}

impl MapEntry {
    /// Builds a pair.
    pub fn new(luid: impl Into<String>, guid: impl Into<String>) -> Self {
        MapEntry {
            luid: luid.into(),
            guid: guid.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// sessions, audit, lockout

/// A persisted SyncML session, so that any node can continue it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session key (the token carried in RespURI); a bearer secret chosen by the caller.
    pub key: String,
    /// Subscriber the session belongs to.
    pub subscriber_id: String,
    /// Terminal the session belongs to (must be registered to `subscriber_id`).
    pub terminal_id: String,
    /// The session engine's serialised state, opaque to the store.
    pub state: Vec<u8>,
    /// When the session started (kept from the first save).
    pub created_at: Timestamp,
    /// After this instant the session is gone for [`Tx::session_load`](super::Tx::session_load).
    pub expires_at: Timestamp,
}

/// One command of a session's outgoing package not sent yet, kept beside the session
/// record (not in it), so that each message reads and removes only what it sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCommand {
    /// Its place in the package: rows are taken in ascending order.
    pub seq: i64,
    /// Its size in bytes as counted against a message's budget
    /// ([`Tx::session_pending_head`](super::Tx::session_pending_head)).
    pub size: i64,
    /// The canonical datastore of the item it delivers, if it delivers one.
    pub datastore: Option<String>,
    /// The GUID of that item.
    pub guid: Option<String>,
    /// The revision of that item it sends.
    pub revision: Option<i64>,
    /// The encoded command, opaque to the store.
    pub data: Vec<u8>,
}

/// An item of a session's outgoing package the client acknowledged, kept beside the
/// session record so that a suspended session can skip it when resumed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeliveredItem {
    /// Canonical datastore name.
    pub datastore: String,
    /// The item's GUID.
    pub guid: String,
    /// The revision the client acknowledged.
    pub revision: i64,
}

/// One audit event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// Subscriber concerned, if known.
    pub subscriber_id: Option<String>,
    /// Terminal concerned, if known.
    pub terminal_id: Option<String>,
    /// Event kind, e.g. `auth`, `session`, `register`; the vocabulary belongs to the caller.
    pub kind: String,
    /// Outcome as a SyncML/HTTP status code, if any.
    pub status: Option<u16>,
    /// Free-text reason.
    pub reason: String,
    /// Remote address of the request, if known.
    pub remote_addr: Option<String>,
}

/// An appended audit event with its sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Monotonic id assigned at append time.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// Which audit events to list; newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only events of this subscriber.
    pub subscriber_id: Option<String>,
    /// Only events of this terminal.
    pub terminal_id: Option<String>,
    /// Only events with an id below this one (for paging backwards).
    pub before_id: Option<i64>,
    /// At most this many events.
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            subscriber_id: None,
            terminal_id: None,
            before_id: None,
            limit: 100,
        }
    }
}

/// What a brute-force failure counter is kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockoutKey<'a> {
    /// Failures of one terminal id.
    Terminal(&'a str),
    /// Failures of one subscriber id (across its terminals).
    Subscriber(&'a str),
}

impl LockoutKey<'_> {
    /// The stored kind: `terminal` or `subscriber`.
    pub fn kind(&self) -> &'static str {
        match self {
            LockoutKey::Terminal(_) => "terminal",
            LockoutKey::Subscriber(_) => "subscriber",
        }
    }

    /// The id the counter is kept for.
    pub fn id(&self) -> &str {
        match self {
            LockoutKey::Terminal(id) | LockoutKey::Subscriber(id) => id,
        }
    }
}

/// A failure counter and the lock it produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutState {
    /// Consecutive failures counted (see [`lockout_duration`]).
    pub failures: u32,
    /// Time of the latest failure.
    pub last_failure_at: Timestamp,
    /// Attempts are refused until this instant, if set.
    pub locked_until: Option<Timestamp>,
}

impl LockoutState {
    /// Whether attempts must be refused at `now`.
    pub fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }
}

/// Failures allowed before the first lock.
pub const LOCKOUT_FREE_FAILURES: u32 = 3;
/// Length of the first lock, in seconds; each further failure doubles it.
pub const LOCKOUT_BASE_SECS: i64 = 30;
/// Longest lock, in seconds.
pub const LOCKOUT_MAX_SECS: i64 = 3600;
/// A counter whose latest failure is this old (and whose lock has expired) starts again at zero.
pub const LOCKOUT_FORGET_AFTER_SECS: i64 = 24 * 3600;

/// The lock, in seconds, that the `failures`-th consecutive failure imposes.
///
/// Schedule: failures 1-3 are free (a user mistyping); the 4th locks for 30 s, and each further
/// failure doubles the lock (60 s, 120 s, 240 s, ...) up to one hour (from the 11th failure on).
/// The lock always runs from the time of the latest failure. A success should
/// [`reset`](super::Tx::lockout_reset) the counter; a counter left alone for
/// [`LOCKOUT_FORGET_AFTER_SECS`] restarts at zero on the next failure. An operator lifts a lock
/// with a reset.
pub fn lockout_duration(failures: u32) -> i64 {
    if failures <= LOCKOUT_FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - LOCKOUT_FREE_FAILURES - 1).min(20);
    LOCKOUT_BASE_SECS
        .saturating_mul(1_i64 << doublings)
        .min(LOCKOUT_MAX_SECS)
}

/// The counter after one more failure at `now`, following [`lockout_duration`].
///
/// Backends call this so the schedule is the same everywhere.
pub fn lockout_next(previous: Option<LockoutState>, now: Timestamp) -> LockoutState {
    let mut failures = 0u32;
    let mut locked_until = None;
    if let Some(prev) = previous {
        let quiet = now.0.saturating_sub(prev.last_failure_at.0) >= LOCKOUT_FORGET_AFTER_SECS;
        if !quiet || prev.is_locked(now) {
            failures = prev.failures;
            locked_until = prev.locked_until;
        }
    }
    failures = failures.saturating_add(1);
    let lock = lockout_duration(failures);
    if lock > 0 {
        let until = now.plus_secs(lock);
        locked_until = Some(match locked_until {
            Some(existing) if existing > until => existing,
            _ => until,
        });
    }
    LockoutState {
        failures,
        last_failure_at: now,
        locked_until,
    }
}

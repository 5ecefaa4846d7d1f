//! Persistent storage of the server: subscribers, terminals, items with history, per-terminal
//! sync state and LUID↔GUID maps, sessions, audit log and brute-force lockout counters.
//!
//! # Shape
//!
//! * [`Store`] is the backend object. It is object safe (`Arc<dyn Store>` works), `Send + Sync`,
//!   and synchronous: the async server calls it from `tokio::task::spawn_blocking`.
//! * All data access happens inside a transaction, through the object-safe [`Tx`] trait. One
//!   incoming SyncML message is processed in **one** transaction, never one per item: batch
//!   operations ([`Tx::items_put`], [`Tx::items_delete`], [`Tx::map_put`], ...) take slices.
//! * [`StoreExt`] (implemented for every `Store`, including `dyn Store`) adds the generic
//!   conveniences [`StoreExt::transaction`], [`StoreExt::read`] and
//!   [`StoreExt::transaction_with_error`] on top of the object-safe [`Store::run`].
//!
//! ```no_run
//! use syncml_server::store::{DatastoreKey, NewItem, SqliteStore, StoreExt, Timestamp};
//! # fn main() -> Result<(), syncml_server::store::StoreError> {
//! let store = SqliteStore::open_in_dir("/var/lib/syncml")?;
//! let now = Timestamp::from_unix_secs(1_700_000_000);
//! let written = store.transaction(|tx| {
//!     let ds = DatastoreKey::new("262011234567890", "contacts");
//!     tx.items_put(ds, Some("IMEI:356938035643809"), &[NewItem {
//!         guid: None,
//!         content_type: "text/x-vcard".into(),
//!         data: b"BEGIN:VCARD\r\nEND:VCARD\r\n".to_vec(),
//!     }], now)
//! })?;
//! # let _ = written; Ok(()) }
//! ```
//!
//! # Rules every backend follows
//!
//! * **Isolation.** Every item, map, sync-state and terminal operation names the subscriber and
//!   the backend puts that id in the SQL `WHERE` clause (and in the primary key of every
//!   per-subscriber table). A caller holding subscriber A's id can never read or change B's
//!   rows; a row of another subscriber looks exactly like an absent row.
//! * **Revisions.** Every change (put or delete) of an item takes the next revision of its
//!   (subscriber, datastore); revisions are unique and increasing per datastore, and remember the
//!   origin terminal. [`Tx::changes_since`] then yields exactly what a terminal has not yet seen
//!   and did not write itself.
//! * **Tombstones and history.** Deletes leave a tombstone; every overwritten version is kept in
//!   the history ([`Tx::item_history`]).
//! * **Time is injected.** No backend reads a clock; operations take a [`Timestamp`].
//! * **Errors** are [`StoreError`]s; backend error codes are mapped onto its variants.
//!
//! # Backends
//!
//! [`SqliteStore`] is the zero-configuration default (a file under a data directory, WAL,
//! migrations at open). [`PgStore`] implements the same traits on PostgreSQL, for several
//! server nodes sharing one database (see [`postgres`]); nothing in the traits or the data
//! types is specific to either.

mod error;
pub mod postgres;
pub mod sqlite;
mod types;

pub use error::StoreError;
pub use postgres::{PgConfig, PgStore};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use types::*;

/// Whether a transaction may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxMode {
    /// Read-only: sees one consistent snapshot, may run concurrently with a writer. Any write
    /// attempted through the [`Tx`] fails.
    Read,
    /// Read-write: transactions of this mode are serialised against each other.
    Write,
}

/// Counters a backend keeps about its own work (for metrics and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Time the backend's single writer was held (SQLite: its one write connection, from
    /// taking it to handing it on; compared with wall time, how close writes are to their
    /// ceiling). Zero for backends without a single writer (PostgreSQL).
    pub writer_busy: std::time::Duration,
    /// WAL checkpoints that copied pages, on the SQLite checkpointer thread and in the
    /// writer, and the times the WAL started over (zero on PostgreSQL).
    pub checkpoints: Checkpoints,
    /// Write transactions committed.
    pub write_commits: u64,
    /// Database commits that made them durable: the SQLite backend commits a queue of
    /// writers as one batch (see its group commit), so `write_commits / write_batches` is
    /// the mean batch size; PostgreSQL commits each transaction on its own (equal counts).
    pub write_batches: u64,
    /// Write transactions rolled back.
    pub write_rollbacks: u64,
    /// Read transactions run.
    pub reads: u64,
}

/// The SQLite backend's WAL checkpoints (see [`StoreStats::checkpoints`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Checkpoints {
    /// Checkpoints the background thread ran that copied pages (commits went on meanwhile).
    pub background: u64,
    /// Checkpoints the writer ran after its commit to let the WAL start over (writers
    /// waited meanwhile; most of the pages were usually copied by the thread already).
    pub writer: u64,
    /// Times the WAL was rewound to its start.
    pub wal_restarts: u64,
}

/// A storage backend.
///
/// The single required method, [`Store::run`], is object safe; use the generic helpers of
/// [`StoreExt`] in application code.
pub trait Store: Send + Sync + 'static {
    /// Runs `f` inside one database transaction of the given mode.
    ///
    /// If `f` returns `Ok(())` the transaction commits; if it returns an error (or panics) the
    /// transaction is rolled back and nothing it wrote persists; the error is returned.
    ///
    /// `f` is `FnMut` so that a backend may run it again after a retryable conflict (e.g. a
    /// PostgreSQL serialization failure); closures must therefore not have effects outside the
    /// transaction that would be wrong to repeat. The SQLite backend runs it exactly once.
    ///
    /// Calling `run` again from inside `f` on the same store is an error for write transactions
    /// (it would deadlock); use the `Tx` you were given. A read transaction opened inside a
    /// write transaction does not see the outer transaction's uncommitted writes.
    fn run(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Short name of the backend (`sqlite`, `postgres`), for logs and metrics.
    fn backend_name(&self) -> &'static str;

    /// Work counters since this store object was opened.
    fn stats(&self) -> StoreStats;
}

/// Generic conveniences over [`Store::run`], available on every store (also `dyn Store`).
pub trait StoreExt: Store {
    /// Runs `f` in one read-write transaction and returns its result; rolls back on error.
    fn transaction<R>(
        &self,
        f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.transaction_with_error(f)
    }

    /// Runs `f` in one read-only transaction and returns its result.
    fn read<R>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.run(TxMode::Read, &mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend("read closure produced no result".into()))
    }

    /// Like [`StoreExt::transaction`], but `f` may fail with the caller's own error type `E`
    /// (e.g. the session engine's error). Any error rolls the transaction back and is returned
    /// as it was; storage failures (including a failed commit) arrive through `From<StoreError>`.
    fn transaction_with_error<R, E>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<R, E>,
    ) -> Result<R, E>
    where
        E: From<StoreError>,
    {
        let mut out: Option<Result<R, E>> = None;
        let res = self.run(TxMode::Write, &mut |tx| match f(tx) {
            Ok(r) => {
                out = Some(Ok(r));
                Ok(())
            }
            Err(e) => {
                out = Some(Err(e));
                Err(StoreError::Aborted)
            }
        });
        match (res, out) {
            (Ok(()), Some(Ok(r))) => Ok(r),
            (Err(StoreError::Aborted), Some(Err(e))) => Err(e),
            (Err(e), _) => Err(E::from(e)),
            (Ok(()), _) => Err(E::from(StoreError::Backend(
                "transaction closure produced no result".into(),
            ))),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Every data operation, scoped to one open transaction. Object safe.
///
/// Methods that address a single row return `Ok(None)` (getters) or
/// [`StoreError::NotFound`] (mutators) when the row does not exist **or belongs to another
/// subscriber**; the two cases are indistinguishable by design.
pub trait Tx {
    // ----- subscribers ----------------------------------------------------------------------

    /// Creates a subscriber. [`StoreError::AlreadyExists`] if the id is taken.
    fn subscriber_create(
        &mut self,
        new: &NewSubscriber,
        now: Timestamp,
    ) -> Result<Subscriber, StoreError>;
    /// Reads a subscriber.
    fn subscriber_get(&mut self, id: &str) -> Result<Option<Subscriber>, StoreError>;
    /// Lists subscribers ordered by id, starting after `after` (keyset paging), at most `limit`.
    fn subscriber_list(
        &mut self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Subscriber>, StoreError>;
    /// Sets or clears the PIN verifier (argon2 PHC string).
    fn subscriber_set_pin_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError>;
    /// Sets or clears the login password verifier (argon2 PHC string).
    fn subscriber_set_login_verifier(
        &mut self,
        id: &str,
        verifier: Option<&Secret>,
    ) -> Result<(), StoreError>;
    /// Sets the security level (`0..=MAX_SECURITY_LEVEL`, else [`StoreError::InvalidInput`]).
    fn subscriber_set_security_level(&mut self, id: &str, level: u8) -> Result<(), StoreError>;
    /// Deletes a subscriber with all its terminals, items, history, sync states, maps and
    /// sessions. Audit events and lockout counters are kept.
    fn subscriber_delete(&mut self, id: &str) -> Result<(), StoreError>;

    // ----- terminals ------------------------------------------------------------------------

    /// Registers a terminal to a subscriber. [`StoreError::AlreadyExists`] if the terminal id is
    /// bound already (to any subscriber, revoked or not); [`StoreError::NotFound`] if the
    /// subscriber does not exist.
    fn terminal_register(
        &mut self,
        new: &NewTerminal,
        now: Timestamp,
    ) -> Result<Terminal, StoreError>;
    /// Reads the terminal `terminal` of `subscriber`.
    fn terminal_get(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Option<Terminal>, StoreError>;
    /// Finds a terminal by its id alone, whatever subscriber it is bound to. For the auth layer
    /// only (to tell "unknown terminal" from "terminal of another subscriber"); never expose the
    /// result to the requesting subscriber.
    fn terminal_find(&mut self, terminal: &str) -> Result<Option<Terminal>, StoreError>;
    /// Lists a subscriber's terminals ordered by terminal id.
    fn terminal_list(&mut self, subscriber: &str) -> Result<Vec<Terminal>, StoreError>;
    /// Replaces both password verifiers (a shop-registered terminal gets them later).
    fn terminal_set_verifiers(
        &mut self,
        subscriber: &str,
        terminal: &str,
        md5: Option<&Secret>,
        basic: Option<&Secret>,
    ) -> Result<(), StoreError>;
    /// Replaces the set of datastores the terminal may sync. Never touches item data.
    fn terminal_set_classes(
        &mut self,
        subscriber: &str,
        terminal: &str,
        classes: &[String],
    ) -> Result<(), StoreError>;
    /// Stores (or clears) the terminal's last DevInf, opaque bytes.
    fn terminal_set_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
        devinf: Option<&[u8]>,
    ) -> Result<(), StoreError>;
    /// Reads the terminal's last DevInf.
    fn terminal_devinf(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores (or clears) the nonce for the terminal's next md5 credential.
    fn terminal_set_nonce(
        &mut self,
        subscriber: &str,
        terminal: &str,
        nonce: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Records the completion time of a session.
    fn terminal_touch_last_session(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Sets or clears the revoked flag (the terminal id stays bound to the subscriber).
    fn terminal_set_revoked(
        &mut self,
        subscriber: &str,
        terminal: &str,
        revoked: bool,
    ) -> Result<(), StoreError>;
    /// Removes the terminal, its sync states, maps and sessions (items it wrote and their
    /// history stay). The terminal id becomes free.
    fn terminal_remove(&mut self, subscriber: &str, terminal: &str) -> Result<(), StoreError>;

    // ----- items ----------------------------------------------------------------------------

    /// Reads an item's current version (possibly a tombstone).
    fn item_get(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Option<Item>, StoreError>;
    /// The current versions (possibly tombstones) of the items with these GUIDs, in one
    /// round trip, each once, in no particular order; unknown GUIDs are left out.
    fn items_get(
        &mut self,
        ds: DatastoreKey<'_>,
        guids: &[String],
    ) -> Result<Vec<Item>, StoreError>;
    /// Of the items `wanted` as (GUID, revision), those whose current version is still
    /// that revision (tombstones included), each once, in no particular order: the items
    /// a stored package 4 refers to that have not changed since. A backend may read them
    /// by their revisions, which a download takes in runs.
    fn items_at_revisions(
        &mut self,
        ds: DatastoreKey<'_>,
        wanted: &[(String, i64)],
    ) -> Result<Vec<Item>, StoreError> {
        items_at_revisions_by_guid(self, ds, wanted)
    }
    /// Inserts or replaces a batch of items written by `origin` (a terminal id, or `None` for
    /// the operator). Each item takes the next revision of the datastore, in slice order; the
    /// previous version of a replaced item goes to history. Returns one [`PutResult`] per
    /// input, in order. Creates the datastore on first write; the subscriber must exist.
    fn items_put(
        &mut self,
        ds: DatastoreKey<'_>,
        origin: Option<&str>,
        items: &[NewItem],
        now: Timestamp,
    ) -> Result<Vec<PutResult>, StoreError>;
    /// Deletes a batch of items (tombstones; the deleted version goes to history). Returns, per
    /// input GUID in order, the revision of the delete, or `None` when the item is unknown or
    /// already deleted (including a GUID repeated within the batch).
    fn items_delete(
        &mut self,
        ds: DatastoreKey<'_>,
        origin: Option<&str>,
        guids: &[String],
        now: Timestamp,
    ) -> Result<Vec<Option<i64>>, StoreError>;
    /// All live (non-deleted) items of the datastore, ordered by revision.
    fn items_list_live(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<Item>, StoreError>;
    /// What [`Tx::items_list_live`] lists, without the data: each item's GUID, content
    /// type, revision and data length, ordered by revision. Backends answer it without
    /// reading the data.
    fn items_list_live_sizes(&mut self, ds: DatastoreKey<'_>) -> Result<Vec<ItemSize>, StoreError> {
        Ok(self
            .items_list_live(ds)?
            .into_iter()
            .map(|i| ItemSize {
                size: i.data.len() as u64,
                guid: i.guid,
                content_type: i.content_type,
                revision: i.revision,
            })
            .collect())
    }
    /// Count and total bytes of the live items.
    fn items_stats(&mut self, ds: DatastoreKey<'_>) -> Result<ItemStats, StoreError>;
    /// The latest state of every item changed after revision `after`, once per GUID, ordered
    /// by revision, leaving out items whose latest change came from `exclude_origin`.
    /// `limit` bounds the result (page on with the last revision returned).
    ///
    /// A [`ChangeKind::Delete`] may name an item the terminal never received; the caller checks
    /// its map before sending a Delete.
    fn changes_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<Change>, StoreError>;
    /// Number of entries [`Tx::changes_since`] would return without a limit (NumberOfChanges).
    fn changes_count_since(
        &mut self,
        ds: DatastoreKey<'_>,
        after: i64,
        exclude_origin: Option<&str>,
    ) -> Result<u64, StoreError>;
    /// The datastore's current revision (0 if never written).
    fn datastore_revision(&mut self, ds: DatastoreKey<'_>) -> Result<i64, StoreError>;
    /// The subscriber's datastores with revision and live-item statistics, ordered by name.
    fn datastores(&mut self, subscriber: &str) -> Result<Vec<DatastoreInfo>, StoreError>;
    /// Previous versions of an item (not the current one), newest first.
    fn item_history(&mut self, ds: DatastoreKey<'_>, guid: &str) -> Result<Vec<Item>, StoreError>;

    // ----- sync state -----------------------------------------------------------------------

    /// Reads the sync state of a terminal's datastore.
    fn sync_state_get(&mut self, key: SyncKey<'_>) -> Result<Option<SyncState>, StoreError>;
    /// Writes (inserts or replaces) the sync state. The terminal must be registered to the
    /// subscriber, else [`StoreError::NotFound`].
    fn sync_state_put(&mut self, key: SyncKey<'_>, state: &SyncState) -> Result<(), StoreError>;
    /// Deletes the sync state (forces a slow sync next time). Returns whether one existed.
    fn sync_state_delete(&mut self, key: SyncKey<'_>) -> Result<bool, StoreError>;
    /// All sync states of one terminal, as (datastore, state), ordered by datastore.
    fn sync_states_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
    ) -> Result<Vec<(String, SyncState)>, StoreError>;

    // ----- LUID↔GUID map --------------------------------------------------------------------

    /// Adds pairs to the map. Both sides are unique within the key: a pair replaces any existing
    /// pair with the same LUID or the same GUID (the client's latest word wins). The terminal
    /// must be registered to the subscriber, else [`StoreError::NotFound`].
    fn map_put(&mut self, key: SyncKey<'_>, entries: &[MapEntry]) -> Result<(), StoreError>;
    /// Removes the pairs with these LUIDs; returns how many were removed.
    fn map_remove_luids(&mut self, key: SyncKey<'_>, luids: &[String]) -> Result<u64, StoreError>;
    /// Removes the pairs with these GUIDs; returns how many were removed.
    fn map_remove_guids(&mut self, key: SyncKey<'_>, guids: &[String]) -> Result<u64, StoreError>;
    /// The GUID mapped to a LUID.
    fn map_guid_for_luid(
        &mut self,
        key: SyncKey<'_>,
        luid: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The GUIDs mapped to these LUIDs, in one round trip (LUIDs without a pair are
    /// left out).
    fn map_guids_for_luids(
        &mut self,
        key: SyncKey<'_>,
        luids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, StoreError>;
    /// The LUID mapped to a GUID.
    fn map_luid_for_guid(
        &mut self,
        key: SyncKey<'_>,
        guid: &str,
    ) -> Result<Option<String>, StoreError>;
    /// The whole map, ordered by LUID.
    fn map_list(&mut self, key: SyncKey<'_>) -> Result<Vec<MapEntry>, StoreError>;
    /// Empties the map; returns how many pairs were removed.
    fn map_clear(&mut self, key: SyncKey<'_>) -> Result<u64, StoreError>;

    // ----- sessions -------------------------------------------------------------------------

    /// Inserts or updates a session. On update the state and expiry change, `created_at` stays;
    /// a key owned by another subscriber/terminal gives [`StoreError::Conflict`]. The terminal
    /// must be registered to the subscriber, else [`StoreError::NotFound`].
    fn session_save(&mut self, session: &SessionRecord) -> Result<(), StoreError>;
    /// Loads a session unless it has expired at `now`.
    fn session_load(
        &mut self,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Deletes a session; returns whether it existed.
    fn session_delete(&mut self, key: &str) -> Result<bool, StoreError>;
    /// Deletes every session expired at `now`; returns how many.
    fn sessions_purge_expired(&mut self, now: Timestamp) -> Result<u64, StoreError>;
    /// Keys of the unexpired sessions of one terminal (to refuse or serialise concurrent
    /// sessions of a terminal).
    fn sessions_for_terminal(
        &mut self,
        subscriber: &str,
        terminal: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// How many sessions (of every subscriber) have not expired at `now`: the sessions in
    /// flight on every node sharing the store (suspended ones included).
    fn sessions_count_live(&mut self, now: Timestamp) -> Result<u64, StoreError>;

    /// Appends commands to a session's pending outgoing package (one batch, in the
    /// order given; their `seq` must be above every pending one of the session). The
    /// session must exist; its pending commands go when it is deleted or purged.
    fn session_pending_put(
        &mut self,
        session_key: &str,
        commands: &[PendingCommand],
    ) -> Result<(), StoreError>;
    /// The head of a session's pending package, in order: rows up to and including the
    /// first at which the running total of `size` reaches `budget` (so at least one row
    /// when any is pending). Nothing is removed.
    fn session_pending_head(
        &mut self,
        session_key: &str,
        budget: u64,
    ) -> Result<Vec<PendingCommand>, StoreError>;
    /// Removes a session's pending commands with `seq <= through` (those sent); returns
    /// how many.
    fn session_pending_remove_through(
        &mut self,
        session_key: &str,
        through: i64,
    ) -> Result<u64, StoreError>;
    /// How many commands of a session's package are pending.
    fn session_pending_count(&mut self, session_key: &str) -> Result<u64, StoreError>;
    /// Removes every pending command of a session; returns how many.
    fn session_pending_clear(&mut self, session_key: &str) -> Result<u64, StoreError>;
    /// Records items of a session's outgoing package as acknowledged (one batch; an item
    /// recorded again keeps the latest revision). The session must exist; the records go
    /// when it is deleted or purged.
    fn session_delivered_put(
        &mut self,
        session_key: &str,
        items: &[DeliveredItem],
    ) -> Result<(), StoreError>;
    /// The items recorded as acknowledged in a session, ordered by datastore and GUID.
    fn session_delivered_list(
        &mut self,
        session_key: &str,
    ) -> Result<Vec<DeliveredItem>, StoreError>;

    // ----- audit ----------------------------------------------------------------------------

    /// Appends an event; returns its id. The log cannot be changed or shortened through the
    /// store (the SQLite schema also refuses UPDATE and DELETE on it).
    fn audit_append(&mut self, event: &AuditEvent) -> Result<i64, StoreError>;
    /// Lists events matching the filter, newest first.
    fn audit_list(&mut self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;

    // ----- lockout --------------------------------------------------------------------------

    /// Counts one authentication failure at `now` and returns the new state, with the lock
    /// given by [`lockout_duration`] / [`lockout_next`].
    fn lockout_record_failure(
        &mut self,
        key: LockoutKey<'_>,
        now: Timestamp,
    ) -> Result<LockoutState, StoreError>;
    /// Clears a counter (after a success, or by the operator to lift a lock). Returns whether
    /// one existed.
    fn lockout_reset(&mut self, key: LockoutKey<'_>) -> Result<bool, StoreError>;
    /// Reads a counter.
    fn lockout_get(&mut self, key: LockoutKey<'_>) -> Result<Option<LockoutState>, StoreError>;
}

/// [`Tx::items_at_revisions`] by GUID: [`Tx::items_get`], then only the versions asked.
pub(crate) fn items_at_revisions_by_guid<T: Tx + ?Sized>(
    tx: &mut T,
    ds: DatastoreKey<'_>,
    wanted: &[(String, i64)],
) -> Result<Vec<Item>, StoreError> {
    let guids: Vec<String> = wanted.iter().map(|(g, _)| g.clone()).collect();
    let revisions: std::collections::HashSet<(&str, i64)> =
        wanted.iter().map(|(g, r)| (g.as_str(), *r)).collect();
    let mut items = tx.items_get(ds, &guids)?;
    items.retain(|i| revisions.contains(&(i.guid.as_str(), i.revision)));
    Ok(items)
}

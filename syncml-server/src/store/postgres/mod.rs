//! The PostgreSQL backend: the same [`Store`] / [`Tx`] contract as [`SqliteStore`], on a
//! database that several stateless server nodes share.
//!
//! [`SqliteStore`]: crate::store::SqliteStore
//!
//! ```no_run
//! use syncml_server::store::{PgStore, StoreExt};
//! # fn main() -> Result<(), syncml_server::store::StoreError> {
//! let store = PgStore::connect("postgres://syncml@127.0.0.1:5432/syncml")?;
//! let n = store.read(|tx| Ok(tx.subscriber_list(None, 10)?.len()))?;
//! # let _ = n; Ok(()) }
//! ```
//!
//! # Runtime and pool
//!
//! The [`Store`] trait is synchronous (the server calls it from `spawn_blocking`), the driver
//! (tokio-postgres) is async. Each `PgStore` owns a **small dedicated tokio runtime**
//! ([`PgConfig::runtime_threads`] worker threads, 1 by default) on which the connection tasks of
//! its deadpool-postgres pool live; a transaction checks a connection out of the pool and every
//! [`Tx`] call drives its statements to completion with `Handle::block_on` on the calling
//! thread. Why a runtime of its own rather than the server's (`Handle::current().block_on`):
//!
//! * the store works the same from any synchronous caller (CLI, tests, a `spawn_blocking`
//!   thread of the server) without an ambient runtime or any setup by the caller;
//! * database socket I/O never competes with HTTP tasks on the server's workers, and a server
//!   worker thread is never blocked on it;
//! * dropping the store shuts its runtime down (in the background, so dropping the last
//!   `Arc<dyn Store>` anywhere is safe), which closes every connection.
//!
//! The price is one extra thread per store and a thread hop per round trip (the caller parks
//! while the runtime's worker reads the socket). `run` must not be called from inside an async
//! task (`block_on` would panic there): call it from `spawn_blocking`, like every `Store`.
//!
//! Batch calls are **set-based**: [`Tx::items_put`], [`Tx::items_delete`] and [`Tx::map_put`]
//! send one statement per kind of write whatever the batch size (the per-row values as arrays
//! expanded with `unnest`), and the few statements of one call are **pipelined** (all sent, in
//! order, before the first answer is awaited). A batch of N items costs about three round
//! trips, not N. A 10-item session-like write transaction (read state and changes, put 10
//! items, map them, write the state) takes about 0.7-0.9 ms on a local PostgreSQL 15 with one
//! client, against 0.2 ms on SQLite; a one-query read transaction about 60 µs (7 µs).
//!
//! On a freshly created and quickly filled database the planner has no statistics until
//! autovacuum's first `ANALYZE` (about a minute) and may pick poor plans; see
//! [`PgStore::analyze`].
//!
//! # Transactions, isolation and retries
//!
//! Every [`Store::run`] is one database transaction on one pooled connection:
//!
//! * **Write** transactions run at `REPEATABLE READ` with row locks where the engine needs
//!   writers serialised, which gives them the meaning they have on SQLite (writers serialised
//!   outright) where it matters, also with several nodes:
//!   - every writer of a datastore updates its row (`UPDATE datastore ... RETURNING` takes the
//!     revision counter; the row lock is held to commit, and the unique index on
//!     (subscriber, datastore, revision) backs it up), so two writers of one datastore are
//!     serialised and never hand out the same revision; what the second one read (an item's
//!     revision for conflict detection, a map) is re-read when it runs again;
//!   - rows updated by two transactions (an item, a session, a lockout counter, a nonce)
//!     make the later one fail with a serialization failure and run again on the new state;
//!   - [`Tx::sessions_for_terminal`] locks the terminal's row, so two sessions of one
//!     terminal starting at once on two nodes do not both survive.
//!
//!   A pure reader in a write transaction (package 4 of a terminal that sends no changes)
//!   works on one consistent snapshot and records the revision of that snapshot as its mark.
//!   `SERIALIZABLE` was used before and gave the same results, but its predicate locks on
//!   the shared `session` and `audit` indexes made transactions of unrelated subscribers
//!   abort each other under load (1,000 concurrent sessions: most failed after 20 attempts;
//!   see BENCHMARKS.md).
//! * **Read** transactions run at `REPEATABLE READ READ ONLY`: one consistent snapshot, never
//!   blocked by writers, writes refused (as on SQLite). A read-only snapshot is not checked by
//!   the serializable machinery (PostgreSQL's "read-only anomaly" is possible in principle);
//!   anything that must be exact is read inside the write transaction that acts on it.
//! * A **serialization failure** (SQLSTATE 40001) or **deadlock** (40P01) anywhere in the
//!   transaction, including at `COMMIT`, rolls it back and runs the closure **again** on a fresh
//!   transaction, after a short randomised backoff, at most [`PgConfig::max_attempts`] times in
//!   all; after that `run` fails with [`StoreError::Busy`] (SyncML 101, "try again"). Two
//!   terminals of one subscriber writing at the same instant are serialised this way: the
//!   second waits for the first's row lock, fails, and re-runs on the new state. The trait's
//!   closures are `FnMut` for this reason. [`PgStore::retries`] counts the re-runs.
//! * Each write transaction sets `lock_timeout` ([`PgConfig::lock_timeout`]); a longer wait
//!   fails with [`StoreError::Busy`]. It also sets `idle_in_transaction_session_timeout`
//!   ([`PgConfig::idle_in_transaction_timeout`]), so a node that hangs inside a transaction
//!   cannot hold the other nodes' row locks for ever.
//!
//! # Differences from SQLite that a caller can observe
//!
//! * PostgreSQL aborts a transaction at the first failed statement. The `Tx` implementation
//!   therefore never lets an *expected* failure (unknown terminal, duplicate id, session key of
//!   another terminal, ...) reach the server as an SQL error: it uses conditional statements
//!   (`INSERT ... SELECT ... WHERE EXISTS`, `ON CONFLICT DO NOTHING`) and checks up front, so a
//!   closure may catch such an error and go on, as on SQLite. After an *unexpected* SQL error
//!   every later call in the transaction fails with the same error, and the transaction rolls
//!   back even if the closure returns `Ok`.
//! * [`Tx::items_put`] checks that every replaced GUID exists before writing anything, so a
//!   failing batch writes nothing even if the closure swallows the error (SQLite writes the
//!   items before the bad one).
//! * PostgreSQL `TEXT` cannot hold NUL characters: a text argument containing `\0` fails with
//!   [`StoreError::InvalidInput`] (identifiers refuse control characters on both backends).
//! * [`StoreStats::write_rollbacks`] counts transactions that finally failed, not re-runs.
//!
//! The schema lives in the connection's `search_path` (normally `public`); give the server a
//! database of its own, or set `options=-csearch_path=syncml` in the connection string.
//! Connections are plain TCP or unix socket: TLS to the database is not supported yet.

mod migrations;
mod tx;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use migrations::{Migration, MIGRATIONS, SCHEMA_VERSION};

use super::{Store, StoreError, StoreStats, Tx, TxMode};

/// Options of [`PgStore::connect_with`].
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// Most connections the pool opens (at least 1); connections are opened on demand.
    pub pool_size: usize,
    /// Worker threads of the store's own tokio runtime (at least 1).
    pub runtime_threads: usize,
    /// How often a transaction is attempted in all when it hits serialization failures or
    /// deadlocks (at least 1).
    pub max_attempts: u32,
    /// Longest wait for a row lock inside a write transaction before [`StoreError::Busy`].
    pub lock_timeout: Duration,
    /// A write transaction left idle this long between two statements (a hung node holding
    /// row locks) is ended by the server, which releases its locks for the other nodes.
    pub idle_in_transaction_timeout: Duration,
    /// Longest wait for a free pooled connection before [`StoreError::Busy`].
    pub pool_wait_timeout: Duration,
    /// Longest time to open a new connection (used unless the connection string sets
    /// `connect_timeout`).
    pub connect_timeout: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            pool_size: 16,
            runtime_threads: 1,
            max_attempts: 20,
            lock_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(60),
            pool_wait_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

thread_local! {
    /// Address of the store whose write transaction this thread is running (0: none). A nested
    /// write transaction on the same store could wait forever on a row lock its own outer
    /// transaction holds, so it is refused, as on SQLite.
    static IN_WRITE_TX: Cell<usize> = const { Cell::new(0) };
}

/// The PostgreSQL implementation of [`Store`]. See the [module documentation](self).
pub struct PgStore {
    /// `Some` until drop, which shuts it down in the background.
    rt: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    config: PgConfig,
    target: String,
    applied: Vec<u32>,
    write_commits: AtomicU64,
    write_rollbacks: AtomicU64,
    reads: AtomicU64,
    retries: AtomicU64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects with the default [`PgConfig`] and applies pending migrations.
    ///
    /// `conn` is a libpq-style connection string, as a URL
    /// (`postgres://user:password@host:port/dbname?options=...`) or as `key=value` pairs
    /// (`host=/run/postgresql dbname=syncml`).
    pub fn connect(conn: &str) -> Result<Self, StoreError> {
        Self::connect_with(conn, &PgConfig::default())
    }

    /// Connects with the given options and applies pending migrations.
    pub fn connect_with(conn: &str, config: &PgConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = conn.parse().map_err(|e| {
            StoreError::InvalidInput(format!("bad PostgreSQL connection string: {e}"))
        })?;
        if pg.get_application_name().is_none() {
            pg.application_name("syncml-server");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        let target = describe(&pg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.runtime_threads.max(1))
            .thread_name("syncml-pg")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the database runtime: {e}")))?;
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let handle = rt.handle().clone();
        let applied = handle.block_on(async {
            let client = pool.get().await.map_err(|e| map_pool_err(&e, &target))?;
            migrations::apply(&client, MIGRATIONS).await
        })?;
        if !applied.is_empty() {
            tracing::info!(target = %target, ?applied, "database schema migrated");
        }
        Ok(PgStore {
            rt: Some(rt),
            handle,
            pool,
            config: config.clone(),
            target,
            applied,
            write_commits: AtomicU64::new(0),
            write_rollbacks: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// Schema versions the [`connect`](Self::connect) of this store applied (empty: the
    /// database was up to date).
    pub fn migrations_applied(&self) -> &[u32] {
        &self.applied
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.handle.block_on(async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| map_pool_err(&e, &self.target))?;
            migrations::current_version(&client).await
        })
    }

    /// Refreshes the planner statistics of the store's tables (`ANALYZE`).
    ///
    /// PostgreSQL's autovacuum does this by itself, but only about a minute after a table
    /// starts to fill. Until then the planner knows nothing of a fresh database and may pick
    /// poor plans for the prepared statements (e.g. scan a terminal's whole LUID map to
    /// replace one entry), which a benchmark on a freshly seeded database would measure. Call
    /// this after seeding or bulk loading; it is never needed for correctness.
    pub fn analyze(&self) -> Result<(), StoreError> {
        self.handle.block_on(async {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| map_pool_err(&e, &self.target))?;
            client
                .batch_execute(
                    "ANALYZE subscriber, terminal, terminal_class, datastore, item, \
                     item_history, sync_state, luid_map, session, audit, lockout",
                )
                .await
                .map_err(|e| map_pg_err(&e))
        })
    }

    /// How many times a transaction closure was run again after a serialization failure or
    /// deadlock, since this store was opened.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Host, port and database this store talks to (no credentials), for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn run_inner(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let max = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.attempt(mode, f) {
                Attempt::Done(result) => return result,
                Attempt::Retry(why) => {
                    if attempt >= max {
                        self.count_failure(mode);
                        tracing::warn!(attempts = attempt, error = %why, "giving up on a conflicting transaction");
                        return Err(StoreError::Busy(format!(
                            "transaction kept conflicting with concurrent ones ({attempt} attempts): {why}"
                        )));
                    }
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(attempt, error = %why, "transaction conflict, running it again");
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt: a pooled connection, `BEGIN`, the closure, `COMMIT` or `ROLLBACK`.
    fn attempt(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Attempt {
        let client = match self.handle.block_on(self.pool.get()) {
            Ok(c) => c,
            Err(e) => return Attempt::Done(Err(map_pool_err(&e, &self.target))),
        };
        let begin = match mode {
            TxMode::Write => format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}",
                self.config.lock_timeout.as_millis().max(1),
                self.config.idle_in_transaction_timeout.as_millis().max(1)
            ),
            TxMode::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_string(),
        };
        if let Err(e) = self.handle.block_on(client.batch_execute(&begin)) {
            let closed = e.is_closed();
            discard(client);
            if closed {
                // A pooled connection the server has closed meanwhile (restart, idle
                // timeout): nothing was done yet, so trying again on a fresh one is safe.
                return Attempt::Retry(map_pg_err(&e));
            }
            return Attempt::Done(Err(map_pg_err(&e)));
        }

        let mut tx = tx::PgTx::new(&self.handle, &client);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
        let failure = tx.into_failure();
        let result = match outcome {
            Ok(result) => result,
            Err(payload) => {
                self.rollback(client);
                if mode == TxMode::Write {
                    self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
                }
                panic::resume_unwind(payload);
            }
        };

        if let Some(failure) = failure {
            self.rollback(client);
            if failure.retryable {
                return Attempt::Retry(failure.error);
            }
            self.count_failure(mode);
            // The closure's own error (possibly of the caller's type, carried as `Aborted`)
            // wins; a swallowed SQL error still fails the transaction.
            return Attempt::Done(Err(match result {
                Err(e) => e,
                Ok(()) => failure.error,
            }));
        }
        match (mode, result) {
            (TxMode::Read, result) => {
                self.reads.fetch_add(1, Ordering::Relaxed);
                self.rollback(client);
                Attempt::Done(result)
            }
            (TxMode::Write, Err(e)) => {
                self.rollback(client);
                self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "write transaction rolled back");
                Attempt::Done(Err(e))
            }
            (TxMode::Write, Ok(())) => match self.handle.block_on(client.batch_execute("COMMIT")) {
                Ok(()) => {
                    self.write_commits.fetch_add(1, Ordering::Relaxed);
                    Attempt::Done(Ok(()))
                }
                Err(e) => {
                    // Serializable conflicts may only show at commit; the transaction is
                    // gone either way.
                    let retryable = is_retryable(&e);
                    if e.is_closed() {
                        discard(client);
                    }
                    if retryable {
                        return Attempt::Retry(map_pg_err(&e));
                    }
                    self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
                    Attempt::Done(Err(map_pg_err(&e)))
                }
            },
        }
    }

    fn count_failure(&self, mode: TxMode) {
        match mode {
            TxMode::Write => self.write_rollbacks.fetch_add(1, Ordering::Relaxed),
            TxMode::Read => self.reads.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Ends the transaction; a connection that cannot roll back is closed rather than
    /// returned to the pool with a transaction open.
    fn rollback(&self, client: Object) {
        if let Err(e) = self.handle.block_on(client.batch_execute("ROLLBACK")) {
            tracing::warn!(error = %e, "rollback failed; closing the connection");
            discard(client);
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.pool.close();
        if let Some(rt) = self.rt.take() {
            // Never blocks, so dropping the store inside an async context is fine too.
            rt.shutdown_background();
        }
    }
}

impl Store for PgStore {
    fn run(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if mode == TxMode::Read {
            return self.run_inner(mode, f);
        }
        let me = std::ptr::from_ref(self) as usize;
        if IN_WRITE_TX.with(Cell::get) == me {
            return Err(StoreError::Backend(
                "nested write transaction on the same store; use the Tx you were given".into(),
            ));
        }
        let _flag = WriteFlag::set(me);
        self.run_inner(mode, f)
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_commits: self.write_commits.load(Ordering::Relaxed),
            write_batches: self.write_commits.load(Ordering::Relaxed),
            writer_busy: std::time::Duration::ZERO,
            checkpoints: super::Checkpoints::default(),
            write_rollbacks: self.write_rollbacks.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }
}

enum Attempt {
    Done(Result<(), StoreError>),
    /// Rolled back after a conflict; the error says which.
    Retry(StoreError),
}

/// Marks [`IN_WRITE_TX`] for one store and restores the previous mark on drop, also when the
/// closure panics.
struct WriteFlag {
    previous: usize,
}

impl WriteFlag {
    fn set(store: usize) -> Self {
        WriteFlag {
            previous: IN_WRITE_TX.with(|f| f.replace(store)),
        }
    }
}

impl Drop for WriteFlag {
    fn drop(&mut self) {
        IN_WRITE_TX.with(|f| f.set(self.previous));
    }
}

/// Takes a connection out of the pool for good; dropping it closes it (and the server rolls
/// back whatever it had open).
fn discard(client: Object) {
    drop(Object::take(client));
}

/// Sleep before attempt `attempt + 1`: exponential from 1 ms, capped at 64 ms, with jitter so
/// that the losers of one conflict do not collide again in lockstep.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 1u64 << attempt.saturating_sub(1).min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let thread = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::thread::current().id().hash(&mut h);
        h.finish()
    };
    let jitter_us = (nanos ^ thread.rotate_left(17)) % (cap_ms * 1000);
    Duration::from_micros(cap_ms * 500 + jitter_us / 2)
}

/// `host:port/dbname` of a configuration, without credentials.
fn describe(pg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let db = pg
        .get_dbname()
        .or(pg.get_user())
        .unwrap_or("(default database)");
    format!("{host}:{port}/{db}")
}

/// Whether re-running the whole transaction may succeed.
pub(crate) fn is_retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

fn map_pool_err(e: &PoolError, target: &str) -> StoreError {
    match e {
        PoolError::Timeout(kind) => StoreError::Busy(format!(
            "no PostgreSQL connection to {target} available in time ({kind:?})"
        )),
        PoolError::Backend(e) => {
            StoreError::Backend(format!("cannot connect to PostgreSQL at {target}: {e}"))
        }
        other => StoreError::Backend(format!("PostgreSQL connection pool: {other}")),
    }
}

/// Maps a driver error onto the backend-neutral [`StoreError`].
pub(crate) fn map_pg_err(e: &tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        if e.is_closed() {
            return StoreError::Backend(format!("PostgreSQL connection closed: {e}"));
        }
        return StoreError::Backend(e.to_string());
    };
    let text = db.message().to_string();
    let code = db.code();
    match code.code() {
        "23503" => StoreError::NotFound(format!(
            "referenced subscriber or terminal does not exist ({text})"
        )),
        "23505" => StoreError::AlreadyExists(text),
        "23502" | "23514" => StoreError::InvalidInput(text),
        "40001" | "40P01" => StoreError::Busy(format!(
            "conflict with a concurrent transaction, it will be run again ({text})"
        )),
        "55P03" | "57014" => StoreError::Busy(text),
        "25006" => StoreError::Backend(format!("write in a read-only transaction ({text})")),
        "P0001" => StoreError::Conflict(text),
        "XX001" | "XX002" => StoreError::Corrupt(text),
        c if c.starts_with("22") => StoreError::InvalidInput(text),
        c if c.starts_with("23") => StoreError::Conflict(text),
        c if c.starts_with("53") => StoreError::Busy(format!("database out of resources: {text}")),
        _ => StoreError::Backend(format!("{}: {text}", code.code())),
    }
}

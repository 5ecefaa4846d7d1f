//! The SQLite backend: one database file, WAL journal, migrations at open, and a small pool of
//! its own (one writer connection plus N read-only connections).
//!
//! # Concurrency
//!
//! SQLite allows one writer at a time. Rather than letting several connections race for the
//! write lock (and poll in the busy handler), all write transactions share **one** connection
//! behind a `Mutex`, so writers queue in-process in FIFO-ish order.
//!
//! # Group commit
//!
//! Writers that queue behind each other share one SQLite transaction (`BEGIN IMMEDIATE` ...
//! `COMMIT`): each runs its closure inside its own `SAVEPOINT` (an error or a panic rolls
//! back only its own changes), and whoever finds nobody else waiting (or the batch full)
//! commits for all. Every caller returns only after the commit that holds its changes (or
//! with that commit's error), so what it reports as written is durable, as with one
//! transaction each; the commit's fixed cost (WAL frames of shared pages, the lock dance)
//! is paid once per batch. A batch never waits for more work: it commits as soon as the
//! queue is empty. Read-only transactions take one of `readers` connections opened
//! read-only (behind a `Mutex<Vec<_>>` and a `Condvar`) and, thanks to WAL, run concurrently
//! with the writer on a consistent snapshot. `busy_timeout` still applies for other processes
//! on the same file (e.g. the operator CLI while the server runs); when it expires the call
//! fails with [`StoreError::Busy`].
//!
//! # Checkpoints
//!
//! The WAL is copied into the database file mostly by a thread of its own while commits go
//! on, not by the committing writer (`checkpoint.rs`; [`SqliteConfig::background_checkpoint`]).
//!
//! # Durability
//!
//! `synchronous` defaults to `NORMAL`, SQLite's recommended setting with WAL: a committed
//! transaction survives a crash or `kill -9` of the process; a power loss may lose the last
//! transactions before a checkpoint (which a later slow sync repairs). Choose
//! [`Synchronous::Full`] to fsync every commit.

mod checkpoint;
mod migrations;
mod tx;

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

pub use migrations::{Migration, MIGRATIONS, SCHEMA_VERSION};

use super::{Store, StoreError, StoreStats, Tx, TxMode};

/// File name of the database inside a data directory (see [`SqliteStore::open_in_dir`]).
pub const DB_FILE_NAME: &str = "syncml.sqlite3";

/// SQLite `PRAGMA synchronous` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at checkpoints only; safe against process crashes (default).
    #[default]
    Normal,
    /// fsync at every commit; also safe against power loss.
    Full,
}

/// Options of [`SqliteStore::open`].
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Number of read-only connections (at least 1).
    pub readers: usize,
    /// How long a connection waits for a lock held by another process before failing with
    /// [`StoreError::Busy`].
    pub busy_timeout: Duration,
    /// Durability level.
    pub synchronous: Synchronous,
    /// Checkpoint the WAL mostly on a thread of its own instead of in the committing
    /// writer (see `checkpoint.rs`); off, SQLite's automatic checkpoint runs in the writer.
    pub background_checkpoint: bool,
    /// WAL size (4 KiB pages) at which it is checkpointed whole and starts over: with
    /// `background_checkpoint`, the writer then copies what the thread has not; without,
    /// SQLite's automatic checkpoint threshold. Default 8,192 (32 MiB).
    pub wal_restart_pages: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
            background_checkpoint: true,
            wal_restart_pages: WAL_AUTOCHECKPOINT_PAGES,
        }
    }
}

thread_local! {
    /// Address of the store whose write transaction this thread is running (0: none), to turn
    /// a nested write transaction on the same store into an error instead of a deadlock on the
    /// writer mutex.
    static IN_WRITE_TX: Cell<usize> = const { Cell::new(0) };
}

/// Most writers sharing one transaction (see the module docs, "Group commit").
const MAX_BATCH: usize = 32;
/// Oldest a batch gets before it is committed even with writers still queueing.
const MAX_BATCH_AGE: Duration = Duration::from_millis(20);

/// The writer connection and the batch whose transaction is open on it, if any.
struct Writer {
    conn: Connection,
    batch: Option<OpenBatch>,
    next_batch: u64,
}

struct OpenBatch {
    id: u64,
    members: usize,
    started: std::time::Instant,
}

/// Batches are committed in order; `upto` is the last one finished, `failed` the recent
/// ones whose commit failed (with the error).
#[derive(Default)]
struct Finished {
    upto: u64,
    failed: std::collections::VecDeque<(u64, String)>,
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    /// Writers waiting for the writer connection.
    queued: std::sync::atomic::AtomicUsize,
    finished: Mutex<Finished>,
    batch_done: Condvar,
    readers: Mutex<Vec<Connection>>,
    reader_returned: Condvar,
    applied: Vec<u32>,
    write_commits: AtomicU64,
    write_batches: AtomicU64,
    writer_busy_ns: AtomicU64,
    write_rollbacks: AtomicU64,
    reads: AtomicU64,
    /// Stopped (and its thread joined) when the store is dropped.
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/`[`DB_FILE_NAME`] with the default configuration,
    /// creating `dir` too.
    pub fn open_in_dir(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_in_dir_with(dir, &SqliteConfig::default())
    }

    /// [`SqliteStore::open_in_dir`] with a configuration of its own.
    pub fn open_in_dir_with(
        dir: impl AsRef<Path>,
        config: &SqliteConfig,
    ) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        Self::open(dir.join(DB_FILE_NAME), config)
    }

    /// Opens (creating if needed) the database file at `path` and applies pending migrations.
    pub fn open(path: impl AsRef<Path>, config: &SqliteConfig) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = Connection::open(&path).map_err(map_err)?;
        configure(&writer, config)?;
        // WAL is a property of the file; set it once from the read-write connection.
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(map_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "cannot switch {} to WAL (journal_mode is {mode})",
                path.display()
            )));
        }
        writer
            .pragma_update(None, "foreign_keys", false)
            .map_err(map_err)?;
        let applied = migrations::apply(&mut writer, MIGRATIONS)?;
        writer
            .pragma_update(None, "foreign_keys", true)
            .map_err(map_err)?;
        if !applied.is_empty() {
            tracing::info!(path = %path.display(), ?applied, "database schema migrated");
        }

        let checkpointer = if config.background_checkpoint {
            Some(checkpoint::Checkpointer::start(&path, config, &mut writer)?)
        } else {
            None
        };

        let mut readers = Vec::with_capacity(config.readers.max(1));
        for _ in 0..config.readers.max(1) {
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(map_err)?;
            configure(&conn, config)?;
            readers.push(conn);
        }

        Ok(SqliteStore {
            path,
            writer: Mutex::new(Writer {
                conn: writer,
                batch: None,
                next_batch: 1,
            }),
            queued: std::sync::atomic::AtomicUsize::new(0),
            finished: Mutex::new(Finished::default()),
            batch_done: Condvar::new(),
            readers: Mutex::new(readers),
            reader_returned: Condvar::new(),
            applied,
            write_commits: AtomicU64::new(0),
            write_batches: AtomicU64::new(0),
            writer_busy_ns: AtomicU64::new(0),
            write_rollbacks: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            checkpointer,
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Schema versions the last [`open`](Self::open) applied (empty: the file was up to date).
    pub fn migrations_applied(&self) -> &[u32] {
        &self.applied
    }

    /// The schema version recorded in the database file.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let w = lock(&self.writer);
        migrations::current_version(&w.conn)
    }

    fn run_write(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let me = std::ptr::from_ref(self) as usize;
        if IN_WRITE_TX.with(Cell::get) == me {
            return Err(StoreError::Backend(
                "nested write transaction on the same store; use the Tx you were given".into(),
            ));
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut w = lock(&self.writer);
        let held = std::time::Instant::now();
        self.queued.fetch_sub(1, Ordering::SeqCst);
        let _flag = WriteFlag::set(me);
        let batch = match &mut w.batch {
            Some(b) => {
                b.members += 1;
                b.id
            }
            None => {
                if !w.conn.is_autocommit() {
                    // Nothing may be left open between batches; be safe all the same.
                    exec(&w.conn, "ROLLBACK")?;
                }
                exec(&w.conn, "BEGIN IMMEDIATE")?;
                let id = w.next_batch;
                w.next_batch += 1;
                w.batch = Some(OpenBatch {
                    id,
                    members: 1,
                    started: std::time::Instant::now(),
                });
                id
            }
        };

        // This writer's part, inside its own savepoint.
        let mut panicked = None;
        let mut result = exec(&w.conn, "SAVEPOINT writer");
        if result.is_ok() {
            let conn = &w.conn;
            result = match panic::catch_unwind(AssertUnwindSafe(|| f(&mut tx::SqliteTx::new(conn))))
            {
                Ok(r) => r,
                Err(payload) => {
                    panicked = Some(payload);
                    Err(StoreError::Backend("write transaction panicked".into()))
                }
            };
            let end = if result.is_ok() {
                exec(&w.conn, "RELEASE writer")
            } else {
                exec(&w.conn, "ROLLBACK TO writer").and_then(|()| exec(&w.conn, "RELEASE writer"))
            };
            if let Err(e) = end {
                // The savepoint could not be ended: the batch's state is unknown, so none
                // of it may commit.
                tracing::warn!(error = %e, "savepoint failed; the whole batch rolls back");
                if !w.conn.is_autocommit() {
                    if let Err(rb) = exec(&w.conn, "ROLLBACK") {
                        tracing::warn!(error = %rb, "rollback failed");
                    }
                }
                self.finish_batch(&mut w, batch, Some(e.to_string()));
                self.note_held(held);
                drop(w);
                self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
                if let Some(p) = panicked {
                    panic::resume_unwind(p);
                }
                return Err(e);
            }
        }

        // Commit now, or leave the batch open for the writer queueing next.
        let keep_open = self.queued.load(Ordering::SeqCst) > 0
            && w.batch
                .as_ref()
                .is_some_and(|b| b.members < MAX_BATCH && b.started.elapsed() < MAX_BATCH_AGE);
        let committed = if keep_open {
            self.note_held(held);
            drop(w);
            self.wait_for(batch)
        } else {
            let outcome = exec(&w.conn, "COMMIT");
            if outcome.is_ok() {
                self.write_batches.fetch_add(1, Ordering::Relaxed);
            }
            let failure = outcome.as_ref().err().map(ToString::to_string);
            if failure.is_some() && !w.conn.is_autocommit() {
                if let Err(rb) = exec(&w.conn, "ROLLBACK") {
                    tracing::warn!(error = %rb, "rollback failed");
                }
            }
            self.finish_batch(&mut w, batch, failure);
            self.note_held(held);
            drop(w);
            outcome
        };
        if let Some(p) = panicked {
            self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
            panic::resume_unwind(p);
        }
        match (result, committed) {
            (Ok(()), Ok(())) => {
                self.write_commits.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            (Err(e), _) | (Ok(()), Err(e)) => {
                self.write_rollbacks.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "write transaction rolled back");
                Err(e)
            }
        }
    }

    /// Adds the time since `since` to the writer connection's busy time.
    fn note_held(&self, since: std::time::Instant) {
        let ns = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.writer_busy_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Marks `batch` finished (its transaction committed, or rolled back with `failure`)
    /// and wakes the writers waiting for it.
    fn finish_batch(&self, w: &mut Writer, batch: u64, failure: Option<String>) {
        w.batch = None;
        let mut fin = lock(&self.finished);
        fin.upto = batch;
        if let Some(why) = failure {
            fin.failed.push_back((batch, why));
            if fin.failed.len() > 64 {
                fin.failed.pop_front();
            }
        }
        drop(fin);
        self.batch_done.notify_all();
    }

    /// Waits until `batch` is finished; its commit's outcome.
    fn wait_for(&self, batch: u64) -> Result<(), StoreError> {
        let mut fin = lock(&self.finished);
        while fin.upto < batch {
            fin = self
                .batch_done
                .wait(fin)
                .unwrap_or_else(PoisonError::into_inner);
        }
        match fin.failed.iter().find(|(b, _)| *b == batch) {
            Some((_, why)) => Err(StoreError::Backend(format!(
                "the commit of the batch failed: {why}"
            ))),
            None => Ok(()),
        }
    }

    fn run_read(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut reader = self.checkout_reader();
        let conn = reader.conn_mut()?;
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(map_err)?;
        }
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(map_err)?;
        let result = f(&mut tx::SqliteTx::new(&txn));
        self.reads.fetch_add(1, Ordering::Relaxed);
        // Nothing to keep from a read transaction: end it the cheapest way either way.
        let end = txn.rollback().map_err(map_err);
        result.and(end)
    }

    fn checkout_reader(&self) -> ReaderGuard<'_> {
        let mut pool = lock(&self.readers);
        loop {
            if let Some(conn) = pool.pop() {
                return ReaderGuard {
                    store: self,
                    conn: Some(conn),
                };
            }
            pool = self
                .reader_returned
                .wait(pool)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Store for SqliteStore {
    fn run(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match mode {
            TxMode::Write => self.run_write(f),
            TxMode::Read => self.run_read(f),
        }
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            write_commits: self.write_commits.load(Ordering::Relaxed),
            write_batches: self.write_batches.load(Ordering::Relaxed),
            writer_busy: Duration::from_nanos(self.writer_busy_ns.load(Ordering::Relaxed)),
            checkpoints: self
                .checkpointer
                .as_ref()
                .map(checkpoint::Checkpointer::runs)
                .unwrap_or_default(),
            write_rollbacks: self.write_rollbacks.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
        }
    }
}

/// A borrowed read-only connection, given back to the pool on drop (also on panic).
struct ReaderGuard<'a> {
    store: &'a SqliteStore,
    conn: Option<Connection>,
}

impl ReaderGuard<'_> {
    fn conn_mut(&mut self) -> Result<&mut Connection, StoreError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Backend("reader connection missing".into()))
    }
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.store.readers).push(conn);
            self.store.reader_returned.notify_one();
        }
    }
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

/// Locks a mutex, recovering from poisoning: the guarded connections are left consistent by
/// rusqlite's rollback-on-drop, so a panic elsewhere must not take the store down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn configure(conn: &Connection, config: &SqliteConfig) -> Result<(), StoreError> {
    conn.busy_timeout(config.busy_timeout).map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(map_err)?;
    let sync = match config.synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(map_err)?;
    // A long package 4 rewrites the same pages with every message (the session record
    // with its stored reply, the head of the pending rows): checkpointing every 32 MiB
    // of WAL instead of SQLite's default 4 MiB copies each such page to the database
    // file once per checkpoint, not once per few messages.
    conn.pragma_update(None, "wal_autocheckpoint", config.wal_restart_pages)
        .map_err(map_err)?;
    // Group commit gives every writer a savepoint, and SQLite journals the original of
    // each page a savepoint changes to a temporary file: keep that journal in memory
    // (it was 10 MB of file writes for a 10,000-item download).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    // SQLite's default page cache, 2 MiB, not more: every commit that rebalanced a B-tree
    // walks the whole cache (pcache1TruncateUnsafe, after balance_nonroot parks a page at
    // the lock-byte page number), so a bigger cache costs per message. Measured with
    // uprobes over the SyncEvolution 10,000-contact benchmark (BENCHMARKS.md): 16 MiB,
    // 89 ms of cache walks and 1 ms of reads; 8 MiB, 53 + 24 ms; 2 MiB, 6 ms of walks and
    // 26,000 reads of the OS page cache (~40 ms).
    conn.pragma_update(None, "cache_size", -2_000)
        .map_err(map_err)?;
    // Plans that do not depend on bound values. Without this, SQLite (built with STAT4)
    // re-prepares a statement on every execution whose plan it lets a parameter steer: a
    // `MAX(batch) ... WHERE session_key = ?1` was parsed and planned again each message,
    // 8 % of the 10,000-contact download's samples (BENCHMARKS.md). We run no ANALYZE, so
    // the bound values never had better plans to offer.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

/// WAL pages between automatic checkpoints (4 KiB pages: 32 MiB).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 8192;

/// Runs one statement without parameters through the statement cache.
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_err)?;
    stmt.raw_execute().map(|_| ()).map_err(map_err)
}

/// Maps a rusqlite error onto the backend-neutral [`StoreError`].
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(err, msg) => {
            let text = msg.clone().unwrap_or_else(|| err.to_string());
            match err.code {
                ErrorCode::ConstraintViolation => match err.extended_code {
                    ffi::SQLITE_CONSTRAINT_FOREIGNKEY => StoreError::NotFound(format!(
                        "referenced subscriber or terminal does not exist ({text})"
                    )),
                    ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE => {
                        StoreError::AlreadyExists(text)
                    }
                    ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_NOTNULL => {
                        StoreError::InvalidInput(text)
                    }
                    _ => StoreError::Conflict(text),
                },
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy(text),
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
                ErrorCode::ReadOnly => {
                    StoreError::Backend(format!("write in a read-only transaction ({text})"))
                }
                _ => StoreError::Backend(text),
            }
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Backend(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, StatementStatus};

    /// With SQLite's STAT4 a `MAX(...) WHERE key = ?1` is re-prepared at every execution
    /// unless the planner is told not to look at bound values: the store's connections are.
    #[test]
    fn a_cached_statement_is_not_prepared_again_when_rebound() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        configure(&conn, &SqliteConfig::default()).expect("configured");
        conn.execute_batch(
            "CREATE TABLE b (k TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (k, n)) WITHOUT ROWID;",
        )
        .expect("table");
        let sql = "INSERT INTO b (k, n)
                   VALUES (?1, (SELECT COALESCE(MAX(n), 0) + 1 FROM b WHERE k = ?1))";
        for key in ["a", "b", "a", "c", "a"] {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.execute(params![key]))
                .expect("insert");
        }
        let stmt = conn.prepare_cached(sql).expect("cached");
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        let n: i64 = conn
            .query_row("SELECT MAX(n) FROM b WHERE k = 'a'", [], |r| r.get(0))
            .expect("max");
        assert_eq!(n, 3);
    }
}

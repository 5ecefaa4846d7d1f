//! WAL checkpoints off the writer's path.
//!
//! SQLite's automatic checkpoint runs in the connection that commits, after its commit:
//! with our single writer connection that means every writer queues behind it. A
//! checkpoint of the 32 MiB of WAL we let grow copies thousands of pages to the database
//! file and fsyncs the WAL and the database (`synchronous = NORMAL` syncs at checkpoints,
//! not at commits): fsyncs of up to 28 ms each on this project's test machine (`strace -T`),
//! about once a second at 1,000 sessions/s, each a queue of sessions behind the writer
//! (BENCHMARKS.md, "Eighth session (2026-11-27): checkpoints off the writer's path").
//!
//! Here the writer connection has a WAL hook instead of the automatic checkpoint:
//!
//! * every quarter of [`SqliteConfig::wal_restart_pages`] of WAL growth (2,048 pages, 8
//!   MiB, by default) it wakes a **checkpointer thread**,
//!   which runs a `PASSIVE` checkpoint on a connection of its own. A passive checkpoint
//!   takes SQLite's checkpoint lock, not the write lock, so commits go on while it copies
//!   and syncs;
//! * when the WAL holds `wal_restart_pages` pages the writer checkpoints itself, as SQLite's
//!   automatic checkpoint would, so that the next transaction can start the WAL over from
//!   its beginning (SQLite rewinds the WAL only when a write transaction begins on a fully
//!   checkpointed WAL, which a background thread racing the commits seldom achieves). By
//!   then the checkpointer has copied and synced all but the last few steps, so the
//!   writer's part is small.
//!
//! If the checkpointer is busy when the writer checkpoints (or the other way round), the
//! loser's passive checkpoint returns at once without copying; the next commit or wake-up
//! tries again. Durability is unchanged: every checkpoint, in either thread, syncs before
//! and after it copies, exactly as SQLite's own.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

use super::{configure, map_err, SqliteConfig};
use crate::store::{Checkpoints, StoreError};

/// Parts of `wal_restart_pages` between wake-ups of the checkpointer thread. Smaller steps
/// leave the writer less to copy but copy the pages every message rewrites (the session
/// rows, the tails of the append-only tables) more often: with 16 steps the server used 9 %
/// more CPU per session, with 4 steps 6 % (BENCHMARKS.md).
const STEPS: i32 = 4;

#[derive(Default)]
struct Shared {
    /// WAL size at which the writer checkpoints itself.
    restart_at: i32,
    /// WAL growth between wake-ups of the checkpointer thread.
    step: i32,
    /// Checkpoints the thread ran that copied pages, and checkpoints the writer ran (it
    /// cannot tell whether the thread had copied everything already).
    background_runs: u64,
    writer_runs: u64,
    /// Times the WAL started over, and its size after the last commit.
    restarts: u64,
    last_pages: i32,
    /// The writer asked the checkpointer for a checkpoint it has not started yet.
    wanted: bool,
    /// WAL size when the checkpointer was last woken (to wake it once per step).
    woken_at: i32,
    stop: bool,
}

/// The checkpointer thread of one store; stopped and joined on drop.
pub struct Checkpointer {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}

impl Checkpointer {
    /// Starts the checkpointer thread on a connection of its own to `path` and installs
    /// the WAL hook on `writer` (which replaces SQLite's automatic checkpoint there).
    pub fn start(
        path: &std::path::Path,
        config: &SqliteConfig,
        writer: &mut Connection,
    ) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open(path).map_err(map_err)?;
        configure(&conn, config)?;
        let restart_at =
            i32::try_from(config.wal_restart_pages.max(STEPS as u32)).unwrap_or(i32::MAX);
        let shared = Arc::new((
            Mutex::new(Shared {
                restart_at,
                step: restart_at / STEPS,
                ..Shared::default()
            }),
            Condvar::new(),
        ));

        let hook_shared = Arc::clone(&shared);
        writer
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
                on_commit(&hook_shared, wal, pages);
                Ok(())
            }))
            .map_err(map_err)?;

        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &thread_shared))
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Checkpoints that copied pages so far, and the times the WAL started over.
    pub fn runs(&self) -> Checkpoints {
        let s = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        Checkpoints {
            background: s.background_runs,
            writer: s.writer_runs,
            wal_restarts: s.restarts,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, cv) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the SQLite checkpointer thread panicked");
            }
        }
    }
}

/// The writer's WAL hook: after each commit, with the WAL's size in pages.
fn on_commit(shared: &(Mutex<Shared>, Condvar), wal: &mut rusqlite::hooks::Wal, pages: i32) {
    let (lock, cv) = shared;
    let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
    if pages < s.last_pages {
        s.restarts += 1;
        s.woken_at = 0;
    }
    s.last_pages = pages;
    if pages >= s.restart_at {
        drop(s);
        // What the checkpointer has not copied yet, so that the next transaction can
        // rewind the WAL. Busy (the checkpointer is at it) is fine: the next commit
        // tries again.
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            Ok(_) => {
                lock.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .writer_runs += 1
            }
            Err(e) => tracing::debug!(error = %e, "writer checkpoint did not run"),
        }
        return;
    }
    if pages >= s.woken_at + s.step {
        s.woken_at = pages;
        s.wanted = true;
        drop(s);
        cv.notify_one();
    }
}

/// The checkpointer thread: a passive checkpoint each time the writer asks for one.
fn run(conn: &Connection, shared: &(Mutex<Shared>, Condvar)) {
    let (lock, cv) = shared;
    loop {
        {
            let mut s = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !s.wanted && !s.stop {
                s = cv.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            if s.stop {
                return;
            }
            s.wanted = false;
        }
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((busy, log, copied)) => {
                tracing::trace!(busy, log, copied, "background checkpoint");
                if busy == 0 && copied > 0 {
                    lock.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .background_runs += 1;
                }
            }
            Err(e) => tracing::debug!(error = %e, "background checkpoint did not run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096 + 24; // a WAL frame: page and frame header

    fn open(path: &std::path::Path, restart: u32) -> (Connection, Checkpointer) {
        let config = SqliteConfig {
            wal_restart_pages: restart,
            ..SqliteConfig::default()
        };
        let mut writer = Connection::open(path).expect("open");
        configure(&writer, &config).expect("configure");
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        writer
            .execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB)")
            .expect("table");
        let ck = Checkpointer::start(path, &config, &mut writer).expect("start");
        (writer, ck)
    }

    /// 1,000 commits of 3 pages each, 0.2 ms apart (a server commits a message every
    /// 0.3 ms at 1,000 sessions/s), against a restart size of 256 pages: the WAL starts
    /// over again and again instead of growing by every frame written. (Back to back, a
    /// commit here takes microseconds and the WAL overshoots the restart size by what is
    /// committed while the thread's checkpoint syncs: bounded, but not by a constant.)
    #[test]
    fn the_wal_starts_over_while_commits_go_on_and_the_thread_copies_most_pages() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let (writer, ck) = open(&path, 256);
        let commits = 1000_i64;
        for i in 0..commits {
            writer
                .execute("INSERT INTO t (id, v) VALUES (?1, zeroblob(10000))", [i])
                .expect("insert");
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let Checkpoints {
            background,
            writer: by_writer,
            wal_restarts: restarts,
        } = ck.runs();
        assert!(
            background > 0,
            "the checkpointer thread never copied a page"
        );
        assert!(by_writer > 0, "the writer never finished a checkpoint");
        assert!(restarts >= 2, "the WAL started over {restarts} times");
        let wal = std::fs::metadata(dir.path().join("db-wal"))
            .expect("wal")
            .len();
        let written = commits as u64 * 3 * PAGE;
        assert!(
            wal < written * 3 / 4,
            "the WAL file holds {wal} of {written} bytes written"
        );
        drop(ck);
        drop(writer);
        let again = Connection::open(&path).expect("reopen");
        let n: i64 = again
            .query_row("SELECT count(*) FROM t WHERE length(v) = 10000", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(n, commits);
    }

    #[test]
    fn dropping_the_checkpointer_stops_its_thread() {
        let dir = tempfile::tempdir().expect("tmp");
        let (_writer, ck) = open(&dir.path().join("db"), 64);
        let shared = Arc::clone(&ck.shared);
        drop(ck);
        // Left: this test's and the hook's (still installed on the writer); the
        // thread's went with it.
        assert!(shared.0.lock().expect("lock").stop);
        assert!(Arc::strong_count(&shared) <= 2);
    }
}

//! The storage suite ([`store_suite`]) against SQLite files in temporary directories, plus the
//! SQLite-specific checks that need raw access to the file.

mod store_suite;

use std::sync::Arc;

use store_suite::{
    add_subscriber, add_terminal, audit_event, fixture, t, TestDb, A, B, TA1, TA2, TB1,
};
use syncml_server::store::sqlite::{DB_FILE_NAME, MIGRATIONS, SCHEMA_VERSION};
use syncml_server::store::{
    AuditEvent, MapEntry, PendingCommand, SessionRecord, SqliteConfig, SqliteStore, Store,
    StoreError, StoreExt, SyncKey, Timestamp,
};
use tempfile::TempDir;

/// A fresh SQLite database: a data directory of its own.
struct SqliteDb(TempDir);

impl SqliteDb {
    fn new() -> Self {
        SqliteDb(TempDir::new().expect("tempdir"))
    }
}

impl TestDb for SqliteDb {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(open(&self.0))
    }
}

storage_suite!(SqliteDb::new());

fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open_in_dir(dir.path()).expect("open store")
}

/// A database file at schema version `version` (the first `version` migrations applied by
/// hand, as an older build would have), for upgrade tests to fill and reopen.
fn database_at_version(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY NOT NULL,
                                      description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .unwrap();
    for m in &MIGRATIONS[..version] {
        conn.execute_batch(m.sql).unwrap();
        conn.execute(
            "INSERT INTO schema_version VALUES (?1, ?2, 0)",
            rusqlite::params![m.version, m.description],
        )
        .unwrap();
    }
    conn
}

fn schema_rows(path: &std::path::Path) -> Vec<(i64, String, i64)> {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    let mut stmt = conn
        .prepare("SELECT version, description, applied_at FROM schema_version ORDER BY version")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

#[test]
fn migrations_apply_once_and_upgrade() {
    // The list is contiguous from 1.
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1);
    }
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();

    // A fresh file gets every migration, once.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let store = open(&dir);
    assert_eq!(store.migrations_applied(), all.as_slice());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            Ok(())
        })
        .unwrap();
    drop(store);
    let rows = schema_rows(&path);
    assert_eq!(rows.len(), MIGRATIONS.len());

    // Opening an up-to-date file is a no-op.
    let store = open(&dir);
    assert!(store.migrations_applied().is_empty());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    assert_eq!(schema_rows(&path), rows);

    // A file at version 1, with data, upgrades to the newest version and keeps its data.
    let old_dir = TempDir::new().unwrap();
    let old_path = old_dir.path().join(DB_FILE_NAME);
    {
        let conn = database_at_version(&old_path, 1);
        conn.execute(
            "INSERT INTO subscriber (id, security_level, created_at) VALUES (?1, 1, 5)",
            [B],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO terminal (terminal_id, subscriber_id, registered_by, registered_at)
             VALUES ('IMEI:OLD', ?1, 'operator', 5)",
            [B],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO luid_map VALUES (?1, 'IMEI:OLD', 'contacts', 'L1', 'G1')",
            [B],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&old_path, &SqliteConfig::default()).unwrap();
    assert_eq!(store.migrations_applied(), &all[1..]);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let (sub, audit_id) = store
        .transaction(|tx| {
            let sub = tx.subscriber_get(B)?;
            // A table of migration 2 is usable.
            let id = tx.audit_append(&AuditEvent {
                at: t(0),
                subscriber_id: Some(B.into()),
                terminal_id: None,
                kind: "upgrade-check".into(),
                status: None,
                reason: String::new(),
                remote_addr: None,
            })?;
            Ok((sub, id))
        })
        .unwrap();
    // Migrations 4 and 5 rebuilt the LUID map: its pairs are still there and still
    // unique (a new pair for G1 replaces the old one), and go with their terminal.
    let key = SyncKey::new(B, "IMEI:OLD", "contacts");
    let map = store.transaction(|tx| tx.map_list(key)).unwrap();
    assert_eq!(map.len(), 1);
    assert_eq!((map[0].luid.as_str(), map[0].guid.as_str()), ("L1", "G1"));
    let map = store
        .transaction(|tx| {
            tx.map_put(
                key,
                &[MapEntry {
                    luid: "L2".into(),
                    guid: "G1".into(),
                }],
            )?;
            tx.map_list(key)
        })
        .unwrap();
    assert_eq!(map.len(), 1);
    assert_eq!((map[0].luid.as_str(), map[0].guid.as_str()), ("L2", "G1"));
    let sub = sub.expect("data survives the upgrade");
    assert_eq!(sub.security_level, 1);
    assert_eq!(sub.created_at, Timestamp(5));
    assert!(audit_id > 0);
    drop(store);

    // A file from a newer build is refused, not modified.
    {
        let conn = rusqlite::Connection::open(&old_path).unwrap();
        conn.execute(
            "INSERT INTO schema_version VALUES (?1, 'from the future', 0)",
            [i64::from(SCHEMA_VERSION) + 1],
        )
        .unwrap();
    }
    match SqliteStore::open(&old_path, &SqliteConfig::default()) {
        Err(StoreError::Schema(_)) => {}
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn audit_cannot_be_rewritten_through_raw_sql() {
    let db = SqliteDb::new();
    let store = fixture(&db);
    store
        .transaction(|tx| {
            tx.audit_append(&audit_event(1, Some(A), Some(TA1), 212))?;
            tx.audit_append(&audit_event(2, Some(A), Some(TA2), 401))?;
            tx.audit_append(&audit_event(3, Some(B), Some(TB1), 212))?;
            Ok(())
        })
        .unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(db.0.path().join(DB_FILE_NAME)).unwrap();
    assert!(conn
        .execute("UPDATE audit SET reason = 'forged'", [])
        .is_err());
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

/// Group commit (module docs of `store::sqlite`): writers queueing behind each other share
/// one SQLite transaction, each in its own savepoint. A writer that fails or panics loses
/// exactly its own changes; everyone else's commit, and every caller that got `Ok` finds
/// its write durable (read back on a fresh connection).
#[test]
fn group_commit_keeps_each_writers_outcome_its_own() {
    let dir = TempDir::new().expect("tmp");
    let store = Arc::new(open(&dir));
    let mut handles = Vec::new();
    for thread in 0..8 {
        let store = store.clone();
        handles.push(std::thread::spawn(move || {
            let mut kept = Vec::new();
            for i in 0..60 {
                let id = format!("s{thread}-{i}");
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.transaction(|tx| {
                        add_subscriber(tx, &id);
                        match i % 5 {
                            3 => Err(syncml_server::store::StoreError::InvalidInput("no".into())),
                            4 if i % 10 == 4 => panic!("writer {id} panics after writing"),
                            _ => Ok(()),
                        }
                    })
                }));
                if let Ok(Ok(())) = outcome {
                    kept.push(id);
                }
            }
            kept
        }));
    }
    let mut kept: Vec<String> = Vec::new();
    for h in handles {
        kept.extend(h.join().expect("writer thread"));
    }
    kept.sort();
    // 60 per thread: 12 refused with an error, 6 panicked, 42 committed.
    assert_eq!(kept.len(), 8 * 42);
    drop(store);
    let store = open(&dir);
    let mut found: Vec<String> = store
        .read(|tx| tx.subscriber_list(None, 10_000))
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    found.sort();
    assert_eq!(
        found, kept,
        "exactly the writes that returned Ok are in the file"
    );
}

/// Migration 4 moves the items a session recorded as delivered (one row each in version 3)
/// into batches: a session suspended across the upgrade still knows what it delivered.
#[test]
fn delivered_items_of_a_suspended_session_survive_migration_4() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    {
        let conn = database_at_version(&path, 3);
        conn.execute_batch(
            "INSERT INTO subscriber (id, security_level, created_at) VALUES ('sub', 0, 1);
             INSERT INTO terminal (terminal_id, subscriber_id, registered_by, registered_at)
                 VALUES ('IMEI:T', 'sub', 'operator', 1);
             INSERT INTO session (key, subscriber_id, terminal_id, state, created_at, expires_at)
                 VALUES ('s1', 'sub', 'IMEI:T', x'00', 1, 4102444800);
             INSERT INTO session_delivered VALUES ('s1', 'contacts', 'g2', 7);
             INSERT INTO session_delivered VALUES ('s1', 'contacts', 'g1', 3);
             INSERT INTO session_delivered VALUES ('s1', 'calendar', 'g9', 1);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path, &SqliteConfig::default()).unwrap();
    assert_eq!(store.migrations_applied(), &[4, 5, 6]);
    let listed = store
        .transaction(|tx| tx.session_delivered_list("s1"))
        .unwrap();
    let got: Vec<(String, String, i64)> = listed
        .into_iter()
        .map(|d| (d.datastore, d.guid, d.revision))
        .collect();
    assert_eq!(
        got,
        vec![
            ("calendar".into(), "g9".into(), 1),
            ("contacts".into(), "g1".into(), 3),
            ("contacts".into(), "g2".into(), 7),
        ]
    );
}

/// Migration 6 packs a session's pending rows into chunks of up to 64: a session suspended
/// before the upgrade reads back the same commands (by reference or with data, NULLs kept,
/// UTF-8 intact), counts them, and sends them on.
#[test]
fn pending_rows_of_a_suspended_session_survive_migration_6() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    // 150 small commands, then 5 chunks of a large object (30 KB each).
    let rows: Vec<PendingCommand> = (0..155)
        .map(|seq| {
            let by_reference = seq % 4 != 0 && seq < 150;
            PendingCommand {
                seq,
                size: 100 + seq,
                datastore: by_reference.then(|| "contacts".to_string()),
                guid: by_reference.then(|| format!("g\u{e9}{seq}")),
                revision: by_reference.then_some(seq * 2 + 1),
                data: if by_reference {
                    Vec::new()
                } else if seq < 150 {
                    vec![0, 0xff, seq as u8]
                } else {
                    vec![seq as u8; 30_000]
                },
            }
        })
        .collect();
    {
        let conn = database_at_version(&path, 5);
        conn.execute_batch(
            "INSERT INTO subscriber (id, security_level, created_at) VALUES ('sub', 0, 1);
             INSERT INTO terminal (terminal_id, subscriber_id, registered_by, registered_at)
                 VALUES ('IMEI:T', 'sub', 'operator', 1);
             INSERT INTO session (key, subscriber_id, terminal_id, state, created_at, expires_at)
                 VALUES ('s1', 'sub', 'IMEI:T', x'00', 1, 4102444800);",
        )
        .unwrap();
        for r in &rows {
            conn.execute(
                "INSERT INTO session_pending (session_key, seq, size, datastore, guid, revision, data)
                 VALUES ('s1', ?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![r.seq, r.size, r.datastore, r.guid, r.revision, r.data],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path, &SqliteConfig::default()).unwrap();
    assert_eq!(store.migrations_applied(), &[6]);
    // By 64 and by 16 KiB of data: the large object's chunks keep a row each (the first
    // joins the small commands before it, as it starts within their 16 KiB).
    let chunks: Vec<i64> = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mut st = conn
            .prepare("SELECT commands FROM session_pending_chunk ORDER BY first_seq")
            .unwrap();
        let v = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        v
    };
    assert_eq!(chunks, vec![64, 64, 23, 1, 1, 1, 1]);
    store
        .transaction(|tx| {
            assert_eq!(tx.session_pending_count("s1")?, 155);
            assert_eq!(tx.session_pending_head("s1", u64::MAX)?, rows);
            assert_eq!(tx.session_pending_remove_through("s1", 70)?, 71);
            assert_eq!(tx.session_pending_head("s1", 1)?, rows[71..72].to_vec());
            assert_eq!(tx.session_pending_count("s1")?, 84);
            assert!(tx.session_delete("s1")?);
            assert_eq!(tx.session_pending_count("s1")?, 0);
            Ok(())
        })
        .unwrap();
}

/// SQLite keeps pending commands up to 64 to a row but never more than 16 KiB of their
/// data in one, so a message that sends one chunk of a large object reads and rewrites
/// about that chunk, not 64 of them.
#[test]
fn pending_commands_of_a_large_object_keep_a_row_each() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join(DB_FILE_NAME);
    let store = open(&dir);
    let command = |seq: i64, bytes: usize| PendingCommand {
        seq,
        size: bytes as i64,
        datastore: None,
        guid: None,
        revision: None,
        data: vec![7; bytes],
    };
    // 150 small commands, then 10 chunks of a large object of 30 KB each.
    let mut commands: Vec<PendingCommand> = (0..150).map(|s| command(s, 20)).collect();
    commands.extend((150..160).map(|s| command(s, 30_000)));
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            add_terminal(tx, A, TA1);
            tx.session_save(&SessionRecord {
                key: "s1".into(),
                subscriber_id: A.into(),
                terminal_id: TA1.into(),
                state: b"{}".to_vec(),
                created_at: t(1),
                expires_at: t(4_102_444_800),
            })?;
            tx.session_pending_put("s1", &commands)
        })
        .unwrap();
    let rows = |conn: &rusqlite::Connection| -> Vec<i64> {
        let mut st = conn
            .prepare("SELECT commands FROM session_pending_chunk ORDER BY first_seq")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut want = vec![64, 64, 22];
    want.extend([1; 10]);
    assert_eq!(rows(&conn), want);
    drop(conn);
    let store = open(&dir);
    store
        .transaction(|tx| {
            assert_eq!(tx.session_pending_head("s1", u64::MAX)?, commands);
            assert_eq!(tx.session_pending_remove_through("s1", 150)?, 151);
            assert_eq!(
                tx.session_pending_head("s1", 1)?,
                commands[151..152].to_vec()
            );
            Ok(())
        })
        .unwrap();
}

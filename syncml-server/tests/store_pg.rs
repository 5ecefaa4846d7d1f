//! The storage suite ([`store_suite`]) against PostgreSQL, plus PostgreSQL-specific checks:
//! migrations, two nodes racing, conflict re-runs, the append-only audit table in raw SQL.
//!
//! The test binary starts its own throwaway PostgreSQL cluster ([`pg_cluster`], shared with
//! the operations and multi-node tests): `initdb` into a temporary directory (as user
//! `postgres` when run as root, since `initdb` refuses root), `pg_ctl start` on a free
//! loopback port with its unix socket in that directory, one `createdb` per test. The cluster
//! is stopped and its directory removed when the binary exits (an `atexit` hook), and by a
//! small watchdog process if the binary is killed instead.
//!
//! There is no skipping: without PostgreSQL server binaries every test fails and says which
//! Debian package to install (`postgresql`). `SYNCML_PG_BIN` may name the directory holding
//! `initdb` and `pg_ctl`; otherwise `/usr/lib/postgresql/15/bin`, then the newest
//! `/usr/lib/postgresql/*/bin`, then `PATH` are searched.

mod store_suite;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use store_suite::{
    add_subscriber, add_terminal, audit_event, fixture, t, vcard, TestDb, A, B, CONTACTS, TA1, TA2,
    TB1,
};
use syncml_server::store::postgres::{MIGRATIONS, SCHEMA_VERSION};
use syncml_server::store::{
    AuditEvent, DatastoreKey, PgConfig, PgStore, Store, StoreError, StoreExt, Timestamp, TxMode,
};

mod pg_cluster;

use pg_cluster::{cluster, free_port};

// ---------------------------------------------------------------------------------------------
// the suite

/// A fresh PostgreSQL database in the shared throwaway cluster.
struct PgDb {
    url: String,
}

impl PgDb {
    fn new() -> Self {
        PgDb {
            url: cluster().create_database(),
        }
    }

    fn connect(&self) -> PgStore {
        PgStore::connect(&self.url).expect("connect to the test database")
    }
}

impl TestDb for PgDb {
    fn open(&self) -> Arc<dyn Store> {
        Arc::new(self.connect())
    }
}

storage_suite!(PgDb::new());

// ---------------------------------------------------------------------------------------------
// raw SQL access, for what the Store API deliberately cannot do

struct Raw {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Raw {
    fn connect(url: &str) -> Raw {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (client, conn) = rt
            .block_on(tokio_postgres::connect(url, tokio_postgres::NoTls))
            .expect("raw connection");
        rt.spawn(conn);
        Raw { rt, client }
    }

    fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<tokio_postgres::Row> {
        self.rt
            .block_on(self.client.query(sql, params))
            .expect("raw query")
    }

    fn schema_rows(&self) -> Vec<(i32, String, i64)> {
        self.query(
            "SELECT version, description, applied_at FROM schema_version ORDER BY version",
            &[],
        )
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL-specific checks

#[test]
fn migrations_apply_once_and_upgrade() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1);
    }
    assert_eq!(
        MIGRATIONS.len(),
        syncml_server::store::sqlite::MIGRATIONS.len(),
        "both backends are at the same schema version"
    );
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();

    // A fresh database gets every migration, once.
    let db = PgDb::new();
    let store = db.connect();
    assert_eq!(store.migrations_applied(), all.as_slice());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.backend_name(), "postgres");
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            Ok(())
        })
        .unwrap();
    drop(store);
    let raw = Raw::connect(&db.url);
    let rows = raw.schema_rows();
    assert_eq!(rows.len(), MIGRATIONS.len());

    // Opening an up-to-date database is a no-op.
    let store = db.connect();
    assert!(store.migrations_applied().is_empty());
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);
    assert_eq!(raw.schema_rows(), rows);

    // A database at version 1, with data, upgrades to the newest version and keeps its data.
    let old = PgDb::new();
    let raw_old = Raw::connect(&old.url);
    raw_old
        .batch(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,
                                          applied_at BIGINT NOT NULL)",
        )
        .unwrap();
    raw_old.batch(MIGRATIONS[0].sql).unwrap();
    raw_old.query(
        "INSERT INTO schema_version VALUES (1, $1, 0)",
        &[&MIGRATIONS[0].description],
    );
    raw_old.query(
        "INSERT INTO subscriber (id, security_level, created_at) VALUES ($1, 1, 5)",
        &[&B],
    );
    let store = old.connect();
    assert_eq!(store.migrations_applied(), &all[1..]);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let (sub, audit_id) = store
        .transaction(|tx| {
            let sub = tx.subscriber_get(B)?;
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
    let sub = sub.expect("data survives the upgrade");
    assert_eq!(sub.security_level, 1);
    assert_eq!(sub.created_at, Timestamp(5));
    assert!(audit_id > 0);
    store.analyze().unwrap();
    drop(store);

    // A database from a newer build is refused, not modified.
    let future = i32::try_from(SCHEMA_VERSION).unwrap() + 1;
    raw_old.query(
        "INSERT INTO schema_version VALUES ($1, 'from the future', 0)",
        &[&future],
    );
    let before = raw_old.schema_rows();
    match PgStore::connect(&old.url) {
        Err(StoreError::Schema(_)) => {}
        other => panic!("expected a schema error, got {other:?}"),
    }
    assert_eq!(raw_old.schema_rows(), before);
}

#[test]
fn two_nodes_starting_together_migrate_once() {
    let db = PgDb::new();
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::connect(&url)
                    .expect("connect")
                    .migrations_applied()
                    .to_vec()
            })
        })
        .collect();
    let mut applied: Vec<Vec<u32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    applied.sort();
    let all: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(applied, vec![vec![], vec![], all]);
    assert_eq!(Raw::connect(&db.url).schema_rows().len(), MIGRATIONS.len());
}

#[test]
fn audit_cannot_be_rewritten_through_raw_sql() {
    let db = PgDb::new();
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
    let raw = Raw::connect(&db.url);
    for attack in [
        "UPDATE audit SET reason = 'forged'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "UPDATE audit SET at = 0 WHERE id = 1",
    ] {
        let err = raw.batch(attack).expect_err(attack);
        assert!(
            err.to_string().contains("append-only") || format!("{err:?}").contains("append-only"),
            "{attack}: {err:?}"
        );
    }
    let n: i64 = raw.query("SELECT COUNT(*) FROM audit", &[])[0].get(0);
    assert_eq!(n, 3);
}

/// Deterministic conflict: node 1 holds the datastore row lock until node 2's transaction is
/// seen waiting for it; when node 1 commits, node 2 hits a serialization failure and its
/// closure runs again on the new state.
#[test]
fn serialization_failure_runs_the_closure_again() {
    let db = PgDb::new();
    let node1 = Arc::new(db.connect());
    let node2 = Arc::new(db.connect());
    let ds = DatastoreKey::new(A, CONTACTS);
    node1
        .transaction(|tx| {
            add_subscriber(tx, A);
            add_terminal(tx, A, TA1);
            add_terminal(tx, A, TA2);
            tx.items_put(ds, None, &[vcard("first")], t(0))
        })
        .unwrap();

    let holding = Arc::new(Barrier::new(2));
    let first = {
        let node1 = Arc::clone(&node1);
        let holding = Arc::clone(&holding);
        let watcher = Raw::connect(&db.url);
        std::thread::spawn(move || {
            let mut signalled = false;
            node1
                .transaction(|tx| {
                    let r = tx.items_put(ds, Some(TA1), &[vcard("node 1")], t(1))?;
                    if !signalled {
                        signalled = true;
                        holding.wait();
                        // Keep the row lock until node 2 is seen waiting for it.
                        let deadline = Instant::now() + Duration::from_secs(30);
                        loop {
                            let waiting: i64 = watcher.query(
                                "SELECT COUNT(*) FROM pg_stat_activity
                                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                                &[],
                            )[0]
                            .get(0);
                            if waiting > 0 {
                                break;
                            }
                            assert!(Instant::now() < deadline, "node 2 never blocked");
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    Ok(r[0].revision)
                })
                .unwrap()
        })
    };
    holding.wait();
    let mut runs = 0;
    let mut seen_revision = Vec::new();
    let rev2 = node2
        .transaction(|tx| {
            runs += 1;
            seen_revision.push(tx.datastore_revision(ds)?);
            Ok(tx.items_put(ds, Some(TA2), &[vcard("node 2")], t(2))?[0].revision)
        })
        .unwrap();
    let rev1 = first.join().unwrap();
    assert_eq!((rev1, rev2), (2, 3));
    assert_eq!(runs, 2, "the closure ran again after the conflict");
    assert_eq!(
        seen_revision,
        vec![1, 2],
        "the second run saw node 1's commit"
    );
    assert_eq!(node2.retries(), 1);
    assert_eq!(node1.retries(), 0);
    assert_eq!(node2.stats().write_commits, 1);
    assert_eq!(node2.stats().write_rollbacks, 0);
}

/// A failed statement aborts a PostgreSQL transaction: later calls answer with the same error,
/// and a closure that swallows it still does not commit.
#[test]
fn a_swallowed_sql_error_still_fails_the_transaction() {
    let db = PgDb::new();
    let store = fixture(&db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let mut later = None;
    let result = store.run(TxMode::Read, &mut |tx| {
        let err = tx
            .items_put(ds, Some(TA1), &[vcard("x")], t(1))
            .unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        later = Some(tx.subscriber_get(A).map(|s| s.is_some()));
        Ok(())
    });
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    assert!(
        matches!(later, Some(Err(StoreError::Backend(_)))),
        "{later:?}"
    );
    // The connection went back to the pool clean.
    assert_eq!(store.read(|tx| tx.items_stats(ds)).unwrap().count, 0);
    assert!(store.read(|tx| tx.subscriber_get(A)).unwrap().is_some());
}

/// The server calls the store from `spawn_blocking` on its own runtime, and may drop the last
/// reference inside an async task.
#[test]
fn works_from_spawn_blocking_and_drops_anywhere() {
    let db = PgDb::new();
    let store: Arc<dyn Store> = fixture(&db);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let count = rt.block_on(async move {
        let s = Arc::clone(&store);
        let ids = tokio::task::spawn_blocking(move || {
            s.read(|tx| Ok(tx.subscriber_list(None, 10)?.len()))
        })
        .await
        .unwrap()
        .unwrap();
        drop(store); // the last reference, dropped on a runtime worker
        ids
    });
    assert_eq!(count, 2);
}

#[test]
fn connect_reports_bad_strings_and_unreachable_servers() {
    match PgStore::connect("postgres://[not a url") {
        Err(StoreError::InvalidInput(_)) => {}
        other => panic!("expected invalid input, got {other:?}"),
    }
    let closed = free_port();
    let started = Instant::now();
    let config = PgConfig {
        connect_timeout: Duration::from_secs(2),
        ..PgConfig::default()
    };
    match PgStore::connect_with(
        &format!("postgres://postgres@127.0.0.1:{closed}/nothing"),
        &config,
    ) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("127.0.0.1"), "{msg}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The error names the server, never the password.
    match PgStore::connect_with(
        &format!("postgres://postgres:s3cret@127.0.0.1:{closed}/nothing"),
        &config,
    ) {
        Err(e) => assert!(!e.to_string().contains("s3cret"), "{e}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

#[test]
fn a_postgresql_cluster_is_running() {
    // Without PostgreSQL this fails like every other test here, naming the package to install.
    let c = cluster();
    assert!(c.bin.join("initdb").is_file());
    assert!(c.data().join("PG_VERSION").is_file());
}

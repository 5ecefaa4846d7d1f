//! The storage suite: one set of rules every [`Store`] backend must pass.
//!
//! Each test is a function taking a [`TestDb`], a fresh empty database of some backend;
//! `tests/store.rs` runs them against SQLite and `tests/store_pg.rs` against PostgreSQL, both
//! through [`storage_suite!`], so adding a function here (and its name to the macro) adds it to
//! every backend. Checks that need raw SQL access (migrations from an old schema, tampering
//! with the audit table) stay in the backend's own file.

#![allow(dead_code)] // each test binary uses the whole suite, but not every helper alone

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use syncml_server::store::{
    lockout_duration, AuditEvent, AuditFilter, ChangeKind, DatastoreKey, DeliveredItem, LockoutKey,
    MapEntry, NewItem, NewSubscriber, NewTerminal, PendingCommand, RegisteredBy, Secret,
    SessionRecord, Store, StoreError, StoreExt, SyncKey, SyncState, Timestamp, Tx, TxMode,
    LOCKOUT_MAX_SECS,
};

/// One empty database of some backend.
pub trait TestDb {
    /// Opens a store on this database. Calling it again opens another store object on the
    /// same data: a reopen after a restart, or (for a server database) a second node.
    fn open(&self) -> Arc<dyn Store>;
}

/// Expands to one `#[test]` per suite function, each on a fresh database made by `$new_db`
/// (an expression of a type implementing [`TestDb`], evaluated once per test).
#[macro_export]
macro_rules! storage_suite {
    ($new_db:expr) => {
        $crate::storage_suite!(@tests $new_db;
            one_transaction_per_batch,
            two_thousand_item_batch_runs_in_one_transaction,
            revisions_increase_per_datastore,
            changes_since_excludes_own_writes,
            changes_since_returns_latest_state_once_per_guid,
            deletes_are_tombstones_with_history,
            items_get_reads_current_versions_of_many_items_at_once,
            items_at_revisions_returns_only_items_still_at_the_revision_asked,
            live_item_sizes_list_what_the_live_items_hold_without_their_data,
            history_keeps_previous_versions,
            map_luid_guid_roundtrip_and_uniqueness,
            map_guids_for_luids_reads_many_pairs_at_once,
            sync_state_roundtrip,
            session_survives_reopen,
            audit_is_append_only_and_filterable,
            lockout_grows_and_resets,
            subscriber_isolation_items,
            subscriber_isolation_maps,
            subscriber_isolation_states,
            subscriber_isolation_terminals,
            terminal_id_bound_to_one_subscriber,
            concurrent_transactions_from_threads,
            two_stores_on_one_database_write_concurrently,
            read_transactions_refuse_writes_and_nested_writes_are_refused,
            subscriber_lifecycle_and_cascade,
            a_panicking_transaction_rolls_back_and_the_store_keeps_working,
            lookups_with_unstorable_keys_find_nothing,
            batches_with_repeats_behave_like_one_write_at_a_time,
            session_pending_rows_come_in_order_by_budget_and_go_with_the_session,
        );
    };
    (@tests $new_db:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let db = $new_db;
                $crate::store_suite::$name(&db);
            }
        )*
    };
}

pub const A: &str = "262011111111111";
pub const B: &str = "262012222222222";
pub const TA1: &str = "IMEI:356938035643809";
pub const TA2: &str = "IMEI:356938035643810";
pub const TB1: &str = "IMEI:490154203237518";
pub const CONTACTS: &str = "contacts";
pub const CALENDAR: &str = "calendar";

pub fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_secs(1_700_000_000 + secs)
}

pub fn vcard(name: &str) -> NewItem {
    NewItem {
        guid: None,
        content_type: "text/x-vcard".into(),
        data: format!("BEGIN:VCARD\r\nVERSION:2.1\r\nN:{name}\r\nEND:VCARD\r\n").into_bytes(),
    }
}

pub fn replace(guid: &str, name: &str) -> NewItem {
    NewItem {
        guid: Some(guid.to_string()),
        ..vcard(name)
    }
}

pub fn add_subscriber(tx: &mut dyn Tx, id: &str) {
    tx.subscriber_create(
        &NewSubscriber {
            id: id.into(),
            display_name: Some(format!("subscriber {id}")),
            security_level: 0,
        },
        t(0),
    )
    .expect("create subscriber");
}

pub fn add_terminal(tx: &mut dyn Tx, subscriber: &str, terminal: &str) {
    tx.terminal_register(
        &NewTerminal {
            terminal_id: terminal.into(),
            subscriber_id: subscriber.into(),
            md5_verifier: Some(Secret::new("Zz6EivR3yeaaENcRN6lpAQ==")),
            basic_verifier: None,
            classes: vec![CONTACTS.into(), CALENDAR.into()],
            registered_by: RegisteredBy::User,
        },
        t(1),
    )
    .expect("register terminal");
}

/// Two subscribers: A with terminals TA1 and TA2, B with TB1.
pub fn fixture(db: &dyn TestDb) -> Arc<dyn Store> {
    let store = db.open();
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            add_subscriber(tx, B);
            add_terminal(tx, A, TA1);
            add_terminal(tx, A, TA2);
            add_terminal(tx, B, TB1);
            Ok(())
        })
        .expect("fixture");
    store
}

/// An audit event of the fixture's subscribers.
pub fn audit_event(at: i64, sub: Option<&str>, term: Option<&str>, status: u16) -> AuditEvent {
    AuditEvent {
        at: t(at),
        subscriber_id: sub.map(str::to_string),
        terminal_id: term.map(str::to_string),
        kind: "auth".into(),
        status: Some(status),
        reason: format!("event at {at}"),
        remote_addr: Some("127.0.0.1:50000".into()),
    }
}

pub fn one_transaction_per_batch(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let first = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &[vcard("one"), vcard("two")], t(10)))
        .unwrap();
    assert_eq!(first.len(), 2);
    let before = store.stats();

    // A batch whose last item fails rolls back every item of the batch.
    let err = store
        .transaction(|tx| {
            tx.items_put(
                ds,
                Some(TA1),
                &[
                    vcard("three"),
                    replace(&first[0].guid, "one, edited"),
                    replace("no-such-guid", "x"),
                ],
                t(11),
            )
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // A failure after a successful batch, in the same transaction, rolls the batch back too.
    let sync = SyncKey::new(A, TB1, CONTACTS); // TB1 is not A's terminal
    let err = store
        .transaction(|tx| {
            tx.items_put(ds, Some(TA1), &[vcard("four")], t(12))?;
            tx.map_put(sync, &[MapEntry::new("1", "1")])
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    // The caller's own error type rolls back as well, and comes back unchanged.
    #[derive(Debug, PartialEq)]
    enum SessionError {
        Protocol(&'static str),
        Store(String),
    }
    impl From<StoreError> for SessionError {
        fn from(e: StoreError) -> Self {
            SessionError::Store(e.to_string())
        }
    }
    let err = store
        .transaction_with_error(|tx| {
            tx.items_put(ds, Some(TA1), &[vcard("five")], t(13))?;
            Err::<(), _>(SessionError::Protocol("bad message"))
        })
        .unwrap_err();
    assert_eq!(err, SessionError::Protocol("bad message"));

    store
        .read(|tx| {
            let live = tx.items_list_live(ds)?;
            assert_eq!(live.len(), 2);
            assert_eq!(live[0].data, vcard("one").data, "replace was rolled back");
            assert_eq!(tx.datastore_revision(ds)?, 2, "revisions were rolled back");
            assert!(tx.item_history(ds, &first[0].guid)?.is_empty());
            Ok(())
        })
        .unwrap();
    let after = store.stats();
    assert_eq!(after.write_commits, before.write_commits);
    assert_eq!(after.write_rollbacks, before.write_rollbacks + 3);
}

pub fn two_thousand_item_batch_runs_in_one_transaction(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let batch: Vec<NewItem> = (0..2000).map(|i| vcard(&format!("n{i}"))).collect();
    let before = store.stats();
    let results = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &batch, t(20)))
        .unwrap();
    let after = store.stats();
    assert_eq!(after.write_commits - before.write_commits, 1);
    assert_eq!(after.write_rollbacks, before.write_rollbacks);
    let revisions: Vec<i64> = results.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, (1..=2000).collect::<Vec<_>>());
    let guids: HashSet<&str> = results.iter().map(|r| r.guid.as_str()).collect();
    assert_eq!(guids.len(), 2000);

    // The same batch failing at its very last item leaves nothing behind.
    let mut bad = batch.clone();
    bad[1999] = replace("missing", "x");
    assert!(store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &bad, t(21)))
        .is_err());
    let stats = store.read(|tx| tx.items_stats(ds)).unwrap();
    assert_eq!(stats.count, 2000);
    assert_eq!(store.read(|tx| tx.datastore_revision(ds)).unwrap(), 2000);
}

pub fn revisions_increase_per_datastore(db: &dyn TestDb) {
    let store = fixture(db);
    let contacts = DatastoreKey::new(A, CONTACTS);
    let calendar = DatastoreKey::new(A, CALENDAR);
    let b_contacts = DatastoreKey::new(B, CONTACTS);
    store
        .transaction(|tx| {
            assert_eq!(tx.datastore_revision(contacts)?, 0);
            let r = tx.items_put(contacts, Some(TA1), &[vcard("a"), vcard("b")], t(1))?;
            assert_eq!((r[0].revision, r[1].revision), (1, 2));
            let c = tx.items_put(calendar, Some(TA1), &[vcard("event")], t(1))?;
            assert_eq!(c[0].revision, 1, "each datastore counts on its own");
            let b = tx.items_put(b_contacts, Some(TB1), &[vcard("b")], t(1))?;
            assert_eq!(b[0].revision, 1, "each subscriber counts on its own");
            let u = tx.items_put(contacts, Some(TA2), &[replace(&r[0].guid, "a2")], t(2))?;
            assert_eq!(u[0].revision, 3);
            assert_eq!(u[0].guid, r[0].guid, "a replace keeps the GUID");
            let d = tx.items_delete(contacts, Some(TA2), &[r[1].guid.clone()], t(3))?;
            assert_eq!(d, vec![Some(4)]);
            // A delete that changes nothing takes no revision.
            let d = tx.items_delete(contacts, Some(TA2), &[r[1].guid.clone()], t(3))?;
            assert_eq!(d, vec![None]);
            let n = tx.items_put(contacts, None, &[vcard("c")], t(4))?;
            assert_eq!(n[0].revision, 5);
            assert_eq!(tx.datastore_revision(contacts)?, 5);
            assert_eq!(tx.datastore_revision(calendar)?, 1);
            let infos = tx.datastores(A)?;
            let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
            assert_eq!(names, vec![CALENDAR, CONTACTS]);
            assert_eq!(infos[1].revision, 5);
            assert_eq!(infos[1].stats.count, 2);
            Ok(())
        })
        .unwrap();
    // Revisions keep increasing across transactions and reopen.
    let r = store
        .transaction(|tx| tx.items_put(contacts, Some(TA1), &[vcard("d")], t(5)))
        .unwrap();
    assert_eq!(r[0].revision, 6);
}

pub fn changes_since_excludes_own_writes(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    store
        .transaction(|tx| {
            tx.items_put(ds, Some(TA1), &[vcard("a1"), vcard("a2")], t(1))?;
            tx.items_put(ds, Some(TA2), &[vcard("b1")], t(2))?;
            tx.items_put(ds, None, &[vcard("operator")], t(3))?;
            Ok(())
        })
        .unwrap();
    store
        .read(|tx| {
            let for_a1 = tx.changes_since(ds, 0, Some(TA1), None)?;
            let origins: Vec<Option<&str>> = for_a1
                .iter()
                .map(|c| c.origin_terminal.as_deref())
                .collect();
            assert_eq!(origins, vec![Some(TA2), None]);
            assert_eq!(tx.changes_count_since(ds, 0, Some(TA1))?, 2);

            let for_a2 = tx.changes_since(ds, 0, Some(TA2), None)?;
            assert_eq!(for_a2.len(), 3);
            assert!(for_a2
                .iter()
                .all(|c| c.origin_terminal.as_deref() != Some(TA2)));

            let all = tx.changes_since(ds, 0, None, None)?;
            assert_eq!(all.len(), 4);
            // Above a mark only later revisions come back.
            let later = tx.changes_since(ds, 2, Some(TA1), None)?;
            assert_eq!(later.len(), 2);
            assert!(later.iter().all(|c| c.revision > 2));
            Ok(())
        })
        .unwrap();
}

pub fn changes_since_returns_latest_state_once_per_guid(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let (g1, g2, g3) = store
        .transaction(|tx| {
            let r = tx.items_put(ds, Some(TA1), &[vcard("x"), vcard("y"), vcard("z")], t(1))?;
            let (g1, g2, g3) = (r[0].guid.clone(), r[1].guid.clone(), r[2].guid.clone());
            tx.items_put(ds, Some(TA2), &[replace(&g1, "x2")], t(2))?;
            tx.items_put(ds, Some(TA1), &[replace(&g1, "x3")], t(3))?;
            tx.items_put(
                ds,
                Some(TA2),
                &[replace(&g1, "x4"), replace(&g2, "y2")],
                t(4),
            )?;
            tx.items_delete(ds, Some(TA1), std::slice::from_ref(&g3), t(5))?;
            Ok((g1, g2, g3))
        })
        .unwrap();
    store
        .read(|tx| {
            let changes = tx.changes_since(ds, 0, None, None)?;
            let guids: Vec<&str> = changes.iter().map(|c| c.guid.as_str()).collect();
            assert_eq!(guids, vec![g1.as_str(), g2.as_str(), g3.as_str()]);
            assert_eq!(changes[0].data, vcard("x4").data);
            assert_eq!(changes[0].kind, ChangeKind::Upsert);
            assert_eq!(changes[0].revision, 6);
            assert_eq!(changes[2].kind, ChangeKind::Delete);
            assert!(changes[2].data.is_empty());

            // TA1 deleted g3 itself and must not get that delete back; TA2 must.
            let for_ta1 = tx.changes_since(ds, 0, Some(TA1), None)?;
            assert_eq!(for_ta1.len(), 2);
            let for_ta2 = tx.changes_since(ds, 0, Some(TA2), None)?;
            assert_eq!(for_ta2.len(), 1);
            assert_eq!(for_ta2[0].guid, g3);
            assert_eq!(for_ta2[0].kind, ChangeKind::Delete);

            // Paging by limit, continuing after the last revision returned.
            let page1 = tx.changes_since(ds, 0, None, Some(2))?;
            assert_eq!(page1.len(), 2);
            let mark = page1[1].revision;
            let page2 = tx.changes_since(ds, mark, None, Some(2))?;
            assert_eq!(page2.len(), 1);
            assert_eq!(page2[0].guid, g3);
            Ok(())
        })
        .unwrap();
}

pub fn deletes_are_tombstones_with_history(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let r = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &[vcard("keep"), vcard("gone")], t(1)))
        .unwrap();
    let gone = r[1].guid.clone();
    let deleted = store
        .transaction(|tx| {
            tx.items_delete(
                ds,
                Some(TA2),
                &[gone.clone(), "unknown".to_string(), gone.clone()],
                t(2),
            )
        })
        .unwrap();
    assert_eq!(deleted, vec![Some(3), None, None]);
    store
        .read(|tx| {
            let item = tx.item_get(ds, &gone)?.expect("tombstone stays");
            assert!(item.deleted);
            assert!(item.data.is_empty());
            assert_eq!(item.revision, 3);
            assert_eq!(item.origin_terminal.as_deref(), Some(TA2));
            assert_eq!(item.updated_at, t(2));
            let live = tx.items_list_live(ds)?;
            assert_eq!(live.len(), 1);
            assert_eq!(live[0].guid, r[0].guid);
            let stats = tx.items_stats(ds)?;
            assert_eq!(stats.count, 1);
            assert_eq!(stats.total_bytes, vcard("keep").data.len() as u64);
            let history = tx.item_history(ds, &gone)?;
            assert_eq!(history.len(), 1);
            assert!(!history[0].deleted);
            assert_eq!(history[0].data, vcard("gone").data);
            assert_eq!(history[0].revision, 2);
            Ok(())
        })
        .unwrap();
    // Restoring from history revives the tombstone under the same GUID.
    let restored = store
        .transaction(|tx| {
            let old = tx.item_history(ds, &gone)?.remove(0);
            tx.items_put(
                ds,
                None,
                &[NewItem {
                    guid: Some(gone.clone()),
                    content_type: old.content_type,
                    data: old.data,
                }],
                t(3),
            )
        })
        .unwrap();
    assert_eq!(restored[0].guid, gone);
    store
        .read(|tx| {
            let item = tx.item_get(ds, &gone)?.unwrap();
            assert!(!item.deleted);
            assert_eq!(item.data, vcard("gone").data);
            let history = tx.item_history(ds, &gone)?;
            assert_eq!(history.len(), 2);
            assert!(history[0].deleted, "the tombstone is history now");
            Ok(())
        })
        .unwrap();
}

pub fn items_get_reads_current_versions_of_many_items_at_once(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let other = DatastoreKey::new(B, CONTACTS);
    let r = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &[vcard("a"), vcard("b"), vcard("c")], t(1)))
        .unwrap();
    let b_only = store
        .transaction(|tx| tx.items_put(other, Some(TB1), &[vcard("theirs")], t(1)))
        .unwrap();
    store
        .transaction(|tx| {
            tx.items_put(ds, Some(TA2), &[replace(&r[0].guid, "a2")], t(2))?;
            tx.items_delete(ds, Some(TA2), &[r[1].guid.clone()], t(2))
        })
        .unwrap();
    let asked = vec![
        r[0].guid.clone(),
        r[1].guid.clone(),
        "unknown".to_string(),
        "nul\0guid".to_string(),
        b_only[0].guid.clone(),
    ];
    let got = store.read(|tx| tx.items_get(ds, &asked)).unwrap();
    let mut got: Vec<(String, i64, bool, Vec<u8>)> = got
        .into_iter()
        .map(|i| (i.guid, i.revision, i.deleted, i.data))
        .collect();
    got.sort();
    let mut want = vec![
        (r[0].guid.clone(), 4, false, vcard("a2").data),
        (r[1].guid.clone(), 5, true, Vec::new()),
    ];
    want.sort();
    // GUIDs are per datastore: the other subscriber's item (whatever its GUID) is not
    // read for ours.
    assert_eq!(
        got, want,
        "current versions, tombstones included, nothing else"
    );
    assert!(store.read(|tx| tx.items_get(ds, &[])).unwrap().is_empty());

    // More than any one statement of a backend takes, some asked twice: each once.
    let many: Vec<_> = (0..87).map(|n| vcard(&format!("many {n}"))).collect();
    let put = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &many, t(3)))
        .unwrap();
    let mut asked: Vec<String> = put.iter().map(|p| p.guid.clone()).collect();
    asked.extend(put.iter().take(5).map(|p| p.guid.clone()));
    let got = store.read(|tx| tx.items_get(ds, &asked)).unwrap();
    let mut got: Vec<String> = got.into_iter().map(|i| i.guid).collect();
    got.sort();
    let mut want: Vec<String> = put.into_iter().map(|p| p.guid).collect();
    want.sort();
    assert_eq!(got, want);
}

/// A download is planned from the live items' sizes: the same items, in the same order
/// (by revision), with the same GUIDs, types and revisions as the full listing, each
/// with its data's length; tombstones and another subscriber's items are not listed.
pub fn live_item_sizes_list_what_the_live_items_hold_without_their_data(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let other = DatastoreKey::new(B, CONTACTS);
    let mut many: Vec<_> = (0..40)
        .map(|n| vcard(&format!("size {}", "x".repeat(n * 7))))
        .collect();
    many.push(NewItem {
        content_type: "image/jpeg".into(),
        data: vec![0, 255, 1, 254, 0],
        ..vcard("binary")
    });
    let put = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &many, t(1)))
        .unwrap();
    store
        .transaction(|tx| {
            tx.items_put(other, Some(TB1), &[vcard("theirs")], t(1))?;
            tx.items_put(
                ds,
                Some(TA2),
                &[replace(&put[0].guid, "changed later")],
                t(2),
            )?;
            tx.items_delete(ds, Some(TA2), std::slice::from_ref(&put[1].guid), t(2))
        })
        .unwrap();
    let (live, sizes) = store
        .read(|tx| Ok((tx.items_list_live(ds)?, tx.items_list_live_sizes(ds)?)))
        .unwrap();
    assert_eq!(
        sizes.len(),
        many.len() - 1,
        "the deleted item is not listed"
    );
    let want: Vec<_> = live
        .iter()
        .map(|i| {
            (
                i.guid.clone(),
                i.content_type.clone(),
                i.revision,
                i.data.len() as u64,
            )
        })
        .collect();
    let got: Vec<_> = sizes
        .iter()
        .map(|i| (i.guid.clone(), i.content_type.clone(), i.revision, i.size))
        .collect();
    assert_eq!(got, want);
    assert!(
        got.windows(2).all(|w| w[0].2 < w[1].2),
        "ordered by revision"
    );
    assert_eq!(
        got.last().map(|g| g.0.as_str()),
        Some(put[0].guid.as_str()),
        "changed last"
    );
    assert!(got.iter().any(|g| g.1 == "image/jpeg" && g.3 == 5));
}

/// What a stored package 4 reads back: of the (GUID, revision) pairs asked, the items still
/// at that revision (a tombstone too), nothing changed since, nothing of another
/// subscriber; the same for a dense run of revisions (a download) and for a sparse ask.
pub fn items_at_revisions_returns_only_items_still_at_the_revision_asked(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let other = DatastoreKey::new(B, CONTACTS);
    let many: Vec<_> = (0..150).map(|n| vcard(&format!("run {n}"))).collect();
    let put = store
        .transaction(|tx| tx.items_put(ds, Some(TA1), &many, t(1)))
        .unwrap();
    let theirs = store
        .transaction(|tx| tx.items_put(other, Some(TB1), &[vcard("theirs")], t(1)))
        .unwrap();
    // Item 3 changes, item 4 is deleted (a tombstone at a new revision).
    let (changed, deleted) = (&put[3], &put[4]);
    let later = store
        .transaction(|tx| {
            tx.items_put(ds, Some(TA2), &[replace(&changed.guid, "changed")], t(2))?;
            tx.items_delete(ds, Some(TA2), std::slice::from_ref(&deleted.guid), t(2))?;
            tx.items_put(ds, Some(TA2), &[vcard("after")], t(2))
        })
        .unwrap();
    let tomb_rev = store
        .read(|tx| tx.item_get(ds, &deleted.guid))
        .unwrap()
        .unwrap()
        .revision;
    let asked = |pairs: &[(String, i64)]| -> Vec<(String, i64, bool)> {
        let mut got: Vec<_> = store
            .read(|tx| tx.items_at_revisions(ds, pairs))
            .unwrap()
            .into_iter()
            .map(|i| (i.guid, i.revision, i.deleted))
            .collect();
        got.sort();
        got
    };
    // A dense run (read by revision where a backend can): all 150 at their first
    // revisions, plus the tombstone at its own, another subscriber's item (GUIDs are per
    // datastore: only ours is read) and an unknown GUID.
    let mut pairs: Vec<(String, i64)> = put.iter().map(|p| (p.guid.clone(), p.revision)).collect();
    pairs.push((deleted.guid.clone(), tomb_rev));
    pairs.push((theirs[0].guid.clone(), theirs[0].revision));
    pairs.push(("unknown".into(), 2));
    let mut want: Vec<(String, i64, bool)> = put
        .iter()
        .filter(|p| p.guid != changed.guid && p.guid != deleted.guid)
        .map(|p| (p.guid.clone(), p.revision, false))
        .collect();
    want.push((deleted.guid.clone(), tomb_rev, true));
    want.sort();
    assert_eq!(asked(&pairs), want);
    // Sparse (read by GUID): items far apart, one of them changed since.
    let sparse = vec![
        (put[0].guid.clone(), put[0].revision),
        (changed.guid.clone(), changed.revision),
        (later[0].guid.clone(), later[0].revision),
    ];
    assert_eq!(
        asked(&sparse),
        vec![
            (put[0].guid.clone(), put[0].revision, false),
            (later[0].guid.clone(), later[0].revision, false),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert!(asked(&[]).is_empty());
}

pub fn history_keeps_previous_versions(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let guid = store
        .transaction(|tx| {
            let g = tx.items_put(ds, Some(TA1), &[vcard("v1")], t(1))?[0]
                .guid
                .clone();
            tx.items_put(ds, Some(TA2), &[replace(&g, "v2")], t(2))?;
            Ok(g)
        })
        .unwrap();
    store
        .transaction(|tx| tx.items_put(ds, None, &[replace(&guid, "v3")], t(3)))
        .unwrap();
    store
        .read(|tx| {
            let current = tx.item_get(ds, &guid)?.unwrap();
            assert_eq!(current.data, vcard("v3").data);
            assert_eq!(current.origin_terminal, None);
            let history = tx.item_history(ds, &guid)?;
            let summary: Vec<(i64, Vec<u8>, Option<&str>, Timestamp)> = history
                .iter()
                .map(|h| {
                    (
                        h.revision,
                        h.data.clone(),
                        h.origin_terminal.as_deref(),
                        h.updated_at,
                    )
                })
                .collect();
            assert_eq!(
                summary,
                vec![
                    (2, vcard("v2").data, Some(TA2), t(2)),
                    (1, vcard("v1").data, Some(TA1), t(1)),
                ]
            );
            assert!(tx.item_history(ds, "unknown")?.is_empty());
            Ok(())
        })
        .unwrap();
}

pub fn map_guids_for_luids_reads_many_pairs_at_once(db: &dyn TestDb) {
    let store = fixture(db);
    let key = SyncKey::new(A, TA1, CONTACTS);
    store
        .transaction(|tx| {
            tx.map_put(key, &[MapEntry::new("L1", "G1"), MapEntry::new("L2", "G2")])?;
            tx.map_put(SyncKey::new(A, TA2, CONTACTS), &[MapEntry::new("L3", "G3")])?;
            tx.map_put(SyncKey::new(A, TA1, CALENDAR), &[MapEntry::new("L4", "G4")])
        })
        .unwrap();
    let asked: Vec<String> = ["L1", "L2", "L1", "L3", "L4", "none", "nul\0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got = store
        .read(|tx| tx.map_guids_for_luids(key, &asked))
        .unwrap();
    let mut got: Vec<(String, String)> = got.into_iter().collect();
    got.sort();
    assert_eq!(
        got,
        vec![("L1".into(), "G1".into()), ("L2".into(), "G2".into())],
        "this terminal's and datastore's pairs only"
    );
    assert!(store
        .read(|tx| tx.map_guids_for_luids(key, &[]))
        .unwrap()
        .is_empty());

    // More than any one statement of a backend takes.
    let many: Vec<MapEntry> = (0..90)
        .map(|n| MapEntry::new(format!("M{n}"), format!("GM{n}")))
        .collect();
    store.transaction(|tx| tx.map_put(key, &many)).unwrap();
    let asked: Vec<String> = many.iter().map(|e| e.luid.clone()).collect();
    let got = store
        .read(|tx| tx.map_guids_for_luids(key, &asked))
        .unwrap();
    assert_eq!(got.len(), 90);
    assert_eq!(got.get("M89").map(String::as_str), Some("GM89"));
}

pub fn map_luid_guid_roundtrip_and_uniqueness(db: &dyn TestDb) {
    let store = fixture(db);
    let key = SyncKey::new(A, TA1, CONTACTS);
    let other_terminal = SyncKey::new(A, TA2, CONTACTS);
    let other_store = SyncKey::new(A, TA1, CALENDAR);
    store
        .transaction(|tx| {
            tx.map_put(
                key,
                &[
                    MapEntry::new("L1", "G1"),
                    MapEntry::new("L2", "G2"),
                    MapEntry::new("L3", "G3"),
                ],
            )?;
            tx.map_put(other_terminal, &[MapEntry::new("L1", "G9")])?;
            tx.map_put(other_store, &[MapEntry::new("L1", "G8")])?;
            Ok(())
        })
        .unwrap();
    store
        .transaction(|tx| {
            assert_eq!(tx.map_guid_for_luid(key, "L2")?.as_deref(), Some("G2"));
            assert_eq!(tx.map_luid_for_guid(key, "G3")?.as_deref(), Some("L3"));
            assert_eq!(
                tx.map_guid_for_luid(other_terminal, "L1")?.as_deref(),
                Some("G9")
            );
            assert_eq!(
                tx.map_guid_for_luid(other_store, "L1")?.as_deref(),
                Some("G8")
            );
            assert_eq!(tx.map_guid_for_luid(key, "nope")?, None);

            // Same LUID again: the new GUID replaces the old pair.
            tx.map_put(key, &[MapEntry::new("L1", "G10")])?;
            assert_eq!(tx.map_guid_for_luid(key, "L1")?.as_deref(), Some("G10"));
            assert_eq!(tx.map_luid_for_guid(key, "G1")?, None);
            // Same GUID again: the new LUID replaces the old pair.
            tx.map_put(key, &[MapEntry::new("L20", "G2")])?;
            assert_eq!(tx.map_luid_for_guid(key, "G2")?.as_deref(), Some("L20"));
            assert_eq!(tx.map_guid_for_luid(key, "L2")?, None);
            assert_eq!(
                tx.map_list(key)?,
                vec![
                    MapEntry::new("L1", "G10"),
                    MapEntry::new("L20", "G2"),
                    MapEntry::new("L3", "G3"),
                ]
            );
            // Both sides stay unique.
            let list = tx.map_list(key)?;
            let luids: HashSet<_> = list.iter().map(|e| &e.luid).collect();
            let guids: HashSet<_> = list.iter().map(|e| &e.guid).collect();
            assert_eq!((luids.len(), guids.len()), (list.len(), list.len()));

            assert_eq!(tx.map_remove_luids(key, &["L1".into(), "zz".into()])?, 1);
            assert_eq!(tx.map_remove_guids(key, &["G3".into()])?, 1);
            assert_eq!(tx.map_list(key)?, vec![MapEntry::new("L20", "G2")]);
            assert_eq!(tx.map_clear(key)?, 1);
            assert!(tx.map_list(key)?.is_empty());
            // Other keys untouched.
            assert_eq!(tx.map_list(other_terminal)?.len(), 1);
            assert_eq!(tx.map_list(other_store)?.len(), 1);
            Ok(())
        })
        .unwrap();
}

pub fn sync_state_roundtrip(db: &dyn TestDb) {
    let store = fixture(db);
    let key = SyncKey::new(A, TA1, CONTACTS);
    let state = SyncState {
        client_anchor: Some("20261126T101500Z".into()),
        server_anchor: Some("42".into()),
        acked_revision: 17,
        last_sync_type: Some(200),
        updated_at: t(30),
    };
    store
        .transaction(|tx| {
            assert_eq!(tx.sync_state_get(key)?, None);
            tx.sync_state_put(key, &state)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.sync_state_get(key)).unwrap(),
        Some(state.clone())
    );
    let next = SyncState {
        client_anchor: Some("20261127T080000Z".into()),
        server_anchor: Some("43".into()),
        acked_revision: 25,
        last_sync_type: Some(201),
        updated_at: t(40),
    };
    store
        .transaction(|tx| {
            tx.sync_state_put(key, &next)?;
            tx.sync_state_put(SyncKey::new(A, TA1, CALENDAR), &SyncState::default())?;
            Ok(())
        })
        .unwrap();
    store
        .transaction(|tx| {
            assert_eq!(tx.sync_state_get(key)?, Some(next.clone()));
            let all = tx.sync_states_for_terminal(A, TA1)?;
            let names: Vec<&str> = all.iter().map(|(d, _)| d.as_str()).collect();
            assert_eq!(names, vec![CALENDAR, CONTACTS]);
            assert!(tx.sync_state_delete(key)?);
            assert!(!tx.sync_state_delete(key)?);
            assert_eq!(tx.sync_state_get(key)?, None);
            // State for a terminal that is not registered cannot be written.
            let err = tx
                .sync_state_put(SyncKey::new(A, "IMEI:000", CONTACTS), &state)
                .unwrap_err();
            assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
            Ok(())
        })
        .unwrap();
}

pub fn session_survives_reopen(db: &dyn TestDb) {
    let session = SessionRecord {
        key: "tok-4f1c9e".into(),
        subscriber_id: A.into(),
        terminal_id: TA1.into(),
        state: vec![0, 1, 2, 3, 255],
        created_at: t(100),
        expires_at: t(400),
    };
    {
        let store = db.open();
        store
            .transaction(|tx| {
                add_subscriber(tx, A);
                add_terminal(tx, A, TA1);
                add_terminal(tx, A, TA2);
                tx.session_save(&session)?;
                tx.session_save(&SessionRecord {
                    key: "tok-old".into(),
                    expires_at: t(150),
                    ..session.clone()
                })
            })
            .unwrap();
    }
    // Reopened: a new store object on the same database (a restart, or another node).
    let store = db.open();
    store
        .transaction(|tx| {
            assert_eq!(
                tx.session_load("tok-4f1c9e", t(200))?,
                Some(session.clone())
            );
            // Update: new state and expiry, same creation time.
            tx.session_save(&SessionRecord {
                state: b"next".to_vec(),
                created_at: t(250),
                expires_at: t(600),
                ..session.clone()
            })?;
            let loaded = tx.session_load("tok-4f1c9e", t(300))?.unwrap();
            assert_eq!(loaded.state, b"next");
            assert_eq!(loaded.created_at, t(100));
            assert_eq!(loaded.expires_at, t(600));
            // Another terminal cannot take the key over.
            let err = tx
                .session_save(&SessionRecord {
                    terminal_id: TA2.into(),
                    ..session.clone()
                })
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
            // Expired sessions are gone for load, then purged.
            assert_eq!(tx.session_load("tok-old", t(200))?, None);
            assert_eq!(
                tx.sessions_for_terminal(A, TA1, t(200))?,
                vec!["tok-4f1c9e"]
            );
            // The live-session gauge counts the unexpired ones only.
            assert_eq!(tx.sessions_count_live(t(200))?, 1);
            assert_eq!(tx.sessions_count_live(t(0))?, 2);
            assert_eq!(tx.sessions_purge_expired(t(200))?, 1);
            assert_eq!(tx.sessions_purge_expired(t(200))?, 0);
            assert_eq!(tx.session_load("unknown", t(200))?, None);
            Ok(())
        })
        .unwrap();
    // Removing the terminal revokes its sessions at once.
    store
        .transaction(|tx| {
            tx.terminal_remove(A, TA1)?;
            assert_eq!(tx.session_load("tok-4f1c9e", t(300))?, None);
            assert!(!tx.session_delete("tok-4f1c9e")?);
            Ok(())
        })
        .unwrap();
}

pub fn session_pending_rows_come_in_order_by_budget_and_go_with_the_session(db: &dyn TestDb) {
    let session = |key: &str, expires: i64| SessionRecord {
        key: key.into(),
        subscriber_id: A.into(),
        terminal_id: TA1.into(),
        state: b"{}".to_vec(),
        created_at: t(100),
        expires_at: t(expires),
    };
    let rows = |n: i64| -> Vec<PendingCommand> {
        (0..n)
            .map(|seq| PendingCommand {
                seq,
                size: 100,
                datastore: (seq % 2 == 0).then(|| CONTACTS.to_string()),
                guid: (seq % 2 == 0).then(|| format!("g{seq}")),
                revision: (seq % 2 == 0).then_some(seq + 7),
                data: vec![seq as u8; 10 + seq as usize],
            })
            .collect()
    };
    let store = db.open();
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            add_terminal(tx, A, TA1);
            tx.session_save(&session("s1", 400))?;
            tx.session_save(&session("s2", 150))?;
            tx.session_save(&session("s3", 400))?;
            tx.session_pending_put("s1", &rows(1000))?;
            tx.session_pending_put("s2", &rows(5))?;
            tx.session_pending_put("s3", &rows(5))?;
            tx.session_pending_put("s3", &[])
        })
        .unwrap();
    let all = rows(1000);
    store
        .transaction(|tx| {
            assert_eq!(tx.session_pending_count("s1")?, 1000);
            // Up to and including the row that reaches the budget.
            assert_eq!(tx.session_pending_head("s1", 250)?, all[..3].to_vec());
            assert_eq!(tx.session_pending_head("s1", 300)?, all[..3].to_vec());
            assert_eq!(tx.session_pending_head("s1", 1)?, all[..1].to_vec());
            // More than one page of a paged backend.
            assert_eq!(tx.session_pending_head("s1", 30_000)?, all[..300].to_vec());
            assert_eq!(tx.session_pending_head("unknown", 300)?, vec![]);
            // Sent rows go; the rest stays, in order.
            assert_eq!(tx.session_pending_remove_through("s1", 2)?, 3);
            assert_eq!(tx.session_pending_head("s1", 200)?, all[3..5].to_vec());
            assert_eq!(tx.session_pending_count("s1")?, 997);
            // Saving the session again keeps its rows.
            tx.session_save(&SessionRecord {
                state: b"{\"n\":1}".to_vec(),
                ..session("s1", 500)
            })?;
            assert_eq!(tx.session_pending_count("s1")?, 997);
            assert_eq!(tx.session_pending_head("s1", u64::MAX)?, all[3..].to_vec());
            Ok(())
        })
        .unwrap();
    // A rolled-back message leaves the rows as they were.
    let r: Result<(), StoreError> = store.transaction(|tx| {
        tx.session_pending_remove_through("s1", 500)?;
        Err(StoreError::Conflict("rolled back".into()))
    });
    assert!(r.is_err());
    store
        .transaction(|tx| {
            assert_eq!(tx.session_pending_count("s1")?, 997);
            // Acknowledged items: the latest revision per GUID.
            let d = |guid: &str, revision: i64| DeliveredItem {
                datastore: CONTACTS.into(),
                guid: guid.into(),
                revision,
            };
            tx.session_delivered_put("s1", &[d("g2", 1), d("g1", 4)])?;
            tx.session_delivered_put("s1", &[d("g2", 3)])?;
            tx.session_delivered_put("s2", &[d("g9", 1)])?;
            assert_eq!(
                tx.session_delivered_list("s1")?,
                vec![d("g1", 4), d("g2", 3)]
            );
            // Twice in one batch: the later record wins, as one by one; a batch larger
            // than any one statement of a backend is written whole.
            let many: Vec<DeliveredItem> = (0..150).map(|n| d(&format!("m{n:03}"), n)).collect();
            tx.session_delivered_put("s2", &[&many[..], &[d("g9", 7), d("g9", 5)]].concat())?;
            let listed = tx.session_delivered_list("s2")?;
            assert_eq!(listed.len(), 151);
            assert!(listed.contains(&d("g9", 5)), "{listed:?}");
            // Rows go with their session: deleted, purged, cleared.
            assert!(tx.session_delete("s1")?);
            assert_eq!(tx.session_pending_count("s1")?, 0);
            assert_eq!(tx.sessions_purge_expired(t(200))?, 1);
            assert_eq!(tx.session_pending_count("s2")?, 0);
            assert_eq!(tx.session_delivered_list("s1")?, vec![]);
            assert_eq!(tx.session_delivered_list("s2")?, vec![]);
            assert_eq!(tx.session_pending_clear("s3")?, 5);
            assert_eq!(tx.session_pending_count("s3")?, 0);
            tx.session_pending_put("s3", &rows(2))?;
            // And with their terminal.
            tx.terminal_remove(A, TA1)?;
            assert_eq!(tx.session_pending_count("s3")?, 0);
            Ok(())
        })
        .unwrap();
}

pub fn audit_is_append_only_and_filterable(db: &dyn TestDb) {
    let store = fixture(db);
    let event = audit_event;
    let ids = store
        .transaction(|tx| {
            Ok(vec![
                tx.audit_append(&event(1, Some(A), Some(TA1), 212))?,
                tx.audit_append(&event(2, Some(A), Some(TA2), 401))?,
                tx.audit_append(&event(3, Some(B), Some(TB1), 212))?,
                tx.audit_append(&event(4, Some(A), Some(TA1), 403))?,
                tx.audit_append(&event(5, None, Some("IMEI:unknown"), 404))?,
            ])
        })
        .unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    store
        .read(|tx| {
            let all = tx.audit_list(&AuditFilter::default())?;
            let ats: Vec<Timestamp> = all.iter().map(|r| r.event.at).collect();
            assert_eq!(ats, vec![t(5), t(4), t(3), t(2), t(1)], "newest first");
            assert_eq!(all[0].event, event(5, None, Some("IMEI:unknown"), 404));

            let of_a = tx.audit_list(&AuditFilter {
                subscriber_id: Some(A.into()),
                ..AuditFilter::default()
            })?;
            assert_eq!(of_a.len(), 3);
            assert!(of_a
                .iter()
                .all(|r| r.event.subscriber_id.as_deref() == Some(A)));
            let of_ta1 = tx.audit_list(&AuditFilter {
                terminal_id: Some(TA1.into()),
                ..AuditFilter::default()
            })?;
            assert_eq!(of_ta1.len(), 2);
            let both = tx.audit_list(&AuditFilter {
                subscriber_id: Some(A.into()),
                terminal_id: Some(TA2.into()),
                ..AuditFilter::default()
            })?;
            assert_eq!(both.len(), 1);
            assert_eq!(both[0].event.status, Some(401));
            let limited = tx.audit_list(&AuditFilter {
                limit: 2,
                ..AuditFilter::default()
            })?;
            assert_eq!(limited.len(), 2);
            let page2 = tx.audit_list(&AuditFilter {
                before_id: Some(limited[1].id),
                limit: 2,
                ..AuditFilter::default()
            })?;
            assert_eq!(
                page2.iter().map(|r| r.event.at).collect::<Vec<_>>(),
                vec![t(3), t(2)]
            );
            Ok(())
        })
        .unwrap();

    // Deleting the subscriber keeps its audit trail.
    store.transaction(|tx| tx.subscriber_delete(A)).unwrap();
    let still = store
        .read(|tx| {
            tx.audit_list(&AuditFilter {
                subscriber_id: Some(A.into()),
                ..AuditFilter::default()
            })
        })
        .unwrap();
    assert_eq!(still.len(), 3);
    // That raw SQL cannot rewrite the log either is checked per backend (its own SQL access).
}

pub fn lockout_grows_and_resets(db: &dyn TestDb) {
    let store = fixture(db);
    let term = LockoutKey::Terminal(TA1);
    let sub = LockoutKey::Subscriber(A);

    // The documented schedule.
    let schedule: Vec<i64> = (1..=12).map(lockout_duration).collect();
    assert_eq!(
        schedule,
        vec![0, 0, 0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    );
    assert_eq!(lockout_duration(u32::MAX), LOCKOUT_MAX_SECS);

    store
        .transaction(|tx| {
            assert_eq!(tx.lockout_get(term)?, None);
            for i in 1..=3 {
                let s = tx.lockout_record_failure(term, t(i))?;
                assert_eq!(s.failures, i as u32);
                assert_eq!(s.locked_until, None);
                assert!(!s.is_locked(t(i)));
            }
            let s = tx.lockout_record_failure(term, t(10))?;
            assert_eq!(s.locked_until, Some(t(40)));
            assert!(s.is_locked(t(39)));
            assert!(!s.is_locked(t(40)));
            let s = tx.lockout_record_failure(term, t(50))?;
            assert_eq!(s.locked_until, Some(t(110)), "the lock grows");
            let mut last = s;
            for _ in 0..10 {
                last = tx.lockout_record_failure(term, t(200))?;
            }
            assert_eq!(last.locked_until, Some(t(200 + LOCKOUT_MAX_SECS)), "capped");
            assert_eq!(tx.lockout_get(term)?, Some(last));
            // Counters are per key.
            assert_eq!(tx.lockout_get(sub)?, None);
            assert_eq!(tx.lockout_get(LockoutKey::Terminal(TA2))?, None);
            let s = tx.lockout_record_failure(sub, t(300))?;
            assert_eq!(s.failures, 1);

            // Reset (success, or the operator lifting the lock).
            assert!(tx.lockout_reset(term)?);
            assert!(!tx.lockout_reset(term)?);
            assert_eq!(tx.lockout_get(term)?, None);
            assert_eq!(tx.lockout_record_failure(term, t(301))?.failures, 1);

            // A counter left alone for a day starts over.
            for i in 0..5 {
                tx.lockout_record_failure(sub, t(400 + i))?;
            }
            let s = tx.lockout_record_failure(sub, t(400 + 86_400 * 2))?;
            assert_eq!(s.failures, 1);
            assert_eq!(s.locked_until, None);
            Ok(())
        })
        .unwrap();
}

pub fn subscriber_isolation_items(db: &dyn TestDb) {
    let store = fixture(db);
    let a = DatastoreKey::new(A, CONTACTS);
    let b = DatastoreKey::new(B, CONTACTS);
    // Both subscribers get the same GUIDs ("1", "2"): look-alike data.
    let (ga, gb) = store
        .transaction(|tx| {
            let ga = tx.items_put(a, Some(TA1), &[vcard("alice"), vcard("alice2")], t(1))?;
            let gb = tx.items_put(b, Some(TB1), &[vcard("bob"), vcard("bob2")], t(1))?;
            Ok((ga, gb))
        })
        .unwrap();
    assert_eq!(ga[0].guid, gb[0].guid);
    let guid = ga[0].guid.clone();

    // B's writes with A's GUIDs touch only B's rows.
    store
        .transaction(|tx| {
            tx.items_put(b, Some(TB1), &[replace(&guid, "bob, edited")], t(2))?;
            tx.items_delete(b, Some(TB1), &[ga[1].guid.clone()], t(2))?;
            Ok(())
        })
        .unwrap();
    store
        .read(|tx| {
            let item = tx.item_get(a, &guid)?.unwrap();
            assert_eq!(item.data, vcard("alice").data);
            assert!(!tx.item_get(a, &ga[1].guid)?.unwrap().deleted);
            assert!(tx.item_history(a, &guid)?.is_empty());
            assert_eq!(tx.items_list_live(a)?.len(), 2);
            assert_eq!(tx.datastore_revision(a)?, 2);
            let changes = tx.changes_since(a, 0, None, None)?;
            assert!(changes
                .iter()
                .all(|c| c.origin_terminal.as_deref() == Some(TA1)));
            assert!(tx
                .items_list_live(b)?
                .iter()
                .all(|i| !i.data.starts_with(b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:alice")));
            // An unknown subscriber sees nothing at all.
            let nobody = DatastoreKey::new("262019999999999", CONTACTS);
            assert_eq!(tx.item_get(nobody, &guid)?, None);
            assert!(tx.items_list_live(nobody)?.is_empty());
            assert!(tx.changes_since(nobody, 0, None, None)?.is_empty());
            assert!(tx.datastores("262019999999999")?.is_empty());
            Ok(())
        })
        .unwrap();
    // Writing into a subscriber that does not exist fails.
    let err = store
        .transaction(|tx| {
            tx.items_put(
                DatastoreKey::new("262019999999999", CONTACTS),
                None,
                &[vcard("x")],
                t(3),
            )
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

pub fn subscriber_isolation_maps(db: &dyn TestDb) {
    let store = fixture(db);
    let a = SyncKey::new(A, TA1, CONTACTS);
    let b = SyncKey::new(B, TB1, CONTACTS);
    store
        .transaction(|tx| {
            tx.map_put(a, &[MapEntry::new("L1", "1")])?;
            tx.map_put(b, &[MapEntry::new("L1", "1")])?;
            Ok(())
        })
        .unwrap();
    // B naming A's terminal: reads find nothing, writes fail and change nothing.
    let b_on_a_terminal = SyncKey::new(B, TA1, CONTACTS);
    store
        .transaction(|tx| {
            assert_eq!(tx.map_guid_for_luid(b_on_a_terminal, "L1")?, None);
            assert_eq!(tx.map_luid_for_guid(b_on_a_terminal, "1")?, None);
            assert!(tx.map_list(b_on_a_terminal)?.is_empty());
            assert_eq!(tx.map_remove_luids(b_on_a_terminal, &["L1".into()])?, 0);
            assert_eq!(tx.map_remove_guids(b_on_a_terminal, &["1".into()])?, 0);
            assert_eq!(tx.map_clear(b_on_a_terminal)?, 0);
            Ok(())
        })
        .unwrap();
    let err = store
        .transaction(|tx| tx.map_put(b_on_a_terminal, &[MapEntry::new("L1", "666")]))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    // B's own edits stay in B's map.
    store
        .transaction(|tx| {
            tx.map_put(b, &[MapEntry::new("L1", "2")])?;
            tx.map_clear(b)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.read(|tx| tx.map_list(a)).unwrap(),
        vec![MapEntry::new("L1", "1")]
    );
}

pub fn subscriber_isolation_states(db: &dyn TestDb) {
    let store = fixture(db);
    let a = SyncKey::new(A, TA1, CONTACTS);
    let state = SyncState {
        client_anchor: Some("a-anchor".into()),
        server_anchor: Some("7".into()),
        acked_revision: 7,
        last_sync_type: Some(200),
        updated_at: t(1),
    };
    store
        .transaction(|tx| tx.sync_state_put(a, &state))
        .unwrap();
    let b_on_a_terminal = SyncKey::new(B, TA1, CONTACTS);
    store
        .transaction(|tx| {
            assert_eq!(tx.sync_state_get(b_on_a_terminal)?, None);
            assert!(tx.sync_states_for_terminal(B, TA1)?.is_empty());
            assert!(!tx.sync_state_delete(b_on_a_terminal)?);
            Ok(())
        })
        .unwrap();
    let err = store
        .transaction(|tx| {
            tx.sync_state_put(
                b_on_a_terminal,
                &SyncState {
                    acked_revision: 999,
                    ..state.clone()
                },
            )
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(store.read(|tx| tx.sync_state_get(a)).unwrap(), Some(state));
}

pub fn subscriber_isolation_terminals(db: &dyn TestDb) {
    let store = fixture(db);
    store
        .transaction(|tx| {
            tx.terminal_set_devinf(A, TA1, Some(b"<DevInf/>"))?;
            // B sees none of A's terminals.
            assert!(tx.terminal_get(B, TA1)?.is_none());
            assert_eq!(tx.terminal_devinf(B, TA1)?, None);
            let of_b: Vec<String> = tx
                .terminal_list(B)?
                .into_iter()
                .map(|t| t.terminal_id)
                .collect();
            assert_eq!(of_b, vec![TB1]);
            Ok(())
        })
        .unwrap();
    // Every mutation of A's terminal under B's id fails and changes nothing.
    type Op = fn(&mut dyn Tx) -> Result<(), StoreError>;
    let attempts: Vec<Op> = vec![
        |tx| tx.terminal_set_classes(B, TA1, &["mail".into()]),
        |tx| tx.terminal_set_verifiers(B, TA1, Some(&Secret::new("x")), None),
        |tx| tx.terminal_set_devinf(B, TA1, Some(b"forged")),
        |tx| tx.terminal_set_nonce(B, TA1, Some("n")),
        |tx| tx.terminal_touch_last_session(B, TA1, t(99)),
        |tx| tx.terminal_set_revoked(B, TA1, true),
        |tx| tx.terminal_remove(B, TA1),
    ];
    for op in attempts {
        let err = store.transaction(|tx| op(tx)).unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    }
    store
        .read(|tx| {
            let t1 = tx.terminal_get(A, TA1)?.unwrap();
            assert_eq!(t1.classes, vec![CALENDAR, CONTACTS]);
            assert_eq!(
                t1.md5_verifier.as_ref().map(Secret::expose),
                Some("Zz6EivR3yeaaENcRN6lpAQ==")
            );
            assert!(!t1.revoked);
            assert_eq!(t1.last_session_at, None);
            assert_eq!(t1.next_nonce, None);
            assert_eq!(
                tx.terminal_devinf(A, TA1)?.as_deref(),
                Some(&b"<DevInf/>"[..])
            );
            Ok(())
        })
        .unwrap();
}

pub fn terminal_id_bound_to_one_subscriber(db: &dyn TestDb) {
    let store = fixture(db);
    let err = store
        .transaction(|tx| {
            tx.terminal_register(
                &NewTerminal {
                    terminal_id: TA1.into(),
                    subscriber_id: B.into(),
                    md5_verifier: None,
                    basic_verifier: None,
                    classes: vec![],
                    registered_by: RegisteredBy::Shop,
                },
                t(5),
            )
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    store
        .transaction(|tx| {
            let found = tx.terminal_find(TA1)?.unwrap();
            assert_eq!(found.subscriber_id, A);
            assert!(tx.terminal_get(B, TA1)?.is_none());
            // Revoked terminals stay bound.
            tx.terminal_set_revoked(A, TA1, true)?;
            assert!(tx.terminal_get(A, TA1)?.unwrap().revoked);
            Ok(())
        })
        .unwrap();
    let err = store
        .transaction(|tx| {
            tx.terminal_register(
                &NewTerminal {
                    terminal_id: TA1.into(),
                    subscriber_id: B.into(),
                    md5_verifier: None,
                    basic_verifier: None,
                    classes: vec![],
                    registered_by: RegisteredBy::Operator,
                },
                t(6),
            )
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
    // Once removed, the id can be bound to another subscriber, with a clean slate.
    store
        .transaction(|tx| {
            tx.sync_state_put(SyncKey::new(A, TA1, CONTACTS), &SyncState::default())?;
            tx.map_put(SyncKey::new(A, TA1, CONTACTS), &[MapEntry::new("L", "G")])?;
            tx.terminal_remove(A, TA1)?;
            assert!(tx.terminal_find(TA1)?.is_none());
            let t = tx.terminal_register(
                &NewTerminal {
                    terminal_id: TA1.into(),
                    subscriber_id: B.into(),
                    md5_verifier: None,
                    basic_verifier: Some(Secret::new("$argon2id$v=19$m=19456,t=2,p=1$x$y")),
                    classes: vec!["notes".into(), "notes".into()],
                    registered_by: RegisteredBy::Shop,
                },
                t(7),
            )?;
            assert_eq!(t.subscriber_id, B);
            assert_eq!(t.classes, vec!["notes"]);
            assert_eq!(t.registered_by, RegisteredBy::Shop);
            assert_eq!(t.registered_at, self::t(7));
            assert!(tx.sync_states_for_terminal(A, TA1)?.is_empty());
            assert!(tx.map_list(SyncKey::new(B, TA1, CONTACTS))?.is_empty());
            // Unknown subscriber: nothing to bind to.
            let err = tx
                .terminal_register(
                    &NewTerminal {
                        terminal_id: "IMEI:1".into(),
                        subscriber_id: "nobody".into(),
                        md5_verifier: None,
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::User,
                    },
                    self::t(8),
                )
                .unwrap_err();
            assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
            Ok(())
        })
        .unwrap();
}

pub fn concurrent_transactions_from_threads(db: &dyn TestDb) {
    const THREADS: usize = 4;
    const TXS: usize = 25;
    const PER_TX: usize = 4;
    let store = db.open();
    let terminals: Vec<String> = (0..THREADS)
        .map(|i| format!("IMEI:10000000000000{i}"))
        .collect();
    store
        .transaction(|tx| {
            add_subscriber(tx, A);
            for term in &terminals {
                add_terminal(tx, A, term);
            }
            Ok(())
        })
        .unwrap();
    let ds = DatastoreKey::new(A, CONTACTS);

    let mut handles = Vec::new();
    for term in terminals.clone() {
        let store = Arc::clone(&store);
        handles.push(std::thread::spawn(move || {
            let mut revisions = Vec::new();
            for n in 0..TXS {
                let items: Vec<NewItem> = (0..PER_TX)
                    .map(|k| vcard(&format!("{term}-{n}-{k}")))
                    .collect();
                let written = store
                    .transaction(|tx| {
                        let written = tx.items_put(ds, Some(&term), &items, t(n as i64))?;
                        let map: Vec<MapEntry> = written
                            .iter()
                            .map(|w| MapEntry::new(format!("luid-{}", w.guid), w.guid.clone()))
                            .collect();
                        tx.map_put(SyncKey::new(A, &term, CONTACTS), &map)?;
                        let rev = tx.datastore_revision(ds)?;
                        tx.sync_state_put(
                            SyncKey::new(A, &term, CONTACTS),
                            &SyncState {
                                acked_revision: rev,
                                updated_at: t(n as i64),
                                ..SyncState::default()
                            },
                        )?;
                        Ok(written)
                    })
                    .expect("transaction");
                revisions.extend(written.into_iter().map(|w| w.revision));
            }
            revisions
        }));
    }
    // A reader runs alongside the writers and always sees whole batches.
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for _ in 0..50 {
                let (count, rev) = store
                    .read(|tx| Ok((tx.items_stats(ds)?.count, tx.datastore_revision(ds)?)))
                    .expect("read");
                assert_eq!(count as i64, rev, "a snapshot never shows half a batch");
                assert_eq!(count as usize % PER_TX, 0);
            }
        })
    };
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("writer thread"));
    }
    reader.join().expect("reader thread");

    let total = THREADS * TXS * PER_TX;
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), total, "revision numbers are unique");
    assert_eq!(unique, (1..=total as i64).collect::<HashSet<_>>());
    store
        .read(|tx| {
            assert_eq!(tx.items_stats(ds)?.count as usize, total, "no lost updates");
            assert_eq!(tx.datastore_revision(ds)? as usize, total);
            for term in &terminals {
                let key = SyncKey::new(A, term, CONTACTS);
                assert_eq!(tx.map_list(key)?.len(), TXS * PER_TX);
                let others = tx.changes_since(ds, 0, Some(term), None)?;
                assert_eq!(others.len(), total - TXS * PER_TX);
                assert!(tx.sync_state_get(key)?.unwrap().acked_revision > 0);
            }
            Ok(())
        })
        .unwrap();
    let stats = store.stats();
    assert_eq!(stats.write_commits as usize, 1 + THREADS * TXS);
}

/// Two store objects on one database (two server nodes; for SQLite, two processes on one
/// file) serve two terminals of one subscriber at the same time. Each transaction is a
/// miniature sync session: fetch what the other terminal wrote since this terminal's
/// acknowledged revision, add items, edit one shared item, map the adds, acknowledge the
/// datastore's revision. Revisions must be unique and gap-free, nothing written may be lost
/// (checked by content), and each terminal must receive everything the other wrote: a session
/// that acknowledged a revision without having seen a change below it would lose that change
/// for good.
pub fn two_stores_on_one_database_write_concurrently(db: &dyn TestDb) {
    const SESSIONS: usize = 20;
    const ADDS: usize = 3;
    let node1 = db.open();
    let node2 = db.open();
    let ds = DatastoreKey::new(A, CONTACTS);
    let shared = node1
        .transaction(|tx| {
            add_subscriber(tx, A);
            add_terminal(tx, A, TA1);
            add_terminal(tx, A, TA2);
            Ok(tx.items_put(ds, None, &[vcard("shared")], t(0))?[0]
                .guid
                .clone())
        })
        .unwrap();

    struct NodeResult {
        revisions: Vec<i64>,
        written: Vec<Vec<u8>>,
        received: Vec<Vec<u8>>,
    }
    let barrier = Arc::new(Barrier::new(2));
    let mut handles = Vec::new();
    for (node, term) in [(Arc::clone(&node1), TA1), (Arc::clone(&node2), TA2)] {
        let barrier = Arc::clone(&barrier);
        let shared = shared.clone();
        handles.push(std::thread::spawn(move || {
            let key = SyncKey::new(A, term, CONTACTS);
            let mut out = NodeResult {
                revisions: Vec::new(),
                written: Vec::new(),
                received: Vec::new(),
            };
            barrier.wait();
            for n in 0..SESSIONS {
                let mut batch: Vec<NewItem> = (0..ADDS)
                    .map(|k| vcard(&format!("{term} session {n} add {k}")))
                    .collect();
                batch.push(replace(
                    &shared,
                    &format!("shared, edited by {term} in {n}"),
                ));
                let (incoming, written) = node
                    .transaction(|tx| {
                        let acked = tx.sync_state_get(key)?.map_or(0, |s| s.acked_revision);
                        let incoming = tx.changes_since(ds, acked, Some(term), None)?;
                        let written = tx.items_put(ds, Some(term), &batch, t(10 + n as i64))?;
                        let map: Vec<MapEntry> = written[..ADDS]
                            .iter()
                            .map(|w| MapEntry::new(format!("{term}/{}", w.guid), w.guid.clone()))
                            .collect();
                        tx.map_put(key, &map)?;
                        let revision = tx.datastore_revision(ds)?;
                        tx.sync_state_put(
                            key,
                            &SyncState {
                                acked_revision: revision,
                                updated_at: t(10 + n as i64),
                                ..SyncState::default()
                            },
                        )?;
                        Ok((incoming, written))
                    })
                    .expect("session transaction");
                out.revisions.extend(written.iter().map(|w| w.revision));
                out.written
                    .extend(batch[..ADDS].iter().map(|item| item.data.clone()));
                out.received.extend(incoming.into_iter().map(|c| c.data));
            }
            out
        }));
    }
    let results: Vec<NodeResult> = handles
        .into_iter()
        .map(|h| h.join().expect("node thread"))
        .collect();

    // Unique, gap-free revisions across both nodes.
    let total = 1 + 2 * SESSIONS * (ADDS + 1);
    let mut revisions: Vec<i64> = results.iter().flat_map(|r| r.revisions.clone()).collect();
    revisions.push(1);
    revisions.sort_unstable();
    assert_eq!(revisions, (1..=total as i64).collect::<Vec<_>>());

    node2
        .read(|tx| {
            // Nothing lost or duplicated, by content.
            let live = tx.items_list_live(ds)?;
            assert_eq!(live.len(), 1 + 2 * SESSIONS * ADDS);
            let bodies: HashSet<&[u8]> = live.iter().map(|i| i.data.as_slice()).collect();
            assert_eq!(bodies.len(), live.len(), "no item twice");
            for r in &results {
                for w in &r.written {
                    assert!(bodies.contains(w.as_slice()), "an added item was lost");
                }
            }
            // Every edit of the shared item is in its history, each at its own revision.
            let history = tx.item_history(ds, &shared)?;
            assert_eq!(history.len(), 2 * SESSIONS);
            let revs: HashSet<i64> = history.iter().map(|h| h.revision).collect();
            assert_eq!(revs.len(), history.len());
            assert_eq!(tx.datastore_revision(ds)?, total as i64);
            // Each terminal received (during its sessions, or in a final catch-up from its
            // acknowledged revision) every item the other terminal added.
            for (me, other) in [(0, 1), (1, 0)] {
                let term = [TA1, TA2][me];
                let key = SyncKey::new(A, term, CONTACTS);
                assert_eq!(tx.map_list(key)?.len(), SESSIONS * ADDS);
                let acked = tx.sync_state_get(key)?.expect("state").acked_revision;
                let mut seen: HashSet<Vec<u8>> = results[me].received.iter().cloned().collect();
                seen.extend(
                    tx.changes_since(ds, acked, Some(term), None)?
                        .into_iter()
                        .map(|c| c.data),
                );
                for w in &results[other].written {
                    assert!(
                        seen.contains(w),
                        "{term} never received an item the other terminal added"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
    let commits = node1.stats().write_commits + node2.stats().write_commits;
    assert_eq!(commits as usize, 1 + 2 * SESSIONS);
}

/// Keys no backend can store (a NUL character, e.g. from a hostile message) are simply not
/// found, and the transaction goes on; writing them is refused as invalid input.
pub fn lookups_with_unstorable_keys_find_nothing(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let key = SyncKey::new(A, TA1, CONTACTS);
    let bad = "IMEI:35693803\u{0}5643809";
    store
        .transaction(|tx| {
            assert!(tx.terminal_find(bad)?.is_none());
            assert!(tx.terminal_get(A, bad)?.is_none());
            assert!(tx.subscriber_get("26201\u{0}")?.is_none());
            assert_eq!(tx.session_load("tok\u{0}", t(0))?, None);
            assert_eq!(tx.map_guid_for_luid(key, "L\u{0}")?, None);
            assert!(tx
                .changes_since(DatastoreKey::new(A, "con\u{0}tacts"), 0, None, None)?
                .is_empty());
            assert_eq!(tx.item_get(ds, "1\u{0}")?, None);
            assert_eq!(
                tx.items_delete(ds, Some(TA1), &["1\u{0}".into()], t(1))?,
                vec![None]
            );
            assert_eq!(tx.lockout_get(LockoutKey::Terminal(bad))?, None);
            assert!(matches!(
                tx.terminal_set_revoked(A, bad, true),
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                tx.map_put(key, &[MapEntry::new("L\u{0}", "1")]),
                Err(StoreError::InvalidInput(_))
            ));
            assert!(matches!(
                tx.session_save(&SessionRecord {
                    key: "tok\u{0}".into(),
                    subscriber_id: A.into(),
                    terminal_id: TA1.into(),
                    state: Vec::new(),
                    created_at: t(0),
                    expires_at: t(1),
                }),
                Err(StoreError::InvalidInput(_))
            ));
            tx.items_put(ds, Some(TA1), &[vcard("after")], t(2))
        })
        .unwrap();
    assert_eq!(store.read(|tx| tx.items_stats(ds)).unwrap().count, 1);
}

/// A batch that names the same item (or the same LUID/GUID) more than once ends exactly as if
/// its entries had been written one at a time, in order.
pub fn batches_with_repeats_behave_like_one_write_at_a_time(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    let key = SyncKey::new(A, TA1, CONTACTS);
    let (g1, g2) = store
        .transaction(|tx| {
            let r = tx.items_put(ds, Some(TA1), &[vcard("one"), vcard("two")], t(1))?;
            Ok((r[0].guid.clone(), r[1].guid.clone()))
        })
        .unwrap();
    let written = store
        .transaction(|tx| {
            tx.items_put(
                ds,
                Some(TA2),
                &[
                    replace(&g1, "one, first edit"),
                    vcard("three"),
                    replace(&g1, "one, second edit"),
                    replace(&g2, "two, edited"),
                ],
                t(2),
            )
        })
        .unwrap();
    let revisions: Vec<i64> = written.iter().map(|w| w.revision).collect();
    assert_eq!(revisions, vec![3, 4, 5, 6]);
    assert_eq!(written[0].guid, g1);
    assert_eq!(written[2].guid, g1);
    store
        .read(|tx| {
            let current = tx.item_get(ds, &g1)?.unwrap();
            assert_eq!(current.data, vcard("one, second edit").data);
            assert_eq!(current.revision, 5);
            let history: Vec<(i64, Vec<u8>)> = tx
                .item_history(ds, &g1)?
                .into_iter()
                .map(|h| (h.revision, h.data))
                .collect();
            assert_eq!(
                history,
                vec![(3, vcard("one, first edit").data), (1, vcard("one").data)]
            );
            assert_eq!(tx.item_history(ds, &g2)?.len(), 1);
            assert_eq!(tx.items_stats(ds)?.count, 3);
            Ok(())
        })
        .unwrap();

    store
        .transaction(|tx| {
            tx.map_put(key, &[MapEntry::new("L9", "G3"), MapEntry::new("L5", "G5")])?;
            tx.map_put(
                key,
                &[
                    MapEntry::new("L1", "G1"),
                    MapEntry::new("L2", "G2"),
                    MapEntry::new("L1", "G3"),
                    MapEntry::new("L4", "G2"),
                ],
            )?;
            assert_eq!(
                tx.map_list(key)?,
                vec![
                    MapEntry::new("L1", "G3"),
                    MapEntry::new("L4", "G2"),
                    MapEntry::new("L5", "G5"),
                ]
            );
            // The same pair twice is the pair once.
            tx.map_put(key, &[MapEntry::new("L7", "G7"), MapEntry::new("L7", "G7")])?;
            assert_eq!(tx.map_guid_for_luid(key, "L7")?.as_deref(), Some("G7"));
            assert_eq!(tx.map_list(key)?.len(), 4);
            Ok(())
        })
        .unwrap();
}

pub fn read_transactions_refuse_writes_and_nested_writes_are_refused(db: &dyn TestDb) {
    let store = fixture(db);
    let err = store
        .read(|tx| tx.items_put(DatastoreKey::new(A, CONTACTS), None, &[vcard("x")], t(1)))
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let err = store
        .transaction(|_tx| store.transaction(|_inner| Ok(())))
        .unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    // The store still works afterwards.
    let r = store.run(TxMode::Read, &mut |tx| {
        assert!(tx.subscriber_get(A)?.is_some());
        Ok(())
    });
    assert!(r.is_ok());
}

pub fn subscriber_lifecycle_and_cascade(db: &dyn TestDb) {
    let store = fixture(db);
    store
        .transaction(|tx| {
            let err = tx
                .subscriber_create(
                    &NewSubscriber {
                        id: A.into(),
                        display_name: None,
                        security_level: 0,
                    },
                    t(2),
                )
                .unwrap_err();
            assert!(matches!(err, StoreError::AlreadyExists(_)), "{err:?}");
            let err = tx.subscriber_set_security_level(A, 3).unwrap_err();
            assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
            tx.subscriber_set_security_level(A, 2)?;
            tx.subscriber_set_pin_verifier(A, Some(&Secret::new("$argon2id$pin")))?;
            tx.subscriber_set_login_verifier(A, Some(&Secret::new("$argon2id$login")))?;
            let s = tx.subscriber_get(A)?.unwrap();
            assert_eq!(s.security_level, 2);
            assert_eq!(
                s.pin_verifier.as_ref().map(Secret::expose),
                Some("$argon2id$pin")
            );
            assert!(
                !format!("{s:?}").contains("argon2"),
                "secrets stay out of Debug"
            );
            tx.subscriber_set_pin_verifier(A, None)?;
            assert!(tx.subscriber_get(A)?.unwrap().pin_verifier.is_none());
            let ids: Vec<String> = tx
                .subscriber_list(None, 10)?
                .into_iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(ids, vec![A, B]);
            let after_a: Vec<String> = tx
                .subscriber_list(Some(A), 10)?
                .into_iter()
                .map(|s| s.id)
                .collect();
            assert_eq!(after_a, vec![B]);
            assert!(matches!(
                tx.subscriber_create(
                    &NewSubscriber {
                        id: String::new(),
                        display_name: None,
                        security_level: 0
                    },
                    t(1)
                ),
                Err(StoreError::InvalidInput(_))
            ));

            tx.items_put(
                DatastoreKey::new(A, CONTACTS),
                Some(TA1),
                &[vcard("a")],
                t(3),
            )?;
            tx.map_put(SyncKey::new(A, TA1, CONTACTS), &[MapEntry::new("L", "1")])?;
            tx.terminal_set_nonce(A, TA1, Some("bm9uY2U="))?;
            tx.terminal_touch_last_session(A, TA1, t(9))?;
            let term = tx.terminal_get(A, TA1)?.unwrap();
            assert_eq!(term.next_nonce.as_deref(), Some("bm9uY2U="));
            assert_eq!(term.last_session_at, Some(t(9)));
            tx.terminal_set_classes(A, TA1, &["contacts".into()])?;
            assert_eq!(tx.terminal_get(A, TA1)?.unwrap().classes, vec!["contacts"]);
            assert_eq!(
                tx.items_stats(DatastoreKey::new(A, CONTACTS))?.count,
                1,
                "changing classes never deletes data"
            );

            tx.subscriber_delete(A)?;
            assert!(tx.subscriber_get(A)?.is_none());
            assert!(tx.terminal_find(TA1)?.is_none());
            assert!(tx.datastores(A)?.is_empty());
            assert!(tx.subscriber_get(B)?.is_some());
            assert!(matches!(
                tx.subscriber_delete(A),
                Err(StoreError::NotFound(_))
            ));
            Ok(())
        })
        .unwrap();
}

pub fn a_panicking_transaction_rolls_back_and_the_store_keeps_working(db: &dyn TestDb) {
    let store = fixture(db);
    let ds = DatastoreKey::new(A, CONTACTS);
    for mode in [TxMode::Write, TxMode::Read] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.run(mode, &mut |tx| {
                if mode == TxMode::Write {
                    tx.items_put(ds, Some(TA1), &[vcard("half-done")], t(1))?;
                }
                panic!("session engine bug");
            });
        }));
        assert!(caught.is_err());
    }
    store
        .transaction(|tx| {
            assert_eq!(
                tx.items_stats(ds)?.count,
                0,
                "the panicking write was rolled back"
            );
            tx.items_put(ds, Some(TA1), &[vcard("after")], t(2))
        })
        .unwrap();
    assert_eq!(store.read(|tx| tx.items_stats(ds)).unwrap().count, 1);
}

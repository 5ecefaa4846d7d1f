//! The client against OUR server (syncml-server) over real HTTP with a real SQLite file.

mod common;

use common::{card, sim, start, Phone, Server, SUBSCRIBER};
use syncml_client::{ClientError, SessionError, SyncMode};
use syncml_core::StatusCode;

fn contacts(srv: &Server) -> Vec<String> {
    srv.items(SUBSCRIBER, "contacts")
}

#[test]
fn first_sync_is_a_slow_sync_that_uploads_everything() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "secret");
    for n in ["Ann", "Bob", "Cat"] {
        a.contacts.add(card(n));
    }
    let mut s = sim();
    let r = a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("sync");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        r.stores[0].mode,
        Some(SyncMode::Slow),
        "no anchors yet: slow"
    );
    assert_eq!(r.stores[0].sent.total(), 3);
    assert_eq!(contacts(&srv), a.contacts.contents());
    assert_eq!(a.contacts.pending(), 0, "acknowledged changes are cleared");
    assert!(a.contacts.state().last_anchor.is_some());
    assert_eq!(a.requests(), 3, "packages 1, 3, 5");

    // The next sync is a normal two-way sync with nothing to say.
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("sync 2");
    assert_eq!(r.stores[0].mode, Some(SyncMode::TwoWay));
    assert_eq!((r.sent(), r.received()), (0, 0));
    assert_eq!(contacts(&srv).len(), 3);
}

#[test]
fn two_way_sync_exchanges_adds_updates_and_deletes() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "secret");
    let mut s = sim();
    let ann = a.contacts.add(card("Ann"));
    let bob = a.contacts.add(card("Bob"));
    let cat = a.contacts.add(card("Cat"));
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("slow");

    // Local edits.
    a.contacts.update(&bob, card("Bob Jr"));
    a.contacts.delete(&cat);
    a.contacts.add(card("Dan"));
    // Server-side edits by the operator: one add, one replace, one delete.
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Eve"));
    let g_ann = srv
        .guid_of(SUBSCRIBER, "contacts", &card("Ann"))
        .expect("ann");
    srv.operator_put(SUBSCRIBER, "contacts", Some(&g_ann), &card("Ann Server"));

    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("two-way");
    assert!(r.is_success(), "{r:?}");
    let st = &r.stores[0];
    assert_eq!(st.mode, Some(SyncMode::TwoWay));
    assert_eq!(
        (st.sent.added, st.sent.replaced, st.sent.deleted),
        (1, 1, 1)
    );
    assert_eq!((st.received.added, st.received.replaced), (1, 1));
    assert_eq!(a.contacts.get(&ann), Some(card("Ann Server").as_bytes()));
    let mut want = vec![card("Ann Server"), card("Bob Jr"), card("Dan"), card("Eve")];
    want.sort();
    assert_eq!(contacts(&srv), want);
    assert_eq!(a.contacts.contents(), want);
    assert_eq!(st.maps_acknowledged, 1, "the server's Add was mapped");

    // A server delete reaches the handset through the map.
    let g_eve = srv
        .guid_of(SUBSCRIBER, "contacts", &card("Eve"))
        .expect("eve");
    srv.operator_delete(SUBSCRIBER, "contacts", &g_eve);
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("delete");
    assert_eq!(r.stores[0].received.deleted, 1);
    assert_eq!(a.contacts.contents(), contacts(&srv));
    assert_eq!(a.contacts.contents().len(), 3);

    // Nothing left: the next sync exchanges nothing and duplicates nothing.
    let r = a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("quiet");
    assert_eq!((r.sent(), r.received()), (0, 0));
    assert_eq!(contacts(&srv).len(), 3);
}

#[test]
fn refresh_from_server_restores_a_wiped_handset() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "secret");
    let mut s = sim();
    for n in ["Ann", "Bob", "Cat", "Dan"] {
        a.contacts.add(card(n));
    }
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("upload");
    let before = a.contacts.contents();

    // The handset loses everything (store and sync state) and a stray local item appears.
    a.contacts = syncml_client::mem::MemoryStore::contacts();
    a.contacts.add(card("Stray"));
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::RefreshFromServer)
        .expect("refresh");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.stores[0].mode, Some(SyncMode::RefreshFromServer));
    assert_eq!(r.stores[0].received.added, 4);
    assert_eq!(r.sent(), 0, "refresh from server sends nothing");
    assert_eq!(
        a.contacts.contents(),
        before,
        "restored exactly, the stray item erased"
    );
    assert_eq!(contacts(&srv), before, "the server lost nothing");
    assert_eq!(a.contacts.pending(), 0);

    // The maps took: a two-way sync now exchanges nothing.
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("two-way");
    assert_eq!(r.stores[0].mode, Some(SyncMode::TwoWay));
    assert_eq!((r.sent(), r.received()), (0, 0));
}

#[test]
fn one_way_and_refresh_from_client_modes() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "secret");
    let mut s = sim();
    a.contacts.add(card("Ann"));
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("slow");

    // One-way from client: our change goes up, the server's stays there.
    a.contacts.add(card("Bob"));
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::OneWayFromClient)
        .expect("202");
    assert_eq!(r.stores[0].mode, Some(SyncMode::OneWayFromClient));
    assert_eq!((r.sent(), r.received()), (1, 0));
    assert_eq!(contacts(&srv).len(), 3);
    assert_eq!(a.contacts.contents().len(), 2);

    // One-way from server: the server's change comes down, ours waits.
    let cat = a.contacts.add(card("Cat"));
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::OneWayFromServer)
        .expect("204");
    assert_eq!(r.stores[0].mode, Some(SyncMode::OneWayFromServer));
    assert_eq!((r.sent(), r.received()), (0, 1));
    assert!(a.contacts.find(card("Srv").as_bytes()).is_some());
    assert_eq!(a.contacts.pending(), 1, "Cat waits for an upload");
    assert!(!contacts(&srv).contains(&card("Cat")));

    // Refresh from client: the server ends up with exactly our items.
    a.contacts.delete(&cat);
    let srv_only = srv
        .guid_of(SUBSCRIBER, "contacts", &card("Srv"))
        .expect("srv");
    let _ = srv_only;
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::RefreshFromClient)
        .expect("203");
    assert_eq!(r.stores[0].mode, Some(SyncMode::RefreshFromClient));
    assert_eq!(contacts(&srv), a.contacts.contents());

    // And a slow sync on request.
    let r = a.sync(&srv, Some(&mut s), SyncMode::Slow).expect("201");
    assert_eq!(r.stores[0].mode, Some(SyncMode::Slow));
    assert_eq!(r.received(), 0, "slow sync matched everything");
    assert_eq!(contacts(&srv), a.contacts.contents());
}

#[test]
fn a_wrong_password_fails_with_401_after_one_retry() {
    let srv = start();
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "secret");
    // The handset's own terminal password is "wrong": the local gate passes, the server
    // refuses.
    let mut a = Phone::unprovisioned(&srv, "IMEI:100000000000001", "wrong");
    a.contacts.add(card("Ann"));
    let mut s = sim();
    let e = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect_err("refused");
    assert_eq!(
        e,
        ClientError::Session(SessionError::AuthFailed(StatusCode::INVALID_CREDENTIALS))
    );
    assert_eq!(
        a.requests(),
        2,
        "package 1, one retry with the new nonce, nothing else"
    );
    assert!(contacts(&srv).is_empty());
    assert_eq!(srv.audit_count(401), 2);
    assert_eq!(a.contacts.pending(), 1, "nothing was acknowledged");
    assert!(a.contacts.state().last_anchor.is_none());
}

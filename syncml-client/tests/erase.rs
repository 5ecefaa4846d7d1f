//! Collective erase (FIG. 20, para. 0072-0077) against our real server over HTTP: upload,
//! confirm, then wipe locally; the wipe never reaches the server, the next insertion
//! restores the handset, and anything short of a confirmed upload wipes nothing.

mod common;

use std::sync::atomic::AtomicUsize;

use common::{card, event, sim, start, Failing, Handheld, Server, PIN, SUBSCRIBER};
use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::policy::{Event, Reason, TriggerConfig};
use syncml_client::{
    gate, ClientError, Counting, DataStore, Engine, EngineConfig, EraseError, GatePolicy,
    GateRefusal, Handset, HttpTransport, Notice, SyncMode,
};
use syncml_core::auth::Secret;
use syncml_server::store::StoreExt;

const ID: &str = "IMEI:400000000000001";

fn server(srv: &Server, ds: &str) -> Vec<String> {
    srv.items(SUBSCRIBER, ds)
}

/// FIG. 20's gate: the SIM's subscriber must be the one registered in the terminal
/// (FIG. 10-B), with the stored credential secret.
fn fig20(h: &mut Handheld, s: &mut MemorySim) {
    gate::register_subscriber_in_terminal(s, &mut h.terminal, &mut h.ui).expect("10-A");
    let cfg = h.engine.config_mut();
    cfg.policy = GatePolicy::FIG10B;
    cfg.stored_password = Some(Secret::new("pw".to_string()));
}

fn erase(
    srv: &Server,
    h: &mut Handheld,
    s: &mut MemorySim,
) -> Result<syncml_client::EraseReport, EraseError> {
    let Handheld {
        terminal,
        ui,
        contacts,
        calendar,
        engine,
        ..
    } = h;
    srv.block_on(engine.collective_erase(
        Handset {
            sim: Some(s),
            terminal,
            ui,
        },
        &mut [
            contacts as &mut dyn DataStore,
            calendar as &mut dyn DataStore,
        ],
    ))
}

#[test]
fn collective_erase_uploads_confirms_then_wipes_and_the_next_insertion_restores() {
    let srv = start();
    let mut cfg = TriggerConfig::new(["./contacts", "./calendar"]);
    cfg.download_on_insertion = true;
    let mut h = Handheld::new(&srv, ID, "pw", cfg);
    let mut s = sim();
    fig20(&mut h, &mut s);
    h.contacts.add(card("Ann"));
    let bob = h.contacts.add(card("Bob"));
    h.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("first");
    // Updates not yet uploaded when the user asks for the erase.
    h.contacts.add(card("Cat"));
    h.contacts.update(&bob, card("Bob 2"));
    h.calendar.add(event("Dentist"));
    let before = h.requests();

    let r = erase(&srv, &mut h, &mut s).expect("erase");
    assert!(h.requests() > before);
    assert_eq!(r.upload.sent(), 3, "the updates went up first");
    assert_eq!(
        r.wiped,
        vec![("./contacts".to_string(), 3), ("./calendar".to_string(), 1)]
    );
    let mut want = vec![card("Ann"), card("Bob 2"), card("Cat")];
    want.sort();
    assert_eq!(server(&srv, "contacts"), want);
    assert_eq!(server(&srv, "calendar"), vec![event("Dentist")]);
    assert!(h.contacts.contents().is_empty() && h.calendar.contents().is_empty());
    assert!(
        h.contacts.changes().unwrap().is_empty(),
        "the wipe is not in the change log: no deletes"
    );
    assert_eq!(h.contacts.state().last_anchor, None, "anchors forgotten");
    assert!(h.ui.notices.contains(&Notice::Erased {
        stores: vec!["./contacts".into(), "./calendar".into()]
    }));

    // The next SIM insertion restores the handset from the server; nothing is deleted.
    h.event(&srv, None, Event::SimRemoved);
    let runs = h.event(&srv, Some(&mut s), Event::SimInserted);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].0.reason, Reason::Insertion);
    let r = runs[0].1.as_ref().expect("restore");
    assert_eq!(r.sent(), 0, "no delete reached the server");
    assert_eq!(r.received(), 4);
    assert_eq!(h.contacts.contents(), want);
    assert_eq!(h.calendar.contents(), vec![event("Dentist")]);
    assert_eq!(server(&srv, "contacts"), want, "the server kept everything");
}

#[test]
fn erase_wipes_nothing_when_the_upload_fails() {
    let srv = start();
    srv.provision(SUBSCRIBER, ID, "pw");
    let transport = Counting::new(Failing {
        inner: HttpTransport::new(),
        fail: vec![2], // package 3 never arrives
        n: AtomicUsize::new(0),
    });
    let mut engine = Engine::new(EngineConfig::new(srv.url.clone()), transport);
    let mut t = MemoryTerminal::new(ID, "pw");
    let mut ui = ScriptedUi::answering(PIN, "pw");
    let mut contacts = MemoryStore::contacts();
    contacts.add(card("Ann"));
    let mut s = sim();
    let e = srv
        .block_on(engine.collective_erase(
            Handset {
                sim: Some(&mut s),
                terminal: &mut t,
                ui: &mut ui,
            },
            &mut [&mut contacts as &mut dyn DataStore],
        ))
        .expect_err("refused");
    assert!(
        matches!(e, EraseError::Upload(ClientError::Transport(_))),
        "{e:?}"
    );
    assert_eq!(contacts.contents(), vec![card("Ann")], "nothing wiped");
    assert_eq!(contacts.pending(), 1);
    assert!(!ui
        .notices
        .iter()
        .any(|n| matches!(n, Notice::Erased { .. })));
}

#[test]
fn erase_wipes_nothing_when_the_server_refuses_a_store() {
    let srv = start();
    let mut h = Handheld::new(&srv, ID, "pw", TriggerConfig::default());
    srv.store
        .transaction(|tx| tx.terminal_set_classes(SUBSCRIBER, ID, &["contacts".to_string()]))
        .expect("classes");
    let mut s = sim();
    h.contacts.add(card("Ann"));
    h.calendar.add(event("Dentist"));
    let e = erase(&srv, &mut h, &mut s).expect_err("refused");
    match e {
        EraseError::NotConfirmed { store, .. } => assert_eq!(store, "./calendar"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.contacts.contents(),
        vec![card("Ann")],
        "contacts kept too"
    );
    assert_eq!(h.calendar.contents(), vec![event("Dentist")]);
    assert_eq!(h.calendar.pending(), 1);
}

#[test]
fn erase_refused_by_the_gate_sends_nothing_and_wipes_nothing() {
    let srv = start();
    let mut h = Handheld::new(&srv, ID, "pw", TriggerConfig::default());
    let mut s = sim();
    fig20(&mut h, &mut s);
    h.contacts.add(card("Ann"));
    // Someone else's SIM in this handset (S83 no, S87).
    let mut other = MemorySim::new("001019999999999", PIN);
    let e = erase(&srv, &mut h, &mut other).expect_err("refused");
    assert_eq!(
        e,
        EraseError::Upload(ClientError::Refused(GateRefusal::SubscriberMismatch))
    );
    assert_eq!(h.requests(), 0);
    assert_eq!(h.contacts.contents(), vec![card("Ann")]);
}

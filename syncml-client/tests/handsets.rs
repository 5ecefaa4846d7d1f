//! Several handsets of one subscriber, the gates, multi-message packages, WBXML and
//! cached maps: all against our real server over HTTP with a real SQLite file.

mod common;

use std::sync::atomic::AtomicUsize;

use common::{card, sim, start, start_with, Failing, Phone, Server, PIN, SUBSCRIBER};
use syncml_client::mem::{MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::{
    gate, ClientError, Counting, DataStore, Engine, EngineConfig, GatePolicy, GateRefusal, Handset,
    HttpTransport, Notice, SyncMode, Terminal as _,
};
use syncml_core::Encoding;

fn contacts(srv: &Server) -> Vec<String> {
    srv.items(SUBSCRIBER, "contacts")
}

#[test]
fn two_handsets_of_one_subscriber_converge_through_the_server() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "pw-a");
    let mut b = Phone::new(&srv, "IMEI:100000000000002", "pw-b");
    let mut s = sim();

    let ann = a.contacts.add(card("Ann"));
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("a slow");
    let r = b
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("b slow");
    assert_eq!(r.stores[0].received.added, 1);
    let bob = b.contacts.add(card("Bob"));
    b.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("b up");
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("a down");
    assert_eq!((r.sent(), r.received()), (0, 1), "a gets exactly Bob");
    assert_eq!(a.contacts.contents(), b.contacts.contents());

    // b deletes Ann, a edits Bob; each change crosses over.
    let b_ann = b.contacts.find(card("Ann").as_bytes()).expect("ann on b");
    b.contacts.delete(&b_ann);
    let a_bob = a.contacts.find(card("Bob").as_bytes()).expect("bob on a");
    a.contacts.update(&a_bob, card("Bob 2"));
    b.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("b");
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("a");
    let r = b
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("b again");
    assert_eq!(r.stores[0].received.replaced, 1);
    assert!(a.contacts.get(&ann).is_none(), "Ann deleted on a");
    assert_eq!(b.contacts.get(&bob), Some(card("Bob 2").as_bytes()));
    assert_eq!(a.contacts.contents(), vec![card("Bob 2")]);
    assert_eq!(b.contacts.contents(), vec![card("Bob 2")]);
    assert_eq!(contacts(&srv), vec![card("Bob 2")]);
}

/// One refused-gate scenario.
struct Case {
    policy: GatePolicy,
    pin: &'static str,
    pw: &'static str,
    setup: fn(&mut MemoryTerminal),
    with_sim: bool,
    want: GateRefusal,
}

impl Case {
    fn new(
        policy: GatePolicy,
        pin: &'static str,
        pw: &'static str,
        setup: fn(&mut MemoryTerminal),
        want: GateRefusal,
    ) -> Case {
        Case {
            policy,
            pin,
            pw,
            setup,
            with_sim: true,
            want,
        }
    }

    fn without_sim(mut self) -> Case {
        self.with_sim = false;
        self
    }
}

/// Every gate that says no: an error saying why, a notice, and not one request.
#[test]
fn a_refused_gate_sends_nothing() {
    let srv = start();
    let id = "IMEI:100000000000001";
    let none = |_: &mut MemoryTerminal| {};
    let cases: Vec<Case> = vec![
        Case::new(GatePolicy::FIG9, PIN, "pw", none, GateRefusal::NoSim).without_sim(),
        Case::new(
            GatePolicy::FIG9,
            "0000",
            "pw",
            none,
            GateRefusal::PinBlocked,
        ),
        Case::new(
            GatePolicy::FIG9,
            PIN,
            "nope",
            none,
            GateRefusal::PasswordWrong,
        ),
        Case::new(
            GatePolicy::FIG10B,
            PIN,
            "pw",
            none,
            GateRefusal::SubscriberNotRegistered,
        ),
        Case::new(
            GatePolicy::FIG10B,
            PIN,
            "pw",
            |t| t.register_subscriber_id("001019999999999"),
            GateRefusal::SubscriberMismatch,
        ),
        Case::new(
            GatePolicy::FIG11B,
            PIN,
            "pw",
            none,
            GateRefusal::TerminalNotListed,
        ),
        Case::new(
            GatePolicy::FIG12,
            PIN,
            "nope",
            |t| t.register_subscriber_id(SUBSCRIBER),
            GateRefusal::PasswordWrong,
        ),
    ];
    for Case {
        policy,
        pin,
        pw,
        setup,
        with_sim,
        want,
    } in cases
    {
        let mut phone = Phone::new(&srv, id, "pw").with_policy(policy);
        phone.ui = ScriptedUi::answering(pin, pw);
        phone.contacts.add(card("Ann"));
        let mut s = sim();
        setup(&mut phone.terminal);
        let e = phone
            .sync(&srv, with_sim.then_some(&mut s), SyncMode::TwoWay)
            .expect_err("refused");
        assert_eq!(e, ClientError::Refused(want.clone()), "{policy:?}");
        assert_eq!(
            phone.requests(),
            0,
            "{want:?}: no request reached the server"
        );
        assert!(phone
            .ui
            .notices
            .contains(&syncml_client::Notice::Refused(want)));
        assert_eq!(phone.contacts.pending(), 1);
    }
    // A cancelled PIN prompt, too.
    let mut phone = Phone::new(&srv, id, "pw");
    phone.ui.pins = vec![None];
    let mut s = sim();
    let e = phone
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect_err("cancelled");
    assert_eq!(e, ClientError::Refused(GateRefusal::PinCancelled));
    assert_eq!(phone.requests(), 0);
    assert!(contacts(&srv).is_empty());
    assert_eq!(
        srv.audit_count(401) + srv.audit_count(212),
        0,
        "the server never heard of us"
    );
}

#[test]
fn registration_then_gates_pass_and_sync() {
    let srv = start();
    let mut phone = Phone::new(&srv, "IMEI:100000000000001", "pw").with_policy(GatePolicy::ALL);
    let mut s = sim();
    gate::register_subscriber_in_terminal(&mut s, &mut phone.terminal, &mut phone.ui)
        .expect("10-A");
    gate::register_terminal_on_sim(&mut s, &mut phone.terminal, &mut phone.ui).expect("11-A");
    phone.contacts.add(card("Ann"));
    let r = phone
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("sync");
    assert!(r.is_success());
    assert_eq!(contacts(&srv), vec![card("Ann")]);
    assert!(phone.ui.notices.contains(&Notice::SyncCompleted {
        sent: 1,
        received: 0
    }));
}

#[test]
fn packages_span_several_messages_both_ways() {
    let mut cfg = syncml_server::session::EngineConfig::default();
    cfg.max_msg_size = 4096;
    let srv = start_with(cfg);
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "pw-a");
    a.engine.config_mut().max_msg_size = 4096;
    let mut s = sim();
    for i in 0..40 {
        a.contacts.add(card(&format!(
            "Person {i:02} with a longer name to take some room"
        )));
    }
    let r = a
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("upload");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.stores[0].sent.total(), 40);
    assert!(
        r.messages_sent > 4,
        "package 3 was split: {} messages",
        r.messages_sent
    );
    assert_eq!(contacts(&srv).len(), 40);
    assert_eq!(a.contacts.pending(), 0);

    // A second handset downloads the 40 over several server messages (Alert 222).
    let mut b = Phone::new(&srv, "IMEI:100000000000002", "pw-b");
    b.engine.config_mut().max_msg_size = 4096;
    let r = b
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("download");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.stores[0].received.added, 40);
    assert!(
        r.messages_sent > 4,
        "package 4 spanned messages: {}",
        r.messages_sent
    );
    assert_eq!(b.contacts.contents(), a.contacts.contents());
    assert_eq!(r.stores[0].maps_acknowledged, 40);
    let r = b.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("quiet");
    assert_eq!((r.sent(), r.received()), (0, 0));
}

#[test]
fn wbxml_sessions_work_too() {
    let srv = start();
    let mut a = Phone::new(&srv, "IMEI:100000000000001", "pw-a");
    a.engine.config_mut().encoding = Encoding::Wbxml;
    let mut s = sim();
    a.contacts.add(card("Ann"));
    a.contacts.add(vec![0xffu8, 0x00, 0x80, b'x']); // not UTF-8: opaque in WBXML
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("wbxml");
    assert_eq!(contacts(&srv).len(), 2);
    let mut b = Phone::new(&srv, "IMEI:100000000000002", "pw-b");
    let r = b
        .sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("xml peer");
    assert_eq!(r.stores[0].received.added, 2);
    assert!(
        b.contacts.find(&[0xff, 0x00, 0x80, b'x']).is_some(),
        "binary survives XML (b64)"
    );
}

#[test]
fn maps_not_acknowledged_are_cached_and_resent() {
    let srv = start();
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "pw");
    let transport = Counting::new(Failing {
        inner: HttpTransport::new(),
        fail: vec![6], // package 5 (the Map) of the second session never arrives
        n: AtomicUsize::new(0),
    });
    let count = transport.counter();
    let mut engine = Engine::new(EngineConfig::new(srv.url.clone()), transport);
    let mut t = MemoryTerminal::new("IMEI:100000000000001", "pw");
    let mut ui = ScriptedUi::answering(PIN, "pw");
    let mut store = MemoryStore::contacts();
    let mut s = sim();
    let mut run = |store: &mut MemoryStore, mode| {
        srv.block_on(engine.sync(
            Handset {
                sim: Some(&mut s),
                terminal: &mut t,
                ui: &mut ui,
            },
            &mut [store as &mut dyn DataStore],
            &[mode],
        ))
    };
    run(&mut store, SyncMode::TwoWay).expect("first sync sets the anchors");
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    let e = run(&mut store, SyncMode::TwoWay).expect_err("package 5 lost");
    assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
    assert_eq!(store.contents(), vec![card("Srv")], "the Add was applied");
    assert_eq!(store.state().pending_maps.len(), 1, "its map is cached");

    // Next session: anchors did not move on either side, so the server would resend the
    // Add; the cached Map goes first, so it arrives as a Replace of the mapped item.
    let r = run(&mut store, SyncMode::TwoWay).expect("third");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.stores[0].mode, Some(SyncMode::TwoWay));
    assert_eq!(store.contents(), vec![card("Srv")], "no duplicate");
    assert!(
        store.state().pending_maps.is_empty(),
        "the cached map was acknowledged"
    );
    assert_eq!(r.stores[0].maps_acknowledged, 1);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 9);
}

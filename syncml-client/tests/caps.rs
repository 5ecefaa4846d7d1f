//! Caps on one session (FIG. 21, para. 0085; `syncml_client::budget`): a capped session
//! stops cleanly, nothing is lost, and a later session moves the rest. Against our real
//! server over HTTP.

mod common;

use common::{card, now, sim, start, start_with, Handheld, Server, SUBSCRIBER};
use syncml_client::mem::MemorySim;
use syncml_client::policy::TriggerConfig;
use syncml_client::{Budget, CutShort, DataStore, Handset, SessionReport, SyncMode};
use syncml_server::store::StoreExt;

fn server(srv: &Server) -> Vec<String> {
    srv.items(SUBSCRIBER, "contacts")
}

/// A server whose messages are at most 4 KiB, so a package spans several messages.
fn small_message_server() -> Server {
    let mut cfg = syncml_server::session::EngineConfig::default();
    cfg.max_msg_size = 4096;
    start_with(cfg)
}

fn handheld(srv: &Server, id: &str, max_msg: Option<u64>) -> Handheld {
    let mut h = Handheld::new(srv, id, "pw", TriggerConfig::new(["./contacts"]));
    if let Some(m) = max_msg {
        h.engine.config_mut().max_msg_size = m;
    }
    h
}

/// One session of the contacts store under `budget`.
fn capped(
    srv: &Server,
    h: &mut Handheld,
    s: &mut MemorySim,
    mode: SyncMode,
    budget: Budget,
) -> SessionReport {
    let Handheld {
        terminal,
        ui,
        contacts,
        engine,
        ..
    } = h;
    let r = srv
        .block_on(engine.sync_with_budget(
            Handset {
                sim: Some(s),
                terminal,
                ui,
            },
            &mut [contacts as &mut dyn DataStore],
            &[mode],
            budget,
        ))
        .expect("capped session");
    assert!(r.is_success(), "{r:?}");
    r
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            card(&format!(
                "{prefix} {i:02} with a longer name to take some room"
            ))
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn upload_byte_cap_leaves_the_rest_pending_and_the_next_sessions_send_it() {
    let srv = start();
    let mut h = handheld(&srv, "IMEI:200000000000001", None);
    let mut s = sim();
    capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    let cards = names("Up", 10);
    for c in &cards {
        h.contacts.add(c.clone());
    }
    let per_item = cards[0].len() as u64;
    let budget = Budget {
        upload_bytes: Some(3 * per_item),
        ..Budget::UNLIMITED
    };
    let mut sessions = 0;
    while h.contacts.pending() > 0 {
        let before = h.contacts.pending();
        let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
        sessions += 1;
        assert_eq!(r.stores[0].mode, Some(SyncMode::TwoWay));
        assert_eq!(r.sent(), before.min(3), "three items fit the budget");
        assert_eq!(r.stores[0].unsent, before - r.sent());
        assert_eq!(
            h.contacts.pending(),
            before - r.sent(),
            "the rest stays pending"
        );
        let want_cut = (before > 3).then_some(CutShort::UploadBytes);
        assert_eq!(r.cut_short, want_cut);
        assert_eq!(
            server(&srv).len(),
            10 - h.contacts.pending(),
            "no loss, no dup"
        );
        assert!(sessions < 10);
    }
    assert_eq!(sessions, 4);
    assert_eq!(server(&srv), sorted(cards));
}

#[test]
fn upload_byte_cap_always_lets_the_first_change_through() {
    let srv = start();
    let mut h = handheld(&srv, "IMEI:200000000000001", None);
    let mut s = sim();
    capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    h.contacts.add(card("Big"));
    h.contacts.add(card("Bigger"));
    let budget = Budget {
        upload_bytes: Some(1),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::OneWayFromClient, budget);
    assert_eq!(r.sent(), 1, "progress even when one item exceeds the cap");
    assert_eq!(h.contacts.pending(), 1);
    assert_eq!(server(&srv).len(), 1);
}

#[test]
fn upload_time_cap_ends_package_3_early_and_the_rest_follows() {
    let srv = small_message_server();
    let mut h = handheld(&srv, "IMEI:200000000000001", Some(4096));
    let mut s = sim();
    capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    let cards = names("Slow", 40);
    for c in &cards {
        h.contacts.add(c.clone());
    }
    // Every reading of the clock moves it 10 s on: each message takes 10 s.
    h.clock.step_each_reading(10);
    let budget = Budget {
        upload_secs: Some(15),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
    assert_eq!(r.cut_short, Some(CutShort::UploadTime));
    let sent = r.sent();
    assert!(
        sent > 0 && sent < 40,
        "one message of package 3 went: {sent}"
    );
    assert_eq!(r.stores[0].unsent, 40 - sent);
    assert_eq!(h.contacts.pending(), 40 - sent, "the rest stays pending");
    assert_eq!(server(&srv).len(), sent);

    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!(r.cut_short, None);
    assert_eq!(
        r.sent(),
        40 - sent,
        "the next session sends exactly the rest"
    );
    assert_eq!(h.contacts.pending(), 0);
    assert_eq!(server(&srv), sorted(cards));
}

/// A handset with anchors, a local card and 40 new server items to download over
/// several messages.
fn download_setup(srv: &Server) -> (Handheld, MemorySim, Vec<String>) {
    let mut h = handheld(srv, "IMEI:200000000000002", Some(4096));
    let mut s = sim();
    capped(srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    let cards = names("Down", 40);
    for c in &cards {
        srv.operator_put(SUBSCRIBER, "contacts", None, c);
    }
    h.contacts.add(card("Local"));
    (h, s, cards)
}

/// The session after a cut-short download: uncapped, it brings the rest and only the
/// rest (the server remembers what the suspended session delivered).
fn finish_download(srv: &Server, h: &mut Handheld, s: &mut MemorySim, got: usize) {
    let r = capped(srv, h, s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!(r.cut_short, None);
    assert_eq!(
        r.sent(),
        0,
        "the local card was acknowledged before the suspend"
    );
    assert_eq!(r.stores[0].received.added, 40 - got);
    assert_eq!(
        r.stores[0].received.replaced, 0,
        "what the suspended session delivered is not sent again"
    );
    assert_eq!(
        h.contacts.contents(),
        server(srv),
        "nothing lost, no duplicate"
    );
    assert_eq!(h.contacts.contents().len(), 41);
    let r = capped(srv, h, s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!((r.sent(), r.received()), (0, 0));
}

#[test]
fn download_byte_cap_suspends_and_the_next_session_finishes() {
    let srv = small_message_server();
    let (mut h, mut s, _) = download_setup(&srv);
    let budget = Budget {
        download_bytes: Some(500),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
    assert_eq!(r.cut_short, Some(CutShort::DownloadBytes));
    let got = r.received();
    assert!(
        got > 0 && got < 40,
        "stopped after the first message: {got}"
    );
    assert_eq!(r.stores[0].server_changes, Some(40));
    assert_eq!(
        r.server_changes_left(),
        vec![("./contacts".to_string(), 40 - got)]
    );
    assert_eq!(h.contacts.contents().len(), 1 + got);
    assert_eq!(
        h.contacts.pending(),
        0,
        "the server acknowledged the local card"
    );
    assert_eq!(h.contacts.state().pending_maps.len(), got, "maps kept");
    assert_eq!(server(&srv).len(), 41);
    assert_eq!(
        h.contacts.state().suspended,
        Some(SyncMode::TwoWay),
        "the next session resumes"
    );
    let held = |srv: &Server| {
        srv.store
            .read(|tx| {
                tx.session_load(
                    &format!("suspended.{SUBSCRIBER}.IMEI:200000000000002"),
                    now_ts(),
                )
            })
            .expect("read")
            .is_some()
    };
    assert!(held(&srv), "the server keeps the suspended session");
    finish_download(&srv, &mut h, &mut s, got);
    assert_eq!(h.contacts.state().suspended, None);
    assert!(!held(&srv), "Alert 225 took the suspended session back");
}

/// Para. 0085: a download cap smaller than what the server holds. Every session is
/// capped alike, and still each one moves the download on (the resumed session sends
/// only what the client has not acknowledged), until everything is there: nothing lost,
/// nothing twice.
#[test]
fn equally_capped_sessions_progress_until_the_download_is_complete() {
    let srv = small_message_server();
    let (mut h, mut s, _) = download_setup(&srv);
    let budget = Budget {
        download_bytes: Some(500),
        ..Budget::UNLIMITED
    };
    let mut sessions = 0;
    let mut received = 0;
    loop {
        sessions += 1;
        assert!(sessions <= 40, "the download does not progress");
        let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
        assert!(r.received() > 0, "session {sessions} received nothing");
        assert_eq!(r.stores[0].received.replaced, 0, "nothing sent twice");
        received += r.received();
        if r.cut_short.is_none() {
            break;
        }
    }
    assert!(sessions > 1, "the cap cut the first session short");
    assert_eq!(received, 40, "each server item arrived exactly once");
    assert_eq!(
        h.contacts.contents(),
        server(&srv),
        "nothing lost, no duplicate"
    );
    assert_eq!(h.contacts.contents().len(), 41);
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!((r.sent(), r.received()), (0, 0));
}

fn now_ts() -> syncml_server::store::Timestamp {
    syncml_server::store::Timestamp::from_unix_secs(now())
}

#[test]
fn download_time_cap_suspends_and_the_next_session_finishes() {
    let srv = small_message_server();
    let (mut h, mut s, _) = download_setup(&srv);
    h.clock.step_each_reading(10);
    let budget = Budget {
        download_secs: Some(5),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
    assert_eq!(r.cut_short, Some(CutShort::DownloadTime));
    let got = r.received();
    assert!(
        got > 0 && got < 40,
        "stopped after the first message: {got}"
    );
    h.clock.step_each_reading(0);
    finish_download(&srv, &mut h, &mut s, got);
}

#[test]
fn total_byte_cap_counts_both_directions() {
    let srv = small_message_server();
    let (mut h, mut s, _) = download_setup(&srv);
    // The upload of the local card uses up the whole budget: the download stops at
    // the first message.
    let budget = Budget {
        total_bytes: Some(card("Local").len() as u64),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
    assert_eq!(r.sent(), 1);
    assert_eq!(r.cut_short, Some(CutShort::DownloadBytes));
    let got = r.received();
    assert!(got < 40);
    finish_download(&srv, &mut h, &mut s, got);
}

#[test]
fn probe_applies_nothing_and_counts_the_servers_changes() {
    let srv = start();
    let mut h = handheld(&srv, "IMEI:200000000000003", None);
    let mut s = sim();
    capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    for c in names("Probe", 5) {
        srv.operator_put(SUBSCRIBER, "contacts", None, &c);
    }
    let r = capped(
        &srv,
        &mut h,
        &mut s,
        SyncMode::OneWayFromServer,
        Budget::probe(),
    );
    assert_eq!(r.cut_short, Some(CutShort::Probe));
    assert_eq!(r.received(), 0);
    assert!(h.contacts.contents().is_empty(), "nothing applied");
    assert_eq!(r.server_changes_left(), vec![("./contacts".to_string(), 5)]);
    let r = capped(
        &srv,
        &mut h,
        &mut s,
        SyncMode::OneWayFromServer,
        Budget::UNLIMITED,
    );
    assert_eq!(r.stores[0].mode, Some(SyncMode::OneWayFromServer));
    assert_eq!(r.received(), 5);
    assert_eq!(h.contacts.contents(), server(&srv));
}

#[test]
fn upload_time_cap_never_cuts_a_slow_sync() {
    let srv = small_message_server();
    let mut h = handheld(&srv, "IMEI:200000000000004", Some(4096));
    let mut s = sim();
    let cards = names("First", 40);
    for c in &cards {
        h.contacts.add(c.clone());
    }
    h.clock.step_each_reading(10);
    let budget = Budget {
        upload_secs: Some(15),
        ..Budget::UNLIMITED
    };
    // No anchors yet: a slow sync, which must send every item.
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, budget);
    assert_eq!(r.stores[0].mode, Some(SyncMode::Slow));
    assert_eq!(r.cut_short, None);
    assert_eq!(r.sent(), 40);
    assert_eq!(h.contacts.pending(), 0);
    assert_eq!(server(&srv), sorted(cards));
}

#[test]
fn probe_sends_nothing_even_when_the_server_asks_for_a_slow_sync() {
    let srv = start();
    let mut h = handheld(&srv, "IMEI:200000000000005", None);
    let mut s = sim();
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    h.contacts.add(card("Mine"));
    // No anchors: the server answers 508 and a slow sync.
    let r = capped(
        &srv,
        &mut h,
        &mut s,
        SyncMode::OneWayFromServer,
        Budget::probe(),
    );
    assert_eq!(r.stores[0].mode, Some(SyncMode::Slow));
    assert_eq!(r.cut_short, Some(CutShort::Probe));
    assert_eq!((r.sent(), r.received()), (0, 0));
    assert_eq!(r.server_changes_left(), vec![("./contacts".to_string(), 1)]);
    assert_eq!(server(&srv), vec![card("Srv")], "nothing uploaded");
    assert_eq!(h.contacts.pending(), 1);
}

#[test]
fn a_refresh_from_server_cut_short_makes_the_next_sync_slow() {
    let srv = small_message_server();
    let (mut h, mut s, _) = download_setup(&srv);
    capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!(h.contacts.contents().len(), 41);
    let budget = Budget {
        download_bytes: Some(500),
        ..Budget::UNLIMITED
    };
    let r = capped(&srv, &mut h, &mut s, SyncMode::RefreshFromServer, budget);
    assert_eq!(r.cut_short, Some(CutShort::DownloadBytes));
    let got = r.received();
    assert!(got > 0 && got < 41, "{got}");
    assert_eq!(
        h.contacts.contents().len(),
        got,
        "erased, then partly refilled"
    );
    assert_eq!(h.contacts.state().last_anchor, None, "anchors dropped");
    let r = capped(&srv, &mut h, &mut s, SyncMode::TwoWay, Budget::UNLIMITED);
    assert_eq!(r.stores[0].mode, Some(SyncMode::Slow));
    assert_eq!(
        h.contacts.contents(),
        server(&srv),
        "nothing lost, no duplicate"
    );
    assert_eq!(server(&srv).len(), 41);
}

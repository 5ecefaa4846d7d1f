//! The trigger policy run by the executor against our real server over HTTP: each
//! trigger of para. 0042-0044 and FIG. 21-22 starts exactly the sync it should, and the
//! cases that must not sync send no request.

mod common;

use common::{card, event, only_run, sim, start, Handheld, Server, SUBSCRIBER};
use syncml_client::policy::{Event, IdleSync, Reason, TriggerConfig};
use syncml_client::{Budget, ClientError, CutShort, GateRefusal, Notice, SyncMode};

const C: &str = "./contacts";
const K: &str = "./calendar";

fn cfg() -> TriggerConfig {
    TriggerConfig::new([C, K])
}

fn contacts(srv: &Server) -> Vec<String> {
    srv.items(SUBSCRIBER, "contacts")
}

fn update(store: &str, bytes: usize) -> Event {
    Event::LocalUpdate {
        store: store.into(),
        bytes: bytes as u64,
    }
}

/// Adds a card on the handset and tells the policy.
fn edit(
    srv: &Server,
    h: &mut Handheld,
    s: Option<&mut syncml_client::mem::MemorySim>,
    name: &str,
) -> usize {
    let c = card(name);
    h.contacts.add(c.clone());
    let before = h.requests();
    let runs = h.event(srv, s, update(C, c.len()));
    for (_, r) in &runs {
        r.as_ref().expect("sync");
    }
    h.requests() - before
}

#[test]
fn a1_sim_removal_directive_uploads_the_updates() {
    let srv = start();
    let mut c = cfg();
    c.upload_on_sim_removal = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    assert!(h.event(&srv, Some(&mut s), Event::SimInserted).is_empty());
    assert_eq!(edit(&srv, &mut h, Some(&mut s), "Ann"), 0, "no upload yet");
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::SimRemoving));
    assert_eq!(plan.reason, Reason::SimRemoval);
    let r = r.expect("upload");
    assert_eq!(r.received(), 0, "upload only");
    assert_eq!(contacts(&srv), vec![card("Ann")]);
    assert_eq!(h.contacts.pending(), 0);
    let n = h.requests();
    assert!(h.event(&srv, Some(&mut s), Event::SimRemoving).is_empty());
    assert_eq!(h.requests(), n, "nothing pending: no request");
}

#[test]
fn a2_periodic_upload_on_the_interval() {
    let srv = start();
    let mut c = cfg();
    c.upload_every = Some(600);
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    edit(&srv, &mut h, Some(&mut s), "Ann");
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::Tick));
    assert_eq!(plan.reason, Reason::Periodic);
    r.expect("upload");
    assert_eq!(contacts(&srv), vec![card("Ann")]);
    edit(&srv, &mut h, Some(&mut s), "Bob");
    h.clock.advance(300);
    let n = h.requests();
    assert!(h.event(&srv, Some(&mut s), Event::Tick).is_empty());
    assert_eq!(h.requests(), n, "too early: no request");
    h.clock.advance(300);
    let (plan, _) = only_run(h.event(&srv, Some(&mut s), Event::Tick));
    assert_eq!(plan.reason, Reason::Periodic);
    assert_eq!(contacts(&srv).len(), 2);
}

#[test]
fn a3_each_update_is_uploaded() {
    let srv = start();
    let mut c = cfg();
    c.upload_on_update = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    assert!(edit(&srv, &mut h, Some(&mut s), "Ann") > 0);
    assert_eq!(contacts(&srv), vec![card("Ann")]);
    assert!(edit(&srv, &mut h, Some(&mut s), "Bob") > 0);
    assert_eq!(contacts(&srv).len(), 2);
    assert_eq!(h.contacts.pending(), 0);
}

#[test]
fn a4_upload_when_the_update_amount_passes_the_threshold() {
    let srv = start();
    let mut c = cfg();
    c.upload_threshold = Some(2 * card("Ann").len() as u64);
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    assert_eq!(
        edit(&srv, &mut h, Some(&mut s), "Ann"),
        0,
        "under the threshold"
    );
    assert!(contacts(&srv).is_empty());
    assert!(edit(&srv, &mut h, Some(&mut s), "Bob") > 0);
    assert_eq!(contacts(&srv).len(), 2);
}

#[test]
fn a5_user_request_syncs_two_way_and_without_sim_sends_nothing() {
    let srv = start();
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", cfg());
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    let mut s = sim();
    h.contacts.add(card("Ann"));
    assert!(h
        .event(&srv, None, Event::UserRequest { stores: vec![] })
        .is_empty());
    assert_eq!(h.requests(), 0, "no SIM: no request");
    assert!(h.ui.notices.contains(&Notice::Refused(GateRefusal::NoSim)));
    assert!(h.event(&srv, Some(&mut s), Event::SimInserted).is_empty());
    let (plan, r) = only_run(h.event(
        &srv,
        Some(&mut s),
        Event::UserRequest {
            stores: vec![C.into()],
        },
    ));
    assert_eq!(plan.reason, Reason::User);
    assert_eq!(plan.stores, vec![(C.to_string(), SyncMode::TwoWay)]);
    let r = r.expect("two-way");
    assert_eq!((r.sent(), r.received()), (1, 1));
    let mut want = vec![card("Ann"), card("Srv")];
    want.sort();
    assert_eq!(h.contacts.contents(), want);
}

#[test]
fn permission_refused_sends_nothing_and_keeps_the_updates() {
    let srv = start();
    let mut c = cfg();
    c.upload_on_update = true;
    c.ask_permission = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    h.ui.permit = false;
    h.contacts.add(card("Ann"));
    let (_, r) = only_run(h.event(&srv, Some(&mut s), update(C, 10)));
    assert_eq!(
        r.expect_err("refused"),
        ClientError::Refused(GateRefusal::PermissionDenied)
    );
    assert_eq!(h.requests(), 0);
    assert!(h.ui.asked.contains(&"permission"));
    assert!(h
        .ui
        .notices
        .contains(&Notice::Refused(GateRefusal::PermissionDenied)));
    assert_eq!(h.contacts.pending(), 1);
    h.ui.permit = true;
    h.contacts.add(card("Bob"));
    let (_, r) = only_run(h.event(&srv, Some(&mut s), update(C, 10)));
    assert_eq!(r.expect("permitted").sent(), 2);
    assert_eq!(contacts(&srv).len(), 2);
}

#[test]
fn insertion_downloads_once() {
    let srv = start();
    let mut c = cfg();
    c.download_on_insertion = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    srv.operator_put(SUBSCRIBER, "calendar", None, &event("Meeting"));
    let mut s = sim();
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::SimInserted));
    assert_eq!(plan.reason, Reason::Insertion);
    let r = r.expect("download");
    assert_eq!((r.sent(), r.received()), (0, 2));
    assert_eq!(h.contacts.contents(), vec![card("Srv")]);
    assert_eq!(h.calendar.contents(), vec![event("Meeting")]);
    let n = h.requests();
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Later"));
    for e in [Event::Tick, Event::FirstAccess { store: C.into() }] {
        assert!(h.event(&srv, Some(&mut s), e).is_empty());
    }
    assert_eq!(h.requests(), n, "once per insertion");
    h.event(&srv, Some(&mut s), Event::SimRemoved);
    let (_, r) = only_run(h.event(&srv, Some(&mut s), Event::SimInserted));
    assert_eq!(r.expect("next insertion").received(), 1);
}

#[test]
fn first_access_downloads_only_that_class_once() {
    let srv = start();
    let mut c = cfg();
    c.download_on_first_access = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    srv.operator_put(SUBSCRIBER, "calendar", None, &event("Meeting"));
    let mut s = sim();
    assert!(h.event(&srv, Some(&mut s), Event::SimInserted).is_empty());
    assert_eq!(h.requests(), 0);
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::FirstAccess { store: K.into() }));
    assert_eq!(
        plan.stores,
        vec![(K.to_string(), SyncMode::OneWayFromServer)]
    );
    let r = r.expect("download");
    assert_eq!(r.stores.len(), 1, "one class only");
    assert_eq!(h.calendar.contents(), vec![event("Meeting")]);
    assert!(h.contacts.contents().is_empty());
    let n = h.requests();
    assert!(h
        .event(&srv, Some(&mut s), Event::FirstAccess { store: K.into() })
        .is_empty());
    assert_eq!(h.requests(), n, "once");
    only_run(h.event(&srv, Some(&mut s), Event::FirstAccess { store: C.into() }))
        .1
        .expect("contacts");
    assert_eq!(h.contacts.contents(), vec![card("Srv")]);
}

#[test]
fn check_at_insertion_tells_the_user_of_server_updates() {
    let srv = start();
    let mut c = cfg();
    c.check_on_insertion = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("anchors");
    for n in ["A", "B", "C"] {
        srv.operator_put(SUBSCRIBER, "contacts", None, &card(n));
    }
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::SimInserted));
    assert_eq!(plan.reason, Reason::Check);
    assert_eq!(r.expect("probe").cut_short, Some(CutShort::Probe));
    assert!(h.contacts.contents().is_empty(), "nothing downloaded");
    assert!(h.ui.notices.contains(&Notice::ServerUpdatesPending {
        store: C.into(),
        count: 3
    }));
    assert!(!h
        .ui
        .notices
        .iter()
        .any(|n| matches!(n, Notice::ServerUpdatesPending { store, .. } if store == K)));
    assert_eq!(h.policy.server_pending(C), 3);
}

#[test]
fn idle_sync_waits_for_idle_and_runs_under_its_caps() {
    let srv = start();
    let per = card("Person 00").len() as u64;
    let mut c = cfg();
    c.idle = Some(IdleSync {
        interval: 300,
        budget: Budget {
            upload_bytes: Some(2 * per),
            ..Budget::UNLIMITED
        },
    });
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    h.sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("anchors");
    for i in 0..5 {
        h.contacts.add(card(&format!("Person {i:02}")));
    }
    let n = h.requests();
    assert!(h.event(&srv, Some(&mut s), Event::Tick).is_empty(), "busy");
    assert_eq!(h.requests(), n);
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::IdleStart));
    assert_eq!(plan.reason, Reason::Idle);
    let r = r.expect("idle sync");
    assert_eq!(r.cut_short, Some(CutShort::UploadBytes));
    assert_eq!(r.sent(), 2);
    assert_eq!(contacts(&srv).len(), 2);
    assert!(h.ui.notices.contains(&Notice::LocalUpdatesPending {
        store: C.into(),
        count: 3
    }));
    // Still idle; after the interval the next capped sync continues.
    h.clock.advance(300);
    let (_, r) = only_run(h.event(&srv, Some(&mut s), Event::Tick));
    assert_eq!(r.expect("second").sent(), 2);
    h.clock.advance(300);
    let (_, r) = only_run(h.event(&srv, Some(&mut s), Event::Tick));
    assert_eq!(r.expect("third").sent(), 1);
    assert_eq!(contacts(&srv), h.contacts.contents());
    assert_eq!(h.contacts.pending(), 0);
}

#[test]
fn low_battery_uploads_only_and_the_next_insertion_downloads() {
    let srv = start();
    let mut c = cfg();
    c.low_battery_upload = true;
    c.download_on_insertion = true;
    let mut a = Handheld::new(&srv, "IMEI:300000000000001", "pw-a", c.clone());
    let mut b = Handheld::new(&srv, "IMEI:300000000000002", "pw-b", c);
    let mut s = sim();
    only_run(a.event(&srv, Some(&mut s), Event::SimInserted))
        .1
        .expect("download");
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    a.contacts.add(card("Ann"));
    a.event(&srv, Some(&mut s), update(C, 10));
    let (plan, r) = only_run(a.event(&srv, Some(&mut s), Event::BatteryLow));
    assert_eq!(plan.reason, Reason::LowBattery);
    let r = r.expect("upload");
    assert_eq!(r.stores.len(), 1, "only the store with updates");
    assert_eq!(r.stores[0].mode, Some(SyncMode::OneWayFromClient));
    assert_eq!(r.received(), 0, "no download on a low battery");
    assert_eq!(a.contacts.contents(), vec![card("Ann")]);
    assert_eq!(contacts(&srv).len(), 2);
    // The user moves the SIM to b: a's update is there at once (para. 0088).
    a.event(&srv, None, Event::SimRemoved);
    only_run(b.event(&srv, Some(&mut s), Event::SimInserted))
        .1
        .expect("b");
    let mut want = vec![card("Ann"), card("Srv")];
    want.sort();
    assert_eq!(b.contacts.contents(), want);
    b.event(&srv, None, Event::SimRemoved);
    // Back on a, battery recharged: the download skipped on low battery runs.
    a.event(&srv, None, Event::BatteryOk);
    let (plan, r) = only_run(a.event(&srv, Some(&mut s), Event::SimInserted));
    assert_eq!(plan.reason, Reason::Insertion);
    assert_eq!(r.expect("download").received(), 1);
    assert_eq!(a.contacts.contents(), want);
}

#[test]
fn low_battery_at_insertion_defers_the_download() {
    let srv = start();
    let mut c = cfg();
    c.low_battery_upload = true;
    c.download_on_insertion = true;
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    srv.operator_put(SUBSCRIBER, "contacts", None, &card("Srv"));
    let mut s = sim();
    h.event(&srv, None, Event::BatteryLow);
    assert!(h.event(&srv, Some(&mut s), Event::SimInserted).is_empty());
    assert_eq!(
        h.requests(),
        0,
        "nothing to upload, no download: no request"
    );
    assert!(h.policy.download_owed());
    h.event(&srv, Some(&mut s), Event::BatteryOk);
    h.event(&srv, Some(&mut s), Event::SimRemoved);
    only_run(h.event(&srv, Some(&mut s), Event::SimInserted))
        .1
        .expect("download");
    assert_eq!(h.contacts.contents(), vec![card("Srv")]);
}

#[test]
fn polled_device_status_drives_the_idle_and_battery_rules() {
    use syncml_client::mem::{MemoryDevice, MemorySim};
    use syncml_client::DataStore;
    let srv = start();
    let mut c = cfg();
    c.low_battery_upload = true;
    c.idle = Some(IdleSync {
        interval: 0,
        budget: Budget::UNLIMITED,
    });
    let mut h = Handheld::new(&srv, "IMEI:300000000000001", "pw", c);
    let mut s = sim();
    h.event(&srv, Some(&mut s), Event::SimInserted);
    let mut device = MemoryDevice::default();
    let poll = |h: &mut Handheld, s: &mut MemorySim, d: &MemoryDevice| {
        let Handheld {
            terminal,
            ui,
            contacts,
            calendar,
            engine,
            policy,
            ..
        } = h;
        srv.block_on(engine.poll(
            policy,
            d,
            syncml_client::Handset {
                sim: Some(s),
                terminal,
                ui,
            },
            &mut [
                contacts as &mut dyn DataStore,
                calendar as &mut dyn DataStore,
            ],
        ))
    };
    h.contacts.add(card("Ann"));
    h.event(&srv, Some(&mut s), update(C, 10));
    assert!(
        poll(&mut h, &mut s, &device).is_empty(),
        "busy, battery full"
    );
    assert_eq!(h.requests(), 0);
    // The terminal goes idle: the idle sync runs (two-way, both stores).
    device.idle = true;
    let (plan, r) = only_run(poll(&mut h, &mut s, &device));
    assert_eq!(plan.reason, Reason::Idle);
    assert_eq!(r.expect("idle").stores.len(), 2);
    assert_eq!(contacts(&srv), vec![card("Ann")]);
    // In use again, then the battery runs low with a new update: upload only.
    device.idle = false;
    h.contacts.add(card("Bob"));
    h.event(&srv, Some(&mut s), update(C, 10));
    device.battery_percent = 5;
    let (plan, r) = only_run(poll(&mut h, &mut s, &device));
    assert_eq!(plan.reason, Reason::LowBattery);
    let r = r.expect("upload");
    assert_eq!(r.stores[0].mode, Some(SyncMode::OneWayFromClient));
    assert_eq!(contacts(&srv).len(), 2);
    let n = h.requests();
    assert!(
        poll(&mut h, &mut s, &device).is_empty(),
        "once per low battery"
    );
    assert_eq!(h.requests(), n);
}

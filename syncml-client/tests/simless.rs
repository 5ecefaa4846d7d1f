//! Edits made while no SIM is mounted (para. 0068), against our real server over HTTP:
//! they are kept and flagged, nothing is sent without the SIM, the user is warned when
//! such an edit may conflict, and they sync at the next insertion.

mod common;

use common::{card, event, only_run, sim, start, Handheld, SUBSCRIBER};
use syncml_client::policy::{Event, Reason, TriggerConfig};
use syncml_client::{DataStore, Notice, SyncMode, Warning};

const C: &str = "./contacts";
const K: &str = "./calendar";

fn update(store: &str) -> Event {
    Event::LocalUpdate {
        store: store.into(),
        bytes: 100,
    }
}

#[test]
fn sim_less_edits_are_kept_flagged_and_synced_at_the_next_insertion() {
    let srv = start();
    let mut cfg = TriggerConfig::new([C, K]);
    cfg.download_on_insertion = true;
    cfg.upload_on_update = true;
    let mut h = Handheld::new(&srv, "IMEI:500000000000001", "pw", cfg);
    let mut s = sim();
    only_run(h.event(&srv, Some(&mut s), Event::SimInserted))
        .1
        .expect("download");
    h.event(&srv, None, Event::SimRemoved);
    let n = h.requests();

    h.contacts.sim_mounted = false;
    h.contacts.add(card("Offline"));
    assert!(
        h.event(&srv, None, update(C)).is_empty(),
        "no sync without SIM"
    );
    assert_eq!(h.requests(), n, "no request without SIM");
    let changes = h.contacts.changes().unwrap();
    assert_eq!(changes.len(), 1);
    assert!(changes[0].sim_less, "flagged SIM-less");
    assert!(h.ui.warnings.is_empty(), "nothing known to conflict with");
    assert!(srv.items(SUBSCRIBER, "contacts").is_empty());

    h.contacts.sim_mounted = true;
    let (plan, r) = only_run(h.event(&srv, Some(&mut s), Event::SimInserted));
    assert_eq!(plan.reason, Reason::Insertion);
    assert_eq!(
        plan.stores,
        vec![
            (C.to_string(), SyncMode::TwoWay),
            (K.to_string(), SyncMode::OneWayFromServer)
        ],
        "uploading too where SIM-less edits wait"
    );
    assert_eq!(r.expect("insertion").sent(), 1);
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), vec![card("Offline")]);
    assert_eq!(h.contacts.pending(), 0);
    assert!(h
        .ui
        .warnings
        .contains(&Warning::PossibleConflict { store: C.into() }));
}

#[test]
fn sim_less_edit_warns_when_the_server_holds_newer_changes_of_that_class() {
    let srv = start();
    let mut cfg = TriggerConfig::new([C, K]);
    cfg.check_on_insertion = true;
    let mut a = Handheld::new(&srv, "IMEI:500000000000001", "pw-a", cfg);
    let mut b = Handheld::new(
        &srv,
        "IMEI:500000000000002",
        "pw-b",
        TriggerConfig::new([C, K]),
    );
    let mut s = sim();
    let ann = a.contacts.add(card("Ann"));
    a.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("a");
    // The SIM goes to b, which edits Ann and uploads.
    b.sync(&srv, Some(&mut s), SyncMode::TwoWay)
        .expect("b down");
    let b_ann = b.contacts.find(card("Ann").as_bytes()).expect("ann on b");
    b.contacts.update(&b_ann, card("Ann from b"));
    b.sync(&srv, Some(&mut s), SyncMode::TwoWay).expect("b up");
    // Back on a for a moment: the insertion check learns of b's change, then the SIM
    // leaves again without a download.
    only_run(a.event(&srv, Some(&mut s), Event::SimInserted))
        .1
        .expect("probe");
    assert!(a.ui.notices.contains(&Notice::ServerUpdatesPending {
        store: C.into(),
        count: 1
    }));
    a.event(&srv, None, Event::SimRemoved);
    let n = a.requests();

    // Without the SIM, a edits Ann: warned at once. A calendar edit is not.
    a.contacts.sim_mounted = false;
    a.calendar.sim_mounted = false;
    a.contacts.update(&ann, card("Ann from a"));
    assert_eq!(
        a.event(&srv, None, update(C)),
        vec![],
        "the warning goes to the UI, no sync"
    );
    assert_eq!(
        a.ui.warnings,
        vec![Warning::PossibleConflict { store: C.into() }]
    );
    a.calendar.add(event("Lunch"));
    a.event(&srv, None, update(K));
    assert_eq!(
        a.ui.warnings.len(),
        1,
        "no news on the calendar: no warning"
    );
    assert_eq!(a.requests(), n);

    // At the next insertion the edits sync; the server resolves the conflict in its
    // favour (its default policy) and says so.
    a.contacts.sim_mounted = true;
    a.calendar.sim_mounted = true;
    a.event(&srv, Some(&mut s), Event::SimInserted);
    let (_, r) = only_run(a.event(&srv, Some(&mut s), Event::UserRequest { stores: vec![] }));
    let r = r.expect("sync");
    assert!(r.is_success(), "{r:?}");
    assert!(a.ui.warnings.contains(&Warning::ConflictResolvedByServer {
        store: C.into(),
        luid: ann.clone()
    }));
    assert_eq!(a.contacts.get(&ann), Some(card("Ann from b").as_bytes()));
    assert_eq!(srv.items(SUBSCRIBER, "calendar"), vec![event("Lunch")]);
    assert_eq!(a.contacts.pending() + a.calendar.pending(), 0);
}

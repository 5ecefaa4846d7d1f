//! FIG. 16 (para. 0059-0065): three handsets a, b, c of one subscriber, one SIM moved
//! between them, in-memory data stores, our real server over HTTP. Download once when the
//! SIM is mounted (one-way from server), upload when it is demounted (one-way from
//! client); every handset downloads exactly what it has not yet seen.

mod common;

use common::{card, sim, start, Phone, Server, SUBSCRIBER};
use syncml_client::mem::MemorySim;
use syncml_client::{gate, GatePolicy, SyncMode};

fn server(srv: &Server) -> Vec<String> {
    srv.items(SUBSCRIBER, "contacts")
}

fn set(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| card(n)).collect();
    v.sort();
    v
}

/// Mounting the SIM: the gates, then one download. Returns what came down.
fn mount(srv: &Server, h: &mut Phone, s: &mut MemorySim) -> Vec<String> {
    let before = h.contents_set();
    let r = h
        .sync(srv, Some(s), SyncMode::OneWayFromServer)
        .expect("download");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.sent(), 0, "a download sends nothing");
    let mut got: Vec<String> = h
        .contacts
        .contents()
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    got.sort();
    assert_eq!(got.len(), r.received(), "received exactly what is new");
    got
}

/// Demounting the SIM: the user's directive uploads the updates (a1).
fn demount(srv: &Server, h: &mut Phone, s: &mut MemorySim) {
    let r = h
        .sync(srv, Some(s), SyncMode::OneWayFromClient)
        .expect("upload");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.received(), 0, "an upload receives nothing");
    assert_eq!(h.contacts.pending(), 0);
}

trait Contents {
    fn contents_set(&self) -> Vec<String>;
}

impl Contents for Phone {
    fn contents_set(&self) -> Vec<String> {
        self.contacts.contents()
    }
}

#[test]
fn fig16_three_handsets_one_sim() {
    let srv = start();
    let mut s = sim();
    let mut a = Phone::new(&srv, "IMEI:350000000000001", "pw-a").with_policy(GatePolicy::ALL);
    let mut b = Phone::new(&srv, "IMEI:350000000000002", "pw-b").with_policy(GatePolicy::ALL);
    let mut c = Phone::new(&srv, "IMEI:350000000000003", "pw-c").with_policy(GatePolicy::ALL);
    // Initial registration of each handset with the SIM (FIG. 10-A and FIG. 11-A).
    for h in [&mut a, &mut b, &mut c] {
        gate::register_subscriber_in_terminal(&mut s, &mut h.terminal, &mut h.ui).expect("10-A");
        gate::register_terminal_on_sim(&mut s, &mut h.terminal, &mut h.ui).expect("11-A");
    }

    // T0: SIM on a, server empty (para. 0059).
    assert!(mount(&srv, &mut a, &mut s).is_empty());
    assert!(server(&srv).is_empty());
    // a1 is made on a and uploaded when the SIM is demounted (T1, para. 0060).
    a.contacts.add(card("a1"));
    demount(&srv, &mut a, &mut s);
    assert_eq!(server(&srv), set(&["a1"]), "T1");

    // SIM on b: a1 comes down; b1 goes up at T2 (para. 0061).
    assert_eq!(mount(&srv, &mut b, &mut s), set(&["a1"]));
    assert_eq!(b.contacts.contents(), a.contacts.contents());
    b.contacts.add(card("b1"));
    demount(&srv, &mut b, &mut s);
    assert_eq!(server(&srv), set(&["a1", "b1"]), "T2");

    // SIM on c: a1 + b1 come down; c1 goes up at T3 (para. 0062).
    assert_eq!(mount(&srv, &mut c, &mut s), set(&["a1", "b1"]));
    c.contacts.add(card("c1"));
    demount(&srv, &mut c, &mut s);
    assert_eq!(server(&srv), set(&["a1", "b1", "c1"]), "T3");

    // SIM on a again: exactly b1 + c1 come down; a2 goes up at T4 (para. 0063).
    assert_eq!(mount(&srv, &mut a, &mut s), set(&["b1", "c1"]));
    a.contacts.add(card("a2"));
    demount(&srv, &mut a, &mut s);
    assert_eq!(server(&srv), set(&["a1", "b1", "c1", "a2"]), "T4");

    // SIM on b: exactly c1 + a2 come down; b2 goes up at T5 (para. 0064).
    assert_eq!(mount(&srv, &mut b, &mut s), set(&["c1", "a2"]));
    b.contacts.add(card("b2"));
    demount(&srv, &mut b, &mut s);
    let all = set(&["a1", "b1", "c1", "a2", "b2"]);
    assert_eq!(server(&srv), all, "T5");

    // SIM on a: only b2 has not been reflected there (para. 0065).
    assert_eq!(mount(&srv, &mut a, &mut s), set(&["b2"]));
    assert_eq!(a.contacts.contents(), all);
    assert_eq!(b.contacts.contents(), all);
    assert_eq!(
        c.contacts.contents(),
        set(&["a1", "b1", "c1"]),
        "c has not had the SIM since T3"
    );

    // Whoever holds no SIM cannot sync at all.
    let e = c.sync(&srv, None, SyncMode::TwoWay).expect_err("no SIM");
    assert_eq!(
        e,
        syncml_client::ClientError::Refused(syncml_client::GateRefusal::NoSim)
    );
}

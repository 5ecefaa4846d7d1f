//! The FIG. 16 simulator (`fig16-simulator`, the example's own code path) against the
//! states para. 0059-0065 describe: the server's user area after T0-T5, every handset
//! after every mount, and exactly which update data each mount downloads.

#[allow(dead_code)]
#[path = "../src/fig16.rs"]
mod fig16;

use fig16::{simulate, Moment};
use syncml_client::Counts;

fn set(labels: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    v.sort();
    v
}

fn counts(added: usize, replaced: usize, deleted: usize) -> Counts {
    Counts {
        added,
        replaced,
        deleted,
    }
}

// The user area after each point (para. 0060: update data are additions, changes and
// deletions, reflected as such).
const A1: &[&str] = &["contact:Ann", "contact:Al", "event:Kickoff"];
const A1_B1: &[&str] = &[
    "contact:Ann Smith",
    "contact:Al",
    "contact:Bea",
    "event:Kickoff",
];
const A1_B1_C1: &[&str] = &[
    "contact:Ann Smith",
    "contact:Bea",
    "contact:Cy",
    "event:Kickoff",
];
const A1_B1_C1_A2: &[&str] = &[
    "contact:Ann Smith",
    "contact:Bea",
    "contact:Cy",
    "contact:Dee",
    "event:Kickoff (moved)",
];
const A1_B1_C1_A2_B2: &[&str] = &[
    "contact:Ann Smith",
    "contact:Cy",
    "contact:Dee",
    "event:Kickoff (moved)",
    "event:Review",
];

fn at<'a>(moments: &'a [Moment], i: usize, label: &str) -> &'a Moment {
    let m = &moments[i];
    assert_eq!(m.at, label, "moment {i}");
    m
}

#[test]
fn fig16_states_match_paragraphs_0059_to_0065() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = simulate(&dir.path().join("run"), false).expect("simulation");
    assert_eq!(
        m.len(),
        11,
        "T0, 5 x (update + T), 4 mounts in between, final mount"
    );

    // [0059] T0: SIM on 10a, the user area empty, nothing to download.
    let t0 = at(&m, 0, "T0");
    assert!(t0.server.is_empty());
    assert!(t0.handsets.iter().all(Vec::is_empty));
    assert_eq!(t0.downloaded, Some((0, counts(0, 0, 0))));

    // [0060] a1 made on 10a is uploaded when the SIM is demounted (T1): user area "a1".
    let t1 = at(&m, 1, "T1");
    assert_eq!(t1.server, set(A1));
    assert_eq!(t1.handsets[0], set(A1));
    assert!(t1.handsets[1].is_empty() && t1.handsets[2].is_empty());

    // [0061] SIM on 10b: a1 is downloaded; 10b conforms to 10a. b1 uploaded at T2.
    let mb = at(&m, 2, "mount 10b");
    assert_eq!(mb.downloaded, Some((1, counts(3, 0, 0))));
    assert_eq!(mb.handsets[1], mb.handsets[0]);
    let t2 = at(&m, 3, "T2");
    assert_eq!(t2.server, set(A1_B1));
    assert_eq!(t2.handsets[1], set(A1_B1));
    assert_eq!(t2.handsets[0], set(A1), "10a has not had the SIM since T1");

    // [0062] SIM on 10c: "a1 + b1" is downloaded. c1 uploaded at T3.
    let mc = at(&m, 4, "mount 10c");
    assert_eq!(mc.downloaded, Some((2, counts(4, 0, 0))));
    assert_eq!(mc.handsets[2], set(A1_B1));
    let t3 = at(&m, 5, "T3");
    assert_eq!(t3.server, set(A1_B1_C1));
    assert_eq!(t3.handsets[2], set(A1_B1_C1));

    // [0063] SIM on 10a: exactly "b1 + c1" is downloaded (b1: +Bea ~Ann; c1: +Cy -Al).
    // a2 uploaded at T4.
    let ma = at(&m, 6, "mount 10a");
    assert_eq!(ma.downloaded, Some((0, counts(2, 1, 1))));
    assert_eq!(ma.handsets[0], set(A1_B1_C1));
    let t4 = at(&m, 7, "T4");
    assert_eq!(t4.server, set(A1_B1_C1_A2));
    assert_eq!(t4.handsets[0], set(A1_B1_C1_A2));

    // [0064] SIM on 10b: exactly "c1 + a2" is downloaded (+Cy -Al; +Dee ~Kickoff); b2
    // uploaded at T5.
    let mb2 = at(&m, 8, "mount 10b");
    assert_eq!(mb2.downloaded, Some((1, counts(2, 1, 1))));
    assert_eq!(mb2.handsets[1], set(A1_B1_C1_A2));
    let t5 = at(&m, 9, "T5");
    assert_eq!(t5.server, set(A1_B1_C1_A2_B2));
    assert_eq!(t5.handsets[1], set(A1_B1_C1_A2_B2));

    // [0065] SIM on 10a: only b2 has not been reflected there (-Bea +Review).
    let last = at(&m, 10, "mount 10a");
    assert_eq!(last.downloaded, Some((0, counts(1, 0, 1))));
    assert_eq!(last.handsets[0], set(A1_B1_C1_A2_B2));
    assert_eq!(last.handsets[1], set(A1_B1_C1_A2_B2));
    assert_eq!(
        last.handsets[2],
        set(A1_B1_C1),
        "10c last had the SIM at T3"
    );
    assert_eq!(last.server, set(A1_B1_C1_A2_B2));
}

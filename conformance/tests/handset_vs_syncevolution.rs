//! `syncml-handset` (the real binary of syncml-client) as the client of SyncEvolution's
//! own SyncML HTTP server (`syncevo-http-server`, Synthesis engine): contacts and
//! calendar through all six sync modes, XML and WBXML, comparing the items on both sides
//! one by one after every sync.
//!
//! Needs the Debian packages `syncevolution syncevolution-http python3-twisted dbus`;
//! without them the tests fail with the `apt-get install` line to run. They never skip.
//! The handset binary is built with `cargo build -p syncml-client --bin syncml-handset`
//! first (set `SYNCML_HANDSET_BIN` to use another build). Set `SYNCML_KEEP_TMP=1` to keep
//! the directories (SyncEvolution's session logs hold every wire message).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use conformance::syncevolution::server::{self, Server, ServerConfig};
use conformance::syncevolution::{normalized_icalendars, normalized_vcards};

const DEVICE: &str = "IMEI:356938035643809";
const USER: &str = "test";
const PASSWORD: &str = "secret";
const PIN: &str = "4321";

fn vcard(given: &str, note: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Example;{given};;;\r\nFN:{given} Example\r\n\
         NOTE:{note}\r\nEND:VCARD\r\n"
    )
}

/// An event with its own DESCRIPTION (the Synthesis engine copies SUMMARY into a missing
/// DESCRIPTION when it sends an event).
fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{uid}@example.org\r\n\
         DTSTART:20260102T100000Z\r\nDTEND:20260102T110000Z\r\nSUMMARY:{summary}\r\n\
         DESCRIPTION:about {summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The handset binary, built once per test process with the cargo running the tests.
fn handset_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("SYNCML_HANDSET_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps/<test>");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "syncml-client",
            "--bin",
            "syncml-handset",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run cargo to build syncml-handset: {e}"));
        assert!(
            out.status.success(),
            "building syncml-handset failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = profile_dir.join("syncml-handset");
        assert!(bin.is_file(), "syncml-handset is not at {}", bin.display());
        bin
    })
    .clone()
}

/// A temporary directory, kept when `SYNCML_KEEP_TMP` is set.
struct Scratch(conformance::scratch::Scratch);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(conformance::scratch::Scratch::new(&format!(
            "handset-se-{name}"
        )))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// The handset under test, driven only through its command line.
struct Handset {
    dir: PathBuf,
    encoding: &'static str,
}

impl Handset {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(handset_bin())
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .env("SYNCML_PIN", PIN)
            .env("SYNCML_PASSWORD", PASSWORD)
            .output()
            .unwrap_or_else(|e| panic!("running syncml-handset: {e}"));
        assert!(
            out.status.success(),
            "syncml-handset {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn new(root: &Path, server: &Server, encoding: &'static str) -> Handset {
        let sim = root.join("sim");
        let out = Command::new(handset_bin())
            .arg("new-sim")
            .arg(&sim)
            .args(["--subscriber", USER, "--pin", PIN])
            .output()
            .unwrap_or_else(|e| panic!("running syncml-handset: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let h = Handset {
            dir: root.join("handset"),
            encoding,
        };
        h.run(&[
            "init",
            "--terminal-id",
            DEVICE,
            "--server",
            server.url(),
            "--contacts-uri",
            "addressbook",
            "--calendar-uri",
            "calendar",
        ]);
        h.run(&["insert-sim", sim.to_str().expect("utf-8 path")]);
        h.run(&["register"]);
        h
    }

    /// One sync; asserts the server ran every store in the mode asked (no fallback).
    fn sync(&self, mode: &str) -> String {
        let enc = format!("--{}", self.encoding);
        let out = self.run(&["sync", "--mode", mode, &enc]);
        for class in ["contacts", "calendar"] {
            let want = format!("{class}: {mode} (asked {mode})");
            assert!(out.contains(&want), "expected {want:?} in:\n{out}");
        }
        out
    }

    fn write(&self, class: &str, name: &str, text: &str) {
        std::fs::write(self.dir.join(class).join(name), text)
            .unwrap_or_else(|e| panic!("writing {name}: {e}"));
    }

    /// The file holding the contact or event whose text contains `needle`.
    fn file_with(&self, class: &str, needle: &str) -> PathBuf {
        let items = read_dir(&self.dir.join(class));
        let name = items
            .iter()
            .find(|(_, t)| t.contains(needle))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("no {class} item with {needle:?} on the handset"));
        self.dir.join(class).join(name)
    }

    fn contacts(&self) -> BTreeMap<String, String> {
        read_dir(&self.dir.join("contacts"))
    }

    fn calendar(&self) -> BTreeMap<String, String> {
        read_dir(&self.dir.join("calendar"))
    }
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("utf-8 item");
        out.insert(name, text);
    }
    out
}

fn cards(v: &[String]) -> Vec<String> {
    let m: BTreeMap<String, String> = v
        .iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), t.clone()))
        .collect();
    normalized_vcards(&m)
}

fn events(v: &[String]) -> Vec<String> {
    let m: BTreeMap<String, String> = v
        .iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), t.clone()))
        .collect();
    normalized_icalendars(&m)
}

fn server_contacts(s: &Server) -> Vec<String> {
    normalized_vcards(&s.read_contacts().unwrap_or_else(|e| panic!("{e}")))
}

fn server_calendar(s: &Server) -> Vec<String> {
    normalized_icalendars(&s.read_calendar().unwrap_or_else(|e| panic!("{e}")))
}

/// Both sides hold exactly `contacts` and `calendar`, item by item.
fn assert_both(step: &str, h: &Handset, s: &Server, contacts: &[String], calendar: &[String]) {
    assert_handset(step, h, contacts, calendar);
    assert_server(step, s, contacts, calendar);
}

fn assert_handset(step: &str, h: &Handset, contacts: &[String], calendar: &[String]) {
    assert_eq!(
        normalized_vcards(&h.contacts()),
        cards(contacts),
        "{step}: handset contacts"
    );
    assert_eq!(
        normalized_icalendars(&h.calendar()),
        events(calendar),
        "{step}: handset calendar"
    );
}

fn assert_server(step: &str, s: &Server, contacts: &[String], calendar: &[String]) {
    assert_eq!(
        server_contacts(s),
        cards(contacts),
        "{step}: server contacts"
    );
    assert_eq!(
        server_calendar(s),
        events(calendar),
        "{step}: server calendar"
    );
}

fn six_modes(encoding: &'static str) {
    server::ensure_installed().unwrap_or_else(|e| {
        panic!("SyncEvolution's server is required for this interop test: {e}")
    });
    let scratch = Scratch::new(encoding);
    let cfg = ServerConfig {
        client_device_ids: vec![DEVICE.into()],
        ..ServerConfig::default()
    };
    let srv = Server::start(&scratch.path().join("server"), cfg)
        .unwrap_or_else(|e| panic!("starting SyncEvolution's server: {e}"));
    let h = Handset::new(scratch.path(), &srv, encoding);

    let ann = vcard("Ann", "first");
    let ann2 = vcard("Ann", "edited on the handset");
    let bob = vcard("Bob", "to be deleted");
    let sue = vcard("Sue", "from the server");
    let cy = vcard("Cy", "new on the handset");
    let dan = vcard("Dan", "new on the server");
    let eve = vcard("Eve", "one way up");
    let fay = vcard("Fay", "one way down");
    let gus = vcard("Gus", "pending local");
    let hal = vcard("Hal", "wiped by the refresh from client");
    let ivy = vcard("Ivy", "wiped by the refresh from server");
    let standup = event("standup", "Standup");
    let standup2 = event("standup", "Standup (moved)");
    let review = event("review", "Review");
    let retro = event("retro", "Retro");

    // 1. Slow: both sides merge (the handset's two contacts and event, the server's one).
    h.write("contacts", "ann.vcf", &ann);
    h.write("contacts", "bob.vcf", &bob);
    h.write("calendar", "standup.ics", &standup);
    srv.write_contact("sue", &sue)
        .unwrap_or_else(|e| panic!("{e}"));
    h.sync("slow");
    let mut contacts = vec![ann.clone(), bob.clone(), sue.clone()];
    let mut calendar = vec![standup.clone()];
    assert_both("slow", &h, &srv, &contacts, &calendar);

    // 2. Two-way: an edit, a delete and an add on the handset; an add on the server.
    h.write("contacts", "ann.vcf", &ann2);
    std::fs::remove_file(h.file_with("contacts", "to be deleted")).expect("rm bob");
    h.write("contacts", "cy.vcf", &cy);
    std::fs::write(h.file_with("calendar", "Standup"), &standup2).expect("edit event");
    srv.write_contact("dan", &dan)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = h.sync("two-way");
    assert!(
        out.contains("contacts: two-way (asked two-way), sent 3 (+1 ~1 -1), received 1 (+1 ~0 -0)"),
        "{out}"
    );
    contacts = vec![ann2.clone(), sue.clone(), cy.clone(), dan.clone()];
    calendar = vec![standup2.clone()];
    assert_both("two-way", &h, &srv, &contacts, &calendar);

    // 3. One-way from client: Eve goes up, the server's Fay stays there.
    h.write("contacts", "eve.vcf", &eve);
    srv.write_contact("fay", &fay)
        .unwrap_or_else(|e| panic!("{e}"));
    h.sync("one-way-from-client");
    let mut on_server = contacts.clone();
    on_server.extend([eve.clone(), fay.clone()]);
    contacts.push(eve.clone());
    assert_handset("one-way-from-client", &h, &contacts, &calendar);
    assert_server("one-way-from-client", &srv, &on_server, &calendar);

    // 4. One-way from server: Fay and the server's new event come down; the handset's
    // new Gus stays local.
    h.write("contacts", "gus.vcf", &gus);
    std::fs::write(srv.calendar_dir().join("review"), &review).expect("seed event");
    h.sync("one-way-from-server");
    calendar.push(review.clone());
    assert_server("one-way-from-server", &srv, &on_server, &calendar);
    contacts = on_server.clone();
    contacts.push(gus.clone());
    assert_handset("one-way-from-server", &h, &contacts, &calendar);

    // 5. Refresh from client: the server's data becomes the handset's (Hal is wiped).
    srv.write_contact("hal", &hal)
        .unwrap_or_else(|e| panic!("{e}"));
    h.write("calendar", "retro.ics", &retro);
    h.sync("refresh-from-client");
    calendar.push(retro.clone());
    assert_both("refresh-from-client", &h, &srv, &contacts, &calendar);

    // 6. Refresh from server: the handset's data becomes the server's (Ivy is wiped).
    h.write("contacts", "ivy.vcf", &ivy);
    std::fs::remove_file(h.file_with("calendar", "Retro")).expect("rm retro");
    h.sync("refresh-from-server");
    assert_both("refresh-from-server", &h, &srv, &contacts, &calendar);

    // And a final two-way finds nothing to do on either side.
    let out = h.sync("two-way");
    assert!(
        out.contains("contacts: two-way (asked two-way), sent 0 (+0 ~0 -0), received 0"),
        "{out}"
    );
    assert_both("quiet two-way", &h, &srv, &contacts, &calendar);
}

#[test]
fn handset_syncs_with_syncevolution_server_in_all_six_modes_xml() {
    six_modes("xml");
}

#[test]
fn handset_syncs_with_syncevolution_server_in_all_six_modes_wbxml() {
    six_modes("wbxml");
}

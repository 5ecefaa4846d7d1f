//! The `syncml-handset` command (the real binary) against our real server over HTTP:
//! registration, the gates, every sync mode, edits made directly in the data directories,
//! erase, status, and a 300-contact slow sync each way in multi-message packages.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{start, start_with, Server, PIN, SUBSCRIBER};
use syncml_client::fs::{DataClass, FsHandset, FsSim};
use syncml_client::{HttpTransport, SyncMode, Transport, TransportError};

const BIN: &str = env!("CARGO_BIN_EXE_syncml-handset");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env_remove("SYNCML_PIN")
        .env_remove("SYNCML_PASSWORD")
        .env_remove("SYNCML_HANDSET_DIR")
        .output()
        .expect("run syncml-handset")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "syncml-handset {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn vcard(name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:{name};;;;\r\nFN:{name}\r\nEND:VCARD\r\n")
}

fn event(summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{summary}@test\r\n\
         DTSTART:20260101T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A handset directory made with the CLI: init, SIM inserted, both registrations.
struct Cli {
    dir: PathBuf,
    password: String,
}

impl Cli {
    fn new(srv: &Server, root: &Path, name: &str, sim: &Path) -> Cli {
        let dir = root.join(name);
        let terminal = format!(
            "IMEI:35000000000{:04}",
            name.len() * 7 + name.as_bytes()[0] as usize
        );
        let password = format!("pw-{name}");
        srv.provision(SUBSCRIBER, &terminal, &password);
        ok(
            &dir,
            &[
                "init",
                "--terminal-id",
                &terminal,
                "--password",
                &password,
                "--server",
                &srv.url,
            ],
        );
        let c = Cli { dir, password };
        c.insert(sim);
        ok(
            &c.dir,
            &["register", "--pin", PIN, "--password", &c.password],
        );
        c
    }

    fn insert(&self, sim: &Path) {
        ok(&self.dir, &["insert-sim", sim.to_str().expect("utf-8")]);
    }

    fn remove(&self) {
        ok(&self.dir, &["remove-sim"]);
    }

    fn sync(&self, mode: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "sync",
            "--mode",
            mode,
            "--pin",
            PIN,
            "--password",
            &self.password,
        ];
        args.extend_from_slice(extra);
        ok(&self.dir, &args)
    }

    fn write(&self, class: &str, name: &str, text: &str) {
        std::fs::write(self.dir.join(class).join(name), text).expect("write item");
    }

    fn contents(&self, class: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join(class))
            .expect("read dir")
            .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("read"))
            .collect();
        v.sort();
        v
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn new_sim(root: &Path) -> PathBuf {
    let sim = root.join("sim");
    let o = Command::new(BIN)
        .args([
            "new-sim",
            sim.to_str().expect("utf-8"),
            "--subscriber",
            SUBSCRIBER,
        ])
        .env("SYNCML_PIN", PIN)
        .output()
        .expect("new-sim");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sim
}

#[test]
fn edits_made_in_the_directory_reach_the_server_and_the_other_handset() {
    let srv = start();
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    a.write("contacts", "ann.vcf", &vcard("Ann"));
    a.write("contacts", "bob.vcf", &vcard("Bob"));
    a.write("calendar", "dentist.ics", &event("Dentist"));
    let out = a.sync("slow", &[]);
    assert!(out.contains("contacts: slow (asked slow), sent 2"), "{out}");
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        sorted(&[vcard("Ann"), vcard("Bob")])
    );
    assert_eq!(srv.items(SUBSCRIBER, "calendar"), vec![event("Dentist")]);

    // A person edits the directory: one file changed, one removed, one added.
    a.write("contacts", "ann.vcf", &vcard("Ann Smith"));
    std::fs::remove_file(a.dir.join("contacts/bob.vcf")).expect("rm");
    a.write("contacts", "cy.vcf", &vcard("Cy"));
    let status = ok(&a.dir, &["status"]);
    assert!(
        status.contains("contacts: 2 items, 3 pending changes"),
        "{status}"
    );
    let out = a.sync("two-way", &[]);
    assert!(out.contains("sent 3 (+1 ~1 -1)"), "{out}");
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        sorted(&[vcard("Ann Smith"), vcard("Cy")])
    );
    let out = a.sync("two-way", &[]);
    assert!(out.contains("sent 0"), "nothing left to send: {out}");
    a.remove();

    // The SIM moves to b, which gets everything in WBXML.
    let b = Cli::new(&srv, root.path(), "b", &sim);
    let out = b.sync("two-way", &["--wbxml"]);
    assert!(out.contains("received 2 (+2 ~0 -0)"), "{out}");
    assert_eq!(
        b.contents("contacts"),
        sorted(&[vcard("Ann Smith"), vcard("Cy")])
    );
    assert_eq!(b.contents("calendar"), vec![event("Dentist")]);
}

#[test]
fn every_sync_mode_runs_from_the_command_line() {
    let srv = start();
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    a.write("contacts", "ann.vcf", &vcard("Ann"));
    a.sync("refresh-from-client", &["--classes", "contacts"]);
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), vec![vcard("Ann")]);
    srv.operator_put(SUBSCRIBER, "contacts", None, &vcard("Srv"));
    a.write("contacts", "bob.vcf", &vcard("Bob"));
    let out = a.sync("one-way-from-client", &["--classes", "contacts"]);
    assert!(out.contains("sent 1 (+1 ~0 -0), received 0"), "{out}");
    let out = a.sync("one-way-from-server", &["--classes", "contacts"]);
    assert!(out.contains("sent 0 (+0 ~0 -0), received 1"), "{out}");
    let all = sorted(&[vcard("Ann"), vcard("Bob"), vcard("Srv")]);
    assert_eq!(a.contents("contacts"), all);
    a.write("contacts", "local-only.vcf", &vcard("Local"));
    let out = a.sync("refresh-from-server", &["--classes", "contacts"]);
    assert!(out.contains("refresh-from-server"), "{out}");
    assert_eq!(a.contents("contacts"), all, "the local-only item was wiped");
    let out = a.sync("slow", &["--classes", "contacts", "--wbxml"]);
    assert!(out.contains("contacts: slow"), "{out}");
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        all,
        "no duplicates after slow"
    );
    let out = a.sync("two-way", &["--classes", "contacts"]);
    assert!(out.contains("sent 0 (+0 ~0 -0), received 0"), "{out}");
}

#[test]
fn a_wrong_pin_is_one_line_and_sends_nothing() {
    let srv = start();
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    a.write("contacts", "ann.vcf", &vcard("Ann"));
    let o = run(
        &a.dir,
        &["sync", "--pin", "0000", "--password", &a.password],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("syncml-handset: error: sync refused before connecting"),
        "{err}"
    );
    assert!(srv.items(SUBSCRIBER, "contacts").is_empty());
    assert_eq!(
        FsSim::open(&sim).expect("sim").tries_left(),
        0,
        "three wrong PINs"
    );

    // Without the SIM nothing syncs either; usage errors exit 2.
    let o = run(&root.path().join("b-never-made"), &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not initialised"));
    let o = run(&a.dir, &["sync", "--mode", "sideways"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn the_fig10b_gate_refuses_a_sim_of_another_subscriber() {
    let srv = start();
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    a.remove();
    let other = root.path().join("other-sim");
    FsSim::create(&other, "001019999999999", PIN).expect("sim");
    a.insert(&other);
    let o = run(&a.dir, &["sync", "--pin", PIN, "--password", &a.password]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not the one registered in this terminal"),
        "{err}"
    );
}

#[test]
fn erase_uploads_first_then_wipes_only_the_chosen_classes() {
    let srv = start();
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    a.write("contacts", "ann.vcf", &vcard("Ann"));
    a.write("calendar", "x.ics", &event("X"));
    let out = ok(
        &a.dir,
        &[
            "erase",
            "--classes",
            "contacts",
            "--pin",
            PIN,
            "--password",
            &a.password,
        ],
    );
    assert!(out.contains("erased locally: contacts"), "{out}");
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        vec![vcard("Ann")],
        "uploaded first"
    );
    assert!(a.contents("contacts").is_empty());
    assert_eq!(
        a.contents("calendar"),
        vec![event("X")],
        "calendar untouched"
    );
    // The wipe is not a local delete: a later sync sends nothing.
    let out = a.sync("two-way", &["--classes", "contacts"]);
    assert!(out.contains("sent 0"), "{out}");
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), vec![vcard("Ann")]);
}

/// Records the largest request body.
struct Largest<T> {
    inner: T,
    max: AtomicUsize,
    count: AtomicUsize,
}

impl<T: Transport> Transport for Largest<T> {
    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(String, Vec<u8>), TransportError> {
        self.max.fetch_max(body.len(), Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.post(url, content_type, body).await
    }
}

const MSG: u64 = 8 * 1024;

#[test]
fn three_hundred_contacts_go_each_way_in_messages_under_max_msg_size() {
    let mut cfg = syncml_server::session::EngineConfig::default();
    cfg.max_msg_size = MSG;
    let srv = start_with(cfg);
    let root = tempfile::tempdir().expect("tempdir");
    let sim = new_sim(root.path());
    let a = Cli::new(&srv, root.path(), "a", &sim);
    ok(&a.dir, &["remove-sim"]);
    let mut want = Vec::new();
    for i in 0..300 {
        let card = vcard(&format!(
            "Person {i:03} with a name long enough to take room"
        ));
        a.write("contacts", &format!("{i:03}.vcf"), &card);
        want.push(card);
    }
    want.sort();
    a.insert(&sim);
    // Upload through the library with a measuring transport (the CLI's code path).
    let mut h = FsHandset::open(&a.dir).expect("open");
    h.config_mut().max_msg_size = MSG;
    let up = Largest {
        inner: HttpTransport::new(),
        max: AtomicUsize::new(0),
        count: AtomicUsize::new(0),
    };
    let o = srv
        .block_on(h.sync(
            &up,
            &[DataClass::Contacts],
            SyncMode::Slow,
            Some(PIN),
            Some(&a.password),
        ))
        .expect("upload");
    assert_eq!(o.report.stores[0].sent.total(), 300);
    assert!(
        up.count.load(Ordering::SeqCst) > 10,
        "package 3 spans messages"
    );
    assert!(
        up.max.load(Ordering::SeqCst) as u64 <= MSG,
        "largest message {} > MaxMsgSize {MSG}",
        up.max.load(Ordering::SeqCst)
    );
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), want);
    a.remove();

    // Download into a fresh handset with the CLI, small messages both ways.
    let b = Cli::new(&srv, root.path(), "b", &sim);
    let mut hb = FsHandset::open(&b.dir).expect("open b");
    hb.config_mut().max_msg_size = MSG;
    hb.save_config().expect("save");
    let o = run(
        &b.dir,
        &[
            "sync",
            "--mode",
            "slow",
            "--classes",
            "contacts",
            "--progress",
            "--pin",
            PIN,
            "--password",
            &b.password,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("received 300 (+300 ~0 -0)"), "{out}");
    let progress = String::from_utf8_lossy(&o.stderr);
    assert!(
        progress.matches("\rsyncing: message ").count() > 10,
        "one progress update per message on stderr: {progress:?}"
    );
    let msgs: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("messages sent: "))
        .and_then(|n| n.parse().ok())
        .expect("message count");
    assert!(msgs > 10, "package 4 came in many messages: {msgs}");
    assert_eq!(b.contents("contacts"), want);
    let out = b.sync("two-way", &["--classes", "contacts"]);
    assert!(
        out.contains("sent 0 (+0 ~0 -0), received 0"),
        "maps all acknowledged: {out}"
    );
}

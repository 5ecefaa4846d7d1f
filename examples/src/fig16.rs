//! FIG. 16 (para. 0059-0065) replayed: three file-backed handsets 10a, 10b, 10c of one
//! subscriber, one SIM card moved between them, our real server over HTTP (in-process,
//! SQLite). A download runs when the SIM is mounted (one-way from server) and an upload
//! when it is demounted (one-way from client), para. 0059. Every "update data" (a1, b1,
//! c1, a2, b2) is a set of changes made by a person directly in the handset's data
//! directories, with additions, changes and deletions (para. 0060: "update data"
//! includes not only addition of data or change of data, but also deletion of data).
//!
//! ```sh
//! cargo run -p syncml-examples --bin fig16-simulator -- --dir /tmp/fig16
//! ```
//! prints, after each point T0-T5, the data of every handset and of the server's user
//! area, and what each mount downloaded. The handset directories stay in `--dir` for
//! inspection (`syncml-handset --dir /tmp/fig16/10a status`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use syncml_client::fs::{DataClass, FsHandset, FsSim, HandsetConfig};
use syncml_client::{Counts, HttpTransport, SyncMode};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    DatastoreKey, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt,
    Timestamp,
};

/// The subscriber whose SIM moves between the handsets.
pub const SUBSCRIBER: &str = "001010123456789";
/// The SIM's PIN.
pub const PIN: &str = "1234";
/// The three handsets: name, terminal ID, terminal password.
pub const HANDSETS: [(&str, &str, &str); 3] = [
    ("10a", "IMEI:350000000000010", "pw-10a"),
    ("10b", "IMEI:350000000000011", "pw-10b"),
    ("10c", "IMEI:350000000000012", "pw-10c"),
];

/// One edit a person makes in a handset's data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// A new item with this label.
    Add(DataClass, &'static str),
    /// The item labelled `.1` now reads `.2`.
    Change(DataClass, &'static str, &'static str),
    /// The item labelled `.1` is deleted.
    Delete(DataClass, &'static str),
}

/// The update data of FIG. 16, in the order they are generated.
pub const UPDATES: [(&str, usize, &[Edit]); 5] = [
    (
        "a1",
        0,
        &[
            Edit::Add(DataClass::Contacts, "Ann"),
            Edit::Add(DataClass::Contacts, "Al"),
            Edit::Add(DataClass::Calendar, "Kickoff"),
        ],
    ),
    (
        "b1",
        1,
        &[
            Edit::Add(DataClass::Contacts, "Bea"),
            Edit::Change(DataClass::Contacts, "Ann", "Ann Smith"),
        ],
    ),
    (
        "c1",
        2,
        &[
            Edit::Add(DataClass::Contacts, "Cy"),
            Edit::Delete(DataClass::Contacts, "Al"),
        ],
    ),
    (
        "a2",
        0,
        &[
            Edit::Add(DataClass::Contacts, "Dee"),
            Edit::Change(DataClass::Calendar, "Kickoff", "Kickoff (moved)"),
        ],
    ),
    (
        "b2",
        1,
        &[
            Edit::Delete(DataClass::Contacts, "Bea"),
            Edit::Add(DataClass::Calendar, "Review"),
        ],
    ),
];

/// The item text of a label.
pub fn item_text(class: DataClass, label: &str) -> String {
    match class {
        DataClass::Contacts => {
            format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:{label};;;;\r\nFN:{label}\r\nEND:VCARD\r\n")
        }
        DataClass::Calendar => format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{}@fig16\r\n\
             DTSTART:20260101T100000Z\r\nSUMMARY:{label}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            label.split(' ').next().unwrap_or(label)
        ),
    }
}

/// The label of an item text (`contact:Ann`, `event:Kickoff`).
pub fn label_of(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("FN:") {
            return format!("contact:{n}");
        }
        if let Some(s) = line.strip_prefix("SUMMARY:") {
            return format!("event:{s}");
        }
    }
    format!("other:{}", text.len())
}

/// Everyone's data at one point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// `T0`..`T5`, or the mount it follows (`mount 10b`).
    pub at: String,
    /// The server's user area, labels sorted.
    pub server: Vec<String>,
    /// Each handset's data, labels sorted (10a, 10b, 10c).
    pub handsets: [Vec<String>; 3],
    /// For a mount: which handset, and the changes it downloaded.
    pub downloaded: Option<(usize, Counts)>,
}

/// The running server.
struct Server {
    url: String,
    store: Arc<SqliteStore>,
    running: Option<http::Running>,
}

fn provision(store: &SqliteStore) -> Result<(), String> {
    store
        .transaction(|tx| {
            let t0 = Timestamp::from_unix_secs(1);
            tx.subscriber_create(
                &NewSubscriber {
                    id: SUBSCRIBER.into(),
                    display_name: Some("FIG. 16 subscriber".into()),
                    security_level: 0,
                },
                t0,
            )?;
            for (_, id, pw) in HANDSETS {
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: id.into(),
                        subscriber_id: SUBSCRIBER.into(),
                        md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(
                            SUBSCRIBER, pw,
                        ))),
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    t0,
                )?;
            }
            Ok(())
        })
        .map_err(|e| format!("provisioning: {e}"))
}

fn server_labels(store: &SqliteStore) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for ds in ["contacts", "calendar"] {
        let items = store
            .read(|tx| tx.items_list_live(DatastoreKey::new(SUBSCRIBER, ds)))
            .map_err(|e| format!("reading the server: {e}"))?;
        out.extend(items.iter().map(|i| label_of(&i.data)));
    }
    out.sort();
    Ok(out)
}

fn handset_labels(h: &FsHandset) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for class in DataClass::ALL {
        let s = h.store(class).map_err(|e| e.to_string())?;
        let items = s.read_all().map_err(|e| e.to_string())?;
        out.extend(items.values().map(|d| label_of(d)));
    }
    out.sort();
    Ok(out)
}

/// The file holding the item labelled `label`.
fn find(h: &FsHandset, class: DataClass, label: &str) -> Result<PathBuf, String> {
    let want = item_text(class, label);
    let s = h.store(class).map_err(|e| e.to_string())?;
    let items: BTreeMap<String, Vec<u8>> = s.read_all().map_err(|e| e.to_string())?;
    items
        .iter()
        .find(|(_, d)| d.as_slice() == want.as_bytes())
        .map(|(luid, _)| h.class_dir(class).join(luid))
        .ok_or_else(|| format!("{label} is not on {}", h.root().display()))
}

/// A person edits the handset's directories.
fn edit(h: &FsHandset, edits: &[Edit], n: &mut usize) -> Result<(), String> {
    for e in edits {
        match *e {
            Edit::Add(class, label) => {
                *n += 1;
                let path = h
                    .class_dir(class)
                    .join(format!("new-{n}.{}", class.extension()));
                std::fs::write(&path, item_text(class, label)).map_err(|e| e.to_string())?;
            }
            Edit::Change(class, from, to) => {
                let path = find(h, class, from)?;
                std::fs::write(&path, item_text(class, to)).map_err(|e| e.to_string())?;
            }
            Edit::Delete(class, label) => {
                let path = find(h, class, label)?;
                std::fs::remove_file(&path).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Replays FIG. 16 in `root` (created; must not hold a previous run) and returns the
/// moments after every mount and every point T0-T5; prints them when `print`.
pub fn simulate(root: &Path, print: bool) -> Result<Vec<Moment>, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let store = Arc::new(
        SqliteStore::open_in_dir(root.join("server")).map_err(|e| format!("server store: {e}"))?,
    );
    provision(&store)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let svc = Arc::new(SyncService::new(
        store.clone(),
        Engine::new(EngineConfig::default()),
    ));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        http::serve(l, svc, HttpOptions::default(), None).map_err(|e| format!("serve: {e}"))
    })?;
    let mut srv = Server {
        url: format!("http://{}/sync", running.local_addr),
        store,
        running: Some(running),
    };
    let r = replay(root, &srv, &rt, print);
    if let Some(running) = srv.running.take() {
        rt.block_on(running.shutdown());
    }
    r
}

fn replay(
    root: &Path,
    srv: &Server,
    rt: &tokio::runtime::Runtime,
    print: bool,
) -> Result<Vec<Moment>, String> {
    let sim_dir = root.join("sim");
    FsSim::create(&sim_dir, SUBSCRIBER, PIN).map_err(|e| e.to_string())?;
    let mut hs = Vec::new();
    for (name, id, pw) in HANDSETS {
        let mut cfg = HandsetConfig::new(&srv.url);
        cfg.policy = syncml_client::GatePolicy::ALL;
        let mut h = FsHandset::init(&root.join(name), id, pw, cfg).map_err(|e| e.to_string())?;
        // Initial registration of each handset with the SIM (FIG. 10-A, 11-A).
        h.insert_sim(&sim_dir).map_err(|e| e.to_string())?;
        h.register(Some(PIN), Some(pw), true, true)
            .map_err(|e| e.to_string())?;
        h.remove_sim().map_err(|e| e.to_string())?;
        hs.push(h);
    }
    let mut moments = Vec::new();
    let mut files = 0;
    let snapshot = |hs: &[FsHandset], at: String, downloaded| -> Result<Moment, String> {
        let m = Moment {
            at,
            server: server_labels(&srv.store)?,
            handsets: [
                handset_labels(&hs[0])?,
                handset_labels(&hs[1])?,
                handset_labels(&hs[2])?,
            ],
            downloaded,
        };
        if print {
            print_moment(&m);
        }
        Ok(m)
    };
    // T0: the SIM is mounted on 10a (para. 0059).
    let mount = |h: &mut FsHandset, pw: &str| -> Result<Counts, String> {
        h.insert_sim(&sim_dir).map_err(|e| e.to_string())?;
        let o = rt
            .block_on(h.sync(
                HttpTransport::new(),
                &[],
                SyncMode::OneWayFromServer,
                Some(PIN),
                Some(pw),
            ))
            .map_err(|e| format!("download on {}: {e}", h.root().display()))?;
        let mut c = Counts::default();
        for s in &o.report.stores {
            c.added += s.received.added;
            c.replaced += s.received.replaced;
            c.deleted += s.received.deleted;
        }
        Ok(c)
    };
    let demount = |h: &mut FsHandset, pw: &str| -> Result<(), String> {
        let o = rt
            .block_on(h.sync(
                HttpTransport::new(),
                &[],
                SyncMode::OneWayFromClient,
                Some(PIN),
                Some(pw),
            ))
            .map_err(|e| format!("upload on {}: {e}", h.root().display()))?;
        if o.report.received() != 0 {
            return Err("an upload received data".into());
        }
        h.remove_sim().map_err(|e| e.to_string())?;
        Ok(())
    };
    let got = mount(&mut hs[0], HANDSETS[0].2)?;
    moments.push(snapshot(&hs, "T0".into(), Some((0, got)))?);
    for (i, (name, who, edits)) in UPDATES.iter().enumerate() {
        if i > 0 {
            let got = mount(&mut hs[*who], HANDSETS[*who].2)?;
            moments.push(snapshot(
                &hs,
                format!("mount {}", HANDSETS[*who].0),
                Some((*who, got)),
            )?);
        }
        edit(&hs[*who], edits, &mut files)?;
        if print {
            println!(
                "{} generates update data {name}: {edits:?}",
                HANDSETS[*who].0
            );
        }
        demount(&mut hs[*who], HANDSETS[*who].2)?;
        moments.push(snapshot(&hs, format!("T{}", i + 1), None)?);
    }
    // Para. 0065: the SIM on 10a once more; only b2 is new there.
    let got = mount(&mut hs[0], HANDSETS[0].2)?;
    moments.push(snapshot(&hs, "mount 10a".into(), Some((0, got)))?);
    Ok(moments)
}

fn print_moment(m: &Moment) {
    println!("== {} ==", m.at);
    if let Some((who, c)) = m.downloaded {
        println!(
            "  SIM mounted on {}: downloaded +{} ~{} -{}",
            HANDSETS[who].0, c.added, c.replaced, c.deleted
        );
    }
    println!("  server: [{}]", m.server.join(", "));
    for (i, h) in m.handsets.iter().enumerate() {
        println!("  {}:    [{}]", HANDSETS[i].0, h.join(", "));
    }
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir = PathBuf::from("fig16-data");
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--dir", Some(d)) => dir = PathBuf::from(d),
            _ => {
                eprintln!("usage: fig16-simulator [--dir DIR]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if dir.exists() {
        eprintln!(
            "fig16-simulator: error: {} exists; give a new --dir",
            dir.display()
        );
        return std::process::ExitCode::FAILURE;
    }
    match simulate(&dir, true) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fig16-simulator: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

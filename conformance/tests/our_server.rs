//! The real SyncEvolution client (Debian's `syncevolution`, Synthesis engine 3.4)
//! against OUR server (`syncml-server`, in-process, real HTTP on 127.0.0.1 and a real
//! SQLite file in a temporary directory).
//!
//! After every sync the data is compared item by item on both sides: the client's
//! files through the harness, the server's live items through the store API, both
//! normalised with [`normalize_vcard`] / [`normalize_icalendar`] (duplicates count:
//! the lists are compared with multiplicity). The wire messages SyncEvolution dumped
//! are decoded with syncml-core to check alert codes and statuses.
//!
//! Needs the Debian packages `syncevolution gcc libc6-dev`; without them every test
//! fails with the `apt-get install` line to run (these tests never skip). Set
//! `SYNCML_KEEP_TMP=1` to keep the directories (SQLite file, client logs, wire dumps)
//! and `RUST_LOG=syncml_server=debug` to see the server's log.

use conformance::syncevolution::{
    self, normalize_icalendar, normalize_vcard, Auth, Client, ClientConfig, Direction, Encoding,
    Mode, SyncMlVersion, SyncReport,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use syncml_core::model::{Command, SyncMl};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{ConflictPolicy, Engine, EngineConfig};
use syncml_server::store::{
    DatastoreKey, NewItem, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt,
    SyncKey, Timestamp,
};

const USER: &str = "test";
const PASSWORD: &str = "secret";
/// The origin of items written "by another handset" through the store API.
const OTHER_TERMINAL: &str = "other-terminal";

const ALICE: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-1\r\nFN:Alice Example\r\n\
N:Example;Alice;;;\r\nTEL;TYPE=WORK:+1 555 0100\r\nEMAIL:alice@example.org\r\nEND:VCARD\r\n";
const ALICE_EDITED: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:alice-1\r\nFN:Alice Example\r\n\
N:Example;Alice;;;\r\nTEL;TYPE=WORK:+1 555 0199\r\nEMAIL:alice@example.org\r\n\
NOTE:moved desks\r\nEND:VCARD\r\n";
const BOB: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Bob Example\r\nN:Example;Bob;;;\r\n\
NOTE:a note long enough to be folded by a careful writer\\, so the harness must\r\n  unfold it\r\n\
END:VCARD\r\n";
const CAROL: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\nN:Example;Carol;;;\r\n\
EMAIL;TYPE=HOME:carol@example.net\r\nEND:VCARD\r\n";
const CAROL_BY_A: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\n\
N:Example;Carol;;;\r\nEMAIL;TYPE=HOME:carol@example.net\r\nTEL;TYPE=CELL:+1 555 0111\r\n\
END:VCARD\r\n";
const CAROL_BY_B: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\n\
N:Example;Carol;;;\r\nEMAIL;TYPE=HOME:carol@example.net\r\nTEL;TYPE=CELL:+1 555 0222\r\n\
END:VCARD\r\n";
const DAVE: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dave Example\r\nN:Example;Dave;;;\r\n\
TEL;TYPE=HOME:+1 555 0104\r\nEND:VCARD\r\n";
const DAVE_EDITED: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Dave Example\r\nN:Example;Dave;;;\r\n\
TEL;TYPE=HOME:+1 555 0144\r\nORG:Example Corp\r\nEND:VCARD\r\n";
const ERIN: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Erin Example\r\nN:Example;Erin;;;\r\n\
EMAIL:erin@example.com\r\nEND:VCARD\r\n";
const FRANK: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Frank Example\r\nN:Example;Frank;;;\r\n\
TITLE:Engineer\r\nEND:VCARD\r\n";
const GINA: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Gina Example\r\nN:Example;Gina;;;\r\n\
URL:https://gina.example.org/\r\nEND:VCARD\r\n";
const HANK: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Hank Example\r\nN:Example;Hank;;;\r\n\
END:VCARD\r\n";

const MEETING: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//syncml-rs//conformance//EN\r\n\
BEGIN:VEVENT\r\nUID:meeting-1@example.org\r\nDTSTAMP:20240101T090000Z\r\n\
DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\nSUMMARY:Interop meeting\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";
const LUNCH: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//syncml-rs//conformance//EN\r\n\
BEGIN:VEVENT\r\nUID:lunch-1@example.org\r\nDTSTAMP:20240101T090000Z\r\n\
DTSTART:20240103T120000Z\r\nDTEND:20240103T130000Z\r\nSUMMARY:Team lunch\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

/// Server logs on stderr when `RUST_LOG` is set.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A temporary directory, kept when `SYNCML_KEEP_TMP` is set.
struct Scratch(conformance::scratch::Scratch);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(conformance::scratch::Scratch::new(&format!(
            "our-server-{name}"
        )))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Our server, in-process on 127.0.0.1 with its SQLite file under the scratch dir.
struct OurServer {
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
}

impl Drop for OurServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

impl OurServer {
    /// Provisions subscriber [`USER`] with one terminal (md5 and basic verifiers for
    /// [`PASSWORD`]) per device ID and starts serving.
    fn start(scratch: &Scratch, device_ids: &[&str], allow_basic: bool) -> OurServer {
        let terminals: Vec<(&str, &str)> = device_ids.iter().map(|d| (*d, PASSWORD)).collect();
        OurServer::start_terminals(scratch, &terminals, allow_basic)
    }

    /// Provisions subscriber [`USER`] with one terminal per (device ID, terminal
    /// password) and starts serving.
    fn start_terminals(
        scratch: &Scratch,
        terminals: &[(&str, &str)],
        allow_basic: bool,
    ) -> OurServer {
        OurServer::start_configured(scratch, terminals, allow_basic, ConflictPolicy::default())
    }

    /// [`start_terminals`](Self::start_terminals) with a conflict policy for every
    /// datastore.
    fn start_configured(
        scratch: &Scratch,
        terminals: &[(&str, &str)],
        allow_basic: bool,
        policy: ConflictPolicy,
    ) -> OurServer {
        init_tracing();
        let dir = scratch.path().join("server");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(SqliteStore::open_in_dir(&dir).unwrap_or_else(|e| panic!("{e}")));
        store
            .transaction(|tx| {
                tx.subscriber_create(
                    &NewSubscriber {
                        id: USER.into(),
                        display_name: None,
                        security_level: 0,
                    },
                    Timestamp::from_unix_secs(1),
                )?;
                for (id, password) in terminals {
                    tx.terminal_register(
                        &NewTerminal {
                            terminal_id: (*id).into(),
                            subscriber_id: USER.into(),
                            md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(
                                USER, password,
                            ))),
                            basic_verifier: Some(Secret::new(
                                syncml_server::password::hash(password)
                                    .unwrap_or_else(|e| panic!("{e}")),
                            )),
                            classes: vec![],
                            registered_by: RegisteredBy::Operator,
                        },
                        Timestamp::from_unix_secs(1),
                    )?;
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("provisioning: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let mut cfg = EngineConfig::default();
        cfg.allow_basic_without_tls = allow_basic;
        cfg.conflict_policy = policy;
        let svc = Arc::new(SyncService::new(store.clone(), Engine::new(cfg)));
        let running = rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            http::serve(l, svc, HttpOptions::default(), None).unwrap_or_else(|e| panic!("{e}"))
        });
        let url = format!("http://{}/sync", running.local_addr);
        OurServer {
            url,
            running: Some(running),
            rt,
            store,
        }
    }

    /// The live items of one of the subscriber's datastores (`contacts`, `calendar`).
    fn items(&self, datastore: &str) -> Vec<String> {
        self.store
            .read(|tx| tx.items_list_live(DatastoreKey::new(USER, datastore)))
            .unwrap_or_else(|e| panic!("reading {datastore}: {e}"))
            .into_iter()
            .map(|i| String::from_utf8_lossy(&i.data).into_owned())
            .collect()
    }

    /// Normalised server contacts, sorted (duplicates kept).
    fn contacts(&self) -> Vec<String> {
        sorted(self.items("contacts").iter().map(|t| normalize_vcard(t)))
    }

    /// Normalised server calendar items, sorted (duplicates kept).
    fn events(&self) -> Vec<String> {
        sorted(self.items("calendar").iter().map(|t| normalize_event(t)))
    }

    /// Writes an item as another handset of the subscriber would (between sessions).
    fn put_from_other_terminal(&self, datastore: &str, content_type: &str, text: &str) {
        self.store
            .transaction(|tx| {
                tx.items_put(
                    DatastoreKey::new(USER, datastore),
                    Some(OTHER_TERMINAL),
                    &[NewItem {
                        guid: None,
                        content_type: content_type.into(),
                        data: text.as_bytes().to_vec(),
                    }],
                    Timestamp::from_unix_secs(2),
                )
            })
            .unwrap_or_else(|e| panic!("writing to {datastore}: {e}"));
    }
}

/// The strings, sorted (a multiset comparison: duplicates stay).
fn sorted(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v
}

/// What a side holding exactly these vCards looks like after normalisation.
fn expect_vcards(vcards: &[&str]) -> Vec<String> {
    sorted(vcards.iter().map(|t| normalize_vcard(t)))
}

/// [`normalize_icalendar`], minus a `DESCRIPTION` that only repeats the `SUMMARY`.
///
/// The Synthesis engine adds `DESCRIPTION` = `SUMMARY` to events it sends when the
/// peer's DevInf has no CTCap saying `SUMMARY` is supported ("because some peers only
/// support that"), and drops it again on receipt. Our server stores items as received
/// and advertises no CTCap (a CTCap would make the client strip every property it
/// does not list), so its copy carries that extra line.
fn normalize_event(text: &str) -> String {
    let norm = normalize_icalendar(text);
    let summary = norm
        .lines()
        .find_map(|l| l.strip_prefix("SUMMARY:"))
        .map(str::to_string);
    norm.lines()
        .filter(|l| match (l.strip_prefix("DESCRIPTION:"), &summary) {
            (Some(d), Some(s)) => d != s,
            _ => true,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a side holding exactly these events looks like after normalisation.
fn expect_events(events: &[&str]) -> Vec<String> {
    sorted(events.iter().map(|t| normalize_event(t)))
}

/// The client's contacts, normalised and sorted.
fn client_contacts(client: &Client) -> Vec<String> {
    let items = client.read_contacts().unwrap_or_else(|e| panic!("{e}"));
    sorted(items.values().map(|t| normalize_vcard(t)))
}

/// The client's events, normalised and sorted.
fn client_events(client: &Client) -> Vec<String> {
    let items = client.read_calendar().unwrap_or_else(|e| panic!("{e}"));
    sorted(items.values().map(|t| normalize_event(t)))
}

/// The file name under which the client stores a contact with this content.
fn client_file_of(client: &Client, vcard: &str) -> String {
    let want = normalize_vcard(vcard);
    let items: BTreeMap<String, String> = client.read_contacts().unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&String> = items
        .iter()
        .filter(|(_, t)| normalize_vcard(t) == want)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names.len(),
        1,
        "exactly one client file holds {want:?}: {items:?}"
    );
    names[0].clone()
}

/// A SyncEvolution client in `scratch/name`; fails loudly if SyncEvolution is missing.
fn make_client(scratch: &Scratch, name: &str, config: ClientConfig) -> Client {
    Client::new(&scratch.path().join(name), config)
        .unwrap_or_else(|e| panic!("setting up the SyncEvolution client: {e}"))
}

/// Decodes every dumped wire message of a run with syncml-core.
fn decode_all(report: &SyncReport) -> Vec<(Direction, SyncMl)> {
    report
        .messages
        .iter()
        .map(|m| {
            let bytes = m.read().unwrap_or_else(|e| panic!("{e}"));
            let msg = syncml_core::decode(&bytes)
                .unwrap_or_else(|e| panic!("syncml-core cannot decode {}: {e}", m.path.display()));
            (m.direction, msg)
        })
        .collect()
}

/// The Alert codes in a message, in order.
fn alerts(msg: &SyncMl) -> Vec<u32> {
    msg.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Alert(a) => a.data.map(|code| code.0),
            _ => None,
        })
        .collect()
}

/// (command name, status code) of every Status in a message.
fn statuses(msg: &SyncMl) -> Vec<(String, u16)> {
    msg.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd.clone(), s.data.0)),
            _ => None,
        })
        .collect()
}

/// Runs a sync that must succeed, and checks the wire: the client's first message
/// alerts `mode` for every datastore, our server answers with the same sync type,
/// and every status either side sends is a success (2xx), apart from those in `allow`.
fn sync_ok(client: &Client, mode: Mode, datastores: usize, allow: &[u16]) -> SyncReport {
    sync_checked(client, mode, mode.alert_code(), datastores, allow)
}

/// [`sync_ok`] where our server answers the client's alert `mode` with `server_alert`
/// (201 when it forces a slow sync).
fn sync_checked(
    client: &Client,
    mode: Mode,
    server_alert: u32,
    datastores: usize,
    allow: &[u16],
) -> SyncReport {
    let report = client
        .sync(mode)
        .unwrap_or_else(|e| panic!("running syncevolution: {e}"));
    eprintln!(
        "[{}] sync {mode}: {:.2}s, status {:?}, {} messages",
        client.config().device_id,
        report.duration.as_secs_f64(),
        report.status,
        report.messages.len()
    );
    let report = report.ensure_success().unwrap_or_else(|e| panic!("{e}"));
    let decoded = decode_all(&report);
    let first_out = decoded
        .iter()
        .find(|(d, _)| *d == Direction::Outgoing)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no outgoing message: {}", report.summary()));
    let want = vec![mode.alert_code(); datastores];
    assert_eq!(
        alerts(first_out),
        want,
        "client alerts: {}",
        report.summary()
    );
    let first_in = decoded
        .iter()
        .find(|(d, _)| *d == Direction::Incoming)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no reply dumped: {}", report.summary()));
    assert_eq!(
        alerts(first_in),
        vec![server_alert; datastores],
        "server alerts: {}",
        report.summary()
    );
    for (dir, msg) in &decoded {
        for (cmd, code) in statuses(msg) {
            let ok = (200..300).contains(&code) || allow.contains(&code);
            assert!(
                ok,
                "{dir:?} message {}: status {code} for {cmd}: {}",
                msg.header.msg_id,
                report.summary()
            );
        }
    }
    // The client found our DevInf for the datastores it addresses (`addressbook`):
    // otherwise it ignores our content types and sync capabilities.
    let log = report
        .log_file()
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    assert!(
        !log.contains("running blind sync attempt"),
        "SyncEvolution found no DevInf for a datastore: {}",
        report.summary()
    );
    report
}

/// Whether our server sent an Alert 222 ("next message") in this run.
fn server_sent_alert_222(report: &SyncReport) -> bool {
    decode_all(report)
        .iter()
        .filter(|(d, _)| *d == Direction::Incoming)
        .any(|(_, m)| alerts(m).contains(&222))
}

/// The content types of the server's live items of a datastore.
fn server_content_types(server: &OurServer, datastore: &str) -> Vec<String> {
    server
        .store
        .read(|tx| tx.items_list_live(DatastoreKey::new(USER, datastore)))
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|i| i.content_type)
        .collect()
}

/// One step of the six-mode sequence: a preparation, a sync, the expected contents of
/// both sides afterwards.
struct Step {
    mode: Mode,
    /// Changes made before the sync, on the client and/or on the server.
    prepare: fn(&Client, &OurServer),
    /// Contacts the client holds afterwards.
    client_contacts: &'static [&'static str],
    /// Contacts the server holds afterwards.
    server_contacts: &'static [&'static str],
    /// Events on both sides afterwards.
    events: &'static [&'static str],
}

/// Writes a contact file on the client.
fn write(client: &Client, name: &str, vcard: &str) {
    client
        .write_contact(name, vcard)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Slow, two-way, one-way-from-server, one-way-from-client, refresh-from-server,
/// refresh-from-client, then two-way again to prove the maps.
const SIX_MODES: &[Step] = &[
    Step {
        mode: Mode::Slow,
        prepare: |c, _| {
            write(c, "alice.vcf", ALICE);
            write(c, "bob.vcf", BOB);
            c.write_event("meeting.ics", MEETING)
                .unwrap_or_else(|e| panic!("{e}"));
        },
        client_contacts: &[ALICE, BOB],
        server_contacts: &[ALICE, BOB],
        events: &[MEETING],
    },
    Step {
        mode: Mode::TwoWay,
        prepare: |c, _| {
            write(c, "alice.vcf", ALICE_EDITED);
            write(c, "carol.vcf", CAROL);
        },
        client_contacts: &[ALICE_EDITED, BOB, CAROL],
        server_contacts: &[ALICE_EDITED, BOB, CAROL],
        events: &[MEETING],
    },
    Step {
        mode: Mode::OneWayFromServer,
        prepare: |_, s| {
            s.put_from_other_terminal("contacts", "text/vcard", DAVE);
            s.put_from_other_terminal("calendar", "text/calendar", LUNCH);
        },
        client_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE],
        server_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE],
        events: &[MEETING, LUNCH],
    },
    Step {
        mode: Mode::OneWayFromClient,
        prepare: |c, s| {
            write(c, "erin.vcf", ERIN);
            s.put_from_other_terminal("contacts", "text/vcard", FRANK);
        },
        client_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE, ERIN],
        server_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE, ERIN, FRANK],
        events: &[MEETING, LUNCH],
    },
    Step {
        mode: Mode::RefreshFromServer,
        prepare: |c, _| {
            c.clear_contacts().unwrap_or_else(|e| panic!("{e}"));
            c.clear_calendar().unwrap_or_else(|e| panic!("{e}"));
        },
        client_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE, ERIN, FRANK],
        server_contacts: &[ALICE_EDITED, BOB, CAROL, DAVE, ERIN, FRANK],
        events: &[MEETING, LUNCH],
    },
    Step {
        mode: Mode::RefreshFromClient,
        prepare: |c, s| {
            let bob = client_file_of(c, BOB);
            c.delete_contact(&bob).unwrap_or_else(|e| panic!("{e}"));
            write(c, "gina.vcf", GINA);
            s.put_from_other_terminal("contacts", "text/vcard", HANK);
        },
        client_contacts: &[ALICE_EDITED, CAROL, DAVE, ERIN, FRANK, GINA],
        server_contacts: &[ALICE_EDITED, CAROL, DAVE, ERIN, FRANK, GINA],
        events: &[MEETING, LUNCH],
    },
    Step {
        mode: Mode::TwoWay,
        prepare: |c, s| {
            // A server-side edit must reach the client's existing file (maps right
            // after refresh-from-client), a client-side delete must find its item.
            let dave = s
                .store
                .read(|tx| tx.items_list_live(DatastoreKey::new(USER, "contacts")))
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .find(|i| {
                    normalize_vcard(&String::from_utf8_lossy(&i.data)) == normalize_vcard(DAVE)
                })
                .unwrap_or_else(|| panic!("Dave is on the server"));
            s.store
                .transaction(|tx| {
                    tx.items_put(
                        DatastoreKey::new(USER, "contacts"),
                        Some(OTHER_TERMINAL),
                        &[NewItem {
                            guid: Some(dave.guid.clone()),
                            content_type: "text/vcard".into(),
                            data: DAVE_EDITED.as_bytes().to_vec(),
                        }],
                        Timestamp::from_unix_secs(3),
                    )
                })
                .unwrap_or_else(|e| panic!("{e}"));
            let erin = client_file_of(c, ERIN);
            c.delete_contact(&erin).unwrap_or_else(|e| panic!("{e}"));
        },
        client_contacts: &[ALICE_EDITED, CAROL, DAVE_EDITED, FRANK, GINA],
        server_contacts: &[ALICE_EDITED, CAROL, DAVE_EDITED, FRANK, GINA],
        events: &[MEETING, LUNCH],
    },
];

/// Runs [`SIX_MODES`] with one client in `encoding` (OMA DS 1.2, md5).
fn six_modes(encoding: Encoding) {
    let started = Instant::now();
    let name = format!("six-modes-{encoding:?}").to_lowercase();
    let scratch = Scratch::new(&name);
    let device = format!("se-{name}");
    let server = OurServer::start(&scratch, &[&device], false);
    let mut config = ClientConfig::new(&server.url, USER, PASSWORD);
    config.device_id = device;
    config.encoding = encoding;
    config.calendar_uri = Some("calendar".into());
    let client = make_client(&scratch, "client", config);

    for (i, step) in SIX_MODES.iter().enumerate() {
        (step.prepare)(&client, &server);
        let report = sync_ok(&client, step.mode, 2, &[]);
        for m in &report.messages {
            assert_eq!(m.encoding, encoding, "{}", m.path.display());
        }
        let what = format!("step {} ({}) in {encoding:?}", i + 1, step.mode);
        assert_eq!(
            client_contacts(&client),
            expect_vcards(step.client_contacts),
            "client contacts after {what}"
        );
        assert_eq!(
            server.contacts(),
            expect_vcards(step.server_contacts),
            "server contacts after {what}"
        );
        assert_eq!(
            client_events(&client),
            expect_events(step.events),
            "client events after {what}"
        );
        assert_eq!(
            server.events(),
            expect_events(step.events),
            "server events after {what}"
        );
        // Stored as sent, in the formats the client prefers: no down-conversion to
        // vCard 2.1 or vCalendar 1.0.
        for t in server_content_types(&server, "contacts") {
            assert_eq!(t, "text/vcard", "{what}");
        }
        for t in server_content_types(&server, "calendar") {
            assert_eq!(t, "text/calendar", "{what}");
        }
    }
    eprintln!(
        "six modes in {encoding:?}: {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn six_modes_xml() {
    six_modes(Encoding::Xml);
}

#[test]
fn six_modes_wbxml() {
    six_modes(Encoding::Wbxml);
}

/// A client of `server` with this device ID (one terminal of subscriber [`USER`]).
fn client_config(server: &OurServer, device_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new(&server.url, USER, PASSWORD);
    config.device_id = device_id.into();
    config
}

/// Both sides hold exactly `contacts` (compared item by item, with multiplicity).
#[track_caller]
fn assert_contacts(what: &str, client: &Client, server: &OurServer, contacts: &[&str]) {
    let want = expect_vcards(contacts);
    assert_eq!(
        client_contacts(client),
        want,
        "{what}: contacts of {}",
        client.config().device_id
    );
    assert_eq!(server.contacts(), want, "{what}: contacts on the server");
}

/// The `VerDTD` of every message of a run (both directions).
fn ver_dtds(report: &SyncReport) -> Vec<String> {
    decode_all(report)
        .into_iter()
        .map(|(_, m)| m.header.ver_dtd)
        .collect()
}

/// The credential type of the client's first message.
fn cred_type(report: &SyncReport) -> Option<String> {
    decode_all(report)
        .into_iter()
        .find(|(d, _)| *d == Direction::Outgoing)
        .and_then(|(_, m)| m.header.cred)
        .and_then(|c| c.meta)
        .and_then(|m| m.r#type)
}

/// SyncML 1.1 with one auth scheme: a slow sync uploads, a two-way sync carries a
/// local edit, add and delete up and a server-side add down.
fn syncml_1_1(auth: Auth, encoding: Encoding) {
    let name = format!("ds11-{auth:?}-{encoding:?}").to_lowercase();
    let scratch = Scratch::new(&name);
    let device = format!("se-{name}");
    let server = OurServer::start(&scratch, &[&device], auth == Auth::Basic);
    let mut config = client_config(&server, &device);
    config.syncml_version = SyncMlVersion::V1_1;
    config.auth = auth;
    config.encoding = encoding;
    let client = make_client(&scratch, "client", config);
    let wire_auth = match auth {
        Auth::Md5 => "syncml:auth-md5",
        Auth::Basic => "syncml:auth-basic",
    };

    write(&client, "alice.vcf", ALICE);
    write(&client, "bob.vcf", BOB);
    let report = sync_ok(&client, Mode::Slow, 1, &[]);
    assert!(
        ver_dtds(&report).iter().all(|v| v == "1.1"),
        "{:?}",
        ver_dtds(&report)
    );
    assert_eq!(cred_type(&report).as_deref(), Some(wire_auth));
    assert_contacts("after the 1.1 slow sync", &client, &server, &[ALICE, BOB]);

    write(&client, "alice.vcf", ALICE_EDITED);
    write(&client, "carol.vcf", CAROL);
    client
        .delete_contact("bob.vcf")
        .unwrap_or_else(|e| panic!("{e}"));
    server.put_from_other_terminal("contacts", "text/vcard", DAVE);
    let report = sync_ok(&client, Mode::TwoWay, 1, &[]);
    assert!(
        ver_dtds(&report).iter().all(|v| v == "1.1"),
        "{:?}",
        ver_dtds(&report)
    );
    assert_contacts(
        "after the 1.1 two-way sync",
        &client,
        &server,
        &[ALICE_EDITED, CAROL, DAVE],
    );
}

#[test]
fn syncml_1_1_md5_wbxml() {
    syncml_1_1(Auth::Md5, Encoding::Wbxml);
}

#[test]
fn syncml_1_1_basic_xml() {
    syncml_1_1(Auth::Basic, Encoding::Xml);
}

/// Two SyncEvolution clients (two terminals of one subscriber) exchange adds, updates
/// and deletes through our server: no duplicates after slow syncs, and a conflicting
/// edit of one contact on both ends with the server's version on both (server wins).
#[test]
fn two_clients_exchange_changes_without_duplicates() {
    let started = Instant::now();
    let scratch = Scratch::new("two-clients");
    let server = OurServer::start(&scratch, &["se-handset-a", "se-handset-b"], false);
    let a = make_client(&scratch, "a", client_config(&server, "se-handset-a"));
    let mut config_b = client_config(&server, "se-handset-b");
    config_b.encoding = Encoding::Xml;
    let b = make_client(&scratch, "b", config_b);

    // A uploads; B already holds one of A's contacts and one of its own: its first
    // (slow) sync must match Bob instead of duplicating him.
    write(&a, "alice.vcf", ALICE);
    write(&a, "bob.vcf", BOB);
    sync_ok(&a, Mode::Slow, 1, &[]);
    write(&b, "bob.vcf", BOB);
    write(&b, "carol.vcf", CAROL);
    sync_ok(&b, Mode::Slow, 1, &[]);
    assert_contacts("B's slow sync", &b, &server, &[ALICE, BOB, CAROL]);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts("A's two-way after B", &a, &server, &[ALICE, BOB, CAROL]);

    // Updates, deletes and adds on both ends.
    write(&a, "alice.vcf", ALICE_EDITED);
    a.delete_contact("bob.vcf")
        .unwrap_or_else(|e| panic!("{e}"));
    write(&b, "dave.vcf", DAVE);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    sync_ok(&b, Mode::TwoWay, 1, &[]);
    assert_contacts(
        "B after A's edit and delete",
        &b,
        &server,
        &[ALICE_EDITED, CAROL, DAVE],
    );
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts("A after B's add", &a, &server, &[ALICE_EDITED, CAROL, DAVE]);
    let carol_b = client_file_of(&b, CAROL);
    b.delete_contact(&client_file_of(&b, DAVE))
        .unwrap_or_else(|e| panic!("{e}"));
    sync_ok(&b, Mode::TwoWay, 1, &[]);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts("A after B's delete", &a, &server, &[ALICE_EDITED, CAROL]);

    // A conflicting edit of Carol: A syncs first, so B's edit loses (419) and B gets
    // A's version; nobody ends with two Carols.
    write(&a, &client_file_of(&a, CAROL), CAROL_BY_A);
    write(&b, &carol_b, CAROL_BY_B);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    let report = sync_ok(&b, Mode::TwoWay, 1, &[419]);
    let conflict = decode_all(&report)
        .iter()
        .filter(|(d, _)| *d == Direction::Incoming)
        .flat_map(|(_, m)| statuses(m))
        .any(|(cmd, code)| cmd == "Replace" && code == 419);
    assert!(conflict, "no 419 for B's Replace: {}", report.summary());
    assert_contacts(
        "B after the conflict",
        &b,
        &server,
        &[ALICE_EDITED, CAROL_BY_A],
    );
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts(
        "A after the conflict",
        &a,
        &server,
        &[ALICE_EDITED, CAROL_BY_A],
    );

    // An edit on A against a delete on B: the edit wins (nothing is lost), B's
    // Delete gets 419 and B receives Alice again.
    write(&a, &client_file_of(&a, ALICE_EDITED), ALICE);
    b.delete_contact(&client_file_of(&b, ALICE_EDITED))
        .unwrap_or_else(|e| panic!("{e}"));
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    let report = sync_ok(&b, Mode::TwoWay, 1, &[419]);
    let refused = decode_all(&report)
        .iter()
        .filter(|(d, _)| *d == Direction::Incoming)
        .flat_map(|(_, m)| statuses(m))
        .any(|(cmd, code)| cmd == "Delete" && code == 419);
    assert!(refused, "no 419 for B's Delete: {}", report.summary());
    assert_contacts("B after edit-vs-delete", &b, &server, &[ALICE, CAROL_BY_A]);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts("A after edit-vs-delete", &a, &server, &[ALICE, CAROL_BY_A]);

    // Slow syncs match everything: still no duplicates, and the two-way syncs that
    // follow move nothing. B asks for one; A's is forced by the server, which lost
    // A's sync state (508 and Alert 201 for A's two-way Alert 200).
    sync_ok(&b, Mode::Slow, 1, &[]);
    assert_contacts("B's second slow sync", &b, &server, &[ALICE, CAROL_BY_A]);
    server
        .store
        .transaction(|tx| tx.sync_state_delete(SyncKey::new(USER, "se-handset-a", "contacts")))
        .unwrap_or_else(|e| panic!("{e}"));
    let report = sync_checked(&a, Mode::TwoWay, 201, 1, &[508]);
    assert_eq!(report.datastore_mode("addressbook"), Some("slow"));
    let refresh_required = decode_all(&report)
        .iter()
        .filter(|(d, _)| *d == Direction::Incoming)
        .flat_map(|(_, m)| statuses(m))
        .any(|(cmd, code)| cmd == "Alert" && code == 508);
    assert!(refresh_required, "508 for A's Alert: {}", report.summary());
    assert_contacts("A's forced slow sync", &a, &server, &[ALICE, CAROL_BY_A]);
    write(&b, "erin.vcf", ERIN);
    sync_ok(&b, Mode::TwoWay, 1, &[]);
    sync_ok(&a, Mode::TwoWay, 1, &[]);
    assert_contacts(
        "A after the slow syncs",
        &a,
        &server,
        &[ALICE, CAROL_BY_A, ERIN],
    );
    assert_contacts(
        "B after the slow syncs",
        &b,
        &server,
        &[ALICE, CAROL_BY_A, ERIN],
    );
    eprintln!("two clients: {:.1}s", started.elapsed().as_secs_f64());
}

/// A wrong password: the sync fails (exit status non-zero), our server answers 401
/// with an md5 challenge, and nothing is written (no items, no sync state).
#[test]
fn wrong_password_fails_and_writes_nothing() {
    syncevolution::ensure_installed().unwrap_or_else(|e| panic!("{e}"));
    let scratch = Scratch::new("bad-password");
    let server = OurServer::start(&scratch, &["se-bad-password"], false);
    let mut config = client_config(&server, "se-bad-password");
    config.password = "not-the-password".into();
    config.calendar_uri = Some("calendar".into());
    let client = make_client(&scratch, "client", config);
    write(&client, "alice.vcf", ALICE);
    client
        .write_event("meeting.ics", MEETING)
        .unwrap_or_else(|e| panic!("{e}"));

    let report = client
        .sync(Mode::Slow)
        .unwrap_or_else(|e| panic!("running syncevolution: {e}"));
    eprintln!("bad password sync: {:.2}s", report.duration.as_secs_f64());
    assert!(!report.success(), "{}", report.summary());
    assert!(!report.timed_out, "{}", report.summary());
    assert!(
        matches!(report.exit_code, Some(c) if c != 0),
        "{}",
        report.summary()
    );
    let incoming: Vec<SyncMl> = decode_all(&report)
        .into_iter()
        .filter(|(d, _)| *d == Direction::Incoming)
        .map(|(_, m)| m)
        .collect();
    assert!(!incoming.is_empty(), "{}", report.summary());
    for m in &incoming {
        // AUTH-13: only statuses, the header's first, each command of the client's
        // message answered with the header's code (401; 417 once the client's retries
        // ran into the lockout).
        let st = statuses(m);
        assert_eq!(st.len(), m.body.commands.len(), "only statuses");
        assert_eq!(st[0].0, "SyncHdr");
        let code = st[0].1;
        assert!(
            [401, 417].contains(&code),
            "header {code}: {}",
            report.summary()
        );
        assert!(st.iter().all(|(_, c)| *c == code), "{st:?}");
        assert!(
            st.len() > 1,
            "the client's commands are answered too: {st:?}"
        );
        assert!(m.header.resp_uri.is_none(), "no session is kept");
    }
    assert_eq!(
        incoming.first().map(|m| statuses(m)[0].1),
        Some(401),
        "the first answer is 401"
    );
    assert!(server.items("contacts").is_empty());
    assert!(server.items("calendar").is_empty());
    let states = server
        .store
        .read(|tx| tx.sync_states_for_terminal(USER, "se-bad-password"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(states.is_empty(), "no anchors were written: {states:?}");
}

/// A contact with some bulk, numbered.
fn bulky_contact(i: usize) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person {i:02} Example\r\nN:Example;Person {i:02};;;\r\n\
         NOTE:{}\r\nEND:VCARD\r\n",
        format!("line {i} of a long note. ").repeat(40).trim_end()
    )
}

/// Packages 3 and 4 spread over several messages (a small client MaxMsgSize): every
/// item arrives once on each side.
#[test]
fn multi_message_packages() {
    let scratch = Scratch::new("multi-msg");
    let server = OurServer::start(&scratch, &["se-multi-msg"], false);
    let mut config = client_config(&server, "se-multi-msg");
    config.max_msg_size = Some(10240); // SyncEvolution's minimum
    let client = make_client(&scratch, "client", config);
    let mine: Vec<String> = (0..24).map(bulky_contact).collect();
    for (i, c) in mine.iter().enumerate() {
        write(&client, &format!("p{i:02}.vcf"), c);
    }
    let report = sync_ok(&client, Mode::Slow, 1, &[]);
    let out = report.outgoing().count();
    assert!(
        out >= 3,
        "package 3 spans several messages: {}",
        report.summary()
    );
    assert!(
        server_sent_alert_222(&report),
        "we ask for the rest of package 3 with Alert 222: {}",
        report.summary()
    );
    let refs: Vec<&str> = mine.iter().map(String::as_str).collect();
    assert_contacts("multi-message upload", &client, &server, &refs);

    let theirs: Vec<String> = (24..48).map(bulky_contact).collect();
    for c in &theirs {
        server.put_from_other_terminal("contacts", "text/vcard", c);
    }
    let report = sync_ok(&client, Mode::TwoWay, 1, &[]);
    let incoming = report.incoming().count();
    assert!(
        incoming >= 3,
        "package 4 spans several messages: {}",
        report.summary()
    );
    // Each client message during package 4 gets the next part at once (no Alert 222
    // ping-pong: one round trip per part).
    assert!(!server_sent_alert_222(&report), "{}", report.summary());
    let all: Vec<&str> = mine.iter().chain(&theirs).map(String::as_str).collect();
    assert_contacts("multi-message download", &client, &server, &all);

    client.clear_contacts().unwrap_or_else(|e| panic!("{e}"));
    let report = sync_ok(&client, Mode::RefreshFromServer, 1, &[]);
    assert!(!server_sent_alert_222(&report), "{}", report.summary());
    assert_contacts("multi-message refresh", &client, &server, &all);
}

/// A first slow sync matches the client's items against items another handset wrote
/// in its own formatting (here: plain vCards; SyncEvolution sends its items padded
/// with empty properties such as `NICKNAME:` and `ADR:;;;;;;`): no duplicates.
#[test]
fn slow_sync_matches_items_written_by_other_handsets() {
    let scratch = Scratch::new("slow-match");
    let server = OurServer::start(&scratch, &["se-slow-match"], false);
    server.put_from_other_terminal("contacts", "text/vcard", FRANK);
    server.put_from_other_terminal("contacts", "text/vcard", BOB);
    server.put_from_other_terminal("contacts", "text/vcard", HANK);
    let client = make_client(&scratch, "client", client_config(&server, "se-slow-match"));
    write(&client, "frank.vcf", FRANK);
    write(&client, "bob.vcf", BOB);
    write(&client, "gina.vcf", GINA);
    sync_ok(&client, Mode::Slow, 1, &[]);
    assert_contacts(
        "slow sync against another handset's items",
        &client,
        &server,
        &[BOB, FRANK, GINA, HANK],
    );
}

// ---------------------------------------------------------------------------------
// FIG. 16: three SyncEvolution clients as handsets 10a, 10b, 10c of one subscriber.
// ---------------------------------------------------------------------------------

/// A one-line contact for FIG. 16's data items (a1, b1, ...).
fn fig16_card(name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{name};;;;\r\nEND:VCARD\r\n")
}

fn fig16_cards(names: &[&str]) -> Vec<String> {
    sorted(names.iter().map(|n| normalize_vcard(&fig16_card(n))))
}

/// (Add, Replace, Delete) commands our server sent in a run.
fn server_changes(report: &SyncReport) -> (usize, usize, usize) {
    let mut n = (0, 0, 0);
    for (dir, msg) in decode_all(report) {
        if dir != Direction::Incoming {
            continue;
        }
        for c in &msg.body.commands {
            if let Command::Sync(s) = c {
                for inner in &s.commands {
                    match inner {
                        Command::Add(_) => n.0 += 1,
                        Command::Replace(_) => n.1 += 1,
                        Command::Delete(_) => n.2 += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    n
}

/// Mounting the SIM (para. 0041): one download, one-way from the server. Checks that
/// exactly `changes` (adds, replaces, deletes) came down and that the handset then
/// holds `holds`.
#[track_caller]
fn fig16_mount(what: &str, h: &Client, changes: (usize, usize, usize), holds: &[&str]) {
    let report = sync_ok(h, Mode::OneWayFromServer, 1, &[]);
    assert_eq!(server_changes(&report), changes, "{what}: what came down");
    assert_eq!(client_contacts(h), fig16_cards(holds), "{what}: handset");
}

/// Removing the SIM (para. 0042): the handset's updates go up, one-way from the client.
#[track_caller]
fn fig16_demount(what: &str, h: &Client, server: &OurServer, server_holds: &[&str]) {
    let report = sync_ok(h, Mode::OneWayFromClient, 1, &[]);
    assert_eq!(
        server_changes(&report),
        (0, 0, 0),
        "{what}: an upload receives nothing"
    );
    assert_eq!(
        server.contacts(),
        fig16_cards(server_holds),
        "{what}: server"
    );
}

/// FIG. 16 (para. 0059-0065) with three real SyncEvolution clients, each a terminal
/// with its own device ID and terminal password, one SIM moved between them (which
/// client syncs). Para. 0059-0065 name the adds; an update (a1 → a1', at T4) and a
/// delete (b1, at T5) ride along, so the last two downloads also carry them.
#[test]
fn fig16_three_syncevolution_handsets_one_sim() {
    let scratch = Scratch::new("fig16");
    let server = OurServer::start_terminals(
        &scratch,
        &[("10a", "pw-10a"), ("10b", "pw-10b"), ("10c", "pw-10c")],
        false,
    );
    let handset = |id: &str| {
        let mut c = ClientConfig::new(&server.url, USER, format!("pw-{id}"));
        c.device_id = id.into();
        make_client(&scratch, id, c)
    };
    let (a, b, c) = (handset("10a"), handset("10b"), handset("10c"));
    // Initial registration: each empty handset's first (slow) sync with an empty server.
    for h in [&a, &b, &c] {
        sync_ok(h, Mode::Slow, 1, &[]);
    }
    // T0-T1: SIM in 10a; a1 made there goes up when the SIM is removed (para. 0059-0060).
    fig16_mount("T0 10a", &a, (0, 0, 0), &[]);
    write(&a, "a1.vcf", &fig16_card("a1"));
    fig16_demount("T1 10a", &a, &server, &["a1"]);

    // T2: SIM in 10b: a1 comes down; b1 goes up (para. 0061).
    fig16_mount("T2 10b", &b, (1, 0, 0), &["a1"]);
    write(&b, "b1.vcf", &fig16_card("b1"));
    fig16_demount("T2 10b", &b, &server, &["a1", "b1"]);

    // T3: SIM in 10c: a1 + b1 come down; c1 goes up (para. 0062).
    fig16_mount("T3 10c", &c, (2, 0, 0), &["a1", "b1"]);
    write(&c, "c1.vcf", &fig16_card("c1"));
    fig16_demount("T3 10c", &c, &server, &["a1", "b1", "c1"]);

    // T4: SIM in 10a: exactly b1 + c1 come down; a2 goes up, and a1 is edited (para. 0063).
    fig16_mount("T4 10a", &a, (2, 0, 0), &["a1", "b1", "c1"]);
    write(&a, "a2.vcf", &fig16_card("a2"));
    write(&a, "a1.vcf", &fig16_card("a1-edited"));
    fig16_demount("T4 10a", &a, &server, &["a1-edited", "b1", "c1", "a2"]);

    // T5: SIM in 10b: exactly c1 + a2 come down, with a1's edit; b2 goes up and b1 is
    // deleted (para. 0064).
    fig16_mount("T5 10b", &b, (2, 1, 0), &["a1-edited", "b1", "c1", "a2"]);
    write(&b, "b2.vcf", &fig16_card("b2"));
    b.delete_contact("b1.vcf").unwrap_or_else(|e| panic!("{e}"));
    fig16_demount("T5 10b", &b, &server, &["a1-edited", "c1", "a2", "b2"]);

    // Then SIM in 10a: only b2 (and b1's delete) has not been reflected there (para. 0065).
    fig16_mount("T5+ 10a", &a, (1, 0, 1), &["a1-edited", "c1", "a2", "b2"]);
    // 10c has not held the SIM since T3.
    assert_eq!(client_contacts(&c), fig16_cards(&["a1", "b1", "c1"]), "10c");
    assert_eq!(
        server.contacts(),
        fig16_cards(&["a1-edited", "c1", "a2", "b2"]),
        "server at the end"
    );

    // Each handset syncs only with its own password: 10b with 10a's is refused (last,
    // because the client's retries count towards the subscriber's lockout).
    let mut wrong = ClientConfig::new(&server.url, USER, "pw-10a");
    wrong.device_id = "10b".into();
    let report = make_client(&scratch, "10b-wrong", wrong)
        .sync(Mode::TwoWay)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!report.success(), "10b with 10a's password must be refused");
    assert_eq!(
        server.contacts().len(),
        4,
        "nothing written by the refused run"
    );
}

/// The non-default conflict policies with two SyncEvolution clients: the same contact
/// edited on both, A syncs first, then B. Client-wins keeps B's edit (208) and A
/// receives it; duplicate keeps both versions (209) and both clients end up with both.
#[test]
fn client_wins_and_duplicate_conflict_policies_with_two_syncevolution_clients() {
    for (policy, code, want) in [
        (ConflictPolicy::ClientWins, 208, &[ALICE, CAROL_BY_B][..]),
        (
            ConflictPolicy::Duplicate,
            209,
            &[ALICE, CAROL_BY_A, CAROL_BY_B][..],
        ),
    ] {
        let scratch = Scratch::new("policies");
        let server = OurServer::start_configured(
            &scratch,
            &[("se-pol-a", PASSWORD), ("se-pol-b", PASSWORD)],
            false,
            policy,
        );
        let a = make_client(&scratch, "a", client_config(&server, "se-pol-a"));
        let b = make_client(&scratch, "b", client_config(&server, "se-pol-b"));
        write(&a, "alice.vcf", ALICE);
        write(&a, "carol.vcf", CAROL);
        sync_ok(&a, Mode::Slow, 1, &[]);
        sync_ok(&b, Mode::Slow, 1, &[]);
        assert_contacts(
            &format!("{policy:?}: B's first sync"),
            &b,
            &server,
            &[ALICE, CAROL],
        );
        write(&a, "carol.vcf", CAROL_BY_A);
        write(&b, &client_file_of(&b, CAROL), CAROL_BY_B);
        sync_ok(&a, Mode::TwoWay, 1, &[]);
        let report = sync_ok(&b, Mode::TwoWay, 1, &[code]);
        let reported = decode_all(&report)
            .iter()
            .filter(|(d, _)| *d == Direction::Incoming)
            .flat_map(|(_, m)| statuses(m))
            .any(|(cmd, c)| cmd == "Replace" && c == code);
        assert!(
            reported,
            "{policy:?}: no {code} for B's Replace: {}",
            report.summary()
        );
        assert_contacts(
            &format!("{policy:?}: B after the conflict"),
            &b,
            &server,
            want,
        );
        sync_ok(&a, Mode::TwoWay, 1, &[]);
        assert_contacts(
            &format!("{policy:?}: A after the conflict"),
            &a,
            &server,
            want,
        );
        // Nothing moves any more.
        let report = sync_ok(&b, Mode::TwoWay, 1, &[]);
        assert_eq!(server_changes(&report), (0, 0, 0), "{policy:?}: settled");
    }
}

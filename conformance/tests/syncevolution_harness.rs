//! Proves the SyncEvolution client harness (`conformance::syncevolution`) against
//! SyncEvolution's own SyncML server (`conformance::syncevolution::server`): real syncs
//! over HTTP on 127.0.0.1, both encodings, both auth schemes, SyncML 1.2 and 1.1, and
//! the wire dumps decoded with syncml-core.
//!
//! Needs the Debian packages `syncevolution syncevolution-http python3-twisted dbus gcc
//! libc6-dev`; without them every test fails with the `apt-get install` line to run.
//! These tests never skip. Set `SYNCML_KEEP_TMP=1` to keep the client and server
//! directories (logs, wire dumps) for inspection.

use conformance::syncevolution::server::{Server, ServerConfig};
use conformance::syncevolution::{
    self, normalize_icalendar, normalize_vcard, normalized_vcards, Auth, Client, ClientConfig,
    Direction, Encoding, Mode, SyncMlVersion, SyncReport,
};
use std::path::Path;
use syncml_core::model::Command;
use syncml_core::SyncMl;

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
const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//syncml-rs//conformance//EN\r\n\
BEGIN:VEVENT\r\nUID:meeting-1@example.org\r\nDTSTAMP:20240101T090000Z\r\n\
DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\nSUMMARY:Interop meeting\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

/// A temporary directory, kept when `SYNCML_KEEP_TMP` is set.
struct Scratch(conformance::scratch::Scratch);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(conformance::scratch::Scratch::new(&format!(
            "syncevo-{name}"
        )))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Starts a SyncEvolution server, failing loudly (with the apt-get line) if it cannot.
fn start_server(scratch: &Scratch, config: ServerConfig) -> Server {
    let start = std::time::Instant::now();
    let server = Server::start(&scratch.path().join("server"), config)
        .unwrap_or_else(|e| panic!("starting SyncEvolution's SyncML server: {e}"));
    eprintln!(
        "server up at {} in {:.2}s",
        server.url(),
        start.elapsed().as_secs_f64()
    );
    server
}

fn client(scratch: &Scratch, name: &str, config: ClientConfig) -> Client {
    Client::new(&scratch.path().join(name), config)
        .unwrap_or_else(|e| panic!("setting up the SyncEvolution client: {e}"))
}

/// Runs a sync that must succeed, printing its timing.
fn sync_ok(client: &Client, mode: Mode) -> SyncReport {
    let report = client
        .sync(mode)
        .unwrap_or_else(|e| panic!("running syncevolution: {e}"));
    eprintln!(
        "sync {mode}: {:.2}s, status {:?}",
        report.duration.as_secs_f64(),
        report.status
    );
    report.ensure_success().unwrap_or_else(|e| panic!("{e}"))
}

/// Decodes every dumped wire message with syncml-core; returns (direction, message).
fn decode_all(report: &SyncReport, encoding: Encoding) -> Vec<(Direction, SyncMl)> {
    assert!(
        report.messages.len() >= 4,
        "expected at least 2 round trips of dumps: {}",
        report.summary()
    );
    report
        .messages
        .iter()
        .map(|m| {
            assert_eq!(m.encoding, encoding, "{}", m.path.display());
            let bytes = m.read().unwrap_or_else(|e| panic!("{e}"));
            let msg = syncml_core::decode(&bytes)
                .unwrap_or_else(|e| panic!("syncml-core cannot decode {}: {e}", m.path.display()));
            (m.direction, msg)
        })
        .collect()
}

/// The Alert codes in a message.
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

/// The first message the client sent.
fn first_outgoing(decoded: &[(Direction, SyncMl)]) -> &SyncMl {
    decoded
        .iter()
        .find(|(d, _)| *d == Direction::Outgoing)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("no outgoing message dumped"))
}

fn cred_type(msg: &SyncMl) -> Option<String> {
    msg.header
        .cred
        .as_ref()
        .and_then(|c| c.meta.as_ref())
        .and_then(|m| m.r#type.clone())
}

fn server_contacts(server: &Server) -> Vec<String> {
    normalized_vcards(&server.read_contacts().unwrap_or_else(|e| panic!("{e}")))
}

fn client_contacts(client: &Client) -> Vec<String> {
    normalized_vcards(&client.read_contacts().unwrap_or_else(|e| panic!("{e}")))
}

fn expected(vcards: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vcards.iter().map(|t| normalize_vcard(t)).collect();
    v.sort();
    v
}

#[test]
fn tools_are_installed_and_the_curl_shim_builds() {
    let tools = syncevolution::ensure_installed().unwrap_or_else(|e| panic!("{e}"));
    assert!(tools.syncevolution.is_file());
    assert!(tools.curlfix.is_file(), "{}", tools.curlfix.display());
    syncevolution::server::ensure_installed().unwrap_or_else(|e| panic!("{e}"));
}

/// md5 + WBXML + OMA DS 1.2: slow sync uploads, two-way propagates a local edit and a
/// new item, refresh-from-server restores a wiped client.
#[test]
fn md5_wbxml_slow_two_way_and_refresh_from_server() {
    let scratch = Scratch::new("md5-wbxml");
    let server = start_server(&scratch, ServerConfig::default());
    let client = client(
        &scratch,
        "client",
        ClientConfig::new(server.url(), "test", "secret"),
    );
    let w = |name: &str, text: &str| {
        client
            .write_contact(name, text)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    w("alice.vcf", ALICE);
    w("bob.vcf", BOB);

    // 1. Slow sync uploads both contacts.
    let report = sync_ok(&client, Mode::Slow);
    assert_eq!(report.datastore_mode("addressbook"), Some("slow"));
    assert_eq!(server_contacts(&server), expected(&[ALICE, BOB]));
    assert_eq!(server.read_contacts().map(|m| m.len()).ok(), Some(2));
    let decoded = decode_all(&report, Encoding::Wbxml);
    let first = first_outgoing(&decoded);
    assert_eq!(first.header.ver_dtd, "1.2");
    assert_eq!(first.header.source.loc_uri, "syncevo-interop-client");
    assert_eq!(cred_type(first).as_deref(), Some("syncml:auth-md5"));
    assert_eq!(alerts(first), [201]);

    // 2. A local edit and a new contact propagate with a two-way sync.
    w("alice.vcf", ALICE_EDITED);
    w("carol.vcf", CAROL);
    let report = sync_ok(&client, Mode::TwoWay);
    assert_eq!(report.datastore_mode("addressbook"), Some("two-way"));
    assert_eq!(
        alerts(first_outgoing(&decode_all(&report, Encoding::Wbxml))),
        [200]
    );
    assert_eq!(
        server_contacts(&server),
        expected(&[ALICE_EDITED, BOB, CAROL])
    );

    // 3. Refresh from server restores a wiped client.
    client.clear_contacts().unwrap_or_else(|e| panic!("{e}"));
    assert!(client_contacts(&client).is_empty());
    let report = sync_ok(&client, Mode::RefreshFromServer);
    assert_eq!(
        alerts(first_outgoing(&decode_all(&report, Encoding::Wbxml))),
        [205]
    );
    assert_eq!(
        client_contacts(&client),
        expected(&[ALICE_EDITED, BOB, CAROL])
    );
    assert_eq!(client_contacts(&client), server_contacts(&server));
}

/// basic auth + plain XML, contacts and calendar: a first two-way sync (done as slow)
/// uploads both datastores, then a local delete propagates with a two-way sync.
#[test]
fn basic_xml_contacts_and_calendar() {
    let scratch = Scratch::new("basic-xml");
    let server = start_server(&scratch, ServerConfig::default());
    let mut config = ClientConfig::new(server.url(), "test", "secret");
    config.auth = Auth::Basic;
    config.encoding = Encoding::Xml;
    config.calendar_uri = Some("calendar".into());
    let client = client(&scratch, "client", config);
    client
        .write_contact("carol.vcf", CAROL)
        .and_then(|()| client.write_event("meeting.ics", EVENT))
        .unwrap_or_else(|e| panic!("{e}"));

    // A first sync asked for as two-way becomes a slow sync (no anchors yet); with
    // prevent_slow_sync false (the default) that is accepted.
    let report = sync_ok(&client, Mode::TwoWay);
    assert_eq!(report.datastore_mode("addressbook"), Some("slow"));
    assert_eq!(report.datastore_mode("calendar"), Some("slow"));
    let decoded = decode_all(&report, Encoding::Xml);
    let first = first_outgoing(&decoded);
    assert_eq!(cred_type(first).as_deref(), Some("syncml:auth-basic"));
    assert_eq!(alerts(first), [201, 201]);
    assert_eq!(server_contacts(&server), expected(&[CAROL]));
    let events = server.read_calendar().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 1, "{events:?}");
    let stored = events.values().next().map(|t| normalize_icalendar(t));
    assert_eq!(stored, Some(normalize_icalendar(EVENT)));

    client
        .delete_contact("carol.vcf")
        .unwrap_or_else(|e| panic!("{e}"));
    let report = sync_ok(&client, Mode::TwoWay);
    decode_all(&report, Encoding::Xml);
    assert_eq!(server_contacts(&server), Vec::<String>::new());
    assert_eq!(
        server.read_calendar().map(|m| m.len()).ok(),
        Some(1),
        "the calendar is untouched"
    );
}

/// SyncML 1.1: a fresh client pulls a contact the server already has.
#[test]
fn syncml_1_1_refresh_from_server_into_a_fresh_client() {
    let scratch = Scratch::new("ds11");
    let server = start_server(&scratch, ServerConfig::default());
    server
        .write_contact("seeded", BOB)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config = ClientConfig::new(server.url(), "test", "secret");
    config.syncml_version = SyncMlVersion::V1_1;
    let client = client(&scratch, "client", config);

    let report = sync_ok(&client, Mode::RefreshFromServer);
    let decoded = decode_all(&report, Encoding::Wbxml);
    let first = first_outgoing(&decoded);
    assert_eq!(first.header.ver_dtd, "1.1");
    assert_eq!(alerts(first), [205]);
    assert_eq!(client_contacts(&client), expected(&[BOB]));
}

/// A wrong password fails: non-zero exit, no success status, 401 on the wire, and
/// nothing reaches the server's store.
#[test]
fn wrong_password_fails() {
    let scratch = Scratch::new("badpw");
    let server = start_server(&scratch, ServerConfig::default());
    let client = client(
        &scratch,
        "client",
        ClientConfig::new(server.url(), "test", "not-the-password"),
    );
    client
        .write_contact("alice.vcf", ALICE)
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
    assert_ne!(report.status, Some(200), "{}", report.summary());
    let answered_401 = report
        .incoming()
        .filter_map(|m| m.read().ok())
        .filter_map(|b| syncml_core::decode(&b).ok())
        .flat_map(|m| m.body.commands)
        .any(|c| matches!(c, Command::Status(s) if s.cmd == "SyncHdr" && s.data.0 == 401));
    assert!(answered_401, "no 401 on the wire: {}", report.summary());
    assert!(server_contacts(&server).is_empty());
}

/// A server that accepts the connection but never answers: the harness kills the
/// client at its timeout and says so.
#[test]
fn timeout_kills_a_hanging_sync() {
    let scratch = Scratch::new("timeout");
    // Connections complete in the listen backlog; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("binding a loopback port: {e}"));
    let port = silent.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
    let mut config = ClientConfig::new(format!("http://127.0.0.1:{port}/sync"), "u", "p");
    config.timeout = std::time::Duration::from_secs(2);
    let client = client(&scratch, "client", config);
    let report = client
        .sync(Mode::Slow)
        .unwrap_or_else(|e| panic!("running syncevolution: {e}"));
    assert!(report.timed_out, "{}", report.summary());
    assert!(!report.success());
    assert_eq!(report.exit_code, None);
    assert_eq!(report.signal, Some(9), "{}", report.summary());
    assert!(report.duration < std::time::Duration::from_secs(10));
    drop(silent);
}

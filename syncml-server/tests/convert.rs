//! Content conversion between handsets over real HTTP and a real SQLite store, with the
//! real `syncml-client` session: each handset's DevInf (sent in package 1) names the one
//! format its data store receives, the server stores every item in the format it was
//! written in and sends it to each handset in that handset's format.

mod driver;

use std::sync::Arc;

use driver::{provision, Handset};
use syncml_client::mem::MemoryStore;
use syncml_client::SyncMode;
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{DatastoreKey, SqliteStore, Store, StoreExt};

const SUB: &str = "262010000000077";
const T_VCARD30: &str = "IMEI:350000000000031";
const T_VCARD21: &str = "IMEI:350000000000032";
const T_ICAL20: &str = "IMEI:350000000000033";
const T_VCAL10: &str = "IMEI:350000000000034";

struct Node {
    url: String,
    store: Arc<SqliteStore>,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

fn start() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    provision(
        store.as_ref(),
        SUB,
        &[T_VCARD30, T_VCARD21, T_ICAL20, T_VCAL10],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(
        store.clone() as Arc<dyn Store>,
        Engine::new(EngineConfig::default()),
    ));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, svc, HttpOptions::default(), None).expect("serve")
    });
    Node {
        url: format!("http://{}/sync", running.local_addr),
        store,
        running: Some(running),
        rt,
        _dir: dir,
    }
}

fn handset(id: &str, local: &str, server: &str, ctype: &str, version: &str) -> Handset {
    let mut h = Handset::new(SUB, id);
    h.store = MemoryStore::new(local, server, ctype, version);
    h
}

fn sync(h: &mut Handset, node: &Node) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt
        .block_on(h.sync(std::slice::from_ref(&node.url), 0, false, SyncMode::TwoWay))
        .expect("session");
    assert!(r.is_success(), "{r:?}");
}

/// The only item of `h`, as text.
fn only_item(h: &Handset) -> String {
    let items = h.contents();
    assert_eq!(items.len(), 1, "{items:?}");
    items[0].clone()
}

/// `(content type, data)` of every live item of the subscriber's datastore.
fn stored(node: &Node, datastore: &str) -> Vec<(String, String)> {
    node.store
        .read(|tx| tx.items_list_live(DatastoreKey::new(SUB, datastore)))
        .expect("items")
        .into_iter()
        .map(|i| {
            (
                i.content_type,
                String::from_utf8_lossy(&i.data).into_owned(),
            )
        })
        .collect()
}

#[test]
fn a_vcard_30_contact_reaches_a_vcard_21_handset_as_21_and_its_edit_returns_as_30() {
    let node = start();
    let mut a = handset(T_VCARD30, "./contacts", "contacts", "text/vcard", "3.0");
    let mut b = handset(T_VCARD21, "./contacts", "contacts", "text/x-vcard", "2.1");

    a.store.add(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Müller;Jörg;;;\r\nFN:Jörg Müller\r\n\
TEL;TYPE=WORK,VOICE:+49 30 1234\r\nNOTE:Met at the fair\\, 2023\\nCall back\r\n\
END:VCARD\r\n",
    );
    sync(&mut a, &node);
    sync(&mut b, &node);

    let card21 = only_item(&b);
    assert!(card21.contains("VERSION:2.1\r\n"), "{card21}");
    assert!(
        card21.contains("TEL;WORK;VOICE:+49 30 1234\r\n"),
        "{card21}"
    );
    assert!(
        card21.contains("NOTE;ENCODING=QUOTED-PRINTABLE:Met at the fair, 2023=0D=0ACall back\r\n"),
        "{card21}"
    );
    assert!(
        card21.contains("N;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:M=C3=BCller;J=C3=B6rg;;;\r\n"),
        "{card21}"
    );
    assert_eq!(
        stored(&node, "contacts")[0].0,
        "text/vcard",
        "stored as written"
    );

    // B edits the card in its own format; the server stores the 2.1 version...
    let luid = b.store.find(card21.as_bytes()).expect("luid");
    let edited = card21.replace("+49 30 1234", "+49 30 9999");
    assert!(b.store.update(&luid, edited));
    sync(&mut b, &node);
    let s = stored(&node, "contacts");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "text/x-vcard", "stored in the type it came in");

    // ...and A gets it back as 3.0.
    sync(&mut a, &node);
    let card30 = only_item(&a);
    assert!(card30.contains("VERSION:3.0\r\n"), "{card30}");
    assert!(
        card30.contains("TEL;TYPE=WORK,VOICE:+49 30 9999\r\n"),
        "{card30}"
    );
    assert!(
        card30.contains("NOTE:Met at the fair\\, 2023\\nCall back\r\n"),
        "{card30}"
    );
    assert!(card30.contains("N:Müller;Jörg;;;\r\n"), "{card30}");
    assert!(!card30.contains("QUOTED-PRINTABLE"), "{card30}");
}

#[test]
fn an_icalendar_20_event_reaches_a_vcalendar_10_handset_as_10_and_its_edit_returns_as_20() {
    let node = start();
    let mut d = handset(T_ICAL20, "./calendar", "calendar", "text/calendar", "2.0");
    let mut c = handset(
        T_VCAL10,
        "./calendar",
        "calendar",
        "text/x-vcalendar",
        "1.0",
    );

    d.store.add(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
UID:ev-1\r\nSUMMARY:Planning\\, Q3\r\nDTSTART:20240708T090000Z\r\n\
DTEND:20240708T100000Z\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\nSTATUS:CONFIRMED\r\n\
BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Planning\r\n\
END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    sync(&mut d, &node);
    sync(&mut c, &node);

    let v10 = only_item(&c);
    assert!(v10.contains("VERSION:1.0\r\n"), "{v10}");
    assert!(v10.contains("SUMMARY:Planning, Q3\r\n"), "{v10}");
    assert!(v10.contains("RRULE:W1 MO #4\r\n"), "{v10}");
    assert!(
        v10.contains("DALARM:20240708T084500Z;;;Planning\r\n"),
        "{v10}"
    );
    assert!(!v10.contains("VALARM"), "{v10}");
    assert_eq!(stored(&node, "calendar")[0].0, "text/calendar");

    // C moves the event by an hour in vCalendar 1.0...
    let luid = c.store.find(v10.as_bytes()).expect("luid");
    let edited = v10
        .replace("T090000Z", "T100000Z")
        .replace("DTEND:20240708T100000Z", "DTEND:20240708T110000Z")
        .replace("T084500Z", "T094500Z");
    assert!(c.store.update(&luid, edited));
    sync(&mut c, &node);
    assert_eq!(stored(&node, "calendar")[0].0, "text/x-vcalendar");

    // ...and D gets iCalendar 2.0 back.
    sync(&mut d, &node);
    let v20 = only_item(&d);
    assert!(v20.contains("VERSION:2.0\r\n"), "{v20}");
    assert!(v20.contains("SUMMARY:Planning\\, Q3\r\n"), "{v20}");
    assert!(v20.contains("DTSTART:20240708T100000Z\r\n"), "{v20}");
    assert!(v20.contains("DTEND:20240708T110000Z\r\n"), "{v20}");
    assert!(
        v20.contains("RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\n"),
        "{v20}"
    );
    assert!(
        v20.contains("BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:Planning\r\nEND:VALARM\r\n"),
        "{v20}"
    );
}

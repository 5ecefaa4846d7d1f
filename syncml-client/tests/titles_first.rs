//! Titles first (para. 0094) against our real server over HTTP: summaries on download
//! (an OMA DS 1.2 field filter in the sync Alert), bodies on access (a `Get` of
//! `<datastore>?luid=<LUID>`), and no summary ever overwriting a full item.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Server, PIN, SUBSCRIBER};
use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::{
    Applied, Change, ChangeId, ChangeKind, ClientError, DataStore, Engine, EngineConfig, Handset,
    HttpTransport, LocalItem, ServerChange, SessionError, SessionReport, StoreError, SyncMode,
    SyncState, TitlesFirst, Transport, TransportError, Warning,
};

/// A contact whose full vCard is large (a 4 KiB note), so a summary is much smaller.
fn big_card(name: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:{name};\r\nFN:{name}\r\nTEL;CELL:+4915100{}\r\nNOTE:{}\r\nEND:VCARD\r\n",
        name.len(),
        "n".repeat(4096)
    )
}

/// The summary the server sends of [`big_card`] for the properties `N`, `FN`.
fn summary_of(name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:2.1\r\nN:{name};\r\nFN:{name}\r\nEND:VCARD\r\n")
}

/// A transport that counts the bytes it receives (the server's replies).
#[derive(Debug)]
struct Metered {
    inner: HttpTransport,
    down: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Transport for Metered {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        let fut = self.inner.post(url, content_type, body);
        let (down, requests) = (self.down.clone(), self.requests.clone());
        async move {
            let r = fut.await?;
            requests.fetch_add(1, Ordering::SeqCst);
            down.fetch_add(r.1.len(), Ordering::SeqCst);
            Ok(r)
        }
    }
}

/// A handset with one contacts store, optionally titles first (`N`, `FN`).
struct Phone {
    terminal: MemoryTerminal,
    ui: ScriptedUi,
    contacts: MemoryStore,
    engine: Engine<Metered>,
    down: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Phone {
    fn new(srv: &Server, subscriber: &str, terminal_id: &str, titles_first: bool) -> Phone {
        srv.provision(subscriber, terminal_id, "pw");
        let mut cfg = EngineConfig::new(srv.url.clone());
        if titles_first {
            cfg.titles_first.insert(
                "./contacts".into(),
                TitlesFirst::with_properties(["N", "FN"]),
            );
        }
        let (down, requests) = (Arc::default(), Arc::default());
        Phone {
            terminal: MemoryTerminal::new(terminal_id, "pw"),
            ui: ScriptedUi::answering(PIN, "pw"),
            contacts: MemoryStore::contacts(),
            engine: Engine::new(
                cfg,
                Metered {
                    inner: HttpTransport::new(),
                    down: Arc::clone(&down),
                    requests: Arc::clone(&requests),
                },
            ),
            down,
            requests,
        }
    }

    fn sync_store(
        &mut self,
        srv: &Server,
        sim: &mut MemorySim,
        store: &mut dyn DataStore,
        mode: SyncMode,
    ) -> Result<SessionReport, ClientError> {
        let Phone {
            terminal,
            ui,
            engine,
            ..
        } = self;
        srv.block_on(engine.sync(
            Handset {
                sim: Some(sim),
                terminal,
                ui,
            },
            &mut [store],
            &[mode],
        ))
    }

    fn sync(&mut self, srv: &Server, sim: &mut MemorySim) -> SessionReport {
        let mut store = std::mem::replace(&mut self.contacts, MemoryStore::contacts());
        let r = self.sync_store(srv, sim, &mut store, SyncMode::TwoWay);
        self.contacts = store;
        let r = r.expect("sync");
        assert!(r.is_success(), "{r:?}");
        r
    }

    fn fetch(
        &mut self,
        srv: &Server,
        sim: &mut MemorySim,
        luid: &str,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let Phone {
            terminal,
            ui,
            contacts,
            engine,
            ..
        } = self;
        srv.block_on(engine.fetch_body(
            Handset {
                sim: Some(sim),
                terminal,
                ui,
            },
            contacts,
            luid,
        ))
    }

    fn luid_of(&self, summary: &str) -> String {
        self.contacts
            .find(summary.as_bytes())
            .unwrap_or_else(|| panic!("no item {summary:?}"))
    }
}

/// A server holding Ann's and Bob's full cards, written by a normal terminal.
fn server_with_cards() -> (Server, MemorySim) {
    let srv = common::start();
    let mut sim = common::sim();
    let mut writer = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000001", false);
    writer.contacts.add(big_card("Ann"));
    writer.contacts.add(big_card("Bob"));
    writer.sync(&srv, &mut sim);
    assert_eq!(srv.items(SUBSCRIBER, "contacts").len(), 2);
    (srv, sim)
}

fn titles_phone(srv: &Server, sim: &mut MemorySim) -> Phone {
    let mut p = Phone::new(srv, SUBSCRIBER, "IMEI:100000000000002", true);
    p.sync(srv, sim);
    p
}

#[test]
fn a_titles_first_download_brings_only_summaries() {
    let (srv, mut sim) = server_with_cards();
    let p = titles_phone(&srv, &mut sim);
    assert_eq!(
        p.contacts.contents(),
        [summary_of("Ann"), summary_of("Bob")],
        "only N and FN in the VCARD frame"
    );
    for name in ["Ann", "Bob"] {
        let luid = p.luid_of(&summary_of(name));
        assert!(p.contacts.is_summary_only(&luid));
        assert_eq!(
            p.contacts.full_size(&luid),
            Some(big_card(name).len() as u64)
        );
    }
    // The same download without titles first: the difference is the two notes (less
    // the summary marks, about 70 bytes of XML per item).
    let mut normal = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000003", false);
    normal.sync(&srv, &mut sim);
    let (titles_down, full_down) = (
        p.down.load(Ordering::SeqCst),
        normal.down.load(Ordering::SeqCst),
    );
    assert!(
        full_down - titles_down >= 2 * (4096 - 128),
        "titles first downloaded {titles_down} bytes, a full download {full_down}"
    );
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        [big_card("Ann"), big_card("Bob")],
        "the full items stay on the server"
    );
}

#[test]
fn a_normal_terminal_still_gets_full_items() {
    let (srv, mut sim) = server_with_cards();
    let _titles = titles_phone(&srv, &mut sim);
    let mut normal = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000003", false);
    normal.sync(&srv, &mut sim);
    assert_eq!(
        normal.contacts.contents(),
        [big_card("Ann"), big_card("Bob")]
    );
    let luid = normal.luid_of(&big_card("Ann"));
    assert!(!normal.contacts.is_summary_only(&luid));
    assert!(normal.down.load(Ordering::SeqCst) > 2 * 4096);
}

#[test]
fn accessing_an_item_fetches_exactly_its_body() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    let bob = p.luid_of(&summary_of("Bob"));
    let (before_down, before_req) = (
        p.down.load(Ordering::SeqCst),
        p.requests.load(Ordering::SeqCst),
    );
    let body = p.fetch(&srv, &mut sim, &bob).expect("fetch");
    assert_eq!(body.as_deref(), Some(big_card("Bob").as_bytes()));
    assert_eq!(p.contacts.get(&bob), Some(big_card("Bob").as_bytes()));
    assert!(!p.contacts.is_summary_only(&bob));
    let ann = p.luid_of(&summary_of("Ann"));
    assert!(p.contacts.is_summary_only(&ann), "Ann is still a summary");
    assert_eq!(
        p.requests.load(Ordering::SeqCst) - before_req,
        1,
        "one round trip"
    );
    let fetched = p.down.load(Ordering::SeqCst) - before_down;
    assert!(
        fetched > 4096 && fetched < 2 * 4096,
        "one body came down ({fetched} bytes), not two"
    );
    assert_eq!(
        p.contacts.pending(),
        0,
        "storing a body is not a local change"
    );
    // The next sync exchanges nothing: the body was no change.
    let r = p.sync(&srv, &mut sim);
    assert_eq!((r.sent(), r.received()), (0, 0));
}

#[test]
fn a_fetched_body_can_be_edited_and_uploads_in_full() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    let ann = p.luid_of(&summary_of("Ann"));
    assert!(
        !p.contacts
            .update(&ann, "BEGIN:VCARD\r\nN:Ann;\r\nEND:VCARD\r\n"),
        "the store refuses to edit a summary"
    );
    assert_eq!(p.contacts.pending(), 0);
    p.fetch(&srv, &mut sim, &ann).expect("fetch");
    let edited = big_card("Ann").replace("NOTE:", "NOTE:edited ");
    assert!(p.contacts.update(&ann, edited.clone()));
    let r = p.sync(&srv, &mut sim);
    assert_eq!(r.sent(), 1);
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), [edited, big_card("Bob")]);
}

/// A store that lets a summary be edited (as a careless implementation would): its
/// change log offers the edited summary as a Replace.
struct Careless(MemoryStore, Option<Change>);

impl DataStore for Careless {
    fn local_uri(&self) -> &str {
        self.0.local_uri()
    }
    fn server_uri(&self) -> &str {
        self.0.server_uri()
    }
    fn content_type(&self) -> (&str, &str) {
        self.0.content_type()
    }
    fn changes(&mut self) -> Result<Vec<Change>, StoreError> {
        let mut c = self.0.changes()?;
        c.extend(self.1.clone());
        Ok(c)
    }
    fn all_items(&mut self) -> Result<Vec<LocalItem>, StoreError> {
        self.0.all_items()
    }
    fn apply(&mut self, change: ServerChange) -> Result<Applied, StoreError> {
        self.0.apply(change)
    }
    fn acknowledge(&mut self, changes: &[ChangeId]) -> Result<(), StoreError> {
        if let Some(c) = &self.1 {
            if changes.contains(&c.id()) {
                self.1 = None;
            }
        }
        self.0.acknowledge(changes)
    }
    fn erase_local(&mut self) -> Result<(), StoreError> {
        self.0.erase_local()
    }
    fn item_count(&mut self) -> Result<usize, StoreError> {
        self.0.item_count()
    }
    fn sync_state(&mut self) -> Result<SyncState, StoreError> {
        self.0.sync_state()
    }
    fn set_sync_state(&mut self, state: &SyncState) -> Result<(), StoreError> {
        self.0.set_sync_state(state)
    }
    fn supports_summaries(&self) -> bool {
        true
    }
    fn is_summary(&mut self, luid: &str) -> Result<bool, StoreError> {
        self.0.is_summary(luid)
    }
}

#[test]
fn an_edit_of_a_summary_only_item_is_never_uploaded() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    let ann = p.luid_of(&summary_of("Ann"));
    let edit = Change {
        luid: ann.clone(),
        kind: ChangeKind::Replace,
        data: Some(summary_of("Ann Edited").into_bytes()),
        content_type: None,
        version: 99,
        sim_less: false,
    };
    let mut careless = Careless(p.contacts.clone(), Some(edit));
    let r = p
        .sync_store(&srv, &mut sim, &mut careless, SyncMode::TwoWay)
        .expect("sync");
    assert_eq!(r.sent(), 0, "nothing uploaded");
    assert_eq!(r.stores[0].unsent, 1);
    assert!(r.warnings.contains(&Warning::SummaryNotUploaded {
        store: "./contacts".into(),
        luid: ann,
    }));
    assert!(careless.1.is_some(), "the edit stays pending");
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        [big_card("Ann"), big_card("Bob")],
        "the full items are untouched"
    );
}

#[test]
fn a_slow_sync_neither_uploads_nor_duplicates_summaries() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    let mut store = p.contacts.clone();
    let r = p
        .sync_store(&srv, &mut sim, &mut store, SyncMode::Slow)
        .expect("slow sync");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.sent(), 0);
    assert_eq!(store.contents(), [summary_of("Ann"), summary_of("Bob")]);
    let bob = store.find(summary_of("Bob").as_bytes()).expect("Bob");
    assert!(store.is_summary_only(&bob));
    assert_eq!(
        srv.items(SUBSCRIBER, "contacts"),
        [big_card("Ann"), big_card("Bob")]
    );
    // The new LUIDs are mapped: Bob's body comes by its new LUID.
    p.contacts = store;
    let body = p.fetch(&srv, &mut sim, &bob).expect("fetch");
    assert_eq!(body.as_deref(), Some(big_card("Bob").as_bytes()));
}

#[test]
fn a_refresh_from_client_is_refused_while_summaries_are_held() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    let mut store = p.contacts.clone();
    let requests = p.requests.load(Ordering::SeqCst);
    let err = p
        .sync_store(&srv, &mut sim, &mut store, SyncMode::RefreshFromClient)
        .expect_err("refused");
    assert!(
        matches!(
            err,
            ClientError::Session(SessionError::SummariesHeld { ref store }) if store == "./contacts"
        ),
        "{err:?}"
    );
    assert_eq!(p.requests.load(Ordering::SeqCst), requests, "nothing sent");
    assert_eq!(srv.items(SUBSCRIBER, "contacts").len(), 2);
}

#[test]
fn an_unknown_luid_gets_no_body() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    assert_eq!(p.fetch(&srv, &mut sim, "999").expect("fetch"), None);
}

#[test]
fn another_subscribers_luid_or_guid_cannot_be_fetched() {
    let (srv, mut sim) = server_with_cards();
    let mut p = titles_phone(&srv, &mut sim);
    // Another subscriber's handset holds three items under LUIDs 1, 2, 3.
    let mut other_sim = MemorySim::new("001019999999999", PIN);
    let mut other = Phone::new(&srv, "001019999999999", "IMEI:200000000000001", false);
    for name in ["Xavier", "Yolanda", "Zed"] {
        other.contacts.add(big_card(name));
    }
    other.sync(&srv, &mut other_sim);
    let zed_guid = srv
        .guid_of("001019999999999", "contacts", &big_card("Zed"))
        .expect("Zed on the server");
    let zed_luid = other.luid_of(&big_card("Zed"));
    assert!(p.contacts.get(&zed_luid).is_none(), "we hold no such LUID");
    assert_eq!(p.fetch(&srv, &mut sim, &zed_luid).expect("fetch"), None);
    assert_eq!(p.fetch(&srv, &mut sim, &zed_guid).expect("fetch"), None);
    // A LUID both handsets use resolves through our own map only.
    let ann = p.luid_of(&summary_of("Ann"));
    assert!(
        other.contacts.get(&ann).is_some(),
        "the other handset uses it too"
    );
    assert_eq!(
        p.fetch(&srv, &mut sim, &ann).expect("fetch").as_deref(),
        Some(big_card("Ann").as_bytes())
    );
}

#[test]
fn an_icalendar_summary_keeps_its_nested_components_over_wbxml() {
    let srv = common::start();
    let mut sim = common::sim();
    let calendar = || MemoryStore::new("./calendar", "calendar", "text/calendar", "2.0");
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:Lunch\r\nDTSTART:20261127T120000Z\r\nDTEND:20261127T130000Z\r\nDESCRIPTION:a long agenda\r\nLOCATION:Canteen\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let mut writer = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000001", false);
    let mut cal = calendar();
    cal.add(event);
    let r = writer
        .sync_store(&srv, &mut sim, &mut cal, SyncMode::TwoWay)
        .expect("upload");
    assert_eq!(r.sent(), 1);

    let mut reader = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000002", false);
    let cfg = reader.engine.config_mut();
    cfg.encoding = syncml_core::Encoding::Wbxml;
    cfg.titles_first.insert(
        "./calendar".into(),
        TitlesFirst::for_content_type("text/calendar"),
    );
    let mut cal = calendar();
    let r = reader
        .sync_store(&srv, &mut sim, &mut cal, SyncMode::TwoWay)
        .expect("download");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        cal.contents(),
        ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nSUMMARY:Lunch\r\nDTSTART:20261127T120000Z\r\nDTEND:20261127T130000Z\r\nBEGIN:VALARM\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"]
    );
    let luid = cal
        .contents()
        .first()
        .and_then(|c| cal.find(c.as_bytes()))
        .expect("luid");
    assert_eq!(cal.full_size(&luid), Some(event.len() as u64));
}

#[test]
fn a_body_fetch_without_a_nonce_answers_the_challenge_and_gets_the_body() {
    let (srv, mut sim) = server_with_cards();
    let p = titles_phone(&srv, &mut sim);
    // The same handset after a restart: its store persisted, the server's nonce lost.
    let mut restarted = Phone::new(&srv, SUBSCRIBER, "IMEI:100000000000002", true);
    restarted.contacts = p.contacts.clone();
    let ann = restarted.luid_of(&summary_of("Ann"));
    let body = restarted.fetch(&srv, &mut sim, &ann).expect("fetch");
    assert_eq!(body.as_deref(), Some(big_card("Ann").as_bytes()));
    assert_eq!(
        restarted.requests.load(Ordering::SeqCst),
        2,
        "refused once (no nonce), then answered"
    );
    assert!(restarted.engine.nonce().is_some(), "the new nonce is kept");
}

//! A slow sync of a store that lists its LUIDs (the file-backed store) reads its items one
//! message at a time: when a message of package 3 leaves, only the items of the messages
//! so far have been read, and neither `all_items` nor `changes` (every change with its
//! content) is called. Our real server over HTTP, an 8 KiB MaxMsgSize, 300 contacts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{sim, start_with, PIN, SUBSCRIBER};
use syncml_client::fs::FsStore;
use syncml_client::mem::{MemoryTerminal, ScriptedUi};
use syncml_client::{
    Applied, Change, ChangeId, DataStore, Engine, EngineConfig, Handset, HttpTransport, LocalItem,
    ServerChange, StoreError, SyncMode, SyncState, Transport, TransportError,
};

/// An FsStore that counts the items read and refuses to hand out all of them at once.
struct Counted {
    inner: FsStore,
    reads: Arc<AtomicUsize>,
    /// Panic if the content of every change is asked for.
    slow_only: bool,
}

impl DataStore for Counted {
    fn local_uri(&self) -> &str {
        self.inner.local_uri()
    }
    fn server_uri(&self) -> &str {
        self.inner.server_uri()
    }
    fn content_type(&self) -> (&str, &str) {
        self.inner.content_type()
    }
    fn changes(&mut self) -> Result<Vec<Change>, StoreError> {
        if self.slow_only {
            panic!("a slow sync must not load every pending change with its content")
        }
        self.inner.changes()
    }
    fn has_sim_less_changes(&mut self) -> Result<bool, StoreError> {
        self.inner.has_sim_less_changes()
    }
    fn all_items(&mut self) -> Result<Vec<LocalItem>, StoreError> {
        panic!("a streaming store must not be asked for every item at once")
    }
    fn item_luids(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        self.inner.item_luids()
    }
    fn read_item(&mut self, luid: &str) -> Result<Option<LocalItem>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_item(luid)
    }
    fn change_ids(&mut self) -> Result<Vec<ChangeId>, StoreError> {
        self.inner.change_ids()
    }
    fn apply(&mut self, change: ServerChange) -> Result<Applied, StoreError> {
        self.inner.apply(change)
    }
    fn acknowledge(&mut self, changes: &[ChangeId]) -> Result<(), StoreError> {
        self.inner.acknowledge(changes)
    }
    fn erase_local(&mut self) -> Result<(), StoreError> {
        self.inner.erase_local()
    }
    fn item_count(&mut self) -> Result<usize, StoreError> {
        self.inner.item_count()
    }
    fn sync_state(&mut self) -> Result<SyncState, StoreError> {
        self.inner.sync_state()
    }
    fn set_sync_state(&mut self, state: &SyncState) -> Result<(), StoreError> {
        self.inner.set_sync_state(state)
    }
}

/// Records, for every request, how many items had been read and the body size.
struct Recording {
    inner: HttpTransport,
    reads: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl Transport for Recording {
    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(String, Vec<u8>), TransportError> {
        if let Ok(mut l) = self.log.lock() {
            l.push((self.reads.load(Ordering::SeqCst), body.len()));
        }
        self.inner.post(url, content_type, body).await
    }
}

const MSG: u64 = 8 * 1024;
const N: usize = 300;

#[test]
fn a_slow_sync_reads_items_one_message_at_a_time() {
    let mut cfg = syncml_server::session::EngineConfig::default();
    cfg.max_msg_size = MSG;
    let srv = start_with(cfg);
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "pw");
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = FsStore::open(
        &dir.path().join("contacts"),
        &dir.path().join("state"),
        "./contacts",
        "contacts",
        ("text/vcard", "3.0"),
        "vcf",
    )
    .expect("store");
    let mut want = Vec::new();
    for i in 0..N {
        let card = format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person {i:03};;;;\r\nFN:Person {i:03} with a longer name\r\nEND:VCARD\r\n"
        );
        std::fs::write(inner.dir().join(format!("{i:03}.vcf")), &card).expect("write");
        want.push(card);
    }
    want.sort();
    let reads = Arc::new(AtomicUsize::new(0));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut store = Counted {
        inner,
        reads: reads.clone(),
        slow_only: true,
    };
    let mut ecfg = EngineConfig::new(srv.url.clone());
    ecfg.max_msg_size = MSG;
    let mut engine = Engine::new(
        ecfg,
        Recording {
            inner: HttpTransport::new(),
            reads: reads.clone(),
            log: log.clone(),
        },
    );
    let mut s = sim();
    let mut t = MemoryTerminal::new("IMEI:100000000000001", "pw");
    let mut ui = ScriptedUi::answering(PIN, "pw");
    let r = srv
        .block_on(engine.sync(
            Handset {
                sim: Some(&mut s),
                terminal: &mut t,
                ui: &mut ui,
            },
            &mut [&mut store as &mut dyn DataStore],
            &[SyncMode::Slow],
        ))
        .expect("slow sync");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.stores[0].sent.replaced, N);
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), want);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        N,
        "every item read exactly once"
    );

    let log = log.lock().expect("log").clone();
    // Request 1 is package 1 (nothing read); request 2 carries the first items.
    assert_eq!(log[0].0, 0);
    let first = log[1].0;
    assert!(
        first > 0 && first < N / 5,
        "only one message's worth read before the first message left: {first} of {N}"
    );
    let reads_per_request: Vec<usize> = log.iter().map(|(r, _)| *r).collect();
    assert!(
        reads_per_request.windows(2).all(|w| w[0] <= w[1]),
        "{reads_per_request:?}"
    );
    assert!(
        log.len() > 10,
        "package 3 spans many messages: {}",
        log.len()
    );
    assert!(
        log.iter().all(|(_, size)| *size as u64 <= MSG),
        "every message within MaxMsgSize: {log:?}"
    );
    // The index now holds them all: nothing pending, a two-way sync is quiet.
    store.slow_only = false;
    let r = srv
        .block_on(engine.sync(
            Handset {
                sim: Some(&mut s),
                terminal: &mut t,
                ui: &mut ui,
            },
            &mut [&mut store as &mut dyn DataStore],
            &[SyncMode::TwoWay],
        ))
        .expect("two-way");
    assert_eq!((r.sent(), r.received()), (0, 0));
}

/// Two streamed stores in one package: contacts and calendar each span several messages,
/// and both arrive whole, each way.
#[test]
fn two_streamed_stores_share_one_multi_message_package() {
    use syncml_client::fs::{DataClass, FsHandset, FsSim, HandsetConfig};
    let mut cfg = syncml_server::session::EngineConfig::default();
    cfg.max_msg_size = MSG;
    let srv = start_with(cfg);
    let root = tempfile::tempdir().expect("tempdir");
    FsSim::create(&root.path().join("sim"), SUBSCRIBER, PIN).expect("sim");
    let mut handsets = Vec::new();
    for (name, id) in [("a", "IMEI:100000000000001"), ("b", "IMEI:100000000000002")] {
        srv.provision(SUBSCRIBER, id, "pw");
        let mut c = HandsetConfig::new(&srv.url);
        c.max_msg_size = MSG;
        let mut h = FsHandset::init(&root.path().join(name), id, "pw", c).expect("init");
        h.insert_sim(&root.path().join("sim")).expect("insert");
        h.register(Some(PIN), Some("pw"), true, true)
            .expect("register");
        h.remove_sim().expect("remove");
        handsets.push(h);
    }
    let a = &mut handsets[0];
    for i in 0..80 {
        std::fs::write(
            a.class_dir(DataClass::Contacts).join(format!("{i}.vcf")),
            format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Contact {i:02} of many;;;;\r\nFN:Contact {i:02} of many\r\nEND:VCARD\r\n"),
        )
        .expect("w");
        std::fs::write(
            a.class_dir(DataClass::Calendar).join(format!("{i}.ics")),
            format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:{i}@t\r\nDTSTART:20260101T100000Z\r\nSUMMARY:Event {i:02} of many\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
        )
        .expect("w");
    }
    a.insert_sim(&root.path().join("sim")).expect("insert");
    let o = srv
        .block_on(a.sync(
            HttpTransport::new(),
            &[],
            SyncMode::Slow,
            Some(PIN),
            Some("pw"),
        ))
        .expect("upload");
    assert_eq!(o.report.sent(), 160);
    assert!(o.report.messages_sent > 6, "{}", o.report.messages_sent);
    assert_eq!(srv.items(SUBSCRIBER, "contacts").len(), 80);
    assert_eq!(srv.items(SUBSCRIBER, "calendar").len(), 80);
    a.remove_sim().expect("remove");
    let b = &mut handsets[1];
    b.insert_sim(&root.path().join("sim")).expect("insert");
    let o = srv
        .block_on(b.sync(
            HttpTransport::new(),
            &[],
            SyncMode::RefreshFromServer,
            Some(PIN),
            Some("pw"),
        ))
        .expect("download");
    assert_eq!(o.report.received(), 160);
    for class in DataClass::ALL {
        let got = handsets[1]
            .store(class)
            .expect("store")
            .read_all()
            .expect("read");
        let want = handsets[0]
            .store(class)
            .expect("store")
            .read_all()
            .expect("read");
        let mut g: Vec<_> = got.into_values().collect();
        let mut w: Vec<_> = want.into_values().collect();
        g.sort();
        w.sort();
        assert_eq!(g, w, "{class:?}");
    }
}

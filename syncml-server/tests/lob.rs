//! Large objects (LOB items) and busy signalling, against our server over real HTTP with
//! a real SQLite file: a scripted client sends chunked items (`MoreData`) across
//! messages and across a server restart, gets chunked items from the server under its
//! MaxMsgSize, and gets Status 101 while the store is busy.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use syncml_core::model::{
    Alert, Anchor, Command, Cred, Data, GetPut, Item, ItemCommand, Meta, Source, Status, Sync,
    SyncBody, SyncHdr, SyncMl, Target,
};
use syncml_core::size::{chunk_item, ChunkOutcome, Reassembler};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{auth, AlertCode, Encoding, StatusCode};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    DatastoreKey, NewItem, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, Store,
    StoreError, StoreExt, StoreStats, Timestamp, Tx, TxMode,
};

/// A store that reports `Busy` while its flag is set, else the SQLite store underneath.
struct BusySwitch {
    inner: Arc<SqliteStore>,
    busy: Arc<AtomicBool>,
}

impl Store for BusySwitch {
    fn run(
        &self,
        mode: TxMode,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.busy.load(Ordering::SeqCst) {
            return Err(StoreError::Busy("database is locked (test)".into()));
        }
        self.inner.run(mode, f)
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

struct Server {
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    busy: Arc<AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

fn provision(dir: &Path) {
    let store = SqliteStore::open_in_dir(dir).expect("open");
    store
        .transaction(|tx| {
            tx.subscriber_create(
                &NewSubscriber {
                    id: "test".into(),
                    display_name: None,
                    security_level: 0,
                },
                Timestamp::from_unix_secs(1),
            )?;
            tx.terminal_register(
                &NewTerminal {
                    terminal_id: "dev1".into(),
                    subscriber_id: "test".into(),
                    md5_verifier: Some(Secret::new(auth::md5::user_digest("test", "secret"))),
                    basic_verifier: None,
                    classes: vec![],
                    registered_by: RegisteredBy::Operator,
                },
                Timestamp::from_unix_secs(1),
            )
        })
        .expect("provision");
}

fn start(dir: &Path, cfg: EngineConfig) -> Server {
    let store = Arc::new(SqliteStore::open_in_dir(dir).expect("open"));
    let busy = Arc::new(AtomicBool::new(false));
    let switch = Arc::new(BusySwitch {
        inner: store.clone(),
        busy: busy.clone(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(switch, Engine::new(cfg)));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, svc, HttpOptions::default(), None).expect("serve")
    });
    let url = format!("http://{}/sync", running.local_addr);
    Server {
        url,
        running: Some(running),
        rt,
        store,
        busy,
    }
}

/// A minimal HTTP/1.1 POST over a std TcpStream.
fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    let head = format!(
        "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (code, resp[split + 4..].to_vec())
}

/// A scripted client of terminal `dev1` (md5 auth) for one session at a time.
struct Client {
    base: String,
    token: Option<String>,
    nonce: Vec<u8>,
    session: u32,
    msg: u32,
    encoding: Encoding,
    max_msg_size: u64,
    max_obj_size: Option<u64>,
    /// Size of the last reply on the wire.
    last_len: usize,
}

impl Client {
    fn new(server: &Server) -> Client {
        Client {
            base: server.url.clone(),
            token: None,
            nonce: Vec::new(),
            session: 0,
            msg: 0,
            encoding: Encoding::Xml,
            max_msg_size: 64 * 1024,
            max_obj_size: None,
            last_len: 0,
        }
    }

    fn new_session(&mut self) {
        self.session += 1;
        self.msg = 0;
        self.token = None;
    }

    fn message(&mut self, commands: Vec<Command>, is_final: bool) -> SyncMl {
        self.msg += 1;
        let mut h = SyncHdr::new(
            SyncMlVersion::V1_2,
            self.session.to_string(),
            self.msg.to_string(),
            "http://srv/sync",
            "dev1",
        );
        h.source.loc_name = Some("test".into());
        h.meta = Some(Meta {
            max_msg_size: Some(self.max_msg_size),
            max_obj_size: self.max_obj_size,
            ..Meta::default()
        });
        if self.msg == 1 {
            h.cred = Some(Cred {
                meta: Some(Meta {
                    r#type: Some(auth::TYPE_MD5.into()),
                    format: Some("b64".into()),
                    ..Meta::default()
                }),
                data: Data::Text(auth::md5::credential("test", "secret", &self.nonce)),
            });
        }
        SyncMl {
            header: h,
            body: SyncBody { commands, is_final },
        }
    }

    /// Posts `msg` and returns the HTTP status and the decoded reply.
    fn post(&mut self, msg: &SyncMl) -> SyncMl {
        let body = syncml_core::encode(msg, self.encoding).expect("encode");
        let url = match &self.token {
            Some(t) => format!("{}?s={t}", self.base),
            None => self.base.clone(),
        };
        let (code, reply) = post(&url, self.encoding.mime_type(), &body);
        assert_eq!(
            code,
            200,
            "HTTP status: {}",
            String::from_utf8_lossy(&reply)
        );
        self.last_len = reply.len();
        let reply = syncml_core::decode(&reply).expect("reply decodes");
        if let Some(uri) = &reply.header.resp_uri {
            self.token = uri.split_once("?s=").map(|(_, t)| t.to_string());
        }
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                if let Some(n) = s.chal.as_ref().and_then(|c| c.meta.next_nonce.as_deref()) {
                    self.nonce = auth::nonce::decode_next_nonce(n).expect("nonce");
                }
            }
        }
        reply
    }

    fn send(&mut self, commands: Vec<Command>, is_final: bool) -> SyncMl {
        let msg = self.message(commands, is_final);
        self.post(&msg)
    }
}

fn alert(code: u32, last: Option<&str>, next: &str) -> Command {
    Command::Alert(Alert {
        cmd_id: "1".into(),
        data: Some(AlertCode(code)),
        items: vec![Item {
            target: Some(Target::new("addressbook")),
            source: Some(Source::new("./contacts")),
            meta: Some(Meta {
                anchor: Some(Anchor {
                    last: last.map(str::to_string),
                    next: next.into(),
                }),
                ..Meta::default()
            }),
            ..Item::default()
        }],
        ..Alert::default()
    })
}

fn client_sync(commands: Vec<Command>) -> Command {
    Command::Sync(Sync {
        cmd_id: "2".into(),
        target: Some(Target::new("addressbook")),
        source: Some(Source::new("./contacts")),
        commands,
        ..Sync::default()
    })
}

fn add(cmd_id: &str, item: Item) -> Command {
    Command::Add(ItemCommand {
        cmd_id: cmd_id.into(),
        meta: Some(Meta::of_type("text/vcard")),
        items: vec![item],
        ..ItemCommand::default()
    })
}

/// A vCard of about `size` bytes with LUID `luid`.
fn big_vcard(luid: &str, size: usize) -> Item {
    let body = format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{luid}\r\nNOTE:{}\r\nEND:VCARD\r\n",
        "n".repeat(size)
    );
    Item {
        source: Some(Source::new(luid)),
        data: Some(Data::Text(body)),
        ..Item::default()
    }
}

fn text(item: &Item) -> String {
    match &item.data {
        Some(Data::Text(t)) => t.clone(),
        other => panic!("text data expected: {other:?}"),
    }
}

/// `(command, code)` of every Status in `m`.
fn statuses(m: &SyncMl) -> Vec<(String, u16)> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd.clone(), s.data.0)),
            _ => None,
        })
        .collect()
}

fn codes(m: &SyncMl, cmd: &str) -> Vec<u16> {
    statuses(m)
        .into_iter()
        .filter(|(c, _)| c == cmd)
        .map(|(_, d)| d)
        .collect()
}

fn alerts(m: &SyncMl) -> Vec<&Alert> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Alert(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn alert_codes(m: &SyncMl) -> Vec<u32> {
    alerts(m)
        .iter()
        .filter_map(|a| a.data.map(|d| d.0))
        .collect()
}

fn live_items(store: &SqliteStore) -> Vec<syncml_server::store::Item> {
    store
        .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
        .expect("items")
}

/// Package 1 (slow sync) of a new session.
fn init(c: &mut Client) {
    c.new_session();
    let r = c.send(vec![alert(201, None, "a1")], true);
    assert_eq!(codes(&r, "SyncHdr"), [212], "{r:?}");
}

/// Sends the rest of the session after package 3: every package-4 message answered
/// (statuses only), then package 5.
fn finish_session(c: &mut Client, mut r: SyncMl) {
    for _ in 0..50 {
        if r.body.is_final {
            break;
        }
        r = c.send(vec![], false);
    }
    let done = c.send(vec![], true);
    assert!(done.header.resp_uri.is_none(), "session complete: {done:?}");
}

fn setup() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path());
    let srv = start(dir.path(), EngineConfig::default());
    (dir, srv)
}

// ---------------------------------------------------------------------------------
// Rule 1: large objects from the client.

#[test]
fn a_chunked_add_across_messages_is_stored_whole_after_the_last_chunk() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    let whole = big_vcard("c1", 9_000);
    let chunks = chunk_item(whole.clone(), 4_000).expect("chunk");
    assert_eq!(chunks.len(), 3);
    for (i, ch) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let r = c.send(
            vec![client_sync(vec![add(&format!("{}", 3 + i), ch.clone())])],
            last,
        );
        if last {
            assert_eq!(codes(&r, "Add"), [201], "the last chunk stores: {r:?}");
            finish_session(&mut c, r);
        } else {
            assert_eq!(codes(&r, "Add"), [213], "chunk {i} buffered: {r:?}");
            assert_eq!(alert_codes(&r), [222], "asks for the next message");
            assert!(!r.body.is_final);
            assert!(
                live_items(&srv.store).is_empty(),
                "nothing stored before the end"
            );
        }
    }
    let items = live_items(&srv.store);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data, text(&whole).into_bytes());
    assert_eq!(items[0].content_type, "text/vcard");
}

#[test]
fn a_chunked_replace_in_wbxml_is_stored_whole() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    c.encoding = Encoding::Wbxml;
    init(&mut c);
    let whole = big_vcard("c1", 5_000);
    let chunks = chunk_item(whole.clone(), 2_000).expect("chunk");
    let n = chunks.len();
    let mut r = None;
    for (i, ch) in chunks.into_iter().enumerate() {
        let cmd = Command::Replace(ItemCommand {
            cmd_id: "3".into(),
            meta: Some(Meta::of_type("text/vcard")),
            items: vec![ch],
            ..ItemCommand::default()
        });
        let reply = c.send(vec![client_sync(vec![cmd])], i + 1 == n);
        let want = if i + 1 == n { 201 } else { 213 };
        assert_eq!(codes(&reply, "Replace"), [want], "{reply:?}");
        r = Some(reply);
    }
    finish_session(&mut c, r.expect("reply"));
    let items = live_items(&srv.store);
    assert_eq!(items.len(), 1, "a Replace of an unknown item is an Add");
    assert_eq!(items[0].data, text(&whole).into_bytes());
}

#[test]
fn a_first_chunk_without_size_gets_411() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    let mut chunks = chunk_item(big_vcard("c1", 3_000), 1_000).expect("chunk");
    chunks[0].meta = None;
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [411], "{r:?}");
    let r = c.send(vec![client_sync(vec![])], true);
    finish_session(&mut c, r);
    assert!(live_items(&srv.store).is_empty());
}

#[test]
fn a_declared_size_above_our_max_obj_size_gets_416() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path());
    let mut cfg = EngineConfig::default();
    cfg.max_obj_size = 2_000;
    let srv = start(dir.path(), cfg);
    let mut c = Client::new(&srv);
    init(&mut c);
    let chunks = chunk_item(big_vcard("c1", 3_000), 1_000).expect("chunk");
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [416], "{r:?}");
    let r = c.send(vec![client_sync(vec![])], true);
    finish_session(&mut c, r);
    assert!(live_items(&srv.store).is_empty());
}

#[test]
fn a_size_mismatch_gets_424_and_nothing_is_stored() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    let mut chunks = chunk_item(big_vcard("c1", 3_000), 2_000).expect("chunk");
    assert_eq!(chunks.len(), 2);
    // The client declares more than it sends.
    if let Some(m) = chunks[0].meta.as_mut() {
        m.size = m.size.map(|s| s + 10);
    }
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [213]);
    let r = c.send(vec![client_sync(vec![add("3", chunks[1].clone())])], true);
    assert_eq!(codes(&r, "Add"), [424], "{r:?}");
    finish_session(&mut c, r);
    assert!(live_items(&srv.store).is_empty());
}

#[test]
fn a_new_item_before_the_last_chunk_drops_the_pending_one_with_alert_223() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    let chunks = chunk_item(big_vcard("c1", 3_000), 2_000).expect("chunk");
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [213]);
    let other = big_vcard("c2", 100);
    let r = c.send(vec![client_sync(vec![add("3", other.clone())])], true);
    assert_eq!(codes(&r, "Add"), [201], "the new item is taken: {r:?}");
    let a = alerts(&r)
        .into_iter()
        .find(|a| a.data == Some(AlertCode(223)))
        .unwrap_or_else(|| panic!("Alert 223: {r:?}"));
    assert_eq!(
        a.items[0].source.as_ref().map(|s| s.loc_uri.as_str()),
        Some("c1"),
        "names the dropped object"
    );
    finish_session(&mut c, r);
    let items = live_items(&srv.store);
    assert_eq!(items.len(), 1, "only the new item");
    assert_eq!(items[0].data, text(&other).into_bytes());
}

#[test]
fn a_server_restart_between_chunks_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path());
    let srv = start(dir.path(), EngineConfig::default());
    let mut c = Client::new(&srv);
    init(&mut c);
    let whole = big_vcard("c1", 6_000);
    let chunks = chunk_item(whole.clone(), 2_500).expect("chunk");
    assert_eq!(chunks.len(), 3);
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [213]);
    drop(srv);
    // Another server process on the same data directory takes the session on.
    let srv = start(dir.path(), EngineConfig::default());
    c.base = srv.url.clone();
    let r = c.send(vec![client_sync(vec![add("4", chunks[1].clone())])], false);
    assert_eq!(codes(&r, "SyncHdr"), [200], "the session goes on: {r:?}");
    assert_eq!(codes(&r, "Add"), [213]);
    let r = c.send(vec![client_sync(vec![add("5", chunks[2].clone())])], true);
    assert_eq!(codes(&r, "Add"), [201], "{r:?}");
    finish_session(&mut c, r);
    let items = live_items(&srv.store);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data, text(&whole).into_bytes());
}

#[test]
fn a_session_ending_with_a_pending_object_stores_nothing_of_it() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    let chunks = chunk_item(big_vcard("c1", 3_000), 2_000).expect("chunk");
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [213]);
    // Package 3 ends without the last chunk.
    let r = c.send(vec![client_sync(vec![])], true);
    assert!(alert_codes(&r).contains(&223), "{r:?}");
    finish_session(&mut c, r);
    assert!(live_items(&srv.store).is_empty());

    // A client that vanishes mid-object: its next session starts clean.
    init(&mut c);
    let r = c.send(vec![client_sync(vec![add("3", chunks[0].clone())])], false);
    assert_eq!(codes(&r, "Add"), [213]);
    init(&mut c);
    // (Without MoreData a lone last chunk is indistinguishable from a small item.)
    let r = c.send(vec![client_sync(vec![add("3", chunks[1].clone())])], true);
    finish_session(&mut c, r);
    assert!(
        live_items(&srv.store).iter().all(|i| i.data.len() < 1_500),
        "no reassembled object from two sessions"
    );
}

// ---------------------------------------------------------------------------------
// Rule 2: large objects to the client.

/// Writes items as another terminal would; returns their data.
fn seed(store: &SqliteStore, sizes: &[usize]) -> Vec<Vec<u8>> {
    let items: Vec<NewItem> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| NewItem {
            guid: None,
            content_type: "text/vcard".into(),
            data: format!(
                "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:S{i}\r\nNOTE:{}\r\nEND:VCARD\r\n",
                "é".repeat(n / 2)
            )
            .into_bytes(),
        })
        .collect();
    store
        .transaction(|tx| {
            tx.items_put(
                DatastoreKey::new("test", "contacts"),
                Some("other"),
                &items,
                Timestamp::from_unix_secs(2),
            )
        })
        .expect("seed");
    items.into_iter().map(|i| i.data).collect()
}

fn item_bytes(item: &Item) -> Vec<u8> {
    item.data
        .as_ref()
        .and_then(Data::as_bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// What the client got in package 4: the whole objects (reassembled), how many chunks
/// each came in, NumberOfChanges announced, and the largest message size seen.
struct Received {
    objects: Vec<(Vec<u8>, usize)>,
    announced: u32,
    biggest: usize,
}

/// Runs package 3 (empty) and answers every package-4 message like a client: 213 for a
/// chunk, 201 for a whole item; then package 5.
fn receive_pkg4(c: &mut Client) -> Received {
    let mut r = c.send(vec![client_sync(vec![])], true);
    let mut out = Received {
        objects: Vec::new(),
        announced: 0,
        biggest: c.last_len,
    };
    let mut asm = Reassembler::new(c.max_obj_size);
    let mut chunks = 0;
    for _ in 0..100 {
        let mut answers = Vec::new();
        for cmd in &r.body.commands {
            let Command::Sync(sync) = cmd else { continue };
            out.announced = out.announced.max(sync.number_of_changes.unwrap_or(0));
            for inner in &sync.commands {
                let Command::Add(ic) = inner else { continue };
                let item = ic.items[0].clone();
                chunks += 1;
                if chunks == 1 && item.more_data {
                    assert!(
                        item.meta.as_ref().and_then(|m| m.size).is_some(),
                        "the first chunk carries Size: {item:?}"
                    );
                } else if chunks > 1 {
                    assert!(
                        item.meta.as_ref().and_then(|m| m.size).is_none(),
                        "Size on the first chunk only"
                    );
                }
                let code = match asm.push(item).expect("chunk accepted") {
                    ChunkOutcome::NeedMore => StatusCode::CHUNKED_ITEM_ACCEPTED,
                    ChunkOutcome::Complete(whole) => {
                        out.objects.push((item_bytes(&whole), chunks));
                        chunks = 0;
                        StatusCode::ITEM_ADDED
                    }
                };
                answers.push(Command::Status(Status::new(
                    (answers.len() + 1).to_string(),
                    r.header.msg_id.clone(),
                    ic.cmd_id.clone(),
                    "Add",
                    code,
                )));
            }
        }
        if r.body.is_final {
            assert!(!asm.is_pending(), "package 4 ended inside an object");
            break;
        }
        r = c.send(answers, false);
        out.biggest = out.biggest.max(c.last_len);
    }
    let done = c.send(vec![], true);
    assert!(done.header.resp_uri.is_none(), "session complete: {done:?}");
    out
}

/// Seeds items of `sizes` bytes, then a client taking 4 KiB messages in `encoding`
/// downloads them (slow sync): what it received (every message within its MaxMsgSize),
/// the items' data and how many messages it sent.
fn download(encoding: Encoding, sizes: &[usize]) -> (Received, Vec<Vec<u8>>, u32) {
    let (_dir, srv) = setup();
    let data = seed(&srv.store, sizes);
    let mut c = Client::new(&srv);
    c.encoding = encoding;
    c.max_msg_size = 4_096;
    init(&mut c);
    let got = receive_pkg4(&mut c);
    assert!(
        got.biggest <= 4_096,
        "messages within MaxMsgSize: {}",
        got.biggest
    );
    (got, data, c.msg)
}

fn large_item_goes_out_in_chunks(encoding: Encoding) {
    let (got, data, _) = download(encoding, &[12_000, 300]);
    assert_eq!(got.announced, 2);
    let mut objects = got.objects;
    objects.sort_by_key(|(d, _)| d.len());
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0], (data[1].clone(), 1), "the small item whole");
    assert_eq!(objects[1].0, data[0], "the large item reassembled");
    assert!(objects[1].1 >= 4, "in chunks: {}", objects[1].1);
}

#[test]
fn a_large_server_item_goes_out_in_chunks_under_the_clients_max_msg_size_xml() {
    large_item_goes_out_in_chunks(Encoding::Xml);
}

#[test]
fn a_large_server_item_goes_out_in_chunks_under_the_clients_max_msg_size_wbxml() {
    large_item_goes_out_in_chunks(Encoding::Wbxml);
}

/// A download planned from item sizes (most items' data read only when a message sends
/// them) and items read at once (too large to plan: chunked, or near a message's size)
/// together: every item arrives once, whole, under MaxMsgSize, and messages are filled.
fn a_download_mixes_planned_items_and_items_read_at_once(encoding: Encoding) {
    let mut sizes: Vec<usize> = (0..120).map(|i| 60 + (i * 37) % 400).collect();
    sizes[7] = 12_000; // chunked
    sizes[30] = 1_500; // not planned (above a quarter of the room), sent whole
    sizes[31] = 1_600;
    let (got, mut want, messages) = download(encoding, &sizes);
    assert_eq!(got.announced, sizes.len() as u32);
    want.sort();
    let mut objects: Vec<Vec<u8>> = got.objects.into_iter().map(|(d, _)| d).collect();
    objects.sort();
    assert_eq!(objects, want, "every item once, whole");
    // Filled messages: as many as when every item was read and measured up front
    // (19 in WBXML, 27 in XML, counted with that build), give or take one.
    let most = if encoding == Encoding::Wbxml { 20 } else { 28 };
    assert!(messages <= most, "{encoding:?}: {messages} messages");
}

#[test]
fn a_download_mixes_planned_items_and_items_read_at_once_wbxml() {
    a_download_mixes_planned_items_and_items_read_at_once(Encoding::Wbxml);
}

#[test]
fn a_download_mixes_planned_items_and_items_read_at_once_xml() {
    a_download_mixes_planned_items_and_items_read_at_once(Encoding::Xml);
}

#[test]
fn an_item_above_the_clients_max_obj_size_is_not_sent() {
    let (_dir, srv) = setup();
    let data = seed(&srv.store, &[12_000, 300]);
    let mut c = Client::new(&srv);
    c.max_msg_size = 4_096;
    c.max_obj_size = Some(8_000);
    init(&mut c);
    let got = receive_pkg4(&mut c);
    assert_eq!(got.announced, 1, "NumberOfChanges counts what is sent");
    assert_eq!(got.objects, [(data[1].clone(), 1)]);
}

#[test]
fn a_chunk_the_client_refuses_ends_that_object_and_the_package_goes_on() {
    let (_dir, srv) = setup();
    let data = seed(&srv.store, &[12_000, 300]);
    let mut c = Client::new(&srv);
    c.max_msg_size = 4_096;
    init(&mut c);
    let mut r = c.send(vec![client_sync(vec![])], true);
    let mut seen: Vec<(bool, Vec<u8>)> = Vec::new();
    for _ in 0..50 {
        let mut answers = Vec::new();
        for cmd in &r.body.commands {
            let Command::Sync(sync) = cmd else { continue };
            for inner in &sync.commands {
                let Command::Add(ic) = inner else { continue };
                let item = &ic.items[0];
                seen.push((item.more_data, item_bytes(item)));
                // The client cannot take the large object: it refuses the first chunk.
                let code = if item.more_data { 416 } else { 201 };
                answers.push(Command::Status(Status::new(
                    (answers.len() + 1).to_string(),
                    r.header.msg_id.clone(),
                    ic.cmd_id.clone(),
                    "Add",
                    StatusCode(code),
                )));
            }
        }
        if r.body.is_final {
            break;
        }
        r = c.send(answers, false);
    }
    assert!(r.body.is_final, "package 4 completes");
    assert_eq!(
        seen.len(),
        2,
        "one chunk, then the small item: {}",
        seen.len()
    );
    assert!(seen[0].0, "the refused chunk");
    assert_eq!(seen[1], (false, data[1].clone()));
    let done = c.send(vec![], true);
    assert!(done.header.resp_uri.is_none(), "session complete");
}

fn put_devinf(large_objs: bool) -> Command {
    let d = syncml_core::model::DevInf {
        ver_dtd: "1.2".into(),
        dev_id: "dev1".into(),
        dev_typ: "phone".into(),
        support_large_objs: large_objs,
        ..syncml_core::model::DevInf::default()
    };
    Command::Put(GetPut {
        cmd_id: "5".into(),
        meta: Some(Meta::of_type("application/vnd.syncml-devinf+xml")),
        items: vec![Item {
            source: Some(Source::new("./devinf12")),
            data: Some(Data::DevInf(Box::new(d))),
            ..Item::default()
        }],
        ..GetPut::default()
    })
}

#[test]
fn a_client_without_support_large_objs_gets_no_chunks() {
    for large_objs in [false, true] {
        let (_dir, srv) = setup();
        let data = seed(&srv.store, &[12_000, 300]);
        let mut c = Client::new(&srv);
        c.max_msg_size = 4_096;
        c.new_session();
        let r = c.send(vec![put_devinf(large_objs), alert(201, None, "a1")], true);
        assert_eq!(codes(&r, "Put"), [200]);
        let got = receive_pkg4(&mut c);
        if large_objs {
            assert_eq!(got.objects.len(), 2, "SupportLargeObjs: chunks allowed");
        } else {
            assert_eq!(got.announced, 1);
            assert_eq!(got.objects, [(data[1].clone(), 1)], "only what fits whole");
        }
    }
}

// ---------------------------------------------------------------------------------
// Rule 3: busy signalling.

#[test]
fn a_busy_store_gets_status_101_without_final_and_the_retry_goes_through() {
    let (_dir, srv) = setup();
    let mut c = Client::new(&srv);
    init(&mut c);
    srv.busy.store(true, Ordering::SeqCst);
    let msg = c.message(vec![client_sync(vec![add("3", big_vcard("c1", 10))])], true);
    let r = c.post(&msg);
    assert_eq!(statuses(&r), [("SyncHdr".to_string(), 101)], "{r:?}");
    assert!(!r.body.is_final, "no Final in a busy reply");
    assert!(
        r.header.resp_uri.is_some(),
        "the client retries at the same URI"
    );
    assert!(live_items(&srv.store).is_empty());
    // The client sends the same message again once the store is free.
    srv.busy.store(false, Ordering::SeqCst);
    let r = c.post(&msg);
    assert_eq!(codes(&r, "Add"), [201], "{r:?}");
    finish_session(&mut c, r);
    assert_eq!(live_items(&srv.store).len(), 1);
}

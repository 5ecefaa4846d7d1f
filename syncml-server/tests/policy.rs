//! Conflict policies per datastore, against our server over real HTTP with a real SQLite
//! file: two terminals of one subscriber edit the same contact; the second terminal's
//! conflicting Replace is resolved by the datastore's policy (server-wins 419,
//! client-wins 208, duplicate 209, newer-wins by the vCard's `REV`); and a session
//! suspended (Alert 224) and resumed (Alert 225).

use std::path::Path;
use std::sync::Arc;
use syncml_core::model::{
    Alert, Anchor, Command, Cred, Data, Item, ItemCommand, Map, MapItem, Meta, Source, Sync,
    SyncBody, SyncHdr, SyncMl, Target,
};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{auth, AlertCode, Encoding};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{ConflictPolicy, Engine, EngineConfig};
use syncml_server::store::{
    DatastoreKey, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt, SyncKey,
    Timestamp,
};

struct Server {
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
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
            for t in ["dev1", "dev2"] {
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: t.into(),
                        subscriber_id: "test".into(),
                        md5_verifier: Some(Secret::new(auth::md5::user_digest("test", "secret"))),
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    Timestamp::from_unix_secs(1),
                )?;
            }
            Ok(())
        })
        .expect("provision");
}

fn start(dir: &Path, cfg: EngineConfig) -> Server {
    let store = Arc::new(SqliteStore::open_in_dir(dir).expect("open"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(store.clone(), Engine::new(cfg)));
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

/// What package 4 sent the client: `(command, LocURI, data)`, the LocURI being the
/// item's Source (our GUID) for an Add and its Target (the client's LUID) otherwise.
type ServerCmd = (String, String, String);

/// A scripted client of one terminal (md5 auth).
struct Client {
    base: String,
    terminal: &'static str,
    token: Option<String>,
    nonce: Vec<u8>,
    session: u32,
    msg: u32,
    /// The `Next` anchor of our latest completed session.
    anchor: Option<String>,
}

impl Client {
    fn new(server: &Server, terminal: &'static str) -> Client {
        Client {
            base: server.url.clone(),
            terminal,
            token: None,
            nonce: Vec::new(),
            session: 0,
            msg: 0,
            anchor: None,
        }
    }

    fn send(&mut self, commands: Vec<Command>, is_final: bool) -> SyncMl {
        self.msg += 1;
        let mut h = SyncHdr::new(
            SyncMlVersion::V1_2,
            self.session.to_string(),
            self.msg.to_string(),
            "http://srv/sync",
            self.terminal,
        );
        h.source.loc_name = Some("test".into());
        h.meta = Some(Meta {
            max_msg_size: Some(64 * 1024),
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
        let msg = SyncMl {
            header: h,
            body: SyncBody { commands, is_final },
        };
        let body = syncml_core::encode(&msg, Encoding::Xml).expect("encode");
        let url = match &self.token {
            Some(t) => format!("{}?s={t}", self.base),
            None => self.base.clone(),
        };
        let (code, reply) = post(&url, Encoding::Xml.mime_type(), &body);
        assert_eq!(code, 200, "HTTP: {}", String::from_utf8_lossy(&reply));
        let reply = syncml_core::decode(&reply).expect("reply decodes");
        self.token = reply
            .header
            .resp_uri
            .as_ref()
            .and_then(|u| u.split_once("?s=").map(|(_, t)| t.to_string()));
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                if let Some(n) = s.chal.as_ref().and_then(|c| c.meta.next_nonce.as_deref()) {
                    self.nonce = auth::nonce::decode_next_nonce(n).expect("nonce");
                }
            }
        }
        reply
    }

    /// One whole session: Alert `mode`, package 3 with `changes`, package 5 mapping
    /// every item package 4 added to LUID `<terminal>-<guid>`. Returns the statuses of
    /// the client's item commands (`(command, code)`) and what package 4 sent.
    fn session(
        &mut self,
        mode: u32,
        changes: Vec<Command>,
    ) -> (Vec<(String, u16)>, Vec<ServerCmd>) {
        let r = self.open(mode);
        assert_eq!(codes(&r, "Alert"), [200], "{r:?}");
        let (st, sent) = self.pkg3(changes);
        self.pkg5(&sent);
        (st, sent)
    }

    /// Package 1 of a new session with Alert `mode`; returns package 2.
    fn open(&mut self, mode: u32) -> SyncMl {
        self.session += 1;
        self.msg = 0;
        self.token = None;
        let next = format!("{}-{}", self.terminal, self.session);
        let r = self.send(vec![alert(mode, self.anchor.as_deref(), &next)], true);
        assert_eq!(codes(&r, "SyncHdr"), [212], "{r:?}");
        r
    }

    /// Package 3 with `changes`; returns the statuses of the item commands and the
    /// whole package 4.
    fn pkg3(&mut self, changes: Vec<Command>) -> (Vec<(String, u16)>, Vec<ServerCmd>) {
        let mut r = self.send(vec![client_sync(changes)], true);
        let item_statuses: Vec<(String, u16)> = statuses(&r)
            .into_iter()
            .filter(|(c, _)| matches!(c.as_str(), "Add" | "Replace" | "Delete"))
            .collect();
        let mut sent = Vec::new();
        loop {
            for c in &r.body.commands {
                let Command::Sync(s) = c else { continue };
                for c in &s.commands {
                    let (name, items) = match c {
                        Command::Add(x) => ("Add", &x.items),
                        Command::Replace(x) => ("Replace", &x.items),
                        Command::Delete(x) => ("Delete", &x.items),
                        _ => continue,
                    };
                    for it in items {
                        let loc = if name == "Add" {
                            it.source.as_ref().map(|s| s.loc_uri.clone())
                        } else {
                            it.target.as_ref().map(|t| t.loc_uri.clone())
                        };
                        sent.push((name.to_string(), loc.unwrap_or_default(), text(it)));
                    }
                }
            }
            if r.body.is_final {
                break;
            }
            r = self.send(vec![], false);
        }
        (item_statuses, sent)
    }

    /// Package 5: maps what package 4 added; the session completes.
    fn pkg5(&mut self, sent: &[ServerCmd]) {
        let map: Vec<MapItem> = sent
            .iter()
            .filter(|(c, _, _)| c == "Add")
            .map(|(_, g, _)| MapItem::new(g.clone(), format!("{}-{g}", self.terminal)))
            .collect();
        let pkg5 = if map.is_empty() {
            vec![]
        } else {
            vec![Command::Map(Map {
                cmd_id: "9".into(),
                target: Target::new("addressbook"),
                source: Source::new("./contacts"),
                map_items: map,
                ..Map::default()
            })]
        };
        let done = self.send(pkg5, true);
        assert!(done.header.resp_uri.is_none(), "session complete: {done:?}");
        self.anchor = Some(format!("{}-{}", self.terminal, self.session));
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

fn vcard(name: &str, rev: Option<&str>) -> String {
    let rev = rev.map(|r| format!("REV:{r}\r\n")).unwrap_or_default();
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{name}\r\nN:{name};;;;\r\n{rev}END:VCARD\r\n")
}

fn item_cmd(add: bool, cmd_id: &str, luid: &str, data: &str) -> Command {
    let ic = ItemCommand {
        cmd_id: cmd_id.into(),
        meta: Some(Meta::of_type("text/vcard")),
        items: vec![Item {
            source: Some(Source::new(luid)),
            data: Some(Data::Text(data.into())),
            ..Item::default()
        }],
        ..ItemCommand::default()
    };
    if add {
        Command::Add(ic)
    } else {
        Command::Replace(ic)
    }
}

fn text(item: &Item) -> String {
    match &item.data {
        Some(Data::Text(t)) => t.clone(),
        Some(Data::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
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

/// The data of every live contact on the server, sorted.
fn server_contacts(store: &SqliteStore) -> Vec<String> {
    let mut v: Vec<String> = store
        .read(|tx| tx.items_list_live(DatastoreKey::new("test", "contacts")))
        .expect("items")
        .into_iter()
        .map(|i| String::from_utf8_lossy(&i.data).into_owned())
        .collect();
    v.sort();
    v
}

/// The shared start: `dev1` adds a contact, `dev2` receives it, `dev1` changes it.
/// Returns both clients, the contact's GUID and `dev1`'s version.
fn both_edit(srv: &Server) -> (Client, Client, String, String) {
    let mut a = Client::new(srv, "dev1");
    let mut b = Client::new(srv, "dev2");
    let v1 = vcard("Alice", None);
    let (st, sent) = a.session(201, vec![item_cmd(true, "3", "a1", &v1)]);
    assert_eq!(st, [("Add".to_string(), 201)]);
    assert!(sent.is_empty(), "{sent:?}");
    let (st, sent) = b.session(201, vec![]);
    assert!(st.is_empty());
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (cmd, guid, data) = sent[0].clone();
    assert_eq!((cmd.as_str(), data.as_str()), ("Add", v1.as_str()));
    let va = vcard("Alice A", Some("20000101T000000Z"));
    let (st, sent) = a.session(200, vec![item_cmd(false, "3", "a1", &va)]);
    assert_eq!(st, [("Replace".to_string(), 200)]);
    assert!(sent.is_empty(), "{sent:?}");
    (a, b, guid, va)
}

fn server(policy: ConflictPolicy) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path());
    let mut cfg = EngineConfig::default();
    // The global default stays server-wins; the policy under test is the contacts'.
    cfg.datastore_policies.insert("contacts".into(), policy);
    let srv = start(dir.path(), cfg);
    (dir, srv)
}

#[test]
fn server_wins_answers_419_and_sends_the_server_version() {
    let (_dir, srv) = server(ConflictPolicy::ServerWins);
    let (mut a, mut b, guid, va) = both_edit(&srv);
    let vb = vcard("Alice B", None);
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 419)]);
    assert_eq!(sent, [("Replace".to_string(), luid, va.clone())]);
    assert_eq!(server_contacts(&srv.store), [va]);
    // dev1 wrote the winning version: nothing new for it.
    let (_, sent) = a.session(200, vec![]);
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn client_wins_answers_208_and_keeps_the_client_version() {
    let (_dir, srv) = server(ConflictPolicy::ClientWins);
    let (mut a, mut b, guid, _va) = both_edit(&srv);
    let vb = vcard("Alice B", None);
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 208)]);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(server_contacts(&srv.store), std::slice::from_ref(&vb));
    // dev1 gets the winning version.
    let (_, sent) = a.session(200, vec![]);
    assert_eq!(sent, [("Replace".to_string(), "a1".to_string(), vb)]);
}

#[test]
fn duplicate_answers_209_and_keeps_both_versions() {
    let (_dir, srv) = server(ConflictPolicy::Duplicate);
    let (mut a, mut b, guid, va) = both_edit(&srv);
    let vb = vcard("Alice B", None);
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 209)]);
    // The client's LUID now names its own version; the server's comes back as new.
    assert_eq!(sent, [("Add".to_string(), guid.clone(), va.clone())]);
    let mut both = vec![va.clone(), vb.clone()];
    both.sort();
    assert_eq!(server_contacts(&srv.store), both);
    // dev1 gets dev2's version as a new item; nothing more for dev2.
    let (_, sent) = a.session(200, vec![]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].0.as_str(), sent[0].2.as_str()),
        ("Add", vb.as_str())
    );
    let (_, sent) = b.session(200, vec![]);
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn newer_wins_lets_a_newer_client_version_win_with_208() {
    let (_dir, srv) = server(ConflictPolicy::NewerWins);
    let (mut a, mut b, guid, _va) = both_edit(&srv);
    // Far in the future: newer than the server's write of dev1's version.
    let vb = vcard("Alice B", Some("20990101T000000Z"));
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 208)]);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(server_contacts(&srv.store), std::slice::from_ref(&vb));
    let (_, sent) = a.session(200, vec![]);
    assert_eq!(sent, [("Replace".to_string(), "a1".to_string(), vb)]);
}

#[test]
fn newer_wins_keeps_the_server_version_against_an_older_client_one_with_419() {
    let (_dir, srv) = server(ConflictPolicy::NewerWins);
    let (_a, mut b, guid, va) = both_edit(&srv);
    // Older than the server's write (which happened now).
    let vb = vcard("Alice B", Some("2001-01-01T00:00:00Z"));
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 419)]);
    assert_eq!(sent, [("Replace".to_string(), luid, va.clone())]);
    assert_eq!(server_contacts(&srv.store), [va]);
}

#[test]
fn newer_wins_keeps_the_server_version_when_the_client_item_has_no_time() {
    let (_dir, srv) = server(ConflictPolicy::NewerWins);
    let (_a, mut b, guid, va) = both_edit(&srv);
    let vb = vcard("Alice B", None);
    let luid = format!("dev2-{guid}");
    let (st, sent) = b.session(200, vec![item_cmd(false, "3", &luid, &vb)]);
    assert_eq!(st, [("Replace".to_string(), 419)]);
    assert_eq!(sent, [("Replace".to_string(), luid, va.clone())]);
    assert_eq!(server_contacts(&srv.store), [va]);
}

#[test]
fn the_policy_is_per_datastore_and_the_default_is_server_wins() {
    let cfg = EngineConfig::default();
    assert_eq!(cfg.conflict_policy, ConflictPolicy::ServerWins);
    assert_eq!(cfg.policy_for("contacts"), ConflictPolicy::ServerWins);
    let mut cfg = EngineConfig::default();
    cfg.datastore_policies
        .insert("calendar".into(), ConflictPolicy::NewerWins);
    assert_eq!(cfg.policy_for("calendar"), ConflictPolicy::NewerWins);
    assert_eq!(cfg.policy_for("contacts"), ConflictPolicy::ServerWins);
}

fn anchor_of(store: &SqliteStore, terminal: &str) -> Option<String> {
    store
        .read(|tx| tx.sync_state_get(SyncKey::new("test", terminal, "contacts")))
        .expect("sync state")
        .and_then(|s| s.client_anchor)
}

fn alert_codes(m: &SyncMl) -> Vec<u32> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Alert(a) => a.data.map(|d| d.0),
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_suspended_after_package_3_resumes_and_completes_without_loss_or_duplicates() {
    let (_dir, srv) = server(ConflictPolicy::ServerWins);
    let mut a = Client::new(&srv, "dev1");
    let mut b = Client::new(&srv, "dev2");
    let (va1, vb1, vb2, va2) = (
        vcard("A one", None),
        vcard("B one", None),
        vcard("B two", None),
        vcard("A two", None),
    );
    a.session(201, vec![item_cmd(true, "3", "a1", &va1)]);
    let (_, sent) = b.session(201, vec![item_cmd(true, "3", "b1", &vb1)]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    b.session(200, vec![item_cmd(true, "3", "b2", &vb2)]);

    // dev1: package 1 and 3 (a new contact), package 4 (dev2's two), then Alert 224
    // instead of package 5.
    let r = a.open(200);
    assert_eq!(codes(&r, "Alert"), [200]);
    let (st, sent) = a.pkg3(vec![item_cmd(true, "3", "a2", &va2)]);
    assert_eq!(st, [("Add".to_string(), 201)]);
    let mut got: Vec<&str> = sent.iter().map(|(_, _, d)| d.as_str()).collect();
    got.sort();
    let mut want = vec![vb1.as_str(), vb2.as_str()];
    want.sort();
    assert_eq!(got, want);
    let r = a.send(vec![suspend_alert()], true);
    assert_eq!(codes(&r, "Alert"), [200], "{r:?}");
    assert!(r.body.is_final);
    assert!(r.header.resp_uri.is_none(), "the session ended: {r:?}");
    assert_eq!(anchor_of(&srv.store, "dev1").as_deref(), Some("dev1-1"));

    // dev1 resumes: 200 for the Alert 225, the two-way sync continues; package 4
    // carries dev2's contacts again (never acknowledged), not dev1's own.
    let r = a.open(225);
    assert_eq!(codes(&r, "Alert"), [200], "{r:?}");
    assert_eq!(alert_codes(&r), [200]);
    let (st, sent2) = a.pkg3(vec![]);
    assert!(st.is_empty());
    let mut got2: Vec<&str> = sent2.iter().map(|(_, _, d)| d.as_str()).collect();
    got2.sort();
    assert_eq!(got2, want);
    assert!(sent2.iter().all(|(c, _, _)| c == "Add"), "{sent2:?}");
    a.pkg5(&sent2);
    assert_eq!(anchor_of(&srv.store, "dev1").as_deref(), Some("dev1-3"));

    let mut all = vec![va1, vb1, vb2, va2.clone()];
    all.sort();
    assert_eq!(server_contacts(&srv.store), all);
    // Nothing more for dev1; dev2 gets dev1's new contact once.
    let (_, sent) = a.session(200, vec![]);
    assert!(sent.is_empty(), "{sent:?}");
    let (_, sent) = b.session(200, vec![]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].0.as_str(), sent[0].2.as_str()),
        ("Add", va2.as_str())
    );
    // The suspended session was used up: another resume is refused with 509.
    let r = a.open(225);
    assert_eq!(codes(&r, "Alert"), [509], "{r:?}");
    assert_eq!(alert_codes(&r), [200]);
}

#[test]
fn a_resume_with_nothing_suspended_gets_509_or_508_and_a_normal_or_slow_sync() {
    let (_dir, srv) = server(ConflictPolicy::ServerWins);
    let mut a = Client::new(&srv, "dev1");
    // No previous session: anchors unknown, so 508 and a slow sync.
    let r = a.open(225);
    assert_eq!(codes(&r, "Alert"), [508], "{r:?}");
    assert_eq!(alert_codes(&r), [201]);
    let (_, sent) = a.pkg3(vec![item_cmd(true, "3", "a1", &vcard("A", None))]);
    a.pkg5(&sent);
    // Anchors known: 509 and a two-way sync.
    let r = a.open(225);
    assert_eq!(codes(&r, "Alert"), [509], "{r:?}");
    assert_eq!(alert_codes(&r), [200]);
    let (st, sent) = a.pkg3(vec![]);
    assert!(st.is_empty() && sent.is_empty(), "{st:?} {sent:?}");
    a.pkg5(&sent);
    assert_eq!(server_contacts(&srv.store).len(), 1);
}

fn suspend_alert() -> Command {
    Command::Alert(Alert {
        cmd_id: "1".into(),
        data: Some(AlertCode(224)),
        items: vec![Item {
            target: Some(Target::new("addressbook")),
            source: Some(Source::new("./contacts")),
            ..Item::default()
        }],
        ..Alert::default()
    })
}

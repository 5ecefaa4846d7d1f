//! Crash and disconnect consistency (issue 3, "Prove it"): a client that disappears
//! mid-session, and a server killed with SIGKILL and restarted mid-session. Afterwards
//! data and anchors must be consistent and the next sync must neither lose nor
//! duplicate an item.
//!
//! Every test runs the real `syncml-server` binary as a child process on a free
//! loopback port with a temporary data directory (provisioned through the binary's own
//! `subscriber add` / `terminal register`), and drives it over real HTTP with a small
//! scripted SyncML client built from `syncml_core::model` (md5 credentials signed with
//! the nonce the server issued). The server's database is inspected through
//! [`SqliteStore`] while the server is dead (right after the kill, the crash state) or
//! between sessions.
//!
//! Every wait is bounded and children are killed on drop.

mod process;

use process::{free_port, ServerProcess};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Proc, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use syncml_core::model::{
    Alert, Anchor, Command, Cred, Data, Item, ItemCommand, Map, MapItem, Meta, Source, Status,
    Sync, SyncBody, SyncHdr, SyncMl, Target,
};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{auth, AlertCode, Encoding, StatusCode};
use syncml_server::store::{DatastoreKey, SqliteStore, StoreExt, SyncKey, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_syncml-server");
const USER: &str = "test";
const PASSWORD: &str = "secret";
/// The server datastore (canonical name) and the client's LocURI for it.
const DS: &str = "contacts";
const CLIENT_DS: &str = "./contacts";
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------
// The server process
// ------------------------------------------------------------------------------------

fn cli(data: &Path, args: &[&str]) {
    let out = Proc::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run syncml-server");
    assert!(
        out.status.success(),
        "syncml-server {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Subscriber `test` with password `secret` on each terminal.
fn provision(data: &Path, terminals: &[&str]) {
    cli(data, &["subscriber", "add", USER]);
    for t in terminals {
        cli(
            data,
            &["terminal", "register", USER, t, "--password", PASSWORD],
        );
    }
}

/// The server on one data directory.
struct Server {
    proc: ServerProcess,
    data: PathBuf,
}

impl Server {
    fn start(data: &Path, port: u16) -> Server {
        let store = vec!["--data".into(), data.as_os_str().to_owned()];
        Server {
            proc: ServerProcess::start(store, &[], port, data.join("server.log")),
            data: data.to_path_buf(),
        }
    }

    fn base_url(&self) -> String {
        self.proc.url()
    }

    fn kill9(&mut self) {
        self.proc.kill9();
    }

    fn spawn(&mut self) {
        self.proc.spawn();
    }

    /// Kill -9 and start again on the same data directory and port.
    fn crash_and_restart(&mut self) {
        self.proc.kill9();
        self.proc.spawn();
    }

    fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }
}

/// A minimal HTTP/1.1 request over a std TcpStream, every step under a timeout.
fn http(
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
    s.set_write_timeout(Some(HTTP_TIMEOUT)).ok();
    let mut head = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("write: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| format!("read: {e}"))?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete HTTP response ({} bytes)", resp.len()))?;
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status code")?;
    let mut body = resp[split + 4..].to_vec();
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = len {
        if body.len() < n {
            return Err(format!("truncated body: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok((code, body))
}

/// POSTs one SyncML message and decodes the reply.
fn post_syncml(url: &str, enc: Encoding, body: &[u8]) -> Result<SyncMl, String> {
    let (code, reply) = http("POST", url, Some(enc.mime_type()), body)?;
    if code != 200 {
        return Err(format!(
            "HTTP {code}: {}",
            String::from_utf8_lossy(&reply).trim()
        ));
    }
    syncml_core::decode(&reply).map_err(|e| format!("reply does not decode: {e}"))
}

// ------------------------------------------------------------------------------------
// The scripted client
// ------------------------------------------------------------------------------------

/// A SyncML DS client with one contacts datastore: its items by LUID, the LUIDs changed
/// since its last completed sync, its anchors, and the maps it still owes the server.
/// Like a real client it moves its anchor only when a session completes.
struct Client {
    terminal: String,
    enc: Encoding,
    base: String,
    /// Where the next message goes (the base URL, then the server's RespURI).
    url: String,
    nonce: Vec<u8>,
    sessions: u32,
    msg_id: u32,
    cmd_id: u32,
    items: BTreeMap<String, String>,
    dirty: BTreeSet<String>,
    next_luid: u32,
    last_anchor: Option<String>,
    next_anchor: String,
    /// The sync type the server granted for the datastore in this session.
    mode: u32,
    /// (server GUID, our LUID) pairs not yet acknowledged by a completed session.
    pending_map: Vec<(String, String)>,
    last_reply: Option<SyncMl>,
}

impl Client {
    fn new(terminal: &str, base: &str, enc: Encoding) -> Client {
        Client {
            terminal: terminal.into(),
            enc,
            base: base.into(),
            url: base.into(),
            nonce: Vec::new(),
            sessions: 0,
            msg_id: 0,
            cmd_id: 0,
            items: BTreeMap::new(),
            dirty: BTreeSet::new(),
            next_luid: 0,
            last_anchor: None,
            next_anchor: String::new(),
            mode: 0,
            pending_map: Vec::new(),
            last_reply: None,
        }
    }

    /// A new local item (sent as an Add in the next sync).
    fn add_item(&mut self, content: String) -> String {
        self.next_luid += 1;
        let luid = format!("{}", self.next_luid);
        self.items.insert(luid.clone(), content);
        self.dirty.insert(luid.clone());
        luid
    }

    fn id(&mut self) -> String {
        self.cmd_id += 1;
        self.cmd_id.to_string()
    }

    fn header(&self) -> SyncHdr {
        let mut h = SyncHdr::new(
            SyncMlVersion::V1_2,
            format!("{}", 100 + self.sessions),
            self.msg_id.to_string(),
            self.base.clone(),
            self.terminal.clone(),
        );
        h.source.loc_name = Some(USER.into());
        h
    }

    /// Package 1: credentials and the sync Alert with our anchors. Starts a session.
    fn pkg1(&mut self, code: u32) -> SyncMl {
        self.sessions += 1;
        self.msg_id = 1;
        self.cmd_id = 0;
        self.url = self.base.clone();
        self.mode = 0;
        self.last_reply = None;
        self.next_anchor = format!("{}-anchor-{}", self.terminal, self.sessions);
        let mut h = self.header();
        h.cred = Some(Cred {
            meta: Some(Meta {
                r#type: Some(auth::TYPE_MD5.into()),
                format: Some(auth::FORMAT_B64.into()),
                ..Meta::default()
            }),
            data: Data::Text(auth::md5::credential(USER, PASSWORD, &self.nonce)),
        });
        let alert = Command::Alert(Alert {
            cmd_id: self.id(),
            data: Some(AlertCode(code)),
            items: vec![Item {
                target: Some(Target::new(DS)),
                source: Some(Source::new(CLIENT_DS)),
                meta: Some(Meta {
                    anchor: Some(Anchor {
                        last: self.last_anchor.clone(),
                        next: self.next_anchor.clone(),
                    }),
                    ..Meta::default()
                }),
                ..Item::default()
            }],
            ..Alert::default()
        });
        SyncMl {
            header: h,
            body: SyncBody {
                commands: vec![alert],
                is_final: true,
            },
        }
    }

    /// Statuses for every command of the server's last message (and its header).
    fn statuses(&mut self) -> Vec<Command> {
        let Some(r) = self.last_reply.clone() else {
            return Vec::new();
        };
        let msg_ref = r.header.msg_id.clone();
        let mut hs = Status::new(self.id(), &msg_ref, "0", "SyncHdr", StatusCode(200));
        hs.target_refs.push(r.header.source.loc_uri.clone());
        hs.source_refs.push(r.header.target.loc_uri.clone());
        let mut out = vec![Command::Status(hs)];
        for c in &r.body.commands {
            match c {
                Command::Status(_) => {}
                Command::Sync(s) => {
                    let st = Status::new(self.id(), &msg_ref, c.cmd_id(), "Sync", StatusCode(200));
                    out.push(Command::Status(st));
                    for inner in &s.commands {
                        let code = if matches!(inner, Command::Add(_)) {
                            201
                        } else {
                            200
                        };
                        let st = Status::new(
                            self.id(),
                            &msg_ref,
                            inner.cmd_id(),
                            inner.name(),
                            StatusCode(code),
                        );
                        out.push(Command::Status(st));
                    }
                }
                other => {
                    let st = Status::new(
                        self.id(),
                        &msg_ref,
                        other.cmd_id(),
                        other.name(),
                        StatusCode(200),
                    );
                    out.push(Command::Status(st));
                }
            }
        }
        out
    }

    fn map_cmd(&mut self) -> Option<Command> {
        if self.pending_map.is_empty() {
            return None;
        }
        Some(Command::Map(Map {
            cmd_id: self.id(),
            target: Target::new(DS),
            source: Source::new(CLIENT_DS),
            map_items: self
                .pending_map
                .iter()
                .map(|(g, l)| MapItem::new(g.clone(), l.clone()))
                .collect(),
            ..Map::default()
        }))
    }

    /// Package 3: our modifications (all items in a slow sync, the changed ones in a
    /// two-way sync), plus any maps an interrupted session still owes.
    fn pkg3(&mut self) -> SyncMl {
        self.msg_id += 1;
        let mut cmds = self.statuses();
        if matches!(self.mode, 201 | 203) {
            // A slow sync re-establishes every mapping: maps owed from before are moot.
            self.pending_map.clear();
        }
        cmds.extend(self.map_cmd());
        let luids: Vec<String> = match self.mode {
            201 | 203 => self.items.keys().cloned().collect(),
            200 | 202 => self.dirty.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let sync_id = self.id();
        let mut adds = Vec::new();
        for l in &luids {
            adds.push(Command::Add(ItemCommand {
                cmd_id: self.id(),
                meta: Some(Meta::of_type("text/x-vcard")),
                items: vec![Item {
                    source: Some(Source::new(l.clone())),
                    data: Some(Data::Text(self.items[l].clone())),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            }));
        }
        cmds.push(Command::Sync(Sync {
            cmd_id: sync_id,
            target: Some(Target::new(DS)),
            source: Some(Source::new(CLIENT_DS)),
            number_of_changes: Some(adds.len() as u32),
            commands: adds,
            ..Sync::default()
        }));
        SyncMl {
            header: self.header(),
            body: SyncBody {
                commands: cmds,
                is_final: true,
            },
        }
    }

    /// Package 5: statuses for package 4 and the Map of the items it added.
    fn pkg5(&mut self) -> SyncMl {
        self.msg_id += 1;
        let mut cmds = self.statuses();
        cmds.extend(self.map_cmd());
        SyncMl {
            header: self.header(),
            body: SyncBody {
                commands: cmds,
                is_final: true,
            },
        }
    }

    fn encode(&self, m: &SyncMl) -> Vec<u8> {
        syncml_core::encode(m, self.enc).expect("encode our message")
    }

    /// Takes in a reply: the next nonce, the RespURI.
    fn accept(&mut self, reply: SyncMl) -> SyncMl {
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                if let Some(n) = s.chal.as_ref().and_then(|ch| ch.meta.next_nonce.as_deref()) {
                    self.nonce = auth::nonce::decode_next_nonce(n).expect("nonce");
                }
            }
        }
        if let Some(r) = &reply.header.resp_uri {
            self.url = r.clone();
        }
        self.last_reply = Some(reply.clone());
        reply
    }

    fn post(&mut self, m: &SyncMl) -> Result<SyncMl, String> {
        let body = self.encode(m);
        let r = post_syncml(&self.url, self.enc, &body)?;
        Ok(self.accept(r))
    }

    /// Applies package 4: stores the server's items (new LUIDs, owed in the Map).
    fn apply_server_changes(&mut self, r: &SyncMl) {
        for c in &r.body.commands {
            let Command::Sync(s) = c else { continue };
            for inner in &s.commands {
                match inner {
                    Command::Add(ic) => {
                        for it in &ic.items {
                            let guid = it.source.as_ref().expect("Add/Source").loc_uri.clone();
                            self.next_luid += 1;
                            let luid = format!("{}", self.next_luid);
                            self.items.insert(luid.clone(), item_text(it));
                            self.pending_map.push((guid, luid));
                        }
                    }
                    Command::Replace(ic) => {
                        for it in &ic.items {
                            let luid = it.target.as_ref().expect("Replace/Target").loc_uri.clone();
                            assert!(
                                self.items.contains_key(&luid),
                                "{}: Replace for unknown LUID {luid}",
                                self.terminal
                            );
                            self.items.insert(luid, item_text(it));
                        }
                    }
                    Command::Delete(d) => {
                        for it in &d.items {
                            if let Some(t) = &it.target {
                                self.items.remove(&t.loc_uri);
                            }
                        }
                    }
                    other => panic!("unexpected {} in package 4", other.name()),
                }
            }
        }
    }

    fn begin(&mut self, code: u32) -> Result<SyncMl, String> {
        let m = self.pkg1(code);
        let r = self.post(&m)?;
        self.mode = server_alert(&r).unwrap_or(0);
        Ok(r)
    }

    fn send_changes(&mut self) -> Result<SyncMl, String> {
        let m = self.pkg3();
        let r = self.post(&m)?;
        self.apply_server_changes(&r);
        Ok(r)
    }

    /// Sends package 5; when the server closes the session, the client commits its
    /// anchor, forgets its changes and the maps it owed.
    fn finish(&mut self) -> Result<SyncMl, String> {
        let m = self.pkg5();
        let r = self.post(&m)?;
        if header_status(&r) == 200 && r.body.is_final && r.header.resp_uri.is_none() {
            self.last_anchor = Some(self.next_anchor.clone());
            self.dirty.clear();
            self.pending_map.clear();
        }
        Ok(r)
    }

    /// A whole session that must succeed. Returns (Alert status, granted sync type,
    /// number of changes the server sent).
    fn full_sync(&mut self, code: u32) -> (u16, u32, usize) {
        let who = format!("{} session {}", self.terminal, self.sessions + 1);
        let r1 = self
            .begin(code)
            .unwrap_or_else(|e| panic!("{who} pkg1: {e}"));
        assert_eq!(header_status(&r1), 212, "{who}: credentials accepted");
        assert_statuses_ok(&r1, &who);
        let alert_status = status_codes(&r1, "Alert")[0];
        let r2 = self
            .send_changes()
            .unwrap_or_else(|e| panic!("{who} pkg3: {e}"));
        assert_eq!(header_status(&r2), 200, "{who}: pkg3 header status");
        assert_statuses_ok(&r2, &who);
        assert!(r2.body.is_final, "{who}: package 4 in one message");
        let received = server_changes(&r2);
        let r3 = self.finish().unwrap_or_else(|e| panic!("{who} pkg5: {e}"));
        assert_session_done(&r3, &who);
        (alert_status, self.mode, received)
    }
}

fn item_text(it: &Item) -> String {
    match it.data.as_ref() {
        Some(Data::Text(s)) => s.clone(),
        Some(Data::Binary(b)) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("unexpected item data {other:?}"),
    }
}

// ------------------------------------------------------------------------------------
// Reading replies
// ------------------------------------------------------------------------------------

fn header_status(m: &SyncMl) -> u16 {
    m.body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Status(s) if s.is_for_header() => Some(s.data.0),
            _ => None,
        })
        .unwrap_or(0)
}

fn status_codes(m: &SyncMl, cmd: &str) -> Vec<u16> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) if s.cmd == cmd => Some(s.data.0),
            _ => None,
        })
        .collect()
}

/// The sync type the server's Alert grants.
fn server_alert(m: &SyncMl) -> Option<u32> {
    m.body.commands.iter().find_map(|c| match c {
        Command::Alert(a) => a.data.map(|d| d.0),
        _ => None,
    })
}

/// How many changes (Add/Replace/Delete) the server's Sync commands carry.
fn server_changes(m: &SyncMl) -> usize {
    m.body
        .commands
        .iter()
        .map(|c| match c {
            Command::Sync(s) => s.commands.len(),
            _ => 0,
        })
        .sum()
}

fn assert_statuses_ok(m: &SyncMl, who: &str) {
    for c in &m.body.commands {
        if let Command::Status(s) = c {
            let ok = StatusCode(s.data.0).is_success() || (s.cmd == "Alert" && s.data.0 == 508);
            assert!(
                ok,
                "{who}: {} (CmdRef {}) got {}",
                s.cmd, s.cmd_ref, s.data.0
            );
        }
    }
}

/// Package 6: the session is over (no RespURI) and the header status is 200.
fn assert_session_done(m: &SyncMl, who: &str) {
    assert_eq!(header_status(m), 200, "{who}: pkg5 header status");
    assert_statuses_ok(m, who);
    assert!(m.body.is_final, "{who}: package 6 is final");
    assert!(
        m.header.resp_uri.is_none(),
        "{who}: the session is complete (no RespURI)"
    );
}

// ------------------------------------------------------------------------------------
// Inspecting the server's database
// ------------------------------------------------------------------------------------

fn now() -> Timestamp {
    Timestamp::from_unix_secs(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

/// Line endings differ between what a client sends and what an XML parser hands on.
fn norm(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// The live contacts on the server: content -> how many items hold it.
fn server_items(data: &Path) -> BTreeMap<String, usize> {
    let store = SqliteStore::open_in_dir(data).expect("open the server database");
    let items = store
        .read(|tx| tx.items_list_live(DatastoreKey::new(USER, DS)))
        .expect("list items");
    let mut out = BTreeMap::new();
    for it in items {
        *out.entry(norm(&String::from_utf8_lossy(&it.data)))
            .or_insert(0) += 1;
    }
    out
}

/// The client anchor the server committed for a terminal (None: never completed).
fn server_anchor(data: &Path, terminal: &str) -> Option<String> {
    let store = SqliteStore::open_in_dir(data).expect("open the server database");
    store
        .read(|tx| tx.sync_state_get(SyncKey::new(USER, terminal, DS)))
        .expect("sync state")
        .and_then(|s| s.client_anchor)
}

/// Unexpired sessions the server persisted for a terminal.
fn persisted_sessions(data: &Path, terminal: &str) -> usize {
    let store = SqliteStore::open_in_dir(data).expect("open the server database");
    store
        .read(|tx| tx.sessions_for_terminal(USER, terminal, now()))
        .expect("sessions")
        .len()
}

fn total(items: &BTreeMap<String, usize>) -> usize {
    items.values().sum()
}

/// Every content is on the server exactly once and every client holds exactly the
/// server's set, each item once.
fn assert_converged(data: &Path, clients: &[&Client], expected: usize, ctx: &str) {
    let server = server_items(data);
    let dups: Vec<_> = server.iter().filter(|(_, n)| **n != 1).collect();
    assert!(dups.is_empty(), "{ctx}: duplicated on the server: {dups:?}");
    assert_eq!(server.len(), expected, "{ctx}: items on the server");
    for c in clients {
        let mut mine: BTreeMap<String, usize> = BTreeMap::new();
        for v in c.items.values() {
            *mine.entry(norm(v)).or_insert(0) += 1;
        }
        let dups: Vec<_> = mine.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            dups.is_empty(),
            "{ctx}: duplicated on client {}: {dups:?}",
            c.terminal
        );
        let lost_on_client: Vec<_> = server.keys().filter(|k| !mine.contains_key(*k)).collect();
        let lost_on_server: Vec<_> = mine.keys().filter(|k| !server.contains_key(*k)).collect();
        assert!(
            lost_on_client.is_empty() && lost_on_server.is_empty(),
            "{ctx}: client {} and server differ: missing on the client {lost_on_client:?}, missing on the server {lost_on_server:?}",
            c.terminal
        );
    }
}

fn vcard(tag: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:{tag};Crash\r\nFN:Crash {tag}\r\nTEL;CELL:+49170{:07}\r\nEND:VCARD\r\n",
        tag.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 10_000_000
    )
}

// ------------------------------------------------------------------------------------
// 1. The client disappears
// ------------------------------------------------------------------------------------

/// The client's first sync is interrupted after package 3 (its Adds were answered),
/// and it never sends package 5. Its next session: anchors did not move, so the
/// two-way Alert gets 508 and a slow sync; the items of the interrupted session are on
/// the server once, and re-sent by the slow sync they are matched, not duplicated.
#[test]
fn client_disappears_after_package_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a"]);
    let srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Xml);
    for i in 0..3 {
        a.add_item(vcard(&format!("a{i}")));
    }

    // Interrupted session: pkg1, pkg3 with the Adds, then the client is gone.
    let r1 = a.begin(200).expect("pkg1");
    assert_eq!(header_status(&r1), 212);
    assert_eq!(status_codes(&r1, "Alert"), vec![508], "first sync: 508");
    assert_eq!(server_alert(&r1), Some(201), "slow sync");
    let r2 = a.send_changes().expect("pkg3");
    assert_statuses_ok(&r2, "interrupted session pkg3");
    assert_eq!(status_codes(&r2, "Add"), vec![201; 3]);
    assert_eq!(server_changes(&r2), 0);
    // ...no package 5.

    let items = server_items(dir.path());
    assert_eq!(
        total(&items),
        3,
        "the Adds of the interrupted session: {items:?}"
    );
    assert!(items.values().all(|n| *n == 1), "each once: {items:?}");
    assert_eq!(
        server_anchor(dir.path(), "client-a"),
        None,
        "anchors do not move without package 5"
    );

    // Next session: the same (unmoved) anchors, a two-way Alert.
    let r1 = a.begin(200).expect("pkg1 of the next session");
    assert_eq!(header_status(&r1), 212);
    assert_eq!(
        status_codes(&r1, "Alert"),
        vec![508],
        "anchors did not move: refresh required"
    );
    assert_eq!(server_alert(&r1), Some(201), "slow sync");
    let r2 = a
        .send_changes()
        .expect("pkg3 (slow sync re-sends everything)");
    assert_statuses_ok(&r2, "slow sync pkg3");
    assert_eq!(status_codes(&r2, "Add").len(), 3);
    assert_eq!(
        server_changes(&r2),
        0,
        "the server must not send the client its own items back"
    );
    let r3 = a.finish().expect("pkg5");
    assert_session_done(&r3, "slow sync");
    assert_converged(dir.path(), &[&a], 3, "after the slow sync");
    assert_eq!(
        server_anchor(dir.path(), "client-a").as_deref(),
        Some(a.next_anchor.as_str()),
        "anchors committed"
    );

    // And a normal two-way sync follows.
    let (st, mode, received) = a.full_sync(200);
    assert_eq!((st, mode, received), (200, 200, 0));
    assert_converged(dir.path(), &[&a], 3, "after the two-way sync");
}

/// With anchors established, a two-way session is interrupted after package 3 (new
/// Adds; package 4 carried another terminal's item, whose Map the client never sent).
/// The client retries with its unmoved anchors, which still match the server's: 200,
/// it re-sends its changes and the Map it owes. Nothing is lost or duplicated.
#[test]
fn client_disappears_after_package_3_of_a_two_way_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a", "client-b"]);
    let srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Wbxml);
    let mut b = Client::new("client-b", &srv.base_url(), Encoding::Xml);
    a.add_item(vcard("a0"));
    a.add_item(vcard("a1"));
    assert_eq!(a.full_sync(200).0, 508);
    let anchor_1 = a.last_anchor.clone();
    b.add_item(vcard("b0"));
    let (_, _, got) = b.full_sync(200);
    assert_eq!(got, 2, "b receives a's items");

    // Interrupted two-way session of a: two Adds sent, b0 received, then a is gone.
    a.add_item(vcard("a2"));
    a.add_item(vcard("a3"));
    let r1 = a.begin(200).expect("pkg1");
    assert_eq!(status_codes(&r1, "Alert"), vec![200]);
    let r2 = a.send_changes().expect("pkg3");
    assert_statuses_ok(&r2, "interrupted pkg3");
    assert_eq!(server_changes(&r2), 1, "b0 arrives in package 4");
    assert_eq!(a.pending_map.len(), 1);

    let items = server_items(dir.path());
    assert_eq!(total(&items), 5, "{items:?}");
    assert_eq!(server_anchor(dir.path(), "client-a"), anchor_1);

    // Retry: same Last anchor; the server's stored one matches.
    let r1 = a.begin(200).expect("pkg1 of the retry");
    assert_eq!(
        status_codes(&r1, "Alert"),
        vec![200],
        "the anchors did not move on either side, so they still match"
    );
    assert_eq!(server_alert(&r1), Some(200));
    let r2 = a.send_changes().expect("pkg3 of the retry");
    assert_statuses_ok(&r2, "retry pkg3");
    assert_eq!(status_codes(&r2, "Map"), vec![200], "the owed Map is taken");
    assert_eq!(status_codes(&r2, "Add").len(), 2);
    let r3 = a.finish().expect("pkg5 of the retry");
    assert_session_done(&r3, "retry");
    b.full_sync(200);
    assert_converged(dir.path(), &[&a, &b], 5, "after the retry");
    let (st, _, got) = a.full_sync(200);
    assert_eq!((st, got), (200, 0));
}

// ------------------------------------------------------------------------------------
// 2. The server is killed
// ------------------------------------------------------------------------------------

/// One two-way session of `a` (one new item of its own, `b`'s new item arriving in
/// package 4) with the server SIGKILLed after it answered package 3 (and, with
/// `kill_after_pkg1`, also after package 1). Checks the crash state on disk, restarts
/// on the same port and finishes the session at the RespURI.
fn crash_between_pkg3_and_pkg5(
    srv: &mut Server,
    a: &mut Client,
    b: &mut Client,
    round: usize,
    kill_after_pkg1: bool,
) {
    let ctx = format!("round {round}");
    let data = srv.data.clone();
    b.add_item(vcard(&format!("b-round{round}")));
    let (st, _, _) = b.full_sync(200);
    assert_eq!(st, 200, "{ctx}: b two-way");
    a.add_item(vcard(&format!("a-round{round}")));
    let before = total(&server_items(&data));
    let anchor_before = server_anchor(&data, "client-a");
    assert_eq!(anchor_before, a.last_anchor, "{ctx}");

    let r1 = a.begin(200).expect("pkg1");
    assert_eq!(header_status(&r1), 212, "{ctx}");
    assert_eq!(status_codes(&r1, "Alert"), vec![200], "{ctx}: two-way");
    if kill_after_pkg1 {
        srv.crash_and_restart();
    }
    let r2 = a.send_changes().expect("pkg3");
    assert_eq!(header_status(&r2), 200, "{ctx}: pkg3 continues the session");
    assert_statuses_ok(&r2, &ctx);
    assert_eq!(status_codes(&r2, "Add"), vec![201], "{ctx}");
    assert_eq!(server_changes(&r2), 1, "{ctx}: b's new item in package 4");
    assert!(r2.body.is_final, "{ctx}");
    let resp_uri = r2.header.resp_uri.clone().expect("RespURI");

    srv.kill9();
    // The crash state: a's Add is committed (its reply was sent), anchors unmoved, the
    // session persisted.
    let items = server_items(&data);
    assert_eq!(total(&items), before + 1, "{ctx}: {items:?}");
    assert!(items.values().all(|n| *n == 1), "{ctx}: {items:?}");
    assert_eq!(
        server_anchor(&data, "client-a"),
        anchor_before,
        "{ctx}: anchors must not move before package 5"
    );
    assert_eq!(persisted_sessions(&data, "client-a"), 1, "{ctx}");

    srv.spawn();
    assert_eq!(a.url, resp_uri);
    let r3 = a.finish().expect("pkg5 after the restart");
    assert_eq!(
        header_status(&r3),
        200,
        "{ctx}: the restarted server continues the authenticated session"
    );
    assert_session_done(&r3, &ctx);
    assert_eq!(r3.header.msg_id, "3", "{ctx}: MsgID continues");
    assert_eq!(status_codes(&r3, "Map"), vec![200], "{ctx}: Map accepted");
    assert_eq!(
        server_anchor(&data, "client-a").as_deref(),
        Some(a.next_anchor.as_str()),
        "{ctx}: anchors committed by package 5"
    );
    assert_eq!(persisted_sessions(&data, "client-a"), 0, "{ctx}");
}

/// Kill -9 between package 3 and package 5; the restarted server takes package 5 at the
/// RespURI, commits the anchors, and the next two-way sync is accepted with nothing
/// lost or duplicated.
#[test]
fn server_killed_mid_session_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a", "client-b"]);
    let mut srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Xml);
    let mut b = Client::new("client-b", &srv.base_url(), Encoding::Wbxml);
    a.add_item(vcard("a0"));
    a.add_item(vcard("a1"));
    a.full_sync(201);
    b.full_sync(200);

    crash_between_pkg3_and_pkg5(&mut srv, &mut a, &mut b, 0, false);

    let (st, mode, got) = a.full_sync(200);
    assert_eq!(
        (st, mode),
        (200, 200),
        "the anchors committed after the restart are accepted (200, not 508)"
    );
    assert_eq!(got, 0, "nothing is sent twice");
    let (st, _, got) = b.full_sync(200);
    assert_eq!((st, got), (200, 1), "b receives a's item once");
    assert_converged(dir.path(), &[&a, &b], 4, "after the crash");
}

/// Test 2 in a loop: five sessions, each with a kill -9 between package 3 and 5 (and
/// in every other round also one between package 1 and 3), on one data directory.
#[test]
fn server_killed_mid_session_repeatedly() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a", "client-b"]);
    let mut srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Wbxml);
    let mut b = Client::new("client-b", &srv.base_url(), Encoding::Xml);
    a.add_item(vcard("a0"));
    a.full_sync(200);
    b.full_sync(200);
    for round in 1..=5 {
        let pid = srv.pid();
        crash_between_pkg3_and_pkg5(&mut srv, &mut a, &mut b, round, round % 2 == 0);
        assert_ne!(srv.pid(), pid, "a new server process");
        // b's item from this round reached a exactly once; a has nothing to receive.
        let (st, _, got) = a.full_sync(200);
        assert_eq!((st, got), (200, 0), "round {round}");
    }
    let (st, _, got) = b.full_sync(200);
    assert_eq!((st, got), (200, 1), "b receives the last round's item");
    assert_converged(dir.path(), &[&a, &b], 11, "after 5 crash rounds");
}

/// The server commits package 5 (anchors, mark) and dies before its reply reaches the
/// client (the reply is dropped here): the client's anchor did not move, the server's
/// did, so its next two-way Alert gets 508 and the slow sync converges without loss or
/// duplicates (the item it received in package 4 and never confirmed included).
#[test]
fn server_killed_after_committing_package_5_before_the_reply() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a", "client-b"]);
    let mut srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Xml);
    let mut b = Client::new("client-b", &srv.base_url(), Encoding::Xml);
    a.add_item(vcard("a0"));
    a.full_sync(200);
    b.add_item(vcard("b0"));
    b.full_sync(200);

    a.add_item(vcard("a1"));
    a.begin(200).expect("pkg1");
    let r2 = a.send_changes().expect("pkg3");
    assert_eq!(server_changes(&r2), 1, "b0 in package 4");
    let pkg5 = a.pkg5();
    let _lost = post_syncml(&a.url, a.enc, &a.encode(&pkg5)).expect("pkg5");
    srv.crash_and_restart();
    assert_eq!(
        server_anchor(dir.path(), "client-a").as_deref(),
        Some(a.next_anchor.as_str()),
        "package 5 was committed"
    );
    assert_ne!(a.last_anchor.as_deref(), Some(a.next_anchor.as_str()));

    let (st, mode, got) = a.full_sync(200);
    assert_eq!(
        (st, mode),
        (508, 201),
        "the client's Last anchor is not the server's: slow sync"
    );
    assert_eq!(
        got, 0,
        "all of the server's items are matched to the client's"
    );
    let (st, _, got) = b.full_sync(200);
    assert_eq!((st, got), (200, 1), "b receives a1 once");
    assert_converged(dir.path(), &[&a, &b], 3, "after the slow sync");
}

/// The server commits package 3 and dies before its reply (package 4) reaches the
/// client (the reply is dropped here). A client that retransmits its last message when
/// the reply does not come (the Synthesis engine in SyncEvolution does, `RetryInterval`)
/// posts the same package 3, same MsgID, to the RespURI of the restarted server.
///
/// The server must not take the retransmission for package 5: it must either answer
/// it with package 4 again (the session going on) or at least not commit the anchors
/// and the mark, since the client never received, let alone acknowledged, package 4.
#[test]
fn client_resends_package_3_after_server_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path(), &["client-a", "client-b"]);
    let mut srv = Server::start(dir.path(), free_port());
    let mut a = Client::new("client-a", &srv.base_url(), Encoding::Xml);
    let mut b = Client::new("client-b", &srv.base_url(), Encoding::Xml);
    a.add_item(vcard("a0"));
    a.full_sync(200);
    b.add_item(vcard("b0"));
    b.full_sync(200);
    let anchor_before = server_anchor(dir.path(), "client-a");

    a.add_item(vcard("a1"));
    a.begin(200).expect("pkg1");
    let pkg3 = a.pkg3();
    let pkg3 = a.encode(&pkg3);
    let lost = post_syncml(&a.url, a.enc, &pkg3).expect("pkg3");
    assert_eq!(server_changes(&lost), 1, "package 4 carries b0");
    srv.crash_and_restart();

    // The retransmission: byte for byte the same message.
    let again = post_syncml(&a.url, a.enc, &pkg3).expect("retransmitted pkg3");
    let anchor_now = server_anchor(dir.path(), "client-a");
    let redelivered = again.header.resp_uri.is_some() && server_changes(&again) == 1;
    assert!(
        redelivered || anchor_now == anchor_before,
        "SERVER BUG: a retransmitted package 3 (MsgID {}) was taken for package 5: the \
         reply (MsgID {}) has no package 4 (changes: {}) and {} RespURI, and the server \
         committed anchor {:?} (was {:?}) and moved the mark past b0, which client-a \
         never received. A client that takes that final reply as the end of the session \
         never receives b0 (its next two-way sync is accepted with 200 and sends nothing). \
         See session/mod.rs Engine::handle: no check of SyncHdr/MsgID against the last \
         message of the session; Phase::Map completes on any Final message.",
        a.msg_id,
        again.header.msg_id,
        server_changes(&again),
        if again.header.resp_uri.is_some() {
            "a"
        } else {
            "no"
        },
        anchor_now,
        anchor_before,
    );
    if redelivered {
        let r = a.accept(again);
        a.apply_server_changes(&r);
        let r3 = a.finish().expect("pkg5");
        assert_session_done(&r3, "after the retransmission");
    } else {
        // The client gives up on the session and starts another one.
        a.full_sync(200);
    }
    b.full_sync(200);
    assert_converged(dir.path(), &[&a, &b], 3, "after the retransmission");
}

// ------------------------------------------------------------------------------------
// 3. Killed while a large package 3 is processed
// ------------------------------------------------------------------------------------

const BIG: usize = 500;

#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Not at all (calibration: how long the message takes).
    Never,
    /// As soon as the database's WAL file changes after the post started: the commit
    /// of the message's transaction is being written.
    WalWrite,
    /// This long after the post started.
    After(Duration),
}

#[derive(Debug)]
struct BigRound {
    kill: KillAt,
    /// The server replied to package 3 before it died.
    replied: bool,
    /// Items on the server right after the kill.
    after_kill: usize,
    /// Time the post took (calibration) or until the kill.
    elapsed: Duration,
    /// The WAL file had changed when the server was killed.
    wal_written: bool,
}

fn wal_state(data: &Path) -> Option<(u64, SystemTime)> {
    let wal = format!("{}-wal", syncml_server::store::sqlite::DB_FILE_NAME);
    let m = std::fs::metadata(data.join(wal)).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// One client's first sync of 500 items in one package-3 message (after an empty
/// sync that set the anchors when `anchored`), the server killed as `kill` says; then
/// the crash state is checked, the server restarted and the client's retry must
/// converge on exactly 500 items.
fn big_round(kill: KillAt, anchored: bool) -> BigRound {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    provision(data, &["big-client"]);
    let mut srv = Server::start(data, free_port());
    let mut c = Client::new("big-client", &srv.base_url(), Encoding::Wbxml);
    if anchored {
        assert_eq!(c.full_sync(200).0, 508);
    }
    let anchor_before = server_anchor(data, "big-client");
    for i in 0..BIG {
        c.add_item(vcard(&format!("big{i:04}")));
    }
    let r1 = c.begin(200).expect("pkg1");
    let expect_alert = if anchored { 200 } else { 508 };
    assert_eq!(status_codes(&r1, "Alert"), vec![expect_alert]);

    let msg = c.pkg3();
    let body = c.encode(&msg);
    let url = c.url.clone();
    let enc = c.enc;
    let wal0 = wal_state(data);
    let start = Instant::now();
    let poster = std::thread::spawn(move || post_syncml(&url, enc, &body));
    match kill {
        KillAt::Never => {}
        KillAt::WalWrite => {
            let deadline = start + Duration::from_secs(20);
            while wal_state(data) == wal0 && !poster.is_finished() && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            srv.kill9();
        }
        KillAt::After(d) => {
            std::thread::sleep(d);
            srv.kill9();
        }
    }
    let mut elapsed = start.elapsed();
    // The WAL had been written to when the server died: the kill hit the commit.
    let mut wal_written = wal_state(data) != wal0;
    let reply = poster.join().expect("poster thread");
    if matches!(kill, KillAt::Never) {
        elapsed = start.elapsed();
        wal_written = wal_state(data) != wal0;
    }
    let replied = reply.is_ok();
    if let Ok(r) = reply {
        let r = c.accept(r);
        c.apply_server_changes(&r);
        assert_statuses_ok(&r, "big pkg3");
        assert_eq!(status_codes(&r, "Add").len(), BIG);
    }
    srv.kill9();

    // The crash state: one transaction per message, so all or nothing.
    let items = server_items(data);
    let after_kill = total(&items);
    assert!(
        after_kill == 0 || after_kill == BIG,
        "{kill:?}: a partially applied message: {after_kill} of {BIG} items on the server"
    );
    assert!(items.values().all(|n| *n == 1), "{kill:?}: duplicates");
    if replied {
        assert_eq!(
            after_kill, BIG,
            "{kill:?}: the server replied, so the message must be durable"
        );
    }
    assert_eq!(
        server_anchor(data, "big-client"),
        anchor_before,
        "{kill:?}: anchors must not move"
    );

    // Restart; the client retries (it never completed the session).
    srv.spawn();
    let (st, mode, got) = c.full_sync(200);
    assert_eq!(
        (st, mode),
        if anchored { (200, 200) } else { (508, 201) },
        "{kill:?}: the retry (anchors unmoved)"
    );
    assert_eq!(
        got, 0,
        "{kill:?}: the server must not echo the client's items"
    );
    assert_converged(data, &[&c], BIG, &format!("{kill:?} after the retry"));
    let (st, _, got) = c.full_sync(200);
    assert_eq!((st, got), (200, 0), "{kill:?}: a normal sync afterwards");
    assert_converged(data, &[&c], BIG, &format!("{kill:?} at the end"));
    BigRound {
        kill,
        replied,
        after_kill,
        elapsed,
        wal_written,
    }
}

/// Kill -9 while (or right after) a 500-Add package 3 is posted, at several moments
/// (when the commit starts writing the WAL, and at fractions of the measured handling
/// time): afterwards the datastore holds all 500 or none, never part; the retry then
/// converges with exactly 500.
#[test]
fn server_killed_during_message_commits_nothing_partial() {
    let calib = big_round(KillAt::Never, false);
    assert!(calib.replied && calib.after_kill == BIG, "{calib:?}");
    let t = calib.elapsed;
    eprintln!("500-Add package 3 takes {t:?}");
    let mut rounds = vec![calib];
    let plan = [
        (KillAt::WalWrite, false),
        (KillAt::WalWrite, true),
        (KillAt::After(Duration::ZERO), true),
        (KillAt::After(t / 4), false),
        (KillAt::After(t / 2), true),
        (KillAt::After(t * 3 / 4), false),
        (KillAt::After(t * 9 / 10), true),
    ];
    for (kill, anchored) in plan {
        rounds.push(big_round(kill, anchored));
    }
    for r in &rounds {
        eprintln!(
            "{:?}: replied {}, WAL written {}, items after the kill {} (after {:?})",
            r.kill, r.replied, r.wal_written, r.after_kill, r.elapsed
        );
    }
}

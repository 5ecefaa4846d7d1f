//! Replays the client side of every captured SyncEvolution session (11 sessions, XML and
//! WBXML, SyncML 1.1 and 1.2, md5 and basic auth) against our server over real HTTP with
//! a real SQLite file, re-signing each md5 credential with the nonce our server issued.
//! Checks the statuses and packages a SyncML client relies on.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use syncml_core::model::{Command, Data, SyncMl};
use syncml_core::{auth, Encoding, StatusCode};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt, Timestamp,
};

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../syncml-core/tests/data/captures")
}

struct Server {
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

fn start(allow_basic: bool) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
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
            for t in ["syncevo-interop-client", "basic-client", "sml11-client"] {
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: t.into(),
                        subscriber_id: "test".into(),
                        md5_verifier: Some(Secret::new(auth::md5::user_digest("test", "secret"))),
                        basic_verifier: Some(Secret::new(
                            syncml_server::password::hash("secret").expect("hash"),
                        )),
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    Timestamp::from_unix_secs(1),
                )?;
            }
            Ok(())
        })
        .expect("provision");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = EngineConfig::default();
    cfg.allow_basic_without_tls = allow_basic;
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
        _dir: dir,
        store,
    }
}

/// A minimal HTTP/1.1 POST over a std TcpStream (no client library needed).
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

struct Replayer {
    url: String,
    base: String,
    /// The last NextNonce our server gave each terminal.
    nonces: std::collections::HashMap<String, Vec<u8>>,
    replies: Vec<SyncMl>,
}

impl Replayer {
    fn new(base: &str) -> Replayer {
        Replayer {
            url: base.to_string(),
            base: base.to_string(),
            nonces: Default::default(),
            replies: Vec::new(),
        }
    }

    fn send(&mut self, file: &Path) -> SyncMl {
        let bytes = std::fs::read(file).expect("capture");
        let enc = syncml_core::detect(&bytes).expect("encoding");
        let mut msg = syncml_core::decode(&bytes).expect("decode capture");
        let terminal = msg.header.source.loc_uri.clone();
        let nonce = self.nonces.get(&terminal).cloned().unwrap_or_default();
        if let Some(cred) = &mut msg.header.cred {
            let md5 = cred
                .meta
                .as_ref()
                .and_then(|m| m.r#type.as_deref())
                .is_some_and(|t| t == auth::TYPE_MD5);
            if md5 {
                cred.data = Data::Text(auth::md5::credential("test", "secret", &nonce));
            }
        }
        if msg.header.msg_id == "1" {
            self.url = self.base.clone();
        }
        let body = syncml_core::encode(&msg, enc).expect("encode");
        let (code, reply) = post(&self.url, enc.mime_type(), &body);
        assert_eq!(code, 200, "HTTP status for {}", file.display());
        assert_eq!(
            syncml_core::detect(&reply),
            Some(enc),
            "reply in the request's encoding"
        );
        let reply = syncml_core::decode(&reply).expect("our reply decodes");
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                if let Some(n) = s.chal.as_ref().and_then(|ch| ch.meta.next_nonce.as_deref()) {
                    let n = auth::nonce::decode_next_nonce(n).expect("nonce");
                    self.nonces.insert(terminal.clone(), n);
                }
            }
        }
        if let Some(r) = &reply.header.resp_uri {
            self.url = r.clone();
        }
        self.replies.push(reply.clone());
        reply
    }
}

fn client_messages(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(captures().join(dir))
        .expect("capture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.contains("c2s") && !n.contains("NOT-SENT") && !n.contains("translation")
        })
        .collect();
    v.sort();
    v
}

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

fn header_status(m: &SyncMl) -> u16 {
    statuses(m).first().map(|s| s.1).unwrap_or(0)
}

#[test]
fn every_captured_session_replays_against_our_server() {
    let srv = start(true);
    let mut r = Replayer::new(&srv.url);
    for dir in [
        "01-slow-wbxml-md5",
        "02-twoway-xml",
        "03-twoway-wbxml",
        "04-refresh-from-server-wbxml",
        "05-refresh-from-client-wbxml",
        "06-one-way-from-client-xml",
        "07-one-way-from-server-xml",
        "08-basic-auth-slow-xml",
        "09-syncml11-slow-wbxml",
    ] {
        let msgs = client_messages(dir);
        for (i, f) in msgs.iter().enumerate() {
            let reply = r.send(f);
            let st = statuses(&reply);
            let hs = header_status(&reply);
            if i == 0 {
                assert_eq!(hs, 212, "{dir}: credentials accepted once per session");
            } else {
                assert_eq!(hs, 200, "{dir} message {}", i + 1);
            }
            for (cmd, code) in &st {
                assert!(
                    StatusCode(*code).is_success() || *code == 508,
                    "{dir} msg {}: {cmd} got {code}",
                    i + 1
                );
            }
            assert!(reply.body.is_final, "{dir}: every reply ends its package");
            assert_eq!(reply.header.msg_id, (i + 1).to_string(), "{dir}: MsgID");
        }
        // The session completed: our last reply carries no RespURI.
        assert!(
            r.replies
                .last()
                .is_some_and(|m| m.header.resp_uri.is_none()),
            "{dir}"
        );
    }
    // Every session left marks behind; the store holds the captured items.
    let n = srv
        .store
        .read(|tx| tx.items_stats(syncml_server::store::DatastoreKey::new("test", "contacts")))
        .expect("stats");
    assert!(n.count >= 2, "contacts on the server: {}", n.count);
}

#[test]
fn a_wrong_password_gets_401_with_a_challenge_and_nothing_is_written() {
    let srv = start(false);
    let f = client_messages("11-bad-password-xml");
    let bytes = std::fs::read(&f[0]).expect("capture");
    let (code, reply) = post(&srv.url, Encoding::Xml.mime_type(), &bytes);
    assert_eq!(code, 200);
    let reply = syncml_core::decode(&reply).expect("decode");
    assert_eq!(header_status(&reply), 401);
    let chal = reply.body.commands.iter().find_map(|c| match c {
        Command::Status(s) => s.chal.clone(),
        _ => None,
    });
    assert_eq!(
        chal.and_then(|c| c.meta.r#type),
        Some(auth::TYPE_MD5.to_string())
    );
    // AUTH-13: only Status commands, one per received command, all 401: nothing processed.
    let sent = syncml_core::decode(&bytes).expect("decode");
    let received = sent
        .body
        .commands
        .iter()
        .filter(|c| !matches!(c, Command::Status(_)))
        .count();
    let st = statuses(&reply);
    assert_eq!(
        st.len(),
        1 + received,
        "a Status for the header and each command"
    );
    assert!(st.iter().all(|s| s.1 == 401), "every status is 401: {st:?}");
    assert!(
        reply
            .body
            .commands
            .iter()
            .all(|c| matches!(c, Command::Status(_))),
        "no command of the refused message was processed"
    );
    let audit = srv
        .store
        .read(|tx| tx.audit_list(&Default::default()))
        .expect("audit");
    assert!(audit.iter().any(|a| a.event.status == Some(401)));
}

#[test]
fn basic_auth_is_refused_without_tls_unless_allowed() {
    let srv = start(false);
    let mut r = Replayer::new(&srv.url);
    let reply = r.send(&client_messages("08-basic-auth-slow-xml")[0]);
    assert_eq!(header_status(&reply), 401);
}

#[test]
fn garbage_gets_http_400_not_a_crash() {
    let srv = start(false);
    let (code, body) = post(
        &srv.url,
        Encoding::Wbxml.mime_type(),
        b"\x02\xa4\x01\x6a\x00\x6d\x6c",
    );
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("byte"));
    let (code, _) = post(&srv.url, "text/plain", b"hello");
    assert_eq!(code, 415);
}

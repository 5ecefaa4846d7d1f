//! A handset driver for the operations tests: the real client session of `syncml-client`
//! (md5 auth with the server's nonce, packages 1, 3, 5) over real HTTP, with an in-memory
//! contacts store. `hop` sends every message of a session to the next node in turn (the
//! RespURI's path and query kept, its authority swapped), which only works if no session
//! state lives in a node.
#![allow(dead_code)]

use std::time::Duration;

use syncml_client::mem::MemoryStore;
use syncml_client::{
    ClientError, ClientSession, DataStore, HttpTransport, SessionConfig, SessionError,
    SessionReport, Step, SyncMode, Transport,
};
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, Store, StoreExt, Timestamp,
};

/// The password of every test terminal.
pub const PASSWORD: &str = "ops-secret";

/// Creates `subscriber` (if new) and registers `terminals` for it (md5 verifier of
/// [`PASSWORD`]), as `syncml-server terminal register` would.
pub fn provision(store: &dyn Store, subscriber: &str, terminals: &[&str]) {
    let now = Timestamp::from_unix_secs(unix_now());
    store
        .transaction(|tx| {
            if tx.subscriber_get(subscriber)?.is_none() {
                tx.subscriber_create(
                    &NewSubscriber {
                        id: subscriber.into(),
                        display_name: None,
                        security_level: 0,
                    },
                    now,
                )?;
            }
            for t in terminals {
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: (*t).into(),
                        subscriber_id: subscriber.into(),
                        md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(
                            subscriber, PASSWORD,
                        ))),
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    now,
                )?;
            }
            Ok(())
        })
        .expect("provision");
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A vCard whose content names `tag`.
pub fn card(tag: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:2.1\r\nN:{tag};Test\r\nFN:Test {tag}\r\nEND:VCARD\r\n")
}

/// `url` with its scheme and authority replaced by those of `node` (path and query kept).
pub fn rehost(url: &str, node: &str) -> String {
    let split = |u: &str| -> (String, String) {
        let after = u.find("://").map_or(0, |i| i + 3);
        match u[after..].find('/') {
            Some(i) => (u[..after + i].to_string(), u[after + i..].to_string()),
            None => (u.to_string(), "/".to_string()),
        }
    };
    let (origin, _) = split(node);
    let (_, rest) = split(url);
    format!("{origin}{rest}")
}

/// `GET path` on `addr` (HTTP/1.1, connection closed): status and body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// The samples of a Prometheus text exposition: `name{labels}` to value.
pub fn parse_metrics(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One handset: a terminal ID, its subscriber and its local contacts.
pub struct Handset {
    pub id: String,
    pub user: String,
    pub store: MemoryStore,
    nonce: Option<String>,
    sessions: u64,
    /// The URL of every message posted, in order (for the hop assertions).
    pub posted: Vec<String>,
}

impl Handset {
    pub fn new(user: &str, id: &str) -> Handset {
        Handset {
            id: id.into(),
            user: user.into(),
            store: MemoryStore::contacts(),
            nonce: None,
            sessions: 0,
            posted: Vec::new(),
        }
    }

    /// The local items, sorted.
    pub fn contents(&self) -> Vec<String> {
        self.store.contents()
    }

    /// One session of `mode` starting at `nodes[first]`; with `hop`, message i goes to
    /// `nodes[(first + i) % nodes.len()]`.
    pub async fn sync(
        &mut self,
        nodes: &[String],
        first: usize,
        hop: bool,
        mode: SyncMode,
    ) -> Result<SessionReport, ClientError> {
        let transport = HttpTransport::new().with_timeout(Duration::from_secs(30));
        self.sessions += 1;
        let mut cfg =
            SessionConfig::new(&nodes[first % nodes.len()], &self.id, &self.user, PASSWORD);
        cfg.session_id = self.sessions.to_string();
        cfg.nonce = self.nonce.clone();
        cfg.now = unix_now();
        let mut s = ClientSession::new(cfg, &[mode]);
        let mut stores = [&mut self.store as &mut dyn DataStore];
        let posted = &mut self.posted;
        let result = async {
            let mut out = s.start(&mut stores)?;
            for i in 0..200 {
                let url = if hop {
                    rehost(&out.url, &nodes[(first + i) % nodes.len()])
                } else {
                    out.url.clone()
                };
                posted.push(url.clone());
                let body = out.to_bytes()?;
                let (_ct, reply) = transport.post(&url, out.content_type(), body).await?;
                let msg =
                    syncml_core::decode(&reply).map_err(|e| SessionError::Decode(e.to_string()))?;
                match s.handle(msg, &mut stores)? {
                    Step::Send(next) => out = next,
                    Step::Done(r) => return Ok(r),
                }
            }
            Err(SessionError::TooManyMessages(200).into())
        }
        .await;
        if let Some(n) = s.next_nonce() {
            self.nonce = Some(n.to_string());
        }
        if result.is_err() {
            let _ = s.abort(&mut stores);
        }
        result
    }
}

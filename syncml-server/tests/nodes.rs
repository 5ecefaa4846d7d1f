//! Stateless nodes (issue 6): two `syncml-server serve` processes on one PostgreSQL
//! database (a throwaway cluster, [`pg_cluster`]), driven over real HTTP by the real
//! `syncml-client` session.
//!
//! * The messages of one session alternate between the nodes (the RespURI token is not
//!   tied to a node).
//! * Two terminals of one subscriber sync at the same time through different nodes, round
//!   after round: nothing lost, nothing duplicated (checked by content, on both handsets
//!   and in the database).
//! * A terminal has at most one live session: a new session of the terminal supersedes
//!   its older one, whose next message (on any node) is refused (SyncHdr 407, no session
//!   any more) and changes nothing, so a late message of an abandoned session can never
//!   act after a newer session.
//! * Crash: `kill -9` of a node, again and again, during a bounded load run (the
//!   `syncml-load` library, every session's messages spread over both nodes); afterwards
//!   every terminal converges with nothing lost or duplicated, by content.
//!
//! Without PostgreSQL server binaries every test fails and says what to install.

mod driver;
mod pg_cluster;

#[allow(dead_code)]
#[path = "../../examples/src/load.rs"]
mod load;

use std::fs::OpenOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driver::{card, provision, rehost, Handset, PASSWORD};
use syncml_client::{ClientSession, DataStore, SessionConfig, Step, SyncMode, Transport};
use syncml_server::store::{DatastoreKey, PgStore, Store, StoreExt};

const BIN: &str = env!("CARGO_BIN_EXE_syncml-server");
const SUB: &str = "262010000000042";
const T1: &str = "IMEI:350000000000011";
const T2: &str = "IMEI:350000000000012";

/// `syncml-server --db URL serve` as a child process on a fixed port; SIGKILLed on drop.
struct Node {
    db: String,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(db: &str, log_dir: &std::path::Path, name: &str) -> Node {
        let mut n = Node {
            db: db.into(),
            port: pg_cluster::free_port(),
            log: log_dir.join(format!("{name}.log")),
            child: None,
        };
        n.spawn();
        n
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sync", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Starts the process and waits (bounded) until `/healthz` answers; a process that
    /// exits at once (port still held after a kill) is started again.
    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("node log");
            let mut child = Command::new(BIN)
                .args(["--db", &self.db, "serve", "--log-json", "--listen"])
                .arg(self.addr().to_string())
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn syncml-server");
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if healthy(self.addr()) {
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("node did not come up:\n{}", self.log_tail());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(
                Instant::now() < deadline,
                "node kept exiting at start:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn healthy(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

/// A database in the shared throwaway cluster, with the schema (connecting migrates).
fn database() -> (String, Arc<PgStore>) {
    let url = pg_cluster::cluster().create_database();
    let store = Arc::new(PgStore::connect(&url).expect("connect"));
    (url, store)
}

/// The subscriber's live items in the database, sorted by content.
fn server_items(store: &dyn Store, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = store
        .read(|tx| tx.items_list_live(DatastoreKey::new(sub, "contacts")))
        .expect("items")
        .into_iter()
        .map(|i| String::from_utf8_lossy(&i.data).into_owned())
        .collect();
    v.sort();
    v
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn respuri_is_not_tied_to_a_node() {
    assert_eq!(
        rehost("http://127.0.0.1:1/sync?s=abc", "http://127.0.0.1:2/sync"),
        "http://127.0.0.1:2/sync?s=abc"
    );
    let (db, store) = database();
    provision(store.as_ref(), SUB, &[T1, T2]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Node::start(&db, dir.path(), "a");
    let b = Node::start(&db, dir.path(), "b");
    let nodes = vec![a.url(), b.url()];
    let rt = rt();

    let mut h1 = Handset::new(SUB, T1);
    let mine: Vec<String> = (0..4).map(|i| card(&format!("hop-{i}"))).collect();
    for c in &mine {
        h1.store.add(c.clone());
    }
    let r = rt
        .block_on(h1.sync(&nodes, 0, true, SyncMode::TwoWay))
        .expect("a session hopping between nodes");
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.sent(), 4);
    let on = |port: u16| {
        h1.posted
            .iter()
            .filter(|u| u.contains(&format!(":{port}/")))
            .count()
    };
    assert!(h1.posted.len() >= 3, "{:?}", h1.posted);
    assert!(on(a.port) >= 1 && on(b.port) >= 1, "{:?}", h1.posted);
    assert!(
        h1.posted[1..].iter().all(|u| u.contains("?s=")),
        "every message after the first carries the session token: {:?}",
        h1.posted
    );

    // The sibling, starting on the other node and hopping too, gets exactly those items.
    let mut h2 = Handset::new(SUB, T2);
    let r = rt
        .block_on(h2.sync(&nodes, 1, true, SyncMode::TwoWay))
        .expect("sibling session");
    assert_eq!(r.received(), 4);
    assert_eq!(h2.contents(), sorted(mine.clone()));
    assert_eq!(server_items(store.as_ref(), SUB), sorted(mine));
}

#[test]
fn two_terminals_of_one_subscriber_sync_at_once_through_different_nodes() {
    let (db, store) = database();
    provision(store.as_ref(), SUB, &[T1, T2]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Node::start(&db, dir.path(), "a");
    let b = Node::start(&db, dir.path(), "b");
    let nodes = vec![a.url(), b.url()];
    let rt = rt();

    let mut h1 = Handset::new(SUB, T1);
    let mut h2 = Handset::new(SUB, T2);
    let mut expected = Vec::new();
    for round in 0..4 {
        // Fresh edits on both handsets, then both sessions at once, T1 on node a and T2
        // on node b (swapped every round).
        for i in 0..5 {
            let (c1, c2) = (
                card(&format!("t1-r{round}-{i}")),
                card(&format!("t2-r{round}-{i}")),
            );
            h1.store.add(c1.clone());
            h2.store.add(c2.clone());
            expected.extend([c1, c2]);
        }
        let (r1, r2) = rt.block_on(async {
            tokio::join!(
                h1.sync(&nodes, round, false, SyncMode::TwoWay),
                h2.sync(&nodes, round + 1, false, SyncMode::TwoWay)
            )
        });
        let (r1, r2) = (r1.expect("T1 session"), r2.expect("T2 session"));
        assert!(r1.is_success() && r2.is_success(), "{r1:?} {r2:?}");
        assert_eq!((r1.sent(), r2.sent()), (5, 5), "round {round}");
    }
    // One quiet session each collects what the sibling sent meanwhile.
    rt.block_on(h1.sync(&nodes, 1, false, SyncMode::TwoWay))
        .expect("T1 final");
    rt.block_on(h2.sync(&nodes, 0, false, SyncMode::TwoWay))
        .expect("T2 final");
    let expected = sorted(expected);
    assert_eq!(expected.len(), 40);
    assert_eq!(server_items(store.as_ref(), SUB), expected, "database");
    assert_eq!(h1.contents(), expected, "T1");
    assert_eq!(h2.contents(), expected, "T2");
}

/// Posts one message of `s` to `url` and feeds the reply back: the next step.
async fn exchange(
    s: &mut ClientSession,
    store: &mut syncml_client::mem::MemoryStore,
    url: &str,
    body: Vec<u8>,
    ct: &str,
) -> (
    syncml_core::model::SyncMl,
    Result<Step, syncml_client::SessionError>,
) {
    let t = syncml_client::HttpTransport::new();
    let (_, reply) = t.post(url, ct, body).await.expect("post");
    let msg = syncml_core::decode(&reply).expect("decode");
    let mut stores = [store as &mut dyn DataStore];
    let step = s.handle(msg.clone(), &mut stores);
    (msg, step)
}

fn header_status(m: &syncml_core::model::SyncMl) -> u16 {
    m.body
        .commands
        .iter()
        .find_map(|c| match c {
            syncml_core::model::Command::Status(s) if s.cmd == "SyncHdr" => Some(s.data.0),
            _ => None,
        })
        .expect("SyncHdr status")
}

#[test]
fn a_newer_session_of_a_terminal_supersedes_its_older_one_on_any_node() {
    let (db, store) = database();
    provision(store.as_ref(), SUB, &[T1]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Node::start(&db, dir.path(), "a");
    let b = Node::start(&db, dir.path(), "b");
    let nodes = vec![a.url(), b.url()];
    let rt = rt();

    let mut h = Handset::new(SUB, T1);
    rt.block_on(h.sync(&nodes, 0, false, SyncMode::TwoWay))
        .expect("first sync");

    // Session S1 on node a: package 1 answered, its package 3 (one Add) held back, as if
    // the handset had lost the connection.
    let luid = h.store.add(card("stale"));
    let mut cfg = SessionConfig::new(a.url(), T1, SUB, PASSWORD);
    cfg.session_id = "900".into();
    cfg.now = driver::unix_now();
    let mut s1 = ClientSession::new(cfg, &[SyncMode::TwoWay]);
    let pkg3 = rt.block_on(async {
        let out = {
            let mut stores = [&mut h.store as &mut dyn DataStore];
            s1.start(&mut stores).expect("start")
        };
        let body = out.to_bytes().expect("bytes");
        // The first attempt has no nonce: 401 with a challenge, the session retries.
        let mut step = exchange(&mut s1, &mut h.store, &out.url, body, out.content_type())
            .await
            .1
            .expect("pkg2");
        loop {
            match step {
                Step::Send(out) if out.url.contains("?s=") => {
                    // Package 3 of S1.
                    return out;
                }
                Step::Send(out) => {
                    let body = out.to_bytes().expect("bytes");
                    step = exchange(&mut s1, &mut h.store, &out.url, body, out.content_type())
                        .await
                        .1
                        .expect("auth retry");
                }
                Step::Done(r) => panic!("S1 ended early: {r:?}"),
            }
        }
    });
    assert!(pkg3.url.contains(&format!(":{}/", a.port)));
    {
        let mut stores = [&mut h.store as &mut dyn DataStore];
        s1.abort(&mut stores).expect("abort");
    }

    // The handset starts again, S2 on node b, which goes through and sends the card.
    let r = rt
        .block_on(h.sync(&nodes, 1, false, SyncMode::TwoWay))
        .expect("S2");
    assert_eq!(r.sent(), 1);
    assert_eq!(server_items(store.as_ref(), SUB), vec![card("stale")]);

    // S1's late package 3 reaches node b (or a): refused, nothing applied.
    for node in [&b, &a] {
        let url = rehost(&pkg3.url, &node.url());
        let body = pkg3.to_bytes().expect("bytes");
        let (reply, _) = rt.block_on(exchange(
            &mut ClientSession::new(SessionConfig::new(&url, T1, SUB, PASSWORD), &[]),
            &mut h.store,
            &url,
            body,
            pkg3.content_type(),
        ));
        let code = header_status(&reply);
        assert!(
            code == 401 || code == 407,
            "a superseded session must be refused, got {code}"
        );
        assert!(reply.header.resp_uri.is_none(), "no session goes on");
        assert_eq!(
            server_items(store.as_ref(), SUB),
            vec![card("stale")],
            "nothing of the superseded session applied"
        );
    }
    assert!(h.store.get(&luid).is_some());
}

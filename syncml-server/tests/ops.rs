//! Operations endpoints over real HTTP: `/metrics` counts what real sync sessions did
//! (the real `syncml-client` session against our server), `/healthz` answers while the
//! process lives, `/readyz` follows the store (PostgreSQL stopped: 503; back: 200).

mod driver;
mod pg_cluster;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use driver::{card, http_get, parse_metrics, provision, Handset};
use syncml_client::SyncMode;
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{PgStore, SqliteStore, Store};

const SUB: &str = "262010000000001";
const T1: &str = "IMEI:350000000000001";
const T2: &str = "IMEI:350000000000002";

struct Node {
    addr: SocketAddr,
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

fn start(store: Arc<dyn Store>) -> Node {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(
        store,
        Engine::new(EngineConfig::default()),
    ));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, svc, HttpOptions::default(), None).expect("serve")
    });
    let addr = running.local_addr;
    Node {
        addr,
        url: format!("http://{addr}/sync"),
        running: Some(running),
        rt,
    }
}

fn metrics(node: &Node) -> BTreeMap<String, f64> {
    let (status, body) = http_get(node.addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    parse_metrics(&body)
}

/// `after - before` for one sample (absent counts as 0).
fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

fn client_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sqlite_node() -> (Node, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    provision(store.as_ref(), SUB, &[T1, T2]);
    (start(store), dir)
}

#[test]
fn metrics_count_sessions_messages_and_items_of_real_sessions() {
    let (node, _dir) = sqlite_node();
    let rt = client_rt();
    let nodes = vec![node.url.clone()];

    // T1 uploads three cards in its first (slow) sync.
    let mut a = Handset::new(SUB, T1);
    for i in 0..3 {
        a.store.add(card(&format!("a{i}")));
    }
    let m0 = metrics(&node);
    let r = rt
        .block_on(a.sync(&nodes, 0, false, SyncMode::TwoWay))
        .expect("first session");
    assert!(r.is_success(), "{r:?}");
    let m1 = metrics(&node);
    let msgs = a.posted.len() as f64;
    assert_eq!(delta(&m0, &m1, "syncml_sessions_started_total"), 1.0);
    assert_eq!(delta(&m0, &m1, "syncml_sessions_completed_total"), 1.0);
    assert_eq!(
        delta(
            &m0,
            &m1,
            "syncml_items_total{datastore=\"contacts\",direction=\"from_client\"}"
        ),
        3.0
    );
    assert_eq!(
        delta(&m0, &m1, "syncml_messages_total{encoding=\"xml\"}"),
        msgs,
        "one count per message posted"
    );
    assert_eq!(
        delta(&m0, &m1, "syncml_message_duration_seconds_count"),
        msgs,
        "one latency sample per message"
    );
    assert_eq!(
        delta(
            &m0,
            &m1,
            "syncml_message_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        msgs
    );
    assert_eq!(m1["syncml_messages_in_flight"], 0.0);
    assert_eq!(m1["syncml_sessions_active"], 0.0, "the session was closed");
    // Every message is one write transaction, committed in at most as many commits.
    let committed = delta(
        &m0,
        &m1,
        "syncml_store_write_transactions_total{outcome=\"committed\"}",
    );
    assert_eq!(committed, msgs, "one write transaction per message");
    let commits = delta(&m0, &m1, "syncml_store_commits_total");
    assert!(commits >= 1.0 && commits <= committed, "{commits} commits");
    assert!(delta(&m0, &m1, "syncml_store_writer_busy_seconds_total") > 0.0);

    // T2 of the same subscriber downloads them.
    let mut b = Handset::new(SUB, T2);
    let r = rt
        .block_on(b.sync(&nodes, 0, false, SyncMode::TwoWay))
        .expect("second session");
    assert_eq!(r.received(), 3);
    let m2 = metrics(&node);
    assert_eq!(delta(&m1, &m2, "syncml_sessions_started_total"), 1.0);
    assert_eq!(delta(&m1, &m2, "syncml_sessions_completed_total"), 1.0);
    assert_eq!(
        delta(
            &m1,
            &m2,
            "syncml_items_total{datastore=\"contacts\",direction=\"to_client\"}"
        ),
        3.0
    );
    assert_eq!(
        delta(
            &m1,
            &m2,
            "syncml_items_total{datastore=\"contacts\",direction=\"from_client\"}"
        ),
        0.0
    );
    assert_eq!(b.contents(), a.contents());
}

#[test]
fn metrics_count_auth_refusals_by_status() {
    let (node, _dir) = sqlite_node();
    let rt = client_rt();
    let m0 = metrics(&node);
    // A handset of an unknown subscriber: the server refuses its credentials.
    let mut x = Handset::new("999990000000000", "IMEI:359999999999999");
    let r = rt.block_on(x.sync(std::slice::from_ref(&node.url), 0, false, SyncMode::TwoWay));
    assert!(r.is_err(), "an unknown subscriber must not sync: {r:?}");
    let m1 = metrics(&node);
    let refused: f64 = m1
        .iter()
        .filter(|(k, _)| k.starts_with("syncml_auth_refusals_total{"))
        .map(|(k, v)| v - m0.get(k).copied().unwrap_or(0.0))
        .sum();
    assert!(refused >= 1.0, "no refusal counted: {m1:?}");
    assert_eq!(
        refused,
        delta(&m0, &m1, "syncml_auth_refusals_total{status=\"401\"}")
            + delta(&m0, &m1, "syncml_auth_refusals_total{status=\"407\"}"),
        "refusals are 401 or 407"
    );
    assert_eq!(delta(&m0, &m1, "syncml_sessions_started_total"), 0.0);
    assert_eq!(delta(&m0, &m1, "syncml_sessions_completed_total"), 0.0);
    // The refusing statuses are failures by status too: the SyncHdr's and, AUTH-13, one
    // with the same code for every command of the refused message.
    let failures = delta(&m0, &m1, "syncml_status_failures_total{status=\"401\"}")
        + delta(&m0, &m1, "syncml_status_failures_total{status=\"407\"}");
    assert!(
        failures > refused,
        "{failures} failures for {refused} refusals"
    );
}

#[test]
fn metrics_count_undecodable_messages_as_http_errors() {
    let (node, _dir) = sqlite_node();
    let m0 = metrics(&node);
    let rt = client_rt();
    let t = syncml_client::HttpTransport::new();
    use syncml_client::Transport;
    let r = rt.block_on(t.post(&node.url, "application/vnd.syncml+xml", b"<nope/>".to_vec()));
    assert!(r.is_err());
    let m1 = metrics(&node);
    assert_eq!(
        delta(&m0, &m1, "syncml_http_errors_total{status=\"400\"}"),
        1.0
    );
    assert_eq!(
        delta(&m0, &m1, "syncml_message_duration_seconds_count"),
        1.0
    );
}

#[test]
fn metrics_exposition_declares_every_family_with_its_type() {
    let (node, _dir) = sqlite_node();
    let (status, body) = http_get(node.addr, "/metrics");
    assert_eq!(status, 200);
    for (family, kind) in [
        ("syncml_sessions_started_total", "counter"),
        ("syncml_sessions_completed_total", "counter"),
        ("syncml_sessions_suspended_total", "counter"),
        ("syncml_messages_total", "counter"),
        ("syncml_items_total", "counter"),
        ("syncml_status_failures_total", "counter"),
        ("syncml_auth_refusals_total", "counter"),
        ("syncml_busy_total", "counter"),
        ("syncml_http_errors_total", "counter"),
        ("syncml_message_duration_seconds", "histogram"),
        ("syncml_messages_in_flight", "gauge"),
        ("syncml_sessions_active", "gauge"),
        ("syncml_store_write_transactions_total", "counter"),
        ("syncml_store_commits_total", "counter"),
        ("syncml_store_writer_busy_seconds_total", "counter"),
        ("syncml_store_checkpoints_total", "counter"),
        ("syncml_store_wal_restarts_total", "counter"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} missing:\n{body}"
        );
    }
}

#[test]
fn healthz_and_readyz_answer_get_only() {
    let (node, _dir) = sqlite_node();
    assert_eq!(http_get(node.addr, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(node.addr, "/readyz").0, 200);
    // POST to an operations endpoint: 405.
    let rt = client_rt();
    let t = syncml_client::HttpTransport::new();
    use syncml_client::Transport;
    let r = rt.block_on(t.post(
        &format!("http://{}/metrics", node.addr),
        "application/vnd.syncml+xml",
        b"x".to_vec(),
    ));
    match r {
        Err(syncml_client::TransportError::Http { status, .. }) => assert_eq!(status, 405),
        other => panic!("expected 405, got {other:?}"),
    }
}

#[test]
fn readyz_fails_while_postgresql_is_down_and_recovers() {
    let cluster = pg_cluster::Cluster::start();
    let url = cluster.create_database();
    let store = Arc::new(PgStore::connect(&url).expect("connect"));
    provision(store.as_ref(), SUB, &[T1]);
    let node = start(store);
    assert_eq!(http_get(node.addr, "/readyz").0, 200);

    cluster.pause();
    let (status, body) = http_get(node.addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");
    assert_eq!(http_get(node.addr, "/healthz").0, 200, "alive all the same");
    // /metrics still answers, without the store's gauge.
    let (status, body) = http_get(node.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(!body.contains("syncml_sessions_active "), "{body}");

    cluster.resume();
    let (status, body) = http_get(node.addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    // And it syncs again.
    let mut a = Handset::new(SUB, T1);
    a.store.add(card("after-restart"));
    let r = client_rt()
        .block_on(a.sync(std::slice::from_ref(&node.url), 0, false, SyncMode::TwoWay))
        .expect("session after the database came back");
    assert_eq!(r.sent(), 1);
}

//! The load generator against our server in-process (real HTTP, real SQLite file): no
//! errors, and every terminal and the server converge on the same items.

#[allow(dead_code)]
#[path = "../src/load.rs"]
mod load;

use std::sync::Arc;
use std::time::Duration;

use load::{Mode, Options};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{DatastoreKey, SqliteStore, StoreExt};

struct Server {
    url: String,
    running: Option<http::Running>,
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

/// Runs `o` on two client threads against a fresh server of its own, left running for the
/// caller to inspect.
fn run_on_fresh_server(o: &Options) -> (Server, load::Report) {
    let srv = start(o);
    let o = Options {
        urls: vec![srv.url.clone()],
        ..o.clone()
    };
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let r = client_rt.block_on(load::run(o)).expect("run");
    println!("{r}");
    (srv, r)
}

fn start(o: &Options) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    load::provision_dir(dir.path(), o).expect("provision");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(
        store.clone(),
        Engine::new(EngineConfig::default()),
    ));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, svc, HttpOptions::default(), None).expect("serve")
    });
    Server {
        url: format!("http://{}/sync", running.local_addr),
        running: Some(running),
        rt,
        store,
        _dir: dir,
    }
}

fn server_items(srv: &Server, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = srv
        .store
        .read(|tx| tx.items_list_live(DatastoreKey::new(sub, "contacts")))
        .expect("items")
        .into_iter()
        .map(|i| String::from_utf8_lossy(&i.data).into_owned())
        .collect();
    v.sort();
    v
}

fn run_and_check(mode: Mode, sessions: u64, warmup: bool) {
    let o = Options {
        subscribers: 4,
        terminals: 12,
        mode,
        items: 5,
        sessions: Some(sessions),
        duration: Some(Duration::from_secs(60)),
        concurrency: 8,
        verify: true,
        warmup,
        ..Options::default()
    };
    let (srv, r) = run_on_fresh_server(&o);
    assert_eq!(r.error_count(), 0, "{:?}", r.errors);
    assert_eq!(r.sessions_ok, sessions);
    assert!(r.messages >= 2 * sessions, "{r}");
    assert!(r.items > 0);
    assert_eq!(r.items, r.items_sent + r.items_received);
    if mode == Mode::Download {
        assert_eq!(r.items_received, sessions * o.items as u64);
    } else {
        assert!(r.items_sent >= sessions * o.items as u64 / 2, "{r}");
    }
    assert_eq!(r.per_session.count(), sessions);
    let v = r.verify.as_ref().expect("verify");
    assert_eq!(v.terminals, 12);
    assert!(v.mismatched.is_empty(), "diverged: {:?}", v.mismatched);
    assert_eq!(v.expected.len(), 4);
    for m in 0..o.subscribers {
        let sub = load::subscriber_id(&o, m);
        let want = &v.expected[&sub];
        assert!(!want.is_empty());
        assert_eq!(&server_items(&srv, &sub), want, "server items of {sub}");
    }
}

#[test]
fn two_way_load_converges() {
    run_and_check(Mode::TwoWay, 50, false);
}

#[test]
fn two_way_load_after_warmup_converges() {
    run_and_check(Mode::TwoWay, 50, true);
}

#[test]
fn slow_sync_load_converges() {
    run_and_check(Mode::Slow, 30, false);
}

#[test]
fn download_load_converges() {
    run_and_check(Mode::Download, 30, true);
}

#[test]
fn refuses_non_loopback_urls() {
    assert!(load::check_loopback("http://127.0.0.1:8080/sync").is_ok());
    assert!(load::check_loopback("http://127.1.2.3/sync").is_ok());
    assert!(load::check_loopback("http://localhost:1/sync").is_ok());
    assert!(load::check_loopback("http://[::1]:8080/sync").is_ok());
    assert!(load::check_loopback("http://10.0.0.1:8080/sync").is_err());
    assert!(load::check_loopback("http://example.com/sync").is_err());
    assert!(load::check_loopback("https://127.0.0.1/sync").is_err());
    assert!(load::check_loopback("http://127.0.0.1.evil.com/sync").is_err());
    let o = Options {
        urls: vec!["http://192.0.2.1:8080/sync".into()],
        ..Options::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert!(rt.block_on(load::run(o)).is_err());
}

#[test]
fn paced_sessions_start_at_the_asked_rate() {
    // 20 sessions at 40/s: the last one is due 19/40 s after the clock starts.
    let o = Options {
        subscribers: 2,
        terminals: 8,
        mode: Mode::TwoWay,
        items: 2,
        sessions: Some(20),
        duration: Some(Duration::from_secs(60)),
        concurrency: 8,
        rate: Some(40.0),
        warmup: true,
        ..Options::default()
    };
    let (srv, r) = run_on_fresh_server(&o);
    assert_eq!(r.error_count(), 0, "{:?}", r.errors);
    assert_eq!(r.sessions_ok, 20);
    assert!(r.elapsed >= Duration::from_millis(470), "{r}");
    assert_eq!(r.rate, Some(40.0));
    assert!(
        r.to_string()
            .contains("paced          40.0 sessions/s asked"),
        "{r}"
    );

    // A rate that is no rate is refused before anything starts.
    let o = Options {
        urls: vec![srv.url.clone()],
        rate: Some(0.0),
        ..o
    };
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let refused = client_rt
        .block_on(load::run(o))
        .expect_err("a rate of 0 is refused");
    assert!(refused.contains("--rate"), "{refused}");
}

#[test]
fn hopping_sessions_keep_the_respuri_path_and_query() {
    assert_eq!(
        load::rehost("http://127.0.0.1:1/sync?s=tok", "http://127.0.0.1:2/sync"),
        "http://127.0.0.1:2/sync?s=tok"
    );
    assert_eq!(
        load::rehost("http://[::1]:1/sync?s=t", "http://127.0.0.1:2/x"),
        "http://127.0.0.1:2/sync?s=t"
    );
}

#[test]
fn histogram_quantiles() {
    let mut h = load::Histogram::default();
    for us in 1..=1000u64 {
        h.record(Duration::from_micros(us * 100));
    }
    let p50 = h.quantile_us(0.5) as f64;
    let p99 = h.quantile_us(0.99) as f64;
    assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.02, "{p50}");
    assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.02, "{p99}");
    assert_eq!(h.max_us(), 100_000);
}

//! The SyncML HTTP binding, one test per rule, against a real server on 127.0.0.1:0
//! (plain and TLS), with a hand-written HTTP/1.1 client over `std::net::TcpStream`
//! (and `rustls::StreamOwned` for HTTPS). Rules that need the session engine run the
//! real `SyncService` over a real SQLite file; transport-only rules use small test
//! handlers (echo, slow).
//!
//! Every socket has a read/write timeout, so no test can hang.

mod common;
use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use syncml_core::model::{Command, Data, SyncMl};
use syncml_core::{auth, Encoding};
use syncml_server::http::{self, HttpOptions, MessageHandler, SyncRequest, SyncResponse};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt, Timestamp,
};

const XML: &str = "application/vnd.syncml+xml";
const WBXML: &str = "application/vnd.syncml+wbxml";

/// Replies with the request body in the request's encoding and records each request.
#[derive(Default)]
struct Echo {
    seen: Mutex<Vec<SyncRequest>>,
}

impl Echo {
    fn last(&self) -> SyncRequest {
        self.seen
            .lock()
            .expect("lock")
            .last()
            .cloned()
            .expect("a request reached the handler")
    }
}

impl MessageHandler for Echo {
    async fn handle(&self, req: SyncRequest) -> SyncResponse {
        let reply = SyncResponse::Message {
            encoding: req.encoding,
            body: req.body.to_vec(),
        };
        self.seen.lock().expect("lock").push(req);
        reply
    }
}

/// Announces each request on `started`, sleeps `delay`, then replies `reply_len` bytes.
struct Slow {
    delay: Duration,
    reply_len: usize,
    started: Mutex<mpsc::Sender<()>>,
}

impl Slow {
    fn new(delay: Duration, reply_len: usize) -> (Arc<Slow>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let h = Slow {
            delay,
            reply_len,
            started: Mutex::new(tx),
        };
        (Arc::new(h), rx)
    }
}

impl MessageHandler for Slow {
    async fn handle(&self, req: SyncRequest) -> SyncResponse {
        let _ = self.started.lock().expect("lock").send(());
        tokio::time::sleep(self.delay).await;
        SyncResponse::Message {
            encoding: req.encoding,
            body: (0..self.reply_len).map(|i| b'a' + (i % 26) as u8).collect(),
        }
    }
}

fn opts(f: impl FnOnce(&mut HttpOptions)) -> HttpOptions {
    let mut o = HttpOptions::default();
    f(&mut o);
    o
}

// ---------------------------------------------------------------------------------
// The real service.
// ---------------------------------------------------------------------------------

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../syncml-core/tests/data/captures")
}

fn capture(rel: &str) -> Vec<u8> {
    std::fs::read(captures().join(rel)).expect("capture")
}

/// A SyncService over a fresh SQLite file with subscriber `test` and its terminals
/// (password `secret`).
fn sync_service(allow_basic_without_tls: bool) -> (Arc<SyncService>, tempfile::TempDir) {
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
            for t in ["syncevo-interop-client", "basic-client"] {
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
    let mut cfg = EngineConfig::default();
    cfg.allow_basic_without_tls = allow_basic_without_tls;
    (Arc::new(SyncService::new(store, Engine::new(cfg))), dir)
}

fn sync_server(allow_basic_without_tls: bool, o: HttpOptions) -> Server {
    let (svc, dir) = sync_service(allow_basic_without_tls);
    let mut srv = start(svc, o);
    srv._dir = Some(dir);
    srv
}

fn header_status(m: &SyncMl) -> u16 {
    m.body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Status(s) if s.cmd == "SyncHdr" => Some(s.data.0),
            _ => None,
        })
        .unwrap_or(0)
}

/// Checks an HTTP 200 SyncML reply in `enc` and decodes it.
fn sync_reply(resp: &Resp, enc: Encoding) -> SyncMl {
    assert_eq!(resp.status, 200, "HTTP status; body: {}", resp.text());
    assert_eq!(
        resp.header("content-type"),
        Some(enc.mime_type()),
        "reply Content-Type"
    );
    assert_eq!(syncml_core::detect(&resp.body), Some(enc), "reply encoding");
    syncml_core::decode(&resp.body).expect("our reply decodes")
}

/// Capture 03's first message (md5, WBXML), re-signed for the empty nonce our server
/// expects before it has issued one.
fn wbxml_md5_msg1() -> Vec<u8> {
    let mut msg =
        syncml_core::decode(&capture("03-twoway-wbxml/01-msg001-c2s.wbxml")).expect("decode");
    let cred = msg.header.cred.as_mut().expect("capture has credentials");
    cred.data = Data::Text(auth::md5::credential("test", "secret", &[]));
    syncml_core::encode(&msg, Encoding::Wbxml).expect("encode")
}

fn basic_session() -> Vec<Vec<u8>> {
    [
        "08-basic-auth-slow-xml/01-msg001-c2s.xml",
        "08-basic-auth-slow-xml/03-msg002-c2s.xml",
        "08-basic-auth-slow-xml/05-msg003-c2s.xml",
    ]
    .iter()
    .map(|f| capture(f))
    .collect()
}

// ---------------------------------------------------------------------------------
// Content types.
// ---------------------------------------------------------------------------------

#[test]
fn xml_post_gets_an_xml_reply_with_the_same_content_type() {
    let srv = sync_server(true, HttpOptions::default());
    let url = format!("{}/sync", srv.origin());
    let resp = srv.post(&url, XML, &basic_session()[0]);
    let reply = sync_reply(&resp, Encoding::Xml);
    assert_eq!(header_status(&reply), 212, "basic credentials accepted");
}

#[test]
fn wbxml_post_gets_a_wbxml_reply_with_the_same_content_type() {
    let srv = sync_server(false, HttpOptions::default());
    let url = format!("{}/sync", srv.origin());
    let resp = srv.post(&url, WBXML, &wbxml_md5_msg1());
    let reply = sync_reply(&resp, Encoding::Wbxml);
    assert_eq!(header_status(&reply), 212, "md5 credentials accepted");
}

#[test]
fn a_charset_parameter_on_the_content_type_is_accepted() {
    let srv = sync_server(true, HttpOptions::default());
    let url = format!("{}/sync", srv.origin());
    let resp = srv.post(
        &url,
        "application/vnd.syncml+xml; charset=UTF-8",
        &basic_session()[0],
    );
    let reply = sync_reply(&resp, Encoding::Xml);
    assert_eq!(header_status(&reply), 212);

    let srv = start(Arc::new(Echo::default()), HttpOptions::default());
    let url = format!("{}/sync", srv.origin());
    for ct in [
        "Application/VND.SyncML+XML;charset=\"utf-8\"",
        "application/vnd.syncml+wbxml ; charset=utf-8",
    ] {
        let resp = srv.post(&url, ct, b"<SyncML/>");
        assert_eq!(resp.status, 200, "{ct}");
        let expect = if ct.to_ascii_lowercase().contains("wbxml") {
            WBXML
        } else {
            XML
        };
        assert_eq!(resp.header("content-type"), Some(expect), "{ct}");
    }
}

#[test]
fn a_wrong_or_missing_content_type_gets_415() {
    let echo = Arc::new(Echo::default());
    let srv = start(echo.clone(), HttpOptions::default());
    let url = format!("{}/sync", srv.origin());
    for ct in [
        Some("text/xml"),
        Some("application/xml"),
        Some("application/vnd.syncml-devinf+xml"),
        Some("application/vnd.syncml+xmlx"),
        None,
    ] {
        let resp = srv.request("POST", &url, ct, b"<SyncML/>");
        assert_eq!(resp.status, 415, "{ct:?}");
    }
    assert!(
        echo.seen.lock().expect("lock").is_empty(),
        "handler never called"
    );
}

// ---------------------------------------------------------------------------------
// Methods and paths.
// ---------------------------------------------------------------------------------

#[test]
fn get_on_the_sync_path_gets_405_allow_post() {
    let srv = start(Arc::new(Echo::default()), HttpOptions::default());
    for method in ["GET", "PUT", "DELETE"] {
        let resp = srv.request(method, &format!("{}/sync", srv.origin()), None, b"");
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.header("allow"), Some("POST"), "{method}");
    }
}

#[test]
fn an_unknown_path_gets_404() {
    let srv = start(Arc::new(Echo::default()), HttpOptions::default());
    for path in ["/", "/syncml", "/sync/", "/Sync"] {
        let resp = srv.post(&format!("{}{path}", srv.origin()), XML, b"<SyncML/>");
        assert_eq!(resp.status, 404, "POST {path}");
    }
    assert_eq!(srv.get("/nothing-here").status, 404);
}

#[test]
fn get_health_gets_200() {
    let srv = start(Arc::new(Echo::default()), HttpOptions::default());
    let resp = srv.get("/health");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text().trim(), "ok");
    assert_eq!(srv.get("/ready").status, 200);
    let resp = srv.post(&format!("{}/health", srv.origin()), XML, b"");
    assert_eq!(resp.status, 405);
    assert!(resp.header("allow").is_some_and(|a| a.contains("GET")));
}

#[test]
fn a_custom_sync_path_is_served_and_the_default_is_not() {
    let srv = start(
        Arc::new(Echo::default()),
        opts(|o| o.path = "/oma/ds".into()),
    );
    assert_eq!(
        srv.post(&format!("{}/oma/ds", srv.origin()), XML, b"<x/>")
            .status,
        200
    );
    assert_eq!(
        srv.post(&format!("{}/sync", srv.origin()), XML, b"<x/>")
            .status,
        404
    );
}

// ---------------------------------------------------------------------------------
// Body limit, timeout.
// ---------------------------------------------------------------------------------

#[test]
fn a_body_above_max_body_gets_413_and_the_server_keeps_serving() {
    let echo = Arc::new(Echo::default());
    let srv = start(echo.clone(), opts(|o| o.max_body = 1024));
    let url = format!("{}/sync", srv.origin());

    // Exactly at the limit: accepted.
    let resp = srv.post(&url, XML, &[b'<'; 1024]);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 1024);

    // Announced by Content-Length.
    let resp = srv.post(&url, XML, &[b'<'; 1025]);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
    let resp = srv.post(&url, XML, &vec![b'<'; 256 * 1024]);
    assert_eq!(resp.status, 413);

    // Not announced (chunked): found while reading.
    let head = format!(
        "POST /sync HTTP/1.1\r\nHost: {}\r\nContent-Type: {XML}\r\nTransfer-Encoding: chunked\r\n\r\n",
        srv.addr
    );
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"200\r\n");
        body.extend_from_slice(&[b'<'; 0x200]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let resp = srv.raw(&head, &body).expect("chunked exchange");
    assert_eq!(resp.status, 413);

    // Still serving, on new connections.
    assert_eq!(srv.get("/health").status, 200);
    let resp = srv.post(&url, XML, b"<SyncML/>");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"<SyncML/>");
    assert_eq!(
        echo.seen.lock().expect("lock").len(),
        2,
        "oversized bodies never reach the handler"
    );
}

#[test]
fn a_handler_slower_than_request_timeout_gets_503() {
    let (slow, started) = Slow::new(Duration::from_secs(3), 10);
    let srv = start(
        slow,
        opts(|o| o.request_timeout = Duration::from_millis(300)),
    );
    let t0 = Instant::now();
    let resp = srv.post(&format!("{}/sync", srv.origin()), XML, b"<SyncML/>");
    let took = t0.elapsed();
    assert!(started.try_recv().is_ok(), "the handler ran");
    assert_eq!(resp.status, 503);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "503 after the timeout, not after the handler: {took:?}"
    );
    assert_eq!(srv.get("/health").status, 200, "still serving");
}

/// Reads until EOF or error; `None` if the read timed out (connection left open).
fn closed_by_server(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(got),
        }
    }
}

#[test]
fn a_client_that_stalls_in_its_headers_or_handshake_is_disconnected() {
    let o = || opts(|o| o.request_timeout = Duration::from_millis(300));
    let srv = start(Arc::new(Echo::default()), o());
    let mut s = connect(srv.addr);
    s.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    assert!(
        closed_by_server(&mut s).is_some(),
        "headers never finished: still open"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // Nothing sent at all (also: a keep-alive connection left idle).
    let mut s = connect(srv.addr);
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    assert!(closed_by_server(&mut s).is_some(), "idle: still open");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(srv.get("/health").status, 200);

    let tls = start_tls(Arc::new(Echo::default()), o());
    let mut s = connect(tls.addr);
    s.write_all(b"\x16\x03\x01").expect("write"); // the start of a ClientHello
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    assert!(
        closed_by_server(&mut s).is_some(),
        "handshake never finished: still open"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(tls.get("/health").status, 200);
}

// ---------------------------------------------------------------------------------
// Graceful shutdown.
// ---------------------------------------------------------------------------------

#[test]
fn shutdown_lets_the_in_flight_request_finish_and_refuses_new_connections() {
    const REPLY: usize = 512 * 1024;
    let (slow, started) = Slow::new(Duration::from_millis(800), REPLY);
    let mut srv = start(slow, HttpOptions::default());
    let addr = srv.addr;

    // An idle keep-alive connection, to be closed by the shutdown.
    let mut idle = connect(addr);
    let resp = exchange(
        &mut idle,
        &format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        b"",
    )
    .expect("health");
    assert_eq!(resp.status, 200);

    let in_flight = std::thread::spawn(move || {
        let mut s = connect(addr);
        let head = format!(
            "POST /sync HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {XML}\r\nContent-Length: 9\r\n\r\n"
        );
        exchange(&mut s, &head, b"<SyncML/>")
    });
    started
        .recv_timeout(IO_TIMEOUT)
        .expect("the request reached the handler");

    let running = srv.running.take().expect("running");
    let stopping = srv.rt.spawn(running.shutdown());

    // New connections are refused while the in-flight message is still running.
    let t0 = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ if t0.elapsed() > Duration::from_secs(2) => {
                panic!("still accepting connections after shutdown()")
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    assert!(
        !in_flight.is_finished(),
        "refused while the request was in flight"
    );
    assert!(!stopping.is_finished(), "shutdown waits for it");

    let resp = in_flight
        .join()
        .expect("client thread")
        .expect("in-flight request answered");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), REPLY, "the full reply");
    assert_eq!(
        resp.header("content-length"),
        Some(REPLY.to_string().as_str())
    );

    srv.rt
        .block_on(async { tokio::time::timeout(IO_TIMEOUT, stopping).await })
        .expect("shutdown completes after the in-flight request")
        .expect("server task");

    // The idle keep-alive connection was closed, not left hanging.
    let mut b = [0u8; 1];
    assert!(
        matches!(idle.read(&mut b), Ok(0) | Err(_)),
        "idle connection closed"
    );
    assert_eq!(
        TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::ConnectionRefused),
        "refused after shutdown"
    );
}

#[test]
fn shutdown_drops_requests_still_running_after_the_grace_period() {
    let (slow, started) = Slow::new(Duration::from_secs(30), 10);
    let mut srv = start(
        slow,
        opts(|o| o.shutdown_grace = Duration::from_millis(200)),
    );
    let addr = srv.addr;
    let in_flight = std::thread::spawn(move || {
        let mut s = connect(addr);
        let head = format!(
            "POST /sync HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {XML}\r\nContent-Length: 9\r\n\r\n"
        );
        exchange(&mut s, &head, b"<SyncML/>")
    });
    started.recv_timeout(IO_TIMEOUT).expect("handler started");
    let t0 = Instant::now();
    srv.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let r = in_flight.join().expect("client thread");
    assert!(r.is_err(), "connection dropped, not answered: {r:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "client not left hanging"
    );
}

// ---------------------------------------------------------------------------------
// TLS.
// ---------------------------------------------------------------------------------

#[test]
fn tls_requests_are_marked_tls_and_get_https_base_urls() {
    let echo = Arc::new(Echo::default());
    let srv = start_tls(echo.clone(), HttpOptions::default());
    let url = format!("{}/sync?s=tok", srv.origin());
    let resp = srv.post(&url, XML, b"<SyncML/>");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"<SyncML/>");
    let req = echo.last();
    assert!(req.tls);
    assert_eq!(
        req.base_url,
        format!("https://localhost:{}/sync", srv.addr.port())
    );
    assert_eq!(req.session_token.as_deref(), Some("tok"));
    assert_eq!(srv.get("/health").status, 200);

    // Plain HTTP to the TLS port is refused, quickly, and the server keeps serving.
    let mut s = connect(srv.addr);
    let r = exchange(
        &mut s,
        &format!("GET /health HTTP/1.1\r\nHost: {}\r\n\r\n", srv.addr),
        b"",
    );
    assert!(r.is_err(), "plain HTTP on the TLS port: {r:?}");
    assert_eq!(srv.get("/health").status, 200);
}

#[test]
fn a_syncml_session_over_tls_accepts_basic_auth_that_plain_http_refuses() {
    // One service (allow_basic_without_tls = false), served on a TLS and a plain port.
    let (svc, dir) = sync_service(false);
    let mut tls_srv = start_tls(svc.clone(), HttpOptions::default());
    tls_srv._dir = Some(dir);
    let plain = serve_on(&tls_srv.rt, svc, HttpOptions::default(), None);
    let plain_srv = Server {
        addr: plain.local_addr,
        tls: None,
        running: Some(plain),
        rt: tls_srv.rt.clone(),
        _dir: None,
    };

    let msgs = basic_session();

    // Plain HTTP: the password would travel in clear; refused.
    let resp = plain_srv.post(&format!("{}/sync", plain_srv.origin()), XML, &msgs[0]);
    let reply = sync_reply(&resp, Encoding::Xml);
    assert_eq!(header_status(&reply), 401, "basic auth refused without TLS");

    // TLS: the whole captured session, following our RespURIs.
    let mut url = format!("{}/sync", tls_srv.origin());
    for (i, m) in msgs.iter().enumerate() {
        let resp = tls_srv.post(&url, XML, m);
        let reply = sync_reply(&resp, Encoding::Xml);
        let expect = if i == 0 { 212 } else { 200 };
        assert_eq!(header_status(&reply), expect, "message {}", i + 1);
        assert_eq!(reply.header.msg_id, (i + 1).to_string());
        match &reply.header.resp_uri {
            Some(r) => {
                let u = parse_url(r);
                assert!(u.https, "RespURI keeps https: {r}");
                assert_eq!(u.authority, format!("localhost:{}", tls_srv.addr.port()));
                url = r.clone();
            }
            None => assert_eq!(i, msgs.len() - 1, "only the last reply ends the session"),
        }
    }
}

#[test]
fn tls_config_rejects_garbage_without_panicking() {
    let good = test_cert();
    let other = test_cert();
    let cert = good.cert_pem.as_bytes();
    let key = good.key_pem.as_bytes();
    assert!(http::tls_config(cert, key).is_ok(), "the good pair works");

    let truncated_cert = &good.cert_pem[..good.cert_pem.len() / 2];
    let corrupted_cert = good.cert_pem.replacen("MII", "!!!", 1);
    let cases: Vec<(&str, &[u8], &[u8])> = vec![
        ("garbage both", b"garbage", b"\x00\xff garbage"),
        ("empty both", b"", b""),
        ("empty cert", b"", key),
        (
            "garbage key",
            cert,
            b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        ),
        ("no key", cert, b""),
        ("key given as cert", key, key),
        ("cert given as key", cert, cert),
        ("truncated cert", truncated_cert.as_bytes(), key),
        ("corrupted cert", corrupted_cert.as_bytes(), key),
        ("key of another cert", cert, other.key_pem.as_bytes()),
        ("DER instead of PEM", &[0x30, 0x82, 0x01, 0x00, 0x02], key),
    ];
    for (what, c, k) in cases {
        let r = std::panic::catch_unwind(|| http::tls_config(c, k));
        match r {
            Ok(Err(e)) => assert!(!e.is_empty(), "{what}: empty message"),
            Ok(Ok(_)) => panic!("{what}: accepted"),
            Err(_) => panic!("{what}: panicked"),
        }
    }
}

// ---------------------------------------------------------------------------------
// RespURI.
// ---------------------------------------------------------------------------------

#[test]
fn the_resp_uri_points_back_here_with_the_session_token_and_continues_the_session() {
    // A custom path and a Host name other than the address we connect to: the
    // RespURI must follow what the client used.
    let srv = sync_server(true, opts(|o| o.path = "/oma/ds".into()));
    let msgs = basic_session();
    let origin = "http://sync.example.test:8080";
    let mut url = format!("{origin}/oma/ds");
    let mut token: Option<String> = None;
    let mut session_id: Option<String> = None;
    for (i, m) in msgs.iter().enumerate() {
        let resp = srv.post(&url, XML, m);
        let reply = sync_reply(&resp, Encoding::Xml);
        let expect = if i == 0 { 212 } else { 200 };
        assert_eq!(header_status(&reply), expect, "message {} continues", i + 1);
        assert_eq!(reply.header.msg_id, (i + 1).to_string());
        let sid = session_id.get_or_insert_with(|| reply.header.session_id.clone());
        assert_eq!(&reply.header.session_id, sid, "same SyncML session");
        let Some(r) = &reply.header.resp_uri else {
            assert_eq!(i, msgs.len() - 1, "only the last reply ends the session");
            break;
        };
        let (base, query) = r.split_once('?').expect("RespURI has a query");
        assert_eq!(base, format!("{origin}/oma/ds"), "same scheme/host/path");
        let t = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("s="))
            .expect("RespURI carries ?s=");
        assert!(!t.is_empty());
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)),
            "token needs no escaping: {t}"
        );
        if let Some(prev) = &token {
            assert_eq!(prev, t, "one token per session");
        }
        token = Some(t.to_string());
        url = r.clone();
    }
    assert!(token.is_some());
}

#[test]
fn the_request_url_reaches_the_handler() {
    let echo = Arc::new(Echo::default());
    let srv = start(echo.clone(), HttpOptions::default());
    let addr = srv.addr;

    // Host header, token among other query parameters.
    let resp = srv.post(
        "http://handset.example:80/sync?x=1&s=abc-123&y=2",
        XML,
        b"<a/>",
    );
    assert_eq!(resp.status, 200);
    let req = echo.last();
    assert_eq!(req.base_url, "http://handset.example:80/sync");
    assert_eq!(req.session_token.as_deref(), Some("abc-123"));
    assert_eq!(req.encoding, Encoding::Xml);
    assert!(!req.tls);
    assert_eq!(req.remote.ip(), addr.ip());

    // No token, empty token.
    srv.post(&format!("http://{addr}/sync"), WBXML, b"\x03");
    assert_eq!(echo.last().session_token, None);
    assert_eq!(echo.last().encoding, Encoding::Wbxml);
    srv.post(&format!("http://{addr}/sync?s="), XML, b"<a/>");
    assert_eq!(echo.last().session_token, None);

    // HTTP/1.0 without Host: the address the client connected to.
    let head =
        format!("POST /sync?s=t1 HTTP/1.0\r\nContent-Type: {XML}\r\nContent-Length: 4\r\n\r\n");
    let resp = srv.raw(&head, b"<a/>").expect("HTTP/1.0");
    assert_eq!(resp.status, 200);
    assert_eq!(echo.last().base_url, format!("http://{addr}/sync"));

    // Absolute-form request target: its authority wins over Host.
    let head = format!(
        "POST http://proxy.example/sync?s=t2 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {XML}\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
    );
    let resp = srv.raw(&head, b"<a/>").expect("absolute form");
    assert_eq!(resp.status, 200);
    assert_eq!(echo.last().base_url, "http://proxy.example/sync");
    assert_eq!(echo.last().session_token.as_deref(), Some("t2"));

    // A Host that would smuggle a path or query into our RespURI is refused.
    let n = echo.seen.lock().expect("lock").len();
    for host in ["evil.example/x?s=", "a b", "user@host"] {
        let head = format!(
            "POST /sync HTTP/1.1\r\nHost: {host}\r\nContent-Type: {XML}\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
        );
        let resp = srv.raw(&head, b"<a/>").expect("exchange");
        assert_eq!(resp.status, 400, "Host: {host}");
    }
    assert_eq!(echo.seen.lock().expect("lock").len(), n);
}

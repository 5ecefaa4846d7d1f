//! Busy signalling against our real server: while another process holds the database's
//! write lock, the server answers 101 (nothing processed); the session sends the same
//! message again and completes once the lock is gone.

use std::sync::Arc;
use std::time::Duration;

use syncml_client::mem::MemoryStore;
use syncml_client::{
    ClientSession, DataStore, HttpTransport, SessionConfig, Step, SyncMode, Transport,
};
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::sqlite::DB_FILE_NAME;
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteConfig, SqliteStore, StoreExt,
    Timestamp,
};

const SUB: &str = "262010000000101";
const TERM: &str = "IMEI:350000000000101";
const PW: &str = "busy-secret";

fn is_busy(m: &syncml_core::model::SyncMl) -> bool {
    m.body.commands.iter().any(|c| {
        matches!(c, syncml_core::model::Command::Status(s)
            if s.cmd == "SyncHdr" && s.data.0 == 101)
    })
}

#[test]
fn a_busy_answer_makes_the_session_send_the_same_message_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SqliteConfig {
        busy_timeout: Duration::from_millis(50),
        ..SqliteConfig::default()
    };
    let store = Arc::new(SqliteStore::open(dir.path().join(DB_FILE_NAME), &cfg).expect("open"));
    store
        .transaction(|tx| {
            let now = Timestamp::from_unix_secs(1_700_000_000);
            tx.subscriber_create(
                &NewSubscriber {
                    id: SUB.into(),
                    display_name: None,
                    security_level: 0,
                },
                now,
            )?;
            tx.terminal_register(
                &NewTerminal {
                    terminal_id: TERM.into(),
                    subscriber_id: SUB.into(),
                    md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(SUB, PW))),
                    basic_verifier: None,
                    classes: vec![],
                    registered_by: RegisteredBy::Operator,
                },
                now,
            )
        })
        .expect("provision");
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
    let url = format!("http://{}/sync", running.local_addr);

    // Another process (here: a second connection) holds the write lock for a while.
    let other = SqliteStore::open_in_dir(dir.path()).expect("second connection");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        other
            .transaction(|tx| {
                tx.subscriber_set_security_level(SUB, 0)?;
                let _ = locked_tx.send(());
                std::thread::sleep(Duration::from_millis(700));
                Ok(())
            })
            .expect("holder");
    });
    locked_rx.recv().expect("lock taken");

    let mut local = MemoryStore::contacts();
    local.add("BEGIN:VCARD\r\nVERSION:2.1\r\nN:Busy;Test\r\nFN:Test Busy\r\nEND:VCARD\r\n");
    let mut s = ClientSession::new(SessionConfig::new(&url, TERM, SUB, PW), &[SyncMode::TwoWay]);
    let transport = HttpTransport::new();
    let (busy_answers, report) = rt.block_on(async {
        let mut busy_answers = 0;
        let mut stores = [&mut local as &mut dyn DataStore];
        let mut out = s.start(&mut stores).expect("start");
        loop {
            let sent = out.to_bytes().expect("bytes");
            let (_, reply) = transport
                .post(&out.url, out.content_type(), sent.clone())
                .await
                .expect("post");
            let msg = syncml_core::decode(&reply).expect("decode");
            let busy = is_busy(&msg);
            match s.handle(msg, &mut stores).expect("handle") {
                Step::Send(next) => {
                    if busy {
                        busy_answers += 1;
                        assert_eq!(
                            next.to_bytes().expect("bytes"),
                            sent,
                            "after 101 the very same message goes again"
                        );
                    }
                    out = next;
                }
                Step::Done(r) => return (busy_answers, r),
            }
        }
    });
    holder.join().expect("holder thread");
    assert!(busy_answers >= 1, "the server never answered 101");
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.sent(), 1);
    rt.block_on(running.shutdown());
}

//! The in-memory transport: the engine talks to our server's service in-process, with
//! no socket at all (the server still runs on a real SQLite file).

use std::sync::Arc;

use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::{
    DataStore, Engine, EngineConfig, FnTransport, Handset, SyncMode, TransportError,
};
use syncml_core::{auth, Encoding};
use syncml_server::http::{SyncRequest, SyncResponse};
use syncml_server::service::SyncService;
use syncml_server::session::Engine as ServerEngine;
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt, Timestamp,
};

#[test]
fn the_engine_syncs_over_an_in_memory_transport() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    store
        .transaction(|tx| {
            tx.subscriber_create(
                &NewSubscriber {
                    id: "sub".into(),
                    display_name: None,
                    security_level: 0,
                },
                Timestamp::from_unix_secs(1),
            )?;
            tx.terminal_register(
                &NewTerminal {
                    terminal_id: "IMEI:1".into(),
                    subscriber_id: "sub".into(),
                    md5_verifier: Some(Secret::new(auth::md5::user_digest("sub", "pw"))),
                    basic_verifier: None,
                    classes: vec![],
                    registered_by: RegisteredBy::Operator,
                },
                Timestamp::from_unix_secs(1),
            )?;
            Ok(())
        })
        .expect("provision");
    let svc = SyncService::new(store.clone(), ServerEngine::default());
    let transport = FnTransport(move |url: &str, ct: &str, body: Vec<u8>| {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let req = SyncRequest {
            encoding: Encoding::from_mime_type(ct)
                .ok_or(TransportError::Io("content type".into()))?,
            body: bytes::Bytes::from(body),
            session_token: query.strip_prefix("s=").map(str::to_string),
            base_url: base.to_string(),
            remote: "127.0.0.1:1"
                .parse()
                .map_err(|_| TransportError::Io("addr".into()))?,
            tls: false,
        };
        match svc.handle_blocking(&req) {
            SyncResponse::Message { encoding, body } => {
                Ok((encoding.mime_type().to_string(), body))
            }
            SyncResponse::Error { status, reason } => Err(TransportError::Http {
                status: status.as_u16(),
                body: reason,
            }),
        }
    });
    let mut engine = Engine::new(EngineConfig::new("http://in-memory/sync"), transport);
    let mut sim = MemorySim::new("sub", "1234");
    let mut terminal = MemoryTerminal::new("IMEI:1", "pw");
    let mut ui = ScriptedUi::answering("1234", "pw");
    let mut contacts = MemoryStore::contacts();
    contacts.add("BEGIN:VCARD\r\nN:Ann;\r\nEND:VCARD\r\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let report = rt
        .block_on(engine.sync(
            Handset {
                sim: Some(&mut sim),
                terminal: &mut terminal,
                ui: &mut ui,
            },
            &mut [&mut contacts as &mut dyn DataStore],
            &[SyncMode::TwoWay],
        ))
        .expect("sync");
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.sent(), 1);
    let n = store
        .read(|tx| tx.items_stats(syncml_server::store::DatastoreKey::new("sub", "contacts")))
        .expect("stats");
    assert_eq!(n.count, 1);
    assert!(
        engine.nonce().is_some(),
        "the server's NextNonce is kept for next time"
    );
}

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

/// Our server's service over a fresh SQLite file with subscriber `sub` (security
/// `level`, server-side PIN `pin`) and its terminal `IMEI:1` (password `pw`), and an
/// in-memory transport to it that marks requests as TLS or not.
fn service(
    level: u8,
    pin: Option<&str>,
    tls: bool,
) -> (
    Arc<SqliteStore>,
    impl syncml_client::Transport,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    store
        .transaction(|tx| {
            tx.subscriber_create(
                &NewSubscriber {
                    id: "sub".into(),
                    display_name: None,
                    security_level: level,
                },
                Timestamp::from_unix_secs(1),
            )?;
            let v = pin.map(|p| Secret::new(auth::pin::verifier("sub", p)));
            tx.subscriber_set_pin_verifier("sub", v.as_ref())?;
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
            tls,
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
    (store, transport, dir)
}

fn run_sync(
    engine: &mut Engine<impl syncml_client::Transport>,
    sim: &mut MemorySim,
    ui: &mut ScriptedUi,
    contacts: &mut MemoryStore,
) -> Result<syncml_client::SessionReport, syncml_client::ClientError> {
    let mut terminal = MemoryTerminal::new("IMEI:1", "pw");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(engine.sync(
        Handset {
            sim: Some(sim),
            terminal: &mut terminal,
            ui,
        },
        &mut [contacts as &mut dyn DataStore],
        &[SyncMode::TwoWay],
    ))
}

#[test]
fn the_engine_syncs_over_an_in_memory_transport() {
    let (store, transport, _dir) = service(0, None, false);
    let mut engine = Engine::new(EngineConfig::new("http://in-memory/sync"), transport);
    let mut sim = MemorySim::new("sub", "1234");
    let mut ui = ScriptedUi::answering("1234", "pw");
    let mut contacts = MemoryStore::contacts();
    contacts.add("BEGIN:VCARD\r\nN:Ann;\r\nEND:VCARD\r\n");
    let report = run_sync(&mut engine, &mut sim, &mut ui, &mut contacts).expect("sync");
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

/// Security level 2 (FIG. 14): the server checks the SIM's PIN through the PIN extension,
/// which the engine sends when `send_pin` is set, with the PIN the user entered at the
/// gate. Without it the server refuses (407), with a PIN the server does not hold it
/// refuses (401), and nothing is stored either way.
#[test]
fn a_level_2_server_accepts_the_sim_pin_sent_by_the_engine() {
    let items = |store: &SqliteStore| {
        store
            .read(|tx| tx.items_stats(syncml_server::store::DatastoreKey::new("sub", "contacts")))
            .expect("stats")
            .count
    };
    let card = "BEGIN:VCARD\r\nN:Ann;\r\nEND:VCARD\r\n";
    for (send_pin, server_pin, ok) in [
        (false, "1234", false),
        (true, "9999", false),
        (true, "1234", true),
    ] {
        let (store, transport, _dir) = service(2, Some(server_pin), true);
        let mut cfg = EngineConfig::new("https://in-memory/sync");
        cfg.send_pin = send_pin;
        let mut engine = Engine::new(cfg, transport);
        let mut sim = MemorySim::new("sub", "1234");
        let mut ui = ScriptedUi::answering("1234", "pw");
        let mut contacts = MemoryStore::contacts();
        contacts.add(card);
        let r = run_sync(&mut engine, &mut sim, &mut ui, &mut contacts);
        let case = format!("send_pin {send_pin}, server PIN {server_pin}");
        assert_eq!(r.is_ok(), ok, "{case}: {r:?}");
        assert_eq!(items(&store), u64::from(ok), "{case}");
    }
}

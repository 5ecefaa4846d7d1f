//! A server in a dozen lines: open (or create) an SQLite store, provision one subscriber
//! with one handset, serve SyncML on 127.0.0.1 until Ctrl-C.
//!
//! ```sh
//! cargo run -p syncml-examples --bin quickstart-server -- /tmp/quickstart 127.0.0.1:8080
//! ```
//! Then point a SyncML client at `http://127.0.0.1:8080/sync` with user `demo`, password
//! `demo`, device ID `IMEI:000000000000000` (e.g. SyncEvolution with `deviceId=...`).

use std::sync::Arc;
use syncml_server::http::{serve, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreError, StoreExt, Timestamp,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "quickstart-data".into());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let store = Arc::new(SqliteStore::open_in_dir(&dir)?);
    let md5 = syncml_core::auth::md5::user_digest("demo", "demo");
    let basic = syncml_server::password::hash("demo")?;
    let provisioned = store.transaction(|tx| {
        if tx.subscriber_get("demo")?.is_some() {
            return Ok(false);
        }
        tx.subscriber_create(
            &NewSubscriber {
                id: "demo".into(),
                display_name: Some("Demo subscriber".into()),
                security_level: 0,
            },
            Timestamp::from_unix_secs(0),
        )?;
        tx.terminal_register(
            &NewTerminal {
                terminal_id: "IMEI:000000000000000".into(),
                subscriber_id: "demo".into(),
                md5_verifier: Some(Secret::new(md5.clone())),
                basic_verifier: Some(Secret::new(basic.clone())),
                classes: vec![],
                registered_by: RegisteredBy::Operator,
            },
            Timestamp::from_unix_secs(0),
        )?;
        Ok::<_, StoreError>(true)
    })?;
    if provisioned {
        println!("provisioned subscriber demo with terminal IMEI:000000000000000 (password demo)");
    }
    let svc = Arc::new(SyncService::new(
        store,
        Engine::new(EngineConfig::default()),
    ));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let running = serve(listener, svc, HttpOptions::default(), None)?;
    println!(
        "SyncML server on http://{}/sync (Ctrl-C stops)",
        running.local_addr
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

//! Test harness: our real server (syncml-server) in-process over real HTTP with a real
//! SQLite file, started and provisioned as in `syncml-server/tests/replay.rs`, and
//! handsets built from the in-memory SIM, terminal, UI and data store.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use syncml_client::mem::{ManualClock, MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::policy::{Event, Plan, TriggerConfig, TriggerPolicy};
use syncml_client::{
    ClientError, Counting, DataStore, Engine, EngineConfig, GatePolicy, Handset, HttpTransport,
    SessionReport, SyncMode, Transport, TransportError,
};
use syncml_core::auth;
use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine as ServerEngine, EngineConfig as ServerConfig};
use syncml_server::store::{
    DatastoreKey, NewItem, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt,
    Timestamp,
};

pub const SUBSCRIBER: &str = "001010123456789";
pub const PIN: &str = "1234";

pub struct Server {
    pub url: String,
    running: Option<http::Running>,
    pub rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    pub store: Arc<SqliteStore>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown());
        }
    }
}

pub fn start() -> Server {
    start_with(ServerConfig::default())
}

pub fn start_with(cfg: ServerConfig) -> Server {
    start_full(cfg, None)
}

/// Our server over HTTPS with this certificate and key (PEM); the URL is
/// `https://127.0.0.1:PORT/sync`.
pub fn start_tls(cert_pem: &str, key_pem: &str) -> Server {
    let tls = http::tls_config(cert_pem.as_bytes(), key_pem.as_bytes()).expect("tls_config");
    start_full(ServerConfig::default(), Some(Arc::new(tls)))
}

fn start_full(cfg: ServerConfig, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let https = tls.is_some();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let svc = Arc::new(SyncService::new(store.clone(), ServerEngine::new(cfg)));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, svc, HttpOptions::default(), tls).expect("serve")
    });
    let scheme = if https { "https" } else { "http" };
    let url = format!("{scheme}://{}/sync", running.local_addr);
    Server {
        url,
        running: Some(running),
        rt,
        _dir: dir,
        store,
    }
}

impl Server {
    /// Creates the subscriber (if new) and registers `terminal` with `password`.
    pub fn provision(&self, subscriber: &str, terminal: &str, password: &str) {
        self.store
            .transaction(|tx| {
                if tx.subscriber_get(subscriber)?.is_none() {
                    tx.subscriber_create(
                        &NewSubscriber {
                            id: subscriber.into(),
                            display_name: None,
                            security_level: 0,
                        },
                        Timestamp::from_unix_secs(1),
                    )?;
                }
                if tx.terminal_find(terminal)?.is_some() {
                    return Ok(());
                }
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: terminal.into(),
                        subscriber_id: subscriber.into(),
                        md5_verifier: Some(Secret::new(auth::md5::user_digest(
                            subscriber, password,
                        ))),
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    Timestamp::from_unix_secs(1),
                )?;
                Ok(())
            })
            .expect("provision");
    }

    /// The live items of a subscriber's datastore, contents sorted.
    pub fn items(&self, subscriber: &str, ds: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .store
            .read(|tx| tx.items_list_live(DatastoreKey::new(subscriber, ds)))
            .expect("items")
            .into_iter()
            .map(|i| String::from_utf8_lossy(&i.data).into_owned())
            .collect();
        v.sort();
        v
    }

    /// Writes an item as the operator would (no terminal); returns its GUID.
    pub fn operator_put(
        &self,
        subscriber: &str,
        ds: &str,
        guid: Option<&str>,
        data: &str,
    ) -> String {
        self.store
            .transaction(|tx| {
                let r = tx.items_put(
                    DatastoreKey::new(subscriber, ds),
                    None,
                    &[NewItem {
                        guid: guid.map(str::to_string),
                        content_type: "text/x-vcard".into(),
                        data: data.as_bytes().to_vec(),
                    }],
                    Timestamp::from_unix_secs(now()),
                )?;
                Ok(r.into_iter().next().map(|p| p.guid).unwrap_or_default())
            })
            .expect("operator put")
    }

    /// Deletes an item as the operator would.
    pub fn operator_delete(&self, subscriber: &str, ds: &str, guid: &str) {
        self.store
            .transaction(|tx| {
                tx.items_delete(
                    DatastoreKey::new(subscriber, ds),
                    None,
                    &[guid.to_string()],
                    Timestamp::from_unix_secs(now()),
                )?;
                Ok(())
            })
            .expect("operator delete")
    }

    /// The GUID of the live item with this content.
    pub fn guid_of(&self, subscriber: &str, ds: &str, data: &str) -> Option<String> {
        self.store
            .read(|tx| tx.items_list_live(DatastoreKey::new(subscriber, ds)))
            .expect("items")
            .into_iter()
            .find(|i| i.data == data.as_bytes())
            .map(|i| i.guid)
    }

    /// Audit events with this status.
    pub fn audit_count(&self, status: u16) -> usize {
        self.store
            .read(|tx| tx.audit_list(&Default::default()))
            .expect("audit")
            .iter()
            .filter(|a| a.event.status == Some(status))
            .count()
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A vCard with this name.
pub fn card(name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:2.1\r\nN:{name};\r\nFN:{name}\r\nEND:VCARD\r\n")
}

/// A transport that drops (fails) the requests whose 1-based numbers are listed, before
/// they reach the server.
#[derive(Debug)]
pub struct Failing<T> {
    pub inner: T,
    pub fail: Vec<usize>,
    pub n: AtomicUsize,
}

impl<T: Transport> Transport for Failing<T> {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        let n = self.n.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = self.fail.contains(&n);
        let fut = self.inner.post(url, content_type, body);
        async move {
            if fail {
                Err(TransportError::Io("dropped by the test".into()))
            } else {
                fut.await
            }
        }
    }
}

/// A handset: terminal, UI, a contacts store and an engine posting through a counting HTTP
/// transport. The SIM is separate (it moves between handsets).
pub struct Phone {
    pub terminal: MemoryTerminal,
    pub ui: ScriptedUi,
    pub contacts: MemoryStore,
    pub engine: Engine<Counting<HttpTransport>>,
}

impl Phone {
    /// A handset `terminal_id` with terminal password `password`, provisioned on `srv` for
    /// [`SUBSCRIBER`], with FIG. 9 gates (PIN and password).
    pub fn new(srv: &Server, terminal_id: &str, password: &str) -> Phone {
        srv.provision(SUBSCRIBER, terminal_id, password);
        Phone::unprovisioned(srv, terminal_id, password)
    }

    /// As [`new`](Self::new) without registering the terminal on the server.
    pub fn unprovisioned(srv: &Server, terminal_id: &str, password: &str) -> Phone {
        let cfg = EngineConfig::new(srv.url.clone());
        Phone {
            terminal: MemoryTerminal::new(terminal_id, password),
            ui: ScriptedUi::answering(PIN, password),
            contacts: MemoryStore::contacts(),
            engine: Engine::new(cfg, Counting::new(HttpTransport::new())),
        }
    }

    pub fn with_policy(mut self, policy: GatePolicy) -> Phone {
        self.engine.config_mut().policy = policy;
        self
    }

    pub fn requests(&self) -> usize {
        self.engine.transport().count()
    }

    pub fn sync(
        &mut self,
        srv: &Server,
        sim: Option<&mut MemorySim>,
        mode: SyncMode,
    ) -> Result<SessionReport, ClientError> {
        let Phone {
            terminal,
            ui,
            contacts,
            engine,
        } = self;
        let sim = sim.map(|s| s as &mut dyn syncml_client::Sim);
        srv.block_on(engine.sync(
            Handset { sim, terminal, ui },
            &mut [contacts as &mut dyn DataStore],
            &[mode],
        ))
    }
}

pub fn sim() -> MemorySim {
    MemorySim::new(SUBSCRIBER, PIN)
}

/// A calendar store (`./calendar` ↔ `calendar`, vCalendar 1.0).
pub fn calendar() -> MemoryStore {
    MemoryStore::new("./calendar", "calendar", "text/x-vcalendar", "1.0")
}

/// A vCalendar event with this summary.
pub fn event(summary: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:1.0\r\nBEGIN:VEVENT\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
}

/// A handset with two data classes, a hand-set clock and a trigger policy, posting
/// through a counting HTTP transport to our server.
pub struct Handheld {
    pub terminal: MemoryTerminal,
    pub ui: ScriptedUi,
    pub contacts: MemoryStore,
    pub calendar: MemoryStore,
    pub clock: ManualClock,
    pub engine: Engine<Counting<HttpTransport>, ManualClock>,
    pub policy: TriggerPolicy,
}

impl Handheld {
    /// Provisioned on `srv` for [`SUBSCRIBER`], FIG. 9 gates, clock at `now()`.
    pub fn new(srv: &Server, terminal_id: &str, password: &str, cfg: TriggerConfig) -> Handheld {
        srv.provision(SUBSCRIBER, terminal_id, password);
        let clock = ManualClock::at(now());
        Handheld {
            terminal: MemoryTerminal::new(terminal_id, password),
            ui: ScriptedUi::answering(PIN, password),
            contacts: MemoryStore::contacts(),
            calendar: calendar(),
            engine: Engine::with_clock(
                EngineConfig::new(srv.url.clone()),
                Counting::new(HttpTransport::new()),
                clock.clone(),
            ),
            clock,
            policy: TriggerPolicy::new(cfg, false),
        }
    }

    pub fn requests(&self) -> usize {
        self.engine.transport().count()
    }

    /// Feeds `ev` to the policy and runs what it decides.
    pub fn event(
        &mut self,
        srv: &Server,
        sim: Option<&mut MemorySim>,
        ev: Event,
    ) -> Vec<(Plan, Result<SessionReport, ClientError>)> {
        let Handheld {
            terminal,
            ui,
            contacts,
            calendar,
            engine,
            policy,
            ..
        } = self;
        let sim = sim.map(|s| s as &mut dyn syncml_client::Sim);
        srv.block_on(engine.handle_event(
            policy,
            Handset { sim, terminal, ui },
            &mut [
                contacts as &mut dyn DataStore,
                calendar as &mut dyn DataStore,
            ],
            ev,
        ))
    }

    /// Runs a plain sync of both stores.
    pub fn sync(
        &mut self,
        srv: &Server,
        sim: Option<&mut MemorySim>,
        mode: SyncMode,
    ) -> Result<SessionReport, ClientError> {
        let Handheld {
            terminal,
            ui,
            contacts,
            calendar,
            engine,
            ..
        } = self;
        let sim = sim.map(|s| s as &mut dyn syncml_client::Sim);
        srv.block_on(engine.sync(
            Handset { sim, terminal, ui },
            &mut [
                contacts as &mut dyn DataStore,
                calendar as &mut dyn DataStore,
            ],
            &[mode],
        ))
    }
}

/// The single result of the events' runs.
pub fn only_run(
    runs: Vec<(Plan, Result<SessionReport, ClientError>)>,
) -> (Plan, Result<SessionReport, ClientError>) {
    assert_eq!(runs.len(), 1, "exactly one sync: {runs:?}");
    runs.into_iter().next().expect("one run")
}

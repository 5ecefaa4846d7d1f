//! The driver: gates, then a [`ClientSession`] over a [`Transport`].

use syncml_core::auth::Secret;
use syncml_core::Encoding;
use tracing::{info, warn};

use crate::budget::Budget;
use crate::error::{ClientError, GateRefusal, SessionError};
use crate::gate::{self, GatePolicy};
use crate::handset::{Clock, Notice, Sim, SystemClock, Terminal, Ui, Warning};
use crate::mode::{AuthScheme, SyncMode};
use crate::session::{ClientSession, DeviceInfo, SessionConfig, SessionReport, Step};
use crate::store::DataStore;
use crate::summary::{self, TitlesFirst};
use crate::transport::Transport;

/// Engine settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The server's URL (stored with the sync program, para. 0039).
    pub server_url: String,
    /// Our message encoding.
    pub encoding: Encoding,
    /// The authentication scheme.
    pub auth: AuthScheme,
    /// Which gates run before every sync.
    pub policy: GatePolicy,
    /// `MaxMsgSize` we announce.
    pub max_msg_size: u64,
    /// `MaxObjSize` we announce.
    pub max_obj_size: u64,
    /// The credential secret to use when the policy asks no terminal password (FIG. 10-B,
    /// 11-B, 13). When the policy asks it, the entered password is used.
    pub stored_password: Option<Secret<String>>,
    /// Allow `syncml:auth-basic` over plain HTTP.
    pub allow_basic_without_tls: bool,
    /// Static device information.
    pub device: DeviceInfo,
    /// Give up after this many messages in one session.
    pub max_messages: u32,
    /// Prove the SIM's PIN to the server too (servers at security level 2, FIG. 14),
    /// through the PIN extension ([`syncml_core::auth::pin`]). The PIN is the one the
    /// user entered at the PIN gate; with a policy that asks none, the engine asks it
    /// and collates it with the SIM first.
    pub send_pin: bool,
    /// Titles first per data class, by store local URI (`./contacts`): see
    /// [`crate::summary`] and [`Engine::fetch_body`].
    pub titles_first: std::collections::BTreeMap<String, TitlesFirst>,
}

impl EngineConfig {
    /// FIG. 9 gates, md5, XML, 64 KiB messages.
    pub fn new(server_url: impl Into<String>) -> EngineConfig {
        EngineConfig {
            server_url: server_url.into(),
            encoding: Encoding::Xml,
            auth: AuthScheme::Md5,
            policy: GatePolicy::FIG9,
            max_msg_size: 64 * 1024,
            max_obj_size: 4 * 1024 * 1024,
            stored_password: None,
            allow_basic_without_tls: false,
            device: DeviceInfo::default(),
            max_messages: 10_000,
            send_pin: false,
            titles_first: std::collections::BTreeMap::new(),
        }
    }
}

/// A shorter-lived `Option<&mut dyn Sim>` out of a longer one (the trait object's
/// lifetime shrinks with the borrow).
fn reborrow<'b>(sim: &'b mut Option<&mut dyn Sim>) -> Option<&'b mut dyn Sim> {
    match sim {
        Some(s) => Some(&mut **s),
        None => None,
    }
}

/// The handset's parts a sync needs.
pub struct Handset<'a> {
    /// The mounted SIM, if any.
    pub sim: Option<&'a mut dyn Sim>,
    /// The terminal.
    pub terminal: &'a mut dyn Terminal,
    /// The user interface.
    pub ui: &'a mut dyn Ui,
}

impl std::fmt::Debug for Handset<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handset")
            .field("sim", &self.sim.is_some())
            .field("terminal", &self.terminal.terminal_id())
            .finish()
    }
}

/// The handset sync engine: one per server; no global state, so several can run in one
/// process.
///
/// ```no_run
/// # async fn demo() -> Result<(), syncml_client::ClientError> {
/// use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
/// use syncml_client::{DataStore, Engine, EngineConfig, Handset, HttpTransport, SyncMode};
///
/// let mut engine = Engine::new(EngineConfig::new("http://127.0.0.1:8080/sync"), HttpTransport::new());
/// let mut sim = MemorySim::new("001010123456789", "1234");
/// let mut terminal = MemoryTerminal::new("IMEI:356938035643809", "secret");
/// let mut ui = ScriptedUi::answering("1234", "secret");
/// let mut contacts = MemoryStore::contacts();
/// contacts.add("BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;John\r\nEND:VCARD\r\n");
/// let report = engine
///     .sync(
///         Handset { sim: Some(&mut sim), terminal: &mut terminal, ui: &mut ui },
///         &mut [&mut contacts as &mut dyn DataStore],
///         &[SyncMode::TwoWay],
///     )
///     .await?;
/// assert!(report.is_success());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Engine<T, C = SystemClock> {
    cfg: EngineConfig,
    transport: T,
    clock: C,
    nonce: Option<String>,
    sessions: u64,
}

impl<T: Transport> Engine<T, SystemClock> {
    /// An engine posting through `transport`, on the system clock.
    pub fn new(cfg: EngineConfig, transport: T) -> Engine<T, SystemClock> {
        Engine::with_clock(cfg, transport, SystemClock)
    }
}

impl<T: Transport, C: Clock> Engine<T, C> {
    /// An engine with an injected clock.
    pub fn with_clock(cfg: EngineConfig, transport: T, clock: C) -> Engine<T, C> {
        Engine {
            cfg,
            transport,
            clock,
            nonce: None,
            sessions: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Changes the settings.
    pub fn config_mut(&mut self) -> &mut EngineConfig {
        &mut self.cfg
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The server's latest `NextNonce` (persist it with the handset state).
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Restores a persisted nonce.
    pub fn set_nonce(&mut self, nonce: Option<String>) {
        self.nonce = nonce;
    }

    /// Runs the gates, then one sync session over `stores` with `modes` (one mode for
    /// every store, or one per store). A refused gate sends nothing and returns
    /// [`ClientError::Refused`].
    pub async fn sync(
        &mut self,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
        modes: &[SyncMode],
    ) -> Result<SessionReport, ClientError> {
        self.sync_with_budget(handset, stores, modes, Budget::UNLIMITED)
            .await
    }

    /// As [`sync`](Self::sync), with the session limited by `budget` (caps, probe; see
    /// [`crate::budget`]). The time limits read the engine's clock before each message.
    pub async fn sync_with_budget(
        &mut self,
        handset: Handset<'_>,
        stores: &mut [&mut dyn DataStore],
        modes: &[SyncMode],
        budget: Budget,
    ) -> Result<SessionReport, ClientError> {
        let Handset { sim, terminal, ui } = handset;
        let scfg = self.open(sim, &*terminal, &mut *ui)?;
        let modes: Vec<SyncMode> = match modes {
            [one] => vec![*one; stores.len()],
            m if m.len() == stores.len() => m.to_vec(),
            m => {
                return Err(SessionError::Protocol(format!(
                    "{} modes for {} stores",
                    m.len(),
                    stores.len()
                ))
                .into())
            }
        };
        for s in stores.iter_mut() {
            if s.has_sim_less_changes()? {
                ui.warn(&Warning::PossibleConflict {
                    store: s.local_uri().to_string(),
                });
            }
        }
        let mut session = ClientSession::new(scfg, &modes);
        session.set_budget(budget);
        let result = self.run(&mut session, stores).await;
        if let Some(n) = session.next_nonce() {
            self.nonce = Some(n.to_string());
        }
        match result {
            Ok(report) => {
                info!(
                    sent = report.sent(),
                    received = report.received(),
                    messages = report.messages_sent,
                    "sync completed"
                );
                for w in &report.warnings {
                    ui.warn(w);
                }
                ui.notify(&Notice::SyncCompleted {
                    sent: report.sent(),
                    received: report.received(),
                });
                Ok(report)
            }
            Err(e) => {
                warn!(error = %e, "sync failed");
                if let Err(e2) = session.abort(stores) {
                    warn!(error = %e2, "could not save the session state after a failure");
                }
                ui.notify(&Notice::SyncFailed(e.to_string()));
                Err(e)
            }
        }
    }

    /// Runs the gates and builds the configuration of the next session.
    fn open(
        &mut self,
        mut sim: Option<&mut dyn Sim>,
        terminal: &dyn Terminal,
        ui: &mut dyn Ui,
    ) -> Result<SessionConfig, ClientError> {
        let pass = gate::check(&self.cfg.policy, reborrow(&mut sim), terminal, ui)?;
        let pin = match (&pass.pin, self.cfg.send_pin, reborrow(&mut sim)) {
            (_, false, _) => None,
            (Some(p), true, _) => Some(p.clone()),
            (None, true, Some(s)) => match gate::pin_gate(s, ui) {
                Ok(p) => Some(p),
                Err(r) => {
                    ui.notify(&Notice::Refused(r.clone()));
                    return Err(r.into());
                }
            },
            (None, true, None) => return Err(GateRefusal::NoSim.into()),
        };
        let password = match (&pass.password, &self.cfg.stored_password) {
            (Some(p), _) => p.clone(),
            (None, Some(s)) => s.expose().clone(),
            (None, None) if self.cfg.auth == AuthScheme::None => String::new(),
            (None, None) => {
                let r = GateRefusal::NoCredentials;
                ui.notify(&Notice::Refused(r.clone()));
                return Err(r.into());
            }
        };
        let now = self.clock.now_unix();
        self.sessions += 1;
        let mut scfg = SessionConfig::new(
            self.cfg.server_url.clone(),
            pass.terminal_id.clone(),
            pass.subscriber_id.clone(),
            password,
        );
        scfg.session_id = (now.rem_euclid(100_000) as u64 * 100 + self.sessions % 100).to_string();
        scfg.auth = self.cfg.auth;
        scfg.allow_basic_without_tls = self.cfg.allow_basic_without_tls;
        scfg.encoding = self.cfg.encoding;
        scfg.max_msg_size = self.cfg.max_msg_size;
        scfg.max_obj_size = self.cfg.max_obj_size;
        scfg.nonce = self.nonce.clone();
        scfg.device = self.cfg.device.clone();
        scfg.now = now;
        scfg.titles_first = self.cfg.titles_first.clone();
        scfg.pin = pin.map(Secret::new);
        Ok(scfg)
    }

    /// Titles first: fetches the full body of item `luid` of `store` (held as a summary)
    /// and stores it with [`DataStore::store_body`]. Runs the same gates as a sync, then a
    /// session of its own: one `Get` of `<server URI>?luid=<LUID>` (see
    /// [`crate::summary`]). Returns the body, or `None` when the server has no such item
    /// (404; the store is left alone).
    pub async fn fetch_body(
        &mut self,
        handset: Handset<'_>,
        store: &mut dyn DataStore,
        luid: &str,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        let Handset { sim, terminal, ui } = handset;
        let scfg = self.open(sim, &*terminal, ui)?;
        let mut session = ClientSession::body_fetch(scfg, store.server_uri(), luid);
        let result = self.run(&mut session, &mut []).await;
        if let Some(n) = session.next_nonce() {
            self.nonce = Some(n.to_string());
        }
        result?;
        match session.fetched_body() {
            Ok(Some(summary::Body { data, content_type })) => {
                info!(store = %store.local_uri(), luid, bytes = data.len(), "body fetched");
                store.store_body(luid, data.clone(), content_type)?;
                Ok(Some(data))
            }
            Ok(None) => {
                info!(store = %store.local_uri(), luid, "the server has no such item");
                Ok(None)
            }
            Err(code) => Err(SessionError::ServerRefused(code).into()),
        }
    }

    async fn run(
        &self,
        session: &mut ClientSession,
        stores: &mut [&mut dyn DataStore],
    ) -> Result<SessionReport, ClientError> {
        let mut out = session.start(stores)?;
        for _ in 0..self.cfg.max_messages {
            let body = out.to_bytes()?;
            let (_ct, reply) = self
                .transport
                .post(&out.url, out.content_type(), body)
                .await?;
            let msg =
                syncml_core::decode(&reply).map_err(|e| SessionError::Decode(e.to_string()))?;
            session.set_time(self.clock.now_unix());
            match session.handle(msg, stores)? {
                Step::Send(next) => out = next,
                Step::Done(report) => return Ok(report),
            }
        }
        Err(SessionError::TooManyMessages(self.cfg.max_messages).into())
    }
}

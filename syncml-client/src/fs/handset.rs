//! [`FsHandset`]: a whole handset in a directory (configuration, terminal state, SIM slot,
//! one [`FsStore`] per data class) and the operations of the `syncml-handset` command:
//! SIM insertion and removal, registration (FIG. 10-A, 11-A), sync, erase, status.

use std::path::{Path, PathBuf};

use syncml_core::Encoding;

use super::{read_line, write_atomic, FsError, FsSim, FsStore, FsTerminal};
use crate::engine::{Engine, EngineConfig, Handset};
use crate::error::{ClientError, GateRefusal};
use crate::gate::{self, GatePolicy};
use crate::mem::ScriptedUi;
use crate::mode::{AuthScheme, SyncMode};
use crate::session::SessionReport;
use crate::store::DataStore;
use crate::transport::Transport;

/// A data class the file-backed handset keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    /// Contacts: `contacts/`, vCard 3.0 (`text/vcard`), files `N.vcf`.
    Contacts,
    /// Calendar: `calendar/`, iCalendar 2.0 (`text/calendar`), files `N.ics`.
    Calendar,
}

impl DataClass {
    /// Every class.
    pub const ALL: [DataClass; 2] = [DataClass::Contacts, DataClass::Calendar];

    /// The directory name, also the local URI without `./` and the default server URI.
    pub fn name(self) -> &'static str {
        match self {
            DataClass::Contacts => "contacts",
            DataClass::Calendar => "calendar",
        }
    }

    /// The class called `name`.
    pub fn parse(name: &str) -> Option<DataClass> {
        DataClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The MIME type and version of the items.
    pub fn content_type(self) -> (&'static str, &'static str) {
        match self {
            DataClass::Contacts => ("text/vcard", "3.0"),
            DataClass::Calendar => ("text/calendar", "2.0"),
        }
    }

    /// The file extension of new items.
    pub fn extension(self) -> &'static str {
        match self {
            DataClass::Contacts => "vcf",
            DataClass::Calendar => "ics",
        }
    }
}

/// The handset's settings (`handset.conf`, `key = value` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandsetConfig {
    /// The server's URL.
    pub server_url: String,
    /// The gates that run before every sync.
    pub policy: GatePolicy,
    /// The message encoding.
    pub encoding: Encoding,
    /// The authentication scheme.
    pub auth: AuthScheme,
    /// The `MaxMsgSize` we announce (bytes).
    pub max_msg_size: u64,
    /// The classes a sync covers when none are named.
    pub classes: Vec<DataClass>,
    /// The server's URI of the contacts store.
    pub contacts_uri: String,
    /// The server's URI of the calendar store.
    pub calendar_uri: String,
    /// A PEM file of certificates to trust for an `https://` server (a CA or the
    /// server's self-signed certificate).
    pub ca_cert: Option<PathBuf>,
}

impl HandsetConfig {
    /// Every gate, md5, XML, 64 KiB messages, contacts and calendar under their own names.
    pub fn new(server_url: &str) -> HandsetConfig {
        HandsetConfig {
            server_url: server_url.to_string(),
            policy: GatePolicy::ALL,
            encoding: Encoding::Xml,
            auth: AuthScheme::Md5,
            max_msg_size: 64 * 1024,
            classes: DataClass::ALL.to_vec(),
            contacts_uri: "contacts".into(),
            calendar_uri: "calendar".into(),
            ca_cert: None,
        }
    }

    /// The server URI of `class`.
    pub fn server_uri(&self, class: DataClass) -> &str {
        match class {
            DataClass::Contacts => &self.contacts_uri,
            DataClass::Calendar => &self.calendar_uri,
        }
    }

    /// The name of a gate policy (`all`, `fig9`, `fig10b`, `fig11b`, `fig12`, `fig13`).
    pub fn policy_name(policy: &GatePolicy) -> String {
        [
            ("all", GatePolicy::ALL),
            ("fig9", GatePolicy::FIG9),
            ("fig10b", GatePolicy::FIG10B),
            ("fig11b", GatePolicy::FIG11B),
            ("fig12", GatePolicy::FIG12),
            ("fig13", GatePolicy::FIG13),
        ]
        .into_iter()
        .find(|(_, p)| p == policy)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| {
            let mut parts = Vec::new();
            for (on, n) in [
                (policy.pin, "pin"),
                (policy.terminal_password, "password"),
                (policy.subscriber_match, "subscriber"),
                (policy.terminal_listed, "listed"),
            ] {
                if on {
                    parts.push(n);
                }
            }
            parts.join("+")
        })
    }

    /// The policy called `name`: a figure (`fig9`...), `all`, or gates joined by `+`
    /// (`pin+password+subscriber+listed`).
    pub fn parse_policy(name: &str) -> Option<GatePolicy> {
        Some(match name {
            "all" => GatePolicy::ALL,
            "fig9" => GatePolicy::FIG9,
            "fig10b" => GatePolicy::FIG10B,
            "fig11b" => GatePolicy::FIG11B,
            "fig12" => GatePolicy::FIG12,
            "fig13" | "none" => GatePolicy::FIG13,
            other => {
                let mut p = GatePolicy::FIG13;
                for part in other.split('+') {
                    match part {
                        "pin" => p.pin = true,
                        "password" => p.terminal_password = true,
                        "subscriber" => p.subscriber_match = true,
                        "listed" => p.terminal_listed = true,
                        _ => return None,
                    }
                }
                p
            }
        })
    }

    fn to_text(&self) -> String {
        let classes: Vec<&str> = self.classes.iter().map(|c| c.name()).collect();
        let ca = match &self.ca_cert {
            Some(p) => format!("ca_cert = {}\n", p.display()),
            None => String::new(),
        };
        ca + &format!(
            "server = {}\npolicy = {}\nencoding = {}\nauth = {}\nmax_msg_size = {}\n\
             classes = {}\ncontacts_uri = {}\ncalendar_uri = {}\n",
            self.server_url,
            HandsetConfig::policy_name(&self.policy),
            match self.encoding {
                Encoding::Xml => "xml",
                Encoding::Wbxml => "wbxml",
            },
            match self.auth {
                AuthScheme::Md5 => "md5",
                AuthScheme::Basic => "basic",
                AuthScheme::None => "none",
            },
            self.max_msg_size,
            classes.join(","),
            self.contacts_uri,
            self.calendar_uri,
        )
    }

    fn from_text(path: &Path, text: &str) -> Result<HandsetConfig, FsError> {
        let mut c = HandsetConfig::new("");
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| FsError::format(path, format!("line {}: {what}", n + 1));
            let (k, v) = line.split_once('=').ok_or_else(|| bad("not key = value"))?;
            let v = v.trim();
            match k.trim() {
                "server" => c.server_url = v.to_string(),
                "policy" => {
                    c.policy = HandsetConfig::parse_policy(v).ok_or_else(|| bad("bad policy"))?
                }
                "encoding" => {
                    c.encoding = match v {
                        "xml" => Encoding::Xml,
                        "wbxml" => Encoding::Wbxml,
                        _ => return Err(bad("encoding is xml or wbxml")),
                    }
                }
                "auth" => {
                    c.auth = match v {
                        "md5" => AuthScheme::Md5,
                        "basic" => AuthScheme::Basic,
                        "none" => AuthScheme::None,
                        _ => return Err(bad("auth is md5, basic or none")),
                    }
                }
                "max_msg_size" => c.max_msg_size = v.parse().map_err(|_| bad("not a number"))?,
                "classes" => {
                    c.classes = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| DataClass::parse(s).ok_or_else(|| bad("unknown class")))
                        .collect::<Result<_, _>>()?
                }
                "contacts_uri" => c.contacts_uri = v.to_string(),
                "calendar_uri" => c.calendar_uri = v.to_string(),
                "ca_cert" => c.ca_cert = Some(PathBuf::from(v)),
                _ => return Err(bad("unknown key")),
            }
        }
        Ok(c)
    }
}

/// Why a handset operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandsetError {
    /// Reading or writing the handset's files failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The sync (gates, transport, session) failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A registration flow was refused (wrong PIN or password).
    #[error("registration refused: {0}")]
    Registration(GateRefusal),
    /// The operation needs a SIM and none is inserted.
    #[error("no SIM card is inserted")]
    NoSim,
    /// A SIM is already inserted.
    #[error("a SIM card is already inserted ({0})")]
    SimPresent(PathBuf),
    /// The server did not accept every store.
    #[error("the server refused {0}")]
    Incomplete(String),
    /// The server registration of FIG. 8 (S5-S6) failed.
    #[error("server registration: {0}")]
    ServerRegistration(crate::registration::RegistrationError),
}

/// What a completed sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// The session report.
    pub report: SessionReport,
    /// The classes synced, in the order of the report's stores.
    pub classes: Vec<DataClass>,
    /// Warnings the engine gave the user (para. 0068, conflicts).
    pub warnings: Vec<crate::handset::Warning>,
}

/// A handset in a directory (see the [module](super) docs for the layout).
#[derive(Debug)]
pub struct FsHandset {
    root: PathBuf,
    config: HandsetConfig,
    terminal: FsTerminal,
}

const CONFIG: &str = "handset.conf";
const SIM_SLOT: &str = "sim-slot";
const TERMINAL: &str = "terminal";

impl FsHandset {
    /// Creates a handset in `root` (empty or missing) with terminal `terminal_id` and
    /// terminal `password`.
    pub fn init(
        root: &Path,
        terminal_id: &str,
        password: &str,
        config: HandsetConfig,
    ) -> Result<FsHandset, FsError> {
        if root.join(CONFIG).exists() {
            return Err(FsError::Invalid(format!(
                "{} already holds a handset",
                root.display()
            )));
        }
        std::fs::create_dir_all(root).map_err(|e| FsError::io(root, e))?;
        let terminal = FsTerminal::create(&root.join(TERMINAL), terminal_id, password)?;
        for class in DataClass::ALL {
            let d = root.join(class.name());
            std::fs::create_dir_all(&d).map_err(|e| FsError::io(&d, e))?;
        }
        let h = FsHandset {
            root: root.to_path_buf(),
            config,
            terminal,
        };
        h.save_config()?;
        Ok(h)
    }

    /// Opens the handset in `root`.
    pub fn open(root: &Path) -> Result<FsHandset, FsError> {
        let path = root.join(CONFIG);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FsError::NotInitialised(root.to_path_buf()))
            }
            Err(e) => return Err(FsError::io(&path, e)),
        };
        let config = HandsetConfig::from_text(&path, &text)?;
        let terminal = FsTerminal::open(&root.join(TERMINAL))?;
        Ok(FsHandset {
            root: root.to_path_buf(),
            config,
            terminal,
        })
    }

    /// The handset directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings.
    pub fn config(&self) -> &HandsetConfig {
        &self.config
    }

    /// Changes the settings (call [`save_config`](Self::save_config) to keep them).
    pub fn config_mut(&mut self) -> &mut HandsetConfig {
        &mut self.config
    }

    /// The HTTP transport for the configured server: plain, or trusting
    /// [`HandsetConfig::ca_cert`] for `https://`.
    #[cfg(feature = "http")]
    pub fn http_transport(&self) -> Result<crate::HttpTransport, HandsetError> {
        let t = crate::HttpTransport::new();
        let Some(path) = &self.config.ca_cert else {
            return Ok(t);
        };
        let pem = std::fs::read(path).map_err(|e| FsError::io(path, e))?;
        t.with_root_certificates_pem(&pem)
            .map_err(|e| HandsetError::Client(e.into()))
    }

    /// Writes `handset.conf`.
    pub fn save_config(&self) -> Result<(), FsError> {
        write_atomic(&self.root.join(CONFIG), self.config.to_text().as_bytes())
    }

    /// The terminal.
    pub fn terminal(&self) -> &FsTerminal {
        &self.terminal
    }

    /// The directory of a class's items.
    pub fn class_dir(&self, class: DataClass) -> PathBuf {
        self.root.join(class.name())
    }

    /// Opens the store of `class`.
    pub fn store(&self, class: DataClass) -> Result<FsStore, FsError> {
        FsStore::open(
            &self.class_dir(class),
            &self.root.join(TERMINAL),
            &format!("./{}", class.name()),
            self.config.server_uri(class),
            class.content_type(),
            class.extension(),
        )
    }

    /// The inserted SIM's directory, if any.
    pub fn sim_dir(&self) -> Result<Option<PathBuf>, FsError> {
        Ok(read_line(&self.root.join(SIM_SLOT))?
            .filter(|s| !s.is_empty())
            .map(PathBuf::from))
    }

    /// Opens the inserted SIM, if any.
    pub fn sim(&self) -> Result<Option<FsSim>, FsError> {
        self.sim_dir()?.map(|d| FsSim::open(&d)).transpose()
    }

    /// Inserts the SIM in `sim_dir` (a directory made by [`FsSim::create`]).
    pub fn insert_sim(&mut self, sim_dir: &Path) -> Result<(), HandsetError> {
        if let Some(d) = self.sim_dir()? {
            return Err(HandsetError::SimPresent(d));
        }
        let dir = sim_dir
            .canonicalize()
            .map_err(|e| FsError::io(sim_dir, e))?;
        FsSim::open(&dir)?;
        let text = dir
            .to_str()
            .ok_or_else(|| FsError::Invalid(format!("{} is not UTF-8", dir.display())))?;
        write_atomic(&self.root.join(SIM_SLOT), text.as_bytes())?;
        Ok(())
    }

    /// Removes the SIM; returns its directory.
    pub fn remove_sim(&mut self) -> Result<PathBuf, HandsetError> {
        let d = self.sim_dir()?.ok_or(HandsetError::NoSim)?;
        let slot = self.root.join(SIM_SLOT);
        std::fs::remove_file(&slot).map_err(|e| FsError::io(&slot, e))?;
        Ok(d)
    }

    /// The registration flows with the inserted SIM: FIG. 10-A (the SIM's subscriber ID
    /// into the terminal's area 6b) when `subscriber`, FIG. 11-A (the terminal ID onto the
    /// SIM) when `terminal`; each asks the PIN and the terminal password first.
    pub fn register(
        &mut self,
        pin: Option<&str>,
        password: Option<&str>,
        subscriber: bool,
        terminal: bool,
    ) -> Result<(), HandsetError> {
        let mut sim = self.sim()?.ok_or(HandsetError::NoSim)?;
        let mut ui = answering(pin, password);
        if subscriber {
            gate::register_subscriber_in_terminal(&mut sim, &mut self.terminal, &mut ui)
                .map_err(HandsetError::Registration)?;
        }
        if terminal {
            gate::register_terminal_on_sim(&mut sim, &mut self.terminal, &mut ui)
                .map_err(HandsetError::Registration)?;
        }
        if let Some(e) = sim.take_error().or_else(|| self.terminal.take_error()) {
            return Err(e.into());
        }
        Ok(())
    }

    /// FIG. 8 with the server: the PIN, the terminal password, then the registration of
    /// this terminal for the SIM's subscriber over the server's registration API
    /// (authenticated with the subscriber's `login` password), which also writes the
    /// subscriber ID into the terminal (FIG. 10-A). `classes` empty: all.
    pub async fn register_with_server(
        &mut self,
        transport: &crate::HttpTransport,
        login: &str,
        classes: &[String],
        pin: Option<&str>,
        password: Option<&str>,
    ) -> Result<crate::registration::Registered, HandsetError> {
        let mut sim = self.sim()?.ok_or(HandsetError::NoSim)?;
        let mut ui = answering(pin, password);
        let server = self.config.server_url.clone();
        let r = crate::registration::register_handset(
            transport,
            &server,
            Some(&mut sim),
            &mut self.terminal,
            &mut ui,
            login,
            classes,
        )
        .await
        .map_err(HandsetError::ServerRegistration)?;
        if let Some(e) = sim.take_error().or_else(|| self.terminal.take_error()) {
            return Err(e.into());
        }
        Ok(r)
    }

    /// One sync session of `classes` (all configured ones when empty) in `mode` through
    /// `transport`, after the gates of the configured policy. `pin` and `password` answer
    /// the prompts; `password` is also the credential secret when the policy asks none.
    pub async fn sync<T: Transport>(
        &mut self,
        transport: T,
        classes: &[DataClass],
        mode: SyncMode,
        pin: Option<&str>,
        password: Option<&str>,
    ) -> Result<SyncOutcome, HandsetError> {
        let classes: Vec<DataClass> = if classes.is_empty() {
            self.config.classes.clone()
        } else {
            classes.to_vec()
        };
        let mut stores = classes
            .iter()
            .map(|c| self.store(*c))
            .collect::<Result<Vec<FsStore>, FsError>>()?;
        let mut sim = self.sim()?;
        let mut cfg = EngineConfig::new(self.config.server_url.clone());
        cfg.policy = self.config.policy;
        cfg.encoding = self.config.encoding;
        cfg.auth = self.config.auth;
        cfg.max_msg_size = self.config.max_msg_size;
        cfg.stored_password = password.map(|p| p.to_string().into());
        let mut engine = Engine::new(cfg, transport);
        let nonce_path = self.root.join(TERMINAL).join("nonce");
        engine.set_nonce(read_line(&nonce_path)?.filter(|n| !n.is_empty()));
        let mut ui = answering(pin, password);
        let mut dyn_stores: Vec<&mut dyn DataStore> =
            stores.iter_mut().map(|s| s as &mut dyn DataStore).collect();
        let result = engine
            .sync(
                Handset {
                    sim: sim.as_mut().map(|s| s as &mut dyn crate::Sim),
                    terminal: &mut self.terminal,
                    ui: &mut ui,
                },
                &mut dyn_stores,
                &[mode],
            )
            .await;
        if let Some(n) = engine.nonce() {
            write_atomic(&nonce_path, n.as_bytes())?;
        }
        if let Some(e) = sim.as_mut().and_then(FsSim::take_error) {
            return Err(e.into());
        }
        let report = result?;
        let refused: Vec<String> = report
            .stores
            .iter()
            .filter(|s| s.failed.is_some() || s.mode.is_none())
            .map(|s| match s.failed {
                Some(code) => format!("{} ({})", s.local_uri, code.0),
                None => format!("{} (not alerted)", s.local_uri),
            })
            .collect();
        if !refused.is_empty() {
            return Err(HandsetError::Incomplete(refused.join(", ")));
        }
        Ok(SyncOutcome {
            report,
            classes,
            warnings: ui.warnings,
        })
    }

    /// Uploads the pending changes of `classes` (one-way from client), then, only if that
    /// succeeded, erases their items locally (nothing of the erase is sent). Returns the
    /// upload's outcome.
    pub async fn erase<T: Transport>(
        &mut self,
        transport: T,
        classes: &[DataClass],
        pin: Option<&str>,
        password: Option<&str>,
    ) -> Result<SyncOutcome, HandsetError> {
        let outcome = self
            .sync(
                transport,
                classes,
                SyncMode::OneWayFromClient,
                pin,
                password,
            )
            .await?;
        for class in &outcome.classes {
            let mut s = self.store(*class)?;
            s.erase_local().map_err(ClientError::from)?;
        }
        Ok(outcome)
    }
}

fn answering(pin: Option<&str>, password: Option<&str>) -> ScriptedUi {
    ScriptedUi {
        pins: vec![pin.map(str::to_string)],
        passwords: vec![password.map(str::to_string)],
        permit: true,
        ..ScriptedUi::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_file_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let mut c = HandsetConfig::new("http://127.0.0.1:1/sync");
        c.policy = GatePolicy::FIG12;
        c.encoding = Encoding::Wbxml;
        c.classes = vec![DataClass::Calendar];
        c.contacts_uri = "addressbook".into();
        c.ca_cert = Some(PathBuf::from("/etc/ssl/server.pem"));
        let h = FsHandset::init(d.path(), "IMEI:1", "pw", c.clone()).unwrap();
        assert_eq!(h.config(), &c);
        let h = FsHandset::open(d.path()).unwrap();
        assert_eq!(h.config(), &c);
        assert!(FsHandset::init(d.path(), "IMEI:2", "pw", c).is_err());
    }

    #[test]
    fn policies_have_names() {
        for p in [
            GatePolicy::ALL,
            GatePolicy::FIG9,
            GatePolicy::FIG10B,
            GatePolicy::FIG11B,
            GatePolicy::FIG12,
            GatePolicy::FIG13,
        ] {
            assert_eq!(
                HandsetConfig::parse_policy(&HandsetConfig::policy_name(&p)),
                Some(p)
            );
        }
        let p = HandsetConfig::parse_policy("pin+listed").unwrap();
        assert!(p.pin && p.terminal_listed && !p.terminal_password);
        assert_eq!(HandsetConfig::parse_policy("pin+bogus"), None);
    }

    #[test]
    fn one_sim_slot() {
        let d = tempfile::tempdir().unwrap();
        let mut h = FsHandset::init(
            &d.path().join("h"),
            "IMEI:1",
            "pw",
            HandsetConfig::new("http://x/"),
        )
        .unwrap();
        FsSim::create(&d.path().join("sim"), "001", "1234").unwrap();
        assert_eq!(h.remove_sim(), Err(HandsetError::NoSim));
        h.insert_sim(&d.path().join("sim")).unwrap();
        assert!(matches!(
            h.insert_sim(&d.path().join("sim")),
            Err(HandsetError::SimPresent(_))
        ));
        h.register(Some("1234"), Some("pw"), true, true).unwrap();
        let sim = h.sim().unwrap().unwrap();
        assert_eq!(
            crate::Sim::registered_terminal_ids(&sim),
            vec!["IMEI:1".to_string()]
        );
        assert!(h.remove_sim().is_ok());
        assert!(h.sim().unwrap().is_none());
        assert!(matches!(
            h.register(Some("1234"), Some("pw"), true, false),
            Err(HandsetError::NoSim)
        ));
    }
}

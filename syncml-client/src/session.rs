//! The client DS session, sans I/O: decoded server messages in, our next message out.
//!
//! [`ClientSession::start`] gives package 1; each [`ClientSession::handle`] takes the
//! server's reply and returns either the next message to post ([`Step::Send`]) or the end
//! of the session ([`Step::Done`]). The session never touches a socket or a clock: the
//! caller posts the messages (see [`crate::Engine`] for the driver) and the time of the
//! session's anchors comes in [`SessionConfig::now`].
//!
//! Packages (OMA DS 1.2 / SyncML Sync Protocol §4-§5):
//!
//! | package | we send | |
//! |---|---|---|
//! | 1 | `Cred`, DevInf `Put`, one `Alert` per store with `Last`/`Next` anchors | CLI-03, CLI-04 |
//! | 3 | statuses for package 2, cached `Map`s, one `Sync` per store | CLI-06, CLI-07, CLI-10 |
//! | 5 | statuses for package 4, `Map`s for the server's `Add`s | CLI-09 |
//!
//! A server message without `Final` is answered with our statuses and `Alert 222`; our
//! own package is split under the server's `MaxMsgSize` and sent message by message.
//! On `401`/`407` with a challenge, package 1 is sent once more with credentials built
//! from the new nonce (as SyncEvolution does); a second refusal ends the session.
//!
//! Titles first ([`crate::summary`]): a store in [`SessionConfig::titles_first`] asks for
//! summaries with a field filter in its Alert; [`ClientSession::body_fetch`] is a session
//! whose package 1 is a single `Get` of one item's body.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use syncml_core::auth::{self, Secret};
use syncml_core::model::{
    Alert, Anchor, Command, Cred, CtTypeVer, Data, DataStore as DevInfStore, Delete, DevInf,
    GetPut, Item, ItemCommand, Map, MapItem, Meta, Results, Source, Status, Sync, SyncBody,
    SyncCap, SyncHdr, SyncMl, Target,
};
use syncml_core::size::{ChunkOutcome, Reassembler};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{AlertCode, Encoding, StatusCode};
use tracing::{debug, info, warn};

use crate::budget::{Budget, CutShort};
use crate::error::SessionError;
use crate::handset::{iso8601_basic, Warning};
use crate::mode::{AuthScheme, SyncMode};
use crate::store::{Applied, ChangeId, ChangeKind, DataStore, MapEntry, ServerChange, SyncState};
use crate::summary::{self, Fetch, TitlesFirst};

/// The DevInf URI of SyncML 1.2.
const DEVINF_URI: &str = "./devinf12";
/// Most map items per `Map` command (so a large package 5 can be split across messages).
const MAP_ITEMS_PER_COMMAND: usize = 200;
/// Largest message we accept when the server states no MaxMsgSize for itself.
const DEFAULT_SERVER_MAX_MSG: u64 = 64 * 1024;

/// Static device information for our DevInf (DEV-03).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// `Man`.
    pub manufacturer: String,
    /// `Mod`.
    pub model: String,
    /// `SwV`.
    pub software_version: String,
    /// `DevTyp` (`phone`, `smartphone`, `pda`, `workstation`...).
    pub device_type: String,
}

impl Default for DeviceInfo {
    fn default() -> DeviceInfo {
        DeviceInfo {
            manufacturer: "syncml-rs".into(),
            model: "syncml-client".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            device_type: "phone".into(),
        }
    }
}

/// Everything a session needs to know before it starts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The server's URL (`SyncHdr/Target` of package 1).
    pub server_url: String,
    /// Our `SessionID`.
    pub session_id: String,
    /// The terminal ID (`SyncHdr/Source/LocURI`, DevInf `DevID`).
    pub terminal_id: String,
    /// The user: the SIM's subscriber ID (`SyncHdr/Source/LocName`).
    pub user: String,
    /// The secret behind the credentials (the terminal password).
    pub password: Secret<String>,
    /// The authentication scheme.
    pub auth: AuthScheme,
    /// Allow `syncml:auth-basic` over plain `http://` (it sends the password in clear).
    pub allow_basic_without_tls: bool,
    /// The encoding of our messages.
    pub encoding: Encoding,
    /// `MaxMsgSize` we announce (the largest message we accept).
    pub max_msg_size: u64,
    /// `MaxObjSize` we announce.
    pub max_obj_size: u64,
    /// The last `NextNonce` (Base64 text) the server gave us, for the md5 credential.
    pub nonce: Option<String>,
    /// Static device information.
    pub device: DeviceInfo,
    /// The time (Unix seconds) the session starts: our `Next` anchors derive from it.
    pub now: i64,
    /// The subscriber's PIN, sent with the credentials as the PIN extension
    /// ([`syncml_core::auth::pin`]) for servers at security level 2; `None` sends none.
    pub pin: Option<Secret<String>>,
    /// Titles first, per store local URI (`./contacts`): the store downloads summaries
    /// (see [`crate::summary`]). Only for stores that
    /// [support summaries](DataStore::supports_summaries).
    pub titles_first: BTreeMap<String, TitlesFirst>,
}

impl SessionConfig {
    /// A configuration with md5 auth, XML, 64 KiB messages and the given identities.
    pub fn new(
        server_url: impl Into<String>,
        terminal_id: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> SessionConfig {
        SessionConfig {
            server_url: server_url.into(),
            session_id: "1".into(),
            terminal_id: terminal_id.into(),
            user: user.into(),
            password: Secret::new(password.into()),
            auth: AuthScheme::Md5,
            allow_basic_without_tls: false,
            encoding: Encoding::Xml,
            max_msg_size: 64 * 1024,
            max_obj_size: 4 * 1024 * 1024,
            nonce: None,
            device: DeviceInfo::default(),
            now: 0,
            pin: None,
            titles_first: BTreeMap::new(),
        }
    }
}

/// One message to post.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Where to post it (the server URL, or its `RespURI`).
    pub url: String,
    /// The encoding to post it in.
    pub encoding: Encoding,
    /// The message.
    pub message: SyncMl,
}

impl Outgoing {
    /// The `Content-Type` to post with.
    pub fn content_type(&self) -> &'static str {
        self.encoding.mime_type()
    }

    /// The message's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SessionError> {
        syncml_core::encode(&self.message, self.encoding)
            .map_err(|e| SessionError::Encode(e.to_string()))
    }
}

/// What to do after a server message.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Post this message and feed the reply to [`ClientSession::handle`].
    Send(Outgoing),
    /// The session is over (nothing more to send).
    Done(SessionReport),
}

/// Items counted by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Adds.
    pub added: usize,
    /// Replaces.
    pub replaced: usize,
    /// Deletes.
    pub deleted: usize,
}

impl Counts {
    /// All of them.
    pub fn total(&self) -> usize {
        self.added + self.replaced + self.deleted
    }
}

/// The outcome of a session for one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    /// The store's local URI.
    pub local_uri: String,
    /// The mode we asked for.
    pub requested: SyncMode,
    /// The mode the server alerted (after a 508 fallback, `Slow`); `None` if none.
    pub mode: Option<SyncMode>,
    /// The server's error status for the store, if it refused it.
    pub failed: Option<StatusCode>,
    /// Changes we sent.
    pub sent: Counts,
    /// Changes we received and applied.
    pub received: Counts,
    /// Sent changes the server refused (they stay pending).
    pub rejected: usize,
    /// Map items the server acknowledged.
    pub maps_acknowledged: usize,
    /// The `NumberOfChanges` the server announced in its package 4 for this store.
    pub server_changes: Option<u32>,
    /// Local changes left out of package 3 by a [`Budget`] (still pending).
    pub unsent: usize,
}

/// The outcome of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// Per store, in the order given.
    pub stores: Vec<StoreReport>,
    /// Warnings for the user (conflicts the server resolved).
    pub warnings: Vec<Warning>,
    /// Messages we posted.
    pub messages_sent: u32,
    /// Set when a [`Budget`] stopped the session before it moved everything.
    pub cut_short: Option<CutShort>,
}

impl SessionReport {
    /// True when every store synced.
    pub fn is_success(&self) -> bool {
        self.stores
            .iter()
            .all(|s| s.failed.is_none() && s.mode.is_some())
    }

    /// Items sent over all stores.
    pub fn sent(&self) -> usize {
        self.stores.iter().map(|s| s.sent.total()).sum()
    }

    /// Items received over all stores.
    pub fn received(&self) -> usize {
        self.stores.iter().map(|s| s.received.total()).sum()
    }

    /// Server changes announced but not received (a cut-short download or a probe), per
    /// store local URI.
    pub fn server_changes_left(&self) -> Vec<(String, usize)> {
        self.stores
            .iter()
            .filter_map(|s| {
                let announced = s.server_changes? as usize;
                let left = announced.saturating_sub(s.received.total());
                (left > 0).then(|| (s.local_uri.clone(), left))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `start` not called yet.
    Created,
    /// Package 1 sent; waiting for package 2.
    Init,
    /// Sending a package over several messages; `after` is the phase once it is out.
    Sending { after: AfterSend },
    /// Package 3 sent; waiting for package 4.
    AwaitServerSync,
    /// Package 5 sent; waiting for package 6.
    AwaitMapStatus,
    /// Alert 224 sent (a [`Budget`] stopped the download); waiting for its status.
    AwaitSuspend,
    /// Over.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterSend {
    ServerSync,
    MapStatus,
}

/// What a command we sent was, to match the server's status to it.
#[derive(Debug, Clone)]
enum SentRef {
    Alert(usize),
    Sync(usize),
    Change(usize, ChangeId),
    Map(usize, Vec<MapEntry>),
    Fetch,
}

/// One store's run through the session.
#[derive(Debug, Clone)]
struct DsRun {
    local_uri: String,
    server_uri: String,
    content_type: String,
    requested: SyncMode,
    state: SyncState,
    next_anchor: String,
    mode: Option<SyncMode>,
    server_next: Option<String>,
    failed: Option<StatusCode>,
    erased: bool,
    /// Changes whose success status arrived.
    acked: Vec<ChangeId>,
    /// All pending changes at package 3 (slow sync and refresh from client send all).
    snapshot: Vec<ChangeId>,
    /// Maps from this session's server Adds.
    new_maps: Vec<MapEntry>,
    /// Maps the server acknowledged (this session's and cached ones).
    maps_acked: HashSet<MapEntry>,
    sent: Counts,
    received: Counts,
    rejected: usize,
    /// The server's NumberOfChanges for this store.
    announced: Option<u32>,
    /// Changes left out by the upload budget.
    unsent: usize,
    /// Items still to send in this package, read one message at a time (slow sync or
    /// refresh from client of a store that lists its LUIDs).
    stream: VecDeque<String>,
}

#[derive(Debug, Clone, Default)]
struct AuthState {
    /// Send `Cred` in the next message.
    send_cred: bool,
    /// The scheme in use (after a challenge, the challenged one).
    scheme: AuthScheme,
    /// The decoded nonce for the md5 credential.
    nonce: Vec<u8>,
    /// The latest `NextNonce` text the server gave (to keep for the next session).
    next_nonce: Option<String>,
    /// We already retried package 1 after a refusal.
    retried: bool,
}

/// A client DS session (see the module docs).
#[derive(Debug)]
pub struct ClientSession {
    cfg: SessionConfig,
    phase: Phase,
    msg_id: u32,
    url: String,
    server_max_msg: Option<u64>,
    auth: AuthState,
    ds: Vec<DsRun>,
    /// Package 1's commands, for the retry after an auth refusal.
    pkg1: Vec<Command>,
    /// The rest of the package being sent, one entry per message.
    outbox: VecDeque<Vec<Command>>,
    sent: HashMap<(u32, String), SentRef>,
    reassembler: Reassembler,
    warnings: Vec<Warning>,
    messages_sent: u32,
    budget: Budget,
    /// The latest time the driver gave ([`ClientSession::set_time`]).
    now: i64,
    /// Payload bytes sent and applied.
    up_bytes: u64,
    down_bytes: u64,
    /// Changes put in package 3 (the first always goes, whatever the budget).
    changes_up: usize,
    download_start: Option<i64>,
    cut: Option<CutShort>,
    /// The last message emitted, sent again when the server answers it "busy" (101).
    last_sent: Option<Outgoing>,
    /// Busy answers in a row.
    busy: u32,
    /// A body fetch session ([`ClientSession::body_fetch`]).
    fetch: Option<Fetch>,
}

/// Busy answers (SyncHdr 101) in a row after which the session gives up.
pub const MAX_BUSY_ANSWERS: u32 = 20;

fn status_for(server_msg: &str, cmd: &Command, item: Option<&Item>, code: StatusCode) -> Status {
    let mut s = Status::new("", server_msg, cmd.cmd_id(), cmd.name(), code);
    let item = item.or_else(|| (cmd.items().len() == 1).then(|| &cmd.items()[0]));
    if let Some(it) = item {
        if let Some(t) = &it.target {
            s.target_refs.push(t.loc_uri.clone());
        }
        if let Some(src) = &it.source {
            s.source_refs.push(src.loc_uri.clone());
        }
    }
    s
}

/// The item's bytes, Base64-decoded when its `Format` says `b64`.
pub(crate) fn item_bytes(item: &Item, cmd_meta: Option<&Meta>) -> Option<Vec<u8>> {
    let b64 = item
        .meta
        .as_ref()
        .and_then(|m| m.format.as_deref())
        .or_else(|| cmd_meta.and_then(|m| m.format.as_deref()))
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("b64"));
    let raw = item.data.as_ref()?.as_bytes()?;
    if b64 {
        use base64::Engine as _;
        let cleaned: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        return base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .ok();
    }
    Some(raw.to_vec())
}

pub(crate) fn item_type(item: &Item, cmd_meta: Option<&Meta>) -> Option<String> {
    item.meta
        .as_ref()
        .and_then(|m| m.r#type.clone())
        .or_else(|| cmd_meta.and_then(|m| m.r#type.clone()))
}

/// Our item data: text when UTF-8, else opaque bytes (WBXML) or Base64 (XML).
fn data_item(luid: &str, bytes: Option<Vec<u8>>, encoding: Encoding) -> Item {
    let mut item = Item {
        source: Some(Source::new(luid)),
        ..Item::default()
    };
    if let Some(bytes) = bytes {
        match (String::from_utf8(bytes), encoding) {
            (Ok(s), _) => item.data = Some(Data::Text(s)),
            (Err(e), Encoding::Wbxml) => item.data = Some(Data::Binary(e.into_bytes())),
            (Err(e), Encoding::Xml) => {
                use base64::Engine as _;
                item.data = Some(Data::Text(
                    base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                ));
                item.meta = Some(Meta {
                    format: Some("b64".into()),
                    ..Meta::default()
                });
            }
        }
    }
    item
}

fn number(commands: &mut [Command], next: &mut u32) {
    for c in commands {
        *next += 1;
        c.set_cmd_id(next.to_string());
        match c {
            Command::Sync(s) => number(&mut s.commands, next),
            Command::Atomic(a) | Command::Sequence(a) => number(&mut a.commands, next),
            _ => {}
        }
    }
}

impl ClientSession {
    /// A session over the stores that will be passed to [`start`](Self::start), with the
    /// mode wanted for each (same order).
    pub fn new(cfg: SessionConfig, modes: &[SyncMode]) -> ClientSession {
        let url = cfg.server_url.clone();
        let auth = AuthState {
            send_cred: cfg.auth != AuthScheme::None,
            scheme: cfg.auth,
            nonce: cfg
                .nonce
                .as_deref()
                .and_then(|n| auth::nonce::decode_next_nonce(n).ok())
                .unwrap_or_default(),
            next_nonce: cfg.nonce.clone(),
            retried: false,
        };
        ClientSession {
            ds: modes
                .iter()
                .map(|m| DsRun {
                    local_uri: String::new(),
                    server_uri: String::new(),
                    content_type: String::new(),
                    requested: *m,
                    state: SyncState::default(),
                    next_anchor: String::new(),
                    mode: None,
                    server_next: None,
                    failed: None,
                    erased: false,
                    acked: Vec::new(),
                    snapshot: Vec::new(),
                    new_maps: Vec::new(),
                    maps_acked: HashSet::new(),
                    sent: Counts::default(),
                    received: Counts::default(),
                    rejected: 0,
                    announced: None,
                    unsent: 0,
                    stream: VecDeque::new(),
                })
                .collect(),
            reassembler: Reassembler::new(Some(cfg.max_obj_size)),
            cfg,
            phase: Phase::Created,
            msg_id: 0,
            url,
            server_max_msg: None,
            auth,
            pkg1: Vec::new(),
            outbox: VecDeque::new(),
            sent: HashMap::new(),
            warnings: Vec::new(),
            messages_sent: 0,
            budget: Budget::UNLIMITED,
            now: 0,
            up_bytes: 0,
            down_bytes: 0,
            changes_up: 0,
            download_start: None,
            cut: None,
            last_sent: None,
            busy: 0,
            fetch: None,
        }
    }

    /// A session that only fetches the full body of item `luid` of the server datastore
    /// `server_uri` (titles first, see [`crate::summary`]): package 1 is one `Get`, and
    /// [`start`](Self::start) / [`handle`](Self::handle) take no stores. Read the outcome
    /// with [`fetched_body`](Self::fetched_body) once the session is done.
    pub fn body_fetch(cfg: SessionConfig, server_uri: &str, luid: &str) -> ClientSession {
        let mut s = ClientSession::new(cfg, &[]);
        s.fetch = Some(Fetch::new(summary::body_uri(server_uri, luid)));
        s
    }

    /// The outcome of a [`body_fetch`](Self::body_fetch) session: the body and its MIME
    /// type, `None` when the server has no such item (404), or the server's error status.
    pub fn fetched_body(&mut self) -> Result<Option<summary::Body>, StatusCode> {
        match &mut self.fetch {
            Some(f) => f.outcome(),
            None => Err(StatusCode::COMMAND_FAILED),
        }
    }

    /// Limits this session (see [`crate::budget`]); call before [`start`](Self::start).
    pub fn set_budget(&mut self, budget: Budget) {
        self.budget = budget;
    }

    /// Tells the session the time (Unix seconds) before each [`handle`](Self::handle),
    /// for the time limits of its [`Budget`]. Without it the session's start time
    /// ([`SessionConfig::now`]) is used.
    pub fn set_time(&mut self, now: i64) {
        self.now = now;
    }

    /// The latest `NextNonce` the server gave (Base64 text): keep it for the next
    /// session's [`SessionConfig::nonce`], whatever the outcome.
    pub fn next_nonce(&self) -> Option<&str> {
        self.auth.next_nonce.as_deref()
    }

    /// True once the session is over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    fn header(&mut self) -> SyncHdr {
        self.msg_id += 1;
        let mut h = SyncHdr::new(
            SyncMlVersion::V1_2,
            self.cfg.session_id.clone(),
            self.msg_id.to_string(),
            self.url.clone(),
            self.cfg.terminal_id.clone(),
        );
        h.source.loc_name = Some(self.cfg.user.clone());
        h.meta = Some(Meta {
            max_msg_size: Some(self.cfg.max_msg_size),
            max_obj_size: Some(self.cfg.max_obj_size),
            ..Meta::default()
        });
        if self.auth.send_cred {
            h.cred = self.cred();
            if let (Some(pin), Some(meta)) = (&self.cfg.pin, h.meta.as_mut()) {
                if h.cred.is_some() {
                    meta.emi.push(auth::pin::emi(
                        &self.cfg.user,
                        pin.expose(),
                        &self.auth.nonce,
                    ));
                }
            }
        }
        h
    }

    fn cred(&self) -> Option<Cred> {
        let user = &self.cfg.user;
        let pw = self.cfg.password.expose();
        match self.auth.scheme {
            AuthScheme::Md5 => Some(Cred {
                meta: Some(Meta {
                    format: Some(auth::FORMAT_B64.into()),
                    r#type: Some(auth::TYPE_MD5.into()),
                    ..Meta::default()
                }),
                data: Data::Text(auth::md5::credential(user, pw, &self.auth.nonce)),
            }),
            AuthScheme::Basic => Some(Cred {
                meta: Some(Meta {
                    format: Some(auth::FORMAT_B64.into()),
                    r#type: Some(auth::TYPE_BASIC.into()),
                    ..Meta::default()
                }),
                data: Data::Text(auth::basic::encode(user, pw)),
            }),
            AuthScheme::None => None,
        }
    }

    fn is_tls(&self) -> bool {
        self.url.trim().to_ascii_lowercase().starts_with("https://")
    }

    fn devinf(&self) -> DevInf {
        let d = &self.cfg.device;
        DevInf {
            ver_dtd: "1.2".into(),
            man: Some(d.manufacturer.clone()),
            model: Some(d.model.clone()),
            sw_v: Some(d.software_version.clone()),
            dev_id: self.cfg.terminal_id.clone(),
            dev_typ: d.device_type.clone(),
            utc: true,
            support_number_of_changes: true,
            data_stores: self
                .ds
                .iter()
                .map(|ds| {
                    let ct = CtTypeVer {
                        ct_type: ds.content_type.clone(),
                        ver_ct: String::new(),
                    };
                    DevInfStore {
                        source_ref: ds.local_uri.clone(),
                        max_guid_size: Some(64),
                        rx_pref: ct.clone(),
                        tx_pref: ct,
                        sync_cap: SyncCap {
                            sync_types: ["1", "2", "3", "4", "5", "6", "7"]
                                .iter()
                                .map(|s| s.to_string())
                                .collect(),
                        },
                        ..DevInfStore::default()
                    }
                })
                .collect(),
            ..DevInf::default()
        }
    }

    /// Builds package 1. `stores` are the stores named in [`new`](Self::new), same order.
    pub fn start(&mut self, stores: &mut [&mut dyn DataStore]) -> Result<Outgoing, SessionError> {
        if self.phase != Phase::Created {
            return Err(SessionError::Protocol("start called twice".into()));
        }
        if stores.len() != self.ds.len() {
            return Err(SessionError::Protocol(format!(
                "{} stores given for {} modes",
                stores.len(),
                self.ds.len()
            )));
        }
        if self.auth.scheme == AuthScheme::Basic
            && !self.is_tls()
            && !self.cfg.allow_basic_without_tls
        {
            return Err(SessionError::BasicWithoutTls);
        }
        self.now = self.now.max(self.cfg.now);
        let base_anchor = iso8601_basic(self.cfg.now);
        for (ds, store) in self.ds.iter_mut().zip(stores.iter_mut()) {
            ds.local_uri = store.local_uri().to_string();
            ds.server_uri = store.server_uri().to_string();
            ds.content_type = store.content_type().0.to_string();
            ds.state = store.sync_state()?;
            // Anchors only need to differ from the last one.
            let mut next = base_anchor.clone();
            let mut n = 1;
            while ds.state.last_anchor.as_deref() == Some(next.as_str()) {
                next = format!("{base_anchor}.{n}");
                n += 1;
            }
            ds.next_anchor = next;
        }
        let mut cmds = match &self.fetch {
            Some(f) => vec![f.command()],
            None => vec![Command::Put(GetPut {
                meta: Some(Meta::of_type(self.cfg.encoding.devinf_mime_type())),
                items: vec![Item {
                    source: Some(Source::new(DEVINF_URI)),
                    data: Some(Data::DevInf(Box::new(self.devinf()))),
                    ..Item::default()
                }],
                ..GetPut::default()
            })],
        };
        for (ds, store) in self.ds.iter().zip(stores.iter_mut()) {
            let mut code = ds.requested;
            if ds.state.last_anchor.is_none() && code == SyncMode::TwoWay {
                code = SyncMode::Slow;
            }
            let titles = self
                .cfg
                .titles_first
                .get(&ds.local_uri)
                .filter(|_| store.supports_summaries());
            if code == SyncMode::RefreshFromClient && store.supports_summaries() {
                let items = store.all_items()?;
                for it in items {
                    if store.is_summary(&it.luid)? {
                        return Err(SessionError::SummariesHeld {
                            store: ds.local_uri.clone(),
                        });
                    }
                }
            }
            let mut target = Target::new(ds.server_uri.clone());
            target.filter = titles.map(|t| Box::new(t.filter(&ds.content_type, self.cfg.encoding)));
            // A suspended session of the same mode is resumed (Alert 225, SUS-04); the
            // server answers 200 and its sync type, or 509/508 and another sync.
            let alert = if ds.state.suspended == Some(code) && ds.state.last_anchor.is_some() {
                info!(store = %ds.local_uri, mode = ?code, "resuming the suspended session");
                AlertCode::RESUME
            } else {
                code.alert_code()
            };
            cmds.push(Command::Alert(Alert {
                data: Some(alert),
                items: vec![Item {
                    target: Some(target),
                    source: Some(Source::new(ds.local_uri.clone())),
                    meta: Some(Meta {
                        anchor: Some(Anchor {
                            last: ds.state.last_anchor.clone(),
                            next: ds.next_anchor.clone(),
                        }),
                        max_obj_size: Some(self.cfg.max_obj_size),
                        ..Meta::default()
                    }),
                    ..Item::default()
                }],
                ..Alert::default()
            }));
        }
        self.pkg1 = cmds.clone();
        self.phase = Phase::Init;
        info!(url = %self.url, stores = self.ds.len(), "package 1");
        Ok(self.emit(Vec::new(), cmds, true))
    }

    /// Numbers, records and wraps one message.
    fn emit(&mut self, statuses: Vec<Status>, body: Vec<Command>, is_final: bool) -> Outgoing {
        let header = self.header();
        let mut commands: Vec<Command> = statuses.into_iter().map(Command::Status).collect();
        commands.extend(body);
        let mut next = 0;
        number(&mut commands, &mut next);
        let msg = self.msg_id;
        for c in &commands {
            self.record(msg, c);
        }
        self.messages_sent += 1;
        let out = Outgoing {
            url: self.url.clone(),
            encoding: self.cfg.encoding,
            message: SyncMl {
                header,
                body: SyncBody { commands, is_final },
            },
        };
        self.last_sent = Some(out.clone());
        out
    }

    fn ds_index(&self, local: Option<&str>, server: Option<&str>) -> Option<usize> {
        let norm = |s: &str| s.trim().trim_start_matches("./").to_ascii_lowercase();
        if let Some(l) = local {
            if let Some(i) = self.ds.iter().position(|d| norm(&d.local_uri) == norm(l)) {
                return Some(i);
            }
        }
        let s = server?;
        self.ds.iter().position(|d| norm(&d.server_uri) == norm(s))
    }

    fn record(&mut self, msg: u32, c: &Command) {
        let key = (msg, c.cmd_id().to_string());
        match c {
            Command::Alert(a) => {
                let it = a.items.first();
                let i = self.ds_index(
                    it.and_then(|i| i.source.as_ref())
                        .map(|s| s.loc_uri.as_str()),
                    it.and_then(|i| i.target.as_ref())
                        .map(|t| t.loc_uri.as_str()),
                );
                if let Some(i) = i {
                    self.sent.insert(key, SentRef::Alert(i));
                }
            }
            Command::Sync(s) => {
                let Some(i) = self.ds_index(
                    s.source.as_ref().map(|x| x.loc_uri.as_str()),
                    s.target.as_ref().map(|x| x.loc_uri.as_str()),
                ) else {
                    return;
                };
                self.sent.insert(key, SentRef::Sync(i));
                for inner in &s.commands {
                    let Some(luid) = inner
                        .items()
                        .first()
                        .and_then(|it| it.source.as_ref())
                        .map(|s| s.loc_uri.clone())
                    else {
                        continue;
                    };
                    let version = self.pending_version(i, &luid);
                    self.sent.insert(
                        (msg, inner.cmd_id().to_string()),
                        SentRef::Change(i, ChangeId { luid, version }),
                    );
                }
            }
            Command::Map(m) => {
                if let Some(i) = self.ds_index(Some(&m.source.loc_uri), Some(&m.target.loc_uri)) {
                    let entries = m
                        .map_items
                        .iter()
                        .map(|mi| MapEntry {
                            guid: mi.target.loc_uri.clone(),
                            luid: mi.source.loc_uri.clone(),
                        })
                        .collect();
                    self.sent.insert(key, SentRef::Map(i, entries));
                }
            }
            Command::Get(_) if self.fetch.is_some() => {
                self.sent.insert(key, SentRef::Fetch);
            }
            _ => {}
        }
    }

    fn pending_version(&self, ds: usize, luid: &str) -> u64 {
        self.ds[ds]
            .snapshot
            .iter()
            .find(|c| c.luid == luid)
            .map_or(0, |c| c.version)
    }

    /// Takes the server's reply to our last message.
    pub fn handle(
        &mut self,
        msg: SyncMl,
        stores: &mut [&mut dyn DataStore],
    ) -> Result<Step, SessionError> {
        match self.phase {
            Phase::Done => return Err(SessionError::Finished),
            Phase::Created => return Err(SessionError::Protocol("handle before start".into())),
            _ => {}
        }
        if stores.len() != self.ds.len() {
            return Err(SessionError::Protocol("store list changed".into()));
        }
        let server_msg = msg.header.msg_id.clone();
        debug!(msg_id = %server_msg, commands = msg.body.commands.len(), is_final = msg.body.is_final, "server message");

        // The header status (our credentials) first.
        let our_msg = self.msg_id.to_string();
        let hdr_status = msg.body.commands.iter().find_map(|c| match c {
            Command::Status(s) if s.is_for_header() && s.msg_ref.trim() == our_msg => Some(s),
            _ => None,
        });
        if let Some(s) = hdr_status {
            if let Some(chal) = &s.chal {
                if let Some(n) = chal.meta.next_nonce.as_deref() {
                    self.auth.next_nonce = Some(n.trim().to_string());
                    if let Ok(bytes) = auth::nonce::decode_next_nonce(n) {
                        self.auth.nonce = bytes;
                    }
                }
            }
            if s.data.0 == 101 {
                // Busy signalling (SP11 §2.12.1): the server processed nothing of our
                // message and wants it again, unchanged.
                self.busy += 1;
                if self.busy > MAX_BUSY_ANSWERS {
                    warn!(answers = self.busy, "server stays busy; giving up");
                    self.phase = Phase::Done;
                    return Err(SessionError::ServerRefused(s.data));
                }
                if let Some(out) = &self.last_sent {
                    debug!(
                        answers = self.busy,
                        "server busy; sending our message again"
                    );
                    return Ok(Step::Send(out.clone()));
                }
            }
            self.busy = 0;
            match s.data.0 {
                212 => self.auth.send_cred = false,
                200 => {}
                401 | 407 => {
                    let chal_type = s.chal.as_ref().and_then(|c| c.meta.r#type.clone());
                    return self.auth_refused(s.data, chal_type.as_deref());
                }
                code if StatusCode(code).is_error() => {
                    warn!(code, "server refused our message header");
                    self.phase = Phase::Done;
                    return Err(SessionError::ServerRefused(s.data));
                }
                _ => {}
            }
        }
        if let Some(r) = &msg.header.resp_uri {
            if !r.trim().is_empty() {
                self.url = r.trim().to_string();
            }
        }
        if let Some(m) = msg.header.meta.as_ref().and_then(|m| m.max_msg_size) {
            self.server_max_msg = Some(m);
        }

        let mut statuses = vec![{
            let mut s = Status::new("", &server_msg, "0", "SyncHdr", StatusCode::OK);
            s.target_refs.push(msg.header.target.loc_uri.clone());
            s.source_refs.push(msg.header.source.loc_uri.clone());
            s
        }];
        let mut extra: Vec<Command> = Vec::new();
        let is_final = msg.body.is_final;
        for cmd in msg.body.commands {
            // Commands the server marked NoResp get no status (Sync handles its own).
            let before = statuses.len();
            match &cmd {
                Command::Status(s) => self.on_status(s),
                Command::Alert(a) => {
                    let st = self.on_alert(&server_msg, &cmd, a);
                    statuses.push(st);
                }
                Command::Put(_) | Command::Results(_) => {
                    if let (Command::Results(r), Some(f)) = (&cmd, &mut self.fetch) {
                        f.on_results(r);
                    }
                    statuses.push(status_for(&server_msg, &cmd, None, StatusCode::OK));
                }
                Command::Get(g) => {
                    let target = g
                        .items
                        .first()
                        .and_then(|i| i.target.as_ref())
                        .map(|t| t.loc_uri.trim().to_string())
                        .unwrap_or_default();
                    if target.starts_with("./devinf") {
                        statuses.push(status_for(&server_msg, &cmd, None, StatusCode::OK));
                        extra.push(Command::Results(Results {
                            cmd_id: String::new(),
                            msg_ref: server_msg.clone(),
                            cmd_ref: g.cmd_id.clone(),
                            meta: Some(Meta::of_type(self.cfg.encoding.devinf_mime_type())),
                            target_ref: None,
                            source_ref: None,
                            items: vec![Item {
                                source: Some(Source::new(DEVINF_URI)),
                                data: Some(Data::DevInf(Box::new(self.devinf()))),
                                ..Item::default()
                            }],
                        }));
                    } else {
                        statuses.push(status_for(&server_msg, &cmd, None, StatusCode::NOT_FOUND));
                    }
                }
                Command::Sync(s) => {
                    self.note_announced(s);
                    if self.budget.probe && self.phase == Phase::AwaitServerSync {
                        // A probe applies nothing (and the session is suspended below).
                        continue;
                    }
                    self.on_sync(&server_msg, s, stores, &mut statuses)?
                }
                _ => statuses.push(status_for(
                    &server_msg,
                    &cmd,
                    None,
                    StatusCode::COMMAND_NOT_ALLOWED,
                )),
            }
            if cmd.no_resp() && !matches!(cmd, Command::Sync(_)) {
                statuses.truncate(before);
            }
        }

        match self.phase {
            Phase::Init => {
                if !is_final {
                    return Ok(Step::Send(self.next_message_alert(statuses, extra)));
                }
                let body = self.package3(stores)?;
                if body.is_empty() && extra.is_empty() {
                    // Every store was refused: nothing to sync (CLI-17: no status-only message).
                    self.phase = Phase::Done;
                    return Ok(Step::Done(self.report()));
                }
                let mut all = extra;
                all.extend(body);
                self.send_package(statuses, all, AfterSend::ServerSync)
            }
            Phase::Sending { after } => {
                // A slow sync or refresh from client must send every item (the server
                // matches or keeps exactly what it gets): never cut short.
                let sends_all = self
                    .ds
                    .iter()
                    .any(|d| d.mode.is_some_and(SyncMode::sends_all));
                if after == AfterSend::ServerSync
                    && !sends_all
                    && self
                        .budget
                        .upload_deadline(self.cfg.now)
                        .is_some_and(|d| self.now >= d)
                {
                    // Out of time: this message ends package 3; what was not sent stays
                    // pending.
                    info!(
                        messages_dropped = self.outbox.len(),
                        "upload time budget spent"
                    );
                    let dropped: Vec<Vec<Command>> = self.outbox.drain(..).collect();
                    for part in &dropped {
                        self.uncount(part);
                    }
                    self.cut = Some(CutShort::UploadTime);
                    self.phase = after_phase(after);
                    return Ok(Step::Send(self.emit(statuses, extra, true)));
                }
                if self.outbox.is_empty() {
                    self.refill(stores)?;
                }
                let Some(part) = self.outbox.pop_front() else {
                    return Err(SessionError::Protocol("nothing left to send".into()));
                };
                let last = self.outbox.is_empty() && !self.streaming();
                if last {
                    self.phase = after_phase(after);
                }
                let mut part_all = extra;
                part_all.extend(part);
                Ok(Step::Send(self.emit(statuses, part_all, last)))
            }
            Phase::AwaitServerSync => {
                let started = *self.download_start.get_or_insert(self.now);
                if self.budget.probe {
                    return Ok(self.suspend(statuses, extra, CutShort::Probe));
                }
                if !is_final {
                    if self
                        .budget
                        .download_left(self.up_bytes, self.down_bytes)
                        .is_some_and(|l| l == 0)
                    {
                        return Ok(self.suspend(statuses, extra, CutShort::DownloadBytes));
                    }
                    if self
                        .budget
                        .download_deadline(self.cfg.now, started)
                        .is_some_and(|d| self.now >= d)
                    {
                        return Ok(self.suspend(statuses, extra, CutShort::DownloadTime));
                    }
                    return Ok(Step::Send(self.next_message_alert(statuses, extra)));
                }
                let mut body = extra;
                body.extend(self.package5());
                if body.is_empty() && statuses.len() == 1 {
                    // The server's final message held only statuses and we have no maps:
                    // nothing needs an answer, and a Synthesis-based server has already
                    // closed the session (CLI-17: no status-only message).
                    self.complete(stores)?;
                    return Ok(Step::Done(self.report()));
                }
                self.send_package(statuses, body, AfterSend::MapStatus)
            }
            Phase::AwaitMapStatus => {
                if !is_final {
                    return Ok(Step::Send(self.next_message_alert(statuses, extra)));
                }
                self.complete(stores)?;
                Ok(Step::Done(self.report()))
            }
            Phase::AwaitSuspend => {
                self.complete_suspended(stores)?;
                Ok(Step::Done(self.report()))
            }
            Phase::Created | Phase::Done => Err(SessionError::Finished),
        }
    }

    fn auth_refused(
        &mut self,
        code: StatusCode,
        chal_type: Option<&str>,
    ) -> Result<Step, SessionError> {
        let challenged = match chal_type.map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case(auth::TYPE_MD5) => Some(AuthScheme::Md5),
            Some(t) if t.eq_ignore_ascii_case(auth::TYPE_BASIC) => Some(AuthScheme::Basic),
            _ => None,
        };
        let can_retry = self.phase == Phase::Init && !self.auth.retried && challenged.is_some();
        if !can_retry {
            warn!(code = code.0, "authentication failed");
            self.phase = Phase::Done;
            return Err(SessionError::AuthFailed(code));
        }
        if let Some(s) = challenged {
            if s == AuthScheme::Basic && !self.is_tls() && !self.cfg.allow_basic_without_tls {
                self.phase = Phase::Done;
                return Err(SessionError::BasicWithoutTls);
            }
            self.auth.scheme = s;
        }
        self.auth.retried = true;
        self.auth.send_cred = true;
        info!(
            code = code.0,
            "credentials refused; retrying once with the new nonce"
        );
        let cmds = self.pkg1.clone();
        // As SyncEvolution does: the refused session is gone, so package 1 starts a new
        // session (next SessionID, MsgID 1) at the server's URL.
        self.url = self.cfg.server_url.clone();
        self.cfg.session_id = match self.cfg.session_id.trim().parse::<u64>() {
            Ok(n) => (n + 1).to_string(),
            Err(_) => format!("{}-2", self.cfg.session_id),
        };
        self.msg_id = 0;
        self.sent.clear();
        Ok(Step::Send(self.emit(Vec::new(), cmds, true)))
    }

    fn on_status(&mut self, s: &Status) {
        let Ok(msg) = s.msg_ref.trim().parse::<u32>() else {
            return;
        };
        let Some(r) = self.sent.get(&(msg, s.cmd_ref.trim().to_string())).cloned() else {
            return;
        };
        let code = s.data;
        match r {
            SentRef::Alert(i) => {
                if code == StatusCode::REFRESH_REQUIRED {
                    info!(store = %self.ds[i].local_uri, "server requires a slow sync (508)");
                } else if code.0 == 509 {
                    // Our Alert 225: the server has nothing to resume and proposes a
                    // sync of its own in its Alert (SUS-05).
                    info!(store = %self.ds[i].local_uri, "nothing to resume (509)");
                } else if code.is_error() {
                    warn!(store = %self.ds[i].local_uri, code = code.0, "server refused the store");
                    self.ds[i].failed = Some(code);
                }
            }
            SentRef::Sync(i) => {
                if code.is_error() {
                    warn!(store = %self.ds[i].local_uri, code = code.0, "server refused our Sync");
                    self.ds[i].failed = Some(code);
                }
            }
            SentRef::Change(i, id) => {
                let ds = &mut self.ds[i];
                if code.is_success() || code.0 == 418 || code.0 == 419 {
                    if code.0 == 419 {
                        self.warnings.push(Warning::ConflictResolvedByServer {
                            store: ds.local_uri.clone(),
                            luid: id.luid.clone(),
                        });
                    }
                    ds.acked.push(id);
                } else {
                    debug!(store = %ds.local_uri, luid = %id.luid, code = code.0, "change refused");
                    ds.rejected += 1;
                }
            }
            SentRef::Map(i, entries) => {
                if code.is_success() {
                    self.ds[i].maps_acked.extend(entries);
                }
            }
            SentRef::Fetch => {
                if let Some(f) = &mut self.fetch {
                    f.on_status(code);
                }
            }
        }
    }

    fn on_alert(&mut self, server_msg: &str, cmd: &Command, a: &Alert) -> Status {
        let code = a.data.unwrap_or(AlertCode(0));
        if code == AlertCode::NEXT_MESSAGE {
            return status_for(server_msg, cmd, None, StatusCode::OK);
        }
        let Some(mode) = SyncMode::from_alert(code) else {
            return status_for(
                server_msg,
                cmd,
                None,
                StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED,
            );
        };
        let item = a.items.first();
        let i = self.ds_index(
            item.and_then(|i| i.target.as_ref())
                .map(|t| t.loc_uri.as_str()),
            item.and_then(|i| i.source.as_ref())
                .map(|s| s.loc_uri.as_str()),
        );
        let Some(i) = i else {
            return status_for(server_msg, cmd, None, StatusCode::NOT_FOUND);
        };
        if self.phase != Phase::Init {
            return status_for(server_msg, cmd, None, StatusCode::COMMAND_NOT_ALLOWED);
        }
        let anchor = item
            .and_then(|i| i.meta.as_ref())
            .and_then(|m| m.anchor.clone());
        let ds = &mut self.ds[i];
        let mut mode = mode;
        let mut st = StatusCode::OK;
        if mode.needs_anchors() {
            let server_last = anchor
                .as_ref()
                .and_then(|a| a.last.as_deref())
                .map(str::trim);
            let ours = ds.state.server_anchor.as_deref().map(str::trim);
            if server_last != ours || ds.state.last_anchor.is_none() {
                // We lost track of the server: slow sync in the same message (CLI-11).
                info!(store = %ds.local_uri, ?server_last, ?ours, "anchor mismatch; answering 508 and slow syncing");
                mode = SyncMode::Slow;
                st = StatusCode::REFRESH_REQUIRED;
            }
        }
        ds.mode = Some(mode);
        ds.server_next = anchor.as_ref().map(|a| a.next.trim().to_string());
        debug!(store = %ds.local_uri, ?mode, "server alert");
        let mut s = status_for(server_msg, cmd, None, st);
        if let Some(next) = &ds.server_next {
            s.items = vec![Item {
                data: Some(Data::Anchor(Anchor {
                    last: None,
                    next: next.clone(),
                })),
                ..Item::default()
            }];
        }
        s
    }

    fn on_sync(
        &mut self,
        server_msg: &str,
        sync: &Sync,
        stores: &mut [&mut dyn DataStore],
        statuses: &mut Vec<Status>,
    ) -> Result<(), SessionError> {
        let i = self.ds_index(
            sync.target.as_ref().map(|t| t.loc_uri.as_str()),
            sync.source.as_ref().map(|s| s.loc_uri.as_str()),
        );
        let mut head = Status::new("", server_msg, &sync.cmd_id, "Sync", StatusCode::OK);
        head.target_refs
            .extend(sync.target.iter().map(|t| t.loc_uri.clone()));
        head.source_refs
            .extend(sync.source.iter().map(|s| s.loc_uri.clone()));
        let usable = i.filter(|&i| self.ds[i].mode.is_some() && self.ds[i].failed.is_none());
        let Some(i) = usable else {
            head.data = StatusCode::NOT_FOUND;
            if !sync.no_resp {
                statuses.push(head);
            }
            for c in &sync.commands {
                if !c.no_resp() {
                    statuses.push(status_for(server_msg, c, None, StatusCode::NOT_FOUND));
                }
            }
            return Ok(());
        };
        if !sync.no_resp {
            statuses.push(head);
        }
        let mode = self.ds[i].mode.unwrap_or(SyncMode::TwoWay);
        if mode == SyncMode::RefreshFromServer && !self.ds[i].erased {
            info!(store = %self.ds[i].local_uri, "refresh from server: erasing local data");
            stores[i].erase_local()?;
            self.ds[i].erased = true;
            self.ds[i].state.pending_maps.clear();
        }
        let receives = !matches!(
            mode,
            SyncMode::OneWayFromClient | SyncMode::RefreshFromClient
        );
        for c in &sync.commands {
            let (meta, kind) = match c {
                Command::Add(x) => (x.meta.as_ref(), ChangeKind::Add),
                Command::Replace(x) => (x.meta.as_ref(), ChangeKind::Replace),
                Command::Delete(d) => (d.meta.as_ref(), ChangeKind::Delete),
                _ => {
                    if !c.no_resp() {
                        statuses.push(status_for(
                            server_msg,
                            c,
                            None,
                            StatusCode::OPTIONAL_FEATURE_NOT_SUPPORTED,
                        ));
                    }
                    continue;
                }
            };
            for item in c.items() {
                let code = if receives {
                    self.apply_item(i, kind, item, meta, stores)
                } else {
                    StatusCode::COMMAND_NOT_ALLOWED
                };
                if !c.no_resp() {
                    statuses.push(status_for(server_msg, c, Some(item), code));
                }
            }
        }
        Ok(())
    }

    fn apply_item(
        &mut self,
        i: usize,
        kind: ChangeKind,
        item: &Item,
        meta: Option<&Meta>,
        stores: &mut [&mut dyn DataStore],
    ) -> StatusCode {
        let item = if kind == ChangeKind::Delete {
            item.clone()
        } else {
            match self.reassembler.push(item.clone()) {
                Ok(ChunkOutcome::NeedMore) => return StatusCode(213),
                Ok(ChunkOutcome::Complete(it)) => it,
                Err(e) => return e.status(),
            }
        };
        let target = item.target.as_ref().map(|t| t.loc_uri.trim().to_string());
        let source = item.source.as_ref().map(|s| s.loc_uri.trim().to_string());
        let change = match kind {
            ChangeKind::Add => {
                let Some(guid) = source.clone() else {
                    return StatusCode::INCOMPLETE_COMMAND;
                };
                let Some(data) = item_bytes(&item, meta) else {
                    return StatusCode::INCOMPLETE_COMMAND;
                };
                ServerChange::Add {
                    guid,
                    data,
                    content_type: item_type(&item, meta),
                }
            }
            ChangeKind::Replace => {
                let Some(luid) = target.clone() else {
                    return StatusCode::INCOMPLETE_COMMAND;
                };
                let Some(data) = item_bytes(&item, meta) else {
                    return StatusCode::INCOMPLETE_COMMAND;
                };
                ServerChange::Replace {
                    luid,
                    data,
                    content_type: item_type(&item, meta),
                }
            }
            ChangeKind::Delete => {
                let Some(luid) = target.clone().or(source.clone()) else {
                    return StatusCode::INCOMPLETE_COMMAND;
                };
                ServerChange::Delete { luid }
            }
        };
        let size = match &change {
            ServerChange::Add { data, .. } | ServerChange::Replace { data, .. } => {
                data.len() as u64
            }
            ServerChange::Delete { .. } => 0,
        };
        let ds = &mut self.ds[i];
        let applied = match summary::summary_size(&item) {
            Some(full) if kind != ChangeKind::Delete => stores[i].apply_summary(change, full),
            _ => stores[i].apply(change),
        };
        if applied.is_ok() {
            self.down_bytes += size;
        }
        match applied {
            Ok(Applied::Added { luid }) => {
                ds.received.added += 1;
                if let Some(guid) = source {
                    ds.new_maps.push(MapEntry { guid, luid });
                }
                StatusCode::ITEM_ADDED
            }
            Ok(Applied::ReplacedAsNew { luid }) => {
                ds.received.added += 1;
                if let Some(guid) = source.filter(|g| Some(g) != target.as_ref()) {
                    ds.new_maps.push(MapEntry { guid, luid });
                }
                StatusCode::ITEM_ADDED
            }
            Ok(Applied::Replaced) => {
                ds.received.replaced += 1;
                StatusCode::OK
            }
            Ok(Applied::Deleted) => {
                ds.received.deleted += 1;
                StatusCode::OK
            }
            Ok(Applied::NotFound) => StatusCode(211),
            Err(e) => {
                warn!(error = %e, "applying a server change failed");
                StatusCode::COMMAND_FAILED
            }
        }
    }

    /// Statuses plus `Alert 222`: "send the next message of your package".
    fn next_message_alert(&mut self, statuses: Vec<Status>, extra: Vec<Command>) -> Outgoing {
        let mut body = extra;
        body.push(Command::Alert(Alert {
            data: Some(AlertCode::NEXT_MESSAGE),
            items: vec![Item {
                target: Some(Target::new(self.url.clone())),
                source: Some(Source::new(self.cfg.terminal_id.clone())),
                ..Item::default()
            }],
            ..Alert::default()
        }));
        self.emit(statuses, body, false)
    }

    /// Package 3's commands: cached maps, then one Sync per store.
    fn package3(
        &mut self,
        stores: &mut [&mut dyn DataStore],
    ) -> Result<Vec<Command>, SessionError> {
        let enc = self.cfg.encoding;
        let mut out = Vec::new();
        for (i, store) in stores.iter_mut().enumerate() {
            let (mode, failed) = (self.ds[i].mode, self.ds[i].failed);
            let Some(mode) = mode else {
                if failed.is_none() {
                    // The server never alerted this store.
                    self.ds[i].failed = Some(StatusCode::NOT_FOUND);
                }
                continue;
            };
            if failed.is_some() {
                continue;
            }
            let per_map = self.map_items_per_command();
            let ds = &mut self.ds[i];
            if mode.needs_anchors() && !ds.state.pending_maps.is_empty() {
                for chunk in ds.state.pending_maps.chunks(per_map) {
                    out.push(map_command(ds, chunk));
                }
            } else if !mode.needs_anchors() {
                ds.state.pending_maps.clear();
            }
            let mut cmds = Vec::new();
            let default_type = ds.content_type.clone();
            let ctype =
                |t: Option<String>| Meta::of_type(t.unwrap_or_else(|| default_type.clone()));
            if self.budget.probe {
                // A probe only asks: even a slow sync sends no item.
                ds.snapshot.clear();
            } else if mode.sends_changes() {
                let changes = store.changes()?;
                ds.snapshot.clear();
                for c in changes {
                    if c.kind == ChangeKind::Replace && store.is_summary(&c.luid)? {
                        // Titles first: a summary must never overwrite the full item.
                        warn!(store = %ds.local_uri, luid = %c.luid, "edit of a summary-only item not uploaded");
                        self.warnings.push(Warning::SummaryNotUploaded {
                            store: ds.local_uri.clone(),
                            luid: c.luid.clone(),
                        });
                        ds.unsent += 1;
                        continue;
                    }
                    let size = c.data.as_ref().map_or(0, |d| d.len() as u64);
                    let left = self.budget.upload_left(self.up_bytes, self.down_bytes);
                    if self.changes_up > 0 && left.is_some_and(|l| size > l) {
                        // Over the upload budget: stays pending for a later session.
                        ds.unsent += 1;
                        self.cut = Some(CutShort::UploadBytes);
                        continue;
                    }
                    self.changes_up += 1;
                    self.up_bytes += size;
                    ds.snapshot.push(c.id());
                    match c.kind {
                        ChangeKind::Add | ChangeKind::Replace => {
                            let meta = Some(ctype(c.content_type.clone()));
                            let ic = ItemCommand {
                                meta,
                                items: vec![data_item(&c.luid, c.data, enc)],
                                ..ItemCommand::default()
                            };
                            if c.kind == ChangeKind::Add {
                                ds.sent.added += 1;
                                cmds.push(Command::Add(ic));
                            } else {
                                ds.sent.replaced += 1;
                                cmds.push(Command::Replace(ic));
                            }
                        }
                        ChangeKind::Delete => {
                            ds.sent.deleted += 1;
                            cmds.push(Command::Delete(Delete {
                                meta: Some(ctype(c.content_type.clone())),
                                items: vec![Item {
                                    source: Some(Source::new(c.luid)),
                                    ..Item::default()
                                }],
                                ..Delete::default()
                            }));
                        }
                    }
                }
            } else if mode.sends_all() {
                ds.snapshot = store.change_ids()?;
                if let Some(luids) = store.item_luids()? {
                    let total = luids.len();
                    ds.stream = luids.into();
                    let budget = stream_budget(self.server_max_msg);
                    let ds = &mut self.ds[i];
                    let cmds = next_batch(ds, &mut **store, enc, budget)?;
                    debug!(store = %ds.local_uri, ?mode, total, first = cmds.len(), "package 3, streamed");
                    out.push(Command::Sync(Sync {
                        target: Some(Target::new(ds.server_uri.clone())),
                        source: Some(Source::new(ds.local_uri.clone())),
                        number_of_changes: Some(total as u32),
                        commands: cmds,
                        ..Sync::default()
                    }));
                    continue;
                }
                for it in store.all_items()? {
                    if store.is_summary(&it.luid)? {
                        // Titles first: never upload a summary. A slow sync gets the item
                        // back from the server, so the local copy goes (unlogged) rather
                        // than coming back as a duplicate.
                        store.apply(ServerChange::Delete {
                            luid: it.luid.clone(),
                        })?;
                        ds.snapshot.retain(|c| c.luid != it.luid);
                        continue;
                    }
                    ds.sent.replaced += 1;
                    cmds.push(Command::Replace(ItemCommand {
                        meta: Some(ctype(it.content_type)),
                        items: vec![data_item(&it.luid, Some(it.data), enc)],
                        ..ItemCommand::default()
                    }));
                }
            }
            debug!(store = %ds.local_uri, ?mode, changes = cmds.len(), "package 3");
            out.push(Command::Sync(Sync {
                target: Some(Target::new(ds.server_uri.clone())),
                source: Some(Source::new(ds.local_uri.clone())),
                number_of_changes: Some(cmds.len() as u32),
                commands: cmds,
                ..Sync::default()
            }));
        }
        Ok(out)
    }

    /// Package 5's commands: the maps of this session's server Adds.
    fn package5(&mut self) -> Vec<Command> {
        let per_map = self.map_items_per_command();
        let mut out = Vec::new();
        for ds in &self.ds {
            if ds.failed.is_some() {
                continue;
            }
            for chunk in ds.new_maps.chunks(per_map) {
                out.push(map_command(ds, chunk));
            }
        }
        out
    }

    /// The largest message the server accepts.
    fn server_limit(&self) -> u64 {
        self.server_max_msg
            .unwrap_or(DEFAULT_SERVER_MAX_MSG)
            .max(1024)
    }

    /// Map items per `Map` command: a `Map` cannot be split across messages, so each
    /// must fit in a quarter of the server's message (about 160 bytes per XML map item).
    fn map_items_per_command(&self) -> usize {
        ((self.server_limit() / 4 / 160) as usize).clamp(1, MAP_ITEMS_PER_COMMAND)
    }

    /// Splits a package under the server's MaxMsgSize and sends its first message.
    fn send_package(
        &mut self,
        statuses: Vec<Status>,
        body: Vec<Command>,
        after: AfterSend,
    ) -> Result<Step, SessionError> {
        let max = self.server_limit();
        // Later messages carry other statuses than the template: keep an eighth spare.
        let limit = (max - max / 8) as usize;
        let mut template_hdr = self.header();
        self.msg_id -= 1;
        template_hdr.msg_id = (self.msg_id + 1).to_string();
        let template = SyncMl {
            header: template_hdr,
            body: SyncBody {
                commands: statuses.iter().cloned().map(Command::Status).collect(),
                is_final: true,
            },
        };
        let mut parts: VecDeque<Vec<Command>> =
            syncml_core::size::split_commands(&template, body, limit, self.cfg.encoding)
                .map_err(|e| SessionError::Encode(e.to_string()))?
                .into();
        let first = parts.pop_front().unwrap_or_default();
        self.outbox = parts;
        let last = self.outbox.is_empty() && !self.streaming();
        self.phase = if last {
            after_phase(after)
        } else {
            info!(
                messages = self.outbox.len() + 1,
                "package spans several messages"
            );
            Phase::Sending { after }
        };
        Ok(Step::Send(self.emit(statuses, first, last)))
    }

    /// Items of a streamed package are still to be read and sent.
    fn streaming(&self) -> bool {
        self.ds
            .iter()
            .any(|d| d.failed.is_none() && !d.stream.is_empty())
    }

    /// Lays out the next messages of a streamed package: one Sync with the next items of
    /// the first store that has some left, split under the server's MaxMsgSize.
    fn refill(&mut self, stores: &mut [&mut dyn DataStore]) -> Result<(), SessionError> {
        let budget = stream_budget(self.server_max_msg);
        let enc = self.cfg.encoding;
        let Some(i) = self
            .ds
            .iter()
            .position(|d| d.failed.is_none() && !d.stream.is_empty())
        else {
            return Ok(());
        };
        let Some(store) = stores.get_mut(i) else {
            return Err(SessionError::Protocol("store list changed".into()));
        };
        let ds = &mut self.ds[i];
        let cmds = next_batch(ds, &mut **store, enc, budget)?;
        let sync = Command::Sync(Sync {
            target: Some(Target::new(ds.server_uri.clone())),
            source: Some(Source::new(ds.local_uri.clone())),
            commands: cmds,
            ..Sync::default()
        });
        let max = self.server_limit();
        let limit = (max - max / 8) as usize;
        let mut hdr = self.header();
        self.msg_id -= 1;
        hdr.msg_id = (self.msg_id + 1).to_string();
        let template = SyncMl {
            header: hdr,
            body: SyncBody {
                commands: Vec::new(),
                is_final: true,
            },
        };
        let parts = syncml_core::size::split_commands(&template, vec![sync], limit, enc)
            .map_err(|e| SessionError::Encode(e.to_string()))?;
        self.outbox.extend(parts);
        Ok(())
    }

    /// The session completed: move anchors, acknowledge changes, keep unacknowledged maps.
    fn complete(&mut self, stores: &mut [&mut dyn DataStore]) -> Result<(), SessionError> {
        self.phase = Phase::Done;
        for (ds, store) in self.ds.iter_mut().zip(stores.iter_mut()) {
            let maps = unacked_maps(ds);
            let Some(mode) = ds.mode.filter(|_| ds.failed.is_none()) else {
                let mut st = ds.state.clone();
                st.pending_maps = maps;
                store.set_sync_state(&st)?;
                continue;
            };
            let acked: Vec<ChangeId> = if mode.sends_all() {
                ds.snapshot.clone()
            } else {
                ds.acked.clone()
            };
            store.acknowledge(&acked)?;
            store.set_sync_state(&SyncState {
                last_anchor: Some(ds.next_anchor.clone()),
                server_anchor: ds.server_next.clone(),
                pending_maps: maps,
                suspended: None,
            })?;
            info!(store = %ds.local_uri, ?mode, sent = ds.sent.total(), received = ds.received.total(), "store synced");
        }
        Ok(())
    }

    /// The session failed midway: keep the maps of server Adds we applied but could not
    /// get acknowledged, so the next session sends them first (CLI-13). Anchors stay, so
    /// the next session repeats what did not complete.
    pub fn abort(&mut self, stores: &mut [&mut dyn DataStore]) -> Result<(), SessionError> {
        if self.phase == Phase::Done || self.phase == Phase::Created {
            self.phase = Phase::Done;
            return Ok(());
        }
        self.phase = Phase::Done;
        for (ds, store) in self.ds.iter_mut().zip(stores.iter_mut()) {
            let maps = unacked_maps(ds);
            if maps != ds.state.pending_maps || ds.erased {
                let mut st = ds.state.clone();
                st.pending_maps = maps;
                store.set_sync_state(&st)?;
            }
        }
        Ok(())
    }

    /// Remembers the server's NumberOfChanges for the store of `sync`.
    fn note_announced(&mut self, sync: &Sync) {
        let i = self.ds_index(
            sync.target.as_ref().map(|t| t.loc_uri.as_str()),
            sync.source.as_ref().map(|s| s.loc_uri.as_str()),
        );
        if let (Some(i), Some(n)) = (i, sync.number_of_changes) {
            let ds = &mut self.ds[i];
            if ds.announced.is_none() {
                ds.announced = Some(n);
            }
        }
    }

    /// Takes the changes of a package-3 message that will not be sent off the counts.
    fn uncount(&mut self, part: &[Command]) {
        for c in part {
            let Command::Sync(s) = c else { continue };
            let Some(i) = self.ds_index(
                s.source.as_ref().map(|x| x.loc_uri.as_str()),
                s.target.as_ref().map(|x| x.loc_uri.as_str()),
            ) else {
                continue;
            };
            let ds = &mut self.ds[i];
            for inner in &s.commands {
                let counter = match inner {
                    Command::Add(_) => &mut ds.sent.added,
                    Command::Replace(_) => &mut ds.sent.replaced,
                    Command::Delete(_) => &mut ds.sent.deleted,
                    _ => continue,
                };
                *counter = counter.saturating_sub(1);
                ds.unsent += 1;
            }
        }
    }

    /// Ends the download early: statuses plus `Alert 224` (SUS-01), `Final`.
    fn suspend(&mut self, statuses: Vec<Status>, extra: Vec<Command>, why: CutShort) -> Step {
        info!(?why, "budget spent: suspending the session");
        self.cut = Some(why);
        let mut body = extra;
        body.push(Command::Alert(Alert {
            data: Some(AlertCode::SUSPEND),
            items: vec![Item {
                target: Some(Target::new(self.url.clone())),
                source: Some(Source::new(self.cfg.terminal_id.clone())),
                ..Item::default()
            }],
            ..Alert::default()
        }));
        self.phase = Phase::AwaitSuspend;
        Step::Send(self.emit(statuses, body, true))
    }

    /// The session was suspended: anchors stay (the server did not move its own), the
    /// changes the server acknowledged are cleared, unacknowledged maps are kept.
    fn complete_suspended(
        &mut self,
        stores: &mut [&mut dyn DataStore],
    ) -> Result<(), SessionError> {
        self.phase = Phase::Done;
        for (ds, store) in self.ds.iter_mut().zip(stores.iter_mut()) {
            if ds.mode.is_some() && ds.failed.is_none() {
                store.acknowledge(&ds.acked)?;
            }
            let mut st = ds.state.clone();
            st.pending_maps = unacked_maps(ds);
            // Our next session of this mode asks the server to resume (SUS-04).
            st.suspended = ds.mode.filter(|m| m.needs_anchors());
            if ds.erased {
                // A refresh from server stopped halfway: the store holds part of the
                // server's data, so the next sync must be a slow one.
                st.last_anchor = None;
                st.pending_maps.clear();
                st.suspended = None;
            }
            store.set_sync_state(&st)?;
        }
        Ok(())
    }

    /// The report so far.
    pub fn report(&self) -> SessionReport {
        SessionReport {
            stores: self
                .ds
                .iter()
                .map(|d| StoreReport {
                    local_uri: d.local_uri.clone(),
                    requested: d.requested,
                    mode: d.mode,
                    failed: d.failed,
                    sent: d.sent,
                    received: d.received,
                    rejected: d.rejected,
                    maps_acknowledged: d.maps_acked.len(),
                    server_changes: d.announced,
                    unsent: d.unsent,
                })
                .collect(),
            warnings: self.warnings.clone(),
            messages_sent: self.messages_sent,
            cut_short: self.cut,
        }
    }
}

/// Item bytes read for one message of a streamed package: half the server's message
/// size, leaving room for the markup (a batch that still overflows is split further).
fn stream_budget(server_max_msg: Option<u64>) -> usize {
    (server_max_msg.unwrap_or(DEFAULT_SERVER_MAX_MSG).max(1024) / 2) as usize
}

/// Reads the next items of `ds.stream` up to `budget` bytes (at least one) into Replace
/// commands; items gone since they were listed are skipped.
fn next_batch(
    ds: &mut DsRun,
    store: &mut dyn DataStore,
    enc: Encoding,
    budget: usize,
) -> Result<Vec<Command>, SessionError> {
    let mut cmds = Vec::new();
    let mut bytes = 0;
    while bytes < budget {
        let Some(luid) = ds.stream.pop_front() else {
            break;
        };
        let Some(it) = store.read_item(&luid)? else {
            continue;
        };
        bytes += it.data.len() + it.luid.len();
        ds.sent.replaced += 1;
        cmds.push(Command::Replace(ItemCommand {
            meta: Some(Meta::of_type(
                it.content_type.unwrap_or_else(|| ds.content_type.clone()),
            )),
            items: vec![data_item(&it.luid, Some(it.data), enc)],
            ..ItemCommand::default()
        }));
    }
    Ok(cmds)
}

fn after_phase(a: AfterSend) -> Phase {
    match a {
        AfterSend::ServerSync => Phase::AwaitServerSync,
        AfterSend::MapStatus => Phase::AwaitMapStatus,
    }
}

fn map_command(ds: &DsRun, entries: &[MapEntry]) -> Command {
    Command::Map(Map {
        cmd_id: String::new(),
        target: Target::new(ds.server_uri.clone()),
        source: Source::new(ds.local_uri.clone()),
        cred: None,
        meta: None,
        map_items: entries
            .iter()
            .map(|e| MapItem::new(e.guid.clone(), e.luid.clone()))
            .collect(),
    })
}

/// Cached and new maps the server has not acknowledged.
fn unacked_maps(ds: &DsRun) -> Vec<MapEntry> {
    let mut out: Vec<MapEntry> = Vec::new();
    for m in ds.state.pending_maps.iter().chain(ds.new_maps.iter()) {
        if !ds.maps_acked.contains(m) && !out.contains(m) {
            out.push(m.clone());
        }
    }
    out
}

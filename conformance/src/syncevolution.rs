//! Drives the Debian SyncEvolution 2.0 command line client (`syncevolution`, Synthesis
//! engine 3.4) as a SyncML **client** against any SyncML HTTP server URL, for
//! interoperability tests.
//!
//! ```no_run
//! use conformance::syncevolution::{Client, ClientConfig, Mode};
//! # fn main() -> Result<(), conformance::syncevolution::Error> {
//! let dir = std::path::Path::new("/tmp/se-client");
//! let client = Client::new(dir, ClientConfig::new("http://127.0.0.1:9000/sync", "test", "secret"))?;
//! client.write_contact("alice.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Alice\r\nN:;Alice;;;\r\nEND:VCARD\r\n")?;
//! let report = client.sync(Mode::Slow)?.ensure_success()?;
//! for msg in &report.messages {
//!     let bytes = msg.read()?; // the raw SyncML message as sent or received
//!     # let _ = bytes;
//! }
//! # Ok(()) }
//! ```
//!
//! How it works:
//! * Every [`Client`] owns a directory: `contacts/` and `calendar/` hold the items, one
//!   file per item (SyncEvolution's `file` backend; the file name is the client LUID
//!   sent on the wire, new items from the server get numeric names), and `.syncevo/` is
//!   the private `HOME` (XDG config and cache) of SyncEvolution, so nothing outside the
//!   directory is read or written, no D-Bus and no keyring are used (`--daemon=no`,
//!   `keyring=no`). Keep the directory between syncs: it holds the sync anchors and
//!   change tracking that two-way syncs need.
//! * Each sync writes a session directory with `syncevolution-log.html`, `status.ini` and,
//!   at the log level used here (5), a dump of every SyncML message in its wire encoding
//!   (`syncevolution-log_msgMMM_SSS_{outgoing,incoming}.{wbxml,xml}`; MMM is the SyncML
//!   MsgID, SSS a sequence number over the session). [`SyncReport::messages`] lists them.
//!   The final, status-only outgoing message of a session is dumped but never POSTed
//!   (the Synthesis engine ends the session without sending it).
//! * Debian bookworm's `libsyncevolution.so.0` crashes (SIGSEGV) on its first HTTP POST
//!   because two `curl_easy_setopt` calls receive garbage callbacks; `src/curlfix.c`
//!   explains the bug. [`ensure_installed`] compiles that shim with `cc` and every sync
//!   runs with it in `LD_PRELOAD`.
//!
//! [`server`] runs SyncEvolution's own SyncML HTTP server, as a reference peer.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use syncml_core::content::split_content_line;

/// The Debian packages that provide the SyncEvolution client and the shim's compiler.
pub const CLIENT_PACKAGES: &str = "syncevolution gcc libc6-dev";

/// Name of the SyncEvolution peer configuration a [`Client`] writes.
const PEER: &str = "interop";

/// Source of the `LD_PRELOAD` shim, embedded so no source tree is needed at run time.
const CURLFIX_SOURCE: &str = include_str!("curlfix.c");

/// Something went wrong driving SyncEvolution.
#[derive(Debug)]
pub enum Error {
    /// A program is missing; `packages` says what to `apt-get install`.
    NotInstalled {
        /// What was looked for.
        what: String,
        /// Space-separated Debian packages that provide it.
        packages: String,
    },
    /// A file system or process operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A helper command (`cc`, `syncevolution --configure`, a server process) failed.
    Command {
        /// What was being done.
        context: String,
        /// Exit status and output of the command.
        detail: String,
    },
    /// An argument was rejected (for example an item file name with a `/`).
    InvalidArgument(String),
    /// A sync did not succeed; the text is [`SyncReport::summary`].
    SyncFailed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotInstalled { what, packages } => write!(
                f,
                "{what} is not installed: run `apt-get update && apt-get install -y {packages}` \
                 as root (SyncEvolution interop tests never skip)"
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Command { context, detail } => write!(f, "{context}: {detail}"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::SyncFailed(summary) => write!(f, "SyncEvolution sync failed: {summary}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Wraps an [`io::Error`] with what was being done.
fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

/// The programs the client side needs, as found by [`ensure_installed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The `syncevolution` command line program.
    pub syncevolution: PathBuf,
    /// The compiled curl-callback shim (`curlfix.so`) to put in `LD_PRELOAD`.
    pub curlfix: PathBuf,
}

/// Checks that SyncEvolution is installed and builds the curl shim (cached by content
/// hash next to the running executable, e.g. `target/debug/syncevolution-curlfix/`, or
/// in a fresh temporary directory when that is not writable).
///
/// A missing program gives [`Error::NotInstalled`], whose message names the Debian
/// packages to install; callers in tests should fail on it, not skip.
pub fn ensure_installed() -> Result<Tools, Error> {
    let syncevolution = find_in_path("syncevolution").ok_or_else(|| Error::NotInstalled {
        what: "the SyncEvolution command line client `syncevolution`".into(),
        packages: CLIENT_PACKAGES.into(),
    })?;
    let curlfix = build_curlfix()?;
    Ok(Tools {
        syncevolution,
        curlfix,
    })
}

/// Finds an executable file called `name` in `$PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// 64-bit FNV-1a: a stable content hash for the shim cache key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A number unique within this process, for temporary file names.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where the compiled shim is cached: next to the test binary (`target/<profile>/`).
fn curlfix_cache_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir = dir.parent()?.to_path_buf();
    }
    Some(dir.join("syncevolution-curlfix"))
}

/// Compiles `curlfix.c` into `dir/curlfix-<hash>.so` unless it is already there.
fn build_curlfix_in(dir: &Path, cc: &Path) -> Result<PathBuf, Error> {
    let hash = fnv1a(CURLFIX_SOURCE.as_bytes());
    let so = dir.join(format!("curlfix-{hash:016x}.so"));
    if so.is_file() {
        return Ok(so);
    }
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    // Unique names for the source and the output, then an atomic rename: concurrent
    // test processes may build at the same time.
    let tag = format!("{}.{}", std::process::id(), unique());
    let src = dir.join(format!("curlfix-{hash:016x}.{tag}.c"));
    let tmp = dir.join(format!("curlfix-{hash:016x}.{tag}.so.tmp"));
    fs::write(&src, CURLFIX_SOURCE).map_err(io_err(format!("writing {}", src.display())))?;
    let out = Command::new(cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .arg("-ldl")
        .stdin(Stdio::null())
        .output();
    let _ = fs::remove_file(&src);
    let out = out.map_err(io_err(format!("running {}", cc.display())))?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Command {
            context: format!(
                "compiling the curl shim with `{} -shared -fPIC` (needs the Debian packages \
                 `gcc libc6-dev`)",
                cc.display()
            ),
            detail: describe_output(out.status, &out.stdout, &out.stderr),
        });
    }
    fs::rename(&tmp, &so).map_err(io_err(format!("renaming {}", tmp.display())))?;
    Ok(so)
}

/// Builds (or finds the cached) curl shim.
fn build_curlfix() -> Result<PathBuf, Error> {
    let cc = find_in_path("cc").ok_or_else(|| Error::NotInstalled {
        what: "a C compiler `cc` (to build the curl shim for SyncEvolution)".into(),
        packages: "gcc libc6-dev".into(),
    })?;
    if let Some(dir) = curlfix_cache_dir() {
        match build_curlfix_in(&dir, &cc) {
            Ok(so) => return Ok(so),
            // The build itself failed: another directory will not help.
            Err(e @ Error::Command { .. }) => return Err(e),
            Err(_) => {} // not writable: fall back to a private temporary directory
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "syncml-curlfix-{}-{}",
        std::process::id(),
        unique()
    ));
    fs::create_dir(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    build_curlfix_in(&dir, &cc)
}

/// Formats an exit status with the tail of a command's output.
fn describe_output(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> String {
    format!(
        "{status}\n--- stdout:\n{}\n--- stderr:\n{}",
        tail(&String::from_utf8_lossy(stdout), 40),
        tail(&String::from_utf8_lossy(stderr), 40)
    )
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How the client authenticates (`clientAuthType`).
///
/// SyncEvolution honours this only on the first sync of a fresh client directory; after
/// that it reuses what the server accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// `syncml:auth-md5` (SyncEvolution's default).
    #[default]
    Md5,
    /// `syncml:auth-basic`.
    Basic,
}

/// Message encoding on the wire (`enableWBXML`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/vnd.syncml+xml`.
    Xml,
    /// `application/vnd.syncml+wbxml` (SyncEvolution's default).
    #[default]
    Wbxml,
}

/// SyncML protocol version the client speaks (`SyncMLVersion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMlVersion {
    /// SyncML 1.1.
    V1_1,
    /// OMA DS 1.2.
    #[default]
    V1_2,
}

/// A sync mode (`syncevolution --sync MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Normal two-way sync (Alert 200).
    TwoWay,
    /// Slow sync: all items are compared (Alert 201).
    Slow,
    /// Replace the client's data with the server's (Alert 205, because the config sets
    /// `enableRefreshSync=1`; otherwise SyncEvolution wipes locally and slow-syncs).
    RefreshFromServer,
    /// Replace the server's data with the client's (Alert 203).
    RefreshFromClient,
    /// Only the server's changes flow (Alert 204).
    OneWayFromServer,
    /// Only the client's changes flow (Alert 202).
    OneWayFromClient,
}

impl Mode {
    /// All modes.
    pub const ALL: [Mode; 6] = [
        Mode::TwoWay,
        Mode::Slow,
        Mode::RefreshFromServer,
        Mode::RefreshFromClient,
        Mode::OneWayFromServer,
        Mode::OneWayFromClient,
    ];

    /// The name `syncevolution --sync` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::TwoWay => "two-way",
            Mode::Slow => "slow",
            Mode::RefreshFromServer => "refresh-from-server",
            Mode::RefreshFromClient => "refresh-from-client",
            Mode::OneWayFromServer => "one-way-from-server",
            Mode::OneWayFromClient => "one-way-from-client",
        }
    }

    /// The Alert code SyncEvolution sends for this mode (as observed on the wire).
    pub fn alert_code(self) -> u32 {
        match self {
            Mode::TwoWay => 200,
            Mode::Slow => 201,
            Mode::OneWayFromClient => 202,
            Mode::RefreshFromClient => 203,
            Mode::OneWayFromServer => 204,
            Mode::RefreshFromServer => 205,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings of a [`Client`]. [`ClientConfig::new`] fills in the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server's SyncML URL (`syncURL`), e.g. `http://127.0.0.1:9000/syncevolution`.
    pub url: String,
    /// User name sent in the credentials.
    pub username: String,
    /// Password (stored in the client's config file: `keyring=no`).
    pub password: String,
    /// The client's device ID (`SyncHdr/Source/LocURI`); default `syncevo-interop-client`.
    pub device_id: String,
    /// Authentication scheme; default md5.
    pub auth: Auth,
    /// Wire encoding; default WBXML.
    pub encoding: Encoding,
    /// Protocol version; default 1.2.
    pub syncml_version: SyncMlVersion,
    /// Server-side database URI of the contacts datastore (vCard 3.0, `text/vcard`);
    /// default `addressbook`.
    pub contacts_uri: String,
    /// `Some(uri)` also syncs a calendar datastore (iCalendar 2.0, `text/calendar`) with
    /// that server-side URI (usually `calendar`); default `None`.
    pub calendar_uri: Option<String>,
    /// Largest message the client accepts (`maxMsgSize`); `None` = SyncEvolution's
    /// default, 150000 bytes.
    pub max_msg_size: Option<u32>,
    /// `preventSlowSync`: when true, SyncEvolution refuses (locally, status 22000) a slow
    /// sync it did not ask for. Default false, so a first two-way sync just works.
    pub prevent_slow_sync: bool,
    /// Wall-clock limit of one `syncevolution --sync` run; default 60 s.
    pub timeout: Duration,
    /// SyncEvolution's `loglevel`; default 5, which also dumps every wire message into
    /// the session directory ([`SyncReport::messages`] is empty below 5).
    pub loglevel: u32,
    /// `dumpData`: copy the whole local database into the session directory before and
    /// after every sync; default true.
    pub dump_data: bool,
}

impl ClientConfig {
    /// A configuration with the given server URL and credentials and defaults for the rest.
    pub fn new(
        url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> ClientConfig {
        ClientConfig {
            url: url.into(),
            username: username.into(),
            password: password.into(),
            device_id: "syncevo-interop-client".into(),
            auth: Auth::Md5,
            encoding: Encoding::Wbxml,
            syncml_version: SyncMlVersion::V1_2,
            contacts_uri: "addressbook".into(),
            calendar_uri: None,
            max_msg_size: None,
            prevent_slow_sync: false,
            timeout: Duration::from_secs(60),
            loglevel: 5,
            dump_data: true,
        }
    }
}

/// Direction of a dumped wire message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Outgoing,
    /// Server to client.
    Incoming,
}

/// One SyncML message dumped by SyncEvolution in its wire encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireMessage {
    /// The dump file (`syncevolution-log_msgMMM_SSS_{outgoing,incoming}.{wbxml,xml}`).
    pub path: PathBuf,
    /// The SyncML `MsgID` (MMM), numbered per sender.
    pub msg_id: u32,
    /// Position in the session's dump sequence (SSS); the list is sorted by it.
    pub seq: u32,
    /// Who sent it.
    pub direction: Direction,
    /// Encoding, from the file extension.
    pub encoding: Encoding,
}

impl WireMessage {
    /// Parses a dump file name; `None` if it is not a wire message dump.
    fn from_path(path: PathBuf) -> Option<WireMessage> {
        let name = path.file_name()?.to_str()?;
        let rest = name.strip_prefix("syncevolution-log_msg")?;
        let (stem, encoding) = if let Some(s) = rest.strip_suffix(".wbxml") {
            (s, Encoding::Wbxml)
        } else if let Some(s) = rest.strip_suffix(".xml") {
            (s, Encoding::Xml)
        } else {
            return None;
        };
        let mut parts = stem.split('_');
        let msg_id = parts.next()?.parse().ok()?;
        let seq = parts.next()?.parse().ok()?;
        let direction = match parts.next()? {
            "outgoing" => Direction::Outgoing,
            "incoming" => Direction::Incoming,
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(WireMessage {
            path,
            msg_id,
            seq,
            direction,
            encoding,
        })
    }

    /// The message bytes.
    pub fn read(&self) -> Result<Vec<u8>, Error> {
        fs::read(&self.path).map_err(io_err(format!("reading {}", self.path.display())))
    }
}

/// The outcome of one [`Client::sync`] run.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// The mode that was requested.
    pub mode: Mode,
    /// Exit code of `syncevolution` (0 = success, 1 = sync failed); `None` if a signal
    /// ended it (see `signal`), e.g. the timeout's kill.
    pub exit_code: Option<i32>,
    /// The signal that ended `syncevolution`, if any (11 = SIGSEGV, the symptom of
    /// running Debian's build without the curl shim; 9 after a timeout).
    pub signal: Option<i32>,
    /// The run hit [`ClientConfig::timeout`] and was killed.
    pub timed_out: bool,
    /// Wall-clock time of the run.
    pub duration: Duration,
    /// What `syncevolution` printed on stdout (its result table).
    pub stdout: String,
    /// What it printed on stderr (progress and errors).
    pub stderr: String,
    /// The session log directory this run created, if any.
    pub session_dir: Option<PathBuf>,
    /// The session status from `status.ini`: 200 = success, otherwise a SyncML status
    /// (e.g. 401 for a rejected login) or a SyncEvolution-local code (22000 refused
    /// slow sync, 22002 the sync process died).
    pub status: Option<u32>,
    /// The session's error text from `status.ini`, if any.
    pub error: Option<String>,
    /// All `key = value` entries of `status.ini` (per-datastore modes, statistics, ...).
    pub status_ini: BTreeMap<String, String>,
    /// The wire message dumps, in session order.
    pub messages: Vec<WireMessage>,
}

impl SyncReport {
    /// Exit code 0, no timeout and session status 200.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out && self.status == Some(200)
    }

    /// `Ok(self)` on [`success`](Self::success), else [`Error::SyncFailed`] with the
    /// [`summary`](Self::summary).
    pub fn ensure_success(self) -> Result<SyncReport, Error> {
        if self.success() {
            Ok(self)
        } else {
            Err(Error::SyncFailed(self.summary()))
        }
    }

    /// The sync mode SyncEvolution recorded for a datastore (`addressbook`, `calendar`),
    /// e.g. `slow` or `two-way`.
    pub fn datastore_mode(&self, datastore: &str) -> Option<&str> {
        self.status_ini
            .get(&format!("source-{datastore}-mode"))
            .map(String::as_str)
    }

    /// The messages sent by the client.
    pub fn outgoing(&self) -> impl Iterator<Item = &WireMessage> {
        self.messages
            .iter()
            .filter(|m| m.direction == Direction::Outgoing)
    }

    /// The messages received from the server.
    pub fn incoming(&self) -> impl Iterator<Item = &WireMessage> {
        self.messages
            .iter()
            .filter(|m| m.direction == Direction::Incoming)
    }

    /// SyncEvolution's full session log (`syncevolution-log.html`), if a session ran.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.session_dir
            .as_ref()
            .map(|d| d.join("syncevolution-log.html"))
    }

    /// A human-readable account of the run for test failure messages: mode, exit code,
    /// status, error, session dir, and the tail of stdout and stderr.
    pub fn summary(&self) -> String {
        format!(
            "mode {}: exit {}, status {}, error {:?}, {} wire messages, {:.2}s{}\n\
             session dir: {}\n--- stdout (tail):\n{}\n--- stderr (tail):\n{}",
            self.mode,
            match (self.exit_code, self.signal) {
                (Some(c), _) => c.to_string(),
                (None, Some(sig)) => format!("none (killed by signal {sig})"),
                (None, None) => "none".to_string(),
            },
            self.status
                .map_or_else(|| "none".to_string(), |s| s.to_string()),
            self.error.as_deref().unwrap_or(""),
            self.messages.len(),
            self.duration.as_secs_f64(),
            if self.timed_out { ", TIMED OUT" } else { "" },
            self.session_dir
                .as_ref()
                .map_or_else(|| "none".to_string(), |d| d.display().to_string()),
            tail(&self.stdout, 30),
            tail(&self.stderr, 30),
        )
    }
}

/// A SyncEvolution SyncML client with its own directory (items, config, logs).
#[derive(Debug, Clone)]
pub struct Client {
    dir: PathBuf,
    config: ClientConfig,
    tools: Tools,
}

impl Client {
    /// Creates (or reopens) a client in `dir` and writes its SyncEvolution configuration
    /// with `syncevolution --configure`. Reopening a directory keeps its sync state and
    /// updates the configuration to `config`.
    pub fn new(dir: &Path, config: ClientConfig) -> Result<Client, Error> {
        let tools = ensure_installed()?;
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", dir.display())))?;
        let client = Client { dir, config, tools };
        for d in [client.contacts_dir(), client.calendar_dir(), client.home()] {
            fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        client.configure()?;
        Ok(client)
    }

    /// The client's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the client was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The tools this client runs.
    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    /// SyncEvolution's private `HOME`.
    fn home(&self) -> PathBuf {
        self.dir.join(".syncevo")
    }

    /// Where SyncEvolution writes its session directories.
    fn cache_dir(&self) -> PathBuf {
        self.home().join(".cache").join("syncevolution")
    }

    /// Applies the isolated environment to a SyncEvolution command.
    fn command(&self) -> Command {
        let home = self.home();
        let mut cmd = Command::new(&self.tools.syncevolution);
        isolate(&mut cmd, &home);
        cmd.env_remove("DBUS_SESSION_BUS_ADDRESS");
        cmd
    }

    /// The `--configure` properties for the current configuration.
    fn properties(&self) -> Vec<String> {
        let c = &self.config;
        let contacts = self.contacts_dir();
        let calendar = self.calendar_dir();
        vec![
            "keyring=no".into(),
            format!("syncURL={}", c.url),
            format!("username={}", c.username),
            format!("password={}", c.password),
            format!("deviceId={}", c.device_id),
            format!(
                "clientAuthType={}",
                match c.auth {
                    Auth::Md5 => "md5",
                    Auth::Basic => "basic",
                }
            ),
            format!(
                "SyncMLVersion={}",
                match c.syncml_version {
                    SyncMlVersion::V1_1 => "1.1",
                    SyncMlVersion::V1_2 => "1.2",
                }
            ),
            format!(
                "enableWBXML={}",
                match c.encoding {
                    Encoding::Xml => 0,
                    Encoding::Wbxml => 1,
                }
            ),
            "enableRefreshSync=1".into(),
            format!("preventSlowSync={}", u8::from(c.prevent_slow_sync)),
            format!("maxMsgSize={}", c.max_msg_size.unwrap_or(150_000)),
            // One attempt per message: a dead server fails fast instead of retrying.
            "RetryDuration=60".into(),
            "RetryInterval=0".into(),
            // >= 4 dumps Synthesis' XML translation, >= 5 also the raw wire messages.
            format!("loglevel={}", c.loglevel),
            "printChanges=0".into(),
            format!("dumpData={}", u8::from(c.dump_data)),
            "maxlogdirs=0".into(),
            "backend=file".into(),
            format!("addressbook/database=file://{}", contacts.display()),
            "addressbook/databaseFormat=text/vcard".into(),
            "addressbook/syncFormat=text/vcard".into(),
            format!("addressbook/uri={}", c.contacts_uri),
            format!("calendar/database=file://{}", calendar.display()),
            "calendar/databaseFormat=text/calendar".into(),
            "calendar/syncFormat=text/calendar".into(),
            format!(
                "calendar/uri={}",
                c.calendar_uri.as_deref().unwrap_or("calendar")
            ),
        ]
    }

    /// Runs `syncevolution --configure` (from the `SyncEvolution` server template the
    /// first time, updating the existing peer afterwards).
    fn configure(&self) -> Result<(), Error> {
        let peer_dir = self
            .home()
            .join(".config/syncevolution/default/peers")
            .join(PEER);
        let mut cmd = self.command();
        cmd.args(["--daemon=no", "--configure"]);
        if !peer_dir.is_dir() {
            // The template for a peer that is a SyncEvolution *server* sets the
            // datastore URIs and SyncML client defaults.
            cmd.args(["--template", "SyncEvolution"]);
        }
        cmd.args(self.properties())
            .args([PEER, "addressbook", "calendar"])
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .map_err(io_err("running syncevolution --configure"))?;
        if !out.status.success() {
            return Err(Error::Command {
                context: format!("syncevolution --configure in {}", self.dir.display()),
                detail: describe_output(out.status, &out.stdout, &out.stderr),
            });
        }
        Ok(())
    }

    /// The session directories of this client, oldest first.
    pub fn session_dirs(&self) -> Result<Vec<PathBuf>, Error> {
        session_dirs(&self.cache_dir(), &format!("{PEER}-"))
    }

    /// Runs one sync in `mode` (contacts, plus calendar if configured) with the curl shim
    /// preloaded and the configured timeout.
    ///
    /// A failed sync is not an `Err`: the report says how it failed (check
    /// [`SyncReport::success`] or call [`SyncReport::ensure_success`]). `Err` means the
    /// harness itself could not run SyncEvolution.
    pub fn sync(&self, mode: Mode) -> Result<SyncReport, Error> {
        let before: BTreeSet<PathBuf> = self.session_dirs()?.into_iter().collect();
        let run_dir = self.home().join("run");
        fs::create_dir_all(&run_dir).map_err(io_err(format!("creating {}", run_dir.display())))?;
        let stdout_path = run_dir.join("sync.stdout");
        let stderr_path = run_dir.join("sync.stderr");
        let stdout = fs::File::create(&stdout_path)
            .map_err(io_err(format!("creating {}", stdout_path.display())))?;
        let stderr = fs::File::create(&stderr_path)
            .map_err(io_err(format!("creating {}", stderr_path.display())))?;

        let mut preload = self.tools.curlfix.clone().into_os_string();
        if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
            preload.push(":");
            preload.push(old);
        }
        let mut cmd = self.command();
        cmd.env("LD_PRELOAD", preload).args([
            "--daemon=no",
            "--sync",
            mode.as_str(),
            PEER,
            "addressbook",
        ]);
        if self.config.calendar_uri.is_some() {
            cmd.arg("calendar");
        }
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);

        let start = Instant::now();
        let child = cmd
            .spawn()
            .map_err(io_err("starting syncevolution --sync"))?;
        let (status, timed_out) = wait_with_timeout(child, self.config.timeout)?;
        let duration = start.elapsed();

        let read_lossy = |p: &Path| -> Result<String, Error> {
            let bytes = fs::read(p).map_err(io_err(format!("reading {}", p.display())))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let session_dir = self
            .session_dirs()?
            .into_iter()
            .filter(|d| !before.contains(d))
            .max_by_key(|d| {
                let mtime = fs::metadata(d).and_then(|m| m.modified()).ok();
                (mtime, d.clone())
            });
        let (status_ini, messages) = match &session_dir {
            Some(dir) => (read_status_ini(dir)?, wire_messages(dir)?),
            None => (BTreeMap::new(), Vec::new()),
        };
        Ok(SyncReport {
            mode,
            exit_code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            timed_out,
            duration,
            stdout: read_lossy(&stdout_path)?,
            stderr: read_lossy(&stderr_path)?,
            status: status_ini.get("status").and_then(|s| s.parse().ok()),
            error: status_ini.get("error").cloned(),
            session_dir,
            status_ini,
            messages,
        })
    }

    /// The directory holding the contacts, one vCard per file (file name = LUID).
    pub fn contacts_dir(&self) -> PathBuf {
        self.dir.join("contacts")
    }

    /// The directory holding the calendar items, one iCalendar object per file.
    pub fn calendar_dir(&self) -> PathBuf {
        self.dir.join("calendar")
    }

    /// Writes (creates or replaces) the contact stored in file `name` (its LUID).
    pub fn write_contact(&self, name: &str, vcard: &str) -> Result<(), Error> {
        write_item(&self.contacts_dir(), name, vcard)
    }

    /// All contacts: file name → content.
    pub fn read_contacts(&self) -> Result<BTreeMap<String, String>, Error> {
        read_items(&self.contacts_dir())
    }

    /// Deletes the contact stored in file `name`.
    pub fn delete_contact(&self, name: &str) -> Result<(), Error> {
        delete_item(&self.contacts_dir(), name)
    }

    /// Deletes every contact (e.g. to test a refresh from the server).
    pub fn clear_contacts(&self) -> Result<(), Error> {
        clear_items(&self.contacts_dir())
    }

    /// Writes (creates or replaces) the calendar item stored in file `name` (its LUID).
    pub fn write_event(&self, name: &str, icalendar: &str) -> Result<(), Error> {
        write_item(&self.calendar_dir(), name, icalendar)
    }

    /// All calendar items: file name → content.
    pub fn read_calendar(&self) -> Result<BTreeMap<String, String>, Error> {
        read_items(&self.calendar_dir())
    }

    /// Deletes the calendar item stored in file `name`.
    pub fn delete_event(&self, name: &str) -> Result<(), Error> {
        delete_item(&self.calendar_dir(), name)
    }

    /// Deletes every calendar item.
    pub fn clear_calendar(&self) -> Result<(), Error> {
        clear_items(&self.calendar_dir())
    }
}

/// Points `HOME` and the XDG directories of a SyncEvolution process at `home` and drops
/// variables that would let it reach the user's desktop session or a proxy.
fn isolate(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("LC_ALL", "C.UTF-8")
        .env_remove("DISPLAY")
        .env_remove("XDG_RUNTIME_DIR");
    for var in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(var);
    }
}

/// Waits for `child`, killing it after `timeout`. Returns its status (`None` only if
/// it could not be collected) and whether the timeout hit.
fn wait_with_timeout(
    mut child: Child,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, bool), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(io_err("waiting for a child"))? {
            return Ok((Some(status), false));
        }
        if Instant::now() >= deadline {
            // Not reaped yet, so the PID is still ours.
            let _ = child.kill();
            return Ok((child.wait().ok(), true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Session directories `<cache>/<prefix>*`, oldest first (by modification time, then name).
fn session_dirs(cache: &Path, prefix: &str) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(cache) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(format!("listing {}", cache.display()))(e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", cache.display())))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(prefix) && path.is_dir() {
            let mtime = fs::metadata(&path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            dirs.push((mtime, path));
        }
    }
    dirs.sort();
    Ok(dirs.into_iter().map(|(_, p)| p).collect())
}

/// Parses `status.ini` (`key = value` lines); empty if it does not exist.
fn read_status_ini(session_dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let path = session_dir.join("status.ini");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(" = ").or_else(|| l.split_once('=')))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// The wire message dumps in a session directory, sorted by sequence number.
fn wire_messages(session_dir: &Path) -> Result<Vec<WireMessage>, Error> {
    let entries =
        fs::read_dir(session_dir).map_err(io_err(format!("listing {}", session_dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", session_dir.display())))?;
        if let Some(m) = WireMessage::from_path(entry.path()) {
            out.push(m);
        }
    }
    out.sort_by_key(|m| (m.seq, m.msg_id));
    Ok(out)
}

/// Rejects item names that are not a single plain file name.
fn check_item_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.starts_with('.')
        || name.contains('/')
        || name.contains('\0')
    {
        return Err(Error::InvalidArgument(format!(
            "item file name {name:?} must be a plain file name (no '/', not hidden)"
        )));
    }
    Ok(())
}

/// Writes an item file. If it replaces a file whose modification time then stays the
/// same (coarse file system clocks), the time is moved on by a second so the `file`
/// backend, which tracks changes by modification time, sees the change.
fn write_item(dir: &Path, name: &str, text: &str) -> Result<(), Error> {
    check_item_name(name)?;
    fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let path = dir.join(name);
    let old_mtime = fs::metadata(&path).and_then(|m| m.modified()).ok();
    fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))?;
    if let Some(old) = old_mtime {
        let new = fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io_err(format!("stat {}", path.display())))?;
        if new <= old {
            let file = fs::File::options()
                .write(true)
                .open(&path)
                .map_err(io_err(format!("opening {}", path.display())))?;
            file.set_modified(old + Duration::from_secs(1))
                .map_err(io_err(format!("setting the mtime of {}", path.display())))?;
        }
    }
    Ok(())
}

/// Reads all item files of `dir` (hidden files excluded): file name → content (UTF-8,
/// invalid bytes replaced). A missing directory reads as empty.
fn read_items(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(io_err(format!("listing {}", dir.display()))(e)),
    };
    let mut items = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        items.insert(name, String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(items)
}

/// Deletes one item file.
fn delete_item(dir: &Path, name: &str) -> Result<(), Error> {
    check_item_name(name)?;
    let path = dir.join(name);
    fs::remove_file(&path).map_err(io_err(format!("deleting {}", path.display())))
}

/// Deletes all item files of `dir`.
fn clear_items(dir: &Path) -> Result<(), Error> {
    for name in read_items(dir)?.keys() {
        delete_item(dir, name)?;
    }
    Ok(())
}

/// Unfolds RFC 2425/5545 content lines: any line ending becomes `\n`, and a line that
/// starts with a space or tab continues the previous one (that one character dropped).
fn unfold(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines: Vec<String> = Vec::new();
    for line in text.split('\n') {
        match (line.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(cont), Some(prev)) => prev.push_str(cont),
            _ => lines.push(line.to_string()),
        }
    }
    lines
}

/// Normalises a vCard or iCalendar text for comparison by content: unfolds lines,
/// upper-cases the name-and-parameters part, drops unescaped trailing `;` of
/// structured values, drops empty-valued properties (`NOTE:`, `ADR:;;;;;;`) and the
/// properties named in `noise` or starting with `X-`, and sorts the remaining lines.
fn normalize_with(text: &str, noise: &[&str]) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in unfold(text) {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let (name_part, value) = split_content_line(line);
        let name_part = name_part.to_ascii_uppercase();
        let name = name_part.split(';').next().unwrap_or("");
        let name = name.rsplit('.').next().unwrap_or(name); // drop a group prefix
        if name.starts_with("X-") || noise.contains(&name) {
            continue;
        }
        let mut value = value.trim().to_string();
        while value.ends_with(';') && !value.ends_with("\\;") {
            value.pop();
        }
        if value
            .chars()
            .all(|c| c == ';' || c == ',' || c.is_whitespace())
        {
            continue;
        }
        out.push(format!("{name_part}:{value}"));
    }
    out.sort();
    out.join("\n")
}

/// Normalises a vCard for comparison by content across client and server: unfolds lines, ignores
/// line-ending style and case of property names and parameters, drops `REV`, `PRODID`,
/// `UID` and `X-*` properties and properties with an empty value (SyncEvolution's
/// server pads stored vCards with them), strips trailing empty components
/// (`N:Doe;John;;;` = `N:Doe;John`) and sorts the lines.
pub fn normalize_vcard(text: &str) -> String {
    normalize_with(text, &["REV", "PRODID", "UID"])
}

/// Normalises an iCalendar object for comparison by content: the same rules as
/// [`normalize_vcard`], dropping `PRODID`, `DTSTAMP`, `CREATED`, `LAST-MODIFIED` and
/// `X-*` (but keeping `UID`). Sorting loses component nesting, which is fine for
/// comparing simple single-event objects.
pub fn normalize_icalendar(text: &str) -> String {
    normalize_with(text, &["PRODID", "DTSTAMP", "CREATED", "LAST-MODIFIED"])
}

/// The normalised contents of a set of vCards (e.g. [`Client::read_contacts`]), sorted,
/// so two stores can be compared regardless of their LUIDs.
pub fn normalized_vcards(items: &BTreeMap<String, String>) -> Vec<String> {
    let mut v: Vec<String> = items.values().map(|t| normalize_vcard(t)).collect();
    v.sort();
    v
}

/// The normalised contents of a set of iCalendar items, sorted.
pub fn normalized_icalendars(items: &BTreeMap<String, String>) -> Vec<String> {
    let mut v: Vec<String> = items.values().map(|t| normalize_icalendar(t)).collect();
    v.sort();
    v
}

/// Waits until `ready()` or `deadline`, failing early if `child` exits.
fn wait_for(
    child: &mut Child,
    what: &str,
    log: &Path,
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> Result<(), Error> {
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child
            .try_wait()
            .map_err(io_err(format!("waiting for {what}")))?
        {
            return Err(Error::Command {
                context: format!("{what} exited during startup"),
                detail: format!("{status}\n--- {}:\n{}", log.display(), read_tail(log)),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Command {
                context: format!("{what} did not become ready in time"),
                detail: format!("--- {}:\n{}", log.display(), read_tail(log)),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of a log file, for error messages.
fn read_tail(path: &Path) -> String {
    fs::read(path)
        .map(|b| tail(&String::from_utf8_lossy(&b), 30))
        .unwrap_or_else(|e| format!("(cannot read: {e})"))
}

/// SyncEvolution's own SyncML HTTP server (`syncevo-http-server` in front of
/// `syncevo-dbus-server` on a private D-Bus), as a reference peer for tests.
///
/// Layout of the server directory: `contacts/` and `calendar/` hold the items (one
/// file per item, named by server LUID), `.syncevo/` is the private `HOME` (peer
/// configs, session logs with wire dumps in `.syncevo/.cache/syncevolution/`), `run/`
/// the bus socket and the process logs.
///
/// Facts this relies on (Debian bookworm, SyncEvolution 2.0.0):
/// * The server picks a per-client configuration only by the client's device ID
///   (`SyncHdr/Source/LocURI` = the peer config's `remoteDeviceId`); unknown device IDs
///   are rejected. All configured clients share the same data directories.
/// * Peer configs come from the `SyncEvolution_Client` template (with underscore) and
///   need `backend=file` in the same command, else the Evolution backend's usability
///   check needs a desktop D-Bus.
/// * The packaged `/usr/bin/syncevo-http-server` has a literal `#!@PYTHON@` shebang,
///   needs `python3-twisted` (not a declared dependency) and listens on all
///   interfaces; a patched copy bound to 127.0.0.1 is run with `/usr/bin/python3`. The
///   copy must not be called `http.py`, which would shadow Python's `http` package.
/// * The stored vCards are padded with empty properties; compare with
///   [`normalize_vcard`].
pub mod server {
    use super::{
        find_in_path, io_err, isolate, read_items, session_dirs, wait_for, write_item, Error,
    };
    use std::collections::BTreeMap;
    use std::fs;
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// The Debian packages the server needs.
    pub const SERVER_PACKAGES: &str = "syncevolution syncevolution-http python3-twisted dbus";

    const HTTP_SERVER: &str = "/usr/bin/syncevo-http-server";
    const DBUS_SERVER: &str = "/usr/libexec/syncevo-dbus-server";
    const PYTHON: &str = "/usr/bin/python3";
    /// URL path of the SyncML endpoint (must be a single segment).
    const URL_PATH: &str = "syncevolution";

    /// Settings of a [`Server`]. [`ServerConfig::default`] gives user `test`, password
    /// `secret` and the device ID `syncevo-interop-client`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ServerConfig {
        /// User name clients must send; empty together with `password` turns credential
        /// checks off.
        pub username: String,
        /// Password clients must send.
        pub password: String,
        /// Client device IDs the server accepts (one peer config each).
        pub client_device_ids: Vec<String>,
        /// Session log level; 5 dumps every wire message on the server side too.
        pub loglevel: u32,
        /// `dumpData`: copy the whole database into the session directory before and
        /// after every session (SyncEvolution's default, true).
        pub dump_data: bool,
        /// Startup limit for each of the three processes.
        pub startup_timeout: Duration,
    }

    impl Default for ServerConfig {
        fn default() -> ServerConfig {
            ServerConfig {
                username: "test".into(),
                password: "secret".into(),
                client_device_ids: vec!["syncevo-interop-client".into()],
                loglevel: 5,
                dump_data: true,
                startup_timeout: Duration::from_secs(15),
            }
        }
    }

    /// Checks that everything the server needs is installed.
    pub fn ensure_installed() -> Result<(), Error> {
        let missing = |what: &str| Error::NotInstalled {
            what: what.into(),
            packages: SERVER_PACKAGES.into(),
        };
        if find_in_path("syncevolution").is_none() {
            return Err(missing("`syncevolution`"));
        }
        if !Path::new(HTTP_SERVER).is_file() {
            return Err(missing(HTTP_SERVER));
        }
        if !Path::new(DBUS_SERVER).is_file() {
            return Err(missing(DBUS_SERVER));
        }
        if find_in_path("dbus-daemon").is_none() {
            return Err(missing("`dbus-daemon`"));
        }
        let probe = Command::new(PYTHON)
            .args(["-c", "import twisted.web.server, dbus, gi"])
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null())
            .output();
        match probe {
            Ok(out) if out.status.success() => Ok(()),
            _ => Err(missing(
                "/usr/bin/python3 with the twisted, dbus and gi modules",
            )),
        }
    }

    /// A running SyncEvolution SyncML server; stopped (its processes killed by PID) on
    /// [`Server::stop`] or drop.
    #[derive(Debug)]
    pub struct Server {
        dir: PathBuf,
        url: String,
        port: u16,
        /// Started processes in stop order: HTTP front end, engine, bus.
        processes: Vec<(&'static str, Child)>,
    }

    /// Escapes text for an XML attribute or element.
    fn xml_escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }

    /// A TCP port that was free on 127.0.0.1 a moment ago.
    fn free_port() -> Result<u16, Error> {
        let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("binding 127.0.0.1:0"))?;
        let port = l
            .local_addr()
            .map_err(io_err("reading the bound address"))?
            .port();
        Ok(port)
    }

    impl Server {
        /// Configures and starts the server in `dir` on a free loopback port.
        pub fn start(dir: &Path, config: ServerConfig) -> Result<Server, Error> {
            ensure_installed()?;
            fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
            let dir = dir
                .canonicalize()
                .map_err(io_err(format!("resolving {}", dir.display())))?;
            let mut server = Server {
                url: String::new(),
                port: 0,
                processes: Vec::new(),
                dir,
            };
            for d in [
                server.contacts_dir(),
                server.calendar_dir(),
                server.home(),
                server.run_dir(),
            ] {
                fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
            }
            server.configure(&config)?;
            // On error `server` is dropped here, which stops what was started.
            server.spawn_all(&config)?;
            Ok(server)
        }

        fn home(&self) -> PathBuf {
            self.dir.join(".syncevo")
        }

        fn run_dir(&self) -> PathBuf {
            self.dir.join("run")
        }

        fn bus_socket(&self) -> PathBuf {
            self.run_dir().join("bus.sock")
        }

        fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
            let mut cmd = Command::new(program);
            isolate(&mut cmd, &self.home());
            cmd.env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", self.bus_socket().display()),
            )
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::null());
            cmd
        }

        /// One peer config `clientN@server` per accepted device ID.
        fn configure(&self, config: &ServerConfig) -> Result<(), Error> {
            for (i, id) in config.client_device_ids.iter().enumerate() {
                let peer = format!("client{}", i + 1);
                let exists = self
                    .home()
                    .join(".config/syncevolution/server/peers")
                    .join(&peer)
                    .is_dir();
                let mut cmd = self.command("syncevolution");
                cmd.env_remove("DBUS_SESSION_BUS_ADDRESS")
                    .args(["--daemon=no", "--configure"]);
                if !exists {
                    cmd.args(["--template", "SyncEvolution_Client"]);
                }
                cmd.args([
                    "keyring=no".to_string(),
                    format!("username={}", config.username),
                    format!("password={}", config.password),
                    format!("remoteDeviceId={id}"),
                    format!("loglevel={}", config.loglevel),
                    "printChanges=0".into(),
                    format!("dumpData={}", u8::from(config.dump_data)),
                    "maxlogdirs=0".into(),
                    "backend=file".into(),
                    "addressbook/databaseFormat=text/vcard".into(),
                    format!(
                        "addressbook/database=file://{}",
                        self.contacts_dir().display()
                    ),
                    "calendar/databaseFormat=text/calendar".into(),
                    format!("calendar/database=file://{}", self.calendar_dir().display()),
                    format!("{peer}@server"),
                    "addressbook".into(),
                    "calendar".into(),
                ]);
                let out = cmd
                    .output()
                    .map_err(io_err("running syncevolution --configure (server peer)"))?;
                if !out.status.success() {
                    return Err(Error::Command {
                        context: format!("configuring server peer {peer}@server for {id:?}"),
                        detail: super::describe_output(out.status, &out.stdout, &out.stderr),
                    });
                }
            }
            Ok(())
        }

        /// Starts process `name` with stdout and stderr going to `run/<name>.log` and
        /// waits until `ready(log text)`. On success it joins the processes that
        /// [`Server::stop`] ends; on failure it is stopped here.
        fn start_process(
            &mut self,
            name: &'static str,
            mut cmd: Command,
            timeout: Duration,
            ready: impl Fn(&Path) -> bool,
        ) -> Result<(), Error> {
            let log = self.run_dir().join(format!("{name}.log"));
            let out =
                fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(io_err(format!("duplicating {}", log.display())))?;
            let mut child = cmd
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(io_err(format!("starting {name}")))?;
            match wait_for(&mut child, name, &log, Instant::now() + timeout, || {
                ready(&log)
            }) {
                Ok(()) => {
                    self.processes.insert(0, (name, child));
                    Ok(())
                }
                Err(e) => {
                    stop_process(child);
                    Err(e)
                }
            }
        }

        fn spawn_all(&mut self, config: &ServerConfig) -> Result<(), Error> {
            let run = self.run_dir();
            let socket = self.bus_socket();
            let _ = fs::remove_file(&socket);
            let log_contains = |needle: &'static str| {
                move |log: &Path| {
                    fs::read_to_string(log)
                        .map(|t| t.contains(needle))
                        .unwrap_or(false)
                }
            };

            // 1. A private session bus without service directories, so nothing is
            //    auto-activated; in the foreground, so it is our child.
            let bus_conf = run.join("bus.conf");
            fs::write(
                &bus_conf,
                format!(
                    "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
                     \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                     <busconfig>\n  <type>session</type>\n  <listen>unix:path={}</listen>\n  \
                     <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
                     <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    \
                     <allow eavesdrop=\"true\"/>\n    <allow own=\"*\"/>\n  </policy>\n\
                     </busconfig>\n",
                    xml_escape(&socket.display().to_string())
                ),
            )
            .map_err(io_err(format!("writing {}", bus_conf.display())))?;
            let mut cmd = self.command("dbus-daemon");
            cmd.arg(format!("--config-file={}", bus_conf.display()))
                .args(["--nofork", "--nopidfile"]);
            self.start_process("dbus-daemon", cmd, config.startup_timeout, |_| {
                socket.exists()
            })?;

            // 2. The SyncML engine; ready once it owns its bus name.
            let mut cmd = self.command(DBUS_SERVER);
            cmd.args([
                "--duration=unlimited",
                "--verbosity=3",
                "--stdout",
                "--no-syslog",
            ]);
            self.start_process(
                "syncevo-dbus-server",
                cmd,
                config.startup_timeout,
                log_contains("got D-Bus name org.syncevolution"),
            )?;

            // 3. The HTTP front end: a patched copy bound to loopback.
            let original = fs::read_to_string(HTTP_SERVER)
                .map_err(io_err(format!("reading {HTTP_SERVER}")))?;
            let listen = "port = reactor.listenTCP(url.port, site)";
            if !original.contains(listen) {
                return Err(Error::Command {
                    context: format!("patching {HTTP_SERVER}"),
                    detail: format!(
                        "`{listen}` not found: unknown syncevo-http-server version, \
                         refusing to run it unpatched (it would listen on all interfaces)"
                    ),
                });
            }
            let patched = original
                .replacen("#!@PYTHON@", "#!/usr/bin/python3", 1)
                .replace(
                    listen,
                    "port = reactor.listenTCP(url.port, site, interface='127.0.0.1')",
                )
                .replace(
                    "return \"<html>SyncEvolution SyncML Server</html>\"",
                    "return b\"<html>SyncEvolution SyncML Server</html>\"",
                );
            // Not `http.py`: the script's directory goes first on sys.path.
            let script = run.join("syncevo_http_server_loopback.py");
            fs::write(&script, patched).map_err(io_err(format!("writing {}", script.display())))?;

            // The free port may be taken before the server binds it (it then exits at
            // once): try a few ports.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let port = free_port()?;
                let url = format!("http://127.0.0.1:{port}/{URL_PATH}");
                let mut cmd = self.command(PYTHON);
                cmd.arg(&script).arg("--debug").arg(&url);
                match self.start_process(
                    "syncevo-http-server",
                    cmd,
                    config.startup_timeout,
                    log_contains("listening on port"),
                ) {
                    Ok(()) => {
                        self.url = url;
                        self.port = port;
                        return Ok(());
                    }
                    Err(e) if attempts >= 5 => return Err(e),
                    Err(_) => {}
                }
            }
        }

        /// The SyncML URL, `http://127.0.0.1:PORT/syncevolution`.
        pub fn url(&self) -> &str {
            &self.url
        }

        /// The TCP port on 127.0.0.1.
        pub fn port(&self) -> u16 {
            self.port
        }

        /// The processes this server started, by name (`syncevo-http-server`,
        /// `syncevo-dbus-server`, `dbus-daemon`) and PID, e.g. to read their CPU time.
        /// The engine forks a `syncevo-dbus-helper` per session, which is not listed:
        /// look for the children of `syncevo-dbus-server`.
        pub fn pids(&self) -> Vec<(&'static str, u32)> {
            self.processes
                .iter()
                .map(|(name, child)| (*name, child.id()))
                .collect()
        }

        /// The server directory.
        pub fn dir(&self) -> &Path {
            &self.dir
        }

        /// Where the server stores contacts, one vCard per file (file name = server LUID).
        pub fn contacts_dir(&self) -> PathBuf {
            self.dir.join("contacts")
        }

        /// Where the server stores calendar items.
        pub fn calendar_dir(&self) -> PathBuf {
            self.dir.join("calendar")
        }

        /// The server's contacts: file name → content (as stored, padded with empty
        /// properties; compare with [`normalize_vcard`](super::normalize_vcard)).
        pub fn read_contacts(&self) -> Result<BTreeMap<String, String>, Error> {
            read_items(&self.contacts_dir())
        }

        /// The server's calendar items: file name → content.
        pub fn read_calendar(&self) -> Result<BTreeMap<String, String>, Error> {
            read_items(&self.calendar_dir())
        }

        /// Seeds the server with a contact (between sessions only).
        pub fn write_contact(&self, name: &str, vcard: &str) -> Result<(), Error> {
            write_item(&self.contacts_dir(), name, vcard)
        }

        /// The server's session log directories (with its own wire dumps), oldest first.
        pub fn session_dirs(&self) -> Result<Vec<PathBuf>, Error> {
            session_dirs(&self.home().join(".cache/syncevolution"), "")
        }

        /// The log files of the server processes (`run/*.log`).
        pub fn process_logs(&self) -> Vec<PathBuf> {
            ["dbus-daemon", "syncevo-dbus-server", "syncevo-http-server"]
                .iter()
                .map(|n| self.run_dir().join(format!("{n}.log")))
                .collect()
        }

        /// Stops the server: SIGTERM to each started process (HTTP front end, engine,
        /// bus), SIGKILL after 3 s, and reaps them. Idempotent.
        pub fn stop(&mut self) {
            for (_, child) in self.processes.drain(..) {
                stop_process(child);
            }
            let _ = fs::remove_file(self.bus_socket());
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// Terminates one child we started, by its PID, and reaps it.
    fn stop_process(mut child: Child) {
        // While the child has not been reaped its PID cannot be reused, so the signal
        // reaches our process and nothing else.
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("/bin/sh")
                .args(["-c", "kill -TERM \"$1\"", "sh", &child.id().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcard_normalisation_ignores_noise() {
        let client = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:abc\r\nFN:Bob Example\r\n\
                      N:Example;Bob;;;\r\nNOTE:a long note that goes on\r\n  and on\r\nEND:VCARD\r\n";
        let server =
            "BEGIN:VCARD\nVERSION:3.0\nPRODID:-//Synthesis AG//NONSGML SyncML Engine//EN\n\
                      REV:20100328T103410Z\nN:Example;Bob\nfn:Bob Example\nX-EVOLUTION-FILE-AS:\n\
                      NICKNAME:\nADR:;;;;;;\nNOTE:a long note that goes on and on\nEND:VCARD\n";
        assert_eq!(normalize_vcard(client), normalize_vcard(server));
        assert_ne!(
            normalize_vcard(client),
            normalize_vcard(&server.replace("Bob Example", "Rob Example"))
        );
    }

    #[test]
    fn wire_message_names() {
        let m = WireMessage::from_path(PathBuf::from(
            "/s/syncevolution-log_msg002_006_outgoing.wbxml",
        ));
        assert_eq!(
            m.map(|m| (m.msg_id, m.seq, m.direction, m.encoding)),
            Some((2, 6, Direction::Outgoing, Encoding::Wbxml))
        );
        let m = WireMessage::from_path(PathBuf::from("syncevolution-log_msg001_003_incoming.xml"));
        assert_eq!(
            m.map(|m| (m.direction, m.encoding)),
            Some((Direction::Incoming, Encoding::Xml))
        );
        assert!(
            WireMessage::from_path(PathBuf::from("syncevolution-log_trm001_001_outgoing.xml"))
                .is_none()
        );
    }

    #[test]
    fn item_names_are_checked() {
        for bad in ["", ".", "..", "a/b", ".hidden"] {
            assert!(check_item_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_item_name("alice.vcf").is_ok());
    }

    #[test]
    fn missing_tools_say_what_to_install() {
        let e = Error::NotInstalled {
            what: "`syncevolution`".into(),
            packages: CLIENT_PACKAGES.into(),
        };
        assert!(e
            .to_string()
            .contains("apt-get install -y syncevolution gcc libc6-dev"));
    }

    #[test]
    fn mode_names_and_alerts() {
        let codes: Vec<u32> = Mode::ALL.iter().map(|m| m.alert_code()).collect();
        assert_eq!(codes, [200, 201, 205, 203, 204, 202]);
        assert_eq!(Mode::RefreshFromServer.to_string(), "refresh-from-server");
    }
}

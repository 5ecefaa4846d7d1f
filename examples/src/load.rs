//! `syncml-load`: a load generator for the SyncML server.
//!
//! N simulated terminals spread over M subscribers run real OMA DS sessions (packages 1, 3,
//! 5 over HTTP, md5 auth) against one or more server URLs (several nodes on one database),
//! round robin per session; with `--hop` every message of a session goes to the next URL in
//! turn (the RespURI's path and query kept), which only works with stateless nodes.
//! Loopback URLs only.
//!
//! ```text
//! # 1. provision (server stopped, or any time with SQLite WAL): subscribers, terminals and,
//! #    for --mode download, K seed items per subscriber. Same store API as the CLI's
//! #    `subscriber add` / `terminal register` (md5 verifier only).
//! syncml-load --data syncml-data --subscribers 10 --terminals 100 --mode two-way --items 10 --provision-only
//! # 2. start the server on that data dir
//! syncml-server --data syncml-data serve --listen 127.0.0.1:8080 &
//! # 3. load it
//! syncml-load --url http://127.0.0.1:8080/sync --subscribers 10 --terminals 100 \
//!     --mode two-way --items 10 --concurrency 100 --duration 20 --server-pid $!
//! ```
//!
//! On PostgreSQL, provision with `--db postgres://...` instead of `--data`, start the nodes
//! with `syncml-server --db postgres://... serve --listen ...` and give one `--url` per node.
//!
//! Modes: `slow` (every session a slow sync, 201, of the terminal's K items), `two-way`
//! (200 with K local changes per session: adds until the terminal owns 2K items, then
//! replaces and deletes), `download` (205 refresh-from-server of the subscriber's K seeded
//! items). Each terminal only edits items it created, so a final two-way round
//! (`--verify`) must leave every terminal of a subscriber with exactly the union of its
//! siblings' items.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use syncml_client::mem::MemoryStore;
use syncml_client::{
    ClientError, ClientSession, DataStore, HttpTransport, SessionConfig, SessionError, Step,
    SyncMode, Transport, TransportError,
};
use syncml_server::store::{
    DatastoreKey, NewItem, NewSubscriber, NewTerminal, PgStore, RegisteredBy, Secret, SqliteStore,
    Store, StoreExt, Timestamp,
};

/// What every session does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Slow sync (201) of the terminal's K items.
    Slow,
    /// Two-way sync (200) with K local changes.
    TwoWay,
    /// Refresh from server (205) of the subscriber's K seeded items.
    Download,
}

/// Load settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server URLs, used round robin per session (loopback only).
    pub urls: Vec<String>,
    /// Send every message of a session to the next URL in turn (stateless nodes).
    pub hop: bool,
    /// M subscribers.
    pub subscribers: usize,
    /// N terminals (terminal i belongs to subscriber i % M).
    pub terminals: usize,
    /// The session kind.
    pub mode: Mode,
    /// K: items per slow sync / changes per two-way sync / seeded items per subscriber.
    pub items: usize,
    /// Stop after this many sessions.
    pub sessions: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Sessions in flight (at most N: a terminal never runs two sessions at once).
    pub concurrency: usize,
    /// Paced starts: session n is due `n / rate` seconds after the clock starts (all
    /// workers together), instead of each worker starting its next session at once. Below
    /// the server's capacity this measures latency without the queue a closed loop of
    /// `concurrency` workers keeps full; a session that starts over 10 ms after it was due
    /// counts as late (the offered rate was more than the server or the workers took).
    pub rate: Option<f64>,
    /// Terminal password (all terminals).
    pub password: String,
    /// Prefix of subscriber and terminal IDs.
    pub prefix: String,
    /// Server process to watch (CPU, RSS from /proc).
    pub server_pid: Option<u32>,
    /// Progress line on stderr every second.
    pub progress: bool,
    /// After the run, one quiet two-way sync per terminal and a convergence check.
    pub verify: bool,
    /// Before the clock starts, one session per terminal (the first, slow sync), so the
    /// measured sessions are all of the chosen mode.
    pub warmup: bool,
    /// Told once the warm-up round has completed, before the measured load starts (a
    /// test starts disrupting the servers then, not while the first syncs run).
    pub warmed: Option<std::sync::mpsc::Sender<()>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            urls: vec!["http://127.0.0.1:8080/sync".into()],
            hop: false,
            subscribers: 1,
            terminals: 1,
            mode: Mode::TwoWay,
            items: 10,
            sessions: None,
            duration: Some(Duration::from_secs(10)),
            concurrency: 1,
            rate: None,
            password: "load-secret".into(),
            prefix: "load".into(),
            server_pid: None,
            progress: false,
            verify: false,
            warmup: false,
            warmed: None,
        }
    }
}

/// The ID of subscriber `m`.
pub fn subscriber_id(o: &Options, m: usize) -> String {
    format!("{}-sub-{m:06}", o.prefix)
}

/// The ID of terminal `n`.
pub fn terminal_id(o: &Options, n: usize) -> String {
    format!("IMEI:{}-{n:08}", o.prefix)
}

/// The subscriber of terminal `n`.
pub fn subscriber_of(o: &Options, n: usize) -> String {
    subscriber_id(o, n % o.subscribers.max(1))
}

fn card(name: &str, seq: u64) -> String {
    format!("BEGIN:VCARD\r\nVERSION:2.1\r\nN:{name};{seq}\r\nFN:{name} {seq}\r\nEND:VCARD\r\n")
}

/// A seed item of subscriber `sub` (download mode).
pub fn seed_card(sub: &str, i: usize) -> String {
    card(&format!("seed-{sub}"), i as u64)
}

/// Writes the subscribers, terminals (md5 verifier of `password`) and, in download mode,
/// K seed items per subscriber into `store`, as `syncml-server subscriber add` and
/// `terminal register` would. Idempotent.
pub fn provision(store: &dyn Store, o: &Options) -> Result<(), String> {
    let now = Timestamp::from_unix_secs(unix_now());
    for m in 0..o.subscribers {
        let sub = subscriber_id(o, m);
        let terminals: Vec<usize> = (m..o.terminals).step_by(o.subscribers).collect();
        store
            .transaction(|tx| {
                let fresh = tx.subscriber_get(&sub)?.is_none();
                if fresh {
                    tx.subscriber_create(
                        &NewSubscriber {
                            id: sub.clone(),
                            display_name: None,
                            security_level: 0,
                        },
                        now,
                    )?;
                }
                for &n in &terminals {
                    let t = terminal_id(o, n);
                    if tx.terminal_find(&t)?.is_some() {
                        continue;
                    }
                    tx.terminal_register(
                        &NewTerminal {
                            terminal_id: t,
                            subscriber_id: sub.clone(),
                            md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(
                                &sub,
                                &o.password,
                            ))),
                            basic_verifier: None,
                            classes: vec![],
                            registered_by: RegisteredBy::Operator,
                        },
                        now,
                    )?;
                }
                if fresh && o.mode == Mode::Download {
                    let items: Vec<NewItem> = (0..o.items)
                        .map(|i| NewItem {
                            guid: None,
                            content_type: "text/x-vcard".into(),
                            data: seed_card(&sub, i).into_bytes(),
                        })
                        .collect();
                    tx.items_put(DatastoreKey::new(&sub, "contacts"), None, &items, now)?;
                }
                Ok(())
            })
            .map_err(|e| format!("provisioning {sub}: {e}"))?;
    }
    Ok(())
}

/// Opens (creating) the SQLite data directory `dir` and provisions it.
pub fn provision_dir(dir: &Path, o: &Options) -> Result<(), String> {
    let store = SqliteStore::open_in_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    provision(&store, o)
}

/// Connects to (and migrates) the PostgreSQL database `url` and provisions it; refreshes
/// the planner statistics afterwards (see `PgStore::analyze`). Returns the database's
/// host, port and name (no credentials), for messages.
pub fn provision_db(url: &str, o: &Options) -> Result<String, String> {
    let store = PgStore::connect(url).map_err(|e| format!("PostgreSQL: {e}"))?;
    let target = store.target().to_string();
    provision(&store, o)?;
    store
        .analyze()
        .map_err(|e| format!("{target}: ANALYZE: {e}"))?;
    Ok(target)
}

/// `url` with its scheme and authority replaced by those of `node` (path and query kept):
/// where a hopping session sends its next message.
pub fn rehost(url: &str, node: &str) -> String {
    let split = |u: &str| -> (String, String) {
        let after = u.find("://").map_or(0, |i| i + 3);
        match u[after..].find('/') {
            Some(i) => (u[..after + i].to_string(), u[after + i..].to_string()),
            None => (u.to_string(), "/".to_string()),
        }
    };
    format!("{}{}", split(node).0, split(url).1)
}

/// Refuses anything but `http://` to a loopback address.
pub fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let ok = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(format!("{url}: not a loopback address (refused)"))
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ----- latency histogram (bounded: ~3,800 buckets, 1.6 % resolution) ------------------------

/// A log-linear histogram of microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 + 58 * 64],
            n: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn bucket(v: u64) -> usize {
        if v < 64 {
            v as usize
        } else {
            let e = 63 - v.leading_zeros() as usize;
            let m = ((v >> (e - 6)) & 63) as usize;
            64 + (e - 6) * 64 + m
        }
    }

    fn low(i: usize) -> u64 {
        if i < 64 {
            i as u64
        } else {
            let e = (i - 64) / 64 + 6;
            let m = ((i - 64) % 64) as u64;
            (64 + m) << (e - 6)
        }
    }

    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.counts[Self::bucket(us)] += 1;
        self.n += 1;
        self.max = self.max.max(us);
    }

    /// Adds another histogram.
    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    /// Samples.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The `q` quantile (0..=1), in microseconds (lower bound of its bucket).
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::low(i).min(self.max);
            }
        }
        self.max
    }

    /// Largest sample, microseconds.
    pub fn max_us(&self) -> u64 {
        self.max
    }
}

// ----- /proc ---------------------------------------------------------------------------------

/// CPU and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// utime + stime, clock ticks (USER_HZ, 100 on Linux).
    pub cpu_ticks: u64,
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kib: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_ticks: utime + stime,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

// ----- terminals -----------------------------------------------------------------------------

struct Term {
    id: String,
    subscriber: String,
    store: MemoryStore,
    nonce: Option<String>,
    /// Items this terminal created and still owns: LUID -> content.
    own: BTreeMap<String, String>,
    seq: u64,
    cursor: usize,
    sessions: u64,
    /// A session of this terminal went through (it has anchors: no more slow syncs).
    synced: bool,
}

impl Term {
    fn new(o: &Options, n: usize) -> Term {
        Term {
            id: terminal_id(o, n),
            subscriber: subscriber_of(o, n),
            store: MemoryStore::contacts(),
            nonce: None,
            own: BTreeMap::new(),
            seq: 0,
            cursor: 0,
            sessions: 0,
            synced: false,
        }
    }

    fn add(&mut self) {
        self.seq += 1;
        let c = card(&self.id, self.seq);
        let luid = self.store.add(c.clone());
        self.own.insert(luid, c);
    }

    /// Local edits before a session of `mode`.
    fn prepare(&mut self, mode: Mode, k: usize) -> SyncMode {
        match mode {
            Mode::Slow => {
                while self.own.len() < k {
                    self.add();
                }
                SyncMode::Slow
            }
            Mode::Download => SyncMode::RefreshFromServer,
            Mode::TwoWay => {
                let cap = (2 * k).max(2);
                for i in 0..k {
                    if self.own.len() < cap {
                        self.add();
                        continue;
                    }
                    // Until a session went through, every session is a slow sync, which
                    // carries no deletes and tells an edit from a new item by content
                    // only: an item the server took from a failed slow sync, edited
                    // since, would come back as two. So no edits before the first
                    // complete session (a handset's first sync is that, too).
                    if !self.synced {
                        break;
                    }
                    self.cursor = (self.cursor + 1) % self.own.len();
                    let luid = self.own.keys().nth(self.cursor).cloned().expect("own item");
                    if i % 2 == 0 {
                        self.seq += 1;
                        let c = card(&self.id, self.seq);
                        self.store.update(&luid, c.clone());
                        self.own.insert(luid, c);
                    } else {
                        self.store.delete(&luid);
                        self.own.remove(&luid);
                    }
                }
                SyncMode::TwoWay
            }
        }
    }
}

// ----- the run -------------------------------------------------------------------------------

/// What one worker measured.
#[derive(Debug, Default, Clone)]
struct Stats {
    sessions_ok: u64,
    sessions_failed: u64,
    messages: u64,
    items: u64,
    items_sent: u64,
    items_received: u64,
    per_message: Histogram,
    per_session: Histogram,
    errors: BTreeMap<String, u64>,
    late_starts: u64,
}

impl Stats {
    fn merge(&mut self, o: &Stats) {
        self.sessions_ok += o.sessions_ok;
        self.sessions_failed += o.sessions_failed;
        self.messages += o.messages;
        self.items += o.items;
        self.items_sent += o.items_sent;
        self.items_received += o.items_received;
        self.per_message.merge(&o.per_message);
        self.per_session.merge(&o.per_session);
        self.late_starts += o.late_starts;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// The result of a convergence check.
#[derive(Debug, Clone, Default)]
pub struct Verify {
    /// Terminals checked.
    pub terminals: usize,
    /// Terminals whose store differs from the expected items of their subscriber.
    pub mismatched: Vec<String>,
    /// Why, per mismatched terminal (its check session's error, or the difference).
    pub reasons: BTreeMap<String, String>,
    /// Per subscriber, the items every terminal and the server must hold (sorted).
    pub expected: BTreeMap<String, Vec<String>>,
    /// Per subscriber, what its terminals hold beyond `expected` when that is only older
    /// versions of items its own terminals wrote (sorted): every terminal of the
    /// subscriber holds the same extras (they converged); nothing is lost, duplicated, or
    /// foreign, but an older version came back. A slow sync that merges by content does
    /// this when the handset's copy of an item another terminal has edited since no
    /// longer matches: one the handset asks for itself (its very first sync failed after
    /// the server committed it). A slow sync the server forces (its anchors moved in a
    /// session whose last answer the handset never got) keeps the terminal's map and
    /// sends the newer version instead, so a run with `warmup` should report none.
    pub stale: BTreeMap<String, Vec<String>>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Wall time of the load phase.
    pub elapsed: Duration,
    /// Completed sessions.
    pub sessions_ok: u64,
    /// Failed sessions.
    pub sessions_failed: u64,
    /// HTTP requests (SyncML messages) sent.
    pub messages: u64,
    /// Items sent plus received.
    pub items: u64,
    /// Items sent (client changes the server acknowledged).
    pub items_sent: u64,
    /// Items received from the server.
    pub items_received: u64,
    /// Latency of one message (request to decoded reply).
    pub per_message: Histogram,
    /// Latency of one session (package 1 to the end).
    pub per_session: Histogram,
    /// Failures by kind (and status).
    pub errors: BTreeMap<String, u64>,
    /// With a paced rate: sessions that started more than 10 ms after they were due.
    pub late_starts: u64,
    /// The paced rate asked for, if any (sessions/s).
    pub rate: Option<f64>,
    /// The server process before and after, if watched.
    pub server_before: Option<ProcSample>,
    /// See `server_before`.
    pub server_after: Option<ProcSample>,
    /// Peak RSS of the server seen while sampling (KiB).
    pub server_peak_rss_kib: u64,
    /// CPU seconds this process (the load generator) used during the load phase.
    pub client_cpu_secs: f64,
    /// Convergence check (`verify`).
    pub verify: Option<Verify>,
}

impl Report {
    /// Sessions per second.
    pub fn sessions_per_sec(&self) -> f64 {
        self.sessions_ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Items per second.
    pub fn items_per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// All failures.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "elapsed        {secs:.2} s\nsessions       {} ok, {} failed  ({:.1} sessions/s)",
            self.sessions_ok,
            self.sessions_failed,
            self.sessions_per_sec()
        )?;
        writeln!(
            f,
            "messages       {}  ({:.1} msg/s)\nitems          {}  ({:.1} items/s; {} sent, {} received)",
            self.messages,
            self.messages as f64 / secs.max(1e-9),
            self.items,
            self.items_per_sec(),
            self.items_sent,
            self.items_received
        )?;
        for (name, h) in [
            ("per message", &self.per_message),
            ("per session", &self.per_session),
        ] {
            writeln!(
                f,
                "latency {name}  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (n={})",
                ms(h.quantile_us(0.50)),
                ms(h.quantile_us(0.90)),
                ms(h.quantile_us(0.99)),
                ms(h.max_us()),
                h.count()
            )?;
        }
        if let Some(rate) = self.rate {
            writeln!(
                f,
                "paced          {rate:.1} sessions/s asked, {} started over 10 ms late",
                self.late_starts
            )?;
        }
        if self.errors.is_empty() {
            writeln!(f, "errors         none")?;
        } else {
            for (k, v) in &self.errors {
                writeln!(f, "error          {k}: {v}")?;
            }
        }
        if let (Some(b), Some(a)) = (self.server_before, self.server_after) {
            let cpu = a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / 100.0;
            writeln!(
                f,
                "server cpu     {cpu:.2} s  ({:.0} % of one core)\nserver rss     before {} KiB, after {} KiB, peak sampled {} KiB, VmHWM {} KiB",
                100.0 * cpu / secs.max(1e-9),
                b.rss_kib,
                a.rss_kib,
                self.server_peak_rss_kib,
                a.hwm_kib
            )?;
        }
        writeln!(
            f,
            "load cpu       {:.2} s  ({:.0} % of one core, this process)",
            self.client_cpu_secs,
            100.0 * self.client_cpu_secs / secs.max(1e-9)
        )?;
        if let Some(v) = &self.verify {
            writeln!(
                f,
                "converged      {}/{} terminals",
                v.terminals - v.mismatched.len(),
                v.terminals
            )?;
            for (t, why) in &v.reasons {
                writeln!(f, "diverged       {t}: {why}")?;
            }
            for (sub, old) in &v.stale {
                writeln!(
                    f,
                    "stale          {sub}: {} older versions merged back by slow syncs",
                    old.len()
                )?;
            }
        }
        Ok(())
    }
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Transport(TransportError::Http { status, .. }) => format!("http {status}"),
        ClientError::Transport(TransportError::Timeout) => "timeout".into(),
        ClientError::Transport(TransportError::Io(_)) => "io".into(),
        ClientError::Transport(t) => format!("transport: {t}"),
        ClientError::Session(SessionError::AuthFailed(s)) => format!("auth failed {}", s.0),
        ClientError::Session(SessionError::ServerRefused(s)) => format!("server refused {}", s.0),
        ClientError::Session(SessionError::Decode(_)) => "decode".into(),
        ClientError::Session(SessionError::Protocol(_)) => "protocol".into(),
        ClientError::Session(SessionError::TooManyMessages(_)) => "too many messages".into(),
        ClientError::Session(s) => format!("session: {s}"),
        ClientError::Store(_) => "local store".into(),
        ClientError::Refused(_) => "gate refused".into(),
        other => format!("other: {other}"),
    }
}

/// One session of `t` starting at `urls[first]` (with `hop`, message i goes to
/// `urls[(first + i) % len]`): (messages, items) or the error.
#[allow(clippy::too_many_arguments)]
async fn session(
    transport: &HttpTransport,
    urls: &[String],
    first: usize,
    hop: bool,
    t: &mut Term,
    mode: SyncMode,
    password: &str,
    per_message: &mut Histogram,
) -> Result<(u32, u64, u64), ClientError> {
    t.sessions += 1;
    let mut cfg = SessionConfig::new(
        &urls[first % urls.len()],
        t.id.clone(),
        t.subscriber.clone(),
        password,
    );
    cfg.session_id = t.sessions.to_string();
    cfg.nonce = t.nonce.clone();
    cfg.now = unix_now();
    let mut s = ClientSession::new(cfg, &[mode]);
    let mut stores = [&mut t.store as &mut dyn DataStore];
    let result = async {
        let mut out = s.start(&mut stores)?;
        for i in 0..1000 {
            let body = out.to_bytes()?;
            let url = if hop {
                rehost(&out.url, &urls[(first + i) % urls.len()])
            } else {
                out.url.clone()
            };
            let t0 = Instant::now();
            // A busy answer (101) comes back from `handle` as the same message to send
            // again (the client session does that, up to its limit).
            let (_ct, reply) = transport.post(&url, out.content_type(), body).await?;
            let msg =
                syncml_core::decode(&reply).map_err(|e| SessionError::Decode(e.to_string()))?;
            per_message.record(t0.elapsed());
            match s.handle(msg, &mut stores)? {
                Step::Send(next) => out = next,
                Step::Done(r) => {
                    if let Some(st) = r.stores.iter().find(|st| st.failed.is_some()) {
                        let code = st.failed.map_or(0, |c| c.0);
                        return Err(ClientError::Session(SessionError::ServerRefused(
                            syncml_core::StatusCode(code),
                        )));
                    }
                    t.synced = true;
                    return Ok((r.messages_sent, r.sent() as u64, r.received() as u64));
                }
            }
        }
        Err(SessionError::TooManyMessages(1000).into())
    }
    .await;
    if let Some(n) = s.next_nonce() {
        t.nonce = Some(n.to_string());
    }
    if result.is_err() {
        let _ = s.abort(&mut stores);
        // The server may have completed the session although its last answer never
        // arrived (a node killed right after the commit): the handset's anchors then lag
        // the server's and its next session is a slow sync (508). A slow sync merges by
        // content (OMA DS: it carries no deletes and no edit history), so an item edited
        // before it would come back as a second item beside the server's older version.
        // Like a careful handset, make no edits until a session went through again.
        t.synced = false;
    }
    result
}

struct Shared {
    opts: Options,
    transport: HttpTransport,
    pool: Mutex<VecDeque<Term>>,
    started: AtomicU64,
    next_url: AtomicU64,
    done_ok: AtomicU64,
    done_err: AtomicU64,
    items: AtomicU64,
    stop: AtomicBool,
    deadline: std::sync::OnceLock<Instant>,
    /// When the measured load started (paced starts count from it).
    clock: std::sync::OnceLock<Instant>,
}

async fn worker(sh: Arc<Shared>) -> Stats {
    let mut st = Stats::default();
    loop {
        if sh.stop.load(Ordering::Relaxed)
            || sh.deadline.get().is_some_and(|d| Instant::now() >= *d)
        {
            break;
        }
        let n = sh.started.fetch_add(1, Ordering::Relaxed);
        if sh.opts.sessions.is_some_and(|max| n >= max) {
            break;
        }
        if let (Some(rate), Some(clock)) = (sh.opts.rate, sh.clock.get()) {
            let due = *clock + Duration::from_secs_f64(n as f64 / rate);
            if sh.deadline.get().is_some_and(|d| due >= *d) {
                break;
            }
            let now = Instant::now();
            if due > now {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            } else if now - due > Duration::from_millis(10) {
                st.late_starts += 1;
            }
        }
        let Some(mut t) = sh.pool.lock().expect("pool").pop_front() else {
            break;
        };
        let mode = t.prepare(sh.opts.mode, sh.opts.items);
        let u = sh.next_url.fetch_add(1, Ordering::Relaxed) as usize % sh.opts.urls.len();
        let t0 = Instant::now();
        let r = session(
            &sh.transport,
            &sh.opts.urls,
            u,
            sh.opts.hop,
            &mut t,
            mode,
            &sh.opts.password,
            &mut st.per_message,
        )
        .await;
        match r {
            Ok((msgs, sent, received)) => {
                let items = sent + received;
                st.items_sent += sent;
                st.items_received += received;
                st.per_session.record(t0.elapsed());
                st.sessions_ok += 1;
                st.messages += u64::from(msgs);
                st.items += items;
                sh.done_ok.fetch_add(1, Ordering::Relaxed);
                sh.items.fetch_add(items, Ordering::Relaxed);
            }
            Err(e) => {
                st.sessions_failed += 1;
                *st.errors.entry(error_kind(&e)).or_default() += 1;
                sh.done_err.fetch_add(1, Ordering::Relaxed);
            }
        }
        sh.pool.lock().expect("pool").push_back(t);
    }
    st
}

/// Runs the load described by `o` (inside a tokio runtime) and reports.
pub async fn run(o: Options) -> Result<Report, String> {
    if o.urls.is_empty() {
        return Err("no --url".into());
    }
    for u in &o.urls {
        check_loopback(u)?;
    }
    if o.terminals == 0 || o.subscribers == 0 || o.subscribers > o.terminals {
        return Err("need 1 <= subscribers <= terminals".into());
    }
    if o.sessions.is_none() && o.duration.is_none() {
        return Err("bound the run with --sessions and/or --duration".into());
    }
    if o.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err("--rate must be a positive number of sessions per second".into());
    }
    let concurrency = o.concurrency.clamp(1, o.terminals);
    let pool: VecDeque<Term> = (0..o.terminals).map(|n| Term::new(&o, n)).collect();
    let sh = Arc::new(Shared {
        deadline: std::sync::OnceLock::new(),
        clock: std::sync::OnceLock::new(),
        transport: HttpTransport::new().with_timeout(Duration::from_secs(30)),
        pool: Mutex::new(pool),
        started: AtomicU64::new(0),
        next_url: AtomicU64::new(0),
        done_ok: AtomicU64::new(0),
        done_err: AtomicU64::new(0),
        items: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        opts: o.clone(),
    });
    if o.warmup {
        let terms: Vec<Term> = sh.pool.lock().expect("pool").drain(..).collect();
        let n = terms.len();
        let done = round(&sh, terms, concurrency).await;
        let failed = n - done.iter().filter(|(_, r)| r.is_ok()).count();
        sh.pool
            .lock()
            .expect("pool")
            .extend(done.into_iter().map(|(t, _)| t));
        if failed > 0 {
            return Err(format!("warm-up: {failed} of {n} terminals failed"));
        }
    }
    if let Some(tell) = &o.warmed {
        // The receiver may be gone; the load goes on regardless.
        let _ = tell.send(());
    }
    let server_before = o.server_pid.and_then(proc_sample);
    let self_before = proc_sample(std::process::id());
    let start = Instant::now();
    let _ = sh.clock.set(start);
    if let Some(d) = o.duration {
        let _ = sh.deadline.set(start + d);
    }
    let workers: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(worker(sh.clone())))
        .collect();

    // Progress and server sampling, once a second.
    let monitor = {
        let sh = sh.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(p) = sh.opts.server_pid.and_then(proc_sample) {
                    peak = peak.max(p.rss_kib);
                }
                if sh.opts.progress {
                    let e = start.elapsed().as_secs_f64();
                    let ok = sh.done_ok.load(Ordering::Relaxed);
                    eprint!(
                        "\r[{e:6.1}s] sessions {ok} ({:.1}/s)  items {}  errors {}   ",
                        ok as f64 / e,
                        sh.items.load(Ordering::Relaxed),
                        sh.done_err.load(Ordering::Relaxed)
                    );
                }
                if sh.stop.load(Ordering::Relaxed) {
                    return peak;
                }
            }
        })
    };

    let mut stats = Stats::default();
    for w in workers {
        stats.merge(&w.await.map_err(|e| format!("worker: {e}"))?);
    }
    let elapsed = start.elapsed();
    let server_after = o.server_pid.and_then(proc_sample);
    let self_after = proc_sample(std::process::id());
    sh.stop.store(true, Ordering::Relaxed);
    let mut peak = monitor.await.unwrap_or(0);
    if let Some(a) = server_after {
        peak = peak.max(a.rss_kib);
    }
    if o.progress {
        eprintln!();
    }

    let verify = if o.verify {
        Some(verify(&sh, concurrency).await)
    } else {
        None
    };

    Ok(Report {
        elapsed,
        sessions_ok: stats.sessions_ok,
        sessions_failed: stats.sessions_failed,
        messages: stats.messages,
        items: stats.items,
        items_sent: stats.items_sent,
        items_received: stats.items_received,
        per_message: stats.per_message,
        per_session: stats.per_session,
        errors: stats.errors,
        late_starts: stats.late_starts,
        rate: o.rate,
        server_before,
        server_after,
        server_peak_rss_kib: peak,
        client_cpu_secs: match (self_before, self_after) {
            (Some(b), Some(a)) => a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / 100.0,
            _ => 0.0,
        },
        verify,
    })
}

/// One session per terminal in `terms`, `concurrency` at a time, without local edits:
/// two-way (slow the first time), or refresh-from-server in download mode.
async fn round(
    sh: &Arc<Shared>,
    terms: Vec<Term>,
    concurrency: usize,
) -> Vec<(Term, Result<(), String>)> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(terms.len());
    for (n, mut t) in terms.into_iter().enumerate() {
        let sh = sh.clone();
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::default();
            let mode = if sh.opts.mode == Mode::Download {
                SyncMode::RefreshFromServer
            } else {
                SyncMode::TwoWay
            };
            let r = session(
                &sh.transport,
                &sh.opts.urls,
                n,
                sh.opts.hop,
                &mut t,
                mode,
                &sh.opts.password,
                &mut h,
            )
            .await;
            drop(permit);
            (t, r.map(drop).map_err(|e| error_kind(&e)))
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for task in tasks {
        if let Ok(r) = task.await {
            out.push(r);
        }
    }
    out
}

/// Two quiet rounds, one two-way sync per terminal each: the first sends what failed
/// sessions left pending, then every terminal must hold exactly the items its
/// subscriber's terminals own (download mode: the seeds).
async fn verify(sh: &Arc<Shared>, concurrency: usize) -> Verify {
    let terms: Vec<Term> = sh.pool.lock().expect("pool").drain(..).collect();
    let terms: Vec<Term> = round(sh, terms, concurrency)
        .await
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    let mode = sh.opts.mode;
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &terms {
        let e = expected.entry(t.subscriber.clone()).or_default();
        if mode == Mode::Download {
            if e.is_empty() {
                e.extend((0..sh.opts.items).map(|i| seed_card(&t.subscriber, i)));
            }
        } else {
            e.extend(t.own.values().cloned());
        }
    }
    for v in expected.values_mut() {
        v.sort();
    }
    // For each subscriber: the cards its terminals wrote, up to each one's latest.
    let mut writers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for t in &terms {
        writers
            .entry(t.subscriber.clone())
            .or_default()
            .insert(t.id.clone(), t.seq);
    }
    let results = round(sh, terms, concurrency).await;
    let mut out = Verify {
        terminals: results.len(),
        ..Verify::default()
    };
    for (t, r) in results {
        let want = expected.get(&t.subscriber).cloned().unwrap_or_default();
        let have = t.store.contents();
        let older_own = |h: &String| {
            writers.get(&t.subscriber).is_some_and(|w| {
                w.iter()
                    .any(|(id, seq)| (1..=*seq).any(|n| card(id, n) == *h))
            })
        };
        let extras: Vec<String> = have.iter().filter(|h| !want.contains(h)).cloned().collect();
        let mut unique = have.clone();
        unique.dedup();
        let only_stale = mode != Mode::Download
            && !extras.is_empty()
            && unique.len() == have.len()
            && want.iter().all(|w| have.contains(w))
            && extras.iter().all(older_own);
        let reason = match r {
            Err(e) => Some(format!("check session failed: {e}")),
            Ok(()) if only_stale => {
                let seen = out
                    .stale
                    .entry(t.subscriber.clone())
                    .or_insert_with(|| extras.clone());
                (*seen != extras).then(|| {
                    format!(
                        "older versions held differ between the subscriber's terminals: {} here",
                        extras.len()
                    )
                })
            }
            Ok(()) if have != want => {
                let missing = want.iter().filter(|w| !have.contains(w)).count();
                let extra = have.iter().filter(|h| !want.contains(h)).count();
                let mut unique = have.clone();
                unique.dedup();
                let names: Vec<String> = have
                    .iter()
                    .filter(|h| !want.contains(h))
                    .take(6)
                    .map(|h| {
                        h.lines()
                            .find(|l| l.starts_with("FN:"))
                            .unwrap_or("?")
                            .to_string()
                    })
                    .collect();
                Some(format!(
                    "holds {} items, expected {}: {missing} missing, {extra} unexpected ({}), {} duplicated",
                    have.len(),
                    want.len(),
                    names.join(", "),
                    have.len() - unique.len()
                ))
            }
            Ok(()) => None,
        };
        if let Some(reason) = reason {
            out.reasons.insert(t.id.clone(), reason);
            out.mismatched.push(t.id.clone());
        }
    }
    out.expected = expected;
    out
}

// ----- command line --------------------------------------------------------------------------

/// SyncML load generator: real OMA DS sessions over HTTP against loopback servers.
#[derive(clap::Parser, Debug)]
#[command(name = "syncml-load")]
struct Cli {
    /// Server URL (repeat for several nodes; used round robin). Loopback only.
    #[arg(long = "url", default_value = "http://127.0.0.1:8080/sync")]
    urls: Vec<String>,
    /// Send every message of a session to the next --url in turn (stateless nodes).
    #[arg(long)]
    hop: bool,
    /// M subscribers.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// N terminals (terminal i belongs to subscriber i mod M).
    #[arg(long, default_value_t = 1)]
    terminals: usize,
    /// Session kind.
    #[arg(long, value_enum, default_value = "two-way")]
    mode: Mode,
    /// K: items per slow sync, changes per two-way sync, seed items per subscriber.
    #[arg(long, default_value_t = 10)]
    items: usize,
    /// Stop after this many sessions.
    #[arg(long)]
    sessions: Option<u64>,
    /// Stop after this many seconds (default 10 when --sessions is not given).
    #[arg(long)]
    duration: Option<f64>,
    /// Sessions in flight (at most --terminals).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Start sessions at this total rate (sessions/s) instead of back to back: latency
    /// below capacity, without a closed loop's queue.
    #[arg(long)]
    rate: Option<f64>,
    /// Provision subscribers and terminals into this SQLite data directory first.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// Provision subscribers and terminals into this PostgreSQL database first
    /// (`postgres://user@host:port/db`, as given to `syncml-server --db`).
    #[arg(long, conflicts_with = "data")]
    db: Option<String>,
    /// Only provision (needs --data or --db), then exit.
    #[arg(long)]
    provision_only: bool,
    /// Watch this server process (CPU, RSS from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Password of every terminal.
    #[arg(long, default_value = "load-secret")]
    password: String,
    /// Prefix of subscriber and terminal IDs.
    #[arg(long, default_value = "load")]
    prefix: String,
    /// After the run, sync every terminal once more and check convergence.
    #[arg(long)]
    verify: bool,
    /// Before measuring, one untimed session per terminal (its initial slow sync).
    #[arg(long)]
    warmup: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[allow(dead_code)] // not used when the test includes this file as a module
/// The generator runs on the machine of the server it measures: glibc malloc's free
/// lists were a third of its CPU (`perf record` of a 100-concurrent run), CPU the server
/// then did not get. mimalloc, as in the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = Cli::parse();
    let duration = match (cli.duration, cli.sessions) {
        (Some(d), _) => Some(Duration::from_secs_f64(d)),
        (None, None) => Some(Duration::from_secs(10)),
        (None, Some(_)) => None,
    };
    let opts = Options {
        urls: cli.urls,
        hop: cli.hop,
        subscribers: cli.subscribers,
        terminals: cli.terminals,
        mode: cli.mode,
        items: cli.items,
        sessions: cli.sessions,
        duration,
        concurrency: cli.concurrency,
        rate: cli.rate,
        password: cli.password,
        prefix: cli.prefix,
        server_pid: cli.server_pid,
        progress: !cli.quiet,
        verify: cli.verify,
        warmup: cli.warmup,
        warmed: None,
    };
    let provisioned = match (&cli.data, &cli.db) {
        (Some(dir), _) => Some(provision_dir(dir, &opts).map(|()| dir.display().to_string())),
        (None, Some(url)) => Some(provision_db(url, &opts)),
        (None, None) => None,
    };
    match provisioned {
        Some(Err(e)) => {
            eprintln!("syncml-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
        Some(Ok(place)) => {
            eprintln!(
                "provisioned {} subscribers, {} terminals in {place}",
                opts.subscribers, opts.terminals
            );
            if cli.provision_only {
                return std::process::ExitCode::SUCCESS;
            }
        }
        None if cli.provision_only => {
            eprintln!("syncml-load: --provision-only needs --data or --db");
            return std::process::ExitCode::FAILURE;
        }
        None => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("syncml-load: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(opts)) {
        Ok(r) => {
            print!("{r}");
            let bad =
                r.error_count() > 0 || r.verify.as_ref().is_some_and(|v| !v.mismatched.is_empty());
            if bad {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("syncml-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

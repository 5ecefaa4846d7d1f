//! Operations metrics of one server node, in the Prometheus text exposition format
//! (version 0.0.4), served at `GET /metrics`.
//!
//! Counters and the latency histogram are plain atomics (labelled families behind a
//! mutex held for a map update); nothing here does I/O. What a message did is read off
//! the message and the reply ([`Observation::of`]), so the session engine needs no
//! hooks: a session starts with the reply that accepts its credentials (SyncHdr status
//! 212), completes with a final reply that carries no RespURI (the engine hands one out
//! for as long as the session goes on), and is suspended by the client's Alert 224.
//!
//! Families (all counters are per node, since the node started):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `syncml_sessions_started_total` | counter | |
//! | `syncml_sessions_completed_total` | counter | |
//! | `syncml_sessions_suspended_total` | counter | |
//! | `syncml_messages_total` | counter | `encoding` (`xml`, `wbxml`) |
//! | `syncml_items_total` | counter | `datastore`, `direction` (`from_client`, `to_client`) |
//! | `syncml_status_failures_total` | counter | `status` (SyncML code ≥ 300 in our replies) |
//! | `syncml_auth_refusals_total` | counter | `status` (401, 407, ...) |
//! | `syncml_busy_total` | counter | (replies with status 101, store busy) |
//! | `syncml_http_errors_total` | counter | `status` (HTTP status of messages refused outright) |
//! | `syncml_message_duration_seconds` | histogram | (one message, queueing included) |
//! | `syncml_messages_in_flight` | gauge | (messages being processed on this node) |
//! | `syncml_sessions_active` | gauge | (unexpired sessions in the shared store: all nodes) |
//! | `syncml_store_write_transactions_total` | counter | `outcome` (`committed`, `rolled_back`) |
//! | `syncml_store_commits_total` | counter | (database commits; SQLite commits queued writers as one batch) |
//! | `syncml_store_writer_busy_seconds_total` | counter | (SQLite: time its one writer connection was held) |
//! | `syncml_store_checkpoints_total` | counter | `by` (`background`: those that copied pages; `writer`) |
//! | `syncml_store_wal_restarts_total` | counter | (SQLite: times the WAL started over) |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use syncml_core::model::{Command, SyncMl};
use syncml_core::{Encoding, StatusCode};

use crate::datastores;
use crate::store::StoreStats;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` follows.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which way items travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// In the client's Sync commands.
    FromClient,
    /// In our Sync commands.
    ToClient,
}

impl Direction {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::FromClient => "from_client",
            Direction::ToClient => "to_client",
        }
    }
}

/// What one handled message amounts to, read off the message and our reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The reply accepted the client's credentials: a session started.
    pub session_started: bool,
    /// The reply ends a session that went through (final, no RespURI, header accepted).
    pub session_completed: bool,
    /// The client suspended its session (Alert 224).
    pub session_suspended: bool,
    /// The reply refused the credentials with this SyncHdr status (401, 407...).
    pub auth_refused: Option<u16>,
    /// The reply is a busy answer (SyncHdr status 101).
    pub busy: bool,
    /// Items per (canonical datastore name or `unknown`, direction).
    pub items: BTreeMap<(String, Direction), u64>,
    /// Statuses of 300 and above in the reply (the header's included), by code.
    pub failures: BTreeMap<u16, u64>,
}

fn header_status(reply: &SyncMl) -> Option<StatusCode> {
    reply.body.commands.iter().find_map(|c| match c {
        Command::Status(s) if s.cmd_ref.trim() == "0" || s.cmd == "SyncHdr" => Some(s.data),
        _ => None,
    })
}

/// Adds the items of the data commands in `cmds` (also inside Atomic/Sequence) under
/// `datastore`.
fn count_items(
    cmds: &[Command],
    datastore: &str,
    dir: Direction,
    out: &mut BTreeMap<(String, Direction), u64>,
) {
    for c in cmds {
        let n = match c {
            Command::Add(x) | Command::Replace(x) | Command::Copy(x) | Command::Move(x) => {
                x.items.len()
            }
            Command::Delete(d) => d.items.len(),
            Command::Atomic(k) | Command::Sequence(k) => {
                count_items(&k.commands, datastore, dir, out);
                0
            }
            _ => 0,
        };
        if n > 0 {
            *out.entry((datastore.to_string(), dir)).or_default() += n as u64;
        }
    }
}

/// Items of every Sync in `msg`, by the datastore of ours it names (client Syncs name
/// it as Target, ours as Source).
fn sync_items(msg: &SyncMl, dir: Direction, out: &mut BTreeMap<(String, Direction), u64>) {
    for c in &msg.body.commands {
        if let Command::Sync(s) = c {
            let ours = match dir {
                Direction::FromClient => s.target.as_ref().map(|t| t.loc_uri.as_str()),
                Direction::ToClient => s.source.as_ref().map(|t| t.loc_uri.as_str()),
            };
            let name = ours
                .and_then(datastores::resolve)
                .map_or("unknown", |d| d.name);
            count_items(&s.commands, name, dir, out);
        }
    }
}

impl Observation {
    /// Classifies one exchange: the client's `msg` and our `reply` to it.
    pub fn of(msg: &SyncMl, reply: &SyncMl) -> Observation {
        let mut o = Observation::default();
        let hdr = header_status(reply).map(|s| s.0);
        match hdr {
            Some(212) => o.session_started = true,
            Some(101) => o.busy = true,
            // 406: unsupported scheme (AUTH-14); 417: locked out.
            Some(code @ (401 | 403 | 405 | 406 | 407 | 417)) => o.auth_refused = Some(code),
            _ => {}
        }
        o.session_suspended = msg
            .body
            .commands
            .iter()
            .any(|c| matches!(c, Command::Alert(a) if a.data.map(|d| d.0) == Some(224)));
        let accepted = matches!(hdr, Some(200 | 212));
        o.session_completed = accepted
            && reply.body.is_final
            && reply.header.resp_uri.is_none()
            && !o.session_suspended;
        sync_items(msg, Direction::FromClient, &mut o.items);
        sync_items(reply, Direction::ToClient, &mut o.items);
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                if s.data.0 >= 300 {
                    *o.failures.entry(s.data.0).or_default() += 1;
                }
            }
        }
        o
    }
}

/// The metrics of one node. Cheap to update from many threads.
#[derive(Debug, Default)]
pub struct Metrics {
    sessions_started: AtomicU64,
    sessions_completed: AtomicU64,
    sessions_suspended: AtomicU64,
    messages_xml: AtomicU64,
    messages_wbxml: AtomicU64,
    busy: AtomicU64,
    in_flight: AtomicI64,
    items: Mutex<BTreeMap<(String, Direction), u64>>,
    failures: Mutex<BTreeMap<u16, u64>>,
    auth_refusals: Mutex<BTreeMap<u16, u64>>,
    http_errors: Mutex<BTreeMap<u16, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum of latencies, microseconds.
    latency_sum_us: AtomicU64,
}

fn add<K: Ord + Clone>(m: &Mutex<BTreeMap<K, u64>>, k: &K, n: u64) {
    // A poisoned map still holds valid counts (every update is a single insert).
    let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
    match g.get_mut(k) {
        Some(v) => *v += n,
        None => {
            g.insert(k.clone(), n);
        }
    }
}

fn snapshot<K: Ord + Clone>(m: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Marks one message in flight until dropped.
#[derive(Debug)]
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Counts a message being processed until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// Messages being processed now.
    pub fn messages_in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records one message that got a SyncML reply.
    pub fn record(&self, encoding: Encoding, o: &Observation) {
        match encoding {
            Encoding::Xml => &self.messages_xml,
            Encoding::Wbxml => &self.messages_wbxml,
        }
        .fetch_add(1, Ordering::Relaxed);
        if o.session_started {
            self.sessions_started.fetch_add(1, Ordering::Relaxed);
        }
        if o.session_completed {
            self.sessions_completed.fetch_add(1, Ordering::Relaxed);
        }
        if o.session_suspended {
            self.sessions_suspended.fetch_add(1, Ordering::Relaxed);
        }
        if o.busy {
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(code) = o.auth_refused {
            add(&self.auth_refusals, &code, 1);
        }
        for (k, n) in &o.items {
            add(&self.items, k, *n);
        }
        for (k, n) in &o.failures {
            add(&self.failures, k, *n);
        }
    }

    /// Records a message refused at the HTTP level (undecodable, internal error...).
    pub fn record_http_error(&self, status: u16) {
        add(&self.http_errors, &status, 1);
    }

    /// Records how long one message took.
    pub fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(
            d.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }

    /// The exposition text. `sessions_active` is the store's count of live sessions
    /// (`None` leaves that gauge out, e.g. when the store cannot be reached).
    pub fn render(&self, sessions_active: Option<u64>) -> String {
        let mut s = String::with_capacity(4096);
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut s,
            "syncml_sessions_started_total",
            "Sessions whose credentials were accepted on this node.",
            ld(&self.sessions_started),
        );
        counter(
            &mut s,
            "syncml_sessions_completed_total",
            "Sessions that went through to their last message on this node.",
            ld(&self.sessions_completed),
        );
        counter(
            &mut s,
            "syncml_sessions_suspended_total",
            "Sessions the client suspended (Alert 224).",
            ld(&self.sessions_suspended),
        );
        let _ = writeln!(
            s,
            "# HELP syncml_messages_total SyncML messages answered with a SyncML reply.\n\
             # TYPE syncml_messages_total counter\n\
             syncml_messages_total{{encoding=\"xml\"}} {}\n\
             syncml_messages_total{{encoding=\"wbxml\"}} {}",
            ld(&self.messages_xml),
            ld(&self.messages_wbxml)
        );
        let _ = writeln!(
            s,
            "# HELP syncml_items_total Items carried by Sync commands, by datastore and direction.\n\
             # TYPE syncml_items_total counter"
        );
        for ((ds, dir), n) in snapshot(&self.items) {
            let _ = writeln!(
                s,
                "syncml_items_total{{datastore=\"{}\",direction=\"{}\"}} {n}",
                escape(&ds),
                dir.as_str()
            );
        }
        let labelled = |s: &mut String, name: &str, help: &str, m: &BTreeMap<u16, u64>| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (code, n) in m {
                let _ = writeln!(s, "{name}{{status=\"{code}\"}} {n}");
            }
        };
        labelled(
            &mut s,
            "syncml_status_failures_total",
            "SyncML statuses of 300 and above in our replies, by code.",
            &snapshot(&self.failures),
        );
        labelled(
            &mut s,
            "syncml_auth_refusals_total",
            "Credentials refused (SyncHdr status), by code.",
            &snapshot(&self.auth_refusals),
        );
        counter(
            &mut s,
            "syncml_busy_total",
            "Messages answered 101 (store busy; the client sends them again).",
            ld(&self.busy),
        );
        labelled(
            &mut s,
            "syncml_http_errors_total",
            "Messages refused with an HTTP error instead of a SyncML reply, by HTTP status.",
            &snapshot(&self.http_errors),
        );
        let _ = writeln!(
            s,
            "# HELP syncml_message_duration_seconds Time to answer one message, queueing included.\n\
             # TYPE syncml_message_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += ld(&self.latency_buckets[i]);
            let _ = writeln!(
                s,
                "syncml_message_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = ld(&self.latency_count);
        let _ = writeln!(
            s,
            "syncml_message_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             syncml_message_duration_seconds_sum {}\n\
             syncml_message_duration_seconds_count {count}",
            ld(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "# HELP syncml_messages_in_flight Messages being processed on this node.\n\
             # TYPE syncml_messages_in_flight gauge\n\
             syncml_messages_in_flight {}",
            self.messages_in_flight()
        );
        if let Some(n) = sessions_active {
            let _ = writeln!(
                s,
                "# HELP syncml_sessions_active Unexpired sessions in the store (all nodes sharing it).\n\
                 # TYPE syncml_sessions_active gauge\n\
                 syncml_sessions_active {n}"
            );
        }
        s
    }

    /// The store's own counters ([`crate::store::Store::stats`]) in the exposition format,
    /// to follow [`Metrics::render`].
    pub fn render_store(stats: &StoreStats) -> String {
        format!(
            "# HELP syncml_store_write_transactions_total Write transactions of this node, by outcome.\n\
             # TYPE syncml_store_write_transactions_total counter\n\
             syncml_store_write_transactions_total{{outcome=\"committed\"}} {}\n\
             syncml_store_write_transactions_total{{outcome=\"rolled_back\"}} {}\n\
             # HELP syncml_store_commits_total Database commits of this node's write transactions \
             (SQLite commits the writers queued at once together).\n\
             # TYPE syncml_store_commits_total counter\n\
             syncml_store_commits_total {}\n\
             # HELP syncml_store_writer_busy_seconds_total Time the store's single writer \
             connection was held (SQLite; 0 on PostgreSQL).\n\
             # TYPE syncml_store_writer_busy_seconds_total counter\n\
             syncml_store_writer_busy_seconds_total {:.6}\n\
             # HELP syncml_store_checkpoints_total SQLite WAL checkpoints, by the thread that ran \
             them (the background thread's that copied pages; the writer's, which hold up writes).\n\
             # TYPE syncml_store_checkpoints_total counter\n\
             syncml_store_checkpoints_total{{by=\"background\"}} {}\n\
             syncml_store_checkpoints_total{{by=\"writer\"}} {}\n\
             # HELP syncml_store_wal_restarts_total Times the SQLite WAL started over from its beginning.\n\
             # TYPE syncml_store_wal_restarts_total counter\n\
             syncml_store_wal_restarts_total {}\n",
            stats.write_commits,
            stats.write_rollbacks,
            stats.write_batches,
            stats.writer_busy.as_secs_f64(),
            stats.checkpoints.background,
            stats.checkpoints.writer,
            stats.checkpoints.wal_restarts,
        )
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncml_core::model::{
        Alert, Item, ItemCommand, Source, Status, Sync, SyncBody, SyncHdr, Target,
    };
    use syncml_core::tree::SyncMlVersion;
    use syncml_core::AlertCode;

    fn msg(commands: Vec<Command>, is_final: bool, resp_uri: Option<&str>) -> SyncMl {
        let mut h = SyncHdr::new(SyncMlVersion::default(), "1", "1", "srv", "IMEI:1");
        h.resp_uri = resp_uri.map(str::to_string);
        SyncMl {
            header: h,
            body: SyncBody { commands, is_final },
        }
    }

    fn hdr_status(code: u16) -> Command {
        Command::Status(Status::new("1", "1", "0", "SyncHdr", StatusCode(code)))
    }

    fn sync(target: &str, source: &str, adds: usize) -> Command {
        Command::Sync(Sync {
            target: Some(Target::new(target)),
            source: Some(Source::new(source)),
            commands: vec![Command::Add(ItemCommand {
                items: vec![Item::default(); adds],
                ..ItemCommand::default()
            })],
            ..Sync::default()
        })
    }

    #[test]
    fn accepted_credentials_start_a_session() {
        let o = Observation::of(
            &msg(vec![], false, None),
            &msg(vec![hdr_status(212)], true, Some("http://x/sync?s=k")),
        );
        assert!(o.session_started);
        assert!(!o.session_completed);
    }

    #[test]
    fn a_final_reply_without_resp_uri_completes_the_session() {
        let o = Observation::of(
            &msg(vec![], true, None),
            &msg(vec![hdr_status(200)], true, None),
        );
        assert!(o.session_completed);
        let o = Observation::of(
            &msg(vec![], true, None),
            &msg(vec![hdr_status(200)], true, Some("http://x/sync?s=k")),
        );
        assert!(!o.session_completed, "a RespURI means the session goes on");
    }

    #[test]
    fn refused_credentials_count_as_auth_refusals_not_completions() {
        let o = Observation::of(
            &msg(vec![], true, None),
            &msg(vec![hdr_status(401)], true, None),
        );
        assert_eq!(o.auth_refused, Some(401));
        assert!(!o.session_completed);
        assert_eq!(o.failures.get(&401), Some(&1));
    }

    #[test]
    fn suspend_is_not_completion() {
        let alert = Command::Alert(Alert {
            data: Some(AlertCode(224)),
            ..Alert::default()
        });
        let o = Observation::of(
            &msg(vec![alert], true, None),
            &msg(vec![hdr_status(200)], true, None),
        );
        assert!(o.session_suspended);
        assert!(!o.session_completed);
    }

    #[test]
    fn items_are_counted_by_canonical_datastore_and_direction() {
        let o = Observation::of(
            &msg(vec![sync("./Contacts", "./c", 3)], true, None),
            &msg(
                vec![
                    hdr_status(200),
                    sync("./c", "./contacts", 2),
                    sync("x", "nope", 1),
                ],
                true,
                Some("u"),
            ),
        );
        assert_eq!(o.items[&("contacts".into(), Direction::FromClient)], 3);
        assert_eq!(o.items[&("contacts".into(), Direction::ToClient)], 2);
        assert_eq!(o.items[&("unknown".into(), Direction::ToClient)], 1);
    }

    #[test]
    fn exposition_has_histogram_buckets_cumulative_and_counts() {
        let m = Metrics::new();
        m.observe_latency(Duration::from_micros(300));
        m.observe_latency(Duration::from_millis(3));
        m.observe_latency(Duration::from_secs(20));
        let text = m.render(Some(4));
        assert!(text.contains("syncml_message_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("syncml_message_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("syncml_message_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("syncml_message_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("syncml_message_duration_seconds_count 3\n"));
        assert!(text.contains("syncml_sessions_active 4\n"));
    }

    #[test]
    fn store_counters_are_rendered_with_their_outcome() {
        let text = Metrics::render_store(&StoreStats {
            write_commits: 10,
            write_batches: 4,
            write_rollbacks: 1,
            reads: 0,
            writer_busy: Duration::from_millis(1500),
            checkpoints: crate::store::Checkpoints {
                background: 7,
                writer: 2,
                wal_restarts: 2,
            },
        });
        assert!(text.contains("syncml_store_write_transactions_total{outcome=\"committed\"} 10\n"));
        assert!(text.contains("syncml_store_write_transactions_total{outcome=\"rolled_back\"} 1\n"));
        assert!(text.contains("syncml_store_commits_total 4\n"));
        assert!(text.contains("syncml_store_writer_busy_seconds_total 1.500000\n"));
        assert!(text.contains("syncml_store_checkpoints_total{by=\"background\"} 7\n"));
        assert!(text.contains("syncml_store_checkpoints_total{by=\"writer\"} 2\n"));
        assert!(text.contains("syncml_store_wal_restarts_total 2\n"));
    }

    #[test]
    fn in_flight_guard_counts_down_on_drop() {
        let m = Metrics::new();
        let a = m.in_flight();
        let b = m.in_flight();
        assert_eq!(m.messages_in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(m.messages_in_flight(), 0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

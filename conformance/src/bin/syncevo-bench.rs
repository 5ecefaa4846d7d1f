//! `syncevo-bench`: the Debian SyncEvolution client against our server (`syncml-server`)
//! and against SyncEvolution's own SyncML server, on the same generated contacts in the
//! same run (issue 3; results in `BENCHMARKS.md`).
//!
//! For every N of `--contacts` (default 1000,10000) and each server, on a fresh server
//! and fresh clients:
//!
//! 1. **slow sync up**: client A holds N generated vCard 3.0 contacts (FN, N, ORG, two
//!    TEL, EMAIL, ADR, NOTE; ~400 bytes; deterministic) and slow-syncs them to the
//!    empty server;
//! 2. **two-way, 10 changes**: client A adds 4, updates 4 and deletes 2 contacts and runs
//!    a two-way sync;
//! 3. **slow sync down**: a fresh client B (its own device ID, registered on the server)
//!    slow-syncs all N + 2 contacts down.
//!
//! Each step reports the wall time of the client's `syncevolution --sync` run and the
//! CPU time (user + system) the server consumed during the step:
//!
//! * ours: `utime + stime + cutime + cstime` of the `syncml-server` process (all its
//!   threads), a release binary started as a separate process (`--server-bin`, default:
//!   next to this executable), SQLite store, `serve --listen 127.0.0.1:PORT`;
//! * SyncEvolution's: the same sum over the `syncevo-http-server` (Python/Twisted) and
//!   `syncevo-dbus-server` processes and all their descendants (the per-session
//!   `syncevo-dbus-helper`; once reaped, a helper's time is in its parent's
//!   `cutime`/`cstime`, so the sum is conserved). The private `dbus-daemon` that carries
//!   every SyncML message between the two is reported separately and **not** included in
//!   the ratio (including it would only make the ratio better for us).
//!
//! Samples are taken before the step and after it, once the server's processes are idle
//! (no helper alive, CPU time unchanged over 300 ms). The resolution is one clock tick
//! (`getconf CLK_TCK`, 10 ms).
//!
//! Both servers see the same wire: SyncML 1.2, WBXML (`--encoding xml` for XML),
//! syncml:auth-md5, maxMsgSize 150,000. SyncEvolution's server runs with `loglevel=1`
//! and `dumpData=0` (no session log, no database backup per session: its cheapest
//! configuration; `--syncevo-loglevel`, `--syncevo-dump-data` change that), the clients
//! with `loglevel=1` and `dumpData=0` too.
//!
//! After every step the client's and the server's contacts are compared by content
//! (normalised with [`normalize_vcard`], as multisets) against what the step should have
//! produced; any difference, failed sync or timeout (`--step-timeout`, default 900 s) is
//! reported and makes the exit status non-zero. The result is a Markdown table on stdout.
//!
//! ```sh
//! cargo build --release -p syncml-server -p conformance
//! target/release/syncevo-bench --contacts 1000,10000
//! ```

use conformance::scratch::Scratch;
use conformance::syncevolution::server::{self, Server, ServerConfig};
use conformance::syncevolution::{
    self, normalize_vcard, Auth, Client, ClientConfig, Encoding, Mode, SyncMlVersion, SyncReport,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use syncml_server::store::{DatastoreKey, SqliteStore, StoreExt};

/// SyncML user name = our subscriber ID.
const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";
const DEVICE_A: &str = "syncevo-bench-a";
const DEVICE_B: &str = "syncevo-bench-b";

const USAGE: &str = "\
usage: syncevo-bench [--contacts 1000,10000] [--servers ours,syncevolution]
                     [--server-bin PATH] [--dir DIR] [--step-timeout SECS]
                     [--encoding wbxml|xml] [--syncevo-loglevel N] [--syncevo-dump-data]

Slow sync up, 10-change two-way sync and slow sync down with the SyncEvolution client,
against our syncml-server and against SyncEvolution's own server; prints a Markdown
table of wall time and server CPU time per step. See the doc comment of
conformance/src/bin/syncevo-bench.rs.";

/// Which server a run is against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Ours,
    SyncEvolution,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::SyncEvolution => "syncevolution",
        }
    }
}

/// The three measured steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    SlowUp,
    TwoWay,
    SlowDown,
}

impl Step {
    const ALL: [Step; 3] = [Step::SlowUp, Step::TwoWay, Step::SlowDown];

    fn label(self) -> &'static str {
        match self {
            Step::SlowUp => "slow sync up (client A)",
            Step::TwoWay => "two-way, 10 changes (A)",
            Step::SlowDown => "slow sync down (fresh client B)",
        }
    }
}

/// Command line options.
#[derive(Debug)]
struct Args {
    contacts: Vec<usize>,
    servers: Vec<Kind>,
    server_bin: PathBuf,
    dir: Option<PathBuf>,
    step_timeout: Duration,
    encoding: Encoding,
    syncevo_loglevel: u32,
    syncevo_dump_data: bool,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| format!("locating this executable: {e}"))?;
    let mut args = Args {
        contacts: vec![1000, 10_000],
        servers: vec![Kind::Ours, Kind::SyncEvolution],
        server_bin: exe
            .parent()
            .map(|d| d.join("syncml-server"))
            .unwrap_or_else(|| PathBuf::from("syncml-server")),
        dir: None,
        step_timeout: Duration::from_secs(900),
        encoding: Encoding::Wbxml,
        syncevo_loglevel: 1,
        syncevo_dump_data: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "--contacts" => {
                args.contacts = value("--contacts")?
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .replace('_', "")
                            .parse::<usize>()
                            .ok()
                            .filter(|&n| n >= 10)
                            .ok_or_else(|| format!("--contacts: {n:?} is not a number >= 10"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--servers" => {
                args.servers = value("--servers")?
                    .split(',')
                    .map(|s| match s.trim() {
                        "ours" => Ok(Kind::Ours),
                        "syncevolution" | "theirs" => Ok(Kind::SyncEvolution),
                        other => Err(format!(
                            "--servers: unknown server {other:?} (ours, syncevolution)"
                        )),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--server-bin" => args.server_bin = PathBuf::from(value("--server-bin")?),
            "--dir" => args.dir = Some(PathBuf::from(value("--dir")?)),
            "--step-timeout" => {
                let v = value("--step-timeout")?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--step-timeout: {v:?} is not a number of seconds"))?;
                args.step_timeout = Duration::from_secs(secs);
            }
            "--encoding" => {
                args.encoding = match value("--encoding")?.as_str() {
                    "wbxml" => Encoding::Wbxml,
                    "xml" => Encoding::Xml,
                    other => return Err(format!("--encoding: {other:?} is not wbxml or xml")),
                }
            }
            "--syncevo-loglevel" => {
                let v = value("--syncevo-loglevel")?;
                args.syncevo_loglevel = v
                    .parse()
                    .map_err(|_| format!("--syncevo-loglevel: {v:?} is not a number"))?;
            }
            "--syncevo-dump-data" => args.syncevo_dump_data = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.servers.is_empty() || args.contacts.is_empty() {
        return Err("nothing to run".into());
    }
    Ok(args)
}

// ---------------------------------------------------------------------------------------
// Test data

/// splitmix64: a deterministic, well-mixed hash of the contact index.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pick<'a>(list: &[&'a str], h: u64) -> &'a str {
    // `list` is never empty (constant tables below).
    list[(h % list.len() as u64) as usize]
}

#[rustfmt::skip]
const FIRST: [&str; 64] = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty",
    "Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul",
    "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
    "Brian", "Dorothy", "George", "Melissa", "Timothy", "Deborah", "Ronald", "Stephanie",
    "Edward", "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob",
    "Kathleen", "Gary", "Amy",
];
#[rustfmt::skip]
const LAST: [&str; 64] = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy",
];
#[rustfmt::skip]
const STREETS: [&str; 12] = [
    "Main Street", "Oak Avenue", "Maple Drive", "Cedar Lane", "Park Road", "Elm Street",
    "Washington Boulevard", "Lake View Terrace", "Hillcrest Way", "Sunset Drive",
    "Riverside Court", "Church Street",
];
#[rustfmt::skip]
const CITIES: [(&str, &str, &str); 8] = [
    ("Springfield", "IL", "USA"), ("Portland", "OR", "USA"), ("Austin", "TX", "USA"),
    ("Toronto", "ON", "Canada"), ("Manchester", "Greater Manchester", "United Kingdom"),
    ("Munich", "Bavaria", "Germany"), ("Lyon", "Auvergne-Rhone-Alpes", "France"),
    ("Melbourne", "VIC", "Australia"),
];
#[rustfmt::skip]
const ORGS: [&str; 10] = [
    "Example Corp", "Acme Widgets Inc.", "Northwind Traders", "Contoso Ltd.",
    "Fabrikam Logistics", "Globex Engineering", "Initech Software", "Umbrella Health",
    "Wayne Enterprises", "Stark Industries",
];
#[rustfmt::skip]
const TITLES: [&str; 8] = [
    "Engineer", "Account Manager", "Director of Sales", "Nurse", "Teacher", "Consultant",
    "Project Lead", "Accountant",
];
#[rustfmt::skip]
const NOTES: [&str; 8] = [
    "Met at the regional trade fair\\, interested in the spring catalogue and volume pricing",
    "Prefers email over phone calls. Out of office most Fridays during the summer months",
    "Old friend from university\\, birthday party every year in early June at the lake house",
    "Referred by the Berlin office. Follow up about the maintenance contract renewal",
    "Neighbour two doors down\\, has a spare key and waters the plants when we travel",
    "Dentist appointment reminders go to this address. Ask for the morning slots",
    "Coach of the under-12 football team\\, training on Tuesdays and Thursdays at six",
    "Supplier contact for packaging materials\\, invoices net 30\\, ships from the north depot",
];

/// Contact number `i` (`version` 0 = as created, 1 = after an update on the client).
/// Names are unique per index (64 first names x 64 last names x middle initial).
fn contact(i: usize, version: u32) -> String {
    let h = mix(i as u64 ^ (u64::from(version) << 40));
    let first = FIRST[i % 64];
    let last = LAST[(i / 64) % 64];
    let middle = char::from(b'A' + ((i / 4096) % 26) as u8);
    let (city, region, country) = CITIES[(mix(i as u64) % CITIES.len() as u64) as usize];
    let org = pick(&ORGS, mix(i as u64 + 1));
    let title = pick(&TITLES, mix(i as u64 + 2));
    let street = pick(&STREETS, mix(i as u64 + 3));
    let house = 1 + mix(i as u64 + 4) % 2000;
    let postcode = 10_000 + mix(i as u64 + 5) % 89_999;
    let cell = h % 10_000_000;
    let work = mix(h) % 10_000_000;
    let note = pick(&NOTES, h >> 7);
    let email = format!(
        "{}.{}.{}@{}",
        first.to_ascii_lowercase(),
        last.to_ascii_lowercase(),
        i,
        if h.is_multiple_of(3) {
            "example.org"
        } else {
            "mail.example.com"
        }
    );
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:{last};{first};{middle};;\r\nFN:{first} {middle}. {last}\r\n\
         ORG:{org}\r\nTITLE:{title}\r\nTEL;TYPE=CELL:+1 555 {cell:07}\r\n\
         TEL;TYPE=WORK:+1 555 {work:07}\r\nEMAIL;TYPE=INTERNET:{email}\r\n\
         ADR;TYPE=HOME:;;{house} {street};{city};{region};{postcode};{country}\r\n\
         NOTE:{note} (rev {version}).\r\nEND:VCARD\r\n"
    )
}

/// The file name (client LUID) of contact `i` on client A.
fn file_name(i: usize) -> String {
    format!("c{i:06}.vcf")
}

// ---------------------------------------------------------------------------------------
// CPU time from /proc

/// One process from `/proc/PID/stat`.
struct ProcStat {
    pid: u32,
    ppid: u32,
    /// utime + stime, in clock ticks (the process's threads, live and exited).
    own_ticks: u64,
    /// cutime + cstime: reaped children.
    children_ticks: u64,
}

/// Parses `/proc/PID/stat` (the command name may contain spaces and parentheses).
fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] = state (field 3), f[1] = ppid (4), f[11..15] = utime stime cutime cstime (14-17).
    let num = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(ProcStat {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        own_ticks: num(11)? + num(12)?,
        children_ticks: num(13)? + num(14)?,
    })
}

/// Every process on the machine (those that vanish while reading are skipped).
fn all_processes() -> Result<Vec<ProcStat>, String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").map_err(|e| format!("listing /proc: {e}"))? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(entry.path().join("stat")) {
            if let Some(s) = parse_stat(pid, &text) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The nanosecond run time of a process's live threads (`/proc/PID/task/*/schedstat`);
/// `None` if it cannot be read.
fn live_threads_ns(pid: u32) -> Option<u64> {
    let mut sum = 0u64;
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        // A thread that exits meanwhile is skipped (its time is lost either way).
        let Ok(entry) = entry else { continue };
        let Ok(text) = fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        sum += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

/// CPU time of a process tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct TreeCpu {
    /// utime + stime + cutime + cstime of every process in the tree, in clock ticks.
    ticks: u64,
    /// The same in nanoseconds from the live threads' run time (exact) plus the reaped
    /// children's ticks. It misses threads that exited, which [`cpu_delta`] detects.
    ns: u64,
    /// Processes in the tree besides the roots (a session helper still alive).
    extra: usize,
    /// Processes in the tree.
    processes: usize,
}

/// CPU time of the process trees rooted at `roots`.
fn tree_cpu(procs: &[ProcStat], roots: &[u32], tick: f64) -> TreeCpu {
    let mut members: BTreeSet<u32> = roots.iter().copied().collect();
    // Iterate to a fixed point (a child may be listed before its parent).
    loop {
        let before = members.len();
        for p in procs {
            if members.contains(&p.ppid) {
                members.insert(p.pid);
            }
        }
        if members.len() == before {
            break;
        }
    }
    let ns_per_tick = 1e9 / tick;
    let mut cpu = TreeCpu::default();
    for p in procs.iter().filter(|p| members.contains(&p.pid)) {
        cpu.ticks += p.own_ticks + p.children_ticks;
        let own_ns = live_threads_ns(p.pid).unwrap_or((p.own_ticks as f64 * ns_per_tick) as u64);
        cpu.ns += own_ns + (p.children_ticks as f64 * ns_per_tick) as u64;
        cpu.processes += 1;
        if !roots.contains(&p.pid) {
            cpu.extra += 1;
        }
    }
    cpu
}

/// Seconds of CPU between two samples, and whether only the clock-tick figure could be
/// used. The exact figure (thread run times) is used when it agrees with the tick
/// figure within the ticks' truncation (2 ticks per process); otherwise a thread exited
/// in between (our server's blocking-pool threads do after 10 s idle) and the tick
/// figure, which includes exited threads, is the right one.
fn cpu_delta(before: &TreeCpu, after: &TreeCpu, tick: f64) -> (f64, bool) {
    let ticks = after.ticks.saturating_sub(before.ticks) as f64 / tick;
    let exact = after.ns.saturating_sub(before.ns) as f64 / 1e9;
    let tolerance = 2.0 * after.processes.max(before.processes).max(1) as f64 / tick;
    if (exact - ticks).abs() <= tolerance {
        (exact, false)
    } else {
        (ticks, true)
    }
}

/// A CPU sample of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuSample {
    /// The server's processes (for SyncEvolution: HTTP front end, engine, helpers).
    server: TreeCpu,
    /// SyncEvolution's private dbus-daemon (zero for ours).
    bus: TreeCpu,
}

// ---------------------------------------------------------------------------------------
// The servers

/// Our `syncml-server`, a separate process with a SQLite store in `data`.
struct OurServer {
    child: Child,
    data: PathBuf,
    url: String,
}

impl Drop for OurServer {
    fn drop(&mut self) {
        // Our own child, not reaped yet: the PID is still ours. SIGTERM first, so the
        // server shuts down as an operator's would (and a profiler wrapping it, such as
        // valgrind, writes its results); SIGKILL if it has not gone within 10 s.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a provisioning command of `syncml-server` and fails with its output.
fn provision(bin: &Path, data: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {} {}: {e}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{} {} failed ({}): {}{}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl OurServer {
    fn start(bin: &Path, dir: &Path) -> Result<OurServer, String> {
        if !bin.is_file() {
            return Err(format!(
                "{} not found: build it (cargo build --release -p syncml-server) or pass \
                 --server-bin",
                bin.display()
            ));
        }
        let data = dir.join("data");
        provision(bin, &data, &["subscriber", "add", USER])?;
        for dev in [DEVICE_A, DEVICE_B] {
            provision(
                bin,
                &data,
                &["terminal", "register", USER, dev, "--password", PASSWORD],
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let log_path = dir.join("syncml-server.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("duplicating {}: {e}", log_path.display()))?;
        let child = Command::new(bin)
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut server = OurServer {
            child,
            data,
            url: format!("http://127.0.0.1:{port}/sync"),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "syncml-server exited during startup ({status}); log: {}",
                    log_path.display()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "syncml-server did not listen on port {port} within 15 s; log: {}",
                    log_path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

/// The server a scenario runs against.
enum Target {
    Ours(OurServer),
    SyncEvolution(Server),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Ours(s) => s.url.clone(),
            Target::SyncEvolution(s) => s.url().to_string(),
        }
    }

    fn sample(&self, tick: f64) -> Result<CpuSample, String> {
        let procs = all_processes()?;
        match self {
            Target::Ours(s) => Ok(CpuSample {
                server: tree_cpu(&procs, &[s.child.id()], tick),
                bus: TreeCpu::default(),
            }),
            Target::SyncEvolution(s) => {
                let pids = s.pids();
                let roots: Vec<u32> = pids
                    .iter()
                    .filter(|(n, _)| *n != "dbus-daemon")
                    .map(|(_, p)| *p)
                    .collect();
                let bus: Vec<u32> = pids
                    .iter()
                    .filter(|(n, _)| *n == "dbus-daemon")
                    .map(|(_, p)| *p)
                    .collect();
                if roots.len() != 2 || bus.len() != 1 {
                    return Err(format!(
                        "SyncEvolution's server processes are not all running: {pids:?}"
                    ));
                }
                Ok(CpuSample {
                    server: tree_cpu(&procs, &roots, tick),
                    bus: tree_cpu(&procs, &bus, tick),
                })
            }
        }
    }

    /// Waits until the server is idle (no helper process, CPU ticks unchanged over
    /// 300 ms; at most 60 s) and returns that sample.
    fn settled_sample(&self, tick: f64) -> Result<CpuSample, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut prev = self.sample(tick)?;
        loop {
            std::thread::sleep(Duration::from_millis(300));
            let cur = self.sample(tick)?;
            if cur.server.ticks == prev.server.ticks
                && cur.bus.ticks == prev.bus.ticks
                && cur.server.extra == 0
            {
                return Ok(cur);
            }
            if Instant::now() > deadline {
                eprintln!("  warning: server not idle after 60 s, sampling anyway: {cur:?}");
                return Ok(cur);
            }
            prev = cur;
        }
    }

    /// The server's live contacts, normalised and sorted.
    fn contacts(&self) -> Result<Vec<String>, String> {
        let texts: Vec<String> = match self {
            Target::Ours(s) => {
                let store = SqliteStore::open_in_dir(&s.data)
                    .map_err(|e| format!("opening our server's store: {e}"))?;
                store
                    .read(|tx| tx.items_list_live(DatastoreKey::new(USER, "contacts")))
                    .map_err(|e| format!("reading our server's contacts: {e}"))?
                    .into_iter()
                    .map(|i| String::from_utf8_lossy(&i.data).into_owned())
                    .collect()
            }
            Target::SyncEvolution(s) => s
                .read_contacts()
                .map_err(|e| format!("reading SyncEvolution's server contacts: {e}"))?
                .into_values()
                .collect(),
        };
        Ok(sorted(texts.iter().map(|t| normalize_vcard(t))))
    }
}

fn sorted(it: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = it.collect();
    v.sort();
    v
}

/// Compares two normalised multisets; the error names counts and a few differences.
fn compare(what: &str, got: &[String], want: &[String]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    fn count(v: &[String]) -> BTreeMap<&str, usize> {
        let mut m: BTreeMap<&str, usize> = BTreeMap::new();
        for s in v {
            *m.entry(s.as_str()).or_default() += 1;
        }
        m
    }
    let (g, w) = (count(got), count(want));
    let missing: Vec<&&str> = w
        .iter()
        .filter(|(k, n)| g.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<&&str> = g
        .iter()
        .filter(|(k, n)| w.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    Err(format!(
        "{what}: {} contacts, expected {}; {} expected missing, {} unexpected. \
         First missing: {:?}\nFirst unexpected: {:?}",
        got.len(),
        want.len(),
        missing.len(),
        extra.len(),
        missing.first(),
        extra.first()
    ))
}

// ---------------------------------------------------------------------------------------
// One scenario: a server, N contacts, three steps

/// The measurement of one step.
#[derive(Debug, Clone)]
struct Measured {
    /// Wall time of the client's run, s.
    wall: f64,
    /// Server CPU, s.
    cpu: f64,
    /// `cpu` is the clock-tick figure (10 ms resolution), not the exact one.
    coarse: bool,
    /// SyncEvolution's dbus-daemon CPU, s.
    bus: f64,
}

/// What a step produced: a measurement or an error (failed sync, wrong data, timeout).
type StepResult = Result<Measured, String>;

struct Scenario<'a> {
    args: &'a Args,
    tick: f64,
    n: usize,
    target: Target,
    dir: PathBuf,
}

impl Scenario<'_> {
    fn client(&self, name: &str, device: &str) -> Result<Client, String> {
        let mut cfg = ClientConfig::new(self.target.url(), USER, PASSWORD);
        cfg.device_id = device.into();
        cfg.auth = Auth::Md5;
        cfg.encoding = self.args.encoding;
        cfg.syncml_version = SyncMlVersion::V1_2;
        cfg.timeout = self.args.step_timeout;
        cfg.loglevel = 1;
        cfg.dump_data = false;
        Client::new(&self.dir.join(name), cfg).map_err(|e| format!("client {name}: {e}"))
    }

    /// Runs one sync and measures it; checks success and the mode SyncEvolution used.
    fn measure(&self, client: &Client, mode: Mode, want_mode: &str) -> StepResult {
        let before = self.target.settled_sample(self.tick)?;
        let report: SyncReport = client
            .sync(mode)
            .map_err(|e| format!("running the client: {e}"))?;
        let after = self.target.settled_sample(self.tick)?;
        if !report.success() {
            return Err(format!("sync failed: {}", report.summary()));
        }
        if let Some(m) = report.datastore_mode("addressbook") {
            if m != want_mode {
                return Err(format!(
                    "SyncEvolution ran a {m} sync, expected {want_mode}: {}",
                    report.summary()
                ));
            }
        }
        let (cpu, coarse) = cpu_delta(&before.server, &after.server, self.tick);
        let (bus, _) = cpu_delta(&before.bus, &after.bus, self.tick);
        Ok(Measured {
            wall: report.duration.as_secs_f64(),
            cpu,
            coarse,
            bus,
        })
    }

    fn check(&self, who: &str, client: &Client, want: &[String]) -> Result<(), String> {
        let items = client
            .read_contacts()
            .map_err(|e| format!("reading client {who}: {e}"))?;
        let got = sorted(items.values().map(|t| normalize_vcard(t)));
        compare(&format!("client {who}"), &got, want)?;
        compare("server", &self.target.contacts()?, want)
    }

    /// Runs the three steps; stops at the first failure (later steps need its data).
    fn run(&self, results: &mut BTreeMap<(usize, Step, Kind), StepResult>) {
        let kind = match self.target {
            Target::Ours(_) => Kind::Ours,
            Target::SyncEvolution(_) => Kind::SyncEvolution,
        };
        let mut record = |step: Step, r: StepResult| {
            match &r {
                Ok(m) => eprintln!(
                    "  {:<32} wall {:8.2} s  server CPU {:>9} s{}",
                    step.label(),
                    m.wall,
                    fmt_cpu(m),
                    if kind == Kind::SyncEvolution {
                        format!("  (+ dbus-daemon {:.3} s)", m.bus)
                    } else {
                        String::new()
                    }
                ),
                Err(e) => eprintln!("  {:<32} FAILED: {e}", step.label()),
            }
            let ok = r.is_ok();
            results.insert((self.n, step, kind), r);
            ok
        };

        // Client A with N contacts; the expected content as file name -> vCard.
        let mut expected: BTreeMap<String, String> =
            (0..self.n).map(|i| (file_name(i), contact(i, 0))).collect();
        let norm = |m: &BTreeMap<String, String>| sorted(m.values().map(|t| normalize_vcard(t)));
        let a = match self.client("client-a", DEVICE_A).and_then(|a| {
            for (name, text) in &expected {
                a.write_contact(name, text)
                    .map_err(|e| format!("writing client A's contacts: {e}"))?;
            }
            Ok(a)
        }) {
            Ok(a) => a,
            Err(e) => {
                record(Step::SlowUp, Err(e));
                return;
            }
        };

        // 1. Slow sync up.
        let r = self
            .measure(&a, Mode::Slow, "slow")
            .and_then(|m| self.check("A", &a, &norm(&expected)).map(|()| m));
        if !record(Step::SlowUp, r) {
            return;
        }

        // 2. Ten changes on A: 4 updates, 2 deletes, 4 adds; two-way sync.
        let n = self.n;
        let mut change = || -> Result<(), String> {
            let on_client = a
                .read_contacts()
                .map_err(|e| format!("reading client A: {e}"))?;
            for i in [0, n / 4, n / 2, 3 * n / 4] {
                let name = file_name(i);
                if !on_client.contains_key(&name) {
                    return Err(format!("client A has no file {name} after the slow sync"));
                }
                let text = contact(i, 1);
                a.write_contact(&name, &text)
                    .map_err(|e| format!("updating {name}: {e}"))?;
                expected.insert(name, text);
            }
            for i in [1, n - 1] {
                let name = file_name(i);
                a.delete_contact(&name)
                    .map_err(|e| format!("deleting {name}: {e}"))?;
                expected.remove(&name);
            }
            for i in n..n + 4 {
                let (name, text) = (file_name(i), contact(i, 0));
                a.write_contact(&name, &text)
                    .map_err(|e| format!("adding {name}: {e}"))?;
                expected.insert(name, text);
            }
            Ok(())
        };
        let r = change()
            .and_then(|()| self.measure(&a, Mode::TwoWay, "two-way"))
            .and_then(|m| self.check("A", &a, &norm(&expected)).map(|()| m));
        if !record(Step::TwoWay, r) {
            return;
        }

        // 3. A fresh client B slow-syncs everything down.
        let r = self
            .client("client-b", DEVICE_B)
            .and_then(|b| {
                self.measure(&b, Mode::Slow, "slow")
                    .and_then(|m| self.check("B", &b, &norm(&expected)).map(|()| m))
            })
            .and_then(|m| {
                // A is unchanged by B's sync.
                self.check("A", &a, &norm(&expected)).map(|()| m)
            });
        record(Step::SlowDown, r);
    }
}

/// `getconf CLK_TCK`.
fn clock_ticks() -> Result<f64, String> {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .map_err(|e| format!("running getconf CLK_TCK: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|t| *t > 0.0)
        .ok_or_else(|| format!("getconf CLK_TCK printed {text:?}"))
}

fn fmt_secs(s: f64) -> String {
    format!("{s:.2}")
}

/// CPU seconds with 3 decimals; `~` marks a clock-tick (10 ms resolution) figure.
fn fmt_cpu(m: &Measured) -> String {
    format!("{}{:.3}", if m.coarse { "~" } else { "" }, m.cpu)
}

/// The Markdown table: one row per (N, step), both servers side by side.
fn table(args: &Args, results: &BTreeMap<(usize, Step, Kind), StepResult>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| contacts | step | wall s, ours | wall s, SyncEvolution | server CPU s, ours | \
         server CPU s, SyncEvolution (+ its dbus-daemon) | CPU ours / SyncEvolution | ≤ 1/10 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for &n in &args.contacts {
        for step in Step::ALL {
            let get = |k: Kind| results.get(&(n, step, k));
            let (ours, theirs) = (get(Kind::Ours), get(Kind::SyncEvolution));
            let cell = |r: Option<&StepResult>, f: &dyn Fn(&Measured) -> String| match r {
                None => "—".to_string(),
                Some(Ok(m)) => f(m),
                Some(Err(_)) => "FAILED".to_string(),
            };
            let (ratio, met) = match (ours, theirs) {
                (Some(Ok(o)), Some(Ok(t))) if t.cpu > 0.0 => (
                    if o.cpu > 0.0 {
                        format!("{:.3} (1/{:.1})", o.cpu / t.cpu, t.cpu / o.cpu)
                    } else {
                        // Only a tick figure of 0 can be 0: less than one tick.
                        format!("< {:.3}", 0.01 / t.cpu)
                    },
                    if o.cpu * 10.0 <= t.cpu {
                        "yes"
                    } else {
                        "**no**"
                    }
                    .to_string(),
                ),
                _ => ("—".to_string(), "—".to_string()),
            };
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {} | {ratio} | {met} |",
                step.label(),
                cell(ours, &|m| fmt_secs(m.wall)),
                cell(theirs, &|m| fmt_secs(m.wall)),
                cell(ours, &fmt_cpu),
                cell(theirs, &|m| format!("{} (+ {:.3})", fmt_cpu(m), m.bus)),
            );
        }
    }
    out
}

fn run() -> Result<bool, String> {
    let args = parse_args()?;
    syncevolution::ensure_installed().map_err(|e| e.to_string())?;
    if args.servers.contains(&Kind::SyncEvolution) {
        server::ensure_installed().map_err(|e| e.to_string())?;
    }
    let tick = clock_ticks()?;
    let scratch;
    let base = match &args.dir {
        Some(d) => {
            fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            scratch = Scratch::new("syncevo-bench");
            scratch.path().to_path_buf()
        }
    };
    eprintln!(
        "syncevo-bench: contacts {:?}, servers {:?}, {:?}, md5, SyncML 1.2, work dir {}",
        args.contacts,
        args.servers,
        args.encoding,
        base.display()
    );

    let mut results = BTreeMap::new();
    for &n in &args.contacts {
        for &kind in &args.servers {
            let dir = base.join(format!("{n}-{}", kind.name()));
            eprintln!("{n} contacts, {} server ({})", kind.name(), dir.display());
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let target = match kind {
                Kind::Ours => OurServer::start(&args.server_bin, &dir).map(Target::Ours),
                Kind::SyncEvolution => Server::start(
                    &dir.join("server"),
                    ServerConfig {
                        username: USER.into(),
                        password: PASSWORD.into(),
                        client_device_ids: vec![DEVICE_A.into(), DEVICE_B.into()],
                        loglevel: args.syncevo_loglevel,
                        dump_data: args.syncevo_dump_data,
                        ..ServerConfig::default()
                    },
                )
                .map(Target::SyncEvolution)
                .map_err(|e| format!("starting SyncEvolution's server: {e}")),
            };
            match target {
                Ok(target) => Scenario {
                    args: &args,
                    tick,
                    n,
                    target,
                    dir,
                }
                .run(&mut results),
                Err(e) => {
                    eprintln!("  FAILED to start: {e}");
                    results.insert((n, Step::SlowUp, kind), Err(e));
                }
            }
        }
    }

    println!(
        "SyncML 1.2, {}, syncml:auth-md5. Server CPU = user + system time of the server's \
         processes during the step (exact thread run time; `~` = clock-tick figure, {:.0} ms \
         resolution, where a thread exited during the step).\n",
        match args.encoding {
            Encoding::Wbxml => "WBXML",
            Encoding::Xml => "XML",
        },
        1000.0 / tick
    );
    print!("{}", table(&args, &results));
    let failures: Vec<String> = results
        .iter()
        .filter_map(|((n, step, kind), r)| {
            r.as_ref()
                .err()
                .map(|e| format!("{n} contacts, {}, {}: {e}", kind.name(), step.label()))
        })
        .collect();
    for f in &failures {
        println!("\nFAILED: {f}");
    }
    Ok(failures.is_empty())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("syncevo-bench: {e}");
            ExitCode::from(2)
        }
    }
}

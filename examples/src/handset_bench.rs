//! A large slow sync between the `syncml-handset` command and our server over HTTP, each
//! way: handset A uploads N contacts (one file each) in a slow sync, then a fresh handset
//! B downloads them in a slow sync. Prints the wall time, items per second, messages and
//! the handset process's peak RSS (VmHWM, sampled from /proc while it runs).
//!
//! ```sh
//! cargo build --release -p syncml-client --bin syncml-handset -p syncml-examples --bin handset-bench
//! target/release/handset-bench --contacts 10000 --dir /tmp/handset-bench
//! ```
//! The server runs in this process (SQLite in `--dir/server`); the handset is the real
//! binary, found next to this one unless `--handset-bin` says otherwise. Run it on a quiet
//! machine: the numbers are only as good as the machine is idle.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use syncml_server::http::{self, HttpOptions};
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    DatastoreKey, NewSubscriber, NewTerminal, RegisteredBy, Secret, SqliteStore, StoreExt,
    Timestamp,
};

const SUBSCRIBER: &str = "001010000010000";
const PIN: &str = "1234";
const PASSWORD: &str = "bench-pw";
const TERMINALS: [&str; 2] = ["IMEI:359000000000001", "IMEI:359000000000002"];

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Contacts to sync.
    pub contacts: usize,
    /// Working directory (must not exist).
    pub dir: PathBuf,
    /// The `syncml-handset` binary.
    pub handset_bin: PathBuf,
    /// `MaxMsgSize` of the handset and the server, bytes.
    pub max_msg_size: u64,
    /// WBXML instead of XML.
    pub wbxml: bool,
}

/// One direction's result.
#[derive(Debug, Clone)]
pub struct Leg {
    /// Items the handset reported sent or received.
    pub items: usize,
    /// Messages the handset posted.
    pub messages: u32,
    /// Wall time of the `syncml-handset sync` process.
    pub elapsed: Duration,
    /// The handset process's peak RSS, KiB (0 if /proc could not be read).
    pub peak_rss_kib: u64,
}

/// Both directions.
#[derive(Debug, Clone)]
pub struct Report {
    /// Handset A's slow sync upload.
    pub upload: Leg,
    /// Handset B's slow sync download.
    pub download: Leg,
    /// Live contacts on the server afterwards.
    pub server_items: usize,
    /// Contact files on handset B afterwards.
    pub downloaded_files: usize,
}

fn vcard(i: usize) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Person{i:05};Given{i:05};;;\r\nFN:Given{i:05} Person{i:05}\r\n\
         TEL;TYPE=CELL:+1555{i:07}\r\nEMAIL:person{i:05}@example.org\r\n\
         ADR;TYPE=HOME:;;{i} Main Street;Springfield;;12345;US\r\nNOTE:benchmark contact {i}\r\n\
         END:VCARD\r\n"
    )
}

fn provision(store: &SqliteStore) -> Result<(), String> {
    store
        .transaction(|tx| {
            let t0 = Timestamp::from_unix_secs(1);
            tx.subscriber_create(
                &NewSubscriber {
                    id: SUBSCRIBER.into(),
                    display_name: None,
                    security_level: 0,
                },
                t0,
            )?;
            for t in TERMINALS {
                tx.terminal_register(
                    &NewTerminal {
                        terminal_id: t.into(),
                        subscriber_id: SUBSCRIBER.into(),
                        md5_verifier: Some(Secret::new(syncml_core::auth::md5::user_digest(
                            SUBSCRIBER, PASSWORD,
                        ))),
                        basic_verifier: None,
                        classes: vec![],
                        registered_by: RegisteredBy::Operator,
                    },
                    t0,
                )?;
            }
            Ok(())
        })
        .map_err(|e| format!("provisioning: {e}"))
}

/// Peak RSS of a running process, KiB.
fn hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Runs `syncml-handset` with `args`; returns stdout, wall time and sampled peak RSS.
fn handset(o: &Options, dir: &Path, args: &[&str]) -> Result<(String, Duration, u64), String> {
    let started = Instant::now();
    let mut child = Command::new(&o.handset_bin)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("SYNCML_PIN", PIN)
        .env("SYNCML_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", o.handset_bin.display()))?;
    let mut peak = 0;
    while child
        .try_wait()
        .map_err(|e| format!("waiting for the handset: {e}"))?
        .is_none()
    {
        if let Some(k) = hwm_kib(child.id()) {
            peak = peak.max(k);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading the handset's output: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "syncml-handset {args:?}: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((stdout, elapsed, peak))
}

/// The number after `prefix` on the line starting with `line_start`.
fn number_after(out: &str, line_start: &str, prefix: &str) -> Option<usize> {
    let line = out.lines().find(|l| l.starts_with(line_start))?;
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn leg(o: &Options, dir: &Path, what: &str) -> Result<Leg, String> {
    let mut args = vec!["sync", "--mode", "slow", "--classes", "contacts"];
    if o.wbxml {
        args.push("--wbxml");
    }
    let (out, elapsed, peak_rss_kib) = handset(o, dir, &args)?;
    Ok(Leg {
        items: number_after(&out, "contacts:", what).ok_or_else(|| format!("no count in {out}"))?,
        messages: number_after(&out, "messages sent:", "messages sent: ")
            .ok_or_else(|| format!("no message count in {out}"))? as u32,
        elapsed,
        peak_rss_kib,
    })
}

fn make_handset(o: &Options, url: &str, name: &str, terminal: &str) -> Result<PathBuf, String> {
    let dir = o.dir.join(name);
    let size = o.max_msg_size.to_string();
    handset(
        o,
        &dir,
        &[
            "init",
            "--terminal-id",
            terminal,
            "--server",
            url,
            "--classes",
            "contacts",
            "--max-msg-size",
            &size,
        ],
    )?;
    let sim = o.dir.join("sim");
    handset(o, &dir, &["insert-sim", &sim.to_string_lossy()])?;
    handset(o, &dir, &["register"])?;
    Ok(dir)
}

/// Runs both legs against our server started in this process.
pub fn run(o: &Options) -> Result<Report, String> {
    if o.dir.exists() {
        return Err(format!("{} exists; give a new --dir", o.dir.display()));
    }
    std::fs::create_dir_all(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let store = Arc::new(
        SqliteStore::open_in_dir(o.dir.join("server")).map_err(|e| format!("server store: {e}"))?,
    );
    provision(&store)?;
    let mut cfg = EngineConfig::default();
    cfg.max_msg_size = o.max_msg_size;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let svc = Arc::new(SyncService::new(store.clone(), Engine::new(cfg)));
    let running = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("bind: {e}"))?;
        http::serve(l, svc, HttpOptions::default(), None).map_err(|e| format!("serve: {e}"))
    })?;
    let url = format!("http://{}/sync", running.local_addr);
    let r = legs(o, &url, &store);
    rt.block_on(running.shutdown());
    r
}

fn legs(o: &Options, url: &str, store: &SqliteStore) -> Result<Report, String> {
    let out = Command::new(&o.handset_bin)
        .arg("new-sim")
        .arg(o.dir.join("sim"))
        .args(["--subscriber", SUBSCRIBER, "--pin", PIN])
        .output()
        .map_err(|e| format!("running {}: {e}", o.handset_bin.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let a = make_handset(o, url, "a", TERMINALS[0])?;
    for i in 0..o.contacts {
        let p = a.join("contacts").join(format!("{i:05}.vcf"));
        std::fs::write(&p, vcard(i)).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let upload = leg(o, &a, "sent ")?;
    handset(o, &a, &["remove-sim"])?;
    let b = make_handset(o, url, "b", TERMINALS[1])?;
    let download = leg(o, &b, "received ")?;
    let server_items = store
        .read(|tx| tx.items_list_live(DatastoreKey::new(SUBSCRIBER, "contacts")))
        .map_err(|e| format!("reading the server: {e}"))?
        .len();
    let downloaded_files = std::fs::read_dir(b.join("contacts"))
        .map_err(|e| format!("{}: {e}", b.display()))?
        .count();
    Ok(Report {
        upload,
        download,
        server_items,
        downloaded_files,
    })
}

fn print_leg(name: &str, l: &Leg) {
    let secs = l.elapsed.as_secs_f64();
    println!(
        "{name}: {} contacts in {secs:.2} s ({:.0} items/s), {} messages, handset peak RSS {} KiB",
        l.items,
        if secs > 0.0 {
            l.items as f64 / secs
        } else {
            0.0
        },
        l.messages,
        l.peak_rss_kib
    );
}

#[allow(dead_code)]
fn main() -> std::process::ExitCode {
    let usage = "usage: handset-bench [--contacts N] [--dir DIR] [--handset-bin PATH] \
                 [--max-msg-size BYTES] [--wbxml]";
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.join("syncml-handset")))
        .unwrap_or_else(|| PathBuf::from("syncml-handset"));
    let mut o = Options {
        contacts: 10_000,
        dir: std::env::temp_dir().join(format!("handset-bench-{}", std::process::id())),
        handset_bin: sibling,
        max_msg_size: 64 * 1024,
        wbxml: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let ok = match a.as_str() {
            "--wbxml" => {
                o.wbxml = true;
                true
            }
            "--contacts" => args
                .next()
                .and_then(|v| v.parse().ok())
                .map(|v| o.contacts = v)
                .is_some(),
            "--max-msg-size" => args
                .next()
                .and_then(|v| v.parse().ok())
                .map(|v| o.max_msg_size = v)
                .is_some(),
            "--dir" => args.next().map(|v| o.dir = PathBuf::from(v)).is_some(),
            "--handset-bin" => args
                .next()
                .map(|v| o.handset_bin = PathBuf::from(v))
                .is_some(),
            _ => false,
        };
        if !ok {
            eprintln!("{usage}");
            return std::process::ExitCode::from(2);
        }
    }
    match run(&o) {
        Ok(r) => {
            print_leg("upload (slow sync, handset A -> server)", &r.upload);
            print_leg("download (slow sync, server -> handset B)", &r.download);
            println!(
                "server holds {} contacts, handset B {} files (work dir {})",
                r.server_items,
                r.downloaded_files,
                o.dir.display()
            );
            if r.server_items != o.contacts || r.downloaded_files != o.contacts {
                eprintln!("handset-bench: error: counts do not match {}", o.contacts);
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("handset-bench: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! A throwaway PostgreSQL cluster for the tests (shared by `store_pg.rs`, `ops.rs` and
//! `nodes.rs`): `initdb` into a temporary directory (as user `postgres` when run as root,
//! since `initdb` refuses root), `pg_ctl start` on a free loopback port with its unix socket
//! in that directory, one `createdb` per test. The process-wide cluster ([`cluster`]) is
//! stopped and its directory removed when the test binary exits (an `atexit` hook), and by a
//! small watchdog process if the binary is killed instead; a private one
//! ([`Cluster::start`]) is stopped when dropped.
//!
//! There is no skipping: without PostgreSQL server binaries every test that needs a cluster
//! fails and says which Debian package to install (`postgresql`). `SYNCML_PG_BIN` may name the
//! directory holding `initdb` and `pg_ctl`; otherwise `/usr/lib/postgresql/15/bin`, then the
//! newest `/usr/lib/postgresql/*/bin`, then `PATH` are searched.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// the throwaway cluster

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub struct Cluster {
    /// Temporary directory: `data/`, the server log and the unix socket.
    pub root: PathBuf,
    pub bin: PathBuf,
    pub port: u16,
    /// Run the server tools through `runuser -u postgres` (we are root).
    as_postgres: bool,
    next_db: AtomicUsize,
    stopped: AtomicBool,
}

/// The process-wide cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(Cluster::start_shared)
}

const MISSING: &str = "PostgreSQL server binaries (initdb, pg_ctl) not found in $SYNCML_PG_BIN, \
     /usr/lib/postgresql/*/bin or PATH. The PostgreSQL storage tests start a throwaway \
     PostgreSQL 15 cluster and need them: install the Debian package `postgresql` \
     (apt-get install postgresql), or point SYNCML_PG_BIN at a bin directory";

fn has_tools(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "createdb"]
        .iter()
        .all(|tool| dir.join(tool).is_file())
}

fn find_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SYNCML_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            has_tools(&dir),
            "{MISSING} (SYNCML_PG_BIN={})",
            dir.display()
        );
        return dir;
    }
    let mut candidates = vec![PathBuf::from("/usr/lib/postgresql/15/bin")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        candidates.extend(versions.into_iter().map(|(_, p)| p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| has_tools(dir))
        .unwrap_or_else(|| panic!("{MISSING}"))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "running as root, the cluster must run as user `postgres`, which does not exist; \
         install the Debian package `postgresql` (it creates that user)"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("numeric id")
}

/// A free loopback port (bound once and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn run(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed: {text}");
    text
}

impl Cluster {
    /// The process-wide cluster: stopped at exit.
    fn start_shared() -> Cluster {
        let c = Cluster::init();
        // SAFETY: registers a plain `extern "C"` function with no arguments; it only touches
        // the `CLUSTER` static, which lives for the whole program.
        unsafe {
            libc::atexit(stop_cluster_at_exit);
        }
        c
    }

    /// A private cluster (e.g. for a test that stops it): stopped when dropped.
    pub fn start() -> Cluster {
        Cluster::init()
    }

    fn init() -> Cluster {
        let began = Instant::now();
        let bin = find_bin();
        let as_postgres = running_as_root();
        let root = tempfile::Builder::new()
            .prefix("syncml-pg-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        if as_postgres {
            std::os::unix::fs::chown(&root, Some(id_of("-u")), Some(id_of("-g")))
                .expect("hand the cluster directory to user postgres");
        }
        let mut cluster = Cluster {
            root,
            bin,
            port: 0,
            as_postgres,
            next_db: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        };
        cluster.watchdog();

        let mut initdb = cluster.server_tool("initdb");
        initdb
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        run(initdb, "initdb");

        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            let mut pg_ctl = cluster.server_tool("pg_ctl");
            pg_ctl
                .arg("-D")
                .arg(cluster.data())
                .arg("-l")
                .arg(cluster.root.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(cluster.options())
                .arg("start")
                .stdin(Stdio::null());
            let out = pg_ctl.output().expect("run pg_ctl start");
            if out.status.success() {
                eprintln!(
                    "store_pg: PostgreSQL cluster from {} on 127.0.0.1:{} in {} (up in {:.1?})",
                    cluster.bin.display(),
                    cluster.port,
                    cluster.root.display(),
                    began.elapsed()
                );
                return cluster;
            }
            // Most likely someone took the port meanwhile: try another one.
            last_error = format!(
                "{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(cluster.root.join("server.log")).unwrap_or_default()
            );
        }
        panic!("pg_ctl start failed: {last_error}");
    }

    /// Stops the server (`pg_ctl stop -m fast`: open connections are ended, commits kept;
    /// `immediate` would lose the last commits, which `synchronous_commit=off` has not
    /// written yet), keeping its data: clients see connections refused until
    /// [`Cluster::resume`].
    pub fn pause(&self) {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "fast", "-w"]);
        run(pg_ctl, "pg_ctl stop");
    }

    /// Starts the server again on the same port after [`Cluster::pause`].
    pub fn resume(&self) {
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(self.options())
            .arg("start");
        run(pg_ctl, "pg_ctl start");
    }

    fn options(&self) -> String {
        format!(
            "-p {} -h 127.0.0.1 -k {} -F -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.root.display()
        )
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A server tool (`initdb`, `pg_ctl`), as user postgres when we are root.
    fn server_tool(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.current_dir(&self.root);
        cmd
    }

    /// If this process dies without running its exit hooks (killed, timed out), a detached
    /// shell stops the cluster and removes its directory once the process is gone.
    // Never waited for on purpose: it must outlive this process.
    #[allow(clippy::zombie_processes)]
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- '{}' -D '{}' stop -m immediate",
                pg_ctl.display(),
                self.data().display()
            )
        } else {
            format!(
                "'{}' -D '{}' stop -m immediate",
                pg_ctl.display(),
                self.data().display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             if [ -d '{root}' ]; then {stop}; rm -rf '{root}'; fi",
            pid = std::process::id(),
            root = self.root.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster watchdog");
    }

    /// Stops the server and removes its directory (once).
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut pg_ctl = self.server_tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "fast", "-w"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = pg_ctl.status();
        let _ = std::fs::remove_dir_all(&self.root);
    }

    /// A new, empty database; returns its connection URL.
    pub fn create_database(&self) -> String {
        let name = format!("t{}", self.next_db.fetch_add(1, Ordering::SeqCst));
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(&name);
        run(createdb, "createdb");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

extern "C" fn stop_cluster_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(cluster) = CLUSTER.get() {
            cluster.stop();
        }
    });
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

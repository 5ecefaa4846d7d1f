//! The `syncml-server` binary as a child process of a test (`crash.rs`, `nodes.rs`):
//! `serve` on a fixed loopback port with the store given on its command line, ready once
//! `GET /healthz` answers 200, stopped with SIGKILL (no shutdown code runs) by
//! [`ServerProcess::kill9`] or on drop. Its output goes to a log file whose tail is shown
//! when it does not come up.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_syncml-server");
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A TCP port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One `syncml-server serve` process (see the module docs).
pub struct ServerProcess {
    /// Arguments before `serve`: the store (`--data DIR` or `--db URL`).
    store: Vec<OsString>,
    /// Arguments after `serve --listen ADDR`.
    serve: Vec<String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl ServerProcess {
    /// Starts the server on `port` and waits until it is ready.
    pub fn start(store: Vec<OsString>, serve: &[&str], port: u16, log: PathBuf) -> ServerProcess {
        let mut p = ServerProcess {
            store,
            serve: serve.iter().map(|s| s.to_string()).collect(),
            port,
            log,
            child: None,
        };
        p.spawn();
        p
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The SyncML endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/sync", self.port)
    }

    /// The process ID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Starts it (again: after [`ServerProcess::kill9`], on the same store and port).
    /// A process that exits at once (the port not free yet after a kill) is started
    /// again until the deadline.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("server log");
            let mut child = Command::new(BIN)
                .args(&self.store)
                .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
                .args(&self.serve)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("spawn syncml-server");
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: start again below
                }
                if healthy(self.port) {
                    // Ours, not some other process on the port: still running a moment
                    // later (a server that could not bind exits at once).
                    std::thread::sleep(Duration::from_millis(20));
                    if let Ok(None) = child.try_wait() {
                        self.child = Some(child);
                        return;
                    }
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("server did not become ready:\n{}", self.log_tail());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                Instant::now() < deadline,
                "server kept exiting at start:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` (SIGKILL: no shutdown code runs) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `GET /healthz` answers 200.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

//! `syncml-handset`: a file-backed handset on the command line (see `docs/handset.md`).
//!
//! ```text
//! syncml-handset --dir H init --terminal-id IMEI:1 --password PW --server URL
//! syncml-handset new-sim SIMDIR --subscriber IMSI --pin PIN
//! syncml-handset --dir H insert-sim SIMDIR
//! syncml-handset --dir H register --pin PIN --password PW
//! syncml-handset --dir H sync --mode two-way --pin PIN --password PW
//! syncml-handset --dir H status
//! ```

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use syncml_client::fs::{DataClass, FsHandset, FsSim, HandsetConfig, SyncOutcome};
use syncml_client::{DataStore, Sim, SyncMode, Terminal, Transport, TransportError};
use syncml_core::Encoding;

const USAGE: &str = "\
usage: syncml-handset [--dir DIR] COMMAND [OPTIONS]

The handset directory is --dir, else $SYNCML_HANDSET_DIR, else the current directory.
PIN and terminal password: --pin / --password, else $SYNCML_PIN / $SYNCML_PASSWORD.

commands:
  init --terminal-id ID --password PW --server URL [--policy P] [--classes C,..]
       [--contacts-uri URI] [--calendar-uri URI] [--wbxml] [--auth md5|basic|none]
       [--max-msg-size BYTES] [--ca-cert PEM]
                         create a handset (policy: all, fig9, fig10b, fig11b, fig12,
                         fig13 or gates joined by '+': pin+password+subscriber+listed)
  new-sim SIMDIR --subscriber ID --pin PIN
                         create a SIM card directory
  insert-sim SIMDIR      mount the SIM
  remove-sim             demount the SIM
  register [--flow 10a|11a|both]
                         FIG. 10-A: the SIM's subscriber ID into the terminal;
                         FIG. 11-A: the terminal ID onto the SIM (PIN + password)
  register-server --login LOGIN [--classes C,..]
                         FIG. 8: PIN, password, then this terminal registered with the
                         server's registration API (the subscriber's login password)
  sync [--mode MODE] [--classes C,..] [--wbxml|--xml] [--server URL] [--ca-cert PEM]
       [--progress]
                         MODE: two-way (default), slow, one-way-from-client,
                         refresh-from-client, one-way-from-server, refresh-from-server
  erase --classes C,..   upload pending changes, then erase those classes locally
  status                 terminal, SIM, server and per-class counts
";

/// A command-line problem: printed with the usage, exit status 2.
struct Usage(String);

/// Parsed arguments: positionals and `--name value` / `--flag` options.
struct Args {
    positional: Vec<String>,
    options: HashMap<String, String>,
    flags: Vec<String>,
}

const FLAGS: &[&str] = &["wbxml", "xml", "progress", "help"];

impl Args {
    fn parse(raw: Vec<String>) -> Result<Args, Usage> {
        let mut a = Args {
            positional: Vec::new(),
            options: HashMap::new(),
            flags: Vec::new(),
        };
        let mut it = raw.into_iter();
        while let Some(arg) = it.next() {
            if let Some(name) = arg.strip_prefix("--") {
                if let Some((n, v)) = name.split_once('=') {
                    a.options.insert(n.to_string(), v.to_string());
                } else if FLAGS.contains(&name) {
                    a.flags.push(name.to_string());
                } else {
                    let v = it
                        .next()
                        .ok_or_else(|| Usage(format!("--{name} needs a value")))?;
                    a.options.insert(name.to_string(), v);
                }
            } else if arg == "-h" {
                a.flags.push("help".into());
            } else {
                a.positional.push(arg);
            }
        }
        Ok(a)
    }

    fn take(&mut self, name: &str) -> Option<String> {
        self.options.remove(name)
    }

    fn take_or_env(&mut self, name: &str, env: &str) -> Option<String> {
        self.take(name)
            .or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
    }

    fn need(&mut self, name: &str) -> Result<String, Usage> {
        self.take(name)
            .ok_or_else(|| Usage(format!("--{name} is required")))
    }

    fn flag(&mut self, name: &str) -> bool {
        let had = self.flags.iter().any(|f| f == name);
        self.flags.retain(|f| f != name);
        had
    }

    fn finish(self) -> Result<(), Usage> {
        if let Some(p) = self.positional.first() {
            return Err(Usage(format!("unexpected argument {p:?}")));
        }
        if let Some(k) = self.options.keys().next() {
            return Err(Usage(format!("unknown option --{k}")));
        }
        if let Some(f) = self.flags.first() {
            return Err(Usage(format!("--{f} does not apply here")));
        }
        Ok(())
    }
}

fn parse_classes(s: &str) -> Result<Vec<DataClass>, Usage> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            DataClass::parse(c)
                .ok_or_else(|| Usage(format!("unknown class {c:?} (contacts, calendar)")))
        })
        .collect()
}

fn parse_mode(s: &str) -> Result<SyncMode, Usage> {
    Ok(match s {
        "two-way" => SyncMode::TwoWay,
        "slow" => SyncMode::Slow,
        "one-way-from-client" => SyncMode::OneWayFromClient,
        "refresh-from-client" => SyncMode::RefreshFromClient,
        "one-way-from-server" => SyncMode::OneWayFromServer,
        "refresh-from-server" => SyncMode::RefreshFromServer,
        _ => return Err(Usage(format!("unknown sync mode {s:?}"))),
    })
}

fn mode_name(m: SyncMode) -> &'static str {
    match m {
        SyncMode::TwoWay => "two-way",
        SyncMode::Slow => "slow",
        SyncMode::OneWayFromClient => "one-way-from-client",
        SyncMode::RefreshFromClient => "refresh-from-client",
        SyncMode::OneWayFromServer => "one-way-from-server",
        SyncMode::RefreshFromServer => "refresh-from-server",
    }
}

/// Shows one stderr line per message posted, rewritten in place.
struct Progress<T> {
    inner: T,
    show: bool,
    messages: AtomicUsize,
    up: AtomicUsize,
    down: AtomicUsize,
}

impl<T> Progress<T> {
    fn new(inner: T, show: bool) -> Progress<T> {
        Progress {
            inner,
            show,
            messages: AtomicUsize::new(0),
            up: AtomicUsize::new(0),
            down: AtomicUsize::new(0),
        }
    }

    fn line(&self) {
        if self.show {
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\rsyncing: message {} sent, {} KiB up, {} KiB down ",
                self.messages.load(Ordering::Relaxed),
                self.up.load(Ordering::Relaxed) / 1024,
                self.down.load(Ordering::Relaxed) / 1024
            );
            let _ = e.flush();
        }
    }

    fn done(&self) {
        if self.show && self.messages.load(Ordering::Relaxed) > 0 {
            eprintln!();
        }
    }
}

impl<T: Transport> Transport for Progress<T> {
    async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(String, Vec<u8>), TransportError> {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.up.fetch_add(body.len(), Ordering::Relaxed);
        self.line();
        let r = self.inner.post(url, content_type, body).await;
        if let Ok((_, reply)) = &r {
            self.down.fetch_add(reply.len(), Ordering::Relaxed);
            self.line();
        }
        r
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn print_outcome(o: &SyncOutcome) {
    for (class, s) in o.classes.iter().zip(&o.report.stores) {
        println!(
            "{}: {} (asked {}), sent {} (+{} ~{} -{}), received {} (+{} ~{} -{}){}",
            class.name(),
            s.mode.map(mode_name).unwrap_or("none"),
            mode_name(s.requested),
            s.sent.total(),
            s.sent.added,
            s.sent.replaced,
            s.sent.deleted,
            s.received.total(),
            s.received.added,
            s.received.replaced,
            s.received.deleted,
            if s.rejected > 0 {
                format!(", {} rejected by the server", s.rejected)
            } else {
                String::new()
            }
        );
    }
    for w in &o.warnings {
        println!("warning: {w:?}");
    }
    println!("messages sent: {}", o.report.messages_sent);
}

fn handset_dir(a: &mut Args) -> PathBuf {
    a.take("dir")
        .or_else(|| std::env::var("SYNCML_HANDSET_DIR").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn open(dir: &Path) -> Result<FsHandset, String> {
    FsHandset::open(dir).map_err(|e| e.to_string())
}

/// Applies the per-run encoding and server overrides of `sync` and `erase`.
fn overrides(a: &mut Args, h: &mut FsHandset) {
    if a.flag("wbxml") {
        h.config_mut().encoding = Encoding::Wbxml;
    }
    if a.flag("xml") {
        h.config_mut().encoding = Encoding::Xml;
    }
    if let Some(url) = a.take("server") {
        h.config_mut().server_url = url;
    }
    if let Some(p) = a.take("ca-cert") {
        h.config_mut().ca_cert = Some(PathBuf::from(p));
    }
}

fn run(raw: Vec<String>) -> Result<Result<(), String>, Usage> {
    let mut a = Args::parse(raw)?;
    if a.flag("help") || a.positional.is_empty() {
        print!("{USAGE}");
        return Ok(Ok(()));
    }
    let dir = handset_dir(&mut a);
    let cmd = a.positional.remove(0);
    match cmd.as_str() {
        "init" => {
            let terminal_id = a.need("terminal-id")?;
            let password = a
                .take_or_env("password", "SYNCML_PASSWORD")
                .ok_or_else(|| Usage("--password is required".into()))?;
            let mut c = HandsetConfig::new(&a.need("server")?);
            if let Some(p) = a.take("policy") {
                c.policy = HandsetConfig::parse_policy(&p)
                    .ok_or_else(|| Usage(format!("unknown policy {p:?}")))?;
            }
            if let Some(cl) = a.take("classes") {
                c.classes = parse_classes(&cl)?;
            }
            if let Some(u) = a.take("contacts-uri") {
                c.contacts_uri = u;
            }
            if let Some(u) = a.take("calendar-uri") {
                c.calendar_uri = u;
            }
            if a.flag("wbxml") {
                c.encoding = Encoding::Wbxml;
            }
            if let Some(s) = a.take("auth") {
                c.auth = match s.as_str() {
                    "md5" => syncml_client::AuthScheme::Md5,
                    "basic" => syncml_client::AuthScheme::Basic,
                    "none" => syncml_client::AuthScheme::None,
                    _ => return Err(Usage(format!("unknown auth {s:?}"))),
                };
            }
            if let Some(p) = a.take("ca-cert") {
                c.ca_cert = Some(PathBuf::from(p));
            }
            if let Some(n) = a.take("max-msg-size") {
                c.max_msg_size = n
                    .parse()
                    .map_err(|_| Usage(format!("--max-msg-size {n:?} is not a number")))?;
            }
            a.finish()?;
            Ok(FsHandset::init(&dir, &terminal_id, &password, c)
                .map(|h| println!("handset {} created in {}", terminal_id, h.root().display()))
                .map_err(|e| e.to_string()))
        }
        "new-sim" => {
            if a.positional.is_empty() {
                return Err(Usage("new-sim needs the SIM directory".into()));
            }
            let sim_dir = PathBuf::from(a.positional.remove(0));
            let subscriber = a.need("subscriber")?;
            let pin = a
                .take_or_env("pin", "SYNCML_PIN")
                .ok_or_else(|| Usage("--pin is required".into()))?;
            a.finish()?;
            Ok(FsSim::create(&sim_dir, &subscriber, &pin)
                .map(|_| println!("SIM {subscriber} created in {}", sim_dir.display()))
                .map_err(|e| e.to_string()))
        }
        "insert-sim" => {
            if a.positional.is_empty() {
                return Err(Usage("insert-sim needs the SIM directory".into()));
            }
            let sim_dir = PathBuf::from(a.positional.remove(0));
            a.finish()?;
            Ok((|| {
                let mut h = open(&dir)?;
                h.insert_sim(&sim_dir).map_err(|e| e.to_string())?;
                println!("SIM inserted");
                Ok(())
            })())
        }
        "remove-sim" => {
            a.finish()?;
            Ok((|| {
                let mut h = open(&dir)?;
                let d = h.remove_sim().map_err(|e| e.to_string())?;
                println!("SIM {} removed", d.display());
                Ok(())
            })())
        }
        "register-server" => {
            let pin = a.take_or_env("pin", "SYNCML_PIN");
            let pw = a.take_or_env("password", "SYNCML_PASSWORD");
            let login = a
                .take_or_env("login", "SYNCML_LOGIN")
                .ok_or_else(|| Usage("register-server needs --login (or SYNCML_LOGIN)".into()))?;
            let classes: Vec<String> = a
                .take("classes")
                .map(|c| c.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default();
            a.finish()?;
            Ok((|| {
                let mut h = open(&dir)?;
                let rt = runtime()?;
                let http = h.http_transport().map_err(|e| e.to_string())?;
                let r = rt
                    .block_on(h.register_with_server(
                        &http,
                        &login,
                        &classes,
                        pin.as_deref(),
                        pw.as_deref(),
                    ))
                    .map_err(|e| e.to_string())?;
                println!(
                    "FIG. 8: terminal {} registered with the server for subscriber {} (classes: {})",
                    r.terminal_id,
                    r.subscriber_id,
                    if r.classes.is_empty() {
                        "all".to_string()
                    } else {
                        r.classes.join(",")
                    }
                );
                println!("FIG. 10-A: subscriber ID registered in the terminal");
                Ok(())
            })())
        }
        "register" => {
            let pin = a.take_or_env("pin", "SYNCML_PIN");
            let pw = a.take_or_env("password", "SYNCML_PASSWORD");
            let (sub, term) = match a.take("flow").as_deref() {
                None | Some("both") => (true, true),
                Some("10a") => (true, false),
                Some("11a") => (false, true),
                Some(f) => return Err(Usage(format!("unknown flow {f:?} (10a, 11a, both)"))),
            };
            a.finish()?;
            Ok((|| {
                let mut h = open(&dir)?;
                h.register(pin.as_deref(), pw.as_deref(), sub, term)
                    .map_err(|e| e.to_string())?;
                if sub {
                    println!("FIG. 10-A: subscriber ID registered in the terminal");
                }
                if term {
                    println!("FIG. 11-A: terminal ID registered on the SIM");
                }
                Ok(())
            })())
        }
        "sync" | "erase" => {
            let pin = a.take_or_env("pin", "SYNCML_PIN");
            let pw = a.take_or_env("password", "SYNCML_PASSWORD");
            let mode = match a.take("mode") {
                Some(m) if cmd == "sync" => parse_mode(&m)?,
                Some(_) => return Err(Usage("erase always uploads first".into())),
                None => SyncMode::TwoWay,
            };
            let classes = match a.take("classes") {
                Some(c) => parse_classes(&c)?,
                None if cmd == "erase" => {
                    return Err(Usage(
                        "erase needs --classes (e.g. contacts,calendar)".into(),
                    ))
                }
                None => Vec::new(),
            };
            let show = a.flag("progress") || std::io::stderr().is_terminal();
            let mut h = match open(&dir) {
                Ok(h) => h,
                Err(e) => return Ok(Err(e)),
            };
            overrides(&mut a, &mut h);
            a.finish()?;
            Ok((|| {
                let rt = runtime()?;
                let http = h.http_transport().map_err(|e| e.to_string())?;
                let transport = Progress::new(http, show);
                let r = rt.block_on(async {
                    if cmd == "erase" {
                        h.erase(&transport, &classes, pin.as_deref(), pw.as_deref())
                            .await
                    } else {
                        h.sync(&transport, &classes, mode, pin.as_deref(), pw.as_deref())
                            .await
                    }
                });
                transport.done();
                let o = r.map_err(|e| e.to_string())?;
                print_outcome(&o);
                if cmd == "erase" {
                    let names: Vec<&str> = o.classes.iter().map(|c| c.name()).collect();
                    println!("erased locally: {}", names.join(", "));
                }
                Ok(())
            })())
        }
        "status" => {
            a.finish()?;
            Ok(status(&dir))
        }
        other => Err(Usage(format!("unknown command {other:?}"))),
    }
}

fn status(dir: &Path) -> Result<(), String> {
    let h = open(dir)?;
    let t = h.terminal();
    println!("terminal: {}", t.terminal_id());
    println!(
        "registered subscriber: {}",
        t.registered_subscriber_id().as_deref().unwrap_or("(none)")
    );
    match h.sim().map_err(|e| e.to_string())? {
        None => println!("SIM: (none)"),
        Some(sim) => println!(
            "SIM: {} in {}, {} PIN tries left, this terminal {}registered on it",
            sim.subscriber_id(),
            sim.dir().display(),
            sim.tries_left(),
            if sim.registered_terminal_ids().contains(&t.terminal_id()) {
                ""
            } else {
                "not "
            }
        ),
    }
    let c = h.config();
    println!("server: {}", c.server_url);
    println!(
        "policy: {}, encoding: {}, max message size: {}",
        HandsetConfig::policy_name(&c.policy),
        match c.encoding {
            Encoding::Xml => "xml",
            Encoding::Wbxml => "wbxml",
        },
        c.max_msg_size
    );
    for class in DataClass::ALL {
        let mut s = h.store(class).map_err(|e| e.to_string())?;
        let items = s.item_count().map_err(|e| e.to_string())?;
        let pending = s.pending().map_err(|e| e.to_string())?;
        let st = s.sync_state().map_err(|e| e.to_string())?;
        println!(
            "{}: {} items, {} pending changes, server URI {}, {}{}",
            class.name(),
            items,
            pending,
            c.server_uri(class),
            match &st.last_anchor {
                Some(a) => format!("last sync {a}"),
                None => "never synced".into(),
            },
            if c.classes.contains(&class) {
                ""
            } else {
                " (not synced by default)"
            }
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match run(raw) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            // One line, whatever the error carries (an HTTP error body may hold newlines).
            let e = e.replace(['\r', '\n'], " ");
            eprintln!("syncml-handset: error: {}", e.trim());
            ExitCode::FAILURE
        }
        Err(Usage(e)) => {
            eprintln!("syncml-handset: {e}\n(see syncml-handset --help)");
            ExitCode::from(2)
        }
    }
}

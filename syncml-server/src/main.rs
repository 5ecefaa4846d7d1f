//! `syncml-server`: run the OMA DS server and provision subscribers and terminals.
//!
//! ```text
//! syncml-server serve [--listen 127.0.0.1:8080] [--data DIR] [--tls-cert PEM --tls-key PEM]
//! syncml-server subscriber add|show|list ...
//! syncml-server terminal register SUBSCRIBER TERMINAL --password PW [--classes a,b]
//! syncml-server terminal remove SUBSCRIBER TERMINAL
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use syncml_server::http::{self, HttpOptions};
use syncml_server::provision;
use syncml_server::registration::RegistrationConfig;
use syncml_server::service::SyncService;
use syncml_server::session::{ConflictPolicy, Engine, EngineConfig};
use syncml_server::store::{
    AuditFilter, LockoutKey, NewSubscriber, PgStore, RegisteredBy, SqliteConfig, SqliteStore,
    Store, StoreExt, Timestamp,
};

#[derive(Parser)]
#[command(
    name = "syncml-server",
    version,
    about = "OMA DS 1.2 / SyncML sync server"
)]
struct Cli {
    /// Data directory (the SQLite database lives here).
    #[arg(long, global = true, default_value = "syncml-data")]
    data: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite (`postgres://user@host/db`); several
    /// server nodes can share one database.
    #[arg(long, global = true)]
    db: Option<String>,
    /// Where SQLite's WAL checkpoints run.
    #[arg(long, global = true, value_enum, default_value_t = CheckpointIn::Background)]
    sqlite_checkpoint: CheckpointIn,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where SQLite's WAL checkpoints run (`--sqlite-checkpoint`).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckpointIn {
    /// A thread of their own; the writer only finishes what is left so the WAL can start over.
    Background,
    /// SQLite's automatic checkpoint in the committing writer, as before (for comparison).
    Writer,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve SyncML over HTTP (or HTTPS with --tls-cert/--tls-key).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// PEM certificate chain for HTTPS.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for HTTPS.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Accept syncml:auth-basic, and serve the registration API, over plain HTTP
        /// (passwords travel in clear: for tests, or TLS terminated in front).
        #[arg(long)]
        allow_insecure_basic: bool,
        /// File holding the bearer token of shop registration devices (FIG. 18-19);
        /// without it the shop endpoint of the registration API is off.
        #[arg(long, value_name = "FILE")]
        shop_token_file: Option<PathBuf>,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
        /// Conflict policy: `server-wins` (default), `client-wins`, `duplicate` or
        /// `newer-wins` for every datastore, or `DATASTORE=POLICY` for one (repeatable).
        #[arg(long = "conflict-policy", value_name = "[DATASTORE=]POLICY")]
        conflict_policies: Vec<String>,
        /// Messages handled at once (default 16: on PostgreSQL the connection pool's size;
        /// on SQLite, messages decode and queue while the writer works, and the queue
        /// commits together).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Manage subscribers (a SIM's IMSI or MSISDN).
    #[command(subcommand)]
    Subscriber(SubscriberCmd),
    /// Manage terminals (handsets) bound to subscribers.
    #[command(subcommand)]
    Terminal(TerminalCmd),
}

#[derive(Subcommand)]
enum SubscriberCmd {
    /// Create a subscriber.
    Add {
        /// Subscriber ID (IMSI or MSISDN); also the SyncML user name.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a subscriber: terminals, datastores, item counts, last sessions.
    Show {
        /// Subscriber ID.
        id: String,
    },
    /// List subscribers.
    List,
    /// Set (or with no --pin, clear) the subscriber's PIN, checked at security level 2
    /// through the PIN extension (see docs/auth.md for what is stored).
    SetPin {
        /// Subscriber ID.
        id: String,
        /// The PIN.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Set (or with no --password, clear) the subscriber's login password, which
    /// protects the handset registration API (stored as an Argon2id hash).
    SetLogin {
        /// Subscriber ID.
        id: String,
        /// The login password.
        #[arg(long)]
        password: Option<String>,
    },
    /// Set the subscriber's security level (0: bound terminal and its password; 1: as 0,
    /// over TLS only; 2: as 1, plus the subscriber's PIN).
    SecurityLevel {
        /// Subscriber ID.
        id: String,
        /// Level 0, 1 or 2.
        level: u8,
    },
    /// Lift a brute-force lockout of the subscriber.
    Unlock {
        /// Subscriber ID.
        id: String,
    },
    /// Show the subscriber's audit log, newest first.
    Audit {
        /// Subscriber ID.
        id: String,
        /// How many events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum TerminalCmd {
    /// Register a terminal for a subscriber with its password.
    Register {
        /// Subscriber ID.
        subscriber: String,
        /// Terminal ID as the handset sends it in SyncHdr/Source/LocURI (e.g. IMEI:...).
        terminal: String,
        /// The terminal password (stored as an Argon2id hash, and as the md5 digest
        /// auth-md5 forces the server to keep).
        #[arg(long)]
        password: String,
        /// Data classes this terminal syncs (comma separated; default: all).
        #[arg(long, value_delimiter = ',')]
        classes: Vec<String>,
    },
    /// Set the data classes a terminal syncs (takes effect at its next session; never
    /// deletes data).
    Classes {
        /// Subscriber ID.
        subscriber: String,
        /// Terminal ID.
        terminal: String,
        /// Data classes, comma separated (empty: all).
        #[arg(long, value_delimiter = ',')]
        set: Vec<String>,
    },
    /// Lift a brute-force lockout of the terminal.
    Unlock {
        /// Terminal ID.
        terminal: String,
    },
    /// Remove a terminal (revokes it at once).
    Remove {
        /// Subscriber ID.
        subscriber: String,
        /// Terminal ID.
        terminal: String,
    },
}

fn now() -> Timestamp {
    Timestamp::from_unix_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

/// Rust allocations go to mimalloc: decoding a message and building the reply allocate
/// and free thousands of small blocks, which sent glibc's malloc into its slow paths
/// (`_int_malloc`, `malloc_consolidate`: most of the time spent decoding a client's
/// message of statuses). A/B on the same commit: 10,000-contact slow sync down 12 % less
/// server CPU, two-way sessions/s +6 % (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// SQLite allocates through the C library's malloc still. glibc's malloc hands blocks of
/// more than 128 KiB out as fresh mappings and gives freed memory back to the kernel eagerly. Every write transaction has SQLite set up and
/// drop its page cache (tens of KiB), so each one page-faulted fresh memory in and
/// unmapped it again, with TLB shoot-downs across cores. Keeping such memory in the heap
/// measured 9-13 % more sessions/s (BENCHMARKS.md).
///
/// Transparent huge pages are off for the process: mimalloc asks for them on its arenas,
/// and the kernel then zeroes a whole 2 MiB page on the first touch of any byte of it,
/// every time mimalloc's threads take fresh pages. That zeroing (`clear_page_erms`) was
/// 18-23 % of the server's CPU in the 10,000-contact download; with THP off, 1-2 %.
///
/// mimalloc keeps the memory it has, instead of handing free pages back to the kernel a
/// second after they fell free (its default): a message's tree and reply are freed and
/// allocated again with every message, and each page handed back was faulted in and its
/// free list rebuilt again (page faults and `mi_page_free_list_extend`: 7 % of the same
/// step; 4 % with a 10 s delay; 1 % never handing back). The resident size is then the
/// peak of what the server used, not less. `MIMALLOC_PURGE_DELAY` in the environment
/// (milliseconds, mimalloc's own variable) still decides when set.
fn tune_malloc() {
    /// `mi_option_purge_delay` of mimalloc's `mi_option_t` (mimalloc.h; the Rust crate
    /// names no constant for it).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; called before any thread starts.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag of this process;
    // should it fail, huge pages stay as the system has them, which is only slower.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syncml-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_policy(s: &str) -> Result<ConflictPolicy, String> {
    match s.trim() {
        "server-wins" => Ok(ConflictPolicy::ServerWins),
        "client-wins" => Ok(ConflictPolicy::ClientWins),
        "duplicate" => Ok(ConflictPolicy::Duplicate),
        "newer-wins" => Ok(ConflictPolicy::NewerWins),
        other => Err(format!(
            "unknown conflict policy {other}: expected server-wins, client-wins, duplicate or newer-wins"
        )),
    }
}

fn open_store(
    data: &PathBuf,
    db: Option<&str>,
    checkpoint: CheckpointIn,
) -> Result<Arc<dyn Store>, String> {
    let config = SqliteConfig {
        background_checkpoint: checkpoint == CheckpointIn::Background,
        ..SqliteConfig::default()
    };
    match db {
        Some(url) => PgStore::connect(url)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| format!("cannot open the PostgreSQL database: {e}")),
        None => SqliteStore::open_in_dir_with(data, &config)
            .map(|s| Arc::new(s) as Arc<dyn Store>)
            .map_err(|e| format!("cannot open the database in {}: {e}", data.display())),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.cmd {
        Cmd::Serve {
            listen,
            tls_cert,
            tls_key,
            allow_insecure_basic,
            shop_token_file,
            log_json,
            conflict_policies,
            workers,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            if log_json {
                tracing_subscriber::fmt()
                    .json()
                    .with_env_filter(filter)
                    .init();
            } else {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            let tls = match (tls_cert, tls_key) {
                (Some(c), Some(k)) => {
                    let cert = std::fs::read(&c).map_err(|e| format!("{}: {e}", c.display()))?;
                    let key = std::fs::read(&k).map_err(|e| format!("{}: {e}", k.display()))?;
                    Some(Arc::new(http::tls_config(&cert, &key)?))
                }
                _ => None,
            };
            let mut cfg = EngineConfig::default();
            cfg.allow_basic_without_tls = allow_insecure_basic;
            for spec in &conflict_policies {
                let (ds, policy) = match spec.split_once('=') {
                    Some((d, p)) => (Some(d), p),
                    None => (None, spec.as_str()),
                };
                let policy = parse_policy(policy)?;
                match ds {
                    Some(d) => {
                        let def = syncml_server::datastores::resolve(d)
                            .ok_or_else(|| format!("unknown datastore {d}"))?;
                        cfg.datastore_policies.insert(def.name.to_string(), policy);
                    }
                    None => cfg.conflict_policy = policy,
                }
            }
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let shop_token = match &shop_token_file {
                Some(f) => {
                    let t =
                        std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
                    let t = t.trim().to_string();
                    if t.len() < 16 {
                        return Err(format!(
                            "{}: the shop token must be at least 16 characters",
                            f.display()
                        ));
                    }
                    Some(t)
                }
                None => None,
            };
            let workers = workers.unwrap_or(syncml_server::service::DEFAULT_WORKERS);
            let svc = Arc::new(
                SyncService::new(store, Engine::new(cfg))
                    .with_workers(workers)
                    .with_registration(RegistrationConfig {
                        shop_token,
                        allow_insecure: allow_insecure_basic,
                    }),
            );
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                let scheme = if tls.is_some() { "https" } else { "http" };
                let running = http::serve(listener, svc, HttpOptions::default(), tls)
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    "syncml-server listening on {scheme}://{}/sync (storage: {})",
                    running.local_addr,
                    if cli.db.is_some() {
                        "PostgreSQL".to_string()
                    } else {
                        cli.data.display().to_string()
                    }
                );
                let trigger = running.shutdown_trigger();
                tokio::spawn(async move {
                    let ctrl_c = tokio::signal::ctrl_c();
                    #[cfg(unix)]
                    {
                        let mut term = match tokio::signal::unix::signal(
                            tokio::signal::unix::SignalKind::terminate(),
                        ) {
                            Ok(s) => s,
                            Err(_) => {
                                let _ = ctrl_c.await;
                                let _ = trigger.send(true);
                                return;
                            }
                        };
                        tokio::select! {
                            _ = ctrl_c => {},
                            _ = term.recv() => {},
                        }
                    }
                    #[cfg(not(unix))]
                    let _ = ctrl_c.await;
                    let _ = trigger.send(true);
                });
                running.wait().await;
                Ok::<(), String>(())
            })
        }
        Cmd::Subscriber(SubscriberCmd::Add { id, name }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction(|tx| {
                    tx.subscriber_create(
                        &NewSubscriber {
                            id: id.clone(),
                            display_name: name.clone(),
                            security_level: 0,
                        },
                        now(),
                    )
                })
                .map_err(|e| format!("subscriber {id}: {e}"))?;
            println!("subscriber {id} added");
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::List) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let subs = store
                .read(|tx| tx.subscriber_list(None, 10_000))
                .map_err(|e| e.to_string())?;
            for s in subs {
                println!(
                    "{}\t{}\tsecurity-level {}",
                    s.id,
                    s.display_name.unwrap_or_default(),
                    s.security_level
                );
            }
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::Show { id }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let out = store
                .read(|tx| {
                    let Some(s) = tx.subscriber_get(&id)? else {
                        return Ok(None);
                    };
                    let terms = tx.terminal_list(&id)?;
                    let ds = tx.datastores(&id)?;
                    let audit = tx.audit_list(&AuditFilter {
                        subscriber_id: Some(id.clone()),
                        limit: 10,
                        ..AuditFilter::default()
                    })?;
                    Ok(Some((s, terms, ds, audit)))
                })
                .map_err(|e| e.to_string())?;
            let Some((s, terms, ds, audit)) = out else {
                return Err(format!("no subscriber {id}"));
            };
            println!(
                "subscriber {} ({})",
                s.id,
                s.display_name.unwrap_or_default()
            );
            println!(
                "  security level {}; PIN {}; login password {}",
                s.security_level,
                if s.pin_verifier.is_some() {
                    "set"
                } else {
                    "not set"
                },
                if s.login_verifier.is_some() {
                    "set"
                } else {
                    "not set"
                }
            );
            println!("  terminals:");
            for t in terms {
                println!(
                    "    {}{} classes [{}] registered by {} last session {}",
                    t.terminal_id,
                    if t.revoked { " (revoked)" } else { "" },
                    if t.classes.is_empty() {
                        "all".to_string()
                    } else {
                        t.classes.join(",")
                    },
                    t.registered_by.as_str(),
                    t.last_session_at
                        .map(|x| x.unix_secs().to_string())
                        .unwrap_or_else(|| "never".into())
                );
            }
            println!("  datastores:");
            for d in ds {
                println!(
                    "    {} revision {} items {} bytes {}",
                    d.name, d.revision, d.stats.count, d.stats.total_bytes
                );
            }
            println!("  recent events:");
            for a in audit {
                println!(
                    "    {} {} {} {} {}",
                    a.event.at.unix_secs(),
                    a.event.terminal_id.unwrap_or_default(),
                    a.event.kind,
                    a.event.status.map(|s| s.to_string()).unwrap_or_default(),
                    a.event.reason
                );
            }
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::SetPin { id, pin }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction_with_error(|tx| provision::set_pin(tx, &id, pin.as_deref()))
                .map_err(|e| format!("subscriber {id}: {e}"))?;
            println!(
                "subscriber {id}: PIN {}",
                if pin.is_some() { "set" } else { "cleared" }
            );
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::SetLogin { id, password }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction_with_error(|tx| {
                    provision::set_login_password(tx, &id, password.as_deref())
                })
                .map_err(|e| format!("subscriber {id}: {e}"))?;
            println!(
                "subscriber {id}: login password {}",
                if password.is_some() { "set" } else { "cleared" }
            );
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::SecurityLevel { id, level }) => {
            if level > 2 {
                return Err(format!("security level {level}: expected 0, 1 or 2"));
            }
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction(|tx| tx.subscriber_set_security_level(&id, level))
                .map_err(|e| format!("subscriber {id}: {e}"))?;
            println!("subscriber {id}: security level {level}");
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::Unlock { id }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let was = store
                .transaction(|tx| tx.lockout_reset(LockoutKey::Subscriber(&id)))
                .map_err(|e| e.to_string())?;
            println!(
                "subscriber {id}: {}",
                if was {
                    "lockout lifted"
                } else {
                    "was not locked"
                }
            );
            Ok(())
        }
        Cmd::Subscriber(SubscriberCmd::Audit { id, limit }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let events = store
                .read(|tx| {
                    tx.audit_list(&AuditFilter {
                        subscriber_id: Some(id.clone()),
                        limit,
                        ..AuditFilter::default()
                    })
                })
                .map_err(|e| e.to_string())?;
            for a in events {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    a.event.at.unix_secs(),
                    a.event.terminal_id.unwrap_or_default(),
                    a.event.kind,
                    a.event.status.map(|s| s.to_string()).unwrap_or_default(),
                    a.event.remote_addr.unwrap_or_default(),
                    a.event.reason
                );
            }
            Ok(())
        }
        Cmd::Terminal(TerminalCmd::Classes {
            subscriber,
            terminal,
            set,
        }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let classes = store
                .transaction_with_error(|tx| {
                    provision::set_classes(tx, &subscriber, &terminal, &set)
                })
                .map_err(|e| format!("terminal {terminal}: {e}"))?;
            println!(
                "terminal {terminal}: classes [{}]",
                if classes.is_empty() {
                    "all".to_string()
                } else {
                    classes.join(",")
                }
            );
            Ok(())
        }
        Cmd::Terminal(TerminalCmd::Unlock { terminal }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            let was = store
                .transaction(|tx| tx.lockout_reset(LockoutKey::Terminal(&terminal)))
                .map_err(|e| e.to_string())?;
            println!(
                "terminal {terminal}: {}",
                if was {
                    "lockout lifted"
                } else {
                    "was not locked"
                }
            );
            Ok(())
        }
        Cmd::Terminal(TerminalCmd::Register {
            subscriber,
            terminal,
            password,
            classes,
        }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction_with_error(|tx| {
                    provision::register_terminal(
                        tx,
                        &subscriber,
                        &terminal,
                        &password,
                        &classes,
                        RegisteredBy::Operator,
                        now(),
                    )
                })
                .map_err(|e| format!("terminal {terminal}: {e}"))?;
            println!("terminal {terminal} registered for subscriber {subscriber}");
            Ok(())
        }
        Cmd::Terminal(TerminalCmd::Remove {
            subscriber,
            terminal,
        }) => {
            let store = open_store(&cli.data, cli.db.as_deref(), cli.sqlite_checkpoint)?;
            store
                .transaction(|tx| tx.terminal_remove(&subscriber, &terminal))
                .map_err(|e| format!("terminal {terminal}: {e}"))?;
            println!("terminal {terminal} removed");
            Ok(())
        }
    }
}

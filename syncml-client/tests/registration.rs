//! FIG. 8 (the handset registers itself with the server after the PIN and the terminal
//! password) and FIG. 19 (a shop's registration device) against our real server's
//! registration API over HTTP, then a real sync by the registered terminal.

use std::sync::Arc;
use syncml_client::mem::{MemorySim, MemoryStore, MemoryTerminal, ScriptedUi};
use syncml_client::registration::{register_at_shop, register_handset, RegistrationError};
use syncml_client::{
    DataStore, Engine, EngineConfig, GatePolicy, GateRefusal, Handset, HttpTransport, SyncMode,
};
use syncml_server::registration::RegistrationConfig;
use syncml_server::store::{SqliteStore, Store, StoreExt, Timestamp};
use syncml_server::{http, provision, service::SyncService, session};

const SUB: &str = "001010123456789";
const SHOP_TOKEN: &str = "shop-token-0123456789abcdef";

struct Srv {
    url: String,
    store: Arc<SqliteStore>,
    rt: tokio::runtime::Runtime,
    _running: http::Running,
    _dir: tempfile::TempDir,
}

/// Our server with the registration API (plain HTTP allowed for the test, the shop
/// token set) and subscriber [`SUB`] with login password `web-login`.
fn server() -> Srv {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    store
        .transaction_with_error(|tx| {
            provision::add_subscriber(tx, SUB, None, Timestamp::from_unix_secs(1))?;
            provision::set_login_password(tx, SUB, Some("web-login"))
        })
        .expect("provision");
    let svc = Arc::new(
        SyncService::new(store.clone() as Arc<dyn Store>, session::Engine::default())
            .with_registration(RegistrationConfig {
                shop_token: Some(SHOP_TOKEN.into()),
                allow_insecure: true,
            }),
    );
    let running = rt
        .block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            http::serve(l, svc, http::HttpOptions::default(), None).map_err(std::io::Error::other)
        })
        .expect("serve");
    Srv {
        url: format!("http://{}/sync", running.local_addr),
        store,
        rt,
        _running: running,
        _dir: dir,
    }
}

impl Srv {
    fn terminal_on_server(&self, id: &str) -> bool {
        self.store
            .read(|tx| tx.terminal_find(id))
            .expect("read")
            .is_some()
    }

    /// A two-way sync of one contact by this handset, with the FIG. 10-B gate (the SIM's
    /// subscriber must be the one registered in the terminal) on top of the PIN and the
    /// terminal password.
    fn sync(&self, sim: &mut MemorySim, terminal: &mut MemoryTerminal, pw: &str) -> bool {
        let mut cfg = EngineConfig::new(self.url.clone());
        cfg.policy = GatePolicy {
            subscriber_match: true,
            ..GatePolicy::FIG9
        };
        let mut engine = Engine::new(cfg, HttpTransport::new());
        let mut ui = ScriptedUi::answering("1234", pw);
        let mut contacts = MemoryStore::contacts();
        contacts.add("BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;Jo\r\nEND:VCARD\r\n");
        self.rt
            .block_on(engine.sync(
                Handset {
                    sim: Some(sim),
                    terminal,
                    ui: &mut ui,
                },
                &mut [&mut contacts as &mut dyn DataStore],
                &[SyncMode::TwoWay],
            ))
            .is_ok_and(|r| r.is_success())
    }
}

#[test]
fn fig8_pin_then_terminal_password_then_server_registration_then_sync() {
    let srv = server();
    let mut sim = MemorySim::new(SUB, "1234");
    let mut terminal = MemoryTerminal::new("IMEI:350000000000001", "pw-a");
    // Before registration the terminal is unknown to the server and to itself.
    assert!(!srv.sync(&mut sim, &mut terminal, "pw-a"));
    let mut ui = ScriptedUi::answering("1234", "pw-a");
    let t = HttpTransport::new();
    let r = srv
        .rt
        .block_on(register_handset(
            &t,
            &srv.url,
            Some(&mut sim),
            &mut terminal,
            &mut ui,
            "web-login",
            &["contacts".to_string(), "apps".to_string()],
        ))
        .expect("registered");
    assert_eq!(r.terminal_id, "IMEI:350000000000001");
    assert_eq!(r.subscriber_id, SUB);
    assert_eq!(r.classes, vec!["apps", "contacts", "rights"]);
    assert_eq!(ui.asked, vec!["pin", "password"], "S1 then S3");
    use syncml_client::Terminal as _;
    assert_eq!(terminal.registered_subscriber_id().as_deref(), Some(SUB));
    assert!(
        srv.sync(&mut sim, &mut terminal, "pw-a"),
        "the terminal syncs"
    );
}

#[test]
fn a_refused_gate_sends_nothing_and_a_wrong_login_registers_nothing() {
    let srv = server();
    let t = HttpTransport::new();
    let mut sim = MemorySim::new(SUB, "1234");
    let mut terminal = MemoryTerminal::new("IMEI:350000000000002", "pw-b");
    // Wrong PIN: refused on the handset, the server never hears of it.
    let mut ui = ScriptedUi::answering("0000", "pw-b");
    let e = srv
        .rt
        .block_on(register_handset(
            &t,
            &srv.url,
            Some(&mut sim),
            &mut terminal,
            &mut ui,
            "web-login",
            &[],
        ))
        .expect_err("wrong PIN");
    // Three wrong tries: the last blocks the SIM's PIN.
    assert!(
        matches!(
            e,
            RegistrationError::Refused(GateRefusal::PinWrong { .. } | GateRefusal::PinBlocked)
        ),
        "{e:?}"
    );
    let audit = srv
        .store
        .read(|tx| tx.audit_list(&Default::default()))
        .expect("audit");
    assert!(audit.is_empty(), "no request reached the server: {audit:?}");
    // Right PIN and password, wrong login password: 401, nothing registered anywhere.
    let mut sim = MemorySim::new(SUB, "1234");
    let mut ui = ScriptedUi::answering("1234", "pw-b");
    let e = srv
        .rt
        .block_on(register_handset(
            &t,
            &srv.url,
            Some(&mut sim),
            &mut terminal,
            &mut ui,
            "not-the-login",
            &[],
        ))
        .expect_err("wrong login");
    assert_eq!(e, RegistrationError::Unauthorized);
    assert!(!srv.terminal_on_server("IMEI:350000000000002"));
    use syncml_client::Terminal as _;
    assert_eq!(terminal.registered_subscriber_id(), None);
}

#[test]
fn fig19_a_shop_registers_without_the_terminal_password_and_the_handset_syncs() {
    let srv = server();
    let t = HttpTransport::new();
    let new_sub = "001010999999999";
    let r = srv
        .rt
        .block_on(register_at_shop(
            &t,
            &srv.url,
            SHOP_TOKEN,
            new_sub,
            "IMEI:350000000000003",
            "chosen-at-shop",
            &[],
            true,
        ))
        .expect("shop registration");
    assert_eq!(r.subscriber_id, new_sub);
    let e = srv
        .rt
        .block_on(register_at_shop(
            &t,
            &srv.url,
            "wrong-token-000000000000",
            new_sub,
            "IMEI:350000000000004",
            "x",
            &[],
            false,
        ))
        .expect_err("wrong token");
    assert_eq!(e, RegistrationError::Unauthorized);
    // The handset: its subscriber ID goes in at the shop too (FIG. 19 S73-S74).
    let mut sim = MemorySim::new(new_sub, "1234");
    let mut terminal = MemoryTerminal::new("IMEI:350000000000003", "chosen-at-shop");
    use syncml_client::Terminal as _;
    terminal.register_subscriber_id(new_sub);
    assert!(srv.sync(&mut sim, &mut terminal, "chosen-at-shop"));
}

/// The same FIG. 8 flow from the command line: `syncml-handset register-server`, then a
/// sync by the freshly registered handset.
#[test]
fn the_handset_cli_registers_with_the_server_then_syncs() {
    use std::process::Command;
    const BIN: &str = env!("CARGO_BIN_EXE_syncml-handset");
    let srv = server();
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("h");
    let sim = root.path().join("sim");
    let run = |args: &[&str]| {
        let o = Command::new(BIN)
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env("SYNCML_PIN", "1234")
            .env("SYNCML_PASSWORD", "pw-cli")
            .output()
            .expect("run syncml-handset");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let sim_s = sim.to_str().expect("utf-8");
    for args in [
        vec!["new-sim", sim_s, "--subscriber", SUB],
        vec![
            "init",
            "--terminal-id",
            "IMEI:350000000000009",
            "--password",
            "pw-cli",
            "--server",
            &srv.url,
        ],
        vec!["insert-sim", sim_s],
    ] {
        let (ok, out, err) = run(&args);
        assert!(ok, "{args:?}: {out}{err}");
    }
    let (ok, _, err) = run(&["register-server", "--login", "wrong"]);
    assert!(!ok);
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!srv.terminal_on_server("IMEI:350000000000009"));
    let (ok, out, err) = run(&[
        "register-server",
        "--login",
        "web-login",
        "--classes",
        "contacts",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("registered with the server"), "{out}");
    assert!(srv.terminal_on_server("IMEI:350000000000009"));
    // The default policy also wants the terminal listed on the SIM (FIG. 11-A).
    let (ok, out, err) = run(&["register", "--flow", "11a"]);
    assert!(ok, "{out}{err}");
    // Registered for contacts only: the calendar is refused (403), contacts sync.
    let (ok, _, err) = run(&["sync", "--mode", "slow"]);
    assert!(!ok);
    assert!(err.contains("refused ./calendar (403)"), "{err}");
    let (ok, out, err) = run(&["sync", "--mode", "slow", "--classes", "contacts"]);
    assert!(ok, "sync after registration: {out}{err}");
}

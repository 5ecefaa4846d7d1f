//! The registration API (FIG. 8 S5-S6, FIG. 18-19), one test per rule, against the
//! real server over HTTPS on a real SQLite file; its effects are checked with real
//! SyncML sessions on the same server.

mod common;

use base64::Engine as _;
use common::*;
use std::sync::Arc;
use syncml_core::auth;
use syncml_core::model::{
    Alert, Anchor, Command, Cred, Data, Item, Meta, Source, SyncBody, SyncHdr, SyncMl, Target,
};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{AlertCode, Encoding};
use syncml_server::http::HttpOptions;
use syncml_server::provision;
use syncml_server::registration::RegistrationConfig;
use syncml_server::service::SyncService;
use syncml_server::session::{Engine, EngineConfig};
use syncml_server::store::{
    AuditFilter, DatastoreKey, NewItem, RegisteredBy, SqliteStore, Store, StoreExt, Timestamp,
};

const SHOP_TOKEN: &str = "shop-token-0123456789abcdef";

struct Fx {
    srv: Server,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

/// alice (login password `alice-login`) with IMEI:A1; bob (login `bob-login`) with
/// IMEI:B1; carol without a login password.
fn fixture_with(cfg: RegistrationConfig, tls: bool) -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    let t0 = Timestamp::from_unix_secs(1_000);
    store
        .transaction_with_error(|tx| {
            for (sub, login, term) in [
                ("alice", Some("alice-login"), "IMEI:A1"),
                ("bob", Some("bob-login"), "IMEI:B1"),
                ("carol", None, "IMEI:C1"),
            ] {
                provision::add_subscriber(tx, sub, None, t0)?;
                provision::set_login_password(tx, sub, login)?;
                provision::register_terminal(tx, sub, term, "pw", &[], RegisteredBy::Operator, t0)?;
            }
            Ok::<_, provision::ProvisionError>(())
        })
        .expect("provision");
    let svc = Arc::new(
        SyncService::new(
            store.clone() as Arc<dyn Store>,
            Engine::new(EngineConfig::default()),
        )
        .with_registration(cfg),
    );
    let srv = if tls {
        start_tls(svc, HttpOptions::default())
    } else {
        start(svc, HttpOptions::default())
    };
    Fx {
        srv,
        store,
        _dir: dir,
    }
}

fn fixture() -> Fx {
    fixture_with(
        RegistrationConfig {
            shop_token: Some(SHOP_TOKEN.into()),
            allow_insecure: false,
        },
        true,
    )
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

impl Fx {
    fn api(&self, method: &str, path: &str, authz: Option<&str>, body: &str) -> Resp {
        let host = match self.srv.tls {
            Some(_) => format!("localhost:{}", self.srv.addr.port()),
            None => self.srv.addr.to_string(),
        };
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        if let Some(a) = authz {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        self.srv.raw(&head, body.as_bytes()).expect("HTTP exchange")
    }

    fn json(&self, r: &Resp) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("JSON body ({e}): {}", r.text()))
    }

    /// The first message of a SyncML session of `terminal` (md5, password `pw`), with a
    /// two-way Alert for each datastore; returns the SyncHdr status and the Alert
    /// statuses.
    fn sync(&self, sub: &str, terminal: &str, pw: &str, datastores: &[&str]) -> (u16, Vec<u16>) {
        let nonce = self
            .store
            .read(|tx| tx.terminal_find(terminal))
            .expect("read")
            .and_then(|t| t.next_nonce)
            .map(|n| auth::nonce::decode_next_nonce(&n).expect("nonce"))
            .unwrap_or_default();
        let mut h = SyncHdr::new(
            SyncMlVersion::V1_2,
            "1",
            "1",
            "https://localhost/sync",
            terminal,
        );
        h.source.loc_name = Some(sub.into());
        h.cred = Some(Cred {
            meta: Some(Meta {
                r#type: Some(auth::TYPE_MD5.into()),
                format: Some("b64".into()),
                ..Meta::default()
            }),
            data: Data::Text(auth::md5::credential(sub, pw, &nonce)),
        });
        let commands = datastores
            .iter()
            .enumerate()
            .map(|(i, ds)| {
                Command::Alert(Alert {
                    cmd_id: (i + 1).to_string(),
                    data: Some(AlertCode(201)),
                    items: vec![Item {
                        target: Some(Target::new(format!("./{ds}"))),
                        source: Some(Source::new(format!("./{ds}"))),
                        meta: Some(Meta {
                            anchor: Some(Anchor {
                                last: None,
                                next: "1".into(),
                            }),
                            ..Meta::default()
                        }),
                        ..Item::default()
                    }],
                    ..Alert::default()
                })
            })
            .collect();
        let msg = SyncMl {
            header: h,
            body: SyncBody {
                commands,
                is_final: true,
            },
        };
        let body = syncml_core::encode(&msg, Encoding::Xml).expect("encode");
        let resp = self.srv.post(
            &format!("{}/sync", self.srv.origin()),
            "application/vnd.syncml+xml",
            &body,
        );
        let reply = syncml_core::decode(&resp.body).expect("decode");
        let mut hdr = 0;
        let mut alerts = Vec::new();
        for c in &reply.body.commands {
            if let Command::Status(s) = c {
                match s.cmd.as_str() {
                    "SyncHdr" => hdr = s.data.0,
                    "Alert" => alerts.push(s.data.0),
                    _ => {}
                }
            }
        }
        (hdr, alerts)
    }

    fn audit_reasons(&self, sub: &str) -> Vec<(Option<u16>, String)> {
        self.store
            .read(|tx| {
                tx.audit_list(&AuditFilter {
                    subscriber_id: Some(sub.into()),
                    ..AuditFilter::default()
                })
            })
            .expect("audit")
            .into_iter()
            .map(|a| (a.event.status, a.event.reason))
            .collect()
    }
}

#[test]
fn a_handset_registers_a_terminal_with_the_subscribers_login_password_and_it_syncs() {
    let fx = fixture();
    let r = fx.api(
        "POST",
        "/api/v1/terminals",
        Some(&basic("alice", "alice-login")),
        r#"{"terminal":"IMEI:A2","password":"new-pw","classes":["contacts","./Calendar"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = fx.json(&r);
    assert_eq!(v["terminal"], "IMEI:A2");
    assert_eq!(v["registered_by"], "user");
    assert_eq!(v["classes"], serde_json::json!(["calendar", "contacts"]));
    assert!(
        !r.text().contains("verifier"),
        "verifiers never leave the server"
    );
    // The new terminal syncs with its own password, only its classes.
    assert_eq!(
        fx.sync("alice", "IMEI:A2", "new-pw", &["contacts", "notes"]),
        (212, vec![200, 403])
    );
    assert!(fx
        .audit_reasons("alice")
        .iter()
        .any(|(s, r)| *s == Some(201) && r == "registration by user"));
}

#[test]
fn apps_brings_rights_with_it() {
    let fx = fixture();
    let r = fx.api(
        "POST",
        "/api/v1/terminals",
        Some(&basic("alice", "alice-login")),
        r#"{"terminal":"IMEI:A3","password":"pw3","classes":["apps"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        fx.json(&r)["classes"],
        serde_json::json!(["apps", "rights"])
    );
}

#[test]
fn a_wrong_login_an_unknown_subscriber_and_a_missing_login_password_get_the_same_401() {
    let fx = fixture();
    let body = r#"{"terminal":"IMEI:X","password":"x"}"#;
    let mut texts = Vec::new();
    for authz in [
        Some(basic("alice", "wrong")),
        Some(basic("nobody", "whatever")),
        Some(basic("carol", "anything")),
        None,
    ] {
        let r = fx.api("POST", "/api/v1/terminals", authz.as_deref(), body);
        assert_eq!(r.status, 401, "{authz:?}: {}", r.text());
        assert!(r
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")));
        texts.push(r.text());
    }
    assert_eq!(
        texts[0], texts[1],
        "unknown subscriber looks like a wrong password"
    );
    assert_eq!(
        texts[0], texts[2],
        "no login password looks like a wrong password"
    );
    assert!(
        fx.store
            .read(|tx| tx.terminal_find("IMEI:X"))
            .expect("read")
            .is_none(),
        "nothing registered"
    );
    let reasons = fx.audit_reasons("alice");
    assert!(reasons
        .iter()
        .any(|(s, r)| *s == Some(401) && r == "registration: wrong login password"));
}

#[test]
fn repeated_wrong_login_passwords_lock_the_api_for_that_subscriber() {
    let fx = fixture();
    let codes: Vec<u16> = (0..5)
        .map(|_| {
            fx.api(
                "GET",
                "/api/v1/terminals",
                Some(&basic("alice", "guess")),
                "",
            )
            .status
        })
        .collect();
    assert_eq!(codes, vec![401, 401, 401, 401, 429]);
    let r = fx.api(
        "GET",
        "/api/v1/terminals",
        Some(&basic("alice", "alice-login")),
        "",
    );
    assert_eq!(r.status, 429, "the right password waits for the lock too");
    assert!(r.text().contains("retry in"));
}

#[test]
fn the_api_is_refused_over_plain_http_unless_the_operator_allows_it() {
    let closed = fixture_with(RegistrationConfig::default(), false);
    let r = closed.api(
        "GET",
        "/api/v1/terminals",
        Some(&basic("alice", "alice-login")),
        "",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let open = fixture_with(
        RegistrationConfig {
            shop_token: None,
            allow_insecure: true,
        },
        false,
    );
    let r = open.api(
        "GET",
        "/api/v1/terminals",
        Some(&basic("alice", "alice-login")),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_shop_registers_a_terminal_without_a_terminal_password_check_and_may_create_the_subscriber() {
    let fx = fixture();
    let r = fx.api(
        "POST",
        "/api/v1/shop/terminals",
        Some(&format!("Bearer {SHOP_TOKEN}")),
        r#"{"subscriber":"dora","terminal":"IMEI:D1","password":"chosen-at-shop","classes":["contacts"],"create_subscriber":true}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(fx.json(&r)["registered_by"], "shop");
    assert_eq!(
        fx.sync("dora", "IMEI:D1", "chosen-at-shop", &["contacts"]),
        (212, vec![200])
    );
    // Without create_subscriber an unknown subscriber is 404.
    let r = fx.api(
        "POST",
        "/api/v1/shop/terminals",
        Some(&format!("Bearer {SHOP_TOKEN}")),
        r#"{"subscriber":"erik","terminal":"IMEI:E1","password":"p"}"#,
    );
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn the_shop_endpoint_needs_the_operator_token_and_is_off_without_one() {
    let fx = fixture();
    let body = r#"{"subscriber":"alice","terminal":"IMEI:Z","password":"p"}"#;
    for authz in [
        Some("Bearer wrong-token-0000000000".to_string()),
        Some(basic("alice", "alice-login")),
        None,
    ] {
        let r = fx.api("POST", "/api/v1/shop/terminals", authz.as_deref(), body);
        assert_eq!(r.status, 401, "{authz:?}: {}", r.text());
    }
    let off = fixture_with(RegistrationConfig::default(), true);
    let r = off.api(
        "POST",
        "/api/v1/shop/terminals",
        Some(&format!("Bearer {SHOP_TOKEN}")),
        body,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(fx
        .store
        .read(|tx| tx.terminal_find("IMEI:Z"))
        .expect("read")
        .is_none());
}

#[test]
fn unregistering_a_terminal_revokes_it_at_once() {
    let fx = fixture();
    assert_eq!(fx.sync("alice", "IMEI:A1", "pw", &["contacts"]).0, 212);
    let r = fx.api(
        "DELETE",
        "/api/v1/terminals/IMEI%3AA1",
        Some(&basic("alice", "alice-login")),
        "",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(fx.sync("alice", "IMEI:A1", "pw", &["contacts"]).0, 401);
}

#[test]
fn changing_classes_takes_effect_at_the_next_session_and_deletes_nothing() {
    let fx = fixture();
    fx.store
        .transaction(|tx| {
            tx.items_put(
                DatastoreKey::new("alice", "calendar"),
                Some("IMEI:A1"),
                &[NewItem {
                    guid: None,
                    content_type: "text/calendar".into(),
                    data: b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec(),
                }],
                Timestamp::from_unix_secs(2_000),
            )
        })
        .expect("seed");
    assert_eq!(
        fx.sync("alice", "IMEI:A1", "pw", &["contacts", "calendar"]),
        (212, vec![200, 200])
    );
    let r = fx.api(
        "PUT",
        "/api/v1/terminals/IMEI:A1/classes",
        Some(&basic("alice", "alice-login")),
        r#"{"classes":["contacts"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        fx.sync("alice", "IMEI:A1", "pw", &["contacts", "calendar"]),
        (212, vec![200, 403])
    );
    let n = fx
        .store
        .read(|tx| tx.items_stats(DatastoreKey::new("alice", "calendar")))
        .expect("stats")
        .count;
    assert_eq!(n, 1, "the calendar is still on the server");
    let r = fx.api(
        "PUT",
        "/api/v1/terminals/IMEI:A1/classes",
        Some(&basic("alice", "alice-login")),
        r#"{"classes":["no-such-class"]}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn one_subscriber_can_neither_see_nor_change_anothers_terminals_through_the_api() {
    let fx = fixture();
    let alice = basic("alice", "alice-login");
    let r = fx.api("GET", "/api/v1/terminals", Some(&alice), "");
    assert_eq!(r.status, 200);
    let listed: Vec<String> = fx
        .json(&r)
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["terminal"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, vec!["IMEI:A1"]);
    // bob's terminal answers like a terminal that does not exist.
    let gone = fx.api("DELETE", "/api/v1/terminals/IMEI:NONE", Some(&alice), "");
    let bobs = fx.api("DELETE", "/api/v1/terminals/IMEI:B1", Some(&alice), "");
    assert_eq!((gone.status, bobs.status), (404, 404));
    assert_eq!(gone.text(), bobs.text());
    let r = fx.api(
        "PUT",
        "/api/v1/terminals/IMEI:B1/classes",
        Some(&alice),
        r#"{"classes":["notes"]}"#,
    );
    assert_eq!(r.status, 404);
    // bob's terminal still syncs, with all its classes.
    assert_eq!(
        fx.sync("bob", "IMEI:B1", "pw", &["contacts", "calendar"]),
        (212, vec![200, 200])
    );
    // Registering bob's terminal ID for alice fails without naming bob.
    let r = fx.api(
        "POST",
        "/api/v1/terminals",
        Some(&alice),
        r#"{"terminal":"IMEI:B1","password":"mine"}"#,
    );
    assert_eq!(r.status, 409);
    assert!(!r.text().contains("bob"), "{}", r.text());
}

#[test]
fn malformed_requests_get_400_and_unknown_operations_404() {
    let fx = fixture();
    let alice = basic("alice", "alice-login");
    let r = fx.api("POST", "/api/v1/terminals", Some(&alice), "{not json");
    assert_eq!(r.status, 400);
    let r = fx.api(
        "POST",
        "/api/v1/terminals",
        Some(&alice),
        r#"{"terminal":"IMEI:Q","password":""}"#,
    );
    assert_eq!(r.status, 400, "empty password: {}", r.text());
    let r = fx.api("PATCH", "/api/v1/terminals", Some(&alice), "");
    assert_eq!(r.status, 404);
}

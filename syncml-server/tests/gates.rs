//! Every server-side gate of the subscriber managing database (FIG. 13-15, para.
//! 0009, 0057), one row each, against the real server over real HTTP (and HTTPS where
//! the security level asks for it) on a real SQLite file. For each refused row: the
//! expected SyncML status, nothing written (no item in any datastore of any
//! subscriber) and an audit row naming the reason.

mod common;

use common::*;
use std::sync::Arc;
use syncml_core::auth;
use syncml_core::model::{
    Alert, Anchor, Command, Cred, Data, Item, ItemCommand, Meta, Source, Sync, SyncBody, SyncHdr,
    SyncMl, Target,
};
use syncml_core::tree::SyncMlVersion;
use syncml_core::{AlertCode, Encoding};
use syncml_server::http::HttpOptions;
use syncml_server::provision;
use syncml_server::service::SyncService;
use syncml_server::session::{pin_emi, security_level, Engine, EngineConfig};
use syncml_server::store::{
    AuditFilter, LockoutKey, RegisteredBy, SqliteStore, Store, StoreExt, Timestamp,
};

const XML: &str = "application/vnd.syncml+xml";

struct Fx {
    plain: Server,
    tls: Server,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

/// One database, served over HTTP and over HTTPS, holding:
/// alice (level 0): IMEI:A1 (contacts only), IMEI:A2 (revoked);
/// bob (level 0): IMEI:B1; carol (level 2, PIN 4321): IMEI:C1; dave (level 1): IMEI:D1;
/// erin: IMEI:E1, locked out.
fn fixture() -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open_in_dir(dir.path()).expect("open"));
    let t0 = Timestamp::from_unix_secs(1_000);
    store
        .transaction_with_error(|tx| {
            for (sub, term, pw, classes) in [
                ("alice", "IMEI:A1", "pa1", vec!["contacts".to_string()]),
                ("alice", "IMEI:A2", "pa2", vec![]),
                ("bob", "IMEI:B1", "pb1", vec![]),
                ("carol", "IMEI:C1", "pc1", vec![]),
                ("dave", "IMEI:D1", "pd1", vec![]),
                ("erin", "IMEI:E1", "pe1", vec![]),
            ] {
                if tx.subscriber_get(sub)?.is_none() {
                    provision::add_subscriber(tx, sub, None, t0)?;
                }
                provision::register_terminal(
                    tx,
                    sub,
                    term,
                    pw,
                    &classes,
                    RegisteredBy::Operator,
                    t0,
                )?;
            }
            tx.terminal_set_revoked("alice", "IMEI:A2", true)?;
            tx.subscriber_set_security_level("carol", security_level::PIN)?;
            provision::set_pin(tx, "carol", Some("4321"))?;
            tx.subscriber_set_security_level("dave", security_level::TLS)?;
            Ok::<_, provision::ProvisionError>(())
        })
        .expect("provision");
    // erin: ten failures a moment ago lock her terminal well into the test.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    store
        .transaction(|tx| {
            for _ in 0..10 {
                tx.lockout_record_failure(
                    LockoutKey::Terminal("IMEI:E1"),
                    Timestamp::from_unix_secs(now),
                )?;
            }
            Ok(())
        })
        .expect("lock erin");
    let svc = || {
        Arc::new(SyncService::new(
            store.clone() as Arc<dyn Store>,
            Engine::new(EngineConfig::default()),
        ))
    };
    Fx {
        plain: start(svc(), HttpOptions::default()),
        tls: start_tls(svc(), HttpOptions::default()),
        store,
        _dir: dir,
    }
}

#[derive(Clone, Copy)]
enum CredKind<'a> {
    None,
    Md5(&'a str),
    Basic(&'a str),
    Scheme(&'a str),
}

impl Fx {
    /// The nonce the server issued last for `terminal` (what a client that read the
    /// last challenge would use), or empty.
    fn nonce(&self, terminal: &str) -> Vec<u8> {
        self.store
            .read(|tx| tx.terminal_find(terminal))
            .expect("read")
            .and_then(|t| t.next_nonce)
            .map(|n| auth::nonce::decode_next_nonce(&n).expect("nonce"))
            .unwrap_or_default()
    }

    fn items_everywhere(&self) -> u64 {
        self.store
            .read(|tx| {
                let mut n = 0;
                for s in ["alice", "bob", "carol", "dave", "erin"] {
                    for d in tx.datastores(s)? {
                        n += d.stats.count;
                    }
                }
                Ok(n)
            })
            .expect("count")
    }

    fn last_audit(&self, terminal: &str) -> Option<(Option<u16>, String)> {
        self.store
            .read(|tx| {
                tx.audit_list(&AuditFilter {
                    terminal_id: Some(terminal.to_string()),
                    limit: 1,
                    ..AuditFilter::default()
                })
            })
            .expect("audit")
            .into_iter()
            .next()
            .map(|a| (a.event.status, a.event.reason))
    }

    fn post(&self, tls: bool, msg: &SyncMl) -> SyncMl {
        let srv = if tls { &self.tls } else { &self.plain };
        let body = syncml_core::encode(msg, Encoding::Xml).expect("encode");
        let resp = srv.post(&format!("{}/sync", srv.origin()), XML, &body);
        assert_eq!(resp.status, 200, "HTTP status: {}", resp.text());
        syncml_core::decode(&resp.body).expect("decode reply")
    }
}

/// Package 1 of a slow sync of `datastores` with one contact added in each (combined
/// initialisation), so a gate that lets anything through writes an item.
fn package1(
    terminal: &str,
    loc_name: Option<&str>,
    cred: Option<Cred>,
    emi: Option<String>,
    datastores: &[&str],
) -> SyncMl {
    let mut h = SyncHdr::new(
        SyncMlVersion::V1_2,
        "1",
        "1",
        "http://127.0.0.1/sync",
        terminal,
    );
    h.source.loc_name = loc_name.map(str::to_string);
    h.cred = cred;
    h.meta = Some(Meta {
        max_msg_size: Some(64 * 1024),
        emi: emi.into_iter().collect(),
        ..Meta::default()
    });
    let mut commands = Vec::new();
    let mut id = 0;
    let mut next = || {
        id += 1;
        id.to_string()
    };
    for ds in datastores {
        commands.push(Command::Alert(Alert {
            cmd_id: next(),
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
        }));
    }
    for ds in datastores {
        let sync_id = next();
        let add_id = next();
        commands.push(Command::Sync(Sync {
            cmd_id: sync_id,
            target: Some(Target::new(format!("./{ds}"))),
            source: Some(Source::new(format!("./{ds}"))),
            commands: vec![Command::Add(ItemCommand {
                cmd_id: add_id,
                meta: Some(Meta {
                    r#type: Some("text/x-vcard".into()),
                    ..Meta::default()
                }),
                items: vec![Item {
                    source: Some(Source::new("luid-1")),
                    data: Some(Data::Text(
                        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Gate;Test\r\nEND:VCARD\r\n".into(),
                    )),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            })],
            ..Sync::default()
        }));
    }
    SyncMl {
        header: h,
        body: SyncBody {
            commands,
            is_final: true,
        },
    }
}

fn cred(fx: &Fx, kind: CredKind<'_>, user: &str, terminal: &str) -> Option<Cred> {
    let (ty, data) = match kind {
        CredKind::None => return None,
        CredKind::Md5(pw) => (
            auth::TYPE_MD5.to_string(),
            auth::md5::credential(user, pw, &fx.nonce(terminal)),
        ),
        CredKind::Basic(pw) => (auth::TYPE_BASIC.to_string(), auth::basic::encode(user, pw)),
        CredKind::Scheme(s) => (s.to_string(), "AAAA".to_string()),
    };
    Some(Cred {
        meta: Some(Meta {
            r#type: Some(ty),
            format: Some("b64".into()),
            ..Meta::default()
        }),
        data: Data::Text(data),
    })
}

fn header_status(m: &SyncMl) -> u16 {
    statuses(m)
        .iter()
        .find(|(c, _)| c == "SyncHdr")
        .map(|s| s.1)
        .unwrap_or(0)
}

fn statuses(m: &SyncMl) -> Vec<(String, u16)> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd.clone(), s.data.0)),
            _ => None,
        })
        .collect()
}

fn header_item_text(m: &SyncMl) -> String {
    m.body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Status(s) if s.cmd == "SyncHdr" => s
                .items
                .first()
                .and_then(|i| i.data.as_ref())
                .and_then(|d| d.as_bytes())
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

struct Row {
    gate: &'static str,
    terminal: &'static str,
    loc_name: Option<&'static str>,
    user: &'static str,
    cred: CredKind<'static>,
    pin: Option<&'static str>,
    tls: bool,
    status: u16,
    audit: &'static str,
}

#[test]
fn every_gate_refuses_with_its_status_writes_nothing_and_is_audited() {
    let fx = fixture();
    let rows = [
        Row {
            gate: "unknown terminal",
            terminal: "IMEI:NOBODY",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Md5("pa1"),
            pin: None,
            tls: false,
            status: 401,
            audit: "unknown terminal",
        },
        Row {
            // Para. 0009: alice's SIM in bob's handset must not sync bob's handset.
            gate: "terminal bound to another subscriber (md5)",
            terminal: "IMEI:B1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Md5("pb1"),
            pin: None,
            tls: false,
            status: 401,
            audit: "LocName is not the terminal's subscriber",
        },
        Row {
            gate: "terminal bound to another subscriber (basic)",
            terminal: "IMEI:B1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Basic("pb1"),
            pin: None,
            tls: true,
            status: 401,
            audit: "wrong credentials",
        },
        Row {
            gate: "wrong password",
            terminal: "IMEI:A1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Md5("guess"),
            pin: None,
            tls: false,
            status: 401,
            audit: "wrong credentials",
        },
        Row {
            gate: "missing credentials",
            terminal: "IMEI:A1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::None,
            pin: None,
            tls: false,
            status: 407,
            audit: "no credentials",
        },
        Row {
            gate: "auth-basic without TLS",
            terminal: "IMEI:A1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Basic("pa1"),
            pin: None,
            tls: false,
            status: 401,
            audit: "auth-basic refused without TLS",
        },
        Row {
            gate: "unsupported authentication scheme (AUTH-14)",
            terminal: "IMEI:A1",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Scheme("syncml:auth-securid"),
            pin: None,
            tls: false,
            status: 406,
            audit: "unsupported authentication type",
        },
        Row {
            gate: "revoked terminal",
            terminal: "IMEI:A2",
            loc_name: Some("alice"),
            user: "alice",
            cred: CredKind::Md5("pa2"),
            pin: None,
            tls: false,
            status: 401,
            audit: "terminal revoked",
        },
        Row {
            gate: "security level 1 over plain HTTP",
            terminal: "IMEI:D1",
            loc_name: Some("dave"),
            user: "dave",
            cred: CredKind::Md5("pd1"),
            pin: None,
            tls: false,
            status: 403,
            audit: "security level requires TLS",
        },
        Row {
            gate: "PIN required but absent (a standard client)",
            terminal: "IMEI:C1",
            loc_name: Some("carol"),
            user: "carol",
            cred: CredKind::Md5("pc1"),
            pin: None,
            tls: true,
            status: 407,
            audit: "PIN required but not sent",
        },
        Row {
            gate: "PIN required and wrong",
            terminal: "IMEI:C1",
            loc_name: Some("carol"),
            user: "carol",
            cred: CredKind::Md5("pc1"),
            pin: Some("1111"),
            tls: true,
            status: 401,
            audit: "wrong PIN",
        },
        Row {
            gate: "locked out",
            terminal: "IMEI:E1",
            loc_name: Some("erin"),
            user: "erin",
            cred: CredKind::Md5("pe1"),
            pin: None,
            tls: false,
            status: 417,
            audit: "locked out after repeated failures",
        },
    ];
    for row in &rows {
        let before = fx.items_everywhere();
        let emi = row
            .pin
            .map(|p| pin_emi(row.user, p, &fx.nonce(row.terminal)));
        let msg = package1(
            row.terminal,
            row.loc_name,
            cred(&fx, row.cred, row.user, row.terminal),
            emi,
            &["contacts"],
        );
        let reply = fx.post(row.tls, &msg);
        let gate = row.gate;
        assert_eq!(header_status(&reply), row.status, "{gate}: header status");
        // AUTH-13: nothing but statuses, one per command, each with the header's code.
        assert!(
            reply
                .body
                .commands
                .iter()
                .all(|c| matches!(c, Command::Status(_))),
            "{gate}: only statuses"
        );
        let st = statuses(&reply);
        assert_eq!(st.len(), 1 + msg.body.commands.len(), "{gate}: {st:?}");
        assert!(st.iter().all(|s| s.1 == row.status), "{gate}: {st:?}");
        assert!(reply.header.resp_uri.is_none(), "{gate}: no session kept");
        assert_eq!(fx.items_everywhere(), before, "{gate}: nothing written");
        let (status, reason) = fx.last_audit(row.terminal).expect("audit row");
        assert_eq!(status, Some(row.status), "{gate}: audited status");
        assert!(
            reason.contains(row.audit),
            "{gate}: audit reason {reason:?}"
        );
    }
}

#[test]
fn a_locked_out_terminal_is_told_when_to_retry() {
    let fx = fixture();
    let msg = package1(
        "IMEI:E1",
        Some("erin"),
        cred(&fx, CredKind::Md5("pe1"), "erin", "IMEI:E1"),
        None,
        &["contacts"],
    );
    let reply = fx.post(false, &msg);
    assert_eq!(header_status(&reply), 417);
    let text = header_item_text(&reply);
    assert!(text.contains("retry in"), "{text}");
}

#[test]
fn repeated_failures_lock_unknown_and_known_terminal_ids_alike() {
    let fx = fixture();
    for terminal in ["IMEI:A1", "IMEI:NOBODY"] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            let msg = package1(
                terminal,
                Some("alice"),
                cred(&fx, CredKind::Md5("guess"), "alice", terminal),
                None,
                &["contacts"],
            );
            seen.push(header_status(&fx.post(false, &msg)));
        }
        // Three free failures, the fourth locks: 401 401 401 401 417.
        assert_eq!(seen, vec![401, 401, 401, 401, 417], "{terminal}");
    }
    // The right password does not get through the lock, and the operator lifts it.
    let right = |fx: &Fx| {
        package1(
            "IMEI:A1",
            Some("alice"),
            cred(fx, CredKind::Md5("pa1"), "alice", "IMEI:A1"),
            None,
            &["contacts"],
        )
    };
    assert_eq!(header_status(&fx.post(false, &right(&fx))), 417);
    fx.store
        .transaction(|tx| {
            tx.lockout_reset(LockoutKey::Terminal("IMEI:A1"))?;
            tx.lockout_reset(LockoutKey::Subscriber("alice"))
        })
        .expect("unlock");
    assert_eq!(header_status(&fx.post(false, &right(&fx))), 212);
}

#[test]
fn a_success_clears_the_failures_before_it() {
    let fx = fixture();
    let attempt = |fx: &Fx, password: &str| {
        let msg = package1(
            "IMEI:A1",
            Some("alice"),
            cred(fx, CredKind::Md5(password), "alice", "IMEI:A1"),
            None,
            &["contacts"],
        );
        header_status(&fx.post(false, &msg))
    };
    // Three failures (free), a success, then three more: had the success not cleared
    // the first three, the sixth failure would be locked out (417), not refused (401).
    for _ in 0..3 {
        assert_eq!(attempt(&fx, "guess"), 401);
    }
    assert_eq!(attempt(&fx, "pa1"), 212);
    let records = fx
        .store
        .read(|tx| {
            Ok((
                tx.lockout_get(LockoutKey::Terminal("IMEI:A1"))?,
                tx.lockout_get(LockoutKey::Subscriber("alice"))?,
            ))
        })
        .expect("lockout");
    assert_eq!(records, (None, None), "the success reset both counts");
    for _ in 0..3 {
        assert_eq!(attempt(&fx, "guess"), 401);
    }
    assert_eq!(attempt(&fx, "pa1"), 212, "still not locked");
}

#[test]
fn a_replayed_credential_is_refused_because_the_nonce_moved_on() {
    let fx = fixture();
    let msg = package1(
        "IMEI:A1",
        Some("alice"),
        cred(&fx, CredKind::Md5("pa1"), "alice", "IMEI:A1"),
        None,
        &["contacts"],
    );
    assert_eq!(header_status(&fx.post(false, &msg)), 212);
    let before = fx.items_everywhere();
    // The captured message again, as a new session.
    let mut replay = msg.clone();
    replay.header.session_id = "2".into();
    let reply = fx.post(false, &replay);
    assert_eq!(header_status(&reply), 401);
    assert_eq!(fx.items_everywhere(), before, "nothing written");
    let (status, reason) = fx.last_audit("IMEI:A1").expect("audit");
    assert_eq!((status, reason.as_str()), (Some(401), "wrong credentials"));
}

#[test]
fn the_right_pin_over_tls_opens_a_level_2_session() {
    let fx = fixture();
    let emi = pin_emi("carol", "4321", &fx.nonce("IMEI:C1"));
    let msg = package1(
        "IMEI:C1",
        Some("carol"),
        cred(&fx, CredKind::Md5("pc1"), "carol", "IMEI:C1"),
        Some(emi),
        &["contacts"],
    );
    let reply = fx.post(true, &msg);
    assert_eq!(header_status(&reply), 212);
    assert_eq!(fx.items_everywhere(), 1, "the contact was stored");
    // The same PIN digest is bound to the nonce: replayed in a new session it fails.
    let mut replay = msg.clone();
    replay.header.session_id = "2".into();
    replay.header.cred = cred(&fx, CredKind::Md5("pc1"), "carol", "IMEI:C1");
    assert_eq!(header_status(&fx.post(true, &replay)), 401);
    assert_eq!(fx.last_audit("IMEI:C1").expect("audit").1, "wrong PIN");
}

#[test]
fn level_1_over_tls_and_level_0_over_plain_http_are_accepted() {
    let fx = fixture();
    for (terminal, user, pw, tls) in [
        ("IMEI:D1", "dave", "pd1", true),
        ("IMEI:A1", "alice", "pa1", false),
    ] {
        let msg = package1(
            terminal,
            Some(user),
            cred(&fx, CredKind::Md5(pw), user, terminal),
            None,
            &["contacts"],
        );
        assert_eq!(header_status(&fx.post(tls, &msg)), 212, "{terminal}");
    }
}

#[test]
fn a_datastore_outside_the_terminals_classes_is_refused_while_the_others_proceed() {
    let fx = fixture();
    // IMEI:A1 syncs contacts only.
    let msg = package1(
        "IMEI:A1",
        Some("alice"),
        cred(&fx, CredKind::Md5("pa1"), "alice", "IMEI:A1"),
        None,
        &["contacts", "calendar"],
    );
    let reply = fx.post(false, &msg);
    assert_eq!(header_status(&reply), 212);
    let alerts: Vec<u16> = statuses(&reply)
        .into_iter()
        .filter(|(c, _)| c == "Alert")
        .map(|s| s.1)
        .collect();
    assert_eq!(
        alerts,
        vec![200, 403],
        "contacts proceeds, calendar refused"
    );
    let syncs: Vec<u16> = statuses(&reply)
        .into_iter()
        .filter(|(c, _)| c == "Sync")
        .map(|s| s.1)
        .collect();
    assert_eq!(syncs[0], 200, "contacts Sync");
    assert_ne!(syncs[1], 200, "calendar Sync refused");
    let per_ds = fx
        .store
        .read(|tx| tx.datastores("alice"))
        .expect("datastores");
    let count = |n: &str| {
        per_ds
            .iter()
            .find(|d| d.name == n)
            .map_or(0, |d| d.stats.count)
    };
    assert_eq!((count("contacts"), count("calendar")), (1, 0));
    let audit = fx
        .store
        .read(|tx| {
            tx.audit_list(&AuditFilter {
                terminal_id: Some("IMEI:A1".into()),
                ..AuditFilter::default()
            })
        })
        .expect("audit");
    assert!(audit.iter().any(|a| a.event.status == Some(403)
        && a.event
            .reason
            .contains("calendar is not among the terminal's data classes")));
}

// ---------------------------------------------------------------------------------
// Isolation: two subscribers with look-alike data.
// ---------------------------------------------------------------------------------

const LOOKALIKE: &str = "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Gate;Test\r\nEND:VCARD\r\n";
const BOB_SECRET: &str = "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Bob;Secret\r\nEND:VCARD\r\n";

/// Bob's contacts: the same card alice adds, and one only bob has. Returns their GUIDs.
fn seed_bob(fx: &Fx) -> Vec<String> {
    use syncml_server::store::{DatastoreKey, NewItem};
    fx.store
        .transaction(|tx| {
            tx.items_put(
                DatastoreKey::new("bob", "contacts"),
                Some("IMEI:B1"),
                &[LOOKALIKE, BOB_SECRET].map(|d| NewItem {
                    guid: None,
                    content_type: "text/x-vcard".into(),
                    data: d.as_bytes().to_vec(),
                }),
                Timestamp::from_unix_secs(2_000),
            )
        })
        .expect("seed bob")
        .into_iter()
        .map(|r| r.guid)
        .collect()
}

fn bob_contacts(fx: &Fx) -> Vec<(String, Vec<u8>)> {
    use syncml_server::store::DatastoreKey;
    let mut v: Vec<(String, Vec<u8>)> = fx
        .store
        .read(|tx| tx.items_list_live(DatastoreKey::new("bob", "contacts")))
        .expect("bob's items")
        .into_iter()
        .map(|i| (i.guid, i.data))
        .collect();
    v.sort();
    v
}

fn all_data(m: &SyncMl) -> String {
    String::from_utf8_lossy(&syncml_core::encode(m, Encoding::Xml).expect("encode")).into_owned()
}

#[test]
fn no_request_as_one_subscriber_reads_or_writes_anothers_data() {
    let fx = fixture();
    let bob_guids = seed_bob(&fx);
    let bob_before = bob_contacts(&fx);
    // One card of alice's own, written by another of her handsets: her slow sync must
    // bring it (so the absence of bob's card below means something).
    fx.store
        .transaction(|tx| {
            tx.items_put(
                syncml_server::store::DatastoreKey::new("alice", "contacts"),
                Some("IMEI:A9"),
                &[syncml_server::store::NewItem {
                    guid: None,
                    content_type: "text/x-vcard".into(),
                    data: b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Alice;Own\r\nEND:VCARD\r\n".to_vec(),
                }],
                Timestamp::from_unix_secs(2_000),
            )
        })
        .expect("seed alice");

    // alice's handset claiming to be bob, with alice's password or with bob's.
    for pw in ["pa1", "pb1"] {
        let msg = package1(
            "IMEI:A1",
            Some("bob"),
            cred(&fx, CredKind::Md5(pw), "bob", "IMEI:A1"),
            None,
            &["contacts"],
        );
        let reply = fx.post(false, &msg);
        assert_eq!(
            header_status(&reply),
            401,
            "LocName bob from alice's handset"
        );
        assert!(!all_data(&reply).contains("Bob;Secret"));
    }

    // alice's own session: a slow sync (she sends the look-alike card) plus a Replace
    // and a Delete aimed at bob's GUIDs.
    let mut msg = package1(
        "IMEI:A1",
        Some("alice"),
        cred(&fx, CredKind::Md5("pa1"), "alice", "IMEI:A1"),
        None,
        &["contacts"],
    );
    if let Some(Command::Sync(s)) = msg.body.commands.get_mut(1) {
        for (n, guid) in bob_guids.iter().enumerate() {
            s.commands.push(Command::Replace(ItemCommand {
                cmd_id: format!("r{n}"),
                meta: Some(Meta {
                    r#type: Some("text/x-vcard".into()),
                    ..Meta::default()
                }),
                items: vec![Item {
                    target: Some(Target::new(guid.clone())),
                    source: Some(Source::new(format!("luid-r{n}"))),
                    data: Some(Data::Text(
                        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Overwritten;ByAlice\r\nEND:VCARD\r\n"
                            .into(),
                    )),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            }));
            s.commands.push(Command::Delete(syncml_core::model::Delete {
                cmd_id: format!("d{n}"),
                items: vec![Item {
                    target: Some(Target::new(guid.clone())),
                    ..Item::default()
                }],
                ..Default::default()
            }));
        }
    }
    let reply = fx.post(false, &msg);
    assert_eq!(header_status(&reply), 212);
    let text = all_data(&reply);
    assert!(
        text.contains("Alice;Own"),
        "alice gets her own card: {text}"
    );
    assert!(
        !text.contains("Bob;Secret"),
        "alice's slow sync must not carry bob's card: {text}"
    );
    assert_eq!(bob_contacts(&fx), bob_before, "bob's data untouched");

    // A session token of bob's session, presented by alice's handset, is not bob's
    // session: without credentials it is refused, and nothing of bob's comes back.
    let bob_msg = package1(
        "IMEI:B1",
        Some("bob"),
        cred(&fx, CredKind::Md5("pb1"), "bob", "IMEI:B1"),
        None,
        &["contacts"],
    );
    let mut bob_open = bob_msg.clone();
    bob_open.body.is_final = false;
    let bob_reply = fx.post(false, &bob_open);
    assert_eq!(header_status(&bob_reply), 212);
    let bob_token_url = bob_reply.header.resp_uri.clone().expect("RespURI");
    let mut hijack = package1("IMEI:A1", Some("alice"), None, None, &["contacts"]);
    hijack.header.msg_id = "2".into();
    let body = syncml_core::encode(&hijack, Encoding::Xml).expect("encode");
    let resp = fx.plain.post(&bob_token_url, XML, &body);
    let reply = syncml_core::decode(&resp.body).expect("decode");
    assert_eq!(header_status(&reply), 407);
    assert!(!all_data(&reply).contains("Bob;Secret"));
    assert_eq!(bob_contacts(&fx), bob_before, "bob's data untouched");
}

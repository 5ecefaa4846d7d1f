//! HTTPS: the HTTP transport (rustls, ring) against our server started with a TLS
//! certificate, as `syncml-server serve --tls-cert/--tls-key` does; the file-backed
//! handset and the `syncml-handset` command over it.

mod common;

use std::process::Command;

use common::{start_tls, PIN, SUBSCRIBER};
use syncml_client::fs::{DataClass, FsHandset, FsSim, HandsetConfig};
use syncml_client::{ClientError, HttpTransport, SyncMode, TransportError};

struct Cert {
    cert_pem: String,
    key_pem: String,
}

/// A self-signed certificate for 127.0.0.1 (and localhost).
fn cert() -> Cert {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("rcgen");
    Cert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

fn vcard(name: &str) -> String {
    format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:{name};;;;\r\nFN:{name}\r\nEND:VCARD\r\n")
}

/// A registered file-backed handset with the SIM in, talking to `url`.
fn handset(root: &std::path::Path, url: &str) -> FsHandset {
    let mut cfg = HandsetConfig::new(url);
    cfg.classes = vec![DataClass::Contacts];
    let mut h = FsHandset::init(&root.join("h"), "IMEI:100000000000001", "pw", cfg).expect("init");
    FsSim::create(&root.join("sim"), SUBSCRIBER, PIN).expect("sim");
    h.insert_sim(&root.join("sim")).expect("insert");
    h.register(Some(PIN), Some("pw"), true, true)
        .expect("register");
    h
}

#[test]
fn a_sync_over_https_with_the_servers_certificate_trusted_works() {
    let c = cert();
    let srv = start_tls(&c.cert_pem, &c.key_pem);
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "pw");
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = handset(root.path(), &srv.url);
    std::fs::write(
        h.class_dir(DataClass::Contacts).join("ann.vcf"),
        vcard("Ann"),
    )
    .expect("w");
    let t = HttpTransport::new()
        .with_root_certificates_pem(c.cert_pem.as_bytes())
        .expect("roots");
    let o = srv
        .block_on(h.sync(&t, &[], SyncMode::Slow, Some(PIN), Some("pw")))
        .expect("sync over TLS");
    assert!(
        o.report.messages_sent >= 2,
        "a whole session (several messages) over TLS"
    );
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), vec![vcard("Ann")]);
    // And again on the same transport (a cached connection or a fresh one).
    srv.operator_put(SUBSCRIBER, "contacts", None, &vcard("Srv"));
    let o = srv
        .block_on(h.sync(&t, &[], SyncMode::TwoWay, Some(PIN), Some("pw")))
        .expect("second sync over TLS");
    assert_eq!(o.report.received(), 1);
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_and_syncs_nothing() {
    let c = cert();
    let srv = start_tls(&c.cert_pem, &c.key_pem);
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "pw");
    let root = tempfile::tempdir().expect("tempdir");
    let mut h = handset(root.path(), &srv.url);
    std::fs::write(
        h.class_dir(DataClass::Contacts).join("ann.vcf"),
        vcard("Ann"),
    )
    .expect("w");
    let other = cert();
    let t = HttpTransport::new()
        .with_root_certificates_pem(other.cert_pem.as_bytes())
        .expect("roots");
    let e = srv
        .block_on(h.sync(&t, &[], SyncMode::Slow, Some(PIN), Some("pw")))
        .expect_err("untrusted");
    assert!(
        matches!(&e, syncml_client::fs::HandsetError::Client(ClientError::Transport(TransportError::Tls(m))) if m.contains("handshake")),
        "{e:?}"
    );
    assert!(srv.items(SUBSCRIBER, "contacts").is_empty());
    let e = srv
        .block_on(h.sync(
            HttpTransport::new(),
            &[],
            SyncMode::Slow,
            Some(PIN),
            Some("pw"),
        ))
        .expect_err("no roots");
    assert!(
        e.to_string()
            .contains("https needs trusted root certificates"),
        "{e}"
    );
    assert!(matches!(
        HttpTransport::new().with_root_certificates_pem(b"not a pem"),
        Err(TransportError::Tls(_))
    ));
}

#[test]
fn the_command_line_syncs_over_https_with_ca_cert() {
    let c = cert();
    let srv = start_tls(&c.cert_pem, &c.key_pem);
    srv.provision(SUBSCRIBER, "IMEI:100000000000001", "pw");
    let root = tempfile::tempdir().expect("tempdir");
    let pem = root.path().join("server.pem");
    std::fs::write(&pem, &c.cert_pem).expect("pem");
    let h = handset(root.path(), &srv.url);
    std::fs::write(
        h.class_dir(DataClass::Contacts).join("ann.vcf"),
        vcard("Ann"),
    )
    .expect("w");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_syncml-handset"))
            .arg("--dir")
            .arg(h.root())
            .args(["sync", "--mode", "slow", "--pin", PIN, "--password", "pw"])
            .args(extra)
            .output()
            .expect("run")
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1), "no CA configured");
    assert!(String::from_utf8_lossy(&o.stderr).contains("TLS"));
    let o = run(&["--ca-cert", pem.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(srv.items(SUBSCRIBER, "contacts"), vec![vcard("Ann")]);
}

//! The operator CLI: provisioning works with no config file, and errors are one clear line.

use std::process::Command;

fn cli(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_syncml-server"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run syncml-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn provisioning_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    assert!(
        cli(
            d,
            &["subscriber", "add", "234150123456789", "--name", "Alice"]
        )
        .0
    );
    let (ok, out, err) = cli(
        d,
        &[
            "terminal",
            "register",
            "234150123456789",
            "IMEI:356938035643809",
            "--password",
            "pw",
            "--classes",
            "contacts,calendar",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("registered"));
    let (ok, out, _) = cli(d, &["subscriber", "show", "234150123456789"]);
    assert!(ok);
    assert!(out.contains("IMEI:356938035643809"), "{out}");
    assert!(out.contains("classes [calendar,contacts]"), "{out}");
    assert!(
        cli(
            d,
            &[
                "terminal",
                "classes",
                "234150123456789",
                "IMEI:356938035643809",
                "--set",
                "addressbook,notes"
            ]
        )
        .0
    );
    let (_, out, _) = cli(d, &["subscriber", "show", "234150123456789"]);
    assert!(
        out.contains("classes [contacts,notes]"),
        "aliases resolve: {out}"
    );
    assert!(
        cli(
            d,
            &["subscriber", "set-pin", "234150123456789", "--pin", "1234"]
        )
        .0
    );
    assert!(cli(d, &["subscriber", "security-level", "234150123456789", "2"]).0);
    assert!(
        cli(
            d,
            &[
                "subscriber",
                "set-login",
                "234150123456789",
                "--password",
                "web"
            ]
        )
        .0
    );
    let (_, out, _) = cli(d, &["subscriber", "show", "234150123456789"]);
    assert!(
        out.contains("security level 2; PIN set; login password set"),
        "{out}"
    );
    let (_, out, _) = cli(d, &["subscriber", "list"]);
    assert!(
        out.contains("234150123456789\tAlice\tsecurity-level 2"),
        "{out}"
    );
    let (ok, out, _) = cli(d, &["terminal", "unlock", "IMEI:356938035643809"]);
    assert!(ok && out.contains("was not locked"));
    assert!(
        cli(
            d,
            &[
                "terminal",
                "remove",
                "234150123456789",
                "IMEI:356938035643809"
            ]
        )
        .0
    );
    let (_, out, _) = cli(d, &["subscriber", "show", "234150123456789"]);
    assert!(!out.contains("IMEI:356938035643809"), "{out}");
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for args in [
        vec![
            "terminal",
            "register",
            "nobody",
            "IMEI:1",
            "--password",
            "x",
        ],
        vec!["subscriber", "show", "nobody"],
        vec!["subscriber", "security-level", "nobody", "7"],
        vec![
            "terminal",
            "register",
            "nobody",
            "IMEI:1",
            "--password",
            "x",
            "--classes",
            "bogus",
        ],
    ] {
        let (ok, _, err) = cli(d, &args);
        assert!(!ok, "{args:?} should fail");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(lines[0].starts_with("syncml-server: "), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }
    assert!(cli(d, &["subscriber", "add", "dup"]).0);
    let (ok, _, err) = cli(d, &["subscriber", "add", "dup"]);
    assert!(!ok && err.lines().count() == 1, "{err}");
}

#[test]
fn a_bad_conflict_policy_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let (ok, _, err) = cli(
        &d,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--conflict-policy",
            "contacts=bogus",
        ],
    );
    assert!(!ok);
    assert!(err.contains("unknown conflict policy bogus"), "{err}");
    assert!(!d.exists(), "nothing was created");
    let (ok, _, err) = cli(
        &d,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--conflict-policy",
            "nonsense=client-wins",
        ],
    );
    assert!(!ok && err.contains("unknown datastore nonsense"), "{err}");
}

#[test]
fn both_checkpoint_placements_serve_the_same_database_and_others_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("data");
    let (ok, _, err) = cli(
        &d,
        &["--sqlite-checkpoint", "sometimes", "subscriber", "list"],
    );
    assert!(
        !ok && err.contains("possible values: background, writer"),
        "{err}"
    );
    assert!(!d.exists(), "nothing was created");
    for (placement, imsi) in [
        ("writer", "234150000000001"),
        ("background", "234150000000002"),
    ] {
        let (ok, _, err) = cli(
            &d,
            &["--sqlite-checkpoint", placement, "subscriber", "add", imsi],
        );
        assert!(ok, "{placement}: {err}");
    }
    let (ok, out, err) = cli(&d, &["subscriber", "list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("234150000000001") && out.contains("234150000000002"),
        "{out}"
    );
}

//! The handset benchmark's code path at a small size: 300 contacts up from one
//! `syncml-handset` and down to another in slow syncs over HTTP, in messages under an
//! 8 KiB MaxMsgSize, every contact arriving on both sides. (The 10,000-contact run is the
//! `handset-bench` binary, run on a quiet machine.)

#[allow(dead_code)]
#[path = "../src/handset_bench.rs"]
mod handset_bench;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `syncml-handset` with the cargo running this test, next to the test binary.
fn handset_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SYNCML_HANDSET_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "-q",
        "-p",
        "syncml-client",
        "--bin",
        "syncml-handset",
    ])
    .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building syncml-handset failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir.join("syncml-handset")
}

#[test]
fn three_hundred_contacts_slow_sync_each_way_in_small_messages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = handset_bench::Options {
        contacts: 300,
        dir: tmp.path().join("run"),
        handset_bin: handset_bin(),
        max_msg_size: 8 * 1024,
        wbxml: false,
    };
    let r = handset_bench::run(&o).expect("bench run");
    assert_eq!(r.upload.items, 300);
    assert_eq!(r.download.items, 300);
    assert_eq!(r.server_items, 300);
    assert_eq!(r.downloaded_files, 300);
    // ~300 B a contact: the 8 KiB limit forces many messages each way.
    assert!(
        r.upload.messages > 10,
        "upload messages {}",
        r.upload.messages
    );
    assert!(
        r.download.messages > 10,
        "download messages {}",
        r.download.messages
    );
}

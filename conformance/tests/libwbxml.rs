//! Interop with libwbxml (Debian `libwbxml2-utils`): its `wbxml2xml` and `xml2wbxml`
//! are an independent WBXML implementation. These tests run the real binaries and fail
//! loudly when they are missing (`.ci/run` and `scripts/test.sh` install them).
//!
//! Canonical comparison uses Python's `xml.etree.ElementTree.canonicalize` (C14N 2.0),
//! a third, independent XML implementation; DOCTYPE is dropped first.

use std::path::{Path, PathBuf};
use std::process::Command;
use syncml_core::{wbxml, xml, Encoding};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../syncml-core/tests/data")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("test data directory") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: run `apt-get install libwbxml2-utils python3` \
         (scripts/test.sh does this); these interop tests never skip"
    );
}

fn tmp() -> PathBuf {
    let d = std::env::temp_dir().join(format!("syncml-libwbxml-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn wbxml2xml(input: &Path, out: &Path) -> Vec<u8> {
    let st = Command::new("wbxml2xml")
        .args(["-m", "0", "-o"])
        .arg(out)
        .arg(input)
        .output()
        .expect("run wbxml2xml");
    assert!(
        st.status.success() && out.exists(),
        "wbxml2xml failed on {}: {}",
        input.display(),
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).expect("wbxml2xml output")
}

fn xml2wbxml(input: &Path, out: &Path) -> Vec<u8> {
    let st = Command::new("xml2wbxml")
        .args(["-n", "-v", "1.2", "-o"])
        .arg(out)
        .arg(input)
        .output()
        .expect("run xml2wbxml");
    assert!(
        st.status.success() && out.exists(),
        "xml2wbxml failed on {}: {}",
        input.display(),
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).expect("xml2wbxml output")
}

/// C14N 2.0 of an XML document, by Python's standard library.
fn c14n(doc: &[u8]) -> String {
    const SCRIPT: &str = r#"
import sys, re, xml.etree.ElementTree as ET
s = sys.stdin.buffer.read().decode("utf-8")
s = re.sub(r"<!DOCTYPE[^>]*>", "", s)
sys.stdout.write(ET.canonicalize(xml_data=s))
"#;
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for C14N");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc)
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "C14N failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 C14N")
}

fn our_xml(wbxml_bytes: &[u8]) -> Vec<u8> {
    let mut doc = wbxml::decode_document(wbxml_bytes).expect("our WBXML decoder");
    syncml_core::rewrite_devinf_type(&mut doc.root, Encoding::Xml);
    xml::encode_element(&doc.root, &xml::EncodeOptions::default()).expect("our XML encoder")
}

fn captured_wbxml() -> Vec<PathBuf> {
    let v = files(&data_dir().join("captures"), ".wbxml");
    assert_eq!(v.len(), 35, "expected the 35 captured WBXML messages");
    v
}

/// Our XML rendering of every captured WBXML message is C14N-equal to wbxml2xml's.
#[test]
fn our_xml_of_captured_wbxml_matches_wbxml2xml() {
    require("wbxml2xml");
    require("python3");
    let t = tmp();
    for (i, f) in captured_wbxml().iter().enumerate() {
        let bytes = std::fs::read(f).expect("capture");
        let theirs = wbxml2xml(f, &t.join(format!("a{i}.xml")));
        let ours = our_xml(&bytes);
        assert_eq!(
            c14n(&ours),
            c14n(&theirs),
            "our XML differs from wbxml2xml for {}",
            f.display()
        );
    }
}

/// xml2wbxml turns our XML rendering back into the original wire bytes: libwbxml reads
/// our XML exactly as it reads its own.
#[test]
fn xml2wbxml_of_our_xml_reproduces_captured_bytes() {
    require("xml2wbxml");
    let t = tmp();
    for (i, f) in captured_wbxml().iter().enumerate() {
        let bytes = std::fs::read(f).expect("capture");
        let x = t.join(format!("b{i}.xml"));
        std::fs::write(&x, our_xml(&bytes)).expect("write");
        let back = xml2wbxml(&x, &t.join(format!("b{i}.wbxml")));
        assert!(
            back == bytes,
            "xml2wbxml(our XML) != original for {}",
            f.display()
        );
    }
}

/// wbxml2xml decodes the WBXML we produce from the captured XML sessions into the same
/// document (C14N) as the original XML.
#[test]
fn wbxml2xml_reads_our_wbxml_of_captured_xml() {
    require("wbxml2xml");
    require("python3");
    let t = tmp();
    let xmls: Vec<PathBuf> = files(&data_dir().join("captures"), ".xml")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("synthesis-translation"))
        .collect();
    assert_eq!(xmls.len(), 45, "expected the 45 captured XML messages");
    for (i, f) in xmls.iter().enumerate() {
        let original = std::fs::read(f).expect("capture");
        let mut doc = xml::decode_document(&original).expect("our XML decoder");
        syncml_core::rewrite_devinf_type(&mut doc.root, Encoding::Wbxml);
        let ours = wbxml::encode_element(&doc.root, wbxml::EncodeOptions::default())
            .expect("our WBXML encoder");
        let w = t.join(format!("c{i}.wbxml"));
        std::fs::write(&w, &ours).expect("write");
        let theirs = wbxml2xml(&w, &t.join(format!("c{i}.xml")));
        let mut theirs_tree = xml::decode_document(&theirs).expect("wbxml2xml output parses");
        syncml_core::rewrite_devinf_type(&mut theirs_tree.root, Encoding::Xml);
        let theirs =
            xml::encode_element(&theirs_tree.root, &xml::EncodeOptions::default()).expect("encode");
        assert_eq!(
            c14n(&theirs),
            c14n(&original),
            "wbxml2xml(our WBXML) differs from the original XML {}",
            f.display()
        );
    }
}

/// Byte-identical re-encoding of every WBXML vector at the tree level, with the header
/// version byte the peer used.
#[test]
fn our_wbxml_reencoding_of_captures_is_byte_identical() {
    for f in captured_wbxml() {
        let bytes = std::fs::read(&f).expect("capture");
        let doc = wbxml::decode_document(&bytes).expect("decode");
        let version = doc.wbxml.map(|h| h.version).unwrap_or(2);
        let out = wbxml::encode_element(&doc.root, wbxml::EncodeOptions::with_version(version))
            .expect("encode");
        assert!(out == bytes, "re-encoding differs for {}", f.display());
    }
}

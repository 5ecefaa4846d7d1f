//! Whole messages: every captured SyncEvolution message and every public SyncML vector
//! decodes to the typed model, survives model round trips in both encodings, and our
//! WBXML encoding of each captured WBXML message is byte-identical to the wire bytes.

use std::path::{Path, PathBuf};
use syncml_core::model::normalize_dtd_order;
use syncml_core::{decode, encode, wbxml, xml, Encoding, SyncMl};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

fn files(dir: &str, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("test data") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if pred(&p.to_string_lossy()) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read test data")
}

fn captured_wbxml() -> Vec<PathBuf> {
    files("captures", |p| p.ends_with(".wbxml"))
}

fn captured_xml() -> Vec<PathBuf> {
    files("captures", |p| p.ends_with(".xml"))
}

#[test]
fn every_captured_message_decodes_to_the_model() {
    let all: Vec<PathBuf> = captured_wbxml().into_iter().chain(captured_xml()).collect();
    // 35 WBXML, 45 raw XML and 35 Synthesis renderings of the WBXML ones.
    assert_eq!(all.len(), 35 + 45 + 35);
    for f in all {
        let msg = decode(&read(&f)).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(!msg.header.msg_id.is_empty(), "{}", f.display());
        assert!(!msg.body.commands.is_empty(), "{}", f.display());
    }
}

/// `decode` converts each command as the decoder closes it; the result and the error are
/// exactly those of the model read from the whole tree, for every file we have (the
/// captures, the public vectors including the invalid ones, the fuzz regressions).
#[test]
fn decode_is_the_same_streamed_or_from_the_tree() {
    let all = files("", |p| !p.ends_with(".md"));
    assert!(all.len() > 150, "only {} files", all.len());
    let mut errors = 0;
    for f in all {
        let bytes = read(&f);
        let from_tree = syncml_core::decode_document(&bytes)
            .and_then(|d| SyncMl::from_element(d.root).map_err(Into::into));
        errors += usize::from(from_tree.is_err());
        assert_eq!(decode(&bytes), from_tree, "{}", f.display());
    }
    assert!(
        errors >= 10,
        "the error paths are covered too ({errors} errors)"
    );
}

/// The public vectors that are SyncML messages decode; the ones that are not (fragments,
/// standalone DevInf, SAN and OBEX binaries, provisioning documents, deliberately
/// invalid files) are refused with an error, never a panic.
#[test]
fn every_public_syncml_message_vector_decodes() {
    const NOT_MESSAGES: &[&str] = &[
        "SAN01.bin",      // package #0 SAN binary, not WBXML
        "SAN02.bin",      // a text hex dump of a SAN
        "obexresp01.bin", // OBEX responses
        "obexresp02.bin",
        "obexresp03.bin",
        "SyncMLHdrTest.txt", // a lone <SyncHdr>
        "SyncMLHdrTest_11.txt",
        "devinf01.txt", // standalone DevInf documents
        "devinf02.txt",
        "syncml-011.xml",
        "testAdd.txt", // lone commands and items
        "testAlert.txt",
        "testDevInf.txt",
        "testItem.txt",
        "respinvalid1.txt", // invalid on purpose
        "respinvalid2.txt",
        "respinvalid3.txt",
        "respinvalid5.txt",
        "respinvalid6.txt",
        "transport_initrequest.txt", // HTTP headers before the body
        "ddf-001.ddf",               // OMA DM DDF
        "ota.syncml",                // OMA client provisioning
        "nokia-6600-sync-ota.xml",   // truncated provisioning document
    ];
    let mut decoded = 0;
    for f in files("vectors", |p| !p.ends_with(".md")) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let res = decode(&read(&f));
        if NOT_MESSAGES.contains(&name) || name.ends_with(".fuzz") {
            assert!(res.is_err(), "{name} should not decode as a message");
        } else {
            res.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            decoded += 1;
        }
    }
    assert!(decoded >= 30, "only {decoded} vectors decoded");
}

/// WBXML -> model -> WBXML reproduces the wire bytes. The one SyncEvolution deviation
/// from the DevInf DTD order (see `model::devinf` quirks) is normalised in the expected
/// bytes, because we write strict DTD order; every message without a DevInf must be
/// byte-identical to the original as it is.
#[test]
fn wbxml_model_wbxml_is_byte_identical_for_captures() {
    let mut exact = 0;
    for f in captured_wbxml() {
        let original = read(&f);
        let doc = wbxml::decode_document(&original).expect("tree");
        let version = doc.wbxml.map(|h| h.version).unwrap_or(2);
        let opts = wbxml::EncodeOptions::with_version(version);
        let msg = SyncMl::from_element(doc.root.clone()).expect("model");
        let ours = syncml_core::encode_wbxml(&msg, opts).expect("encode");
        let mut normalised = doc.root;
        normalize_dtd_order(&mut normalised);
        let expected = wbxml::encode_element(&normalised, opts).expect("encode tree");
        assert!(
            ours == expected,
            "{}: model re-encoding differs",
            f.display()
        );
        if ours == original {
            exact += 1;
        }
    }
    // 14 of the 35 carry a DevInf; the other 21 are identical without normalisation.
    assert!(
        exact >= 21,
        "only {exact} byte-identical without normalisation"
    );
}

#[test]
fn xml_model_xml_round_trips() {
    for f in captured_xml() {
        let msg = decode(&read(&f)).expect("decode");
        let bytes = encode(&msg, Encoding::Xml).expect("encode");
        let back = decode(&bytes).expect("decode ours");
        assert_eq!(back, msg, "{}", f.display());
        let pretty = syncml_core::encode_xml(&msg, &xml::EncodeOptions::pretty()).expect("pretty");
        assert_eq!(
            decode(&pretty).expect("decode pretty"),
            msg,
            "{}",
            f.display()
        );
    }
}

#[test]
fn model_survives_both_encodings() {
    for f in captured_wbxml().into_iter().chain(captured_xml()) {
        let msg = decode(&read(&f)).expect("decode");
        for enc in [Encoding::Wbxml, Encoding::Xml] {
            let bytes = encode(&msg, enc).expect("encode");
            assert_eq!(
                decode(&bytes).expect("decode ours"),
                msg,
                "{} via {enc:?}",
                f.display()
            );
        }
    }
}

/// The Synthesis engine's own XML rendering of each WBXML message decodes to the same
/// model as the wire bytes: two independent decoders agree.
#[test]
fn wbxml_and_its_synthesis_translation_decode_to_the_same_model() {
    for f in captured_wbxml() {
        let tr = PathBuf::from(
            f.to_string_lossy()
                .replace(".wbxml", ".synthesis-translation.xml"),
        );
        let a = decode(&read(&f)).expect("wbxml");
        let b = decode(&read(&tr)).expect("translation");
        assert_eq!(a, b, "{}", f.display());
    }
}

#[test]
fn truncated_wbxml_is_an_error_with_an_offset() {
    let original = read(&data("captures/03-twoway-wbxml/03-msg002-c2s.wbxml"));
    for cut in [1, 4, 5, 100, original.len() - 1] {
        let err = decode(&original[..cut]).expect_err("truncated");
        assert!(err.to_string().contains("byte "), "{err}");
    }
}

#[test]
fn every_prefix_and_bit_flip_of_a_capture_is_refused_or_decoded_without_panic() {
    let original = read(&data("captures/01-slow-wbxml-md5/01-msg001-c2s.wbxml"));
    for cut in 0..original.len() {
        let _ = decode(&original[..cut]);
    }
    for i in (0..original.len()).step_by(7) {
        let mut m = original.clone();
        m[i] ^= 0x41;
        let _ = decode(&m);
    }
}

#[test]
fn trailing_data_after_the_root_is_refused() {
    let mut m = read(&data("captures/03-twoway-wbxml/06-msg003-s2c.wbxml"));
    m.push(0x01);
    assert!(decode(&m).is_err());
}

#[test]
fn syncml11_public_id_and_namespace_round_trip() {
    let f = data("captures/09-syncml11-slow-wbxml/01-msg001-c2s.wbxml");
    let original = read(&f);
    assert_eq!(&original[..3], &[0x02, 0x9F, 0x53]);
    let msg = decode(&original).expect("decode");
    assert_eq!(msg.header.ver_dtd, "1.1");
    let x = encode(&msg, Encoding::Xml).expect("xml");
    assert!(String::from_utf8_lossy(&x).contains("SYNCML:SYNCML1.1"));
}

/// XML 1.0 cannot carry U+0000; a NUL in XML input is refused rather than decoded into
/// text that no encoding can reproduce (found by the `message_roundtrip` fuzz target).
#[test]
fn nul_characters_in_xml_are_refused() {
    let doc = b"<SyncML><SyncBody><Sync><Add><CmdID>1</CmdID><Item><Data>a\0b</Data></Item></Add></Sync></SyncBody></SyncML>";
    let err = decode(doc).expect_err("NUL");
    assert!(err.to_string().contains("byte 58"), "{err}");
    let doc = b"<SyncML><SyncBody><Final/><Data>&#0;</Data></SyncBody></SyncML>";
    assert!(decode(doc).is_err());
}

/// Inputs the fuzz targets once crashed on: each decodes and round-trips in both
/// encodings, or is refused.
#[test]
fn fuzz_regressions_round_trip_or_are_refused() {
    for f in files("fuzz-regressions", |_| true) {
        let Ok(msg) = decode(&read(&f)) else { continue };
        for enc in [Encoding::Wbxml, Encoding::Xml] {
            if let Ok(bytes) = encode(&msg, enc) {
                assert_eq!(
                    decode(&bytes).expect("our output decodes"),
                    msg,
                    "{}",
                    f.display()
                );
            }
        }
    }
}

/// The streaming WBXML -> XML conversion (used by `syncml decode`) writes exactly what
/// the tree path writes.
#[test]
fn streaming_transcode_equals_the_tree_path() {
    for f in captured_wbxml() {
        let bytes = read(&f);
        for opts in [xml::EncodeOptions::default(), xml::EncodeOptions::pretty()] {
            let streamed = syncml_core::transcode(&bytes, Encoding::Xml, &opts).expect("transcode");
            let mut root = wbxml::decode_document(&bytes).expect("tree").root;
            syncml_core::rewrite_devinf_type(&mut root, Encoding::Xml);
            let tree = xml::encode_element(&root, &opts).expect("encode");
            assert!(streamed == tree, "{}", f.display());
        }
        let back = syncml_core::transcode(
            &syncml_core::transcode(&bytes, Encoding::Xml, &xml::EncodeOptions::default())
                .expect("to xml"),
            Encoding::Wbxml,
            &xml::EncodeOptions::default(),
        )
        .expect("to wbxml");
        assert!(back == bytes, "WBXML -> XML -> WBXML for {}", f.display());
    }
}

/// The streaming XML -> WBXML conversion (used by `syncml encode --wbxml`) writes exactly
/// what the tree path writes, for every captured and public XML message.
#[test]
fn streaming_xml_to_wbxml_equals_the_tree_path() {
    let mut n = 0;
    for f in captured_xml().into_iter().chain(files("vectors", |p| {
        p.ends_with(".xml") || p.ends_with(".txt")
    })) {
        let bytes = read(&f);
        let Ok(mut doc) = xml::decode_document(&bytes) else {
            continue;
        };
        syncml_core::rewrite_devinf_type(&mut doc.root, Encoding::Wbxml);
        let Ok(tree) = wbxml::encode_element(&doc.root, wbxml::EncodeOptions::default()) else {
            continue;
        };
        let streamed =
            syncml_core::transcode(&bytes, Encoding::Wbxml, &xml::EncodeOptions::default())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(streamed == tree, "{}", f.display());
        n += 1;
    }
    assert!(n >= 60, "only {n} documents compared");
}

/// WBX: an `ENTITY` stands for an XML character reference, and `&#0;` is not one. Found
/// by the `message_roundtrip` fuzz target: NUL in element text could only be written
/// back as OPAQUE and read back as bytes.
#[test]
fn entity_nul_is_refused() {
    // <SyncML><VerDTD>1&#0;</VerDTD></SyncML> in SyncML 1.2 (public ID 0x1201).
    let doc = [
        0x02, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x71, 0x03, b'1', 0x00, 0x02, 0x00, 0x01, 0x01,
    ];
    let err = decode(&doc).expect_err("NUL entity");
    assert!(err.to_string().contains("entity 0x0"), "{err}");
    let ok = [
        0x02, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x71, 0x03, b'1', 0x00, 0x02, 0x41, 0x01, 0x01,
    ];
    let tree = syncml_core::wbxml::decode_document(&ok)
        .expect("ENTITY A")
        .root;
    let ver = tree.child("VerDTD").expect("VerDTD");
    let text: String = ver
        .children
        .iter()
        .filter_map(|n| match n {
            syncml_core::tree::Node::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "1A");
}

/// WBX: an empty inline string is no character data (found by the `message_roundtrip`
/// fuzz target: XML cannot write an empty text node, so it did not survive XML).
#[test]
fn empty_inline_strings_are_no_text_nodes() {
    // <SyncML><VerDTD>STR_I ""</VerDTD></SyncML>
    let doc = [
        0x02, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x71, 0x03, 0x00, 0x01, 0x01,
    ];
    let tree = syncml_core::wbxml::decode_document(&doc)
        .expect("decodes")
        .root;
    let ver = tree.child("VerDTD").expect("VerDTD");
    assert!(ver.children.is_empty(), "{:?}", ver.children);
}

/// XML: a namespace name is an attribute value, references included (found by the
/// `message_roundtrip` fuzz target: `syncml&gt;devinf` came back with the reference
/// written out, a different namespace).
#[test]
fn namespace_names_are_read_with_their_references_resolved() {
    let doc = syncml_core::xml::decode_document(br#"<DevInf xmlns="syncml&#x3A;devinf"/>"#)
        .expect("decodes");
    assert_eq!(doc.root.ns, syncml_core::tree::Namespace::DevInf);
    let doc = syncml_core::xml::decode_document(br#"<X xmlns="a&gt;b"/>"#).expect("decodes");
    assert_eq!(
        doc.root.ns,
        syncml_core::tree::Namespace::Other("a>b".into())
    );
}

//! The typed message model against real messages (tests/data) and the spec rules:
//! element tree -> model -> element tree, liberal input, strict output.

use std::path::{Path, PathBuf};

use syncml_core::model::{
    normalize_dtd_order, Alert, Anchor, Chal, Command, Container, Cred, Data, Delete, Exec, Filter,
    GetPut, Item, ItemCommand, Map, MapItem, Mem, Meta, ModelError, Results, Search, Source,
    Status, Sync, SyncBody, SyncHdr, SyncMl, Target,
};
use syncml_core::tree::{Element, Namespace, Node, SyncMlVersion, TreeBuilder};
use syncml_core::{AlertCode, StatusCode};

// ---------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read(rel: &str) -> Vec<u8> {
    let p = data_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn tree_of(bytes: &[u8]) -> Element {
    syncml_core::decode_document(bytes)
        .unwrap_or_else(|e| panic!("decode: {e}"))
        .root
}

fn decode_rel(rel: &str) -> SyncMl {
    SyncMl::from_element(tree_of(&read(rel))).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn xml_model(xml: &str) -> Result<SyncMl, ModelError> {
    let doc = syncml_core::xml::decode_document(xml.as_bytes()).expect("well-formed test XML");
    SyncMl::from_element(doc.root)
}

fn to_tree(msg: &SyncMl) -> Element {
    let mut b = TreeBuilder::new();
    msg.write(&mut b);
    b.finish().expect("one balanced root")
}

fn names(el: &Element) -> Vec<&str> {
    el.elements().map(|e| e.name.as_ref()).collect()
}

fn child<'a>(el: &'a Element, path: &[&str]) -> &'a Element {
    let mut cur = el;
    for p in path {
        cur = cur
            .child(p)
            .unwrap_or_else(|| panic!("no <{p}> in <{}>", cur.name));
    }
    cur
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn files_with(rel_dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    walk(&data_dir().join(rel_dir), &mut v);
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v
}

/// Every complete SyncML message among the captures and vectors (XML and WBXML).
fn corpus() -> Vec<PathBuf> {
    let mut v = files_with("captures", ".xml");
    v.extend(files_with("captures", ".wbxml"));
    let vectors = data_dir().join("vectors");
    for n in 1..=14 {
        // 011 is a standalone DevInf document, 012 is OMA DM: both are covered by
        // their own tests below.
        if n != 11 && n != 12 {
            v.push(vectors.join(format!("libwbxml/syncml/syncml-{n:03}.xml")));
        }
    }
    v.push(vectors.join("libwbxml/ddf/syncml_with_ddf-001.xml"));
    for f in [
        "basicbasetransport.txt",
        "basicbasetransport2.txt",
        "basicbasetransport.bin",
        "cmdhandler_get.txt",
        "cmdhandler_put.txt",
        "resp.txt",
        "resp2.txt",
        "subcommands01.txt",
        "syncml_init.txt",
        "syncml_resp.txt",
        "syncml_resp2.txt",
        "syncml_resp3.txt",
        "syncml_resp4.txt",
        "syncml_resp5.txt",
        "testURI.txt",
        "transport_initrequest_nohdr.txt",
    ] {
        v.push(vectors.join("buteo-syncml/data").join(f));
    }
    v.extend(files_with("vectors/txsyncml/fixtures", ".xml"));
    v.extend(files_with("vectors/txsyncml/fixtures", ".wbxml"));
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(data_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------
// corpus
// ---------------------------------------------------------------------------------

#[test]
fn every_corpus_message_decodes_and_model_tree_model_is_identical() {
    let files = corpus();
    assert!(files.len() > 100, "corpus too small: {}", files.len());
    let mut failures = Vec::new();
    for p in &files {
        let name = rel(p);
        let bytes = std::fs::read(p).expect("readable");
        let root = match syncml_core::decode_document(&bytes) {
            Ok(d) => d.root,
            Err(e) => {
                failures.push(format!("{name}: decode_document: {e}"));
                continue;
            }
        };
        let msg = match SyncMl::from_element(root) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: from_element: {e}"));
                continue;
            }
        };
        match SyncMl::from_element(to_tree(&msg)) {
            Ok(again) if again == msg => {}
            Ok(_) => failures.push(format!("{name}: model -> tree -> model differs")),
            Err(e) => failures.push(format!("{name}: re-read: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The captures follow DTD order, so tree -> model -> tree must give back the very
/// tree the decoder produced (whitespace between elements is not in it). The one
/// exception is inside `DevInf`, where SyncEvolution writes `SupportNumberOfChanges`
/// before `SupportLargeObjs` (and `MaxOccur` after `ValEnum`) and the DevInf model
/// writes DTD order: there the original is first put in DTD order with
/// `normalize_dtd_order` (see the DevInf module docs, "Quirks").
#[test]
fn captured_xml_trees_are_reproduced_exactly() {
    let files = files_with("captures", ".xml");
    assert!(files.len() >= 80, "{}", files.len());
    let mut failures = Vec::new();
    for p in &files {
        let mut tree = tree_of(&std::fs::read(p).expect("readable"));
        normalize_dtd_order(&mut tree);
        let msg = match SyncMl::from_element(tree.clone()) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {e}", rel(p)));
                continue;
            }
        };
        let out = to_tree(&msg);
        if out != tree {
            failures.push(format!("{}: {}", rel(p), first_difference(&tree, &out)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// WBXML captures: decode -> model -> WBXML gives the captured bytes back. Messages
/// with a DevInf are compared with the encoding of the original tree put in DevInf DTD
/// order (see `captured_xml_trees_are_reproduced_exactly`); all others byte for byte
/// with the capture itself.
#[test]
fn captured_wbxml_reencodes_byte_identical() {
    let files = files_with("captures", ".wbxml");
    assert!(files.len() >= 35, "{}", files.len());
    let mut failures = Vec::new();
    let mut verbatim = 0;
    for p in &files {
        let captured = std::fs::read(p).expect("readable");
        let doc = syncml_core::decode_document(&captured).expect("captured WBXML decodes");
        let version = doc.wbxml.map_or(0x02, |h| h.version);
        let opts = syncml_core::wbxml::EncodeOptions::with_version(version);
        let mut tree = doc.root.clone();
        normalize_dtd_order(&mut tree);
        let bytes = if tree == doc.root {
            verbatim += 1;
            captured
        } else {
            syncml_core::wbxml::encode_element(&tree, opts).expect("re-encodes")
        };
        let msg = match SyncMl::from_element(doc.root) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: {e}", rel(p)));
                continue;
            }
        };
        let out = syncml_core::encode_wbxml(&msg, opts).expect("encodes");
        if out != bytes {
            failures.push(format!(
                "{}: {} bytes vs {} captured; tree: {}",
                rel(p),
                out.len(),
                bytes.len(),
                first_difference(&tree, &to_tree(&msg))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(verbatim >= 20, "only {verbatim} captures compared verbatim");
}

/// The Synthesis XML rendering of each WBXML capture decodes to the same model as
/// the WBXML itself (apart from the DevInf MIME type the rendering rewrites).
#[test]
fn synthesis_translation_matches_the_wbxml_model() {
    let mut failures = Vec::new();
    for p in files_with("captures", ".wbxml") {
        let s = p.to_string_lossy().to_string();
        let t = PathBuf::from(s.replace(".wbxml", ".synthesis-translation.xml"));
        if !t.exists() {
            continue;
        }
        let from_wbxml =
            SyncMl::from_element(tree_of(&std::fs::read(&p).expect("readable"))).expect("wbxml");
        let from_xml =
            SyncMl::from_element(tree_of(&std::fs::read(&t).expect("readable"))).expect("xml");
        if normalize_for_compare(from_wbxml) != normalize_for_compare(from_xml) {
            failures.push(rel(&p));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Text vs opaque is an encoding detail the translation does not keep.
fn normalize_for_compare(msg: SyncMl) -> SyncMl {
    fn data(d: &mut Data) {
        if let Data::Binary(b) = d {
            if let Ok(s) = String::from_utf8(b.clone()) {
                *d = Data::Text(s);
            }
        }
    }
    fn item(i: &mut Item) {
        if let Some(d) = &mut i.data {
            data(d);
        }
    }
    fn cmd(c: &mut Command) {
        match c {
            Command::Add(x) | Command::Copy(x) | Command::Move(x) | Command::Replace(x) => {
                x.items.iter_mut().for_each(item)
            }
            Command::Delete(x) => x.items.iter_mut().for_each(item),
            Command::Get(x) | Command::Put(x) => x.items.iter_mut().for_each(item),
            Command::Results(x) => x.items.iter_mut().for_each(item),
            Command::Status(x) => x.items.iter_mut().for_each(item),
            Command::Alert(x) => x.items.iter_mut().for_each(item),
            Command::Sync(x) => x.commands.iter_mut().for_each(cmd),
            Command::Atomic(x) | Command::Sequence(x) => x.commands.iter_mut().for_each(cmd),
            _ => {}
        }
    }
    let mut msg = msg;
    if let Some(c) = &mut msg.header.cred {
        data(&mut c.data);
    }
    msg.body.commands.iter_mut().for_each(cmd);
    let mut tree = to_tree(&msg);
    syncml_core::rewrite_devinf_type(&mut tree, syncml_core::Encoding::Wbxml);
    SyncMl::from_element(tree).expect("re-read")
}

fn first_difference(a: &Element, b: &Element) -> String {
    fn go(a: &Element, b: &Element, path: &mut Vec<String>) -> Option<String> {
        path.push(a.name.to_string());
        if a.name != b.name || a.ns != b.ns {
            return Some(format!(
                "{}: <{}> {:?} vs <{}> {:?}",
                path.join("/"),
                a.name,
                a.ns,
                b.name,
                b.ns
            ));
        }
        for (i, (x, y)) in a.children.iter().zip(&b.children).enumerate() {
            match (x, y) {
                (Node::Element(x), Node::Element(y)) => {
                    if let Some(d) = go(x, y, path) {
                        return Some(d);
                    }
                }
                (x, y) if x != y => {
                    return Some(format!("{} child {i}: {x:?} vs {y:?}", path.join("/")))
                }
                _ => {}
            }
        }
        if a.children.len() != b.children.len() {
            return Some(format!(
                "{}: {} children {:?} vs {} {:?}",
                path.join("/"),
                a.children.len(),
                names(a),
                b.children.len(),
                names(b)
            ));
        }
        path.pop();
        None
    }
    go(a, b, &mut Vec::new()).unwrap_or_else(|| "identical".into())
}

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

// ---------------------------------------------------------------------------------
// header and body rules
// ---------------------------------------------------------------------------------

const HDR: &str = "<SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>\
    <SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>srv</LocURI></Target>\
    <Source><LocURI>dev</LocURI></Source></SyncHdr>";

fn msg_with_body(body: &str) -> Result<SyncMl, ModelError> {
    xml_model(&format!(
        "<SyncML xmlns='SYNCML:SYNCML1.2'>{HDR}<SyncBody>{body}</SyncBody></SyncML>"
    ))
}

fn only_command(body: &str) -> Command {
    let mut m = msg_with_body(body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.body.commands.len(), 1);
    m.body.commands.remove(0)
}

#[test]
fn missing_msgid_is_an_error() {
    let err = xml_model(
        "<SyncML><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>\
         <SessionID>1</SessionID><Target><LocURI>a</LocURI></Target>\
         <Source><LocURI>b</LocURI></Source></SyncHdr><SyncBody/></SyncML>",
    )
    .unwrap_err();
    assert_eq!(
        err,
        ModelError::Missing {
            parent: "SyncHdr",
            child: "MsgID"
        }
    );
}

#[test]
fn missing_header_target_or_source_is_an_error() {
    let no_target = "<SyncML><SyncHdr><VerDTD>1.2</VerDTD><MsgID>1</MsgID>\
         <Source><LocURI>b</LocURI></Source></SyncHdr><SyncBody/></SyncML>";
    assert!(matches!(
        xml_model(no_target),
        Err(ModelError::Missing {
            parent: "SyncHdr",
            child: "Target"
        })
    ));
    let no_locuri = "<SyncML><SyncHdr><VerDTD>1.2</VerDTD><MsgID>1</MsgID><Target/>\
         <Source><LocURI>b</LocURI></Source></SyncHdr><SyncBody/></SyncML>";
    assert!(matches!(
        xml_model(no_locuri),
        Err(ModelError::Missing {
            parent: "Target",
            child: "LocURI"
        })
    ));
}

#[test]
fn empty_synchdr_decodes_with_empty_strings() {
    // Buteo resp2.txt: `<SyncHdr>\n</SyncHdr>`.
    let m = decode_rel("vectors/buteo-syncml/data/resp2.txt");
    assert_eq!(m.header, SyncHdr::default());
    assert_eq!(m.header.msg_id, "");
    assert_eq!(m.version(), SyncMlVersion::V1_2);
    assert_eq!(m.body.commands.len(), 1);
}

#[test]
fn body_only_document_gets_a_default_header() {
    // libwbxml syncml-013.xml has no SyncHdr at all.
    let m = decode_rel("vectors/libwbxml/syncml/syncml-013.xml");
    assert_eq!(m.header, SyncHdr::default());
    assert!(m.body.is_final);
    let Command::Sync(sync) = &m.body.commands[0] else {
        panic!("{:?}", m.body.commands[0])
    };
    assert_eq!(sync.cmd_id, "", "a Sync without CmdID is tolerated");
    assert_eq!(sync.commands[0].cmd_id(), "6");
}

#[test]
fn empty_session_id_is_fine() {
    for f in ["basicbasetransport.txt", "basicbasetransport.bin"] {
        let m = decode_rel(&format!("vectors/buteo-syncml/data/{f}"));
        assert_eq!(m.header.session_id, "", "{f}");
        assert_eq!(m.header.msg_id, "1", "{f}");
        assert!(m.body.commands.is_empty(), "{f}");
        assert!(!m.body.is_final, "{f}");
        // An empty SessionID is written as an empty element again.
        let t = to_tree(&m);
        assert!(child(&t, &["SyncHdr", "SessionID"]).is_empty());
        assert!(child(&t, &["SyncBody"]).is_empty());
    }
}

#[test]
fn buteo_invalid_responses_are_rejected_except_body_only() {
    for f in [
        "respinvalid2.txt",
        "respinvalid3.txt",
        "respinvalid5.txt",
        "respinvalid6.txt",
    ] {
        let root = tree_of(&read(&format!("vectors/buteo-syncml/data/{f}")));
        assert!(SyncMl::from_element(root).is_err(), "{f} must be refused");
    }
    // respinvalid4 is a body-only document, which we accept (libwbxml syncml-013).
    let m = decode_rel("vectors/buteo-syncml/data/respinvalid4.txt");
    assert_eq!(m.header, SyncHdr::default());
}

#[test]
fn missing_syncbody_is_an_error() {
    let err = xml_model(&format!("<SyncML>{HDR}</SyncML>")).unwrap_err();
    assert_eq!(
        err,
        ModelError::Missing {
            parent: "SyncML",
            child: "SyncBody"
        }
    );
}

#[test]
fn non_syncml_root_is_rejected() {
    let root = tree_of(&read("vectors/libwbxml/syncml/syncml-011.xml"));
    assert!(matches!(
        SyncMl::from_element(root),
        Err(ModelError::UnexpectedRoot { expected: "SyncML", found }) if found == "DevInf"
    ));
}

#[test]
fn root_namespace_spelling_does_not_matter() {
    // testURI.txt uses the non-standard `xmlns="syncml:syncml"`; resp.txt none at all.
    let m = decode_rel("vectors/buteo-syncml/data/testURI.txt");
    assert_eq!(m.header.msg_id, "3");
    assert_eq!(
        m.header.resp_uri.as_deref(),
        Some("http://82.77.123.71:8080/services/syncml?s=RYHmRQAA&srv_id=002")
    );
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    assert_eq!(m.header.msg_id, "5");
}

#[test]
fn version_comes_from_verdtd() {
    let m = decode_rel("captures/09-syncml11-slow-wbxml/01-msg001-c2s.wbxml");
    assert_eq!(m.header.ver_dtd, "1.1");
    assert_eq!(m.version(), SyncMlVersion::V1_1);
    let m = decode_rel("captures/02-twoway-xml/01-msg001-c2s.xml");
    assert_eq!(m.version(), SyncMlVersion::V1_2);
    let mut m = SyncMl::default();
    assert_eq!(m.version(), SyncMlVersion::V1_2);
    m.header.ver_dtd = " 1.0 ".into();
    assert_eq!(m.version(), SyncMlVersion::V1_0);
    m.header.ver_dtd = "9.9".into();
    assert_eq!(m.version(), SyncMlVersion::V1_2);
}

#[test]
fn header_is_written_in_dtd_order() {
    let mut h = SyncHdr::new(SyncMlVersion::V1_2, "7", "2", "http://srv", "IMEI:1");
    h.resp_uri = Some("http://srv?s=1".into());
    h.no_resp = true;
    h.meta = Some(Meta {
        max_msg_size: Some(5000),
        ..Meta::default()
    });
    h.cred = Some(Cred {
        meta: Some(Meta::of_type("syncml:auth-basic")),
        data: Data::Text("QnJ1Y2UyOk9oQmVoYXZl".into()),
    });
    h.target.loc_name = Some("user".into());
    let m = SyncMl {
        header: h,
        body: SyncBody {
            commands: vec![],
            is_final: true,
        },
    };
    let t = to_tree(&m);
    assert_eq!(t.name, "SyncML");
    assert_eq!(t.ns, Namespace::SyncMl);
    assert_eq!(names(&t), ["SyncHdr", "SyncBody"]);
    let hdr = child(&t, &["SyncHdr"]);
    assert_eq!(
        names(hdr),
        [
            "VerDTD",
            "VerProto",
            "SessionID",
            "MsgID",
            "Target",
            "Source",
            "RespURI",
            "NoResp",
            "Cred",
            "Meta"
        ]
    );
    assert_eq!(child(hdr, &["VerDTD"]).text().as_deref(), Some("1.2"));
    assert_eq!(
        child(hdr, &["VerProto"]).text().as_deref(),
        Some("SyncML/1.2")
    );
    assert_eq!(names(child(hdr, &["Target"])), ["LocURI", "LocName"]);
    assert!(child(hdr, &["NoResp"]).is_empty());
    assert_eq!(names(child(hdr, &["Cred"])), ["Meta", "Data"]);
    assert_eq!(child(&t, &["SyncBody", "Final"]).children, []);
    assert_eq!(SyncMl::from_element(t).expect("re-read"), m);
}

#[test]
fn body_final_may_appear_anywhere_on_input_and_is_written_last() {
    let m =
        msg_with_body("<Final/><Alert><CmdID>1</CmdID><Data>200</Data></Alert>").expect("decodes");
    assert!(m.body.is_final);
    assert_eq!(
        names(child(&to_tree(&m), &["SyncBody"])),
        ["Alert", "Final"]
    );
}

// ---------------------------------------------------------------------------------
// Status, Results, Alert
// ---------------------------------------------------------------------------------

#[test]
fn status_for_synchdr_has_cmdref_0() {
    let m = decode_rel("captures/02-twoway-xml/02-msg001-s2c.xml");
    let Command::Status(s) = &m.body.commands[0] else {
        panic!("first command is not a Status")
    };
    assert_eq!(s.cmd, "SyncHdr");
    assert_eq!(s.cmd_ref, "0");
    assert_eq!(s.msg_ref, "1");
    assert!(s.is_for_header());
    assert_eq!(s.target_refs, ["http://127.0.0.1:9011/syncevolution"]);
    assert_eq!(s.source_refs, ["syncevo-interop-client"]);

    let mut st = Status::new("1", "1", "0", "SyncHdr", StatusCode(212));
    st.target_refs.push("http://srv".into());
    st.source_refs.push("IMEI:1".into());
    let c = Command::Status(st);
    assert_eq!(c.name(), "Status");
    assert_eq!(c.cmd_id(), "1");
    let mut b = TreeBuilder::new();
    c.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(child(&el, &["CmdRef"]).text().as_deref(), Some("0"));
    assert_eq!(child(&el, &["Cmd"]).text().as_deref(), Some("SyncHdr"));
    assert_eq!(child(&el, &["Data"]).text().as_deref(), Some("212"));
}

#[test]
fn status_is_written_in_dtd_order() {
    // Input in a scrambled order (resp.txt-like) comes out in DTD order.
    let c = only_command(
        "<Status><Item><Source><LocURI>x</LocURI></Source></Item><Data>200</Data>\
         <Chal><Meta><Type xmlns='syncml:metinf'>syncml:auth-md5</Type></Meta></Chal>\
         <SourceRef>s1</SourceRef><TargetRef>t1</TargetRef><SourceRef>s2</SourceRef>\
         <Cmd>Add</Cmd><CmdRef>3</CmdRef><MsgRef>2</MsgRef><CmdID>4</CmdID></Status>",
    );
    let Command::Status(s) = &c else { panic!() };
    assert_eq!(s.source_refs, ["s1", "s2"]);
    assert_eq!(s.target_refs, ["t1"]);
    assert_eq!(s.data, StatusCode(200));
    let mut b = TreeBuilder::new();
    c.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(
        names(&el),
        [
            "CmdID",
            "MsgRef",
            "CmdRef",
            "Cmd",
            "TargetRef",
            "SourceRef",
            "SourceRef",
            "Chal",
            "Data",
            "Item"
        ]
    );
    assert_eq!(Command::from_element(el).expect("re-read"), c);
}

#[test]
fn missing_status_parts_are_errors() {
    for (body, child_name) in [
        (
            "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd></Status>",
            "Data",
        ),
        (
            "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><Cmd>SyncHdr</Cmd><Data>200</Data></Status>",
            "CmdRef",
        ),
        (
            "<Status><CmdID>1</CmdID><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd><Data>200</Data></Status>",
            "MsgRef",
        ),
        (
            "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Data>200</Data></Status>",
            "Cmd",
        ),
    ] {
        assert_eq!(
            msg_with_body(body).unwrap_err(),
            ModelError::Missing {
                parent: "Status",
                child: child_name
            }
        );
    }
}

#[test]
fn status_code_must_be_a_number() {
    let err = msg_with_body(
        "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>\
         <Data>OK</Data></Status>",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Invalid {
                element: "Data",
                ..
            }
        ),
        "{err}"
    );
    // Whitespace around the code is fine.
    let Command::Status(s) = only_command(
        "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>\
         <Data>\n 212 </Data></Status>",
    ) else {
        panic!()
    };
    assert_eq!(s.data, StatusCode(212));
}

#[test]
fn status_item_anchor_is_data_anchor() {
    let m = decode_rel("vectors/buteo-syncml/data/resp2.txt");
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    assert_eq!(
        s.items[0].data,
        Some(Data::Anchor(Anchor {
            last: None,
            next: "276".into()
        }))
    );
    // Written back as <Data><Anchor xmlns='syncml:metinf'><Next>.
    let t = to_tree(&m);
    let anchor = child(&t, &["SyncBody", "Status", "Item", "Data", "Anchor"]);
    assert_eq!(anchor.ns, Namespace::MetInf);
    assert_eq!(child(anchor, &["Next"]).ns, Namespace::MetInf);
    assert_eq!(child(anchor, &["Next"]).text().as_deref(), Some("276"));
    // Same in a capture.
    let m = decode_rel("captures/01-slow-wbxml-md5/02-msg001-s2c.wbxml");
    let anchors = m
        .body
        .commands
        .iter()
        .flat_map(|c| c.items())
        .filter(|i| matches!(i.data, Some(Data::Anchor(_))))
        .count();
    assert_eq!(anchors, 2);
}

#[test]
fn results_without_msgref_defaults_to_1() {
    let c = only_command(
        "<Results><CmdID>4</CmdID><CmdRef>3</CmdRef>\
         <Item><Source><LocURI>./devinf12</LocURI></Source><Data>x</Data></Item></Results>",
    );
    let Command::Results(r) = &c else { panic!() };
    assert_eq!(r.msg_ref, "1");
    assert_eq!(r.cmd_ref, "3");
    assert_eq!(Results::default().msg_ref, "1");
    // The MsgRef is written explicitly.
    let mut b = TreeBuilder::new();
    c.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(names(&el), ["CmdID", "MsgRef", "CmdRef", "Item"]);
    assert_eq!(child(&el, &["MsgRef"]).text().as_deref(), Some("1"));
    // Buteo resp.txt: a Results with neither CmdID, MsgRef nor CmdRef.
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    let r = m
        .body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Results(r) => Some(r),
            _ => None,
        })
        .expect("a Results");
    assert_eq!(
        (r.cmd_id.as_str(), r.msg_ref.as_str(), r.cmd_ref.as_str()),
        ("", "1", "")
    );
}

#[test]
fn results_are_written_in_dtd_order() {
    let r = Results {
        cmd_id: "4".into(),
        msg_ref: "1".into(),
        cmd_ref: "3".into(),
        meta: Some(Meta::of_type("application/vnd.syncml-devinf+xml")),
        target_ref: Some("t".into()),
        source_ref: Some("./devinf12".into()),
        items: vec![Item::default()],
    };
    let mut b = TreeBuilder::new();
    r.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(
        names(&el),
        [
            "CmdID",
            "MsgRef",
            "CmdRef",
            "Meta",
            "TargetRef",
            "SourceRef",
            "Item"
        ]
    );
    assert_eq!(
        Command::from_element(el).expect("re-read"),
        Command::Results(r)
    );
}

#[test]
fn unknown_alert_code_390001_is_tolerated() {
    let c = only_command(
        "<Alert><CmdID>3</CmdID><Data>390001</Data><Item><Target><LocURI>addressbook</LocURI>\
         </Target><Source><LocURI>./addressbook</LocURI></Source></Item></Alert>",
    );
    let Command::Alert(a) = &c else { panic!() };
    assert_eq!(a.data, Some(AlertCode(390001)));
    let mut b = TreeBuilder::new();
    c.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(child(&el, &["Data"]).text().as_deref(), Some("390001"));
    assert_eq!(Command::from_element(el).expect("re-read"), c);
}

#[test]
fn alert_is_written_in_dtd_order() {
    let a = Alert {
        cmd_id: "1".into(),
        no_resp: true,
        cred: Some(Box::new(Cred {
            meta: None,
            data: "x".into(),
        })),
        data: Some(AlertCode(200)),
        correlator: Some("c1".into()),
        items: vec![Item::default(), Item::default()],
    };
    let mut b = TreeBuilder::new();
    Command::Alert(a.clone()).write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(
        names(&el),
        [
            "CmdID",
            "NoResp",
            "Cred",
            "Data",
            "Correlator",
            "Item",
            "Item"
        ]
    );
    assert_eq!(
        Command::from_element(el).expect("re-read"),
        Command::Alert(a)
    );
    // An Alert without Data (allowed by the DTD).
    let Command::Alert(a) = only_command("<Alert><CmdID>1</CmdID></Alert>") else {
        panic!()
    };
    assert_eq!(a.data, None);
}

#[test]
fn command_fragment_decodes() {
    // Buteo testAlert.txt: a lone <Alert>, code in CDATA, CmdID -1, MetInf elements
    // repeating their xmlns.
    let c = Command::from_element(tree_of(&read("vectors/buteo-syncml/data/testAlert.txt")))
        .expect("decodes");
    let Command::Alert(a) = &c else { panic!() };
    assert_eq!(a.cmd_id, "-1");
    assert_eq!(a.data, Some(AlertCode(201)));
    let meta = a.items[0].meta.as_ref().expect("meta");
    assert_eq!(
        meta.anchor,
        Some(Anchor {
            last: Some("12345678".into()),
            next: "12345679".into()
        })
    );
    assert_eq!(meta.r#type.as_deref(), Some("text"));
    // Not a command.
    assert!(matches!(
        Command::from_element(Element::new(Namespace::SyncMl, "Item")),
        Err(ModelError::UnexpectedRoot { .. })
    ));
    // A lone Item (testItem.txt).
    let item =
        Item::from_element(tree_of(&read("vectors/buteo-syncml/data/testItem.txt"))).expect("item");
    assert!(item.target.is_some() || item.source.is_some() || item.data.is_some());
}

// ---------------------------------------------------------------------------------
// Items and Data
// ---------------------------------------------------------------------------------

#[test]
fn item_is_written_in_dtd_order_with_parent_locuris() {
    // Buteo resp.txt: SourceParent / TargetParent.
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    let Some(Command::Sync(sync)) = m.body.commands.iter().find(|c| c.name() == "Sync") else {
        panic!()
    };
    let add = &sync.commands[0];
    assert_eq!(add.items()[0].source_parent.as_deref(), Some("1"));
    let replace = &sync.commands[1];
    assert_eq!(replace.items()[0].target_parent.as_deref(), Some("245"));

    let item = Item {
        target: Some(Target::new("t")),
        source: Some(Source::new("s")),
        source_parent: Some("sp".into()),
        target_parent: Some("tp".into()),
        meta: Some(Meta::of_type("text/plain")),
        data: Some("hello".into()),
        more_data: true,
    };
    let mut b = TreeBuilder::new();
    item.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(
        names(&el),
        [
            "Target",
            "Source",
            "SourceParent",
            "TargetParent",
            "Meta",
            "Data",
            "MoreData"
        ]
    );
    assert_eq!(names(child(&el, &["SourceParent"])), ["LocURI"]);
    assert_eq!(
        child(&el, &["TargetParent", "LocURI"]).text().as_deref(),
        Some("tp")
    );
    assert!(child(&el, &["MoreData"]).is_empty());
    assert_eq!(Item::from_element(el).expect("re-read"), item);
}

#[test]
fn data_text_is_kept_exactly() {
    // resp.txt: the vCard starts with a newline and is indented by nothing.
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    let Some(Command::Sync(sync)) = m.body.commands.iter().find(|c| c.name() == "Sync") else {
        panic!()
    };
    let Some(Data::Text(t)) = &sync.commands[0].items()[0].data else {
        panic!()
    };
    assert!(t.starts_with("\nBEGIN:VCARD\nVERSION:2.1\n"), "{t:?}");
    assert!(t.ends_with("END:VCARD"), "{t:?}");
    // Surrounding whitespace is data too.
    let Command::Add(add) =
        only_command("<Add><CmdID>1</CmdID><Item><Data>  two spaces  </Data></Item></Add>")
    else {
        panic!()
    };
    assert_eq!(add.items[0].data, Some(Data::Text("  two spaces  ".into())));
}

#[test]
fn cdata_becomes_binary_and_is_written_as_opaque() {
    let m = decode_rel("vectors/libwbxml/syncml/syncml-014.xml");
    let Command::Sync(sync) = &m.body.commands[0] else {
        panic!()
    };
    let data = sync.commands[0].items()[0].data.as_ref().expect("data");
    assert!(matches!(data, Data::Binary(_)));
    assert!(data.as_text().expect("utf-8").contains("BEGIN:VCARD"));
    let t = to_tree(&m);
    let d = child(&t, &["SyncBody", "Sync", "Add", "Item", "Data"]);
    assert!(matches!(d.children.as_slice(), [Node::Opaque(_)]));
    // The same vCard without CDATA is text (syncml-013).
    let m = decode_rel("vectors/libwbxml/syncml/syncml-013.xml");
    let Command::Sync(sync) = &m.body.commands[0] else {
        panic!()
    };
    assert!(matches!(
        sync.commands[0].items()[0].data,
        Some(Data::Text(_))
    ));
}

#[test]
fn mixed_character_data_is_merged() {
    let data = |xml: &str| {
        let Command::Add(mut a) =
            only_command(&format!("<Add><CmdID>1</CmdID><Item>{xml}</Item></Add>"))
        else {
            panic!()
        };
        a.items.remove(0).data.expect("data")
    };
    // Pretty-printed CDATA: the whitespace around it is formatting.
    assert_eq!(
        data("<Data>\n  <![CDATA[abc]]>\n</Data>"),
        Data::Binary(b"abc".to_vec())
    );
    assert_eq!(
        data("<Data>x<![CDATA[<y>]]>z</Data>"),
        Data::Text("x<y>z".into())
    );
    assert_eq!(data("<Data/>"), Data::Text(String::new()));
    assert_eq!(data("<Data>a&amp;b</Data>"), Data::Text("a&b".into()));
}

/// Found by the `message_roundtrip` fuzz target: text next to an opaque part holding a
/// NUL byte used to merge into `Data::Text`, which WBXML can only write as OPAQUE, so it
/// came back as `Data::Binary`.
#[test]
fn character_data_with_nul_is_binary_and_survives_wbxml() {
    let el = Element {
        ns: Namespace::SyncMl,
        name: "Data".into(),
        children: vec![Node::Text("BEGIN:".into()), Node::Opaque(b"x\0y".to_vec())],
    };
    let d = Data::from_element(el);
    assert_eq!(d, Data::Binary(b"BEGIN:x\0y".to_vec()));
    let mut b = TreeBuilder::new();
    d.write(&mut b);
    assert_eq!(Data::from_element(b.finish().expect("balanced")), d);
}

#[test]
fn data_variants_round_trip_and_measure() {
    for d in [
        Data::Text(String::new()),
        Data::Text(" x ".into()),
        Data::Binary(vec![]),
        Data::Binary(vec![0, 159, 255]),
        Data::Anchor(Anchor {
            last: Some("1".into()),
            next: "2".into(),
        }),
        Data::Markup(vec![Element::with_text(
            Namespace::Other("syncml:dmddf1.2".into()),
            "MgmtTree",
            "x",
        )]),
    ] {
        let mut b = TreeBuilder::new();
        d.write(&mut b);
        let el = b.finish().expect("balanced");
        assert_eq!(el.name, "Data");
        assert_eq!(Data::from_element(el), d);
    }
    assert_eq!(Data::Text("héllo".into()).len(), 6);
    assert_eq!(Data::Binary(vec![1, 2]).as_bytes(), Some(&[1u8, 2][..]));
    assert!(Data::Text(String::new()).is_empty());
    assert_eq!(Data::Anchor(Anchor::default()).as_bytes(), None);
    assert_eq!(Data::Anchor(Anchor::default()).len(), 0);
    assert!(!Data::Markup(vec![]).is_empty());
}

#[test]
fn devinf_in_data_is_data_devinf() {
    for f in [
        "captures/02-twoway-xml/01-msg001-c2s.xml",
        "captures/01-slow-wbxml-md5/01-msg001-c2s.wbxml",
    ] {
        let m = decode_rel(f);
        let Some(Command::Put(put)) = m.body.commands.iter().find(|c| c.name() == "Put") else {
            panic!("{f}: no Put")
        };
        let Some(Data::DevInf(d)) = &put.items[0].data else {
            panic!("{f}: {:?}", put.items[0].data)
        };
        assert_eq!(d.ver_dtd, "1.2", "{f}");
        assert!(!d.data_stores.is_empty(), "{f}");
        assert_eq!(
            put.meta.as_ref().and_then(|m| m.r#type.as_deref()),
            Some(if f.ends_with(".wbxml") {
                "application/vnd.syncml-devinf+wbxml"
            } else {
                "application/vnd.syncml-devinf+xml"
            })
        );
        let t = to_tree(&m);
        let dev = child(&t, &["SyncBody", "Put", "Item", "Data", "DevInf"]);
        assert_eq!(dev.ns, Namespace::DevInf);
    }
}

#[test]
fn unreadable_devinf_is_kept_as_markup() {
    // Buteo resp.txt: <Results><Item><Data><DevInf><SupportLargeObjs/></DevInf> has no
    // DevID: the message still decodes and the DevInf is kept verbatim.
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    let Some(Command::Results(r)) = m.body.commands.iter().find(|c| c.name() == "Results") else {
        panic!()
    };
    let Some(Data::Markup(els)) = &r.items[0].data else {
        panic!("{:?}", r.items[0].data)
    };
    assert_eq!(els[0].name, "DevInf");
    assert_eq!(els[0].ns, Namespace::DevInf);
}

#[test]
fn foreign_markup_in_data_is_kept() {
    let m = decode_rel("vectors/libwbxml/ddf/syncml_with_ddf-001.xml");
    let trees: Vec<&Element> = m
        .body
        .commands
        .iter()
        .flat_map(|c| c.commands().iter().chain(std::iter::once(c)))
        .flat_map(|c| c.items())
        .filter_map(|i| match &i.data {
            Some(Data::Markup(els)) => els.first(),
            _ => None,
        })
        .collect();
    assert_eq!(trees.len(), 1);
    assert_eq!(trees[0].name, "MgmtTree");
    assert_eq!(trees[0].ns, Namespace::Other("syncml:dmddf1.2".into()));
}

// ---------------------------------------------------------------------------------
// Meta / MetInf
// ---------------------------------------------------------------------------------

fn full_meta() -> Meta {
    Meta {
        field_level: true,
        format: Some("b64".into()),
        r#type: Some("text/x-vcard".into()),
        mark: Some("draft".into()),
        size: Some(1234),
        anchor: Some(Anchor {
            last: Some("20240101T000000Z".into()),
            next: "20240102T000000Z".into(),
        }),
        version: Some("3".into()),
        next_nonce: Some("Tm9uY2U=".into()),
        max_msg_size: Some(150_000),
        max_obj_size: Some(4_000_000),
        emi: vec!["x-one".into(), "x-two".into()],
        mem: Some(Mem {
            shared_mem: true,
            free_mem: 8100,
            free_id: 81,
        }),
    }
}

#[test]
fn metinf_is_written_in_dtd_order_and_namespace() {
    let meta = full_meta();
    let mut b = TreeBuilder::new();
    meta.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(el.name, "Meta");
    assert_eq!(el.ns, Namespace::SyncMl);
    assert_eq!(
        names(&el),
        [
            "FieldLevel",
            "Format",
            "Type",
            "Mark",
            "Size",
            "Anchor",
            "Version",
            "NextNonce",
            "MaxMsgSize",
            "MaxObjSize",
            "EMI",
            "EMI",
            "Mem"
        ]
    );
    assert!(el.elements().all(|e| e.ns == Namespace::MetInf));
    assert!(child(&el, &["FieldLevel"]).is_empty());
    assert_eq!(names(child(&el, &["Anchor"])), ["Last", "Next"]);
    assert!(child(&el, &["Anchor"])
        .elements()
        .all(|e| e.ns == Namespace::MetInf));
    let mem = child(&el, &["Mem"]);
    assert_eq!(names(mem), ["SharedMem", "FreeMem", "FreeID"]);
    assert!(child(mem, &["SharedMem"]).is_empty());
    assert!(mem.elements().all(|e| e.ns == Namespace::MetInf));
    assert_eq!(child(&el, &["Size"]).text().as_deref(), Some("1234"));
    assert_eq!(Meta::from_element(el).expect("re-read"), meta);
    assert!(Meta::default().is_empty());
    assert!(!meta.is_empty());
}

#[test]
fn metinf_children_in_any_order_are_accepted() {
    // resp.txt's Chal has Type before Format.
    let m = decode_rel("vectors/buteo-syncml/data/resp.txt");
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    let chal = s.chal.as_ref().expect("chal");
    assert_eq!(chal.meta.r#type.as_deref(), Some("syncml:auth-md5"));
    assert_eq!(chal.meta.format.as_deref(), Some("b64"));
    assert_eq!(chal.meta.next_nonce.as_deref(), Some("ZG9iZWhhdmUNCg=="));
    let mut b = TreeBuilder::new();
    chal.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(
        names(child(&el, &["Meta"])),
        ["Format", "Type", "NextNonce"]
    );

    // Reversed DTD order, MetInf without xmlns, and a <MetInf> wrapper.
    let meta = Meta::from_element(tree_of(
        b"<Meta><Mem><FreeID>81</FreeID><FreeMem>8100</FreeMem><SharedMem/></Mem>\
          <EMI>x-one</EMI><MaxObjSize>4000000</MaxObjSize><MaxMsgSize>150000</MaxMsgSize>\
          <MetInf><NextNonce>Tm9uY2U=</NextNonce><Version>3</Version></MetInf>\
          <Anchor><Next>20240102T000000Z</Next><Last>20240101T000000Z</Last></Anchor>\
          <Size> 1234 </Size><Mark>draft</Mark><Type>text/x-vcard</Type><Format>b64</Format>\
          <FieldLevel/><EMI>x-two</EMI><Unknown>z</Unknown></Meta>",
    ))
    .expect("decodes");
    assert_eq!(meta, full_meta());
}

#[test]
fn identifiers_and_anchors_are_trimmed() {
    // syncml-005.xml (SP11 example) has the anchor `200005022T093223Z `.
    let m = decode_rel("vectors/libwbxml/syncml/syncml-005.xml");
    let json = format!("{m:?}");
    assert!(!json.contains("093223Z \""), "anchor not trimmed");
    let m = xml_model(
        "<SyncML><SyncHdr><VerDTD> 1.1 </VerDTD><VerProto>\nSyncML/1.1\n</VerProto>\
         <SessionID> 4 </SessionID><MsgID> 2 </MsgID>\
         <Target><LocURI> http://www.syncml.org/sync-server </LocURI></Target>\
         <Source><LocURI>\tIMEI:493005100592800\t</LocURI><LocName> bruce </LocName></Source>\
         </SyncHdr><SyncBody><Status><CmdID> 1 </CmdID><MsgRef> 1</MsgRef><CmdRef>0 </CmdRef>\
         <Cmd> SyncHdr </Cmd><SourceRef> http://www.syncml.org/sync-server</SourceRef>\
         <Data> 200 </Data></Status></SyncBody></SyncML>",
    )
    .expect("decodes");
    assert_eq!(m.header.ver_dtd, "1.1");
    assert_eq!(m.version(), SyncMlVersion::V1_1);
    assert_eq!(m.header.ver_proto, "SyncML/1.1");
    assert_eq!(m.header.session_id, "4");
    assert_eq!(m.header.msg_id, "2");
    assert_eq!(m.header.target.loc_uri, "http://www.syncml.org/sync-server");
    assert_eq!(m.header.source.loc_uri, "IMEI:493005100592800");
    assert_eq!(m.header.source.loc_name.as_deref(), Some("bruce"));
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    assert_eq!(
        (
            s.cmd_id.as_str(),
            s.msg_ref.as_str(),
            s.cmd_ref.as_str(),
            s.cmd.as_str()
        ),
        ("1", "1", "0", "SyncHdr")
    );
    assert_eq!(s.source_refs, ["http://www.syncml.org/sync-server"]);
}

#[test]
fn bad_numbers_and_missing_metinf_parts_are_errors() {
    let meta = |xml: &str| Meta::from_element(tree_of(xml.as_bytes()));
    assert!(matches!(
        meta("<Meta><MaxMsgSize>lots</MaxMsgSize></Meta>"),
        Err(ModelError::Invalid {
            element: "MaxMsgSize",
            ..
        })
    ));
    assert_eq!(
        meta("<Meta><Anchor><Last>1</Last></Anchor></Meta>"),
        Err(ModelError::Missing {
            parent: "Anchor",
            child: "Next"
        })
    );
    assert_eq!(
        meta("<Meta><Mem><FreeMem>1</FreeMem></Mem></Meta>"),
        Err(ModelError::Missing {
            parent: "Mem",
            child: "FreeID"
        })
    );
    let err = msg_with_body("<Sync><CmdID>1</CmdID><NumberOfChanges>-3</NumberOfChanges></Sync>")
        .unwrap_err();
    assert!(matches!(
        err,
        ModelError::Invalid {
            element: "NumberOfChanges",
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------
// credentials
// ---------------------------------------------------------------------------------

#[test]
fn credentials_and_challenges_from_captures() {
    let m = decode_rel("captures/08-basic-auth-slow-xml/01-msg001-c2s.xml");
    let cred = m.header.cred.as_ref().expect("cred");
    assert_eq!(cred.data.as_text(), Some("dGVzdDpzZWNyZXQ="));
    let meta = cred.meta.as_ref().expect("meta");
    assert_eq!(meta.r#type.as_deref(), Some("syncml:auth-basic"));
    assert_eq!(meta.format.as_deref(), Some("b64"));

    let m = decode_rel("captures/01-slow-wbxml-md5/01-msg001-c2s.wbxml");
    let cred = m.header.cred.as_ref().expect("cred");
    assert_eq!(cred.data.as_text(), Some("MraccrRHny5AADBfmPIGpQ=="));
    assert_eq!(
        cred.meta.as_ref().and_then(|m| m.r#type.as_deref()),
        Some("syncml:auth-md5")
    );
    assert_eq!(
        m.header.meta.as_ref().and_then(|m| m.max_msg_size),
        Some(150_000)
    );

    let m = decode_rel("captures/10-md5-401-then-retry-xml/02-msg001-s2c.xml");
    let Command::Status(s) = &m.body.commands[0] else {
        panic!()
    };
    assert_eq!(s.data, StatusCode(401));
    let chal = s.chal.as_ref().expect("chal");
    assert_eq!(chal.meta.next_nonce.as_deref(), Some("XzA+LVsjISE="));
    assert_eq!(chal.meta.r#type.as_deref(), Some("syncml:auth-md5"));
}

#[test]
fn cred_needs_data_and_chal_needs_meta() {
    assert_eq!(
        Cred::from_element(tree_of(
            b"<Cred><Meta><Type>syncml:auth-basic</Type></Meta></Cred>"
        )),
        Err(ModelError::Missing {
            parent: "Cred",
            child: "Data"
        })
    );
    assert_eq!(
        Chal::from_element(tree_of(b"<Chal/>")),
        Err(ModelError::Missing {
            parent: "Chal",
            child: "Meta"
        })
    );
    // Raw digest bytes (WBXML OPAQUE) stay bytes.
    let mut cred = Element::new(Namespace::SyncMl, "Cred");
    let mut data = Element::new(Namespace::SyncMl, "Data");
    data.children
        .push(Node::Opaque(vec![0xde, 0xad, 0xbe, 0xef]));
    cred.push(data);
    let c = Cred::from_element(cred).expect("decodes");
    assert_eq!(c.data, Data::Binary(vec![0xde, 0xad, 0xbe, 0xef]));
    assert_eq!(c.meta, None);
}

// ---------------------------------------------------------------------------------
// the other commands
// ---------------------------------------------------------------------------------

fn round_trip(c: &Command) -> Element {
    let mut b = TreeBuilder::new();
    c.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(el.name, c.name());
    assert_eq!(&Command::from_element(el.clone()).expect("re-read"), c);
    el
}

#[test]
fn unknown_elements_are_skipped() {
    let plain = msg_with_body(
        "<Alert><CmdID>1</CmdID><Data>200</Data><Item><Target><LocURI>a</LocURI></Target>\
         <Meta><Anchor xmlns='syncml:metinf'><Next>1</Next></Anchor></Meta></Item></Alert>\
         <Final/>",
    )
    .expect("decodes");
    let noisy = xml_model(
        "<SyncML xmlns='SYNCML:SYNCML1.2' xmlns:x='urn:x'><x:Extra>1</x:Extra>\
         <SyncHdr><VerDTD>1.2</VerDTD><x:Hdr/><VerProto>SyncML/1.2</VerProto>\
         <SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>srv</LocURI><Bogus/></Target>\
         <Source><LocURI>dev</LocURI></Source><Whatever>x</Whatever></SyncHdr>\
         <SyncBody><Unknown><CmdID>9</CmdID></Unknown><Alert><CmdID>1</CmdID><Foo/>\
         <Data>200</Data><Item><Target><LocURI>a</LocURI></Target><Bar>b</Bar>\
         <Meta><Anchor xmlns='syncml:metinf'><Next>1</Next><Prev>0</Prev></Anchor>\
         <Colour xmlns='syncml:metinf'>red</Colour></Meta></Item></Alert>\
         <Final/><Trailer/></SyncBody><x:After/></SyncML>",
    )
    .expect("decodes");
    assert_eq!(noisy, plain);
}

#[test]
fn flags_are_accepted_in_any_order_and_written_as_empty_elements() {
    let c = only_command(
        "<Delete><Item><Target><LocURI>1</LocURI></Target></Item><SftDel/><Meta>\
         <Type xmlns='syncml:metinf'>text/vcard</Type></Meta><Archive>yes</Archive>\
         <NoResp/><CmdID>5</CmdID></Delete>",
    );
    let Command::Delete(d) = &c else { panic!() };
    assert!(d.no_resp && d.archive && d.sft_del);
    assert!(c.no_resp());
    let el = round_trip(&c);
    assert_eq!(
        names(&el),
        ["CmdID", "NoResp", "Archive", "SftDel", "Meta", "Item"]
    );
    for f in ["NoResp", "Archive", "SftDel"] {
        assert!(child(&el, &[f]).is_empty(), "{f}");
    }
}

#[test]
fn item_commands_round_trip() {
    let item = Item {
        source: Some(Source::new("1")),
        data: Some("BEGIN:VCARD\r\nEND:VCARD\r\n".into()),
        ..Item::default()
    };
    let base = ItemCommand {
        cmd_id: "3".into(),
        no_resp: true,
        cred: Some(Box::new(Cred {
            meta: Some(Meta::of_type("syncml:auth-basic")),
            data: "QQ==".into(),
        })),
        meta: Some(Meta::of_type("text/x-vcard")),
        items: vec![item.clone(), item],
    };
    for c in [
        Command::Add(base.clone()),
        Command::Copy(base.clone()),
        Command::Move(base.clone()),
        Command::Replace(base.clone()),
    ] {
        let el = round_trip(&c);
        assert_eq!(
            names(&el),
            ["CmdID", "NoResp", "Cred", "Meta", "Item", "Item"]
        );
        assert_eq!(c.items().len(), 2);
    }
    let gp = GetPut {
        cmd_id: "2".into(),
        no_resp: false,
        lang: Some("en".into()),
        cred: None,
        meta: Some(Meta::of_type("application/vnd.syncml-devinf+xml")),
        items: vec![Item {
            target: Some(Target::new("./devinf12")),
            ..Item::default()
        }],
    };
    for c in [Command::Get(gp.clone()), Command::Put(gp.clone())] {
        let el = round_trip(&c);
        assert_eq!(names(&el), ["CmdID", "Lang", "Meta", "Item"]);
    }
}

#[test]
fn map_round_trips_and_requires_target_and_source() {
    let m = decode_rel("captures/02-twoway-xml/05-msg003-c2s.xml");
    let Some(Command::Map(map)) = m.body.commands.iter().find(|c| c.name() == "Map") else {
        panic!()
    };
    assert_eq!(map.target.loc_uri, "addressbook");
    assert_eq!(map.source.loc_uri, "./addressbook");
    assert_eq!(map.map_items, [MapItem::new("carol", "1")]);
    assert!(Command::Map(map.clone()).items().is_empty());

    let c = Command::Map(Map {
        cmd_id: "6".into(),
        target: Target::new("srv-db"),
        source: Source::new("dev-db"),
        cred: None,
        meta: Some(Meta {
            max_obj_size: Some(1),
            ..Meta::default()
        }),
        map_items: vec![MapItem::new("g1", "l1"), MapItem::new("g2", "l2")],
    });
    let el = round_trip(&c);
    assert_eq!(
        names(&el),
        ["CmdID", "Target", "Source", "Meta", "MapItem", "MapItem"]
    );
    assert_eq!(
        msg_with_body("<Map><CmdID>1</CmdID><Source><LocURI>a</LocURI></Source></Map>")
            .unwrap_err(),
        ModelError::Missing {
            parent: "Map",
            child: "Target"
        }
    );
    assert_eq!(
        msg_with_body(
            "<Map><CmdID>1</CmdID><Target><LocURI>a</LocURI></Target>\
             <Source><LocURI>b</LocURI></Source><MapItem><Target><LocURI>c</LocURI></Target>\
             </MapItem></Map>"
        )
        .unwrap_err(),
        ModelError::Missing {
            parent: "MapItem",
            child: "Source"
        }
    );
}

#[test]
fn sync_round_trips_in_dtd_order() {
    let c = Command::Sync(Sync {
        cmd_id: "5".into(),
        no_resp: true,
        cred: None,
        target: Some(Target::new("addressbook")),
        source: Some(Source::new("./addressbook")),
        meta: Some(Meta {
            mem: Some(Mem {
                shared_mem: false,
                free_mem: 8100,
                free_id: 81,
            }),
            ..Meta::default()
        }),
        number_of_changes: Some(2),
        commands: vec![
            Command::Delete(Delete {
                cmd_id: "6".into(),
                items: vec![Item {
                    source: Some(Source::new("alice.vcf")),
                    ..Item::default()
                }],
                ..Delete::default()
            }),
            Command::Atomic(Container {
                cmd_id: "7".into(),
                commands: vec![Command::Add(ItemCommand {
                    cmd_id: "8".into(),
                    items: vec![Item::default()],
                    ..ItemCommand::default()
                })],
                ..Container::default()
            }),
        ],
    });
    let el = round_trip(&c);
    assert_eq!(
        names(&el),
        [
            "CmdID",
            "NoResp",
            "Target",
            "Source",
            "Meta",
            "NumberOfChanges",
            "Delete",
            "Atomic"
        ]
    );
    assert_eq!(c.commands().len(), 2);
    assert!(c.items().is_empty());
    // An empty Sync (capture 02: the calendar has no changes).
    let m = decode_rel("captures/02-twoway-xml/03-msg002-c2s.xml");
    let syncs: Vec<&Sync> = m
        .body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Sync(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(syncs.len(), 2);
    assert!(syncs[1].commands.is_empty());
    assert_eq!(syncs[0].commands[0].name(), "Delete");
    assert_eq!(syncs[0].commands[1].name(), "Replace");
}

#[test]
fn atomic_and_sequence_nest_commands() {
    let m = decode_rel("vectors/buteo-syncml/data/subcommands01.txt");
    let atomic = m
        .body
        .commands
        .iter()
        .find(|c| c.name() == "Atomic")
        .expect("Atomic");
    let Command::Atomic(a) = atomic else { panic!() };
    assert!(a.no_resp);
    assert_eq!(
        a.commands.iter().map(Command::name).collect::<Vec<_>>(),
        ["Alert", "Add"]
    );
    let Command::Alert(alert) = &a.commands[0] else {
        panic!()
    };
    assert_eq!(alert.data, Some(AlertCode(206)));
    let seq = m
        .body
        .commands
        .iter()
        .find(|c| c.name() == "Sequence")
        .expect("Sequence");
    assert!(seq.no_resp());
    assert!(!seq.commands().is_empty());
    let el = round_trip(seq);
    assert_eq!(&names(&el)[..2], ["CmdID", "NoResp"]);
    // Atomic inside Sync (resp.txt style) and Sequence with Meta.
    let c = Command::Sequence(Container {
        cmd_id: "1".into(),
        no_resp: false,
        meta: Some(Meta::of_type("text/plain")),
        commands: vec![Command::Atomic(Container {
            cmd_id: "2".into(),
            commands: vec![Command::Alert(Alert {
                cmd_id: "3".into(),
                data: Some(AlertCode(222)),
                ..Alert::default()
            })],
            ..Container::default()
        })],
    });
    let el = round_trip(&c);
    assert_eq!(names(&el), ["CmdID", "Meta", "Atomic"]);
}

#[test]
fn exec_and_search_round_trip() {
    let exec = Command::Exec(Exec {
        cmd_id: "4".into(),
        no_resp: true,
        cred: None,
        meta: Some(Meta::of_type("text/plain")),
        correlator: Some("abc".into()),
        items: vec![Item {
            target: Some(Target::new("./Vendor/Reset")),
            ..Item::default()
        }],
    });
    let el = round_trip(&exec);
    assert_eq!(
        names(&el),
        ["CmdID", "NoResp", "Meta", "Correlator", "Item"]
    );
    assert_eq!(exec.items().len(), 1);
    assert_eq!(
        msg_with_body("<Exec><CmdID>1</CmdID></Exec>").unwrap_err(),
        ModelError::Missing {
            parent: "Exec",
            child: "Item"
        }
    );

    let search = Command::Search(Search {
        cmd_id: "5".into(),
        no_resp: false,
        no_results: true,
        cred: None,
        target: Some(Target::new("./results")),
        sources: vec![Source::new("./contacts"), Source::new("./calendar")],
        lang: Some("en".into()),
        meta: Meta::of_type("application/vnd.syncml-query"),
        data: Data::Text("N=Bond".into()),
    });
    let el = round_trip(&search);
    assert_eq!(
        names(&el),
        [
            "CmdID",
            "NoResults",
            "Target",
            "Source",
            "Source",
            "Lang",
            "Meta",
            "Data"
        ]
    );
    assert!(search.items().is_empty());
    assert_eq!(
        msg_with_body("<Search><CmdID>1</CmdID><Data>x</Data></Search>").unwrap_err(),
        ModelError::Missing {
            parent: "Search",
            child: "Meta"
        }
    );
}

#[test]
fn filter_in_alert_target_round_trips() {
    let c = only_command(
        "<Alert><CmdID>1</CmdID><Data>200</Data><Item>\
         <Target><LocURI>./calendar</LocURI><LocName>cal</LocName><Filter>\
         <Meta><Type xmlns='syncml:metinf'>text/calendar</Type></Meta>\
         <Record><Item><Meta><Type xmlns='syncml:metinf'>syncml:filtertype-cgi</Type></Meta>\
         <Data>BEFORE&amp;EQ;20070808T000000Z</Data></Item></Record>\
         <FilterType>INCLUSIVE</FilterType></Filter></Target>\
         <Source><LocURI>./cal</LocURI></Source></Item></Alert>",
    );
    let target = c.items()[0].target.as_ref().expect("target");
    let filter = target.filter.as_ref().expect("filter");
    assert_eq!(filter.meta.r#type.as_deref(), Some("text/calendar"));
    assert_eq!(filter.filter_type.as_deref(), Some("INCLUSIVE"));
    let record = filter.record.as_ref().expect("record");
    assert_eq!(
        record.data.as_ref().and_then(Data::as_text),
        Some("BEFORE&EQ;20070808T000000Z")
    );
    assert!(filter.field.is_none());
    let el = round_trip(&c);
    let t = child(&el, &["Item", "Target"]);
    assert_eq!(names(t), ["LocURI", "LocName", "Filter"]);
    assert_eq!(
        names(child(t, &["Filter"])),
        ["Meta", "Record", "FilterType"]
    );

    let f = Filter {
        meta: Meta::of_type("text/vcard"),
        field: Some(Item {
            data: Some("<Property/>".into()),
            ..Item::default()
        }),
        record: Some(Item::default()),
        filter_type: None,
    };
    let mut b = TreeBuilder::new();
    f.write(&mut b);
    let el = b.finish().expect("balanced");
    assert_eq!(names(&el), ["Meta", "Field", "Record"]);
    assert_eq!(names(child(&el, &["Field"])), ["Item"]);
    assert_eq!(Filter::from_element(el).expect("re-read"), f);
    assert_eq!(
        Filter::from_element(tree_of(b"<Filter><Record><Item/></Record></Filter>")),
        Err(ModelError::Missing {
            parent: "Filter",
            child: "Meta"
        })
    );
}

#[test]
fn set_cmd_id_reaches_every_command() {
    let mut cmds = vec![
        Command::Add(ItemCommand::default()),
        Command::Alert(Alert::default()),
        Command::Atomic(Container::default()),
        Command::Copy(ItemCommand::default()),
        Command::Delete(Delete::default()),
        Command::Exec(Exec {
            items: vec![Item::default()],
            ..Exec::default()
        }),
        Command::Get(GetPut::default()),
        Command::Map(Map::default()),
        Command::Move(ItemCommand::default()),
        Command::Put(GetPut::default()),
        Command::Replace(ItemCommand::default()),
        Command::Results(Results::default()),
        Command::Search(Search::default()),
        Command::Sequence(Container::default()),
        Command::Status(Status::new("", "1", "1", "Add", StatusCode(200))),
        Command::Sync(Sync::default()),
    ];
    for (i, c) in cmds.iter_mut().enumerate() {
        c.set_cmd_id((i + 1).to_string());
        assert_eq!(c.cmd_id(), (i + 1).to_string());
        let el = round_trip(c);
        assert_eq!(child(&el, &["CmdID"]).text().as_deref(), Some(c.cmd_id()));
        assert_eq!(names(&el)[0], "CmdID");
    }
}

// ---------------------------------------------------------------------------------
// robustness: mutated real messages never panic, and whatever decodes round-trips
// ---------------------------------------------------------------------------------

mod mutations {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    const SEEDS: &[&str] = &[
        "vectors/buteo-syncml/data/resp.txt",
        "vectors/buteo-syncml/data/subcommands01.txt",
        "vectors/libwbxml/syncml/syncml-003.xml",
        "vectors/libwbxml/syncml/syncml-005.xml",
        "vectors/libwbxml/syncml/syncml-007.xml",
        "vectors/libwbxml/ddf/syncml_with_ddf-001.xml",
        "captures/01-slow-wbxml-md5/02-msg001-s2c.wbxml",
        "captures/02-twoway-xml/03-msg002-c2s.xml",
        "captures/10-md5-401-then-retry-xml/02-msg001-s2c.xml",
    ];

    fn seeds() -> &'static Vec<Element> {
        static TREES: OnceLock<Vec<Element>> = OnceLock::new();
        TREES.get_or_init(|| SEEDS.iter().map(|f| tree_of(&read(f))).collect())
    }

    /// Paths to every element, except inside a `DevInf` (the DevInf model has its own
    /// tests; the element itself is still a target).
    fn paths(el: &Element, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        out.push(at.clone());
        if el.ns == Namespace::DevInf {
            return;
        }
        for (i, c) in el.children.iter().enumerate() {
            if let Node::Element(e) = c {
                at.push(i);
                paths(e, at, out);
                at.pop();
            }
        }
    }

    fn at<'a>(mut el: &'a mut Element, path: &[usize]) -> &'a mut Element {
        for &i in path {
            match &mut el.children[i] {
                Node::Element(e) => el = e,
                _ => unreachable!("paths only lead through elements"),
            }
        }
        el
    }

    #[derive(Debug, Clone)]
    enum Op {
        Remove,
        Duplicate,
        SwapWithNext,
        SetText(String),
        Clear,
        InsertUnknown,
        InsertOpaque(Vec<u8>),
        Rename(&'static str),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Remove),
            Just(Op::Duplicate),
            Just(Op::SwapWithNext),
            "[ -~\n]{0,12}".prop_map(Op::SetText),
            Just(Op::Clear),
            Just(Op::InsertUnknown),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(Op::InsertOpaque),
            proptest::sample::select(vec![
                "Status", "Sync", "Atomic", "Data", "Item", "Meta", "Anchor", "Map", "Exec",
                "Search", "Filter", "Results", "SyncHdr", "SyncBody", "MsgID", "Target",
            ])
            .prop_map(Op::Rename),
        ]
    }

    fn apply(root: &mut Element, pick: usize, op: &Op) {
        let mut all = Vec::new();
        paths(root, &mut Vec::new(), &mut all);
        let path = &all[pick % all.len()];
        if let Some((&last, parent_path)) = path.split_last() {
            let parent = at(root, parent_path);
            match op {
                Op::Remove => {
                    parent.children.remove(last);
                    return;
                }
                Op::Duplicate => {
                    let c = parent.children[last].clone();
                    parent.children.insert(last + 1, c);
                    return;
                }
                Op::SwapWithNext if last + 1 < parent.children.len() => {
                    parent.children.swap(last, last + 1);
                    return;
                }
                _ => {}
            }
        }
        let el = at(root, path);
        match op {
            Op::SetText(t) => el.children = vec![Node::Text(t.clone())],
            Op::Clear => el.children.clear(),
            Op::InsertUnknown => el.children.insert(
                0,
                Node::Element(Element::with_text(Namespace::SyncMl, "Junk", "j")),
            ),
            Op::InsertOpaque(b) => el.children.push(Node::Opaque(b.clone())),
            Op::Rename(n) => el.name = (*n).into(),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn mutated_messages_never_panic_and_round_trip(
            seed in 0..SEEDS.len(),
            ops in proptest::collection::vec((any::<usize>(), op()), 1..6),
        ) {
            let mut tree = seeds()[seed].clone();
            for (pick, op) in &ops {
                apply(&mut tree, *pick, op);
            }
            if let Ok(msg) = SyncMl::from_element(tree) {
                match SyncMl::from_element(to_tree(&msg)) {
                    Ok(again) => prop_assert!(
                        again == msg,
                        "model -> tree -> model differs: {}",
                        first_difference(&to_tree(&msg), &to_tree(&again))
                    ),
                    Err(e) => prop_assert!(false, "written message does not re-read: {}", e),
                }
            }
        }
    }
}

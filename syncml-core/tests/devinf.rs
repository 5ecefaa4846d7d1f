//! DevInf 1.1 / 1.2 model: reading every DevInf in the test data, model -> tree -> model
//! identity, DTD output order, the SyncEvolution order quirks and [`normalize_dtd_order`].

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use syncml_core::model::{
    normalize_dtd_order, CtCap, CtCap11, CtCap11Entry, CtTypeVer, DataStore, DevInf, DsMem, Ext,
    FilterCap, ModelError, PropParam, Property, SyncCap,
};
use syncml_core::tree::{Element, Namespace, Node, TreeBuilder};

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn decode_file(path: &Path) -> Element {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match syncml_core::decode_document(&bytes) {
        Ok(doc) => doc.root,
        Err(e) => panic!("{}: {e:?}", path.display()),
    }
}

/// Every `<DevInf>` element in a tree (a standalone DevInf, or inside `Data`).
fn devinf_elements(el: &Element, out: &mut Vec<Element>) {
    if el.name == "DevInf" {
        out.push(el.clone());
        return;
    }
    for c in el.elements() {
        devinf_elements(c, out);
    }
}

fn devinfs_in(path: &Path) -> Vec<Element> {
    let mut out = Vec::new();
    devinf_elements(&decode_file(path), &mut out);
    out
}

/// The wire captures (and the engine's own XML renderings of the WBXML ones).
fn capture_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&data_dir().join("captures"), &mut all);
    all.retain(|p| {
        let n = p.to_string_lossy();
        n.ends_with(".xml") || n.ends_with(".wbxml")
    });
    all
}

/// The wire captures only (no `*.synthesis-translation.xml`).
fn wire_capture_files() -> Vec<PathBuf> {
    capture_files()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("synthesis-translation"))
        .collect()
}

fn vector(rel: &str) -> PathBuf {
    data_dir().join("vectors").join(rel)
}

fn to_tree(d: &DevInf) -> Element {
    let mut b = TreeBuilder::new();
    d.write(&mut b);
    b.finish().expect("write produces one closed element")
}

fn roundtrip(d: &DevInf) -> DevInf {
    DevInf::from_element(to_tree(d)).expect("our own output reads back")
}

fn dev(name: &str) -> Element {
    Element::new(Namespace::DevInf, name.to_string())
}

fn text(name: &str, value: &str) -> Element {
    Element::with_text(Namespace::DevInf, name.to_string(), value)
}

fn with(mut el: Element, children: Vec<Element>) -> Element {
    for c in children {
        el.push(c);
    }
    el
}

fn names(el: &Element) -> Vec<String> {
    el.elements().map(|e| e.name.to_string()).collect()
}

fn pair(name: &str, ct: &str, v: &str) -> Element {
    with(dev(name), vec![text("CTType", ct), text("VerCT", v)])
}

/// A small DevInf 1.2 tree in DTD order.
fn minimal_v12_tree() -> Element {
    with(
        dev("DevInf"),
        vec![
            text("VerDTD", "1.2"),
            text("Man", "ACME"),
            text("Mod", "Phone"),
            text("FwV", "1"),
            text("SwV", "2"),
            text("HwV", "3"),
            text("DevID", "IMEI:1"),
            text("DevTyp", "phone"),
            with(
                dev("DataStore"),
                vec![
                    text("SourceRef", "./contacts"),
                    pair("Rx-Pref", "text/x-vcard", "2.1"),
                    pair("Tx-Pref", "text/x-vcard", "2.1"),
                    with(dev("SyncCap"), vec![text("SyncType", "1")]),
                ],
            ),
        ],
    )
}

fn sample_v12() -> DevInf {
    DevInf {
        ver_dtd: "1.2".into(),
        man: Some("Big Factory, Ltd.".into()),
        model: Some("4119".into()),
        oem: Some("Jane's phones".into()),
        fw_v: Some("2.0e".into()),
        sw_v: Some("2.0".into()),
        hw_v: Some("1.22I".into()),
        dev_id: "1218182THD000001-2".into(),
        dev_typ: "phone".into(),
        utc: true,
        support_large_objs: true,
        support_number_of_changes: true,
        data_stores: vec![DataStore {
            source_ref: "./contacts".into(),
            display_name: Some("Phonebook".into()),
            max_guid_size: Some(32),
            rx_pref: CtTypeVer::new("text/x-vcard", "2.1"),
            rx: vec![CtTypeVer::new("text/vcard", "3.0")],
            tx_pref: CtTypeVer::new("text/x-vcard", "2.1"),
            tx: vec![CtTypeVer::new("text/vcard", "3.0")],
            ct_caps: vec![CtCap {
                ct_type: "text/x-vcard".into(),
                ver_ct: "2.1".into(),
                field_level: true,
                properties: vec![
                    Property {
                        prop_name: "TEL".into(),
                        data_type: Some("chr".into()),
                        max_occur: Some(5),
                        max_size: Some(40),
                        no_truncate: true,
                        val_enums: vec!["x".into()],
                        display_name: Some("Phone".into()),
                        prop_params: vec![PropParam {
                            param_name: "TYPE".into(),
                            data_type: None,
                            val_enums: vec!["VOICE, CELL".into(), "HOME".into()],
                            display_name: Some("Kind".into()),
                        }],
                    },
                    Property::new("N"),
                ],
            }],
            ds_mem: Some(DsMem {
                shared_mem: true,
                max_mem: Some(32650),
                max_id: Some(250),
            }),
            support_hierarchical_sync: true,
            sync_cap: SyncCap {
                sync_types: vec!["1".into(), "2".into(), "07".into()],
            },
            filter_rx: vec![CtTypeVer::new("syncml:filtertype-cgi", "1.0")],
            filter_caps: vec![FilterCap {
                ct_type: "text/x-vcard".into(),
                ver_ct: "2.1".into(),
                filter_keywords: vec!["LIMIT".into()],
                prop_names: vec!["N".into(), "TEL".into()],
            }],
        }],
        ct_caps: vec![],
        exts: vec![Ext {
            xnam: "srtmsg".into(),
            xvals: vec!["Hello World".into(), "".into()],
        }],
    }
}

fn sample_v11() -> DevInf {
    use CtCap11Entry::*;
    let mut d = sample_v12();
    d.ver_dtd = "1.1".into();
    let ds = &mut d.data_stores[0];
    ds.ct_caps.clear();
    ds.filter_rx.clear();
    ds.filter_caps.clear();
    ds.support_hierarchical_sync = false;
    d.ct_caps = vec![CtCap11 {
        entries: vec![
            CtType("text/x-vcard".into()),
            PropName("BEGIN".into()),
            ValEnum("VCARD".into()),
            PropName("NOTE".into()),
            DataType("chr".into()),
            Size(255),
            DisplayName("Note".into()),
            PropName("TEL".into()),
            ParamName("VOICE".into()),
            ParamName("TYPE".into()),
            ValEnum("HOME".into()),
            CtType("text/plain".into()),
            PropName("".into()),
        ],
    }];
    d
}

// ---------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------

#[test]
fn every_devinf_in_the_captures_decodes() {
    let mut found = 0;
    for f in capture_files() {
        for el in devinfs_in(&f) {
            DevInf::from_element(el).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            found += 1;
        }
    }
    // 22 on the wire (Put in every 01-msg001-c2s, Results in every 02-msg001-s2c,
    // plus the retried sessions 10 and 11) and 10 more in the engine's renderings.
    assert_eq!(found, 32);
}

#[test]
fn every_devinf_in_the_vectors_decodes() {
    let expect: &[(&str, usize)] = &[
        ("buteo-syncml/data/devinf01.txt", 1),
        ("buteo-syncml/data/devinf02.txt", 1),
        ("buteo-syncml/data/testDevInf.txt", 1),
        ("libwbxml/syncml/syncml-011.xml", 1),
        ("libwbxml/syncml/syncml-003.xml", 1),
        ("libwbxml/syncml/syncml-004.xml", 1),
        ("txsyncml/fixtures/sony-ericsson-k800i-package1.xml", 1),
    ];
    for (rel, n) in expect {
        let els = devinfs_in(&vector(rel));
        assert_eq!(els.len(), *n, "{rel}");
        for el in els {
            DevInf::from_element(el).unwrap_or_else(|e| panic!("{rel}: {e}"));
        }
    }
}

/// Every file under `tests/data` that decodes and holds a DevInf: the model either
/// reads it or reports an error, never panics; and what it reads writes and reads back.
#[test]
fn no_devinf_anywhere_in_the_test_data_panics() {
    let mut all = Vec::new();
    files_under(&data_dir(), &mut all);
    let mut read = 0;
    for f in all {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let Ok(doc) = syncml_core::decode_document(&bytes) else {
            continue;
        };
        let mut els = Vec::new();
        devinf_elements(&doc.root, &mut els);
        for el in els {
            if let Ok(d) = DevInf::from_element(el) {
                let again = roundtrip(&d);
                assert_eq!(roundtrip(&again), again, "{}", f.display());
                read += 1;
            }
        }
    }
    assert!(read >= 39, "only {read} DevInf read");
}

#[test]
fn captured_devinf_reads_as_expected() {
    let f = data_dir().join("captures/02-twoway-xml/01-msg001-c2s.xml");
    let d = DevInf::from_element(devinfs_in(&f).remove(0)).unwrap();
    assert_eq!(d.ver_dtd, "1.2");
    assert!(!d.is_v1_1());
    assert_eq!(d.man.as_deref(), Some("Patrick Ohly"));
    assert_eq!(d.model.as_deref(), Some("SyncEvolution"));
    assert_eq!(d.dev_id, "syncevo-interop-client");
    assert_eq!(d.dev_typ, "workstation");
    assert!(d.utc && d.support_large_objs && d.support_number_of_changes);
    assert!(d.ct_caps.is_empty());
    let ab = d.data_store("./addressbook").expect("addressbook store");
    assert_eq!(ab.max_guid_size, Some(64));
    assert_eq!(ab.rx_pref, CtTypeVer::new("text/vcard", "3.0"));
    let vcard = ab
        .ct_cap("text/vcard", Some("3.0"))
        .expect("vCard 3.0 CTCap");
    let version = vcard.property("VERSION").unwrap();
    assert_eq!(version.val_enums, ["3.0"]);
    assert_eq!(version.max_occur, Some(1));
    let tel = vcard.property("TEL").unwrap();
    assert_eq!(tel.prop_params[0].param_name, "TYPE");
    assert!(tel.prop_params[0].val_enums.iter().any(|v| v == "CELL"));
    assert!(ab.sync_cap.supports(1) && ab.sync_cap.supports(2));
}

#[test]
fn captured_devinf11_reads_as_expected() {
    let f = data_dir().join("captures/09-syncml11-slow-wbxml/01-msg001-c2s.wbxml");
    let d = DevInf::from_element(devinfs_in(&f).remove(0)).unwrap();
    assert_eq!(d.ver_dtd, "1.1");
    assert!(d.is_v1_1());
    assert!(d.data_stores.iter().all(|ds| ds.ct_caps.is_empty()));
    assert_eq!(d.ct_caps.len(), 1);
    let flat = &d.ct_caps[0];
    assert!(flat.has_type("text/vcard") && flat.has_type("text/x-vcard"));
    let nested = flat.to_ct_caps();
    assert_eq!(nested.len(), 2);
    assert!(nested[0].property("TEL").is_some());
}

// ---------------------------------------------------------------------------------
// Identity: model -> tree -> model, and write(read(x)) == normalize(x) for captures
// ---------------------------------------------------------------------------------

#[test]
fn model_tree_model_is_identity_for_the_test_data() {
    let mut files = capture_files();
    for rel in [
        "buteo-syncml/data/devinf01.txt",
        "buteo-syncml/data/devinf02.txt",
        "buteo-syncml/data/testDevInf.txt",
        "libwbxml/syncml/syncml-011.xml",
        "txsyncml/fixtures/sony-ericsson-k800i-package1.xml",
    ] {
        files.push(vector(rel));
    }
    for f in files {
        for el in devinfs_in(&f) {
            let d = DevInf::from_element(el).unwrap();
            assert_eq!(roundtrip(&d), d, "{}", f.display());
        }
    }
}

#[test]
fn model_tree_model_is_identity_for_built_models() {
    for d in [sample_v12(), sample_v11()] {
        assert_eq!(roundtrip(&d), d);
    }
}

#[test]
fn captures_write_equals_normalized_original() {
    let mut n = 0;
    for f in capture_files() {
        for original in devinfs_in(&f) {
            let ours = to_tree(&DevInf::from_element(original.clone()).unwrap());
            let mut normalized = original;
            normalize_dtd_order(&mut normalized);
            assert_eq!(ours, normalized, "{}", f.display());
            n += 1;
        }
    }
    assert_eq!(n, 32);
}

#[test]
fn dtd_ordered_vectors_are_written_back_unchanged() {
    // These documents are already in DTD order: our output is the same tree.
    for rel in [
        "libwbxml/syncml/syncml-011.xml",
        "txsyncml/fixtures/sony-ericsson-k800i-package1.xml",
    ] {
        let original = devinfs_in(&vector(rel)).remove(0);
        let ours = to_tree(&DevInf::from_element(original.clone()).unwrap());
        assert_eq!(ours, original, "{rel}");
        let mut normalized = original.clone();
        normalize_dtd_order(&mut normalized);
        assert_eq!(normalized, original, "{rel}");
    }
}

// ---------------------------------------------------------------------------------
// SyncEvolution quirks and normalize_dtd_order
// ---------------------------------------------------------------------------------

/// Pins the evidence of the `# Quirks` section: the wire order differs from the DTD.
#[test]
fn syncevolution_quirks_are_present_in_the_captures() {
    for f in wire_capture_files() {
        for el in devinfs_in(&f) {
            let n = names(&el);
            let pos = |x: &str| n.iter().position(|m| m == x).unwrap();
            assert!(
                pos("SupportNumberOfChanges") < pos("SupportLargeObjs"),
                "{}",
                f.display()
            );
            assert_eq!(pos("UTC") + 1, pos("SupportNumberOfChanges"));
            let is_12 = el.child("VerDTD").and_then(|v| v.text()).as_deref() == Some("1.2");
            if is_12 {
                // Some Property has ValEnum before MaxOccur (e.g. VERSION).
                let mut seen = false;
                for ds in el.elements().filter(|e| e.name == "DataStore") {
                    for cap in ds.elements().filter(|e| e.name == "CTCap") {
                        for p in cap.elements().filter(|e| e.name == "Property") {
                            let pn = names(p);
                            if let (Some(v), Some(m)) = (
                                pn.iter().position(|x| x == "ValEnum"),
                                pn.iter().position(|x| x == "MaxOccur"),
                            ) {
                                assert!(v < m);
                                seen = true;
                            }
                        }
                    }
                }
                assert!(seen, "{}", f.display());
            }
        }
    }
}

#[test]
fn normalize_reorders_syncevolution_quirks() {
    let quirky = with(
        dev("DevInf"),
        vec![
            text("VerDTD", "1.2"),
            text("DevID", "x"),
            text("DevTyp", "workstation"),
            dev("UTC"),
            dev("SupportNumberOfChanges"),
            dev("SupportLargeObjs"),
            with(
                dev("DataStore"),
                vec![
                    text("SourceRef", "./a"),
                    pair("Rx-Pref", "text/vcard", "3.0"),
                    pair("Tx-Pref", "text/vcard", "3.0"),
                    with(
                        dev("CTCap"),
                        vec![
                            text("CTType", "text/vcard"),
                            text("VerCT", "3.0"),
                            with(
                                dev("Property"),
                                vec![
                                    text("PropName", "VERSION"),
                                    text("ValEnum", "3.0"),
                                    text("MaxSize", "9"),
                                    text("MaxOccur", "1"),
                                ],
                            ),
                        ],
                    ),
                    with(dev("SyncCap"), vec![text("SyncType", "1")]),
                ],
            ),
        ],
    );
    let mut el = quirky.clone();
    normalize_dtd_order(&mut el);
    assert_eq!(
        names(&el),
        [
            "VerDTD",
            "DevID",
            "DevTyp",
            "UTC",
            "SupportLargeObjs",
            "SupportNumberOfChanges",
            "DataStore"
        ]
    );
    let prop = el
        .child("DataStore")
        .unwrap()
        .child("CTCap")
        .unwrap()
        .child("Property");
    assert_eq!(
        names(prop.unwrap()),
        ["PropName", "MaxOccur", "MaxSize", "ValEnum"]
    );
    // The reordered original is exactly what we write (DevInf 1.2 adds the required
    // Man/Mod/FwV/SwV/HwV, absent here, so compare from DataStore on).
    let ours = to_tree(&DevInf::from_element(quirky).unwrap());
    assert_eq!(ours.child("DataStore"), el.child("DataStore"));
    assert_eq!(names(&ours)[8..], names(&el)[3..]);
}

#[test]
fn buteo_vectors_write_equals_normalized_original() {
    // Buteo writes the DevInf flags as SupportLargeObjs, SupportNumberOfChanges, UTC
    // and, in 1.2, SyncCap, SupportHierarchicalSync before CTCap.
    for rel in [
        "buteo-syncml/data/devinf01.txt",
        "buteo-syncml/data/devinf02.txt",
    ] {
        let original = devinfs_in(&vector(rel)).remove(0);
        let ours = to_tree(&DevInf::from_element(original.clone()).unwrap());
        assert_ne!(ours, original, "{rel}");
        let mut normalized = original;
        normalize_dtd_order(&mut normalized);
        assert_eq!(ours, normalized, "{rel}");
    }
}

#[test]
fn normalize_is_a_noop_on_dtd_order() {
    let d = sample_v12();
    let tree = to_tree(&d);
    let mut n = tree.clone();
    normalize_dtd_order(&mut n);
    assert_eq!(n, tree);
    let tree = to_tree(&sample_v11());
    let mut n = tree.clone();
    normalize_dtd_order(&mut n);
    assert_eq!(n, tree);
}

#[test]
fn normalize_walks_into_messages_and_leaves_the_rest_alone() {
    let f = data_dir().join("captures/02-twoway-xml/01-msg001-c2s.xml");
    let original = decode_file(&f);
    let mut msg = original.clone();
    normalize_dtd_order(&mut msg);
    assert_ne!(msg, original);
    // Same SyncML skeleton; only the DevInf changed.
    let body = |m: &Element| names(m.child("SyncBody").unwrap());
    assert_eq!(body(&msg), body(&original));
    assert_eq!(msg.child("SyncHdr"), original.child("SyncHdr"));
    let mut a = Vec::new();
    devinf_elements(&msg, &mut a);
    let mut b = devinfs_in(&f);
    normalize_dtd_order(&mut b[0]);
    assert_eq!(a, b);
}

#[test]
fn normalize_leaves_flat_ctcap_alone() {
    let flat = with(
        dev("CTCap"),
        vec![
            text("CTType", "text/x-vcard"),
            text("PropName", "TEL"),
            text("ParamName", "CELL"),
            text("PropName", "N"),
            text("DisplayName", "Name"),
            text("DataType", "chr"),
        ],
    );
    let mut el = with(minimal_v12_tree(), vec![flat.clone()]);
    normalize_dtd_order(&mut el);
    assert_eq!(el.child("CTCap"), Some(&flat));
}

#[test]
fn normalize_puts_unknown_elements_after_known_ones() {
    let mut el = with(
        dev("DevInf"),
        vec![text("X-Vendor", "1"), text("VerDTD", "1.2")],
    );
    normalize_dtd_order(&mut el);
    assert_eq!(names(&el), ["VerDTD", "X-Vendor"]);
}

// ---------------------------------------------------------------------------------
// Output: DTD order, versions, namespaces
// ---------------------------------------------------------------------------------

#[test]
fn output_is_dtd_order_v12() {
    let t = to_tree(&sample_v12());
    assert_eq!(
        names(&t),
        [
            "VerDTD",
            "Man",
            "Mod",
            "OEM",
            "FwV",
            "SwV",
            "HwV",
            "DevID",
            "DevTyp",
            "UTC",
            "SupportLargeObjs",
            "SupportNumberOfChanges",
            "DataStore",
            "Ext"
        ]
    );
    let ds = t.child("DataStore").unwrap();
    assert_eq!(
        names(ds),
        [
            "SourceRef",
            "DisplayName",
            "MaxGUIDSize",
            "Rx-Pref",
            "Rx",
            "Tx-Pref",
            "Tx",
            "CTCap",
            "DSMem",
            "SupportHierarchicalSync",
            "SyncCap",
            "Filter-Rx",
            "FilterCap"
        ]
    );
    let cap = ds.child("CTCap").unwrap();
    assert_eq!(
        names(cap),
        ["CTType", "VerCT", "FieldLevel", "Property", "Property"]
    );
    let prop = cap.child("Property").unwrap();
    assert_eq!(
        names(prop),
        [
            "PropName",
            "DataType",
            "MaxOccur",
            "MaxSize",
            "NoTruncate",
            "ValEnum",
            "DisplayName",
            "PropParam"
        ]
    );
    assert_eq!(
        names(prop.child("PropParam").unwrap()),
        ["ParamName", "ValEnum", "ValEnum", "DisplayName"]
    );
    assert_eq!(
        names(ds.child("DSMem").unwrap()),
        ["SharedMem", "MaxMem", "MaxID"]
    );
    assert_eq!(
        names(ds.child("FilterCap").unwrap()),
        ["CTType", "VerCT", "FilterKeyword", "PropName", "PropName"]
    );
    assert_eq!(names(t.child("Ext").unwrap()), ["XNam", "XVal", "XVal"]);
}

#[test]
fn output_is_dtd_order_v11() {
    let t = to_tree(&sample_v11());
    assert_eq!(
        names(&t),
        [
            "VerDTD",
            "Man",
            "Mod",
            "OEM",
            "FwV",
            "SwV",
            "HwV",
            "DevID",
            "DevTyp",
            "UTC",
            "SupportLargeObjs",
            "SupportNumberOfChanges",
            "DataStore",
            "CTCap",
            "Ext"
        ]
    );
    assert_eq!(
        names(t.child("DataStore").unwrap()),
        [
            "SourceRef",
            "DisplayName",
            "MaxGUIDSize",
            "Rx-Pref",
            "Rx",
            "Tx-Pref",
            "Tx",
            "DSMem",
            "SyncCap"
        ]
    );
}

#[test]
fn v11_output_has_no_devinf_12_only_elements() {
    let mut d = sample_v12();
    d.ver_dtd = "1.1".into();
    let t = to_tree(&d);
    fn all_names(el: &Element, out: &mut Vec<String>) {
        out.push(el.name.to_string());
        for c in el.elements() {
            all_names(c, out);
        }
    }
    let mut n = Vec::new();
    all_names(&t, &mut n);
    for banned in [
        "Property",
        "PropParam",
        "MaxOccur",
        "MaxSize",
        "NoTruncate",
        "FieldLevel",
        "Filter-Rx",
        "FilterCap",
        "FilterKeyword",
        "SupportHierarchicalSync",
    ] {
        assert!(!n.iter().any(|x| x == banned), "{banned} in 1.1 output");
    }
    // The data store's nested CTCap became a DevInf-level flat CTCap instead.
    assert!(t.child("DataStore").unwrap().child("CTCap").is_none());
    assert_eq!(
        names(t.child("CTCap").unwrap())[..2],
        ["CTType", "PropName"]
    );
}

#[test]
fn v12_writes_required_man_mod_fwv_swv_hwv() {
    let d = DevInf {
        ver_dtd: "1.2".into(),
        dev_id: "x".into(),
        dev_typ: "server".into(),
        ..DevInf::default()
    };
    let t = to_tree(&d);
    assert_eq!(
        names(&t),
        ["VerDTD", "Man", "Mod", "FwV", "SwV", "HwV", "DevID", "DevTyp"]
    );
    assert!(t.child("Man").unwrap().is_empty());
    let mut d11 = d;
    d11.ver_dtd = "1.1".into();
    assert_eq!(names(&to_tree(&d11)), ["VerDTD", "DevID", "DevTyp"]);
}

#[test]
fn every_output_element_is_in_the_devinf_namespace() {
    fn check(el: &Element) {
        assert_eq!(el.ns, Namespace::DevInf, "{}", el.name);
        el.elements().for_each(check);
    }
    check(&to_tree(&sample_v12()));
    check(&to_tree(&sample_v11()));
}

#[test]
fn empty_values_are_written_as_empty_elements() {
    let mut d = sample_v12();
    d.man = None;
    d.data_stores[0].ct_caps[0].properties[0].data_type = Some(String::new());
    let t = to_tree(&d);
    // DevInf 1.2 requires Man: an unknown one is written empty and read back absent.
    assert!(t.child("Man").unwrap().is_empty());
    let prop = t
        .child("DataStore")
        .unwrap()
        .child("CTCap")
        .unwrap()
        .child("Property");
    assert!(prop.unwrap().child("DataType").unwrap().is_empty());
    assert_eq!(roundtrip(&d), d);
}

// ---------------------------------------------------------------------------------
// CTCap forms
// ---------------------------------------------------------------------------------

#[test]
fn devinf11_flat_ctcap_keeps_order() {
    use CtCap11Entry::*;
    let el = devinfs_in(&vector("buteo-syncml/data/devinf01.txt")).remove(0);
    let original_ctcap = el.child("CTCap").unwrap().clone();
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.ct_caps.len(), 1);
    let e = &d.ct_caps[0].entries;
    assert_eq!(e.len(), original_ctcap.elements().count());
    assert_eq!(e[0], CtType("text/x-vcard".into()));
    assert_eq!(e[1], PropName("BEGIN".into()));
    assert_eq!(e[2], ValEnum("VCARD".into()));
    // ... ends with the text/plain type: `<PropName/>`, DataType chr, Size 0.
    assert_eq!(
        e[e.len() - 4..],
        [
            CtType("text/plain".into()),
            PropName("".into()),
            DataType("chr".into()),
            Size(0)
        ]
    );
    // A multi-line ValEnum is kept verbatim.
    assert!(e
        .iter()
        .any(|x| matches!(x, ValEnum(v) if v.contains("\n(c) Nokia"))));
    // Written back: the same children, in the same order, `Size` spelled `Size`.
    let t = to_tree(&d);
    assert_eq!(t.child("CTCap"), Some(&original_ctcap));
}

#[test]
fn devinf12_ctcap_nested_in_datastore() {
    let el = devinfs_in(&vector(
        "txsyncml/fixtures/sony-ericsson-k800i-package1.xml",
    ))
    .remove(0);
    let d = DevInf::from_element(el).unwrap();
    assert!(d.ct_caps.is_empty());
    let ds = &d.data_stores[0];
    assert_eq!(ds.source_ref, "Contacts");
    assert_eq!(ds.ct_caps.len(), 2);
    let email = ds.ct_caps[0].property("EMAIL").unwrap();
    assert_eq!(email.max_occur, Some(3));
    assert_eq!(email.max_size, Some(50));
    assert!(email.no_truncate);
    assert_eq!(email.prop_params[0].val_enums, ["INTERNET"]);
    let t = to_tree(&d);
    let caps: Vec<_> = t
        .child("DataStore")
        .unwrap()
        .elements()
        .filter(|e| e.name == "CTCap")
        .collect();
    assert_eq!(caps.len(), 2);
    assert!(t.child("CTCap").is_none());
}

#[test]
fn size_and_maxsize_are_the_same_field() {
    // 1.1 flat: Size (also accepts MaxSize); 1.2 Property: MaxSize (also accepts Size).
    let flat = with(
        dev("CTCap"),
        vec![
            text("CTType", "text/plain"),
            text("PropName", "A"),
            text("DataType", "chr"),
            text("MaxSize", "7"),
        ],
    );
    let cap = CtCap11::from_element(flat).unwrap();
    assert_eq!(cap.entries[3], CtCap11Entry::Size(7));
    let mut b = TreeBuilder::new();
    cap.write(&mut b);
    assert_eq!(names(&b.finish().unwrap())[3], "Size");

    let nested = with(
        dev("CTCap"),
        vec![
            text("CTType", "text/plain"),
            text("VerCT", "1.0"),
            with(
                dev("Property"),
                vec![text("PropName", "A"), text("Size", "9")],
            ),
        ],
    );
    let cap = CtCap::from_element(nested).unwrap();
    assert_eq!(cap.properties[0].max_size, Some(9));
    let mut b = TreeBuilder::new();
    cap.write(&mut b);
    let t = b.finish().unwrap();
    assert_eq!(names(t.child("Property").unwrap()), ["PropName", "MaxSize"]);
}

#[test]
fn flat_ctcap_is_accepted_at_devinf_level_in_devinf_12() {
    let el = with(
        minimal_v12_tree(),
        vec![with(
            dev("CTCap"),
            vec![
                text("CTType", "text/x-vcard"),
                text("PropName", "TEL"),
                text("ParamName", "CELL"),
                text("CTType", "text/x-unrelated"),
                text("PropName", "X"),
            ],
        )],
    );
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.ver_dtd, "1.2");
    // Read into the canonical 1.2 form: nested in the data store that exchanges it.
    assert!(d.ct_caps.is_empty());
    assert_eq!(d.data_stores[0].ct_caps.len(), 1);
    // Written as 1.2: converted into the data store that exchanges text/x-vcard (with
    // its VerCT); the type no data store exchanges is dropped.
    let t = to_tree(&d);
    assert!(t.child("CTCap").is_none());
    let ds = t.child("DataStore").unwrap();
    let caps: Vec<_> = ds.elements().filter(|e| e.name == "CTCap").collect();
    assert_eq!(caps.len(), 1);
    let back = CtCap::from_element(caps[0].clone()).unwrap();
    assert_eq!(back.ct_type, "text/x-vcard");
    assert_eq!(back.ver_ct, "2.1");
    assert_eq!(back.properties[0].prop_name, "TEL");
    assert_eq!(back.properties[0].prop_params[0].param_name, "CELL");
}

#[test]
fn nested_ctcap_is_accepted_in_devinf_11() {
    // A 1.1 document whose data store carries a 1.2 CTCap: read into the data store,
    // written as 1.1 flat at DevInf level.
    let mut el = minimal_v12_tree();
    if let Some(Node::Element(v)) = el.children.first_mut() {
        *v = text("VerDTD", "1.1");
    }
    let cap = with(
        dev("CTCap"),
        vec![
            text("CTType", "text/x-vcard"),
            text("VerCT", "2.1"),
            with(
                dev("Property"),
                vec![
                    text("PropName", "NOTE"),
                    text("DataType", "chr"),
                    text("MaxOccur", "1"),
                    text("MaxSize", "255"),
                ],
            ),
        ],
    );
    let mut children = el.children.clone();
    if let Some(Node::Element(ds)) = children.last_mut() {
        ds.push(cap);
    }
    el.children = children;
    let d = DevInf::from_element(el).unwrap();
    assert!(d.is_v1_1());
    // Read into the canonical 1.1 form: flat at DevInf level.
    assert!(d.data_stores[0].ct_caps.is_empty());
    assert_eq!(d.ct_caps.len(), 1);
    let t = to_tree(&d);
    assert!(t.child("DataStore").unwrap().child("CTCap").is_none());
    let flat = t.child("CTCap").unwrap();
    assert_eq!(
        names(flat),
        ["CTType", "PropName", "DataType", "Size"],
        "MaxOccur has no 1.1 spelling"
    );
}

#[test]
fn flat_ctcap_inside_datastore_becomes_nested() {
    let mut el = minimal_v12_tree();
    let flat = with(
        dev("CTCap"),
        vec![
            text("CTType", "text/x-vcard"),
            text("PropName", "TEL"),
            text("ValEnum", "CELL"),
            text("ParamName", "TYPE"),
            text("ValEnum", "HOME"),
            text("DisplayName", "Type"),
        ],
    );
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.push(flat);
    }
    let d = DevInf::from_element(el).unwrap();
    let cap = &d.data_stores[0].ct_caps[0];
    assert_eq!(
        cap.ver_ct, "2.1",
        "VerCT taken from the data store's Rx-Pref"
    );
    let tel = cap.property("TEL").unwrap();
    assert_eq!(tel.val_enums, ["CELL"]);
    assert_eq!(tel.prop_params[0].val_enums, ["HOME"]);
    assert_eq!(tel.prop_params[0].display_name.as_deref(), Some("Type"));
}

#[test]
fn nested_ctcap_at_devinf_level_moves_to_its_datastore() {
    let el = with(
        minimal_v12_tree(),
        vec![with(
            dev("CTCap"),
            vec![
                text("CTType", "text/x-vcard"),
                text("VerCT", "2.1"),
                with(dev("Property"), vec![text("PropName", "N")]),
            ],
        )],
    );
    let d = DevInf::from_element(el).unwrap();
    assert!(d.ct_caps.is_empty());
    assert_eq!(d.data_stores[0].ct_caps[0].properties[0].prop_name, "N");
}

#[test]
fn ctcap11_conversions() {
    use CtCap11Entry::*;
    let flat = sample_v11().ct_caps.remove(0);
    let nested = flat.to_ct_caps();
    assert_eq!(nested.len(), 2);
    let note = nested[0].property("NOTE").unwrap();
    assert_eq!(note.data_type.as_deref(), Some("chr"));
    assert_eq!(note.max_size, Some(255));
    assert_eq!(note.display_name.as_deref(), Some("Note"));
    let tel = nested[0].property("TEL").unwrap();
    assert_eq!(tel.prop_params.len(), 2);
    assert_eq!(tel.prop_params[1].val_enums, ["HOME"]);
    // Back to flat: the same sequence (it follows the 1.1 content model).
    assert_eq!(CtCap11::from_ct_caps(&nested), flat);
    // Values win over a data type; MaxSize without DataType is dropped.
    let mut p = Property::new("X");
    p.val_enums = vec!["a".into()];
    p.data_type = Some("chr".into());
    let mut q = Property::new("Y");
    q.max_size = Some(3);
    let cap = CtCap {
        ct_type: "t".into(),
        ver_ct: "1".into(),
        field_level: false,
        properties: vec![p, q],
    };
    assert_eq!(
        CtCap11::from_ct_caps(&[cap]).entries,
        [
            CtType("t".into()),
            PropName("X".into()),
            ValEnum("a".into()),
            PropName("Y".into())
        ]
    );
    // Entries before a CTType are ignored rather than panicking.
    let odd = CtCap11 {
        entries: vec![
            ValEnum("v".into()),
            ParamName("p".into()),
            CtType("t".into()),
        ],
    };
    assert_eq!(odd.to_ct_caps().len(), 1);
}

// ---------------------------------------------------------------------------------
// Liberal input
// ---------------------------------------------------------------------------------

#[test]
fn unknown_devinf_elements_are_skipped() {
    let mut el = minimal_v12_tree();
    el.push(text("X-Vendor-Flag", "1"));
    el.children.insert(0, Node::Text("\n  stray text ".into()));
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.push(with(dev("X-Unknown"), vec![text("SourceRef", "./nope")]));
    }
    let mut other = Element::new(Namespace::Other("urn:x".into()), "Foreign");
    other.push(text("DevID", "nope"));
    el.push(other);
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d, DevInf::from_element(minimal_v12_tree()).unwrap());
    assert_eq!(d.data_stores[0].source_ref, "./contacts");
}

#[test]
fn elements_in_any_order_are_accepted() {
    let ordered = DevInf::from_element(minimal_v12_tree()).unwrap();
    let mut el = minimal_v12_tree();
    el.children.reverse();
    if let Some(Node::Element(ds)) = el.children.first_mut() {
        ds.children.reverse();
    }
    assert_eq!(DevInf::from_element(el).unwrap(), ordered);
}

#[test]
fn missing_devid_is_an_error() {
    let mut el = minimal_v12_tree();
    el.children
        .retain(|n| !matches!(n, Node::Element(e) if e.name == "DevID"));
    assert_eq!(
        DevInf::from_element(el),
        Err(ModelError::Missing {
            parent: "DevInf",
            child: "DevID"
        })
    );
}

#[test]
fn missing_devtyp_and_sourceref_are_errors() {
    let mut el = minimal_v12_tree();
    el.children
        .retain(|n| !matches!(n, Node::Element(e) if e.name == "DevTyp"));
    assert!(matches!(
        DevInf::from_element(el),
        Err(ModelError::Missing {
            child: "DevTyp",
            ..
        })
    ));
    let mut el = minimal_v12_tree();
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.children
            .retain(|n| !matches!(n, Node::Element(e) if e.name == "SourceRef"));
    }
    assert!(matches!(
        DevInf::from_element(el),
        Err(ModelError::Missing {
            parent: "DataStore",
            child: "SourceRef"
        })
    ));
}

#[test]
fn empty_devid_is_accepted() {
    // Buteo's testDevInf.txt: <DevID/>, <DevTyp/>, no DataStore.
    let d = DevInf::from_element(devinfs_in(&vector("buteo-syncml/data/testDevInf.txt")).remove(0))
        .unwrap();
    assert_eq!(d.dev_id, "");
    assert_eq!(d.dev_typ, "");
    assert_eq!(d.man, None, "an empty <Man/> reads as absent");
    assert_eq!(d.oem, None);
    assert!(d.data_stores.is_empty());
}

#[test]
fn wrong_root_is_an_error() {
    assert!(matches!(
        DevInf::from_element(dev("DataStore")),
        Err(ModelError::UnexpectedRoot {
            expected: "DevInf",
            ..
        })
    ));
}

#[test]
fn any_namespace_is_accepted() {
    fn renamespace(el: &mut Element) {
        el.ns = Namespace::Other("syncml:DEVINF1.2".into());
        for c in el.children.iter_mut() {
            if let Node::Element(e) = c {
                renamespace(e);
            }
        }
    }
    let mut el = minimal_v12_tree();
    renamespace(&mut el);
    assert_eq!(
        DevInf::from_element(el).unwrap(),
        DevInf::from_element(minimal_v12_tree()).unwrap()
    );
}

#[test]
fn identifiers_are_trimmed_and_text_is_verbatim() {
    let el = with(
        dev("DevInf"),
        vec![
            text("VerDTD", " 1.2\n"),
            text("Man", " Big Factory "),
            text("DevID", "\n  IMEI:1  "),
            text("DevTyp", " phone "),
            with(
                dev("DataStore"),
                vec![
                    text("SourceRef", " ./contacts "),
                    text("DisplayName", " Phone book "),
                    text("MaxGUIDSize", " 32 "),
                    pair("Rx-Pref", " text/x-vcard ", " 2.1 "),
                    with(dev("SyncCap"), vec![text("SyncType", " 01 ")]),
                ],
            ),
            with(dev("Ext"), vec![text("XNam", " n "), text("XVal", " v ")]),
        ],
    );
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.ver_dtd, "1.2");
    assert_eq!(d.dev_id, "IMEI:1");
    assert_eq!(d.dev_typ, "phone");
    assert_eq!(d.man.as_deref(), Some(" Big Factory "));
    let ds = &d.data_stores[0];
    assert_eq!(ds.source_ref, "./contacts");
    assert_eq!(ds.display_name.as_deref(), Some(" Phone book "));
    assert_eq!(ds.max_guid_size, Some(32));
    assert_eq!(ds.rx_pref, CtTypeVer::new("text/x-vcard", "2.1"));
    assert_eq!(ds.sync_cap.sync_types, ["01"]);
    assert!(ds.sync_cap.supports(1));
    assert!(!ds.sync_cap.supports(2));
    assert_eq!(d.exts[0].xnam, "n");
    assert_eq!(d.exts[0].xvals, [" v "]);
    // Missing Tx-Pref tolerated (empty), and written because the DTD requires it.
    assert_eq!(ds.tx_pref, CtTypeVer::default());
    let t = to_tree(&d);
    assert!(t.child("DataStore").unwrap().child("Tx-Pref").is_some());
}

#[test]
fn oma_primer_example_is_accepted() {
    // OMA Primer App. B package 1: no VerDTD, `DevId`, SyncType 01/02/07.
    let el = with(
        dev("DevInf"),
        vec![
            text("Man", "Big Factory, Ltd."),
            text("Mod", "4119"),
            text("DevId", "1218182THD000001-2"),
            text("DevTyp", "phone"),
            dev("UTC"),
            dev("SupportLargeObjs"),
            dev("SupportNumberOfChanges"),
            with(
                dev("DataStore"),
                vec![
                    text("SourceRef", "./contacts"),
                    pair("Rx-Pref", "text/x-vcard", "2.1"),
                    pair("Tx-Pref", "text/x-vcard", "2.1"),
                    with(
                        dev("CTCap"),
                        vec![
                            text("CTType", "text/x-vcard"),
                            text("VerCT", "2.1"),
                            with(
                                dev("Property"),
                                vec![
                                    text("PropName", "NOTE"),
                                    text("MaxOccur", "1"),
                                    text("MaxSize", "255"),
                                    dev("NoTruncate"),
                                ],
                            ),
                        ],
                    ),
                    with(
                        dev("SyncCap"),
                        vec![
                            text("SyncType", "01"),
                            text("SyncType", "02"),
                            text("SyncType", "07"),
                        ],
                    ),
                ],
            ),
        ],
    );
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.ver_dtd, "1.2", "inferred");
    assert_eq!(d.dev_id, "1218182THD000001-2");
    let ds = &d.data_stores[0];
    assert!(ds.sync_cap.supports(7));
    assert_eq!(ds.sync_cap.sync_types, ["01", "02", "07"]);
    let note = ds.ct_caps[0].property("note").unwrap();
    assert_eq!(
        (note.max_occur, note.max_size, note.no_truncate),
        (Some(1), Some(255), true)
    );
    // Written with the canonical spelling.
    let t = to_tree(&d);
    assert_eq!(
        t.child("DevID").and_then(|e| e.text()).as_deref(),
        Some("1218182THD000001-2")
    );
    assert!(t.child("DevId").is_none());
}

#[test]
fn missing_verdtd_with_flat_ctcap_is_inferred_as_1_1() {
    let mut el = minimal_v12_tree();
    el.children.remove(0);
    el.push(with(
        dev("CTCap"),
        vec![text("CTType", "text/x-vcard"), text("PropName", "N")],
    ));
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.ver_dtd, "1.1");
}

#[test]
fn extra_rx_pref_becomes_rx() {
    let mut el = minimal_v12_tree();
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.push(pair("Rx-Pref", "text/directory", ""));
        ds.push(pair("Tx-Pref", "text/directory", ""));
    }
    let d = DevInf::from_element(el).unwrap();
    let ds = &d.data_stores[0];
    assert_eq!(ds.rx_pref.ct_type, "text/x-vcard");
    assert_eq!(ds.rx, [CtTypeVer::new("text/directory", "")]);
    assert_eq!(ds.tx, [CtTypeVer::new("text/directory", "")]);
}

#[test]
fn hierarchical_sync_at_devinf_level_applies_to_every_datastore() {
    let mut el = minimal_v12_tree();
    el.push(dev("SupportHierarchicalSync"));
    let d = DevInf::from_element(el).unwrap();
    assert!(d.data_stores.iter().all(|ds| ds.support_hierarchical_sync));
    let t = to_tree(&d);
    assert!(t.child("SupportHierarchicalSync").is_none());
    assert!(t
        .child("DataStore")
        .unwrap()
        .child("SupportHierarchicalSync")
        .is_some());
}

#[test]
fn several_synccaps_are_merged() {
    let mut el = minimal_v12_tree();
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.push(with(dev("SyncCap"), vec![text("SyncType", "2")]));
    }
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.data_stores[0].sync_cap.sync_types, ["1", "2"]);
}

#[test]
fn invalid_number_is_an_error() {
    let mut el = minimal_v12_tree();
    if let Some(Node::Element(ds)) = el.children.last_mut() {
        ds.push(text("MaxGUIDSize", "lots"));
    }
    assert!(matches!(
        DevInf::from_element(el),
        Err(ModelError::Invalid {
            element: "MaxGUIDSize",
            ..
        })
    ));
    let bad = with(
        dev("Property"),
        vec![text("PropName", "A"), text("MaxOccur", "-1")],
    );
    let cap = with(dev("CTCap"), vec![text("CTType", "t"), bad]);
    assert!(CtCap::from_element(cap).is_err());
}

#[test]
fn binary_text_is_an_error_not_a_panic() {
    let mut el = minimal_v12_tree();
    let mut man = dev("Man");
    man.children.push(Node::Opaque(vec![0xFF, 0xFE]));
    el.children.insert(1, Node::Element(man));
    assert!(matches!(
        DevInf::from_element(el),
        Err(ModelError::Invalid { element: "Man", .. })
    ));
    // UTF-8 opaque data (XML CDATA) is text.
    let mut el = minimal_v12_tree();
    let mut oem = dev("OEM");
    oem.children.push(Node::Opaque(b"Synthesis AG".to_vec()));
    el.children.insert(1, Node::Element(oem));
    let d = DevInf::from_element(el).unwrap();
    assert_eq!(d.oem.as_deref(), Some("Synthesis AG"));
}

#[test]
fn missing_required_children_of_parts_are_errors() {
    let no_propname = with(
        dev("CTCap"),
        vec![
            text("CTType", "t"),
            with(dev("Property"), vec![text("DataType", "chr")]),
        ],
    );
    assert!(matches!(
        CtCap::from_element(no_propname),
        Err(ModelError::Missing {
            parent: "Property",
            child: "PropName"
        })
    ));
    let no_cttype = with(dev("CTCap"), vec![text("VerCT", "1")]);
    assert!(matches!(
        CtCap::from_element(no_cttype),
        Err(ModelError::Missing {
            parent: "CTCap",
            child: "CTType"
        })
    ));
    let mut el = minimal_v12_tree();
    el.push(with(dev("Ext"), vec![text("XVal", "v")]));
    assert!(matches!(
        DevInf::from_element(el),
        Err(ModelError::Missing {
            parent: "Ext",
            child: "XNam"
        })
    ));
}

// ---------------------------------------------------------------------------------
// Property tests: model -> tree -> model for arbitrary version-consistent models
// ---------------------------------------------------------------------------------

fn ident() -> impl Strategy<Value = String> {
    "[A-Za-z0-9./:_-]{0,10}"
}

fn free_text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{4e2d}\n]{0,12}"
}

fn ctv() -> impl Strategy<Value = CtTypeVer> {
    (ident(), ident()).prop_map(|(a, b)| CtTypeVer::new(a, b))
}

fn prop_param() -> impl Strategy<Value = PropParam> {
    (
        ident(),
        proptest::option::of(ident()),
        proptest::collection::vec(free_text(), 0..3),
        proptest::option::of(free_text()),
    )
        .prop_map(
            |(param_name, data_type, val_enums, display_name)| PropParam {
                param_name,
                data_type,
                val_enums,
                display_name,
            },
        )
}

fn property() -> impl Strategy<Value = Property> {
    (
        (
            ident(),
            proptest::option::of(ident()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            proptest::collection::vec(free_text(), 0..3),
            proptest::option::of(free_text()),
            proptest::collection::vec(prop_param(), 0..3),
        ),
    )
        .prop_map(
            |(
                (prop_name, data_type, max_occur, max_size, no_truncate),
                (val_enums, display_name, prop_params),
            )| Property {
                prop_name,
                data_type,
                max_occur,
                max_size,
                no_truncate,
                val_enums,
                display_name,
                prop_params,
            },
        )
}

fn ct_cap() -> impl Strategy<Value = CtCap> {
    (
        ident(),
        ident(),
        any::<bool>(),
        proptest::collection::vec(property(), 0..4),
    )
        .prop_map(|(ct_type, ver_ct, field_level, properties)| CtCap {
            ct_type,
            ver_ct,
            field_level,
            properties,
        })
}

fn data_store(v12: bool) -> impl Strategy<Value = DataStore> {
    (
        (
            ident(),
            proptest::option::of(free_text()),
            proptest::option::of(any::<u32>()),
            ctv(),
            proptest::collection::vec(ctv(), 0..3),
            ctv(),
            proptest::collection::vec(ctv(), 0..3),
        ),
        (
            proptest::collection::vec(ct_cap(), 0..3),
            proptest::option::of(
                (
                    any::<bool>(),
                    proptest::option::of(any::<u64>()),
                    proptest::option::of(any::<u64>()),
                )
                    .prop_map(|(shared_mem, max_mem, max_id)| DsMem {
                        shared_mem,
                        max_mem,
                        max_id,
                    }),
            ),
            any::<bool>(),
            proptest::collection::vec(ident(), 0..4),
            proptest::collection::vec(ctv(), 0..2),
            proptest::collection::vec(
                (
                    ident(),
                    ident(),
                    proptest::collection::vec(ident(), 0..3),
                    proptest::collection::vec(ident(), 0..3),
                )
                    .prop_map(|(ct_type, ver_ct, filter_keywords, prop_names)| {
                        FilterCap {
                            ct_type,
                            ver_ct,
                            filter_keywords,
                            prop_names,
                        }
                    }),
                0..2,
            ),
        ),
    )
        .prop_map(
            move |(
                (source_ref, display_name, max_guid_size, rx_pref, rx, tx_pref, tx),
                (ct_caps, ds_mem, hier, sync_types, filter_rx, filter_caps),
            )| {
                let mut ds = DataStore {
                    source_ref,
                    display_name,
                    max_guid_size,
                    rx_pref,
                    rx,
                    tx_pref,
                    tx,
                    ct_caps,
                    ds_mem,
                    support_hierarchical_sync: hier,
                    sync_cap: SyncCap { sync_types },
                    filter_rx,
                    filter_caps,
                };
                if !v12 {
                    ds.ct_caps.clear();
                    ds.support_hierarchical_sync = false;
                    ds.filter_rx.clear();
                    ds.filter_caps.clear();
                }
                ds
            },
        )
}

fn flat_entry() -> impl Strategy<Value = CtCap11Entry> {
    prop_oneof![
        ident().prop_map(CtCap11Entry::CtType),
        ident().prop_map(CtCap11Entry::PropName),
        free_text().prop_map(CtCap11Entry::ValEnum),
        ident().prop_map(CtCap11Entry::DataType),
        any::<u32>().prop_map(CtCap11Entry::Size),
        free_text().prop_map(CtCap11Entry::DisplayName),
        ident().prop_map(CtCap11Entry::ParamName),
    ]
}

fn devinf(v12: bool) -> impl Strategy<Value = DevInf> {
    // DevInf 1.2 requires Man, Mod, FwV, SwV, HwV: `None` is written as an empty
    // element and reads back as `Some("")`.
    let required = move |o: Option<String>| match (o, v12) {
        (None, true) => Some(String::new()),
        (o, _) => o,
    };
    let text = move || proptest::option::of(free_text()).prop_map(required);
    let version = move || proptest::option::of(ident()).prop_map(required);
    (
        (
            text(),
            text(),
            proptest::option::of(free_text()),
            version(),
            version(),
            version(),
        ),
        (
            ident(),
            ident(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            proptest::collection::vec(data_store(v12), 0..3),
            proptest::collection::vec(proptest::collection::vec(flat_entry(), 0..8), 0..2),
            proptest::collection::vec(
                (ident(), proptest::collection::vec(free_text(), 0..3))
                    .prop_map(|(xnam, xvals)| Ext { xnam, xvals }),
                0..3,
            ),
        ),
    )
        .prop_map(
            move |(
                (man, model, oem, fw_v, sw_v, hw_v),
                (dev_id, dev_typ, utc, lo, noc),
                (data_stores, flat, exts),
            )| DevInf {
                ver_dtd: if v12 { "1.2" } else { "1.1" }.into(),
                // An empty Man/Mod/OEM/FwV/SwV/HwV reads back as absent.
                man: man.filter(|s: &String| !s.is_empty()),
                model: model.filter(|s: &String| !s.is_empty()),
                oem: oem.filter(|s: &String| !s.is_empty()),
                fw_v: fw_v.filter(|s: &String| !s.is_empty()),
                sw_v: sw_v.filter(|s: &String| !s.is_empty()),
                hw_v: hw_v.filter(|s: &String| !s.is_empty()),
                dev_id,
                dev_typ,
                utc,
                support_large_objs: lo,
                support_number_of_changes: noc,
                data_stores,
                ct_caps: if v12 {
                    Vec::new()
                } else {
                    flat.into_iter()
                        .map(|entries| CtCap11 { entries })
                        .collect()
                },
                exts,
            },
        )
}

proptest! {
    #[test]
    fn prop_devinf12_model_tree_model(d in devinf(true)) {
        prop_assert_eq!(roundtrip(&d), d);
    }

    #[test]
    fn prop_devinf11_model_tree_model(d in devinf(false)) {
        prop_assert_eq!(roundtrip(&d), d);
    }

    #[test]
    fn prop_written_trees_are_in_dtd_order(d in devinf(true)) {
        let t = to_tree(&d);
        let mut n = t.clone();
        normalize_dtd_order(&mut n);
        prop_assert_eq!(n, t);
    }
}

/// WBX: DevInf token 0x1C is `Size` in DevInf 1.0/1.1 and `MaxSize` in 1.2; only the
/// document's public ID tells them apart. Found by the `message_roundtrip` fuzz target:
/// a DevInf whose `VerDTD` is unknown (here `2.1`) but which uses `Size` was written
/// with the 1.2 public ID and read back as `MaxSize`.
#[test]
fn token_0x1c_reads_back_under_the_name_it_was_written_with() {
    use syncml_core::wbxml::{decode_document, encode_element, EncodeError, EncodeOptions};
    for (ver, name) in [
        ("2.1", "Size"),
        ("1.2", "Size"),
        ("1.1", "MaxSize"),
        ("1.1", "Size"),
        ("1.2", "MaxSize"),
    ] {
        let tree = with(dev("DevInf"), vec![text("VerDTD", ver), text(name, "42")]);
        let bytes = encode_element(&tree, EncodeOptions::default()).expect("encodes");
        let back = decode_document(&bytes).expect("decodes").root;
        assert_eq!(
            names(&back),
            vec!["VerDTD".to_string(), name.to_string()],
            "{ver} {name}"
        );
    }
    let both = with(
        dev("DevInf"),
        vec![
            text("VerDTD", "1.2"),
            text("Size", "1"),
            text("MaxSize", "2"),
        ],
    );
    assert!(matches!(
        encode_element(&both, EncodeOptions::default()),
        Err(EncodeError::SizeNamesMixed)
    ));
}

//! Property tests at the element-tree level: any tree built from the SyncML and MetInf
//! vocabularies survives tree → WBXML → tree and tree → XML → tree unchanged, and no
//! byte string panics either decoder.

use proptest::prelude::*;
use syncml_core::model::SyncMl;
use syncml_core::names;
use syncml_core::tree::{Element, Namespace, Node};
use syncml_core::{wbxml, xml};

fn name() -> impl Strategy<Value = (Namespace, &'static str)> {
    prop_oneof![
        3 => prop::sample::select(names::syncml::TABLE).prop_map(|(_, n)| (Namespace::SyncMl, n)),
        1 => prop::sample::select(names::metinf::TABLE).prop_map(|(_, n)| (Namespace::MetInf, n)),
    ]
}

/// Character data: printable Unicode plus CR/LF/TAB, never empty, no NUL, no `]]>`.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&;:=/.\r\n\t\u{e9}\u{4e2d}\u{1F600}-]{1,40}"
        .prop_filter("no ]]>", |s| !s.contains("]]>"))
}

fn leaf() -> impl Strategy<Value = Element> {
    (
        name(),
        prop::option::of(prop_oneof![
            text().prop_map(Node::Text),
            text().prop_map(|t| Node::Opaque(t.into_bytes())),
        ]),
    )
        .prop_map(|((ns, n), child)| Element {
            ns,
            name: n.into(),
            children: child.into_iter().collect(),
        })
}

fn tree() -> impl Strategy<Value = Element> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        (name(), prop::collection::vec(inner, 1..6)).prop_map(|((ns, n), kids)| Element {
            ns,
            name: n.into(),
            children: kids.into_iter().map(Node::Element).collect(),
        })
    })
}

fn root(children: Vec<Element>) -> Element {
    Element {
        ns: Namespace::SyncMl,
        name: "SyncML".into(),
        children: children.into_iter().map(Node::Element).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tree_wbxml_tree_is_identity(kids in prop::collection::vec(tree(), 0..4)) {
        let r = root(kids);
        let bytes = wbxml::encode_element(&r, wbxml::EncodeOptions::default()).unwrap();
        let back = wbxml::decode_document(&bytes).unwrap();
        prop_assert_eq!(back.root, r);
    }

    #[test]
    fn tree_xml_tree_is_identity(kids in prop::collection::vec(tree(), 0..4)) {
        let r = root(kids);
        let bytes = xml::encode_element(&r, &xml::EncodeOptions::default()).unwrap();
        let back = xml::decode_document(&bytes).unwrap();
        prop_assert_eq!(back.root, r);
    }

    #[test]
    fn pretty_xml_keeps_the_tree(kids in prop::collection::vec(tree(), 0..4)) {
        let r = root(kids);
        let bytes = xml::encode_element(&r, &xml::EncodeOptions::pretty()).unwrap();
        let back = xml::decode_document(&bytes).unwrap();
        prop_assert_eq!(back.root, r);
    }

    /// Streamed decoding (commands converted as they close) gives the same message or
    /// the same first error as reading the model from the whole tree: random headers,
    /// bodies (sometimes two) and other children of the root, in any order.
    #[test]
    fn decode_is_the_same_streamed_or_from_the_tree(
        others in prop::collection::vec(tree(), 0..3),
        header in prop::option::of(prop::collection::vec(tree(), 0..4)),
        body in prop::collection::vec(tree(), 0..6),
        second_body in any::<bool>(),
        final_flag in any::<bool>(),
        at in 0usize..4,
    ) {
        let mut kids = others;
        let named = |name: &'static str, children: Vec<Element>| Element {
            ns: Namespace::SyncMl,
            name: name.into(),
            children: children.into_iter().map(Node::Element).collect(),
        };
        let mut body = body;
        if final_flag {
            body.push(named("Final", vec![]));
        }
        let body = named("SyncBody", body);
        kids.insert(at.min(kids.len()), body.clone());
        if second_body {
            kids.push(body);
        }
        if let Some(h) = header {
            kids.insert(0, named("SyncHdr", h));
        }
        let r = root(kids);
        let encoded = [
            wbxml::encode_element(&r, wbxml::EncodeOptions::default()).unwrap(),
            xml::encode_element(&r, &xml::EncodeOptions::default()).unwrap(),
        ];
        for bytes in encoded {
            let from_tree = syncml_core::decode_document(&bytes)
                .and_then(|d| SyncMl::from_element(d.root).map_err(Into::into));
            prop_assert_eq!(syncml_core::decode(&bytes), from_tree);
        }
    }

    #[test]
    fn wbxml_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = wbxml::decode_document(&bytes);
    }

    #[test]
    fn wbxml_decoder_never_panics_on_a_valid_header(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = vec![0x02, 0xA4, 0x01, 0x6A, 0x00];
        bytes.extend(body);
        let _ = wbxml::decode_document(&bytes);
        let _ = syncml_core::decode(&bytes);
    }

    #[test]
    fn xml_decoder_never_panics(s in "[<>/a-zA-Z =\"'!\\[\\]&;#x0-9-]{0,300}") {
        let _ = xml::decode_document(s.as_bytes());
        let _ = syncml_core::decode(s.as_bytes());
    }
}

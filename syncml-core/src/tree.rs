//! The element tree both codecs speak.
//!
//! XML and WBXML are two spellings of one document: a tree of elements, each in a
//! [`Namespace`] (which becomes an XML `xmlns` or a WBXML code page), holding
//! character data ([`Node::Text`]), opaque bytes ([`Node::Opaque`], WBXML `OPAQUE` or
//! XML `CDATA`) and child elements. The typed model in [`crate::model`] is built from
//! and lowered to this tree, so the model code is written once for both encodings.

use std::borrow::Cow;

/// The vocabulary an element belongs to.
///
/// In XML this is the element's namespace; in WBXML it selects the code page (SyncML
/// code page 0, MetInf code page 1) or, for DevInf, a nested WBXML document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `SYNCML:SYNCML1.x`: the SyncML representation protocol (WBXML code page 0).
    SyncMl,
    /// `syncml:metinf`: meta information (WBXML code page 1 of a SyncML document).
    MetInf,
    /// `syncml:devinf`: device information (its own WBXML document, code page 0).
    DevInf,
    /// Any other namespace, kept verbatim (for example `syncml:dmddf1.2` inside `Data`).
    /// Only representable in XML.
    Other(String),
}

impl Namespace {
    /// The XML namespace name used on output for this vocabulary, given the SyncML
    /// version of the enclosing document (`"1.1"`, `"1.2"`, ...).
    pub fn xml_name(&self, version: SyncMlVersion) -> &str {
        match self {
            Namespace::SyncMl => version.namespace(),
            Namespace::MetInf => "syncml:metinf",
            Namespace::DevInf => "syncml:devinf",
            Namespace::Other(s) => s,
        }
    }

    /// Classifies an XML namespace name; liberal as REP-03 asks (case-insensitive).
    pub fn from_xml_name(name: &str) -> Namespace {
        let lower = name.trim().to_ascii_lowercase();
        if lower.starts_with("syncml:syncml") {
            Namespace::SyncMl
        } else if lower == "syncml:metinf" {
            Namespace::MetInf
        } else if lower.starts_with("syncml:devinf") {
            Namespace::DevInf
        } else {
            Namespace::Other(name.to_string())
        }
    }
}

/// A SyncML representation-protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SyncMlVersion {
    /// SyncML 1.0 (accepted on input).
    V1_0,
    /// SyncML 1.1.
    V1_1,
    /// OMA DS 1.2 (SyncML 1.2).
    #[default]
    V1_2,
}

impl SyncMlVersion {
    /// The `VerDTD` value (`"1.2"`).
    pub fn ver_dtd(self) -> &'static str {
        match self {
            SyncMlVersion::V1_0 => "1.0",
            SyncMlVersion::V1_1 => "1.1",
            SyncMlVersion::V1_2 => "1.2",
        }
    }

    /// The `VerProto` value for data synchronization (`"SyncML/1.2"`).
    pub fn ver_proto(self) -> &'static str {
        match self {
            SyncMlVersion::V1_0 => "SyncML/1.0",
            SyncMlVersion::V1_1 => "SyncML/1.1",
            SyncMlVersion::V1_2 => "SyncML/1.2",
        }
    }

    /// The root namespace (`"SYNCML:SYNCML1.2"`).
    pub fn namespace(self) -> &'static str {
        match self {
            SyncMlVersion::V1_0 => "SYNCML:SYNCML1.0",
            SyncMlVersion::V1_1 => "SYNCML:SYNCML1.1",
            SyncMlVersion::V1_2 => "SYNCML:SYNCML1.2",
        }
    }

    /// Parses a `VerDTD` value, trimming whitespace.
    pub fn from_ver_dtd(s: &str) -> Option<SyncMlVersion> {
        match s.trim() {
            "1.0" => Some(SyncMlVersion::V1_0),
            "1.1" => Some(SyncMlVersion::V1_1),
            "1.2" => Some(SyncMlVersion::V1_2),
            _ => None,
        }
    }

    /// Guesses the version from a root namespace name (`SYNCML:SYNCML1.1`).
    pub fn from_namespace(s: &str) -> Option<SyncMlVersion> {
        let l = s.trim().to_ascii_lowercase();
        match l.strip_prefix("syncml:syncml")? {
            "1.0" => Some(SyncMlVersion::V1_0),
            "1.1" => Some(SyncMlVersion::V1_1),
            "1.2" => Some(SyncMlVersion::V1_2),
            _ => None,
        }
    }
}

/// One child of an [`Element`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data: WBXML `STR_I`/`STR_T`, XML text (escaped on output).
    Text(String),
    /// Opaque bytes: WBXML `OPAQUE`, XML `CDATA` (must be UTF-8 to be written as XML).
    Opaque(Vec<u8>),
}

/// An element: a name in a namespace with ordered children. SyncML uses no attributes
/// apart from `xmlns`, which [`Element::ns`] carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The vocabulary (namespace / code page) of this element.
    pub ns: Namespace,
    /// The local name (`"SyncHdr"`). Static for every name in the token tables.
    pub name: Cow<'static, str>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new empty element.
    pub fn new(ns: Namespace, name: impl Into<Cow<'static, str>>) -> Element {
        Element {
            ns,
            name: name.into(),
            children: Vec::new(),
        }
    }

    /// A new element holding one text node (or nothing, when `text` is empty).
    pub fn with_text(
        ns: Namespace,
        name: impl Into<Cow<'static, str>>,
        text: impl Into<String>,
    ) -> Element {
        let text = text.into();
        let mut e = Element::new(ns, name);
        if !text.is_empty() {
            e.children.push(Node::Text(text));
        }
        e
    }

    /// Appends a child element and returns `self` for chaining.
    pub fn push(&mut self, child: Element) -> &mut Element {
        self.children.push(Node::Element(child));
        self
    }

    /// Iterates over the child elements, skipping character data.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The concatenated character data of this element (text and UTF-8 opaque data),
    /// ignoring child elements. Returns `None` if an opaque part is not UTF-8.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        let mut parts = self.children.iter().filter_map(|n| match n {
            Node::Text(t) => Some(Ok(t.as_str())),
            Node::Opaque(b) => Some(std::str::from_utf8(b).map_err(|_| ())),
            Node::Element(_) => None,
        });
        let first = match parts.next() {
            None => return Some(Cow::Borrowed("")),
            Some(p) => p.ok()?,
        };
        let mut rest = parts.peekable();
        if rest.peek().is_none() {
            return Some(Cow::Borrowed(first));
        }
        let mut s = first.to_string();
        for p in rest {
            s.push_str(p.ok()?);
        }
        Some(Cow::Owned(s))
    }

    /// True when the element has no children at all (`<Final/>`).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

/// Appends `node` to `parent`'s children, giving a vector that is still empty room for
/// what usually follows: a leaf's one text node alone (a vector's first allocation
/// otherwise takes room for four nodes, hundreds of bytes per leaf), and for child
/// elements as many as the element usually has (a `Status` seven or so: with four it
/// would be moved once per status, thousands of times in a message of statuses).
pub(crate) fn push_child(parent: &mut Element, node: Node) {
    if parent.children.capacity() == 0 {
        let room = match (&node, parent.name.as_ref()) {
            (Node::Element(_), "Status" | "SyncHdr") => 8,
            (Node::Element(_), "MapItem" | "Source" | "Target") => 2,
            (Node::Element(_), _) => 4,
            _ => 1,
        };
        parent.children.reserve_exact(room);
    }
    parent.children.push(node);
}

/// A whole document: the root element plus what the encoding's header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The root element (`SyncML`, or `DevInf` for a standalone DevInf document).
    pub root: Element,
    /// For a document read from WBXML: its header. `None` for XML.
    pub wbxml: Option<WbxmlHeader>,
}

/// What a WBXML document header carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WbxmlHeader {
    /// The version byte: `0x02` (WBXML 1.2) or `0x03` (WBXML 1.3) in practice.
    pub version: u8,
    /// The public identifier (`0x1201` for SyncML 1.2), resolved from the string
    /// table when the document names it by string; `0` when unknown.
    pub public_id: u32,
    /// The IANA MIBenum of the character set (`106` = UTF-8).
    pub charset: u32,
}

/// A consumer of the document event stream: the one interface both encoders and the
/// tree builder implement, and the one the typed model writes itself to.
///
/// Methods are infallible so that model code stays simple; an encoder that meets
/// something it cannot represent records the first error and reports it when it is
/// finished.
pub trait Sink {
    /// Opens an element. Every `start` is matched by one [`Sink::end`].
    fn start(&mut self, ns: &Namespace, name: &str);
    /// Character data inside the open element.
    fn text(&mut self, text: &str);
    /// Opaque bytes inside the open element.
    fn opaque(&mut self, bytes: &[u8]);
    /// Closes the innermost open element.
    fn end(&mut self);
}

impl Element {
    /// Replays this element and its subtree into a [`Sink`].
    pub fn write<S: Sink + ?Sized>(&self, sink: &mut S) {
        sink.start(&self.ns, &self.name);
        for child in &self.children {
            match child {
                Node::Element(e) => e.write(sink),
                Node::Text(t) => sink.text(t),
                Node::Opaque(b) => sink.opaque(b),
            }
        }
        sink.end();
    }
}

/// A [`Sink`] that builds an [`Element`] tree (used to lower the model to a tree).
#[derive(Debug, Default)]
pub struct TreeBuilder {
    stack: Vec<Element>,
    done: Option<Element>,
}

impl TreeBuilder {
    /// A new, empty builder.
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    /// The finished root element, if exactly one was written and closed.
    pub fn finish(self) -> Option<Element> {
        if self.stack.is_empty() {
            self.done
        } else {
            None
        }
    }
}

impl Sink for TreeBuilder {
    fn start(&mut self, ns: &Namespace, name: &str) {
        self.stack
            .push(Element::new(ns.clone(), crate::names::intern(name)));
    }
    fn text(&mut self, text: &str) {
        if let Some(top) = self.stack.last_mut() {
            push_child(top, Node::Text(text.to_string()));
        }
    }
    fn opaque(&mut self, bytes: &[u8]) {
        if let Some(top) = self.stack.last_mut() {
            push_child(top, Node::Opaque(bytes.to_vec()));
        }
    }
    fn end(&mut self) {
        if let Some(el) = self.stack.pop() {
            match self.stack.last_mut() {
                Some(parent) => push_child(parent, Node::Element(el)),
                None => self.done = Some(el),
            }
        }
    }
}

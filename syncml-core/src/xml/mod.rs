//! XML codec on quick-xml.
//!
//! Decoding is liberal (REP-03, REP-05, REP-42): the XML declaration, DOCTYPE,
//! comments and processing instructions are skipped; the root namespace is matched
//! case-insensitively and may be absent; MetInf and DevInf elements written without
//! their `xmlns` are recognised by name; whitespace between elements is dropped;
//! character data is kept byte-exact (no end-of-line normalisation, so vCard CRLFs
//! survive); `CDATA` becomes [`Node::Opaque`].
//!
//! Encoding is strict: UTF-8, `xmlns` declared on the root and on the first element of
//! each other vocabulary (REP-04), text escaped, opaque data as `CDATA`.
//!
//! ```
//! use syncml_core::xml;
//! let doc = xml::decode_document(b"<SyncML><SyncBody><Final/></SyncBody></SyncML>").unwrap();
//! let out = xml::encode_element(&doc.root, &xml::EncodeOptions::default()).unwrap();
//! assert_eq!(out, b"<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncBody><Final/></SyncBody></SyncML>");
//! ```

use crate::model::{Assembler, ModelError, SyncMl};
use crate::names;
use crate::tree::{push_child, Document, Element, Namespace, Node, Sink, SyncMlVersion};
use quick_xml::events::Event;
use quick_xml::Reader;

/// Why bytes are not an XML document we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is not UTF-8.
    #[error("byte {at}: XML input is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        at: usize,
    },
    /// A NUL character, which XML 1.0 does not allow anywhere.
    #[error("byte {at}: NUL character, which XML does not allow")]
    NulCharacter {
        /// Offset of the NUL.
        at: usize,
    },
    /// quick-xml rejected the input.
    #[error("byte {at}: malformed XML: {message}")]
    Syntax {
        /// Offset of the problem.
        at: usize,
        /// quick-xml's description.
        message: String,
    },
    /// A closing tag that does not match the open element.
    #[error("byte {at}: </{found}> closes <{expected}>")]
    MismatchedEnd {
        /// Offset of the closing tag.
        at: usize,
        /// The open element.
        expected: String,
        /// The closing tag's name.
        found: String,
    },
    /// The document ended inside an element, or has no root.
    #[error("byte {at}: document ended, expected {expected}")]
    UnexpectedEof {
        /// Offset of the end.
        at: usize,
        /// What was missing.
        expected: String,
    },
    /// An entity reference that is neither predefined nor a character reference.
    #[error("byte {at}: unknown entity &{name};")]
    UnknownEntity {
        /// Offset of the reference.
        at: usize,
        /// Its name.
        name: String,
    },
    /// Content after the root element.
    #[error("byte {at}: content after the root element")]
    TrailingData {
        /// Offset of the content.
        at: usize,
    },
    /// Elements nested deeper than the limit.
    #[error("byte {at}: elements nested deeper than {max}")]
    TooDeep {
        /// Offset of the tag.
        at: usize,
        /// The limit.
        max: usize,
    },
}

/// Deepest nesting accepted on input.
pub const MAX_DEPTH: usize = 64;

struct Frame {
    el: Element,
    /// Default namespace in force for children.
    default_ns: Namespace,
    /// Prefix bindings declared on this element.
    prefixes: Vec<(String, Namespace)>,
    raw_name: String,
}

fn reader_for(bytes: &[u8]) -> Result<Reader<&[u8]>, DecodeError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    // XML 1.0 has no way to carry U+0000 (production [2] Char), in text or CDATA.
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(DecodeError::NulCharacter { at });
    }
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.trim_text(false);
    cfg.check_end_names = false;
    cfg.expand_empty_elements = false;
    Ok(reader)
}

/// Character data outside the root element.
fn outside_root(after_root: bool, at: usize) -> DecodeError {
    if after_root {
        DecodeError::TrailingData { at }
    } else {
        DecodeError::Syntax {
            at,
            message: "text before the root element".into(),
        }
    }
}

fn general_ref(r: &quick_xml::events::BytesRef<'_>, at: usize) -> Result<String, DecodeError> {
    Ok(match r.resolve_char_ref() {
        Ok(Some('\0')) => return Err(DecodeError::NulCharacter { at }),
        Ok(Some(c)) => c.to_string(),
        Ok(None) => match r.as_ref() {
            "amp" => "&".into(),
            "lt" => "<".into(),
            "gt" => ">".into(),
            "quot" => "\"".into(),
            "apos" => "'".into(),
            other => {
                return Err(DecodeError::UnknownEntity {
                    at,
                    name: other.to_string(),
                })
            }
        },
        Err(e) => {
            return Err(DecodeError::Syntax {
                at,
                message: e.to_string(),
            })
        }
    })
}

struct StreamFrame {
    frame: Frame,
    has_elements: bool,
    pending: String,
}

impl StreamFrame {
    /// Emits pending character data, dropping whitespace between child elements as
    /// [`decode_document`] does.
    fn flush<S: Sink + ?Sized>(&mut self, sink: &mut S, at_end: bool) {
        if self.pending.is_empty() {
            return;
        }
        let ignorable = self.pending.trim().is_empty() && (self.has_elements || !at_end);
        if !ignorable {
            sink.text(&self.pending);
        }
        self.pending.clear();
    }
}

/// Decodes an XML document straight into a [`Sink`] (for example the WBXML encoder)
/// without building a tree, with the same liberal rules as [`decode_document`]. On
/// error the sink has received a prefix of the document and should be discarded.
pub fn decode_to_sink<S: Sink + ?Sized>(bytes: &[u8], sink: &mut S) -> Result<(), DecodeError> {
    let mut reader = reader_for(bytes)?;
    let mut stack: Vec<StreamFrame> = Vec::with_capacity(16);
    let mut done = false;
    loop {
        let at = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| DecodeError::Syntax {
            at: reader.error_position() as usize,
            message: e.to_string(),
        })?;
        match ev {
            Event::Start(_) | Event::Empty(_) if done => {
                return Err(DecodeError::TrailingData { at });
            }
            Event::Start(ref s) | Event::Empty(ref s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { at, max: MAX_DEPTH });
                }
                let frame = open(s, stack.last().map(|f| &f.frame), at)?;
                if let Some(parent) = stack.last_mut() {
                    parent.has_elements = true;
                    parent.flush(sink, false);
                }
                sink.start(&frame.el.ns, &frame.el.name);
                if matches!(ev, Event::Empty(_)) {
                    sink.end();
                    done = stack.is_empty();
                } else {
                    stack.push(StreamFrame {
                        frame,
                        has_elements: false,
                        pending: String::new(),
                    });
                }
            }
            Event::End(e) => {
                let Some(mut top) = stack.pop() else {
                    return Err(DecodeError::Syntax {
                        at,
                        message: format!("unmatched </{}>", e.name().as_ref()),
                    });
                };
                let found = e.name().as_ref().trim().to_string();
                if found != top.frame.raw_name {
                    return Err(DecodeError::MismatchedEnd {
                        at,
                        expected: top.frame.raw_name,
                        found,
                    });
                }
                top.flush(sink, true);
                sink.end();
                done = stack.is_empty();
            }
            Event::Text(t) => match stack.last_mut() {
                Some(f) => f.pending.push_str(&t),
                None => {
                    if !t.trim().is_empty() {
                        return Err(outside_root(done, at));
                    }
                }
            },
            Event::GeneralRef(r) => {
                let c = general_ref(&r, at)?;
                match stack.last_mut() {
                    Some(f) => f.pending.push_str(&c),
                    None => return Err(DecodeError::TrailingData { at }),
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(f) => {
                    f.flush(sink, false);
                    sink.opaque(c.as_bytes());
                }
                None => return Err(DecodeError::TrailingData { at }),
            },
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => {
                if let Some(f) = stack.last() {
                    return Err(DecodeError::UnexpectedEof {
                        at,
                        expected: format!("</{}>", f.frame.raw_name),
                    });
                }
                return if done {
                    Ok(())
                } else {
                    Err(DecodeError::UnexpectedEof {
                        at,
                        expected: "a root element".into(),
                    })
                };
            }
        }
    }
}

/// Decodes an XML document into an element tree.
pub fn decode_document(bytes: &[u8]) -> Result<Document, DecodeError> {
    decode_tree(bytes, None)
}

/// Decodes a SyncML message, converting each command as it closes (see
/// [`Assembler`]); the model error, if any, comes after every XML error.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<Result<SyncMl, ModelError>, DecodeError> {
    let mut assembler = Assembler::default();
    let doc = decode_tree(bytes, Some(&mut assembler))?;
    Ok(assembler.finish(doc.root))
}

/// The document; with an assembler, the children of `SyncBody` and `SyncML` it takes
/// are in it instead of in the tree.
fn decode_tree(
    bytes: &[u8],
    mut assembler: Option<&mut Assembler>,
) -> Result<Document, DecodeError> {
    let mut reader = reader_for(bytes)?;
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut root: Option<Element> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let ev = reader.read_event().map_err(|e| DecodeError::Syntax {
            at: reader.error_position() as usize,
            message: e.to_string(),
        })?;
        match ev {
            Event::Start(s) | Event::Empty(s) if root.is_some() => {
                let _ = s;
                return Err(DecodeError::TrailingData { at });
            }
            Event::Start(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { at, max: MAX_DEPTH });
                }
                let frame = open(&s, stack.last(), at)?;
                stack.push(frame);
            }
            Event::Empty(s) => {
                let frame = open(&s, stack.last(), at)?;
                close(&mut stack, &mut root, frame.el, assembler.as_deref_mut());
            }
            Event::End(e) => {
                let Some(mut frame) = stack.pop() else {
                    return Err(DecodeError::Syntax {
                        at,
                        message: format!("unmatched </{}>", e.name().as_ref()),
                    });
                };
                let found = e.name().as_ref().trim().to_string();
                if found != frame.raw_name {
                    return Err(DecodeError::MismatchedEnd {
                        at,
                        expected: frame.raw_name,
                        found,
                    });
                }
                drop_ignorable_whitespace(&mut frame.el);
                close(&mut stack, &mut root, frame.el, assembler.as_deref_mut());
            }
            Event::Text(t) => match stack.last_mut() {
                Some(f) => push_text(&mut f.el, &t),
                None => {
                    if !t.trim().is_empty() {
                        return Err(outside_root(root.is_some(), at));
                    }
                }
            },
            Event::GeneralRef(r) => {
                let c = general_ref(&r, at)?;
                match stack.last_mut() {
                    Some(f) => push_text(&mut f.el, &c),
                    None => return Err(DecodeError::TrailingData { at }),
                }
            }
            Event::CData(c) => match stack.last_mut() {
                Some(f) => push_child(&mut f.el, Node::Opaque(c.as_bytes().to_vec())),
                None => return Err(DecodeError::TrailingData { at }),
            },
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => {
                if let Some(f) = stack.last() {
                    return Err(DecodeError::UnexpectedEof {
                        at,
                        expected: format!("</{}>", f.raw_name),
                    });
                }
                return match root {
                    Some(root) => Ok(Document { root, wbxml: None }),
                    None => Err(DecodeError::UnexpectedEof {
                        at,
                        expected: "a root element".into(),
                    }),
                };
            }
        }
    }
}

fn push_text(el: &mut Element, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Node::Text(t)) = el.children.last_mut() {
        t.push_str(s);
    } else {
        push_child(el, Node::Text(s.to_string()));
    }
}

/// Whitespace between child elements is formatting, not data.
fn drop_ignorable_whitespace(el: &mut Element) {
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        el.children
            .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
    }
}

fn close(
    stack: &mut [Frame],
    root: &mut Option<Element>,
    el: Element,
    assembler: Option<&mut Assembler>,
) {
    let el = match (assembler, stack.first(), stack.last()) {
        (Some(a), Some(r), Some(p)) => match a.offer(&r.el.name, &p.el.name, stack.len(), el) {
            Some(el) => el,
            None => return,
        },
        _ => el,
    };
    match stack.last_mut() {
        Some(parent) => push_child(&mut parent.el, Node::Element(el)),
        None => *root = Some(el),
    }
}

fn open(
    s: &quick_xml::events::BytesStart<'_>,
    parent: Option<&Frame>,
    at: usize,
) -> Result<Frame, DecodeError> {
    let raw_name = s.name().as_ref().to_string();
    let mut default_ns = parent.map(|p| p.default_ns.clone());
    let mut prefixes = Vec::new();
    for attr in s.attributes() {
        let attr = attr.map_err(|e| DecodeError::Syntax {
            at,
            message: e.to_string(),
        })?;
        let key = attr.key.as_ref();
        if key != "xmlns" && !key.starts_with("xmlns:") {
            continue;
        }
        // The namespace name as written may hold references (`&gt;`, `&#x3E;`).
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| DecodeError::Syntax {
                at,
                message: e.to_string(),
            })?;
        if key == "xmlns" {
            default_ns = Some(Namespace::from_xml_name(&value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            prefixes.push((p.to_string(), Namespace::from_xml_name(&value)));
        }
    }
    let (prefix, local) = match raw_name.split_once(':') {
        Some((p, l)) => (Some(p), l),
        None => (None, raw_name.as_str()),
    };
    let mut ns = match prefix {
        Some(p) => lookup_prefix(p, &prefixes, parent)
            .unwrap_or_else(|| default_ns.clone().unwrap_or(Namespace::SyncMl)),
        None => default_ns.clone().unwrap_or(Namespace::SyncMl),
    };
    // Peers forget `xmlns='syncml:metinf'` and `xmlns='syncml:devinf'`: recognise those
    // vocabularies by name when the SyncML page has no such element.
    if ns == Namespace::SyncMl && names::syncml::token(local).is_none() {
        if names::metinf::token(local).is_some() {
            ns = Namespace::MetInf;
        } else if names::devinf_token(local).is_some() {
            ns = Namespace::DevInf;
        }
    }
    if prefix.is_none() {
        // Children of a repaired element inherit the repaired vocabulary.
        default_ns = Some(ns.clone());
    }
    Ok(Frame {
        el: Element::new(ns.clone(), names::intern(local)),
        default_ns: default_ns.unwrap_or(ns),
        prefixes,
        raw_name,
    })
}

fn lookup_prefix(
    p: &str,
    own: &[(String, Namespace)],
    parent: Option<&Frame>,
) -> Option<Namespace> {
    own.iter()
        .chain(parent.map(|f| f.prefixes.as_slice()).unwrap_or(&[]))
        .find(|(k, _)| k == p)
        .map(|(_, ns)| ns.clone())
}

/// Options of the XML encoder.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// Indent elements (two spaces a level); character data is never altered.
    pub pretty: bool,
    /// Write `<?xml version="1.0" encoding="UTF-8"?>` first.
    pub declaration: bool,
    /// The SyncML version whose namespace the root declares (`SYNCML:SYNCML1.2`).
    pub version: SyncMlVersion,
    /// Bytes to reserve for the output up front (0: grow as needed).
    pub capacity_hint: usize,
}

impl EncodeOptions {
    /// Indented output with an XML declaration, for people.
    pub fn pretty() -> EncodeOptions {
        EncodeOptions {
            pretty: true,
            declaration: true,
            version: SyncMlVersion::default(),
            capacity_hint: 0,
        }
    }
}

/// Why a tree cannot be written as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Opaque data that is not UTF-8 (binary content must be b64 text in XML).
    #[error(
        "<{element}> holds {len} bytes of binary data, which XML cannot carry; send it as b64"
    )]
    BinaryData {
        /// The element holding the data.
        element: String,
        /// Length of the data.
        len: usize,
    },
    /// Events did not form one well-nested element.
    #[error("unbalanced element events")]
    Unbalanced,
}

#[derive(Debug)]
struct Open {
    name: String,
    ns: Namespace,
    has_elements: bool,
    has_text: bool,
}

/// A streaming XML encoder: a [`Sink`] writing UTF-8 XML.
#[derive(Debug)]
pub struct Encoder {
    out: String,
    opts: EncodeOptions,
    stack: Vec<Open>,
    /// A start tag written without its closing `>` yet.
    pending: bool,
    error: Option<EncodeError>,
    done: bool,
}

impl Encoder {
    /// A new encoder.
    pub fn new(opts: EncodeOptions) -> Encoder {
        let mut out = String::with_capacity(opts.capacity_hint.max(4096));
        if opts.declaration {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            if opts.pretty {
                out.push('\n');
            }
        }
        Encoder {
            out,
            opts,
            stack: Vec::new(),
            pending: false,
            error: None,
            done: false,
        }
    }

    /// Bytes written so far (a start tag still waiting for its `>` counts without it).
    pub(crate) fn written(&self) -> usize {
        self.out.len()
    }

    /// Writes out the innermost start tag now, as one with content.
    pub(crate) fn open_content(&mut self) {
        self.close_pending();
    }

    /// Where the encoder is, to come back to with [`Encoder::rewind`] after writing a
    /// whole element.
    pub(crate) fn mark(&self) -> (usize, bool) {
        (self.out.len(), self.pending)
    }

    /// Forgets what was written since `mark` (a whole element, so the open elements are
    /// the same as then).
    pub(crate) fn rewind(&mut self, mark: (usize, bool)) {
        self.out.truncate(mark.0);
        self.pending = mark.1;
    }

    /// The first error met, if any (the encoder ignores events after it).
    pub(crate) fn error(&self) -> Option<&EncodeError> {
        self.error.as_ref()
    }

    /// Finishes and returns the document.
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.stack.is_empty() || !self.done {
            return Err(EncodeError::Unbalanced);
        }
        if self.opts.pretty {
            self.out.push('\n');
        }
        Ok(self.out.into_bytes())
    }

    fn close_pending(&mut self) {
        if self.pending {
            self.out.push('>');
            self.pending = false;
        }
    }

    fn indent(&mut self, level: usize) {
        self.out.push('\n');
        for _ in 0..level {
            self.out.push_str("  ");
        }
    }
}

fn escape_into(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

impl Sink for Encoder {
    fn start(&mut self, ns: &Namespace, name: &str) {
        if self.error.is_some() {
            return;
        }
        if self.done {
            self.error = Some(EncodeError::Unbalanced);
            return;
        }
        self.close_pending();
        let level = self.stack.len();
        let parent_ns = match self.stack.last_mut() {
            Some(p) => {
                p.has_elements = true;
                let pretty_here = self.opts.pretty && !p.has_text;
                let pns = p.ns.clone();
                if pretty_here {
                    self.indent(level);
                }
                Some(pns)
            }
            None => None,
        };
        self.out.push('<');
        self.out.push_str(name);
        if parent_ns.as_ref() != Some(ns) {
            self.out.push_str(" xmlns=\"");
            escape_into(&mut self.out, ns.xml_name(self.opts.version));
            self.out.push('"');
        }
        self.pending = true;
        self.stack.push(Open {
            name: name.to_string(),
            ns: ns.clone(),
            has_elements: false,
            has_text: false,
        });
    }

    fn text(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        if text.contains('\0') {
            // XML 1.0 cannot carry U+0000 even as a character reference.
            self.opaque(text.as_bytes());
            return;
        }
        self.close_pending();
        if let Some(top) = self.stack.last_mut() {
            top.has_text = true;
        }
        escape_into(&mut self.out, text);
    }

    fn opaque(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let Some(s) = std::str::from_utf8(bytes)
            .ok()
            .filter(|s| !s.contains('\0'))
        else {
            let element = self
                .stack
                .last()
                .map(|o| o.name.clone())
                .unwrap_or_default();
            self.error = Some(EncodeError::BinaryData {
                element,
                len: bytes.len(),
            });
            return;
        };
        self.close_pending();
        if let Some(top) = self.stack.last_mut() {
            top.has_text = true;
        }
        self.out.push_str("<![CDATA[");
        let mut rest = s;
        while let Some(i) = rest.find("]]>") {
            self.out.push_str(&rest[..i + 2]);
            self.out.push_str("]]><![CDATA[");
            rest = &rest[i + 2..];
        }
        self.out.push_str(rest);
        self.out.push_str("]]>");
    }

    fn end(&mut self) {
        if self.error.is_some() {
            return;
        }
        let Some(top) = self.stack.pop() else {
            self.error = Some(EncodeError::Unbalanced);
            return;
        };
        if self.pending {
            self.out.push_str("/>");
            self.pending = false;
        } else {
            if self.opts.pretty && top.has_elements && !top.has_text {
                self.indent(self.stack.len());
            }
            self.out.push_str("</");
            self.out.push_str(&top.name);
            self.out.push('>');
        }
        if self.stack.is_empty() {
            self.done = true;
        }
    }
}

/// Encodes an element tree as an XML document. The root's SyncML version is taken
/// from `SyncHdr/VerDTD` when present, overriding `opts.version`.
pub fn encode_element(root: &Element, opts: &EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let mut opts = opts.clone();
    if let Some(v) = root
        .child("SyncHdr")
        .and_then(|h| h.child("VerDTD"))
        .and_then(|v| v.text())
        .and_then(|t| SyncMlVersion::from_ver_dtd(&t))
    {
        opts.version = v;
    }
    let mut enc = Encoder::new(opts);
    root.write(&mut enc);
    enc.finish()
}

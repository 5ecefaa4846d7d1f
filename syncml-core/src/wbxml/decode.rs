//! WBXML → element tree.

use super::{mbuint, public_id_of_fpi, sniff_header, vocabulary, Limits, Vocabulary};
use crate::model::{Assembler, ModelError, SyncMl};
use crate::names;
use crate::tree::{push_child, Document, Element, Namespace, Node, Sink, WbxmlHeader};
use std::borrow::Cow;

/// Why bytes are not a WBXML document we can read. Every variant names the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended early.
    #[error("byte {at}: input ended, expected {expected}")]
    UnexpectedEof {
        /// Offset where more input was needed.
        at: usize,
        /// What was being read.
        expected: &'static str,
    },
    /// An mb_u_int32 longer than 5 bytes or above 2^32-1.
    #[error("byte {at}: malformed mb_u_int32 (more than 32 bits)")]
    BadMbUint32 {
        /// Offset of the number.
        at: usize,
    },
    /// The version byte is not WBXML 1.1-1.3.
    #[error("byte 0: unsupported WBXML version 0x{version:02X}, expected 0x01-0x03")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The public identifier is not SyncML, MetInf or DevInf.
    #[error(
        "byte {at}: public identifier {public_id:#06X} is not a SyncML, MetInf or DevInf document"
    )]
    UnknownPublicId {
        /// Offset of the public identifier.
        at: usize,
        /// The identifier (0 when named by an unknown string).
        public_id: u32,
    },
    /// A character set other than UTF-8, US-ASCII or ISO-8859-1.
    #[error("byte {at}: unsupported charset MIBenum {charset}, expected 106 (UTF-8)")]
    UnsupportedCharset {
        /// Offset of the charset.
        at: usize,
        /// The MIBenum found.
        charset: u32,
    },
    /// The string table is larger than [`Limits::max_string_table`].
    #[error("byte {at}: string table of {len} bytes exceeds the limit of {max}")]
    StringTableTooLarge {
        /// Offset of the length.
        at: usize,
        /// Declared length.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// A string-table reference past the end of the table.
    #[error("byte {at}: string table offset {offset} outside the {len}-byte table")]
    StrTableOffset {
        /// Offset of the reference.
        at: usize,
        /// The referenced offset.
        offset: u32,
        /// The table's length.
        len: usize,
    },
    /// A tag token with no name on the current code page.
    #[error("byte {at}: unknown tag token 0x{token:02X} on code page {page}")]
    UnknownToken {
        /// Offset of the token.
        at: usize,
        /// The code page in force.
        page: u8,
        /// The token (without content/attribute bits).
        token: u8,
    },
    /// A code page that the document's vocabulary does not have.
    #[error("byte {at}: code page {page} does not exist in this vocabulary")]
    UnknownCodePage {
        /// Offset of the SWITCH_PAGE.
        at: usize,
        /// The page.
        page: u8,
    },
    /// A global token SyncML never uses in content (EXT_*, attributes on the root...).
    #[error("byte {at}: unexpected token 0x{token:02X} ({what})")]
    UnexpectedToken {
        /// Offset of the token.
        at: usize,
        /// The token.
        token: u8,
        /// Where it was found.
        what: &'static str,
    },
    /// Character data that is not valid in the declared charset.
    #[error("byte {at}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string.
        at: usize,
    },
    /// An `ENTITY` whose value is not a Unicode scalar value, or is NUL.
    #[error("byte {at}: entity {code:#X} is not a character XML allows")]
    InvalidEntity {
        /// Offset of the entity.
        at: usize,
        /// The code point.
        code: u32,
    },
    /// Elements nested deeper than [`Limits::max_depth`].
    #[error("byte {at}: elements nested deeper than {max}")]
    TooDeep {
        /// Offset of the tag.
        at: usize,
        /// The limit.
        max: usize,
    },
    /// More elements than [`Limits::max_elements`].
    #[error("byte {at}: more than {max} elements")]
    TooManyElements {
        /// Offset of the tag.
        at: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes after the root element's END.
    #[error("byte {at}: {len} bytes of trailing data after the root element")]
    TrailingData {
        /// Offset of the first trailing byte.
        at: usize,
        /// How many bytes follow.
        len: usize,
    },
    /// The body holds no root element.
    #[error("byte {at}: no root element")]
    NoRoot {
        /// Offset where the root was expected.
        at: usize,
    },
}

/// Decodes a WBXML document with default [`Limits`].
pub fn decode_document(bytes: &[u8]) -> Result<Document, DecodeError> {
    decode_document_with(bytes, &Limits::default())
}

/// Decodes a WBXML document straight into a [`Sink`] (for example the XML encoder),
/// without building a tree; returns the header. On error the sink has received a
/// prefix of the document and should be discarded.
pub fn decode_to_sink<S: Sink + ?Sized>(
    bytes: &[u8],
    limits: &Limits,
    sink: &mut S,
) -> Result<WbxmlHeader, DecodeError> {
    let mut elements = 0usize;
    let mut d = Decoder {
        input: bytes,
        pos: 0,
        limits,
        elements: &mut elements,
        nesting: 0,
    };
    let h = d.header()?;
    d.skip_pis(&h)?;
    if d.pos >= d.input.len() {
        return Err(DecodeError::NoRoot { at: d.pos });
    }
    let mut b = SinkBuild {
        sink,
        open: Vec::with_capacity(16),
    };
    d.body_into(&h, &mut b)?;
    d.skip_pis(&h)?;
    if d.pos < d.input.len() {
        return Err(DecodeError::TrailingData {
            at: d.pos,
            len: d.input.len() - d.pos,
        });
    }
    Ok(WbxmlHeader {
        version: h.version,
        public_id: h.public_id,
        charset: h.charset_code,
    })
}

/// Decodes a SyncML message, converting each command as it closes (see
/// [`Assembler`]); the model error, if any, comes after every WBXML error.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<Result<SyncMl, ModelError>, DecodeError> {
    let limits = Limits::default();
    let mut elements = 0usize;
    let mut d = Decoder {
        input: bytes,
        pos: 0,
        limits: &limits,
        elements: &mut elements,
        nesting: 0,
    };
    let (doc, assembler) = d.document_with(Some(Assembler::default()))?;
    Ok(assembler.unwrap_or_default().finish(doc.root))
}

/// Decodes a WBXML document with the given limits.
pub fn decode_document_with(bytes: &[u8], limits: &Limits) -> Result<Document, DecodeError> {
    let mut elements = 0usize;
    let mut d = Decoder {
        input: bytes,
        pos: 0,
        limits,
        elements: &mut elements,
        nesting: 0,
    };
    d.document()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Latin1,
}

struct Decoder<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    limits: &'l Limits,
    /// Shared across nested documents so a DevInf cannot multiply the budget.
    elements: &'l mut usize,
    /// How many documents enclose this one.
    nesting: usize,
}

struct Header<'a> {
    version: u8,
    public_id: u32,
    charset: Charset,
    charset_code: u32,
    strtbl: &'a [u8],
    /// Offset of the string table in the input, for error messages.
    vocab: Vocabulary,
}

impl<'a> Decoder<'a, '_> {
    fn byte(&mut self, expected: &'static str) -> Result<u8, DecodeError> {
        let b = *self.input.get(self.pos).ok_or(DecodeError::UnexpectedEof {
            at: self.pos,
            expected,
        })?;
        self.pos += 1;
        Ok(b)
    }

    fn mb(&mut self, expected: &'static str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let rest = self.input.get(at..).unwrap_or(&[]);
        match mbuint::read(rest) {
            Ok((v, used)) => {
                self.pos += used;
                Ok(v)
            }
            Err(mbuint::MbError::Eof) => Err(DecodeError::UnexpectedEof { at, expected }),
            Err(mbuint::MbError::Overflow) => Err(DecodeError::BadMbUint32 { at }),
        }
    }

    fn take(&mut self, len: u32, expected: &'static str) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let end = at
            .checked_add(len as usize)
            .filter(|&e| e <= self.input.len())
            .ok_or(DecodeError::UnexpectedEof { at, expected })?;
        self.pos = end;
        Ok(&self.input[at..end])
    }

    /// A NUL-terminated inline string.
    fn inline_str(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let rest = self.input.get(at..).unwrap_or(&[]);
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::UnexpectedEof {
                at,
                expected: "the NUL ending an inline string",
            })?;
        self.pos = at + len + 1;
        Ok(&rest[..len])
    }

    fn header(&mut self) -> Result<Header<'a>, DecodeError> {
        let version = self.byte("the WBXML version byte")?;
        if !(0x01..=0x03).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let pid_at = self.pos;
        let mut public_id = self.mb("the public identifier")?;
        let mut fpi_index = None;
        if public_id == 0 {
            fpi_index = Some(self.mb("the public identifier's string-table index")?);
        }
        let cs_at = self.pos;
        let charset_code = self.mb("the charset")?;
        let charset = match charset_code {
            106 | 3 | 0 => Charset::Utf8,
            4 => Charset::Latin1,
            other => {
                return Err(DecodeError::UnsupportedCharset {
                    at: cs_at,
                    charset: other,
                })
            }
        };
        let st_at = self.pos;
        let st_len = self.mb("the string table length")?;
        if st_len as usize > self.limits.max_string_table {
            return Err(DecodeError::StringTableTooLarge {
                at: st_at,
                len: st_len,
                max: self.limits.max_string_table,
            });
        }
        let strtbl = self.take(st_len, "the string table")?;
        if let Some(idx) = fpi_index {
            let s = string_at(strtbl, idx).ok_or(DecodeError::StrTableOffset {
                at: pid_at,
                offset: idx,
                len: strtbl.len(),
            })?;
            let text = std::str::from_utf8(s).unwrap_or("");
            public_id = public_id_of_fpi(text).ok_or(DecodeError::UnknownPublicId {
                at: pid_at,
                public_id: 0,
            })?;
        }
        let vocab = vocabulary(public_id).ok_or(DecodeError::UnknownPublicId {
            at: pid_at,
            public_id,
        })?;
        Ok(Header {
            version,
            public_id,
            charset,
            charset_code,
            strtbl,
            vocab,
        })
    }

    fn document(&mut self) -> Result<Document, DecodeError> {
        self.document_with(None).map(|(doc, _)| doc)
    }

    /// The document; with an assembler, the children of `SyncBody` and `SyncML` it
    /// takes are in it instead of in the tree.
    fn document_with(
        &mut self,
        assembler: Option<Assembler>,
    ) -> Result<(Document, Option<Assembler>), DecodeError> {
        let h = self.header()?;
        self.skip_pis(&h)?;
        if self.pos >= self.input.len() {
            return Err(DecodeError::NoRoot { at: self.pos });
        }
        let mut b = TreeBuild::new(assembler);
        self.body_into(&h, &mut b)?;
        let root = b.root.ok_or(DecodeError::NoRoot { at: self.pos })?;
        self.skip_pis(&h)?;
        if self.pos < self.input.len() {
            return Err(DecodeError::TrailingData {
                at: self.pos,
                len: self.input.len() - self.pos,
            });
        }
        Ok((
            Document {
                root,
                wbxml: Some(WbxmlHeader {
                    version: h.version,
                    public_id: h.public_id,
                    charset: h.charset_code,
                }),
            },
            b.assembler,
        ))
    }

    fn skip_pis(&mut self, h: &Header<'a>) -> Result<(), DecodeError> {
        while self.input.get(self.pos) == Some(&0x43) {
            self.pos += 1;
            self.skip_attributes(h)?;
        }
        Ok(())
    }

    /// Skips an attribute list (or PI) up to and including its END.
    fn skip_attributes(&mut self, h: &Header<'a>) -> Result<(), DecodeError> {
        loop {
            let at = self.pos;
            let b = self.byte("the END of an attribute list")?;
            match b {
                0x01 => return Ok(()),
                0x00 => {
                    self.byte("a code page number")?;
                }
                0x02 | 0x80..=0x82 => {
                    self.mb("an attribute value")?;
                }
                0x83 | 0x04 => {
                    let idx = self.mb("a string-table index")?;
                    string_at(h.strtbl, idx).ok_or(DecodeError::StrTableOffset {
                        at,
                        offset: idx,
                        len: h.strtbl.len(),
                    })?;
                }
                0x03 | 0x40..=0x42 => {
                    self.inline_str()?;
                }
                0xC3 => {
                    let len = self.mb("an OPAQUE length")?;
                    self.take(len, "OPAQUE data")?;
                }
                _ => {}
            }
        }
    }

    fn text(&self, h: &Header<'a>, bytes: &[u8], at: usize) -> Result<String, DecodeError> {
        match h.charset {
            Charset::Utf8 => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| DecodeError::InvalidUtf8 { at }),
            Charset::Latin1 => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    }

    fn tag_name(
        &self,
        h: &Header<'a>,
        page: u8,
        token: u8,
        at: usize,
    ) -> Result<(Namespace, &'static str), DecodeError> {
        let found = match (h.vocab, page) {
            (Vocabulary::SyncMl, 0) => names::syncml::name(token).map(|n| (Namespace::SyncMl, n)),
            (Vocabulary::SyncMl, 1) | (Vocabulary::MetInf, 0 | 1) => {
                names::metinf::name(token).map(|n| (Namespace::MetInf, n))
            }
            (Vocabulary::DevInf, 0) => {
                names::devinf_name(token, h.public_id).map(|n| (Namespace::DevInf, n))
            }
            _ => return Err(DecodeError::UnknownCodePage { at, page }),
        };
        found.ok_or(DecodeError::UnknownToken { at, page, token })
    }

    fn check_page(h: &Header<'a>, page: u8, at: usize) -> Result<(), DecodeError> {
        let ok = match h.vocab {
            Vocabulary::SyncMl | Vocabulary::MetInf => page <= 1,
            Vocabulary::DevInf => page == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(DecodeError::UnknownCodePage { at, page })
        }
    }

    /// Reads the root element and everything in it, iteratively, into a builder.
    fn body_into<B: Build>(&mut self, h: &Header<'a>, b: &mut B) -> Result<(), DecodeError> {
        let mut page: u8 = 0;
        loop {
            let at = self.pos;
            let tok = self.byte(if b.depth() == 0 {
                "the root element"
            } else {
                "an END closing an open element"
            })?;
            match tok {
                0x00 => {
                    let p_at = self.pos;
                    page = self.byte("a code page number")?;
                    Self::check_page(h, page, p_at)?;
                }
                0x01 => {
                    if b.depth() == 0 {
                        return Err(DecodeError::UnexpectedToken {
                            at,
                            token: tok,
                            what: "END with no open element",
                        });
                    }
                    b.end();
                    if b.depth() == 0 {
                        return Ok(());
                    }
                }
                0x02 => {
                    let code = self.mb("an entity code")?;
                    // NUL is no XML character (`&#0;` is not well-formed), and text
                    // holding it could not be written back as text.
                    let c = char::from_u32(code)
                        .filter(|&c| c != '\0')
                        .ok_or(DecodeError::InvalidEntity { at, code })?;
                    Self::need_open(b, at, "ENTITY outside the root")?;
                    let mut buf = [0u8; 4];
                    b.text(c.encode_utf8(&mut buf));
                }
                0x03 => {
                    let s_at = self.pos;
                    let raw = self.inline_str()?;
                    let s = self.text(h, raw, s_at)?;
                    Self::need_open(b, at, "STR_I outside the root")?;
                    b.text(&s);
                }
                0x83 => {
                    let idx = self.mb("a string-table index")?;
                    let raw = string_at(h.strtbl, idx).ok_or(DecodeError::StrTableOffset {
                        at,
                        offset: idx,
                        len: h.strtbl.len(),
                    })?;
                    let s = self.text(h, raw, at)?;
                    Self::need_open(b, at, "STR_T outside the root")?;
                    b.text(&s);
                }
                0xC3 => {
                    let len = self.mb("an OPAQUE length")?;
                    let bytes = self.take(len, "OPAQUE data")?;
                    Self::need_open(b, at, "OPAQUE outside the root")?;
                    match self.nested_devinf(bytes, b.in_data(), b.depth()) {
                        Some(el) => b.element(el),
                        None => b.opaque(bytes),
                    }
                }
                0x43 => {
                    // A processing instruction inside content: skipped.
                    self.skip_attributes(h)?;
                }
                0x40..=0x42 | 0x80..=0x82 | 0xC0..=0xC2 => {
                    return Err(DecodeError::UnexpectedToken {
                        at,
                        token: tok,
                        what: "EXT tokens are not used by SyncML",
                    })
                }
                _ => {
                    // A tag, possibly LITERAL.
                    let token = tok & 0x3F;
                    let (ns, name): (Namespace, Cow<'static, str>) = if token == 0x04 {
                        let idx = self.mb("a LITERAL tag name index")?;
                        let raw = string_at(h.strtbl, idx).ok_or(DecodeError::StrTableOffset {
                            at,
                            offset: idx,
                            len: h.strtbl.len(),
                        })?;
                        let name = self.text(h, raw, at)?;
                        let ns = match (h.vocab, page) {
                            (Vocabulary::SyncMl, 0) => Namespace::SyncMl,
                            (Vocabulary::DevInf, _) => Namespace::DevInf,
                            _ => Namespace::MetInf,
                        };
                        (ns, names::intern(&name))
                    } else {
                        let (ns, n) = self.tag_name(h, page, token, at)?;
                        (ns, Cow::Borrowed(n))
                    };
                    if tok & 0x80 != 0 {
                        self.skip_attributes(h)?;
                    }
                    *self.elements += 1;
                    if *self.elements > self.limits.max_elements {
                        return Err(DecodeError::TooManyElements {
                            at,
                            max: self.limits.max_elements,
                        });
                    }
                    let has_content = tok & 0x40 != 0;
                    if has_content && b.depth() + self.nesting >= self.limits.max_depth {
                        return Err(DecodeError::TooDeep {
                            at,
                            max: self.limits.max_depth,
                        });
                    }
                    b.start(ns, name);
                    if !has_content {
                        b.end();
                        if b.depth() == 0 {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn need_open<B: Build>(b: &B, at: usize, what: &'static str) -> Result<(), DecodeError> {
        if b.depth() == 0 {
            Err(DecodeError::UnexpectedToken { at, token: 0, what })
        } else {
            Ok(())
        }
    }

    /// An OPAQUE inside a SyncML `Data` that is itself a DevInf WBXML document is read
    /// as that document's root element (WBX-11); anything else stays opaque. A nested
    /// document that does not decode stays opaque: the model then reports the DevInf
    /// as unreadable data.
    fn nested_devinf(&mut self, bytes: &'a [u8], in_data: bool, depth: usize) -> Option<Element> {
        if !in_data || self.nesting != 0 {
            return None;
        }
        let (_, pid) = sniff_header(bytes)?;
        if vocabulary(pid) != Some(Vocabulary::DevInf) {
            return None;
        }
        let mut inner = Decoder {
            input: bytes,
            pos: 0,
            limits: self.limits,
            elements: self.elements,
            nesting: self.nesting + depth,
        };
        inner.document().ok().map(|d| d.root)
    }
}

/// Receives what the decoder reads: a tree builder, or a streaming [`Sink`].
trait Build {
    /// Open elements.
    fn depth(&self) -> usize;
    /// True when the innermost open element is a SyncML `Data`.
    fn in_data(&self) -> bool;
    fn start(&mut self, ns: Namespace, name: Cow<'static, str>);
    fn text(&mut self, s: &str);
    fn opaque(&mut self, bytes: &[u8]);
    /// A whole element (a nested DevInf document's root).
    fn element(&mut self, el: Element);
    fn end(&mut self);
}

struct TreeBuild {
    stack: Vec<Element>,
    root: Option<Element>,
    /// When decoding straight to a message: takes the commands as they close.
    assembler: Option<Assembler>,
}

impl TreeBuild {
    fn new(assembler: Option<Assembler>) -> TreeBuild {
        TreeBuild {
            stack: Vec::with_capacity(16),
            root: None,
            assembler,
        }
    }

    /// Attaches a finished element to the innermost open one (unless the assembler
    /// takes it), or makes it the root.
    fn attach(&mut self, el: Element) {
        let depth = self.stack.len();
        let el = match (&mut self.assembler, self.stack.first(), self.stack.last()) {
            (Some(a), Some(root), Some(parent)) => {
                match a.offer(&root.name, &parent.name, depth, el) {
                    Some(el) => el,
                    None => return,
                }
            }
            _ => el,
        };
        match self.stack.last_mut() {
            Some(parent) => push_child(parent, Node::Element(el)),
            None => self.root = Some(el),
        }
    }
}

impl Build for TreeBuild {
    fn depth(&self) -> usize {
        self.stack.len()
    }
    fn in_data(&self) -> bool {
        self.stack
            .last()
            .is_some_and(|e| e.name == "Data" && e.ns == Namespace::SyncMl)
    }
    fn start(&mut self, ns: Namespace, name: Cow<'static, str>) {
        self.stack.push(Element {
            ns,
            name,
            children: Vec::new(),
        });
    }
    fn text(&mut self, s: &str) {
        // An empty inline string (`STR_I ""`) is no character data: XML has no way to
        // write it, so keeping it as a node would not survive a round trip.
        if s.is_empty() {
            return;
        }
        if let Some(top) = self.stack.last_mut() {
            push_text(top, s);
        }
    }
    fn opaque(&mut self, bytes: &[u8]) {
        if let Some(top) = self.stack.last_mut() {
            push_child(top, Node::Opaque(bytes.to_vec()));
        }
    }
    fn element(&mut self, el: Element) {
        if !self.stack.is_empty() {
            self.attach(el);
        }
    }
    fn end(&mut self) {
        if let Some(done) = self.stack.pop() {
            self.attach(done);
        }
    }
}

struct SinkBuild<'s, S: Sink + ?Sized> {
    sink: &'s mut S,
    /// For each open element: is it a SyncML `Data`?
    open: Vec<bool>,
}

impl<S: Sink + ?Sized> Build for SinkBuild<'_, S> {
    fn depth(&self) -> usize {
        self.open.len()
    }
    fn in_data(&self) -> bool {
        self.open.last().copied().unwrap_or(false)
    }
    fn start(&mut self, ns: Namespace, name: Cow<'static, str>) {
        self.open.push(name == "Data" && ns == Namespace::SyncMl);
        self.sink.start(&ns, &name);
    }
    fn text(&mut self, s: &str) {
        if !s.is_empty() {
            self.sink.text(s);
        }
    }
    fn opaque(&mut self, bytes: &[u8]) {
        self.sink.opaque(bytes);
    }
    fn element(&mut self, el: Element) {
        el.write(self.sink);
    }
    fn end(&mut self) {
        self.open.pop();
        self.sink.end();
    }
}

fn push_text(parent: &mut Element, s: &str) {
    if let Some(Node::Text(t)) = parent.children.last_mut() {
        t.push_str(s);
    } else {
        push_child(parent, Node::Text(s.to_string()));
    }
}

/// The NUL-terminated string at `offset` in the string table.
fn string_at(table: &[u8], offset: u32) -> Option<&[u8]> {
    let s = table.get(offset as usize..)?;
    let end = s.iter().position(|&b| b == 0)?;
    Some(&s[..end])
}

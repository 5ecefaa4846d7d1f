//! Element events → WBXML.

use super::{
    mbuint, CHARSET_UTF8, PUBLIC_ID_DEVINF_1_0, PUBLIC_ID_DEVINF_1_1, PUBLIC_ID_DEVINF_1_2,
    PUBLIC_ID_SYNCML_1_0, PUBLIC_ID_SYNCML_1_1, PUBLIC_ID_SYNCML_1_2,
};
use crate::names;
use crate::tree::{Element, Namespace, Sink, SyncMlVersion};

/// Why a tree cannot be written as WBXML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// An element name that has no token in its vocabulary's code pages.
    #[error("<{name}> has no WBXML token in the {ns:?} vocabulary")]
    UnknownElement {
        /// The element.
        name: String,
        /// Its namespace.
        ns: Namespace,
    },
    /// A namespace WBXML SyncML cannot carry (only SyncML, MetInf, DevInf can).
    #[error("namespace {0:?} cannot be written in WBXML")]
    UnsupportedNamespace(Namespace),
    /// Events did not form one well-nested element.
    #[error("unbalanced element events")]
    Unbalanced,
    /// A DevInf document using both `Size` (DevInf 1.0/1.1) and `MaxSize` (DevInf 1.2):
    /// both are token 0x1C, told apart only by the document's public ID.
    #[error("a DevInf document cannot hold both <Size> and <MaxSize> in WBXML")]
    SizeNamesMixed,
}

/// Options of the WBXML encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeOptions {
    /// The version byte: 0x02 (WBXML 1.2, what SyncML stacks and the SyncML spec use)
    /// or 0x03 (WBXML 1.3, libwbxml's default).
    pub version: u8,
    /// Bytes to reserve for the document up front (0: a small default that grows):
    /// a message of known size is then written without the buffer being moved.
    pub capacity_hint: usize,
}

impl Default for EncodeOptions {
    fn default() -> EncodeOptions {
        EncodeOptions {
            version: 0x02,
            capacity_hint: 0,
        }
    }
}

impl EncodeOptions {
    /// Options with the given version byte.
    pub fn with_version(version: u8) -> EncodeOptions {
        EncodeOptions {
            version,
            ..EncodeOptions::default()
        }
    }
}

/// One document being written: the outer SyncML document or a nested DevInf.
#[derive(Debug)]
struct DocState {
    body: Vec<u8>,
    page: u8,
    /// Open elements of this document.
    depth: usize,
    /// The tag waiting to learn whether it has content: (page, token).
    pending: Option<(u8, u8)>,
    devinf: bool,
    /// `VerDTD` of a nested DevInf, read as it is written, to pick its public ID.
    devinf_ver: Option<String>,
    in_ver_dtd: bool,
    /// Which name of DevInf token 0x1C (`Size` or `MaxSize`) the document used: it
    /// decides the public ID, since only that tells the two apart.
    size_name: Option<&'static str>,
}

impl DocState {
    fn new(devinf: bool, capacity: usize) -> DocState {
        DocState {
            body: Vec::with_capacity(capacity.max(if devinf { 4096 } else { 1024 })),
            page: 0,
            depth: 0,
            pending: None,
            devinf,
            devinf_ver: None,
            in_ver_dtd: false,
            size_name: None,
        }
    }

    fn flush(&mut self, content: bool) {
        if let Some((page, token)) = self.pending.take() {
            if page != self.page {
                self.body.push(0x00);
                self.body.push(page);
                self.page = page;
            }
            self.body.push(if content { token | 0x40 } else { token });
        }
    }
}

/// A position of the root document (see [`Encoder::mark`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    len: usize,
    page: u8,
    pending: Option<(u8, u8)>,
}

/// A streaming WBXML encoder: a [`Sink`] that writes the document as events arrive.
///
/// Encodes without a string table, `STR_I` for text and `OPAQUE` for opaque data; a
/// `DevInf` element inside a SyncML document becomes a nested DevInf WBXML document in
/// `OPAQUE` (WBX-11).
#[derive(Debug)]
pub struct Encoder {
    opts: EncodeOptions,
    docs: Vec<DocState>,
    error: Option<EncodeError>,
    finished_root: bool,
}

impl Encoder {
    /// An encoder for a document with this public ID (for example
    /// [`PUBLIC_ID_SYNCML_1_2`]).
    pub fn new(public_id: u32, opts: EncodeOptions) -> Encoder {
        let devinf = matches!(
            public_id,
            PUBLIC_ID_DEVINF_1_0 | PUBLIC_ID_DEVINF_1_1 | PUBLIC_ID_DEVINF_1_2
        );
        // The root's header is known now: write it first, so that `finish` hands over
        // the body's buffer instead of copying the whole message behind a header.
        let mut root = DocState::new(devinf, opts.capacity_hint);
        write_header(&mut root.body, opts.version, public_id);
        Encoder {
            opts,
            docs: vec![root],
            error: None,
            finished_root: false,
        }
    }

    /// An encoder for a SyncML message of this version.
    pub fn for_syncml(version: SyncMlVersion, opts: EncodeOptions) -> Encoder {
        Encoder::new(syncml_public_id(version), opts)
    }

    /// Bytes of the root document written so far (a nested DevInf document counts once
    /// it is closed).
    pub(crate) fn written(&self) -> usize {
        self.docs.first().map_or(0, |d| d.body.len())
    }

    /// The first error met, if any (the encoder ignores events after it).
    pub(crate) fn error(&self) -> Option<&EncodeError> {
        self.error.as_ref()
    }

    /// Writes out the innermost start tag now, as one with content.
    pub(crate) fn open_content(&mut self) {
        if let Some(d) = self.docs.last_mut() {
            d.flush(true);
        }
    }

    /// Where the root document is, to come back to with [`Encoder::rewind`] after writing
    /// a whole element.
    pub(crate) fn mark(&self) -> Mark {
        self.docs.first().map_or(
            Mark {
                len: 0,
                page: 0,
                pending: None,
            },
            |d| Mark {
                len: d.body.len(),
                page: d.page,
                pending: d.pending,
            },
        )
    }

    /// Forgets what was written since `mark` (a whole element, so the open elements are
    /// the same as then).
    pub(crate) fn rewind(&mut self, mark: Mark) {
        if let Some(d) = self.docs.first_mut() {
            d.body.truncate(mark.len);
            d.page = mark.page;
            d.pending = mark.pending;
        }
    }

    fn fail(&mut self, e: EncodeError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Finishes the document and returns its bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.docs.len() != 1 || !self.finished_root {
            return Err(EncodeError::Unbalanced);
        }
        let Some(doc) = self.docs.pop() else {
            return Err(EncodeError::Unbalanced);
        };
        Ok(doc.body)
    }

    fn top(&mut self) -> Option<&mut DocState> {
        self.docs.last_mut()
    }
}

fn with_header(version: u8, public_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    write_header(&mut out, version, public_id);
    out.extend_from_slice(body);
    out
}

/// Version, public ID, charset (UTF-8) and an empty string table.
fn write_header(out: &mut Vec<u8>, version: u8, public_id: u32) {
    out.push(version);
    mbuint::write(out, public_id);
    mbuint::write(out, CHARSET_UTF8);
    out.push(0x00); // empty string table
}

/// The WBXML public ID of a SyncML version.
pub(crate) fn syncml_public_id(version: SyncMlVersion) -> u32 {
    match version {
        SyncMlVersion::V1_0 => PUBLIC_ID_SYNCML_1_0,
        SyncMlVersion::V1_1 => PUBLIC_ID_SYNCML_1_1,
        SyncMlVersion::V1_2 => PUBLIC_ID_SYNCML_1_2,
    }
}

/// The public ID of a DevInf document: the one of its `VerDTD`, unless the name it used
/// for token 0x1C belongs to another version (then that version's, so the element reads
/// back under the same name).
fn devinf_public_id(ver_dtd: Option<&str>, size_name: Option<&str>) -> u32 {
    let by_ver = match ver_dtd.map(str::trim) {
        Some("1.0") => PUBLIC_ID_DEVINF_1_0,
        Some("1.1") => PUBLIC_ID_DEVINF_1_1,
        _ => PUBLIC_ID_DEVINF_1_2,
    };
    match (size_name, by_ver) {
        (Some("Size"), PUBLIC_ID_DEVINF_1_2) => PUBLIC_ID_DEVINF_1_1,
        (Some("MaxSize"), PUBLIC_ID_DEVINF_1_0 | PUBLIC_ID_DEVINF_1_1) => PUBLIC_ID_DEVINF_1_2,
        _ => by_ver,
    }
}

/// Which of `Size`/`MaxSize` a DevInf tree uses (an error when it uses both).
fn size_name_in(el: &Element) -> Result<Option<&'static str>, EncodeError> {
    let mut found = match el.name.as_ref() {
        "Size" => Some("Size"),
        "MaxSize" => Some("MaxSize"),
        _ => None,
    };
    for c in el.elements() {
        match (found, size_name_in(c)?) {
            (Some(a), Some(b)) if a != b => return Err(EncodeError::SizeNamesMixed),
            (None, b) => found = b,
            _ => {}
        }
    }
    Ok(found)
}

impl Sink for Encoder {
    fn start(&mut self, ns: &Namespace, name: &str) {
        if self.error.is_some() {
            return;
        }
        if self.finished_root && self.docs.len() == 1 {
            self.fail(EncodeError::Unbalanced);
            return;
        }
        let Some(doc) = self.docs.last_mut() else {
            return;
        };
        doc.flush(true);
        let lookup = if doc.devinf {
            match ns {
                Namespace::DevInf => names::devinf_token(name).map(|t| (0, t)),
                other => {
                    let other = other.clone();
                    self.fail(EncodeError::UnsupportedNamespace(other));
                    return;
                }
            }
        } else {
            match ns {
                Namespace::SyncMl => names::syncml::token(name).map(|t| (0, t)),
                Namespace::MetInf => names::metinf::token(name).map(|t| (1, t)),
                Namespace::DevInf => {
                    // A nested DevInf document begins.
                    let mut nested = DocState::new(true, 0);
                    nested.pending = names::devinf_token(name).map(|t| (0, t));
                    nested.depth = 1;
                    if nested.pending.is_none() {
                        self.fail(EncodeError::UnknownElement {
                            name: name.to_string(),
                            ns: ns.clone(),
                        });
                        return;
                    }
                    self.docs.push(nested);
                    return;
                }
                Namespace::Other(_) => {
                    self.fail(EncodeError::UnsupportedNamespace(ns.clone()));
                    return;
                }
            }
        };
        let Some(doc) = self.docs.last_mut() else {
            return;
        };
        match lookup {
            Some(pt) => {
                doc.pending = Some(pt);
                doc.depth += 1;
                doc.in_ver_dtd = doc.devinf && name == "VerDTD" && doc.depth == 2;
                if doc.devinf && (name == "Size" || name == "MaxSize") {
                    let this = if name == "Size" { "Size" } else { "MaxSize" };
                    match doc.size_name {
                        Some(other) if other != this => {
                            self.fail(EncodeError::SizeNamesMixed);
                        }
                        _ => doc.size_name = Some(this),
                    }
                }
            }
            None => self.fail(EncodeError::UnknownElement {
                name: name.to_string(),
                ns: ns.clone(),
            }),
        }
    }

    fn text(&mut self, text: &str) {
        if self.error.is_some() {
            return;
        }
        let Some(doc) = self.top() else { return };
        doc.flush(true);
        if doc.in_ver_dtd {
            doc.devinf_ver
                .get_or_insert_with(String::new)
                .push_str(text);
        }
        if text.as_bytes().contains(&0) {
            // STR_I cannot hold NUL; such text is only representable as OPAQUE.
            doc.body.push(0xC3);
            mbuint::write(&mut doc.body, text.len() as u32);
            doc.body.extend_from_slice(text.as_bytes());
        } else {
            doc.body.push(0x03);
            doc.body.extend_from_slice(text.as_bytes());
            doc.body.push(0x00);
        }
    }

    fn opaque(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let Some(doc) = self.top() else { return };
        doc.flush(true);
        doc.body.push(0xC3);
        mbuint::write(&mut doc.body, bytes.len() as u32);
        doc.body.extend_from_slice(bytes);
    }

    fn end(&mut self) {
        if self.error.is_some() {
            return;
        }
        let version = self.opts.version;
        let nested_done = {
            let Some(doc) = self.docs.last_mut() else {
                return;
            };
            if doc.depth == 0 {
                self.fail(EncodeError::Unbalanced);
                return;
            }
            doc.in_ver_dtd = false;
            if doc.pending.is_some() {
                doc.flush(false);
            } else {
                doc.body.push(0x01);
            }
            doc.depth -= 1;
            doc.depth == 0
        };
        if nested_done {
            if self.docs.len() > 1 {
                if let Some(inner) = self.docs.pop() {
                    let pid = devinf_public_id(inner.devinf_ver.as_deref(), inner.size_name);
                    let bytes = with_header(version, pid, &inner.body);
                    self.opaque(&bytes);
                }
            } else {
                self.finished_root = true;
            }
        }
    }
}

/// Encodes an element tree as a WBXML document. The public ID follows the root: a
/// `SyncML` root gets the SyncML ID of its `SyncHdr/VerDTD`, a `DevInf` root the DevInf
/// ID of its `VerDTD`.
pub fn encode_element(root: &Element, opts: EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let ver = root
        .child("SyncHdr")
        .and_then(|h| h.child("VerDTD"))
        .or_else(|| root.child("VerDTD"))
        .and_then(|v| v.text().map(|t| t.trim().to_string()));
    let public_id = match root.ns {
        Namespace::DevInf => devinf_public_id(ver.as_deref(), size_name_in(root)?),
        _ => syncml_public_id(
            ver.as_deref()
                .and_then(SyncMlVersion::from_ver_dtd)
                .unwrap_or_default(),
        ),
    };
    let mut enc = Encoder::new(public_id, opts);
    root.write(&mut enc);
    enc.finish()
}

//! One entry point for both encodings: detection, decode to the model, encode.

use crate::model::{ModelError, SyncMl};
use crate::tree::{Document, Element};
use crate::{wbxml, xml};

/// The two wire encodings of SyncML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `application/vnd.syncml+xml`.
    Xml,
    /// `application/vnd.syncml+wbxml`.
    Wbxml,
}

impl Encoding {
    /// The MIME type of SyncML messages in this encoding (REP-31).
    pub fn mime_type(self) -> &'static str {
        match self {
            Encoding::Xml => "application/vnd.syncml+xml",
            Encoding::Wbxml => "application/vnd.syncml+wbxml",
        }
    }

    /// The MIME type of a DevInf object in a message of this encoding (WBX-12).
    pub fn devinf_mime_type(self) -> &'static str {
        match self {
            Encoding::Xml => "application/vnd.syncml-devinf+xml",
            Encoding::Wbxml => "application/vnd.syncml-devinf+wbxml",
        }
    }

    /// The encoding named by a `Content-Type` value (parameters such as `charset` are
    /// ignored; case-insensitive).
    pub fn from_mime_type(content_type: &str) -> Option<Encoding> {
        let base = content_type.split(';').next().unwrap_or("").trim();
        if base.eq_ignore_ascii_case("application/vnd.syncml+xml") {
            Some(Encoding::Xml)
        } else if base.eq_ignore_ascii_case("application/vnd.syncml+wbxml") {
            Some(Encoding::Wbxml)
        } else {
            None
        }
    }
}

/// Guesses the encoding of a message from its first bytes: a WBXML version byte
/// (0x01-0x03) means WBXML; `<`, whitespace or a UTF-8 byte-order mark means XML.
pub fn detect(bytes: &[u8]) -> Option<Encoding> {
    match bytes.first()? {
        0x01..=0x03 => Some(Encoding::Wbxml),
        b'<' | b' ' | b'\t' | b'\r' | b'\n' | 0xEF => Some(Encoding::Xml),
        _ => None,
    }
}

/// Why bytes could not be decoded to a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Neither XML nor WBXML.
    #[error("byte 0: neither XML (expected '<') nor WBXML (expected a version byte 0x01-0x03)")]
    UnknownEncoding,
    /// Malformed XML.
    #[error("XML: {0}")]
    Xml(#[from] xml::DecodeError),
    /// Malformed WBXML.
    #[error("WBXML: {0}")]
    Wbxml(#[from] wbxml::DecodeError),
    /// Well-formed, but not a valid SyncML message.
    #[error("SyncML: {0}")]
    Model(#[from] ModelError),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The XML encoder refused.
    #[error("XML: {0}")]
    Xml(#[from] xml::EncodeError),
    /// The WBXML encoder refused.
    #[error("WBXML: {0}")]
    Wbxml(#[from] wbxml::EncodeError),
}

/// Decodes either encoding (auto-detected) to an element tree.
pub fn decode_document(bytes: &[u8]) -> Result<Document, DecodeError> {
    match detect(bytes).ok_or(DecodeError::UnknownEncoding)? {
        Encoding::Xml => Ok(xml::decode_document(bytes)?),
        Encoding::Wbxml => Ok(wbxml::decode_document(bytes)?),
    }
}

/// Decodes either encoding (auto-detected) to a typed message.
///
/// The same as [`SyncMl::from_element`] on [`decode_document`]'s tree, but each command
/// is converted as soon as it is read, so the whole tree is never built.
pub fn decode(bytes: &[u8]) -> Result<SyncMl, DecodeError> {
    let msg = match detect(bytes).ok_or(DecodeError::UnknownEncoding)? {
        Encoding::Xml => xml::decode_message(bytes)?,
        Encoding::Wbxml => wbxml::decode_message(bytes)?,
    };
    Ok(msg?)
}

/// Encodes a message with default options (WBXML version byte 0x02; compact XML).
pub fn encode(msg: &SyncMl, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Xml => encode_xml(msg, &xml::EncodeOptions::default()),
        Encoding::Wbxml => encode_wbxml(msg, wbxml::EncodeOptions::default()),
    }
}

/// Encodes a message as XML.
pub fn encode_xml(msg: &SyncMl, opts: &xml::EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    let mut opts = opts.clone();
    opts.version = msg.version();
    if opts.capacity_hint == 0 {
        opts.capacity_hint = msg.encoded_size_hint(true);
    }
    let mut enc = xml::Encoder::new(opts);
    msg.write(&mut enc);
    Ok(enc.finish()?)
}

/// Encodes a message as WBXML (public ID from the message's `VerDTD`).
pub fn encode_wbxml(msg: &SyncMl, mut opts: wbxml::EncodeOptions) -> Result<Vec<u8>, EncodeError> {
    if opts.capacity_hint == 0 {
        opts.capacity_hint = msg.encoded_size_hint(false);
    }
    let mut enc = wbxml::Encoder::for_syncml(msg.version(), opts);
    msg.write(&mut enc);
    Ok(enc.finish()?)
}

/// Encodes an element tree in either encoding.
pub fn encode_element(root: &Element, encoding: Encoding) -> Result<Vec<u8>, EncodeError> {
    match encoding {
        Encoding::Xml => Ok(xml::encode_element(root, &xml::EncodeOptions::default())?),
        Encoding::Wbxml => Ok(wbxml::encode_element(
            root,
            wbxml::EncodeOptions::default(),
        )?),
    }
}

/// Rewrites every MetInf `Type` naming a DevInf encoding
/// (`application/vnd.syncml-devinf+wbxml` / `+xml`) to the one that matches
/// `encoding` (WBX-12). Use it when converting a message from one encoding to the
/// other, as libwbxml does; returns how many values changed.
pub fn rewrite_devinf_type(root: &mut Element, encoding: Encoding) -> usize {
    use crate::tree::{Namespace, Node};
    let want = encoding.devinf_mime_type();
    let mut changed = 0;
    let mut stack: Vec<&mut Element> = vec![root];
    while let Some(el) = stack.pop() {
        if el.ns == Namespace::MetInf && el.name == "Type" {
            for child in &mut el.children {
                if let Node::Text(t) = child {
                    let trimmed = t.trim();
                    if trimmed != want
                        && (trimmed == Encoding::Xml.devinf_mime_type()
                            || trimmed == Encoding::Wbxml.devinf_mime_type())
                    {
                        *t = want.to_string();
                        changed += 1;
                    }
                }
            }
        }
        for child in &mut el.children {
            if let Node::Element(e) = child {
                stack.push(e);
            }
        }
    }
    changed
}

/// A [`Sink`](crate::tree::Sink) adapter that rewrites DevInf MIME types in MetInf
/// `Type` elements to the target encoding's (see [`rewrite_devinf_type`]).
struct RewriteDevInfType<'s, S: crate::tree::Sink + ?Sized> {
    inner: &'s mut S,
    want: &'static str,
    in_type: bool,
}

impl<S: crate::tree::Sink + ?Sized> crate::tree::Sink for RewriteDevInfType<'_, S> {
    fn start(&mut self, ns: &crate::tree::Namespace, name: &str) {
        self.in_type = *ns == crate::tree::Namespace::MetInf && name == "Type";
        self.inner.start(ns, name);
    }
    fn text(&mut self, text: &str) {
        let t = text.trim();
        if self.in_type
            && (t == Encoding::Xml.devinf_mime_type() || t == Encoding::Wbxml.devinf_mime_type())
        {
            self.inner.text(self.want);
        } else {
            self.inner.text(text);
        }
    }
    fn opaque(&mut self, bytes: &[u8]) {
        self.inner.opaque(bytes);
    }
    fn end(&mut self) {
        self.in_type = false;
        self.inner.end();
    }
}

/// Converts a message (either encoding, auto-detected) to `to`, element for element,
/// rewriting the DevInf MIME type to match (WBX-12). WBXML input streams straight into
/// the XML encoder without building a tree.
pub fn transcode(
    bytes: &[u8],
    to: Encoding,
    xml_opts: &xml::EncodeOptions,
) -> Result<Vec<u8>, TranscodeError> {
    let from = detect(bytes).ok_or(DecodeError::UnknownEncoding)?;
    if from == Encoding::Wbxml && to == Encoding::Xml {
        let mut opts = xml_opts.clone();
        if opts.capacity_hint == 0 {
            opts.capacity_hint = bytes.len() + bytes.len() / 2;
        }
        // The root namespace follows the public ID.
        let version = match crate::wbxml::sniff_header(bytes).map(|(_, id)| id) {
            Some(crate::wbxml::PUBLIC_ID_SYNCML_1_0) => crate::tree::SyncMlVersion::V1_0,
            Some(crate::wbxml::PUBLIC_ID_SYNCML_1_1) => crate::tree::SyncMlVersion::V1_1,
            _ => crate::tree::SyncMlVersion::V1_2,
        };
        opts.version = version;
        let mut enc = xml::Encoder::new(opts);
        let mut rw = RewriteDevInfType {
            inner: &mut enc,
            want: Encoding::Xml.devinf_mime_type(),
            in_type: false,
        };
        crate::wbxml::decode_to_sink(bytes, &Default::default(), &mut rw)
            .map_err(DecodeError::from)?;
        return Ok(enc.finish().map_err(EncodeError::from)?);
    }
    if from == Encoding::Xml && to == Encoding::Wbxml {
        if let Some(version) = xml_syncml_version(bytes) {
            let mut enc =
                crate::wbxml::Encoder::for_syncml(version, wbxml::EncodeOptions::default());
            let mut rw = RewriteDevInfType {
                inner: &mut enc,
                want: Encoding::Wbxml.devinf_mime_type(),
                in_type: false,
            };
            xml::decode_to_sink(bytes, &mut rw).map_err(DecodeError::from)?;
            return Ok(enc.finish().map_err(EncodeError::from)?);
        }
    }
    let mut root = decode_document(bytes)?.root;
    rewrite_devinf_type(&mut root, to);
    Ok(match to {
        Encoding::Xml => xml::encode_element(&root, xml_opts).map_err(EncodeError::from)?,
        Encoding::Wbxml => wbxml::encode_element(&root, wbxml::EncodeOptions::default())
            .map_err(EncodeError::from)?,
    })
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranscodeError {
    /// The input could not be read.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The output could not be written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// The SyncML version of an XML message, as the tree path would pick it (the first
/// `VerDTD`, which is the header's), without parsing; `None` when the document does not
/// look like a SyncML message (then the tree path decides).
fn xml_syncml_version(bytes: &[u8]) -> Option<crate::tree::SyncMlVersion> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    find(bytes, b"<SyncML")?;
    let Some(i) = find(bytes, b"<VerDTD>") else {
        return Some(crate::tree::SyncMlVersion::default());
    };
    let rest = &bytes[i + 8..];
    let end = rest.iter().position(|&b| b == b'<')?;
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    crate::tree::SyncMlVersion::from_ver_dtd(v).or(Some(crate::tree::SyncMlVersion::default()))
}

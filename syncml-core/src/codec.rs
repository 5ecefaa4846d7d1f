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
pub fn decode(bytes: &[u8]) -> Result<SyncMl, DecodeError> {
    let doc = decode_document(bytes)?;
    Ok(SyncMl::from_element(doc.root)?)
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
    let mut enc = xml::Encoder::new(opts);
    msg.write(&mut enc);
    Ok(enc.finish()?)
}

/// Encodes a message as WBXML (public ID from the message's `VerDTD`).
pub fn encode_wbxml(msg: &SyncMl, opts: wbxml::EncodeOptions) -> Result<Vec<u8>, EncodeError> {
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

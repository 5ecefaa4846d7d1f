//! WBXML 1.1-1.3 codec for the SyncML, MetInf and DevInf vocabularies (our own: no
//! WBXML crate exists).
//!
//! * Header: version byte (0x01-0x03 accepted, 0x02 written by default as SyncML stacks
//!   do), public identifier as mb_u_int32 or by string-table reference, charset, string
//!   table (read; not written).
//! * Body: tags from the [`crate::names`] tables with code-page switches (SyncML page 0,
//!   MetInf page 1), inline strings, string-table references, entities and `OPAQUE`.
//! * A `DevInf` inside `Data` travels as a complete nested WBXML document in `OPAQUE`
//!   (WBX-11): the decoder opens it into elements, the encoder writes it back.
//! * Hostile input is bounded by [`Limits`]: nesting depth, string-table size and
//!   element count; every length is checked against the remaining input.
//!
//! ```
//! use syncml_core::wbxml;
//! let doc = wbxml::decode_document(&[0x02, 0xA4, 0x01, 0x6A, 0x00, 0x6D, 0x12, 0x01]).unwrap();
//! assert_eq!(doc.root.name, "SyncML");
//! assert_eq!(doc.root.children.len(), 1); // <Final/>
//! ```

mod decode;
mod encode;
pub mod mbuint;

pub(crate) use decode::decode_message;
pub use decode::{decode_document, decode_document_with, decode_to_sink, DecodeError};
pub use encode::{encode_element, EncodeError, EncodeOptions, Encoder};

/// WBXML public identifier of SyncML 1.0 (`-//SYNCML//DTD SyncML 1.0//EN`).
pub const PUBLIC_ID_SYNCML_1_0: u32 = 0x0FD1;
/// WBXML public identifier of SyncML 1.1.
pub const PUBLIC_ID_SYNCML_1_1: u32 = 0x0FD3;
/// WBXML public identifier of SyncML 1.2.
pub const PUBLIC_ID_SYNCML_1_2: u32 = 0x1201;
/// WBXML public identifier of MetInf 1.2 as a standalone document.
pub const PUBLIC_ID_METINF_1_2: u32 = 0x1202;
/// WBXML public identifier of DevInf 1.0.
pub const PUBLIC_ID_DEVINF_1_0: u32 = 0x0FD2;
/// WBXML public identifier of DevInf 1.1.
pub const PUBLIC_ID_DEVINF_1_1: u32 = 0x0FD4;
/// WBXML public identifier of DevInf 1.2.
pub const PUBLIC_ID_DEVINF_1_2: u32 = 0x1203;
/// IANA MIBenum of UTF-8.
pub const CHARSET_UTF8: u32 = 106;

/// The formal public identifier string of a known public ID.
pub fn fpi(public_id: u32) -> Option<&'static str> {
    Some(match public_id {
        PUBLIC_ID_SYNCML_1_0 => "-//SYNCML//DTD SyncML 1.0//EN",
        PUBLIC_ID_SYNCML_1_1 => "-//SYNCML//DTD SyncML 1.1//EN",
        PUBLIC_ID_SYNCML_1_2 => "-//SYNCML//DTD SyncML 1.2//EN",
        PUBLIC_ID_METINF_1_2 => "-//SYNCML//DTD MetInf 1.2//EN",
        PUBLIC_ID_DEVINF_1_0 => "-//SYNCML//DTD DevInf 1.0//EN",
        PUBLIC_ID_DEVINF_1_1 => "-//SYNCML//DTD DevInf 1.1//EN",
        PUBLIC_ID_DEVINF_1_2 => "-//SYNCML//DTD DevInf 1.2//EN",
        _ => return None,
    })
}

/// The public ID named by a formal public identifier string (case-insensitive).
pub fn public_id_of_fpi(fpi_text: &str) -> Option<u32> {
    let t = fpi_text.trim();
    [
        PUBLIC_ID_SYNCML_1_0,
        PUBLIC_ID_SYNCML_1_1,
        PUBLIC_ID_SYNCML_1_2,
        PUBLIC_ID_METINF_1_2,
        PUBLIC_ID_DEVINF_1_0,
        PUBLIC_ID_DEVINF_1_1,
        PUBLIC_ID_DEVINF_1_2,
    ]
    .into_iter()
    .find(|id| fpi(*id).is_some_and(|f| f.eq_ignore_ascii_case(t)))
}

/// Which vocabulary a WBXML document of this public ID speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vocabulary {
    SyncMl,
    MetInf,
    DevInf,
}

pub(crate) fn vocabulary(public_id: u32) -> Option<Vocabulary> {
    match public_id {
        PUBLIC_ID_SYNCML_1_0 | PUBLIC_ID_SYNCML_1_1 | PUBLIC_ID_SYNCML_1_2 => {
            Some(Vocabulary::SyncMl)
        }
        PUBLIC_ID_METINF_1_2 => Some(Vocabulary::MetInf),
        PUBLIC_ID_DEVINF_1_0 | PUBLIC_ID_DEVINF_1_1 | PUBLIC_ID_DEVINF_1_2 => {
            Some(Vocabulary::DevInf)
        }
        _ => None,
    }
}

/// Bounds that keep hostile input from exhausting memory or stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Deepest element nesting accepted. SyncML needs about 12 (a DevInf inside a Put
    /// inside an Atomic); 64 leaves room for nested Sequences.
    pub max_depth: usize,
    /// Largest string table accepted, in bytes. Real stacks send none.
    pub max_string_table: usize,
    /// Most elements accepted in one document: bounds the tree's memory to a small
    /// multiple of the input even for inputs made only of empty tags.
    pub max_elements: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_depth: 64,
            max_string_table: 64 * 1024,
            max_elements: 1_000_000,
        }
    }
}

/// Reads the WBXML header of `bytes` and returns `(version, public_id)` when it looks
/// like a WBXML document; used to sniff nested DevInf and for encoding detection.
pub(crate) fn sniff_header(bytes: &[u8]) -> Option<(u8, u32)> {
    let (&version, rest) = bytes.split_first()?;
    if !(0x01..=0x03).contains(&version) {
        return None;
    }
    let (pid, used) = mbuint::read(rest).ok()?;
    if pid != 0 {
        return vocabulary(pid).map(|_| (version, pid));
    }
    // publicid 0: the FPI is a string-table reference.
    let rest = &rest[used..];
    let (idx, u1) = mbuint::read(rest).ok()?;
    let rest = &rest[u1..];
    let (_charset, u2) = mbuint::read(rest).ok()?;
    let rest = &rest[u2..];
    let (len, u3) = mbuint::read(rest).ok()?;
    let table = rest.get(u3..u3.checked_add(len as usize)?)?;
    let s = table.get(idx as usize..)?;
    let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
    let fpi_text = std::str::from_utf8(&s[..end]).ok()?;
    public_id_of_fpi(fpi_text).map(|id| (version, id))
}

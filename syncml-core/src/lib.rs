//! # syncml-core
//!
//! The message layer of an OMA DS 1.2 / SyncML 1.1 implementation: a typed message
//! model, an XML codec (on quick-xml) and a WBXML codec (our own), authentication
//! digests, status and alert code tables and message-size tools. No sockets, no
//! async runtime, no database: bytes and messages in, bytes and messages out.
//!
//! ```
//! use syncml_core::{decode, Encoding};
//!
//! let xml = br#"<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD>
//!   <VerProto>SyncML/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>
//!   <Target><LocURI>http://example.com/sync</LocURI></Target>
//!   <Source><LocURI>IMEI:356938035643809</LocURI></Source></SyncHdr>
//!   <SyncBody><Final/></SyncBody></SyncML>"#;
//! let msg = decode(xml).unwrap();
//! assert_eq!(msg.header.source.loc_uri, "IMEI:356938035643809");
//! assert!(msg.body.is_final);
//!
//! // The same message in WBXML, and back.
//! let wbxml = syncml_core::encode(&msg, Encoding::Wbxml).unwrap();
//! assert_eq!(&wbxml[..4], &[0x02, 0xA4, 0x01, 0x6A]);
//! assert_eq!(decode(&wbxml).unwrap(), msg);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod codes;
pub mod content;
pub mod model;
pub mod names;
pub mod size;
pub mod titles;
pub mod tree;
pub mod wbxml;
pub mod xml;

mod codec;

pub use codec::{
    decode, decode_document, detect, encode, encode_element, encode_wbxml, encode_xml,
    rewrite_devinf_type, transcode, DecodeError, EncodeError, Encoding, TranscodeError,
};
pub use codes::{AlertCode, StatusCode};
pub use model::SyncMl;

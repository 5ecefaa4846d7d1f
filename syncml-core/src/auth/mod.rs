//! Authentication digests: `syncml:auth-basic`, `syncml:auth-md5` (SyncML 1.0 and
//! 1.1/1.2 formulas), the `x-syncml-hmac` transport MAC, nonce handling and the
//! SAN (package #0) digest.
//!
//! Everything here is pure computation over bytes: no I/O, no clock, no global random
//! number generator (nonces take injected randomness, see [`nonce`]). Comparisons of
//! received credentials against expected ones are constant-time
//! ([`constant_time_eq`]).
//!
//! Passwords are taken as `impl AsRef<[u8]>`, so `&str`, `&String`, `&[u8]` and
//! [`&Secret<String>`](Secret) all work; they are used as raw bytes (UTF-8 for Rust
//! strings, as Buteo does).
//!
//! Formulas and vectors: `reference/syncml-protocol.md` §1.5 (AUTH-01..17) and §5.
//!
//! ```
//! use syncml_core::auth::{basic, md5, nonce, Secret};
//!
//! let password = Secret::new(String::from("OhBehave"));
//! assert_eq!(basic::encode("Bruce2", &password), "QnJ1Y2UyOk9oQmVoYXZl");
//!
//! let n = nonce::decode_next_nonce("Tm9uY2U=").unwrap(); // <NextNonce>
//! assert_eq!(md5::credential("Bruce2", &password, &n), "Zz6EivR3yeaaENcRN6lpAQ==");
//!
//! // A server stores only the user digest and verifies against it.
//! let stored = md5::user_digest("Bruce2", &password);
//! assert!(md5::verify(b"Zz6EivR3yeaaENcRN6lpAQ==", &stored, &n));
//! ```

use std::fmt;

use ::md5::{Digest as _, Md5};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};

pub mod basic;
pub mod hmac;
pub mod md5;
pub mod nonce;
pub mod pin;
pub mod san;

/// `Meta/Type` of basic authentication (`Cred`, `Chal`).
pub const TYPE_BASIC: &str = "syncml:auth-basic";
/// `Meta/Type` of MD5 digest authentication (`Cred`, `Chal`).
pub const TYPE_MD5: &str = "syncml:auth-md5";
/// `Meta/Type` in a `Chal` that requests the `x-syncml-hmac` transport MAC (AUTH-16).
pub const TYPE_MAC: &str = "syncml:auth-MAC";
/// `Meta/Format` of Base64-encoded credentials and nonces.
pub const FORMAT_B64: &str = "b64";
/// Name of the HTTP header carrying the HMAC (see [`hmac`]).
pub const HMAC_HEADER: &str = "x-syncml-hmac";

/// Errors of decoding or parsing authentication data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The data is not valid standard Base64.
    #[error("invalid Base64")]
    InvalidBase64,
    /// Decoded basic credentials contain no `:` between user and password.
    #[error("basic credentials contain no ':' between user and password")]
    MissingColon,
    /// Decoded basic credentials are not UTF-8.
    #[error("basic credentials are not UTF-8")]
    InvalidUtf8,
    /// The `x-syncml-hmac` header is syntactically malformed.
    #[error("malformed x-syncml-hmac header: {0}")]
    MalformedHeader(&'static str),
    /// A mandatory parameter (`username`, `mac`) of the `x-syncml-hmac` header is
    /// missing or empty.
    #[error("x-syncml-hmac header lacks the `{0}` parameter")]
    MissingParameter(&'static str),
    /// A parameter of the `x-syncml-hmac` header occurs more than once.
    #[error("x-syncml-hmac header repeats the `{0}` parameter")]
    DuplicateParameter(&'static str),
    /// The `x-syncml-hmac` header names an algorithm other than MD5.
    #[error("unsupported MAC algorithm {0:?}")]
    UnsupportedAlgorithm(String),
}

/// Constant-time equality of two byte strings.
///
/// The running time depends only on the lengths, never on the contents; a length
/// mismatch returns `false` at once (lengths of digests and credentials are public).
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// A secret value (a password, a stored password-equivalent digest) whose `Debug`
/// output is `Secret(***)`, so it cannot leak into logs by accident.
///
/// It deliberately implements neither `Display` nor `PartialEq`; read it with
/// [`expose`](Secret::expose). `Secret<T>` implements `AsRef<[u8]>` when `T` does,
/// so it can be passed directly wherever this module takes a password.
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub const fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Secret<T> {
    fn as_ref(&self) -> &[u8] {
        self.0.as_ref()
    }
}

/// Standard alphabet; decoding accepts missing padding and non-zero trailing bits.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// MD5 of the concatenation of `parts`.
pub(crate) fn md5_concat(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Standard Base64 with padding.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `B64(H(a ":" b))`, the user digest / key of the md5, HMAC and SAN formulas.
pub(crate) fn b64_md5_pair(a: &[u8], b: &[u8]) -> String {
    b64(&md5_concat(&[a, b":", b]))
}

/// Decodes standard Base64 liberally: ASCII whitespace anywhere (surrounding, or line
/// breaks of MIME-wrapped text) is ignored, padding is optional.
pub(crate) fn b64_decode_lenient(text: &[u8]) -> Result<Vec<u8>, AuthError> {
    let decoded = if text.iter().any(u8::is_ascii_whitespace) {
        let compact: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        LENIENT.decode(compact)
    } else {
        LENIENT.decode(text)
    };
    decoded.map_err(|_| AuthError::InvalidBase64)
}

/// Decodes a received 16-byte digest that may be Base64 text (XML, and most WBXML
/// peers) or the raw digest (WBXML OPAQUE, WBX-13). `None` if it is neither.
pub(crate) fn received_digest(received: &[u8]) -> Option<[u8; 16]> {
    if let Ok(raw) = <[u8; 16]>::try_from(received) {
        // 16 bytes can never be the Base64 text of a 16-byte digest (that is 22-24
        // characters), so this is unambiguous.
        return Some(raw);
    }
    b64_decode_lenient(received)
        .ok()
        .and_then(|d| <[u8; 16]>::try_from(d.as_slice()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new(String::from("OhBehave"));
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(***))");
        assert_eq!(s.expose(), "OhBehave");
        assert_eq!(s.as_ref(), b"OhBehave");
        assert_eq!(Secret::from(3).into_inner(), 3);
    }

    #[test]
    fn b64_decoding_is_lenient_about_whitespace_and_padding() {
        assert_eq!(b64_decode_lenient(b" Tm9uY2U=\r\n"), Ok(b"Nonce".to_vec()));
        assert_eq!(b64_decode_lenient(b"Tm9uY2U"), Ok(b"Nonce".to_vec()));
        assert_eq!(b64_decode_lenient(b"Tm9u\nY2U="), Ok(b"Nonce".to_vec()));
        assert_eq!(b64_decode_lenient(b""), Ok(Vec::new()));
        assert_eq!(
            b64_decode_lenient(b"Tm9u*2U="),
            Err(AuthError::InvalidBase64)
        );
        assert_eq!(
            b64_decode_lenient(b"Tm9uY2U-"),
            Err(AuthError::InvalidBase64)
        );
    }

    #[test]
    fn received_digest_accepts_b64_and_raw() {
        let raw = [0x67u8; 16];
        let text = b64(&raw);
        assert_eq!(received_digest(&raw), Some(raw));
        assert_eq!(received_digest(text.as_bytes()), Some(raw));
        assert_eq!(received_digest(format!(" {text}\n").as_bytes()), Some(raw));
        assert_eq!(received_digest(b"Tm9uY2U="), None);
        assert_eq!(received_digest(&[0u8; 15]), None);
        assert_eq!(received_digest(b""), None);
    }
}

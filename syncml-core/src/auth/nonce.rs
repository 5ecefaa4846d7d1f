//! Nonces for md5 and HMAC authentication (AUTH-07, AUTH-08).
//!
//! A nonce travels Base64-encoded in `Chal/Meta/NextNonce` (or `MetInf` `NextNonce`)
//! and is opaque; the digests use its **decoded** bytes. This crate has no random
//! number generator: [`generate`] takes the randomness from the caller (fill the
//! buffer from the OS CSPRNG, e.g. `getrandom`, in production; with fixed bytes in
//! tests).
//!
//! ```
//! use syncml_core::auth::nonce;
//!
//! let mut fake_rng = |buf: &mut [u8]| buf.fill(0x41);
//! let n = nonce::generate(&mut fake_rng, 5);
//! assert_eq!(nonce::encode_next_nonce(&n), "QUFBQUE=");
//! assert_eq!(nonce::decode_next_nonce(" QUFBQUE=\n").unwrap(), b"AAAAA");
//! ```

use super::{b64, b64_decode_lenient, AuthError};

/// The nonce length [`generate`] callers should use unless they have a reason not to:
/// 16 bytes (128 bits).
pub const DEFAULT_LEN: usize = 16;

/// The 64 symbols of [`generate_printable`] (URL-safe Base64 alphabet).
const PRINTABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Decodes the text of a `NextNonce` element into the nonce bytes used by the digests.
///
/// Surrounding whitespace is ignored, padding is optional; empty text is the empty
/// nonce (what a client uses before it has received any nonce).
///
/// # Errors
///
/// [`AuthError::InvalidBase64`].
pub fn decode_next_nonce(b64_text: impl AsRef<[u8]>) -> Result<Vec<u8>, AuthError> {
    b64_decode_lenient(b64_text.as_ref())
}

/// Encodes nonce bytes as the text of a `NextNonce` element (standard Base64 with
/// padding, `Format` `b64`).
pub fn encode_next_nonce(nonce: &[u8]) -> String {
    b64(nonce)
}

/// A fresh nonce of `len` bytes, filled by `fill` (the caller's CSPRNG).
///
/// The bytes are used as they come (any byte value).
pub fn generate(fill: &mut dyn FnMut(&mut [u8]), len: usize) -> Vec<u8> {
    let mut nonce = vec![0u8; len];
    fill(&mut nonce);
    nonce
}

/// A fresh nonce of `len` printable ASCII characters (`A-Z a-z 0-9 - _`, 6 bits of
/// entropy each), filled by `fill`.
///
/// For peers that treat the decoded nonce as a C string (a NUL byte would truncate
/// it) or as text: libsynthesis itself issues printable nonces. Use
/// `len >= 22` for 128 bits of entropy.
pub fn generate_printable(fill: &mut dyn FnMut(&mut [u8]), len: usize) -> Vec<u8> {
    let mut nonce = generate(fill, len);
    for b in &mut nonce {
        *b = PRINTABLE[usize::from(*b & 0x3F)];
    }
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_spec_next_nonce() {
        assert_eq!(decode_next_nonce("Tm9uY2U="), Ok(b"Nonce".to_vec()));
        assert_eq!(
            decode_next_nonce("LG3iZQhhdmKNHg=="),
            Ok(vec![
                0x2c, 0x6d, 0xe2, 0x65, 0x08, 0x61, 0x76, 0x62, 0x8d, 0x1e
            ])
        );
    }

    #[test]
    fn decode_trims_and_empty_is_empty() {
        assert_eq!(
            decode_next_nonce("  XzA+LVsjISE=\r\n"),
            Ok(b"_0>-[#!!".to_vec())
        );
        assert_eq!(decode_next_nonce(""), Ok(Vec::new()));
        assert_eq!(decode_next_nonce(" \n "), Ok(Vec::new()));
    }

    #[test]
    fn decode_rejects_non_base64() {
        assert_eq!(
            decode_next_nonce("Tm9u Y2U=!"),
            Err(AuthError::InvalidBase64)
        );
        assert_eq!(decode_next_nonce("Tm9uY2U_"), Err(AuthError::InvalidBase64));
    }

    #[test]
    fn encode_round_trips() {
        assert_eq!(encode_next_nonce(b"Nonce"), "Tm9uY2U=");
        assert_eq!(encode_next_nonce(b""), "");
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_next_nonce(encode_next_nonce(&bytes)), Ok(bytes));
    }

    #[test]
    fn generate_uses_injected_randomness() {
        let mut counter = 0u8;
        let mut fill = |buf: &mut [u8]| {
            for b in buf {
                *b = counter;
                counter = counter.wrapping_add(1);
            }
        };
        assert_eq!(generate(&mut fill, 4), [0, 1, 2, 3]);
        assert_eq!(generate(&mut fill, 2), [4, 5]);
        assert_eq!(generate(&mut fill, 0), Vec::<u8>::new());
        assert_eq!(generate(&mut fill, DEFAULT_LEN).len(), 16);
    }

    #[test]
    fn generate_printable_maps_to_url_safe_alphabet() {
        let mut fill = |buf: &mut [u8]| {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = i as u8;
            }
        };
        let n = generate_printable(&mut fill, 256);
        assert!(n
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
        assert_eq!(&n[..4], b"ABCD");
        assert_eq!(n[63], b'_');
        assert_eq!(n[64], b'A');
    }
}

//! The digest of a Server Alerted Notification (SAN 1.2, package #0; SAN-04, SAN-05).
//!
//! ```text
//! digest = H( B64(H(server-identifier ":" password)) ":" nonce ":" B64(H(notification)) )
//! ```
//!
//! `H` = MD5; `notification` = every byte of the SAN after the 16-byte digest
//! (header, body and vendor part). Which nonce a server uses is not confirmed by an
//! available spec text; the public vectors (BUTEO `SAN01.bin`, `SAN02.bin`) use an
//! empty password and an empty nonce.

use super::{b64, b64_md5_pair, constant_time_eq, md5_concat};

/// Length of the digest that starts every SAN 1.2 message.
pub const DIGEST_LEN: usize = 16;

/// The 16-byte digest of a SAN `notification` (the bytes after the digest).
pub fn san_digest(
    server_id: &str,
    password: impl AsRef<[u8]>,
    nonce: &[u8],
    notification: &[u8],
) -> [u8; 16] {
    let key = b64_md5_pair(server_id.as_bytes(), password.as_ref());
    let body = b64(&md5_concat(&[notification]));
    md5_concat(&[key.as_bytes(), b":", nonce, b":", body.as_bytes()])
}

/// Checks the digest at the start of a complete SAN `message` (digest followed by the
/// notification). Constant-time; a message shorter than the digest is not a match.
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn verify(message: &[u8], server_id: &str, password: impl AsRef<[u8]>, nonce: &[u8]) -> bool {
    let Some((received, notification)) = message.split_first_chunk::<DIGEST_LEN>() else {
        return false;
    };
    let expected = san_digest(server_id, password, nonce, notification);
    constant_time_eq(received, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::b64_md5_pair;

    const SERVER_ID: &str = "PC Suite Data Sync";

    fn san01() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/vectors/buteo-syncml/data/SAN01.bin"
        );
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// SAN02.bin as listed in reference §5.4 (the copy under tests/data is a hex dump
    /// in text form, not the binary).
    fn san02() -> Vec<u8> {
        let mut m = vec![
            0x65, 0xad, 0xf1, 0x6b, 0x1f, 0xee, 0xd8, 0x40, 0x02, 0x86, 0x83, 0xcf, 0xc8, 0x22,
            0x6b, 0x8b, 0x03, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x12,
        ];
        m.extend_from_slice(SERVER_ID.as_bytes());
        m.extend_from_slice(&[0x10, 0x60, 0x00, 0x00, 0x00, 0x08]);
        m.extend_from_slice(b"Calendar");
        m
    }

    #[test]
    fn buteo_san01_intermediate_values() {
        let msg = san01();
        assert_eq!(msg.len(), 56);
        assert_eq!(
            b64_md5_pair(SERVER_ID.as_bytes(), b""),
            "p8+z7mJwF+UPdsF0P9pk1A=="
        );
        assert_eq!(b64(&md5_concat(&[&msg[16..]])), "oep0laQORxYpKu3ugzxLNg==");
    }

    #[test]
    fn buteo_san01_digest() {
        let msg = san01();
        let expected = [
            0x01, 0x79, 0xab, 0x67, 0x1b, 0x68, 0xf2, 0x66, 0x98, 0x26, 0x9b, 0x4c, 0xa7, 0x82,
            0x22, 0xad,
        ];
        assert_eq!(msg[..16], expected);
        assert_eq!(san_digest(SERVER_ID, "", b"", &msg[16..]), expected);
        assert!(verify(&msg, SERVER_ID, "", b""));
    }

    #[test]
    fn buteo_san02_digest() {
        let msg = san02();
        assert_eq!(msg.len(), 56);
        assert_eq!(san_digest(SERVER_ID, "", b"", &msg[16..]), msg[..16]);
        assert!(verify(&msg, SERVER_ID, "", b""));
    }

    #[test]
    fn verify_rejects_tampering_and_short_messages() {
        let msg = san01();
        assert!(!verify(&msg, SERVER_ID, "pw", b""));
        assert!(!verify(&msg, SERVER_ID, "", b"n"));
        assert!(!verify(&msg, "PC Suite Data Sync ", "", b""));
        for i in 0..msg.len() {
            let mut bad = msg.clone();
            bad[i] ^= 0x01;
            assert!(!verify(&bad, SERVER_ID, "", b""), "byte {i}");
        }
        assert!(!verify(&msg[..15], SERVER_ID, "", b""));
        assert!(!verify(&[], SERVER_ID, "", b""));
    }
}

//! The SIM PIN extension of this project (server security level 2, FIG. 14): a standard
//! SyncML client sends only its terminal credential; a handset that also proves the
//! subscriber's PIN puts an `EMI` in `SyncHdr/Meta`:
//!
//! ```text
//! <EMI xmlns="syncml:metinf">x-simsync-pin-md5:B64(MD5(B64(MD5(subscriber ":" PIN)) ":" nonce))</EMI>
//! ```
//!
//! built like the auth-md5 credential, with the same nonce (the server's last
//! `NextNonce` for the terminal), so the PIN never crosses the wire and a captured value
//! cannot be replayed. The server keeps [`verifier`], which is PIN-equivalent for this
//! extension (as the md5 user digest is password-equivalent).
//!
//! ```
//! use syncml_core::auth::pin;
//!
//! let nonce = b"server-nonce";
//! let emi = pin::emi("234150123456789", "4321", nonce);
//! assert!(emi.starts_with(pin::EMI_PREFIX));
//! let stored = pin::verifier("234150123456789", "4321");
//! assert!(pin::verify(&emi, &stored, nonce));
//! assert!(!pin::verify(&pin::emi("234150123456789", "1111", nonce), &stored, nonce));
//! ```

use super::md5;

/// The prefix of the `EMI` value that carries the PIN digest.
pub const EMI_PREFIX: &str = "x-simsync-pin-md5:";

/// The prefix of the stored verifier.
const VERIFIER_PREFIX: &str = "md5:";

/// The `EMI` value for `pin`, bound to `nonce` (the decoded `NextNonce`).
pub fn emi(subscriber: &str, pin: impl AsRef<[u8]>, nonce: &[u8]) -> String {
    format!("{EMI_PREFIX}{}", md5::credential(subscriber, pin, nonce))
}

/// What the server stores for the subscriber's PIN: `md5:B64(MD5(subscriber ":" PIN))`.
pub fn verifier(subscriber: &str, pin: impl AsRef<[u8]>) -> String {
    format!("{VERIFIER_PREFIX}{}", md5::user_digest(subscriber, pin))
}

/// The PIN digest among `emis` (a `Meta`'s `EMI` values), if any.
pub fn find<'a>(emis: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    emis.into_iter()
        .find_map(|e| e.trim().strip_prefix(EMI_PREFIX))
        .map(str::trim)
}

/// Checks an `EMI` value (with or without [`EMI_PREFIX`]) against a stored [`verifier`]
/// and the nonce, in constant time; false for a malformed verifier.
pub fn verify(emi: &str, stored: &str, nonce: &[u8]) -> bool {
    let digest = emi.trim();
    let digest = digest.strip_prefix(EMI_PREFIX).unwrap_or(digest).trim();
    match stored.strip_prefix(VERIFIER_PREFIX) {
        Some(user_digest) => md5::verify(digest.as_bytes(), user_digest, nonce),
        None => false,
    }
}

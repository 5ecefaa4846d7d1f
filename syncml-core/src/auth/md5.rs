//! `syncml:auth-md5` (AUTH-04, AUTH-05, RP12 §5.3).
//!
//! SyncML 1.1 and 1.2 ([`Md5Variant::V1_1`]):
//!
//! ```text
//! user digest = B64( H( userid ":" password ) )
//! digest      = H( user digest ":" nonce )            (16 bytes)
//! Cred/Data   = B64(digest)   (XML; WBXML: B64 or the raw 16 bytes, WBX-13)
//! ```
//!
//! SyncML 1.0 ([`Md5Variant::V1_0`]): `digest = H( userid ":" password ":" nonce )`.
//!
//! `nonce` is always the **decoded** bytes of the last `<NextNonce>` (see
//! [`nonce::decode_next_nonce`](super::nonce::decode_next_nonce)), empty if none is
//! known yet; using the Base64 text instead is a classic bug. The user id cannot be
//! recovered from the digest and travels in `SyncHdr/Source/LocName` (AUTH-06).
//!
//! **The user digest is password-equivalent.** A server that stores only
//! [`user_digest`] (instead of the password) can verify 1.1/1.2 md5 credentials and
//! HMACs, but anyone who obtains the stored value can authenticate as the user with
//! md5 auth without knowing the password: protect it like a password (e.g. in a
//! [`Secret`](super::Secret)). The 1.0 formula needs the plain password.

use super::{b64, b64_md5_pair, constant_time_eq, md5_concat, received_digest};

/// Which md5 credential formula to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Md5Variant {
    /// SyncML 1.0: `H(userid ":" password ":" nonce)`.
    V1_0,
    /// SyncML 1.1 and 1.2 (OMA DS): `H(B64(H(userid ":" password)) ":" nonce)`.
    #[default]
    V1_1,
}

impl Md5Variant {
    /// The variant a peer speaking `VerProto` uses: [`V1_0`](Self::V1_0) for
    /// `SyncML/1.0`, [`V1_1`](Self::V1_1) for everything else (AUTH-05).
    pub fn for_ver_proto(ver_proto: &str) -> Self {
        if ver_proto.trim().eq_ignore_ascii_case("SyncML/1.0") {
            Md5Variant::V1_0
        } else {
            Md5Variant::V1_1
        }
    }
}

/// `B64(H(user ":" password))`, the value a server must store to verify md5
/// (1.1/1.2) credentials and HMACs without keeping the password.
///
/// **This value is password-equivalent** for md5 and HMAC authentication: whoever
/// knows it can compute valid credentials for any nonce. Store and handle it as a
/// secret.
pub fn user_digest(user: &str, password: impl AsRef<[u8]>) -> String {
    b64_md5_pair(user.as_bytes(), password.as_ref())
}

/// `H(user_digest ":" nonce)`, the 1.1/1.2 digest computed from a stored
/// [`user_digest`] (its Base64 text, used byte-exact).
pub fn digest_from_user_digest(user_digest_b64: impl AsRef<[u8]>, nonce: &[u8]) -> [u8; 16] {
    md5_concat(&[user_digest_b64.as_ref(), b":", nonce])
}

/// The 16-byte md5 digest of `variant` for `user`, `password` and the decoded `nonce`.
pub fn digest(
    user: &str,
    password: impl AsRef<[u8]>,
    nonce: &[u8],
    variant: Md5Variant,
) -> [u8; 16] {
    match variant {
        Md5Variant::V1_1 => digest_from_user_digest(user_digest(user, password), nonce),
        Md5Variant::V1_0 => md5_concat(&[user.as_bytes(), b":", password.as_ref(), b":", nonce]),
    }
}

/// The SyncML 1.1/1.2 md5 `Cred/Data` (Base64 text, `Format` `b64`).
pub fn credential(user: &str, password: impl AsRef<[u8]>, nonce: &[u8]) -> String {
    b64(&digest(user, password, nonce, Md5Variant::V1_1))
}

/// The md5 `Cred/Data` (Base64 text) of the chosen formula.
pub fn credential_with(
    user: &str,
    password: impl AsRef<[u8]>,
    nonce: &[u8],
    variant: Md5Variant,
) -> String {
    b64(&digest(user, password, nonce, variant))
}

/// The SyncML 1.1/1.2 md5 `Cred/Data` (Base64 text) from a stored [`user_digest`].
pub fn credential_from_user_digest(user_digest_b64: impl AsRef<[u8]>, nonce: &[u8]) -> String {
    b64(&digest_from_user_digest(user_digest_b64, nonce))
}

/// Verifies received SyncML 1.1/1.2 md5 credentials against a stored
/// [`user_digest`] and the decoded `nonce` the server issued.
///
/// `received` is the content of `Cred/Data`: the Base64 text (surrounding
/// whitespace and missing padding tolerated) **or** the raw 16-byte digest, as WBXML
/// peers may send it as OPAQUE (WBX-13). The comparison is constant-time; anything
/// that is not a 16-byte digest is simply not a match.
///
/// The 1.0 formula cannot be checked from a user digest; use [`verify_password`].
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn verify(received: &[u8], user_digest_b64: impl AsRef<[u8]>, nonce: &[u8]) -> bool {
    let expected = digest_from_user_digest(user_digest_b64, nonce);
    matches_digest(received, &expected)
}

/// Verifies received md5 credentials against the plain password, with either formula.
///
/// `received` as for [`verify`] (Base64 text or raw 16 bytes); constant-time.
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn verify_password(
    received: &[u8],
    user: &str,
    password: impl AsRef<[u8]>,
    nonce: &[u8],
    variant: Md5Variant,
) -> bool {
    let expected = digest(user, password, nonce, variant);
    matches_digest(received, &expected)
}

fn matches_digest(received: &[u8], expected: &[u8; 16]) -> bool {
    // Compare against a dummy on undecodable input so the timing does not tell
    // "bad encoding" from "wrong digest" (not secret, but cheap to keep uniform).
    let (got, decodable) = match received_digest(received) {
        Some(d) => (d, true),
        None => ([0u8; 16], false),
    };
    constant_time_eq(&got, expected) & decodable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::nonce::decode_next_nonce;
    use crate::auth::Secret;
    use proptest::prelude::*;

    #[test]
    fn spec_vector_bruce2_ohbehave_nonce() {
        let nonce = decode_next_nonce("Tm9uY2U=").unwrap_or_default();
        assert_eq!(nonce, b"Nonce");
        assert_eq!(
            credential("Bruce2", "OhBehave", &nonce),
            "Zz6EivR3yeaaENcRN6lpAQ=="
        );
        assert_eq!(
            digest("Bruce2", "OhBehave", &nonce, Md5Variant::V1_1),
            [
                0x67, 0x3e, 0x84, 0x8a, 0xf4, 0x77, 0xc9, 0xe6, 0x9a, 0x10, 0xd7, 0x11, 0x37, 0xa9,
                0x69, 0x01
            ]
        );
    }

    #[test]
    fn spec_vector_intermediate_user_digest() {
        assert_eq!(
            user_digest("Bruce2", "OhBehave"),
            "PtEdr8lBQ45IbT1bZIkrOQ=="
        );
        assert_eq!(
            credential_from_user_digest("PtEdr8lBQ45IbT1bZIkrOQ==", b"Nonce"),
            "Zz6EivR3yeaaENcRN6lpAQ=="
        );
    }

    #[test]
    fn spec_vector_verify_from_user_digest() {
        let stored = Secret::new(user_digest("Bruce2", "OhBehave"));
        assert!(verify(b"Zz6EivR3yeaaENcRN6lpAQ==", &stored, b"Nonce"));
        // Bruce1 (the RP12 prose erratum) does not reproduce the vector.
        assert!(!verify(
            b"Zz6EivR3yeaaENcRN6lpAQ==",
            user_digest("Bruce1", "OhBehave"),
            b"Nonce"
        ));
        // The Base64 text of the nonce instead of the decoded bytes: the classic bug.
        assert!(!verify(b"Zz6EivR3yeaaENcRN6lpAQ==", &stored, b"Tm9uY2U="));
    }

    #[test]
    fn capture_test_secret_empty_nonce() {
        assert_eq!(
            credential("test", "secret", b""),
            "MraccrRHny5AADBfmPIGpQ=="
        );
    }

    #[test]
    fn capture_test_secret_next_nonce_xza_lvsjise() {
        let nonce = decode_next_nonce("XzA+LVsjISE=").unwrap_or_default();
        assert_eq!(nonce, b"_0>-[#!!");
        assert_eq!(
            credential("test", "secret", &nonce),
            "/BRWI7/g5hGmOrBNgPaPpg=="
        );
        assert!(verify(
            b"/BRWI7/g5hGmOrBNgPaPpg==",
            user_digest("test", "secret"),
            &nonce
        ));
    }

    #[test]
    fn capture_user_digest_test_secret() {
        assert_eq!(user_digest("test", "secret"), "i20da3+1Z6VdfXz+tHkdSA==");
    }

    #[test]
    fn syncml_1_0_formula_vector() {
        assert_eq!(
            credential_with("Bruce2", "OhBehave", b"Nonce", Md5Variant::V1_0),
            "UmkqAAZhiQvXXhfaf/u+OQ=="
        );
        assert!(verify_password(
            b"UmkqAAZhiQvXXhfaf/u+OQ==",
            "Bruce2",
            "OhBehave",
            b"Nonce",
            Md5Variant::V1_0
        ));
        assert!(!verify_password(
            b"UmkqAAZhiQvXXhfaf/u+OQ==",
            "Bruce2",
            "OhBehave",
            b"Nonce",
            Md5Variant::V1_1
        ));
    }

    #[test]
    fn variant_follows_ver_proto() {
        assert_eq!(Md5Variant::for_ver_proto("SyncML/1.0"), Md5Variant::V1_0);
        assert_eq!(Md5Variant::for_ver_proto(" syncml/1.0 "), Md5Variant::V1_0);
        assert_eq!(Md5Variant::for_ver_proto("SyncML/1.1"), Md5Variant::V1_1);
        assert_eq!(Md5Variant::for_ver_proto("SyncML/1.2"), Md5Variant::V1_1);
        assert_eq!(Md5Variant::default(), Md5Variant::V1_1);
    }

    #[test]
    fn verify_accepts_raw_wbxml_digest() {
        let raw = digest("Bruce2", "OhBehave", b"Nonce", Md5Variant::V1_1);
        assert!(verify(&raw, user_digest("Bruce2", "OhBehave"), b"Nonce"));
        assert!(verify_password(
            &raw,
            "Bruce2",
            "OhBehave",
            b"Nonce",
            Md5Variant::V1_1
        ));
    }

    #[test]
    fn verify_tolerates_whitespace_and_missing_padding() {
        let stored = user_digest("Bruce2", "OhBehave");
        assert!(verify(b"\n  Zz6EivR3yeaaENcRN6lpAQ==\n", &stored, b"Nonce"));
        assert!(verify(b"Zz6EivR3yeaaENcRN6lpAQ", &stored, b"Nonce"));
    }

    #[test]
    fn verify_rejects_garbage() {
        let stored = user_digest("Bruce2", "OhBehave");
        for bad in [
            &b""[..],
            b"Zz6E",
            b"not base64 at all",
            &[0u8; 15],
            &[0u8; 17],
        ] {
            assert!(!verify(bad, &stored, b"Nonce"), "{bad:?}");
        }
        // A digest of the right length but wrong content.
        assert!(!verify(&[0u8; 16], &stored, b"Nonce"));
    }

    proptest! {
        #[test]
        fn prop_verify_never_panics(received in proptest::collection::vec(any::<u8>(), 0..40)) {
            let stored = user_digest("u", "p");
            let _ = verify(&received, &stored, b"n");
            let _ = verify_password(&received, "u", "p", b"n", Md5Variant::V1_0);
        }

        #[test]
        fn prop_verify_credential(
            user in ".{0,16}",
            password in proptest::collection::vec(any::<u8>(), 0..24),
            nonce in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let cred = credential(&user, &password, &nonce);
            prop_assert!(verify(cred.as_bytes(), user_digest(&user, &password), &nonce));
            for variant in [Md5Variant::V1_0, Md5Variant::V1_1] {
                let cred = credential_with(&user, &password, &nonce, variant);
                prop_assert!(verify_password(cred.as_bytes(), &user, &password, &nonce, variant));
            }
        }

        #[test]
        fn prop_one_bit_change_fails(
            user in ".{0,16}",
            password in proptest::collection::vec(any::<u8>(), 0..24),
            nonce in proptest::collection::vec(any::<u8>(), 0..24),
            idx in 0usize..16,
            bit in 0u8..8,
        ) {
            let stored = user_digest(&user, &password);
            let mut raw = digest(&user, &password, &nonce, Md5Variant::V1_1);
            raw[idx] ^= 1 << bit;
            prop_assert!(!verify(&raw, &stored, &nonce));
            prop_assert!(!verify(b64(&raw).as_bytes(), &stored, &nonce));
        }

        #[test]
        fn prop_one_bit_change_in_nonce_fails(
            password in proptest::collection::vec(any::<u8>(), 0..24),
            nonce in proptest::collection::vec(any::<u8>(), 1..24),
            idx in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let cred = credential("user", &password, &nonce);
            let mut other = nonce.clone();
            let i = idx.index(other.len());
            other[i] ^= 1 << bit;
            prop_assert!(!verify(cred.as_bytes(), user_digest("user", &password), &other));
        }
    }
}

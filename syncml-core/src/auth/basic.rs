//! `syncml:auth-basic` (AUTH-03, RP12 §5.3): `Cred/Data = B64(userid ":" password)`.
//!
//! `Meta/Type` may be omitted on the wire (basic is the default) and
//! `<Format>b64</Format>` never means a second Base64 layer. Basic credentials are
//! the password in clear: use them only over TLS.

use super::{b64, b64_decode_lenient, constant_time_eq, AuthError};

/// `B64(user ":" password)`, the `Cred/Data` of basic authentication.
pub fn encode(user: &str, password: impl AsRef<[u8]>) -> String {
    let password = password.as_ref();
    let mut plain = Vec::with_capacity(user.len() + 1 + password.len());
    plain.extend_from_slice(user.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(password);
    b64(&plain)
}

/// Splits `Cred/Data` of basic authentication into `(user, password)`.
///
/// Whitespace around (and line breaks inside) the Base64 text is ignored, padding is
/// optional. The decoded text is split at the first `:`, so the password may contain
/// colons; the user may be empty (the caller decides whether that is acceptable).
///
/// # Errors
///
/// [`AuthError::InvalidBase64`], [`AuthError::InvalidUtf8`] (the decoded bytes are
/// not UTF-8) or [`AuthError::MissingColon`].
pub fn decode(cred_data: &[u8]) -> Result<(String, String), AuthError> {
    let plain = b64_decode_lenient(cred_data)?;
    let plain = String::from_utf8(plain).map_err(|_| AuthError::InvalidUtf8)?;
    let (user, password) = plain.split_once(':').ok_or(AuthError::MissingColon)?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Checks basic `Cred/Data` against the expected user and password.
///
/// Compares the decoded `user:password` bytes in constant time (in the contents;
/// the length is not secret). Undecodable data is simply not a match. The user
/// name compares byte-exact: fold case before calling if your accounts are
/// case-insensitive.
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn verify(cred_data: &[u8], user: &str, password: impl AsRef<[u8]>) -> bool {
    let Ok(received) = b64_decode_lenient(cred_data) else {
        return false;
    };
    let password = password.as_ref();
    let mut expected = Vec::with_capacity(user.len() + 1 + password.len());
    expected.extend_from_slice(user.as_bytes());
    expected.push(b':');
    expected.extend_from_slice(password);
    constant_time_eq(&received, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Secret;
    use proptest::prelude::*;

    #[test]
    fn spec_vector_bruce2_ohbehave() {
        assert_eq!(encode("Bruce2", "OhBehave"), "QnJ1Y2UyOk9oQmVoYXZl");
        assert_eq!(
            decode(b"QnJ1Y2UyOk9oQmVoYXZl"),
            Ok(("Bruce2".to_owned(), "OhBehave".to_owned()))
        );
    }

    #[test]
    fn pysyncml_vector_guest_guest() {
        assert_eq!(encode("guest", "guest"), "Z3Vlc3Q6Z3Vlc3Q=");
        assert!(verify(b"Z3Vlc3Q6Z3Vlc3Q=", "guest", "guest"));
    }

    #[test]
    fn capture_08_vector_test_secret() {
        let secret = Secret::new(String::from("secret"));
        assert_eq!(encode("test", &secret), "dGVzdDpzZWNyZXQ=");
        assert!(verify(b"dGVzdDpzZWNyZXQ=", "test", &secret));
    }

    #[test]
    fn decode_accepts_surrounding_whitespace_and_missing_padding() {
        let expected = Ok(("guest".to_owned(), "guest".to_owned()));
        assert_eq!(decode(b"\n  Z3Vlc3Q6Z3Vlc3Q=  \r\n"), expected);
        assert_eq!(decode(b"Z3Vlc3Q6Z3Vlc3Q"), expected);
    }

    #[test]
    fn decode_splits_at_first_colon() {
        let data = encode("user", "pa:ss:word");
        assert_eq!(
            decode(data.as_bytes()),
            Ok(("user".to_owned(), "pa:ss:word".to_owned()))
        );
        let data = encode("", "");
        assert_eq!(decode(data.as_bytes()), Ok((String::new(), String::new())));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode(b"not base64!"), Err(AuthError::InvalidBase64));
        // "nocolon"
        assert_eq!(decode(b"bm9jb2xvbg=="), Err(AuthError::MissingColon));
        // 0xFF 0x3A 0x41: not UTF-8
        assert_eq!(decode(b"/zpB"), Err(AuthError::InvalidUtf8));
        assert_eq!(decode(b""), Err(AuthError::MissingColon));
    }

    #[test]
    fn verify_rejects_wrong_credentials() {
        let data = encode("Bruce2", "OhBehave");
        assert!(verify(data.as_bytes(), "Bruce2", "OhBehave"));
        assert!(!verify(data.as_bytes(), "Bruce2", "OhBehavE"));
        assert!(!verify(data.as_bytes(), "bruce2", "OhBehave"));
        assert!(!verify(data.as_bytes(), "Bruce2", "OhBehave "));
        assert!(!verify(b"***", "Bruce2", "OhBehave"));
    }

    proptest! {
        #[test]
        fn prop_decode_and_verify_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&data);
            prop_assert!(!verify(&data, "user", "a password that is not there"));
        }

        #[test]
        fn prop_verify_encode_roundtrip(user in "[^:]{0,16}", password in ".{0,24}") {
            let data = encode(&user, &password);
            prop_assert!(verify(data.as_bytes(), &user, &password));
            prop_assert_eq!(decode(data.as_bytes()), Ok((user, password)));
        }

        #[test]
        fn prop_one_bit_change_fails(
            user in "[^:]{0,16}",
            password in proptest::collection::vec(any::<u8>(), 1..24),
            idx in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut wrong = password.clone();
            let i = idx.index(wrong.len());
            wrong[i] ^= 1 << bit;
            let data = encode(&user, &password);
            prop_assert!(!verify(data.as_bytes(), &user, &wrong));
        }
    }
}

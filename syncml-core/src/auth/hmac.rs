//! The `x-syncml-hmac` transport header (`syncml:auth-MAC`, AUTH-16).
//!
//! ```text
//! key = B64( H( username ":" password ) )           (the md5 user digest)
//! mac = B64( H( key ":" nonce ":" B64( H(body) ) ) )
//! x-syncml-hmac: algorithm=MD5, username="<LocName>", mac=<mac>
//! ```
//!
//! `H` = MD5, `body` = the exact HTTP body bytes (XML or WBXML), `nonce` = the decoded
//! bytes of the last `NextNonce` of the `syncml:auth-MAC` challenge. `algorithm` is
//! optional (default MD5); `username` and `mac` are mandatory. Source: OMA DM Security
//! 1.2 §5.1.4 (the DS-side normative text was not available), Funambol's DS server.
//!
//! ```
//! use syncml_core::auth::hmac;
//!
//! let mac = hmac::mac("Bruce2", "OhBehave", b"Nonce", b"");
//! let value = hmac::format_header("Bruce2", &mac);
//! assert_eq!(value, r#"algorithm=MD5, username="Bruce2", mac=gbjsdKI2jLRPFi9gmOstJg=="#);
//!
//! let header = hmac::parse_header(&value).unwrap();
//! let stored = syncml_core::auth::md5::user_digest("Bruce2", "OhBehave");
//! assert!(header.verify(&stored, b"Nonce", b""));
//! ```

use std::fmt;

use super::{b64, b64_decode_lenient, constant_time_eq, md5_concat, AuthError};

/// A parsed `x-syncml-hmac` header value. The algorithm is always MD5 (the only one
/// defined; [`parse_header`] rejects others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacHeader {
    /// The `username` parameter: the `LocName` of the `SyncHdr` `Source`, used to
    /// look up the key.
    pub username: String,
    /// The `mac` parameter: Base64 text of the 16-byte MAC.
    pub mac: String,
}

impl HmacHeader {
    /// Verifies the MAC of `body` against a stored md5 user digest
    /// ([`md5::user_digest`](super::md5::user_digest)) of [`username`](Self::username)
    /// and the decoded `nonce`. Constant-time.
    #[must_use = "ignoring the result of a credential check is a security bug"]
    pub fn verify(&self, user_digest_b64: impl AsRef<[u8]>, nonce: &[u8], body: &[u8]) -> bool {
        verify(&self.mac, user_digest_b64, nonce, body)
    }
}

impl fmt::Display for HmacHeader {
    /// The header value as [`format_header`] writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_header(&self.username, &self.mac))
    }
}

fn mac_digest(user_digest_b64: &[u8], nonce: &[u8], body: &[u8]) -> [u8; 16] {
    let body_digest = b64(&md5_concat(&[body]));
    md5_concat(&[user_digest_b64, b":", nonce, b":", body_digest.as_bytes()])
}

/// The `mac` (Base64 text) of `body` for `user`/`password` and the decoded `nonce`.
pub fn mac(user: &str, password: impl AsRef<[u8]>, nonce: &[u8], body: &[u8]) -> String {
    let key = super::md5::user_digest(user, password);
    mac_from_user_digest(key, nonce, body)
}

/// The `mac` (Base64 text) of `body` from a stored md5 user digest (the key, its
/// Base64 text used byte-exact) and the decoded `nonce`.
pub fn mac_from_user_digest(
    user_digest_b64: impl AsRef<[u8]>,
    nonce: &[u8],
    body: &[u8],
) -> String {
    b64(&mac_digest(user_digest_b64.as_ref(), nonce, body))
}

/// The header value `algorithm=MD5, username="<user>", mac=<mac>`.
///
/// In the user name, `"` and `\` are backslash-escaped (HTTP quoted-string) and ASCII
/// control characters (CR, LF, ...) are replaced by `?`, so the value can never
/// break out of its header line.
pub fn format_header(user: &str, mac: &str) -> String {
    let mut out = String::with_capacity(40 + user.len() + mac.len());
    out.push_str("algorithm=MD5, username=\"");
    for c in user.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out.push_str("\", mac=");
    out.extend(mac.chars().filter(|c| !c.is_ascii_control()));
    out
}

/// Parses an `x-syncml-hmac` header value, liberally.
///
/// Accepted: parameters separated by `,` (or `;`) with any whitespace around names,
/// `=` and values; parameter names in any case; values quoted (with backslash
/// escapes) or bare; parameters in any order; unknown parameters (ignored).
/// `algorithm` may be absent (MD5); if present it must be `MD5` (any case).
///
/// # Errors
///
/// [`AuthError::MalformedHeader`] (missing `=`, unterminated quote),
/// [`AuthError::MissingParameter`] (no or empty `username` / `mac`),
/// [`AuthError::DuplicateParameter`], [`AuthError::UnsupportedAlgorithm`].
pub fn parse_header(value: &str) -> Result<HmacHeader, AuthError> {
    let mut algorithm: Option<String> = None;
    let mut username: Option<String> = None;
    let mut mac: Option<String> = None;

    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',' || c == ';');
        if rest.is_empty() {
            break;
        }
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == ',' || c == ';')
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        rest = rest[name_end..].trim_start();
        rest = rest
            .strip_prefix('=')
            .ok_or(AuthError::MalformedHeader(
                "expected '=' after a parameter name",
            ))?
            .trim_start();
        let (param_value, after) = parse_value(rest)?;
        rest = after;

        let slot = if name.eq_ignore_ascii_case("algorithm") {
            Some((&mut algorithm, "algorithm"))
        } else if name.eq_ignore_ascii_case("username") {
            Some((&mut username, "username"))
        } else if name.eq_ignore_ascii_case("mac") {
            Some((&mut mac, "mac"))
        } else {
            None // unknown parameter: ignored
        };
        if let Some((slot, param)) = slot {
            if slot.is_some() {
                return Err(AuthError::DuplicateParameter(param));
            }
            *slot = Some(param_value);
        }
    }

    if let Some(a) = algorithm {
        if !a.eq_ignore_ascii_case("MD5") {
            return Err(AuthError::UnsupportedAlgorithm(a));
        }
    }
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or(AuthError::MissingParameter("username"))?;
    let mac = mac
        .filter(|m| !m.is_empty())
        .ok_or(AuthError::MissingParameter("mac"))?;
    Ok(HmacHeader { username, mac })
}

/// Parses one quoted or bare value at the start of `s`; returns it and the rest.
fn parse_value(s: &str) -> Result<(String, &str), AuthError> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((out, &quoted[i + 1..])),
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(AuthError::MalformedHeader("unterminated quoted string"))
    } else {
        let end = s
            .find(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .unwrap_or(s.len());
        Ok((s[..end].to_owned(), &s[end..]))
    }
}

/// Verifies a received `mac` (Base64 text; whitespace and missing padding tolerated)
/// of `body` against a stored md5 user digest and the decoded `nonce`.
/// Constant-time; an undecodable `mac` is simply not a match.
#[must_use = "ignoring the result of a credential check is a security bug"]
pub fn verify(
    received_mac: &str,
    user_digest_b64: impl AsRef<[u8]>,
    nonce: &[u8],
    body: &[u8],
) -> bool {
    let expected = mac_digest(user_digest_b64.as_ref(), nonce, body);
    let received = b64_decode_lenient(received_mac.as_bytes()).unwrap_or_default();
    let (got, ok) = match <[u8; 16]>::try_from(received.as_slice()) {
        Ok(d) => (d, true),
        Err(_) => ([0u8; 16], false),
    };
    constant_time_eq(&got, &expected) & ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::md5::user_digest;
    use proptest::prelude::*;

    #[test]
    fn self_computed_vector_empty_body() {
        assert_eq!(b64(&md5_concat(&[b""])), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            mac("Bruce2", "OhBehave", b"Nonce", b""),
            "gbjsdKI2jLRPFi9gmOstJg=="
        );
        assert_eq!(
            mac_from_user_digest("PtEdr8lBQ45IbT1bZIkrOQ==", b"Nonce", b""),
            "gbjsdKI2jLRPFi9gmOstJg=="
        );
    }

    #[test]
    fn self_computed_vector_syncml_body() {
        let body = b"<SyncML></SyncML>";
        assert_eq!(b64(&md5_concat(&[body])), "Kc1R9zzS4UsesJe+pXV1Eg==");
        assert_eq!(
            mac("Bruce2", "OhBehave", b"Nonce", body),
            "2uhSduf8t+E4pjL64qittw=="
        );
        assert!(verify(
            "2uhSduf8t+E4pjL64qittw==",
            user_digest("Bruce2", "OhBehave"),
            b"Nonce",
            body
        ));
    }

    #[test]
    fn spec_header_example_mac_is_not_an_hmac() {
        // DM Security's example mac is Base64 of hex(MD5("Bruce2:OhBehave:Nonce")),
        // illustrative only: it must not verify.
        let h = parse_header(
            r#"algorithm=MD5, username="Bruce2", mac=NTI2OTJhMDAwNjYxODkwYmQ3NWUxN2RhN2ZmYmJlMzk"#,
        );
        let h = h.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.username, "Bruce2");
        assert_eq!(h.mac, "NTI2OTJhMDAwNjYxODkwYmQ3NWUxN2RhN2ZmYmJlMzk");
        assert!(!h.verify(user_digest("Bruce2", "OhBehave"), b"Nonce", b""));
    }

    #[test]
    fn format_header_canonical_form() {
        assert_eq!(
            format_header("Bruce2", "gbjsdKI2jLRPFi9gmOstJg=="),
            r#"algorithm=MD5, username="Bruce2", mac=gbjsdKI2jLRPFi9gmOstJg=="#
        );
    }

    #[test]
    fn format_header_escapes_and_cannot_inject_lines() {
        let v = format_header("a\"b\\c\r\nX-Evil: 1", "m\r\n");
        assert_eq!(v, r#"algorithm=MD5, username="a\"b\\c??X-Evil: 1", mac=m"#);
        let h = parse_header(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.username, "a\"b\\c??X-Evil: 1");
    }

    #[test]
    fn parse_header_is_liberal() {
        let expected = HmacHeader {
            username: "Bruce2".into(),
            mac: "gbjsdKI2jLRPFi9gmOstJg==".into(),
        };
        for v in [
            r#"algorithm=MD5, username="Bruce2", mac=gbjsdKI2jLRPFi9gmOstJg=="#,
            r#"algorithm=MD5,username="Bruce2",mac="gbjsdKI2jLRPFi9gmOstJg==""#,
            r#"  ALGORITHM = md5 ,  UserName = Bruce2 , MAC = gbjsdKI2jLRPFi9gmOstJg==  "#,
            r#"username="Bruce2", mac=gbjsdKI2jLRPFi9gmOstJg=="#,
            r#"mac=gbjsdKI2jLRPFi9gmOstJg==; username=Bruce2; foo="bar, baz""#,
            "username=Bruce2,\tmac=gbjsdKI2jLRPFi9gmOstJg==,",
        ] {
            assert_eq!(parse_header(v), Ok(expected.clone()), "{v}");
        }
    }

    #[test]
    fn parse_header_errors() {
        assert_eq!(
            parse_header("username=\"x\""),
            Err(AuthError::MissingParameter("mac"))
        );
        assert_eq!(
            parse_header("mac=abc"),
            Err(AuthError::MissingParameter("username"))
        );
        assert_eq!(
            parse_header("username=\"\", mac=abc"),
            Err(AuthError::MissingParameter("username"))
        );
        assert_eq!(
            parse_header(""),
            Err(AuthError::MissingParameter("username"))
        );
        assert_eq!(
            parse_header("algorithm=SHA1, username=x, mac=abc"),
            Err(AuthError::UnsupportedAlgorithm("SHA1".into()))
        );
        assert_eq!(
            parse_header("username=x, username=y, mac=abc"),
            Err(AuthError::DuplicateParameter("username"))
        );
        assert!(matches!(
            parse_header("username=\"x, mac=abc"),
            Err(AuthError::MalformedHeader(_))
        ));
        assert!(matches!(
            parse_header("username x, mac=abc"),
            Err(AuthError::MalformedHeader(_))
        ));
        assert!(matches!(
            parse_header("username=\"x\\"),
            Err(AuthError::MalformedHeader(_))
        ));
    }

    #[test]
    fn display_round_trips() {
        let h = HmacHeader {
            username: "test".into(),
            mac: mac("test", "secret", b"", b"<SyncML/>"),
        };
        assert_eq!(parse_header(&h.to_string()), Ok(h));
    }

    #[test]
    fn verify_rejects_wrong_body_nonce_key_and_garbage() {
        let key = user_digest("Bruce2", "OhBehave");
        let m = mac_from_user_digest(&key, b"Nonce", b"<SyncML/>");
        assert!(verify(&m, &key, b"Nonce", b"<SyncML/>"));
        assert!(!verify(&m, &key, b"Nonce", b"<SyncML/> "));
        assert!(!verify(&m, &key, b"nonce", b"<SyncML/>"));
        assert!(!verify(
            &m,
            user_digest("Bruce2", "x"),
            b"Nonce",
            b"<SyncML/>"
        ));
        assert!(!verify("", &key, b"Nonce", b"<SyncML/>"));
        assert!(!verify("!!", &key, b"Nonce", b"<SyncML/>"));
        assert!(!verify("Tm9uY2U=", &key, b"Nonce", b"<SyncML/>"));
    }

    proptest! {
        #[test]
        fn prop_parse_header_never_panics(s in any::<String>()) {
            let _ = parse_header(&s);
        }

        #[test]
        fn prop_parse_header_never_panics_near_syntax(s in r#"[a-z=", ;\\ ]{0,40}"#) {
            if let Ok(h) = parse_header(&s) {
                prop_assert!(!h.username.is_empty() && !h.mac.is_empty());
            }
        }

        #[test]
        fn prop_verify_mac(
            user in "[a-zA-Z0-9@.]{1,16}",
            password in ".{0,16}",
            nonce in proptest::collection::vec(any::<u8>(), 0..24),
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let m = mac(&user, &password, &nonce, &body);
            let header = parse_header(&format_header(&user, &m));
            prop_assert_eq!(header.as_ref().map(|h| h.username.as_str()), Ok(user.as_str()));
            let stored = user_digest(&user, &password);
            prop_assert!(header.is_ok_and(|h| h.verify(&stored, &nonce, &body)));
        }

        #[test]
        fn prop_one_bit_change_in_body_fails(
            nonce in proptest::collection::vec(any::<u8>(), 0..24),
            body in proptest::collection::vec(any::<u8>(), 1..256),
            idx in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = user_digest("u", "p");
            let m = mac_from_user_digest(&key, &nonce, &body);
            let mut changed = body.clone();
            let i = idx.index(changed.len());
            changed[i] ^= 1 << bit;
            prop_assert!(!verify(&m, &key, &nonce, &changed));
        }

        #[test]
        fn prop_one_bit_change_in_mac_fails(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            idx in 0usize..16,
            bit in 0u8..8,
        ) {
            let key = user_digest("u", "p");
            let mut raw = mac_digest(key.as_bytes(), b"n", &body);
            raw[idx] ^= 1 << bit;
            prop_assert!(!verify(&b64(&raw), &key, b"n", &body));
        }
    }
}

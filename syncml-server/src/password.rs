//! Password and PIN verifiers: Argon2id PHC strings, compared in constant time by the
//! argon2 crate. (auth-md5 cannot use these: it forces the server to keep the
//! password-equivalent `B64(MD5(user:password))`, see `docs/auth.md`.)

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Hashes a password or PIN into an Argon2id PHC string.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

/// Checks a password or PIN against a PHC string; false on any malformed verifier.
pub fn verify(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_then_verify() {
        let h = super::hash("secret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify(&h, "secret"));
        assert!(!super::verify(&h, "Secret"));
        assert!(!super::verify("garbage", "secret"));
    }
}

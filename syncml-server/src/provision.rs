//! Provisioning of the subscriber managing database (FIG. 7a/7b): the operations the
//! operator CLI and the registration API ([`crate::registration`]) share, so both
//! validate and store alike.
//!
//! Every function runs inside the caller's transaction.

use crate::datastores;
use crate::session::pin_verifier;
use crate::store::{
    NewSubscriber, NewTerminal, RegisteredBy, Secret, StoreError, Terminal, Timestamp, Tx,
};
use syncml_core::auth;

/// Why a provisioning operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// A data class that no datastore of the server answers to.
    #[error("unknown data class {0}")]
    UnknownClass(String),
    /// A password or PIN that cannot be used (empty, too long, control characters).
    #[error("{0}")]
    BadSecret(String),
    /// The store refused (unknown subscriber, terminal already registered, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Canonical datastore names for `classes` (any alias accepted, e.g. `./Contacts`,
/// `addressbook`), sorted and without duplicates. Empty means every data class.
///
/// Rights data follows application data (para. 0033): naming `apps` adds `rights`.
pub fn normalize_classes<S: AsRef<str>>(classes: &[S]) -> Result<Vec<String>, ProvisionError> {
    let mut out = Vec::new();
    for c in classes {
        let c = c.as_ref().trim();
        if c.is_empty() {
            continue;
        }
        let def = datastores::resolve(c).ok_or_else(|| ProvisionError::UnknownClass(c.into()))?;
        out.push(def.name.to_string());
        if def.name == "apps" {
            out.push("rights".to_string());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_secret(what: &str, s: &str) -> Result<(), ProvisionError> {
    if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
        return Err(ProvisionError::BadSecret(format!(
            "{what} must be 1-256 characters without control characters"
        )));
    }
    Ok(())
}

/// Creates a subscriber at security level 0 (no PIN, no login password).
pub fn add_subscriber(
    tx: &mut dyn Tx,
    id: &str,
    display_name: Option<&str>,
    now: Timestamp,
) -> Result<(), ProvisionError> {
    tx.subscriber_create(
        &NewSubscriber {
            id: id.to_string(),
            display_name: display_name.map(str::to_string),
            security_level: 0,
        },
        now,
    )?;
    Ok(())
}

/// Registers `terminal` for `subscriber` with its password: the Argon2id hash for
/// auth-basic and the digest auth-md5 forces (`docs/auth.md`).
pub fn register_terminal(
    tx: &mut dyn Tx,
    subscriber: &str,
    terminal: &str,
    password: &str,
    classes: &[String],
    by: RegisteredBy,
    now: Timestamp,
) -> Result<Terminal, ProvisionError> {
    check_secret("the terminal password", password)?;
    let classes = normalize_classes(classes)?;
    let basic = crate::password::hash(password).map_err(ProvisionError::BadSecret)?;
    tx.terminal_register(
        &NewTerminal {
            terminal_id: terminal.to_string(),
            subscriber_id: subscriber.to_string(),
            md5_verifier: Some(Secret::new(auth::md5::user_digest(subscriber, password))),
            basic_verifier: Some(Secret::new(basic)),
            classes,
            registered_by: by,
        },
        now,
    )?;
    tx.terminal_get(subscriber, terminal)?
        .ok_or_else(|| StoreError::NotFound(format!("terminal {terminal}")).into())
}

/// Sets a terminal's data classes (empty: all). Takes effect at its next session and
/// deletes nothing.
pub fn set_classes(
    tx: &mut dyn Tx,
    subscriber: &str,
    terminal: &str,
    classes: &[String],
) -> Result<Vec<String>, ProvisionError> {
    let classes = normalize_classes(classes)?;
    tx.terminal_set_classes(subscriber, terminal, &classes)?;
    Ok(classes)
}

/// Sets (or with `None` clears) the subscriber's PIN for security level 2, stored in the
/// form the PIN extension needs ([`pin_verifier`]).
pub fn set_pin(tx: &mut dyn Tx, subscriber: &str, pin: Option<&str>) -> Result<(), ProvisionError> {
    if let Some(p) = pin {
        check_secret("the PIN", p)?;
    }
    let v = pin.map(|p| Secret::new(pin_verifier(subscriber, p)));
    tx.subscriber_set_pin_verifier(subscriber, v.as_ref())?;
    Ok(())
}

/// Sets (or with `None` clears) the subscriber's login password, which protects the
/// handset registration API; stored as an Argon2id hash.
pub fn set_login_password(
    tx: &mut dyn Tx,
    subscriber: &str,
    password: Option<&str>,
) -> Result<(), ProvisionError> {
    let v = match password {
        Some(p) => {
            check_secret("the login password", p)?;
            Some(Secret::new(
                crate::password::hash(p).map_err(ProvisionError::BadSecret)?,
            ))
        }
        None => None,
    };
    tx.subscriber_set_login_verifier(subscriber, v.as_ref())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_canonical_sorted_and_rights_follow_apps() {
        let c = normalize_classes(&["./Contacts", "apps", "contacts", "calendar"]).unwrap();
        assert_eq!(c, vec!["apps", "calendar", "contacts", "rights"]);
        assert!(normalize_classes::<&str>(&[]).unwrap().is_empty());
        assert!(matches!(
            normalize_classes(&["photos-of-cats"]),
            Err(ProvisionError::UnknownClass(_))
        ));
    }
}

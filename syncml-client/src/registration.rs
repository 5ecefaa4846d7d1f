//! Registration with the server (FIG. 8 S5-S6 from the handset, FIG. 18-19 from a shop's
//! registration device), over the server's registration API (`/api/v1/`, JSON over
//! HTTPS; see the server's `docs/provisioning.md`).
//!
//! [`register_handset`] is the whole FIG. 8 flow on the handset: the PIN collated on the
//! SIM (S1-S2), the terminal password collated on the terminal (S3-S4), then the server
//! registration of this terminal for the SIM's subscriber (S5-S6), authenticated with
//! the subscriber's login password, and finally the subscriber ID written into the
//! terminal (FIG. 10-A S25-S26) so the FIG. 10-B gate passes afterwards. A refused gate
//! sends nothing. [`register_at_shop`] is the shop path: no terminal password is
//! collated (FIG. 19 leaves S23-S24 out), the operator's token authenticates the device.

use base64::Engine as _;

use crate::error::GateRefusal;
use crate::gate;
use crate::handset::{Notice, Sim, Terminal, Ui};
use crate::transport::HttpTransport;
use crate::TransportError;

/// Why a registration did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// A handset gate refused (PIN, terminal password, no SIM): nothing was sent.
    #[error("refused before connecting: {0}")]
    Refused(#[from] GateRefusal),
    /// The server refused the credentials (wrong login password or operator token, or
    /// no login password set for the subscriber): HTTP 401.
    #[error("the server refused the credentials")]
    Unauthorized,
    /// The server refused the request (HTTPS required, shop registration off): 403.
    #[error("the server refused: {0}")]
    Forbidden(String),
    /// The terminal ID is registered already (to this or another subscriber): 409.
    #[error("the terminal ID is registered already")]
    AlreadyRegistered,
    /// The subscriber does not exist (shop path without `create_subscriber`): 404.
    #[error("no such subscriber")]
    NoSuchSubscriber,
    /// Too many failed attempts: 429, with the server's message.
    #[error("locked out: {0}")]
    LockedOut(String),
    /// Any other answer (400 with the server's reason, 5xx).
    #[error("HTTP {status}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's `error` text.
        message: String,
    },
    /// The request did not get through.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A terminal as the server registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The terminal ID.
    pub terminal_id: String,
    /// The subscriber it is bound to.
    pub subscriber_id: String,
    /// Its data classes as the server stored them (canonical names; empty: all).
    pub classes: Vec<String>,
}

fn answer(status: u16, body: &[u8]) -> Result<Registered, RegistrationError> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let message =
        text("error").unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    match status {
        201 => Ok(Registered {
            terminal_id: text("terminal").unwrap_or_default(),
            subscriber_id: text("subscriber").unwrap_or_default(),
            classes: v
                .get("classes")
                .and_then(|c| c.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }),
        401 => Err(RegistrationError::Unauthorized),
        403 => Err(RegistrationError::Forbidden(message)),
        404 => Err(RegistrationError::NoSuchSubscriber),
        409 => Err(RegistrationError::AlreadyRegistered),
        429 => Err(RegistrationError::LockedOut(message)),
        status => Err(RegistrationError::Server { status, message }),
    }
}

/// `https://host/sync` → `https://host/api/v1/...`: the API lives next to the SyncML
/// path on the same origin.
fn api_url(server_url: &str, path: &str) -> String {
    let origin_end = server_url
        .find("://")
        .map(|i| i + 3)
        .and_then(|i| server_url[i..].find('/').map(|j| i + j))
        .unwrap_or(server_url.len());
    format!("{}/api/v1/{path}", &server_url[..origin_end])
}

/// FIG. 8 on the handset: PIN, terminal password, then the server registration of this
/// terminal (with `classes`, empty for all) for the SIM's subscriber, authenticated with
/// the subscriber's `login_password`; then the subscriber ID goes into the terminal
/// (FIG. 10-A). `server_url` is the SyncML URL (`https://host/sync`).
pub async fn register_handset(
    transport: &HttpTransport,
    server_url: &str,
    sim: Option<&mut dyn Sim>,
    terminal: &mut dyn Terminal,
    ui: &mut dyn Ui,
    login_password: &str,
    classes: &[String],
) -> Result<Registered, RegistrationError> {
    let Some(sim) = sim else {
        ui.notify(&Notice::Refused(GateRefusal::NoSim));
        return Err(GateRefusal::NoSim.into());
    };
    let pass = gate::check(
        &gate::GatePolicy {
            pin: true,
            terminal_password: true,
            subscriber_match: false,
            terminal_listed: false,
        },
        Some(&mut *sim),
        &*terminal,
        ui,
    )?;
    let password = pass.password.unwrap_or_default();
    let body = serde_json::json!({
        "terminal": pass.terminal_id,
        "password": password,
        "classes": classes,
    })
    .to_string();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{login_password}", pass.subscriber_id))
    );
    let (status, reply) = transport
        .json_request(
            "POST",
            &api_url(server_url, "terminals"),
            Some(&auth),
            Some(body.into_bytes()),
        )
        .await?;
    let registered = answer(status, &reply)?;
    terminal.register_subscriber_id(&pass.subscriber_id);
    Ok(registered)
}

/// FIG. 19 at a shop's registration device: registers `terminal_id` (read from the
/// handset) for `subscriber_id` (read from the SIM) with the terminal password the
/// purchaser chose, authenticated with the operator's `shop_token`; no terminal
/// password is collated. `create_subscriber` creates a subscriber the server does not
/// know yet.
#[allow(clippy::too_many_arguments)]
pub async fn register_at_shop(
    transport: &HttpTransport,
    server_url: &str,
    shop_token: &str,
    subscriber_id: &str,
    terminal_id: &str,
    terminal_password: &str,
    classes: &[String],
    create_subscriber: bool,
) -> Result<Registered, RegistrationError> {
    let body = serde_json::json!({
        "subscriber": subscriber_id,
        "terminal": terminal_id,
        "password": terminal_password,
        "classes": classes,
        "create_subscriber": create_subscriber,
    })
    .to_string();
    let (status, reply) = transport
        .json_request(
            "POST",
            &api_url(server_url, "shop/terminals"),
            Some(&format!("Bearer {shop_token}")),
            Some(body.into_bytes()),
        )
        .await?;
    answer(status, &reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_lives_next_to_the_sync_path() {
        assert_eq!(
            api_url("https://sync.example.org:8443/sync", "terminals"),
            "https://sync.example.org:8443/api/v1/terminals"
        );
        assert_eq!(
            api_url("http://127.0.0.1:8080", "shop/terminals"),
            "http://127.0.0.1:8080/api/v1/shop/terminals"
        );
    }

    #[test]
    fn answers_map_to_outcomes() {
        let ok = br#"{"terminal":"IMEI:1","subscriber":"s","classes":["apps","rights"]}"#;
        assert_eq!(
            answer(201, ok),
            Ok(Registered {
                terminal_id: "IMEI:1".into(),
                subscriber_id: "s".into(),
                classes: vec!["apps".into(), "rights".into()],
            })
        );
        assert_eq!(
            answer(409, b"{}"),
            Err(RegistrationError::AlreadyRegistered)
        );
        assert_eq!(
            answer(400, br#"{"error":"unknown data class x"}"#),
            Err(RegistrationError::Server {
                status: 400,
                message: "unknown data class x".into()
            })
        );
    }
}

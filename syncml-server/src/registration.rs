//! The registration API (FIG. 8 S5-S6, FIG. 18-19, para. 0038-0039): JSON over HTTPS
//! under `/api/v1/`, for handsets and for a shop's registration device.
//!
//! | Method and path | Who | Does |
//! |---|---|---|
//! | `GET /api/v1/terminals` | handset | lists the subscriber's terminals |
//! | `POST /api/v1/terminals` | handset | registers a terminal: `{"terminal", "password", "classes"}` |
//! | `PUT /api/v1/terminals/{id}/classes` | handset | sets its data classes: `{"classes"}` |
//! | `DELETE /api/v1/terminals/{id}` | handset | unregisters it (revoked at once) |
//! | `POST /api/v1/shop/terminals` | shop | registers a terminal for a subscriber without a terminal-password check (FIG. 19): `{"subscriber", "terminal", "password", "classes", "create_subscriber"}` |
//!
//! A handset authenticates with HTTP Basic `subscriber:login password` (the subscriber's
//! login password, `subscriber set-login`); a subscriber without one cannot register
//! from a handset (a shop or the operator can). The shop authenticates with
//! `Authorization: Bearer <operator token>` (`serve --shop-token-file`). Both only over
//! TLS unless the operator allowed plain HTTP (`--allow-insecure-basic`).
//!
//! Every refusal is audited; wrong login passwords count towards the subscriber's
//! lockout, and an unknown subscriber gets the same 401 as a wrong password, so the API
//! tells nobody which subscribers exist.

use crate::http::{ApiRequest, ApiResponse};
use crate::provision::{self, ProvisionError};
use crate::store::{
    AuditEvent, LockoutKey, RegisteredBy, Store, StoreError, StoreExt, Terminal, Timestamp, Tx,
};
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::{info, warn};

/// Settings of the registration API.
#[derive(Clone, Default)]
pub struct RegistrationConfig {
    /// The shop registration device's bearer token; `None` disables the shop endpoint.
    pub shop_token: Option<String>,
    /// Serve the API over plain HTTP too (tests, or TLS terminated in front).
    pub allow_insecure: bool,
}

impl std::fmt::Debug for RegistrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationConfig")
            .field("shop_token", &self.shop_token.as_ref().map(|_| "<set>"))
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

/// The registration API over a store.
#[derive(Clone)]
pub struct RegistrationApi {
    store: Arc<dyn Store>,
    cfg: RegistrationConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    terminal: String,
    password: String,
    #[serde(default)]
    classes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShopBody {
    subscriber: String,
    terminal: String,
    password: String,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    create_subscriber: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassesBody {
    classes: Vec<String>,
}

/// A terminal as the API shows it (never its verifiers).
#[derive(Serialize)]
struct TerminalView {
    terminal: String,
    subscriber: String,
    classes: Vec<String>,
    registered_by: &'static str,
    revoked: bool,
    last_session_at: Option<i64>,
}

impl From<&Terminal> for TerminalView {
    fn from(t: &Terminal) -> TerminalView {
        TerminalView {
            terminal: t.terminal_id.clone(),
            subscriber: t.subscriber_id.clone(),
            classes: t.classes.clone(),
            registered_by: t.registered_by.as_str(),
            revoked: t.revoked,
            last_session_at: t.last_session_at.map(|x| x.unix_secs()),
        }
    }
}

fn json(status: StatusCode, body: impl Serialize) -> ApiResponse {
    ApiResponse {
        status,
        body: serde_json::to_string(&body).unwrap_or_else(|_| "{}".into()),
        www_authenticate: None,
    }
}

fn error(status: StatusCode, msg: &str) -> ApiResponse {
    json(status, serde_json::json!({ "error": msg }))
}

fn unauthorized(msg: &str) -> ApiResponse {
    let mut r = error(StatusCode::UNAUTHORIZED, msg);
    r.www_authenticate = Some(r#"Basic realm="syncml-registration""#.into());
    r
}

/// Percent-decoding of one path segment (`IMEI%3A1` → `IMEI:1`); `None` when malformed.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn body<'a, T: Deserialize<'a>>(req: &'a ApiRequest) -> Result<T, ApiResponse> {
    serde_json::from_slice(&req.body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")))
}

/// An Argon2id hash of nothing anyone knows, checked when a subscriber is unknown or has
/// no login password, so that the answer takes as long as a real check.
fn dummy_phc() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut salt);
        crate::password::hash(&format!("{salt:?}")).unwrap_or_default()
    })
}

enum Caller {
    Subscriber(String),
    Shop,
}

impl RegistrationApi {
    /// The API over `store`.
    pub fn new(store: Arc<dyn Store>, cfg: RegistrationConfig) -> RegistrationApi {
        RegistrationApi { store, cfg }
    }

    fn audit(
        &self,
        sub: Option<&str>,
        term: Option<&str>,
        status: u16,
        reason: &str,
        now: Timestamp,
        remote: &str,
    ) {
        let ev = AuditEvent {
            at: now,
            subscriber_id: sub.map(str::to_string),
            terminal_id: term.map(str::to_string),
            kind: "registration".into(),
            status: Some(status),
            reason: reason.to_string(),
            remote_addr: Some(remote.to_string()),
        };
        if let Err(e) = self.store.transaction(|tx| tx.audit_append(&ev)) {
            warn!(error = %e, "audit row could not be written");
        }
    }

    /// Handles one API request (blocking: runs store transactions and Argon2).
    pub fn handle_blocking(&self, req: &ApiRequest, now: Timestamp) -> ApiResponse {
        let remote = req.remote.to_string();
        if !req.tls && !self.cfg.allow_insecure {
            warn!(%remote, "registration API refused over plain HTTP");
            return error(
                StatusCode::FORBIDDEN,
                "the registration API is served over HTTPS only",
            );
        }
        let path = req.path.trim_end_matches('/');
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        let segs: Option<Vec<String>> = segs.iter().map(|s| percent_decode(s)).collect();
        let Some(segs) = segs else {
            return error(StatusCode::BAD_REQUEST, "malformed path");
        };
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let shop = matches!(segs.as_slice(), ["api", "v1", "shop", "terminals"]);
        let caller = match self.authenticate(req, shop, now, &remote) {
            Ok(c) => c,
            Err(r) => return r,
        };
        let result = match (&req.method, segs.as_slice(), &caller) {
            (&Method::GET, ["api", "v1", "terminals"], Caller::Subscriber(sub)) => self.list(sub),
            (&Method::POST, ["api", "v1", "terminals"], Caller::Subscriber(sub)) => {
                match body::<RegisterBody>(req) {
                    Ok(b) => self.register(
                        sub,
                        &b.terminal,
                        &b.password,
                        &b.classes,
                        RegisteredBy::User,
                        false,
                        now,
                        &remote,
                    ),
                    Err(r) => Ok(r),
                }
            }
            (
                &Method::PUT,
                ["api", "v1", "terminals", term, "classes"],
                Caller::Subscriber(sub),
            ) => match body::<ClassesBody>(req) {
                Ok(b) => self.set_classes(sub, term, &b.classes, now, &remote),
                Err(r) => Ok(r),
            },
            (&Method::DELETE, ["api", "v1", "terminals", term], Caller::Subscriber(sub)) => {
                self.unregister(sub, term, now, &remote)
            }
            (&Method::POST, ["api", "v1", "shop", "terminals"], Caller::Shop) => {
                match body::<ShopBody>(req) {
                    Ok(b) => self.register(
                        &b.subscriber,
                        &b.terminal,
                        &b.password,
                        &b.classes,
                        RegisteredBy::Shop,
                        b.create_subscriber,
                        now,
                        &remote,
                    ),
                    Err(r) => Ok(r),
                }
            }
            _ => Ok(error(StatusCode::NOT_FOUND, "no such API operation")),
        };
        result.unwrap_or_else(|e| {
            warn!(error = %e, "registration API: store failure");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; nothing was changed",
            )
        })
    }

    fn authenticate(
        &self,
        req: &ApiRequest,
        shop: bool,
        now: Timestamp,
        remote: &str,
    ) -> Result<Caller, ApiResponse> {
        let auth = req.authorization.as_deref().unwrap_or("").trim();
        if shop {
            let Some(expected) = &self.cfg.shop_token else {
                return Err(error(
                    StatusCode::FORBIDDEN,
                    "shop registration is not enabled on this server",
                ));
            };
            let token = auth.strip_prefix("Bearer ").map(str::trim).unwrap_or("");
            if syncml_core::auth::constant_time_eq(token.as_bytes(), expected.as_bytes())
                && !token.is_empty()
            {
                return Ok(Caller::Shop);
            }
            self.audit(None, None, 401, "shop: wrong operator token", now, remote);
            warn!(%remote, "registration API: wrong shop token");
            let mut r = error(StatusCode::UNAUTHORIZED, "wrong operator token");
            r.www_authenticate = Some(r#"Bearer realm="syncml-shop""#.into());
            return Err(r);
        }
        let creds = auth
            .strip_prefix("Basic ")
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        let Some((sub, pw)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(unauthorized(
                "HTTP Basic credentials required: subscriber ID and login password",
            ));
        };
        let (sub, pw) = (sub.to_string(), pw.to_string());
        let looked_up = self.store.read(|tx| {
            let s = tx.subscriber_get(&sub)?;
            let locked = tx
                .lockout_get(LockoutKey::Subscriber(&sub))?
                .filter(|l| l.is_locked(now))
                .and_then(|l| l.locked_until);
            Ok((s, locked))
        });
        let (s, locked) = match looked_up {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "registration API: store failure");
                return Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
            }
        };
        if let Some(until) = locked {
            self.audit(
                Some(&sub),
                None,
                429,
                "registration: locked out",
                now,
                remote,
            );
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "locked after repeated failures; retry in {} s",
                    (until.unix_secs() - now.unix_secs()).max(1)
                ),
            );
            r.www_authenticate = None;
            return Err(r);
        }
        let verifier = s.as_ref().and_then(|s| s.login_verifier.as_ref());
        let ok = match verifier {
            Some(v) => crate::password::verify(v.expose(), &pw),
            None => {
                let _ = crate::password::verify(dummy_phc(), &pw);
                false
            }
        };
        if ok {
            if let Err(e) = self
                .store
                .transaction(|tx| tx.lockout_reset(LockoutKey::Subscriber(&sub)))
            {
                warn!(error = %e, "lockout reset failed");
            }
            return Ok(Caller::Subscriber(sub));
        }
        if s.is_some() {
            let _ = self
                .store
                .transaction(|tx| tx.lockout_record_failure(LockoutKey::Subscriber(&sub), now));
        }
        let reason = if s.is_none() {
            "registration: unknown subscriber"
        } else if verifier.is_none() {
            "registration: subscriber has no login password"
        } else {
            "registration: wrong login password"
        };
        self.audit(Some(&sub), None, 401, reason, now, remote);
        warn!(%remote, subscriber = %sub, reason, "registration API refused");
        Err(unauthorized(
            "wrong subscriber ID or login password, or no login password set",
        ))
    }

    fn list(&self, sub: &str) -> Result<ApiResponse, StoreError> {
        let terms = self.store.read(|tx| tx.terminal_list(sub))?;
        let views: Vec<TerminalView> = terms.iter().map(TerminalView::from).collect();
        Ok(json(StatusCode::OK, views))
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        sub: &str,
        term: &str,
        password: &str,
        classes: &[String],
        by: RegisteredBy,
        create_subscriber: bool,
        now: Timestamp,
        remote: &str,
    ) -> Result<ApiResponse, StoreError> {
        let r = self.store.transaction_with_error(|tx: &mut dyn Tx| {
            if create_subscriber && tx.subscriber_get(sub)?.is_none() {
                provision::add_subscriber(tx, sub, None, now)?;
            }
            provision::register_terminal(tx, sub, term, password, classes, by, now)
        });
        let (status, resp) = match r {
            Ok(t) => {
                info!(
                    subscriber = sub,
                    terminal = term,
                    by = by.as_str(),
                    "terminal registered"
                );
                (201, json(StatusCode::CREATED, TerminalView::from(&t)))
            }
            Err(ProvisionError::Store(StoreError::AlreadyExists(_))) => (
                409,
                error(
                    StatusCode::CONFLICT,
                    "this terminal ID is already registered",
                ),
            ),
            Err(ProvisionError::Store(StoreError::NotFound(_))) => {
                (404, error(StatusCode::NOT_FOUND, "no such subscriber"))
            }
            Err(ProvisionError::Store(StoreError::InvalidInput(m))) => {
                (400, error(StatusCode::BAD_REQUEST, &m))
            }
            Err(ProvisionError::Store(e)) => return Err(e),
            Err(e) => (400, error(StatusCode::BAD_REQUEST, &e.to_string())),
        };
        self.audit(
            Some(sub),
            Some(term),
            status,
            &format!("registration by {}", by.as_str()),
            now,
            remote,
        );
        Ok(resp)
    }

    fn set_classes(
        &self,
        sub: &str,
        term: &str,
        classes: &[String],
        now: Timestamp,
        remote: &str,
    ) -> Result<ApiResponse, StoreError> {
        let r = self.store.transaction_with_error(|tx: &mut dyn Tx| {
            provision::set_classes(tx, sub, term, classes)?;
            Ok::<_, ProvisionError>(tx.terminal_get(sub, term)?)
        });
        let (status, resp) = match r {
            Ok(Some(t)) => (200, json(StatusCode::OK, TerminalView::from(&t))),
            Ok(None) | Err(ProvisionError::Store(StoreError::NotFound(_))) => {
                (404, error(StatusCode::NOT_FOUND, "no such terminal"))
            }
            Err(ProvisionError::Store(e)) => return Err(e),
            Err(e) => (400, error(StatusCode::BAD_REQUEST, &e.to_string())),
        };
        self.audit(
            Some(sub),
            Some(term),
            status,
            "data classes changed",
            now,
            remote,
        );
        Ok(resp)
    }

    fn unregister(
        &self,
        sub: &str,
        term: &str,
        now: Timestamp,
        remote: &str,
    ) -> Result<ApiResponse, StoreError> {
        let r = self.store.transaction(|tx| tx.terminal_remove(sub, term));
        let (status, resp) = match r {
            Ok(()) => (
                204,
                ApiResponse {
                    status: StatusCode::NO_CONTENT,
                    body: String::new(),
                    www_authenticate: None,
                },
            ),
            Err(StoreError::NotFound(_)) => (404, error(StatusCode::NOT_FOUND, "no such terminal")),
            Err(e) => return Err(e),
        };
        self.audit(
            Some(sub),
            Some(term),
            status,
            "terminal unregistered",
            now,
            remote,
        );
        Ok(resp)
    }
}

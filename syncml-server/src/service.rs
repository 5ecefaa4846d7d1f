//! The glue between HTTP and the session engine: decode, run the engine in one store
//! transaction on a blocking thread, encode the reply in the request's encoding.

use crate::http::{ApiRequest, ApiResponse, MessageHandler, SyncRequest, SyncResponse};
use crate::metrics::{Metrics, Observation};
use crate::registration::{RegistrationApi, RegistrationConfig};
use crate::session::{Engine, Incoming};
use crate::store::{Store, StoreError, StoreExt, Timestamp};
use hyper::StatusCode as HttpStatus;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// Longest wait for the store's answer to the readiness query.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A SyncML server: the engine over a store, served by [`crate::http::serve`].
pub struct SyncService {
    store: Arc<dyn Store>,
    engine: Engine,
    registration: Option<RegistrationApi>,
    metrics: Arc<Metrics>,
    /// Messages handled at once (each on a blocking thread); the others wait their turn
    /// in the async runtime instead of as blocked threads queueing for the store.
    workers: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for SyncService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncService")
            .field("store", &self.store.backend_name())
            .finish()
    }
}

fn now() -> Timestamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_unix_secs(secs)
}

fn os_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness is a broken machine; refuse to make guessable nonces.
        warn!("OS random source failed; using a time-derived fallback");
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (t >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(151);
        }
    }
}

/// Messages handled at once unless [`SyncService::with_workers`] says otherwise.
pub const DEFAULT_WORKERS: usize = 16;

impl SyncService {
    /// A service over `store` with `engine`.
    pub fn new(store: Arc<dyn Store>, engine: Engine) -> SyncService {
        SyncService {
            store,
            engine,
            registration: None,
            metrics: Arc::new(Metrics::new()),
            workers: Arc::new(tokio::sync::Semaphore::new(DEFAULT_WORKERS)),
        }
    }

    /// At most `n` messages (at least 1) are handled at once, each on a blocking thread;
    /// the others wait in the async runtime. With PostgreSQL about the connection pool's
    /// size. With SQLite's single writer, 8-16 on a 2-core machine: messages decode while
    /// the writer works and those queued behind it commit as one batch (3 workers gave
    /// 1.7 messages per commit, 16 gave 7; BENCHMARKS.md "Eighth session": p99 per message
    /// at 1,000 sessions/s 72 / 170 ms with 3, 10 / 29 ms with 16). It was cores + 1 while
    /// SQLite's checkpoints ran in the writer, whose stalls more workers only lengthened.
    pub fn with_workers(mut self, n: usize) -> SyncService {
        self.workers = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Also serves the registration API ([`crate::registration`]) under `/api/v1/`.
    pub fn with_registration(mut self, cfg: RegistrationConfig) -> SyncService {
        self.registration = Some(RegistrationApi::new(self.store.clone(), cfg));
        self
    }

    /// This node's metrics (what `GET /metrics` renders).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Handles one message synchronously and records it in the metrics.
    fn handle_counted(&self, req: &SyncRequest) -> SyncResponse {
        let (resp, observed) = self.handle_observed(req);
        match (&resp, observed) {
            (SyncResponse::Message { encoding, .. }, Some(o)) => self.metrics.record(*encoding, &o),
            (SyncResponse::Error { status, .. }, _) => {
                self.metrics.record_http_error(status.as_u16())
            }
            (SyncResponse::Message { .. }, None) => {}
        }
        resp
    }

    /// Handles one message synchronously (what the HTTP handler runs on a blocking
    /// thread; tests may call it directly).
    pub fn handle_blocking(&self, req: &SyncRequest) -> SyncResponse {
        self.handle_observed(req).0
    }

    /// [`SyncService::handle_blocking`], with what the exchange amounts to for the metrics.
    fn handle_observed(&self, req: &SyncRequest) -> (SyncResponse, Option<Observation>) {
        let msg = match syncml_core::decode(&req.body) {
            Ok(m) => m,
            Err(e) => {
                warn!(remote = %req.remote, error = %e, "undecodable message");
                let resp = SyncResponse::Error {
                    status: HttpStatus::BAD_REQUEST,
                    reason: format!("not a SyncML message: {e}"),
                };
                return (resp, None);
            }
        };
        if syncml_core::detect(&req.body) != Some(req.encoding) {
            let resp = SyncResponse::Error {
                status: HttpStatus::BAD_REQUEST,
                reason: "body encoding does not match Content-Type".into(),
            };
            return (resp, None);
        }
        let remote = req.remote.to_string();
        let inc = Incoming {
            msg: &msg,
            encoding: req.encoding,
            session_token: req.session_token.as_deref(),
            base_url: &req.base_url,
            tls: req.tls,
            remote: &remote,
        };
        let t = now();
        let result = self
            .store
            .transaction(|tx| self.engine.answer(tx, &inc, t, &mut os_random));
        let result = match result {
            Ok(a) => Ok((a.message, Ok(a.body))),
            // Busy signalling (SP11 §2.12.1): a SyncML answer with only a SyncHdr Status
            // 101 and no Final; the client sends the message again.
            Err(StoreError::Busy(e)) => {
                info!(terminal = %msg.header.source.loc_uri, error = %e, "store busy; answering 101");
                let reply = self.engine.busy_reply(&inc);
                let body = syncml_core::encode(&reply, req.encoding);
                Ok((reply, body))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((reply, bytes)) => match bytes {
                Ok(body) => {
                    info!(
                        terminal = %msg.header.source.loc_uri,
                        msg_id = %msg.header.msg_id,
                        in_bytes = req.body.len(),
                        out_bytes = body.len(),
                        "message handled"
                    );
                    let observed = Observation::of(&msg, &reply);
                    let resp = SyncResponse::Message {
                        encoding: req.encoding,
                        body,
                    };
                    (resp, Some(observed))
                }
                Err(e) => {
                    warn!(error = %e, "reply could not be encoded");
                    let resp = SyncResponse::Error {
                        status: HttpStatus::INTERNAL_SERVER_ERROR,
                        reason: "reply could not be encoded".into(),
                    };
                    (resp, None)
                }
            },
            Err(e) => {
                warn!(error = %e, "message failed; nothing was committed");
                let resp = SyncResponse::Error {
                    status: HttpStatus::INTERNAL_SERVER_ERROR,
                    reason: "internal error; nothing was committed".into(),
                };
                (resp, None)
            }
        }
    }
}

impl MessageHandler for SyncService {
    async fn handle(&self, req: SyncRequest) -> SyncResponse {
        let started = Instant::now();
        let _in_flight = self.metrics.in_flight();
        let svc = SyncService {
            store: self.store.clone(),
            engine: self.engine.clone(),
            registration: None,
            metrics: self.metrics.clone(),
            workers: self.workers.clone(),
        };
        let _turn = self.workers.acquire().await.ok();
        let resp = match tokio::task::spawn_blocking(move || svc.handle_counted(&req)).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "message task failed");
                self.metrics.record_http_error(500);
                SyncResponse::Error {
                    status: HttpStatus::INTERNAL_SERVER_ERROR,
                    reason: "internal error".into(),
                }
            }
        };
        self.metrics.observe_latency(started.elapsed());
        resp
    }

    async fn metrics(&self) -> Option<String> {
        let store = self.store.clone();
        let active = tokio::task::spawn_blocking(move || {
            let t = now();
            store.read(|tx| tx.sessions_count_live(t)).ok()
        })
        .await
        .ok()
        .flatten();
        let mut text = self.metrics.render(active);
        text.push_str(&Metrics::render_store(&self.store.stats()));
        Some(text)
    }

    async fn ready(&self) -> Result<(), String> {
        let store = self.store.clone();
        let t = now();
        let check = tokio::task::spawn_blocking(move || store.read(|tx| tx.sessions_count_live(t)));
        match tokio::time::timeout(READY_TIMEOUT, check).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(e))) => {
                warn!(error = %e, "readiness: the store does not answer");
                Err(format!("store unreachable: {e}"))
            }
            Ok(Err(e)) => Err(format!("readiness check failed: {e}")),
            Err(_) => {
                warn!(timeout = ?READY_TIMEOUT, "readiness: the store does not answer in time");
                Err("store did not answer in time".into())
            }
        }
    }

    async fn api(&self, req: ApiRequest) -> ApiResponse {
        let Some(api) = self.registration.clone() else {
            return ApiResponse {
                status: HttpStatus::NOT_FOUND,
                body: r#"{"error":"the registration API is not enabled"}"#.into(),
                www_authenticate: None,
            };
        };
        match tokio::task::spawn_blocking(move || api.handle_blocking(&req, now())).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "API task failed");
                ApiResponse {
                    status: HttpStatus::INTERNAL_SERVER_ERROR,
                    body: r#"{"error":"internal error"}"#.into(),
                    www_authenticate: None,
                }
            }
        }
    }
}

//! The SyncML HTTP binding (OMA DS HTTP binding; HTTP items of the reference):
//! `POST` with `application/vnd.syncml+xml` or `+wbxml`, the reply in the request's
//! encoding, a request-body limit, a per-request timeout, TLS via rustls and a graceful
//! shutdown that lets in-flight messages finish.
//!
//! The binding knows nothing about sessions: it hands each message to a
//! [`MessageHandler`] and writes back what it returns.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use syncml_core::Encoding;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

/// One SyncML message as it arrived over HTTP.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The encoding named by the request's `Content-Type`.
    pub encoding: Encoding,
    /// The message bytes.
    pub body: Bytes,
    /// The session token from the RespURI query (`?s=...`), if any.
    pub session_token: Option<String>,
    /// The URL the client posted to, without query (`http://127.0.0.1:8080/sync`), used
    /// to build RespURIs.
    pub base_url: String,
    /// The peer's address.
    pub remote: SocketAddr,
    /// True when the connection is TLS.
    pub tls: bool,
}

/// What the handler wants sent back.
#[derive(Debug, Clone)]
pub enum SyncResponse {
    /// A SyncML message in the given encoding (HTTP 200).
    Message {
        /// Its encoding (the request's).
        encoding: Encoding,
        /// Its bytes.
        body: Vec<u8>,
    },
    /// An HTTP-level refusal, for input that is not a SyncML message at all.
    Error {
        /// The HTTP status.
        status: StatusCode,
        /// A one-line reason for the body.
        reason: String,
    },
}

/// A request to a path under [`API_PREFIX`] (the registration API).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The HTTP method, e.g. `POST`.
    pub method: Method,
    /// The path, percent-encoded as received (`/api/v1/terminals/IMEI%3A1`).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body (at most [`HttpOptions::max_body`] bytes).
    pub body: Bytes,
    /// The peer's address.
    pub remote: SocketAddr,
    /// True when the connection is TLS.
    pub tls: bool,
}

/// The answer to an [`ApiRequest`]: a JSON body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body.
    pub body: String,
    /// A `WWW-Authenticate` challenge (with 401).
    pub www_authenticate: Option<String>,
}

/// Paths under this prefix go to [`MessageHandler::api`].
pub const API_PREFIX: &str = "/api/";

/// Processes one SyncML message. Implemented by the server's session layer.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one message and returns the reply.
    fn handle(&self, req: SyncRequest) -> impl Future<Output = SyncResponse> + Send;

    /// Handles a request under [`API_PREFIX`]; by default there is no API (404).
    fn api(&self, req: ApiRequest) -> impl Future<Output = ApiResponse> + Send {
        let _ = req;
        async {
            ApiResponse {
                status: StatusCode::NOT_FOUND,
                body: r#"{"error":"no API at this path"}"#.into(),
                www_authenticate: None,
            }
        }
    }

    /// The Prometheus text exposition for `GET /metrics`; `None` (the default): 404.
    fn metrics(&self) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }

    /// Readiness for `GET /readyz`: `Err(reason)` answers 503. Default: ready.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// Limits and options of the HTTP binding.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Largest request body accepted; larger ones get HTTP 413. Default 4 MiB, above the
    /// MaxMsgSize we advertise, so a client honouring it never hits this.
    pub max_body: usize,
    /// Time one message may take to read and process before HTTP 503. Default 60 s.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight messages. Default 30 s.
    pub shutdown_grace: Duration,
    /// The URL path SyncML messages are posted to. Default `/sync`.
    pub path: String,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            max_body: 4 * 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            path: "/sync".into(),
        }
    }
}

fn text(status: StatusCode, msg: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn session_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("s="))
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_string)
}

/// True for a plausible `host[:port]` authority: letters, digits, `.-_:` and the
/// brackets of an IPv6 literal. Anything else (`/`, `?`, `@`, spaces...) would end up
/// inside the RespURI we hand back, so it is refused.
fn valid_authority(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

/// 413, closing the connection: the unread rest of the body is not worth draining.
fn too_large() -> Response<Full<Bytes>> {
    let mut r = text(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
    r.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The operations endpoints: `/healthz` (liveness: the process answers), `/readyz`
/// (readiness: [`MessageHandler::ready`], 503 when not), `/metrics` (Prometheus text,
/// [`MessageHandler::metrics`]); `/health` and `/ready` are older aliases. `None` for
/// any other path.
async fn ops_endpoint<H: MessageHandler>(
    handler: &H,
    path: &str,
    method: &Method,
) -> Option<Response<Full<Bytes>>> {
    if !matches!(
        path,
        "/health" | "/healthz" | "/ready" | "/readyz" | "/metrics"
    ) {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    Some(match path {
        "/ready" | "/readyz" => match handler.ready().await {
            Ok(()) => text(StatusCode::OK, "ready"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {reason}"),
            ),
        },
        "/metrics" => match handler.metrics().await {
            Some(body) => {
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                r
            }
            None => text(StatusCode::NOT_FOUND, "no metrics"),
        },
        _ => text(StatusCode::OK, "ok"),
    })
}

async fn serve_one<H: MessageHandler>(
    handler: Arc<H>,
    opts: Arc<HttpOptions>,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Response<Full<Bytes>> {
    let ConnInfo { remote, local, tls } = conn;
    let path = req.uri().path().to_string();
    if let Some(r) = ops_endpoint(handler.as_ref(), &path, req.method()).await {
        return r;
    }
    if path.starts_with(API_PREFIX) {
        return serve_api(handler, &opts, req, remote, tls).await;
    }
    if path != opts.path {
        return text(StatusCode::NOT_FOUND, "no SyncML service at this path");
    }
    if req.method() != Method::POST {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "SyncML messages are POSTed (OMA DS HTTP binding)",
        );
        r.headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
        return r;
    }
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_mime_type(ct) else {
        warn!(%remote, content_type = ct, "refused: not a SyncML content type");
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/vnd.syncml+xml or application/vnd.syncml+wbxml",
        );
    };
    // The RespURI we hand out must lead back here: the authority of an absolute-form
    // request target wins over Host (RFC 9112 §3.2.2); without either (HTTP/1.0) the
    // address the client connected to is the best we know.
    let host = match req.uri().authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => req
            .headers()
            .get(hyper::header::HOST)
            .map(|v| v.to_str().unwrap_or("").to_string()),
    };
    let host = match host {
        Some(h) if valid_authority(&h) => h,
        Some(h) => {
            warn!(%remote, host = %h.escape_debug(), "refused: malformed Host");
            return text(StatusCode::BAD_REQUEST, "malformed Host header");
        }
        None => local.to_string(),
    };
    let base_url = format!("{}://{host}{path}", if tls { "https" } else { "http" });
    let session_token = session_token(req.uri().query());
    // Refuse an announced oversized body before reading any of it.
    if hyper::body::Body::size_hint(req.body()).lower() > opts.max_body as u64 {
        warn!(%remote, max = opts.max_body, "refused: message larger than the body limit");
        return too_large();
    }
    let body = match Limited::new(req.into_body(), opts.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                warn!(%remote, max = opts.max_body, "refused: message larger than the body limit");
                return too_large();
            }
            warn!(%remote, error = %e, "request body could not be read");
            return text(StatusCode::BAD_REQUEST, "request body could not be read");
        }
    };
    let sreq = SyncRequest {
        encoding,
        body,
        session_token,
        base_url,
        remote,
        tls,
    };
    match handler.handle(sreq).await {
        SyncResponse::Message { encoding, body } => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(encoding.mime_type()));
            r
        }
        SyncResponse::Error { status, reason } => text(status, &reason),
    }
}

async fn serve_api<H: MessageHandler>(
    handler: Arc<H>,
    opts: &HttpOptions,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Response<Full<Bytes>> {
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let authorization = header(hyper::header::AUTHORIZATION);
    let content_type = header(CONTENT_TYPE);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if hyper::body::Body::size_hint(req.body()).lower() > opts.max_body as u64 {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), opts.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large();
            }
            return text(StatusCode::BAD_REQUEST, "request body could not be read");
        }
    };
    let a = handler
        .api(ApiRequest {
            method,
            path,
            authorization,
            content_type,
            body,
            remote,
            tls,
        })
        .await;
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = a.status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(c) = a
        .www_authenticate
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, c);
    }
    r
}

/// What the binding knows about a connection.
#[derive(Debug, Clone, Copy)]
struct ConnInfo {
    remote: SocketAddr,
    local: SocketAddr,
    tls: bool,
}

/// A running server: its address and a handle to stop it.
///
/// Dropping it without calling [`Running::shutdown`] (while no
/// [`Running::shutdown_trigger`] sender is alive) also stops the server, in the
/// background.
#[derive(Debug)]
pub struct Running {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting (the listening socket is closed at once, so new connections are
    /// refused), lets in-flight messages finish (up to the grace period, after which
    /// the remaining connections are dropped) and waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after [`Running::shutdown`] from elsewhere or a
    /// fatal accept error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A sender that triggers shutdown (for signal handlers): send `true`.
    pub fn shutdown_trigger(&self) -> tokio::sync::watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Resolves when `true` is sent or every sender is dropped.
async fn stop_requested(rx: &mut tokio::sync::watch::Receiver<bool>) {
    // The returned guard is not `Send`; drop it before returning.
    let _ = rx.wait_for(|stop| *stop).await.map(drop);
}

/// Serves SyncML over HTTP (or HTTPS when `tls` is given) on `listener`.
pub fn serve<H: MessageHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    opts: HttpOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<Running> {
    let local_addr = listener.local_addr()?;
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let opts = Arc::new(opts);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    // HTTP/1 only: SyncML clients speak HTTP/1.x, and the auto builder's h1/h2 sniffing
    // would wait for a first byte with no timeout at all.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    // Without a timer hyper applies no header-read timeout (slowloris); the
    // per-request timeout below only starts once the headers are in. It also bounds
    // how long a connection may sit idle before (or between) requests.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.request_timeout);
    let builder = Arc::new(builder);
    let handshake_timeout = opts.request_timeout;
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut conns = tokio::task::JoinSet::new();
        loop {
            // Reap finished connection tasks so the set does not grow without bound.
            while conns.try_join_next().is_some() {}
            tokio::select! {
                // `true` sent, or every sender dropped: stop.
                () = stop_requested(&mut rx) => break,
                accepted = listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let handler = handler.clone();
                    let opts2 = opts.clone();
                    let info = ConnInfo { remote, local: local_addr, tls: acceptor.is_some() };
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        let opts = opts2.clone();
                        async move {
                            let timeout = opts.request_timeout;
                            let resp = match tokio::time::timeout(
                                timeout,
                                serve_one(handler, opts, req, info),
                            )
                            .await
                            {
                                Ok(r) => r,
                                Err(_) => {
                                    warn!(%remote, ?timeout, "message timed out");
                                    text(StatusCode::SERVICE_UNAVAILABLE, "message processing timed out")
                                }
                            };
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let builder = builder.clone();
                    match &acceptor {
                        Some(acc) => {
                            let acc = acc.clone();
                            let watcher = graceful.watcher();
                            conns.spawn(async move {
                                // The handshake gets the same allowance as a request's headers.
                                match tokio::time::timeout(handshake_timeout, acc.accept(stream)).await {
                                    Ok(Ok(tls_stream)) => {
                                        let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                                            debug!(%remote, error = %e, "connection ended");
                                        }
                                    }
                                    Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake failed"),
                                    Err(_) => debug!(%remote, "TLS handshake timed out"),
                                }
                            });
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                            let fut = graceful.watch(conn);
                            conns.spawn(async move {
                                if let Err(e) = fut.await {
                                    debug!(%remote, error = %e, "connection ended");
                                }
                            });
                        }
                    }
                }
            }
        }
        // Close the listening socket now, not when this task ends: connections arriving
        // during the grace period are refused instead of waiting in the backlog.
        drop(listener);
        info!("shutting down: waiting for in-flight messages");
        if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("shutdown grace period over; dropping remaining connections");
        }
        // Connections still in their TLS handshake, or past the grace period.
        conns.shutdown().await;
    });
    Ok(Running {
        local_addr,
        shutdown: tx,
        task,
    })
}

/// Builds a rustls server configuration from PEM files (certificate chain and private
/// key), with the ring provider.
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<rustls::ServerConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if certs.is_empty() {
        return Err("certificate PEM holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("key PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate/key: {e}"))
}

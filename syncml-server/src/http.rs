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
use hyper_util::rt::{TokioExecutor, TokioIo};
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

/// Processes one SyncML message. Implemented by the server's session layer.
pub trait MessageHandler: Send + Sync + 'static {
    /// Handles one message and returns the reply.
    fn handle(&self, req: SyncRequest) -> impl Future<Output = SyncResponse> + Send;
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

async fn serve_one<H: MessageHandler>(
    handler: Arc<H>,
    opts: Arc<HttpOptions>,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && (path == "/health" || path == "/ready") {
        return text(StatusCode::OK, "ok");
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
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let base_url = format!("{}://{host}{path}", if tls { "https" } else { "http" });
    let session_token = session_token(req.uri().query());
    let body = match Limited::new(req.into_body(), opts.max_body).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                warn!(%remote, max = opts.max_body, "refused: message larger than the body limit");
                return text(StatusCode::PAYLOAD_TOO_LARGE, "message too large");
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

/// A running server: its address and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// The bound address (useful with port 0).
    pub local_addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight messages finish (up to the grace period) and
    /// waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after [`Running::shutdown`] from elsewhere or a
    /// fatal accept error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A sender that triggers shutdown (for signal handlers).
    pub fn shutdown_trigger(&self) -> tokio::sync::watch::Sender<bool> {
        self.shutdown.clone()
    }
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
    let task = tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            tokio::select! {
                _ = rx.changed() => break,
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
                    let is_tls = acceptor.is_some();
                    let svc = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        let opts = opts2.clone();
                        async move {
                            let timeout = opts.request_timeout;
                            let resp = match tokio::time::timeout(
                                timeout,
                                serve_one(handler, opts, req, remote, is_tls),
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
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match &acceptor {
                        Some(acc) => {
                            let acc = acc.clone();
                            let watcher = graceful.watcher();
                            tokio::spawn(async move {
                                match acc.accept(stream).await {
                                    Ok(tls_stream) => {
                                        let conn = builder.serve_connection(TokioIo::new(tls_stream), svc);
                                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                                            debug!(%remote, error = %e, "connection ended");
                                        }
                                    }
                                    Err(e) => debug!(%remote, error = %e, "TLS handshake failed"),
                                }
                            });
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                            let fut = graceful.watch(conn);
                            tokio::spawn(async move {
                                if let Err(e) = fut.await {
                                    debug!(%remote, error = %e, "connection ended");
                                }
                            });
                        }
                    }
                }
            }
        }
        info!("shutting down: waiting for in-flight messages");
        if tokio::time::timeout(opts.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            warn!("shutdown grace period over; dropping remaining connections");
        }
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

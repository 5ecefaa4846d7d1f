//! How messages reach the server: the [`Transport`] trait, the default HTTP transport
//! ([`HttpTransport`], feature `http`), an in-memory one ([`FnTransport`]) and a wrapper
//! that counts requests ([`Counting`]) so tests can prove that a refused gate sent
//! nothing.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::TransportError;

/// Posts one SyncML message and returns the reply (`Content-Type`, body).
pub trait Transport: Send + Sync {
    /// POSTs `body` with `content_type` to `url`; the reply's content type and body.
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send;
}

impl<T: Transport> Transport for &T {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        (**self).post(url, content_type, body)
    }
}

impl<T: Transport> Transport for Arc<T> {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        (**self).post(url, content_type, body)
    }
}

/// An in-memory transport: a function answers every request (a server called in-process,
/// a scripted peer).
pub struct FnTransport<F>(pub F);

impl<F> std::fmt::Debug for FnTransport<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnTransport")
    }
}

impl<F> Transport for FnTransport<F>
where
    F: Fn(&str, &str, Vec<u8>) -> Result<(String, Vec<u8>), TransportError> + Send + Sync,
{
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        let r = (self.0)(url, content_type, body);
        async move { r }
    }
}

/// Wraps a transport and counts the requests that went through it.
#[derive(Debug, Clone)]
pub struct Counting<T> {
    inner: T,
    count: Arc<AtomicUsize>,
}

impl<T> Counting<T> {
    /// Counts the requests of `inner`.
    pub fn new(inner: T) -> Counting<T> {
        Counting {
            inner,
            count: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// A handle that keeps reading the count after the transport moved into an engine.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.count.clone()
    }
}

impl<T: Transport> Transport for Counting<T> {
    fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.inner.post(url, content_type, body)
    }
}

#[cfg(feature = "http")]
pub use http::HttpTransport;

#[cfg(feature = "http")]
mod http {
    use super::Transport;
    use crate::error::TransportError;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, Limited};
    use hyper::client::conn::http1::SendRequest;
    use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A kept-alive HTTPS connection: `host:port` and its request sender.
    type TlsConnection = (String, SendRequest<Full<Bytes>>);

    /// The default HTTP transport: hyper over tokio, plain `http://` through hyper-util's
    /// client, and `https://` through rustls (ring provider) once trusted roots are set
    /// ([`with_root_certificates_pem`](Self::with_root_certificates_pem) or
    /// [`with_tls_config`](Self::with_tls_config)). Keeps connections alive between the
    /// messages of a session. Must be used inside a tokio runtime.
    #[derive(Clone)]
    pub struct HttpTransport {
        client: Client<HttpConnector, Full<Bytes>>,
        tls: Option<Arc<rustls::ClientConfig>>,
        tls_conn: Arc<Mutex<Option<TlsConnection>>>,
        timeout: Duration,
        max_reply: usize,
    }

    impl std::fmt::Debug for HttpTransport {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("HttpTransport")
                .field("tls", &self.tls.is_some())
                .field("timeout", &self.timeout)
                .field("max_reply", &self.max_reply)
                .finish()
        }
    }

    impl Default for HttpTransport {
        fn default() -> Self {
            HttpTransport::new()
        }
    }

    impl HttpTransport {
        /// A transport with a 60 s timeout per request and 32 MiB replies at most; no
        /// trusted TLS roots (an `https://` URL fails with [`TransportError::Tls`]).
        pub fn new() -> HttpTransport {
            HttpTransport {
                client: Client::builder(TokioExecutor::new()).build_http(),
                tls: None,
                tls_conn: Arc::new(Mutex::new(None)),
                timeout: Duration::from_secs(60),
                max_reply: 32 * 1024 * 1024,
            }
        }

        /// Sets the timeout of one request (connect, send, receive).
        pub fn with_timeout(mut self, timeout: Duration) -> HttpTransport {
            self.timeout = timeout;
            self
        }

        /// Uses `config` for `https://` URLs.
        pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> HttpTransport {
            self.tls = Some(config);
            self
        }

        /// Trusts the certificates in `pem` (one or more PEM `CERTIFICATE` blocks: a CA
        /// or the server's own self-signed certificate) for `https://` URLs, with the
        /// ring crypto provider and rustls' safe default protocol versions.
        pub fn with_root_certificates_pem(
            self,
            pem: &[u8],
        ) -> Result<HttpTransport, TransportError> {
            use rustls::pki_types::pem::PemObject;
            use rustls::pki_types::CertificateDer;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| TransportError::Tls(format!("certificate PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| TransportError::Tls(format!("certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(TransportError::Tls("the PEM holds no certificate".into()));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TransportError::Tls(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(self.with_tls_config(Arc::new(config)))
        }

        /// Opens a TLS connection to `host:port` and its HTTP/1 request sender.
        async fn connect_tls(
            &self,
            config: Arc<rustls::ClientConfig>,
            host: &str,
            port: u16,
        ) -> Result<SendRequest<Full<Bytes>>, TransportError> {
            let key = format!("{host}:{port}");
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| TransportError::Io(format!("connecting to {key}: {e}")))?;
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|_| TransportError::BadUrl(key.clone()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| TransportError::Tls(format!("handshake with {key}: {e}")))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "TLS connection closed");
                }
            });
            Ok(sender)
        }

        /// Posts over a kept-alive or new TLS connection to the URI's authority. A kept
        /// connection the server has closed meanwhile is replaced once.
        async fn send_tls(
            &self,
            method: &hyper::Method,
            uri: &hyper::Uri,
            headers: hyper::HeaderMap,
            body: Bytes,
        ) -> Result<hyper::Response<hyper::body::Incoming>, TransportError> {
            let Some(config) = self.tls.clone() else {
                return Err(TransportError::Tls(
                    "https needs trusted root certificates (none configured)".into(),
                ));
            };
            let host = uri
                .host()
                .ok_or_else(|| TransportError::BadUrl(uri.to_string()))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let key = format!("{host}:{port}");
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_string())
                .unwrap_or_else(|| key.clone());
            let host_value = HeaderValue::from_str(&authority)
                .map_err(|_| TransportError::BadUrl(uri.to_string()))?;
            let path: hyper::Uri = uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
                .parse()
                .map_err(|_| TransportError::BadUrl(uri.to_string()))?;
            let make = || {
                let mut req = hyper::Request::new(Full::new(body.clone()));
                *req.method_mut() = method.clone();
                *req.uri_mut() = path.clone();
                *req.headers_mut() = headers.clone();
                req.headers_mut().insert(HOST, host_value.clone());
                req
            };
            let cached = self
                .tls_conn
                .lock()
                .ok()
                .and_then(|mut c| c.take())
                .filter(|(k, s)| *k == key && !s.is_closed())
                .map(|(_, s)| s);
            let reused = cached.is_some();
            let mut sender = match cached {
                Some(s) => s,
                None => self.connect_tls(config.clone(), &host, port).await?,
            };
            let first = match sender.ready().await {
                Ok(()) => sender.send_request(make()).await,
                Err(e) => Err(e),
            };
            let resp = match first {
                Ok(r) => r,
                Err(e) if reused => {
                    tracing::debug!(error = %e, "kept TLS connection failed; reconnecting");
                    sender = self.connect_tls(config, &host, port).await?;
                    sender
                        .ready()
                        .await
                        .map_err(|e| TransportError::Io(e.to_string()))?;
                    sender
                        .send_request(make())
                        .await
                        .map_err(|e| TransportError::Io(e.to_string()))?
                }
                Err(e) => return Err(TransportError::Io(e.to_string())),
            };
            if let Ok(mut c) = self.tls_conn.lock() {
                *c = Some((key, sender));
            }
            Ok(resp)
        }

        async fn exchange(
            &self,
            url: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> Result<(String, Vec<u8>), TransportError> {
            let ct = HeaderValue::from_str(content_type)
                .map_err(|_| TransportError::Io(format!("bad content type {content_type:?}")))?;
            let mut headers = hyper::HeaderMap::new();
            headers.insert(CONTENT_TYPE, ct.clone());
            headers.insert(ACCEPT, ct);
            let (status, reply_ct, bytes) = self
                .request(hyper::Method::POST, url, headers, body)
                .await?;
            if status != 200 {
                let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                return Err(TransportError::Http { status, body: text });
            }
            Ok((reply_ct, bytes))
        }

        /// One JSON request to an HTTP API next to the SyncML service (the server's
        /// registration API, [`crate::registration`]): any status comes back, with the
        /// body; only transport failures are errors. `authorization` is the whole header
        /// value (`Basic ...`, `Bearer ...`).
        pub async fn json_request(
            &self,
            method: &str,
            url: &str,
            authorization: Option<&str>,
            body: Option<Vec<u8>>,
        ) -> Result<(u16, Vec<u8>), TransportError> {
            let method = hyper::Method::from_bytes(method.as_bytes())
                .map_err(|_| TransportError::Io(format!("bad method {method:?}")))?;
            let mut headers = hyper::HeaderMap::new();
            let json = HeaderValue::from_static("application/json");
            headers.insert(ACCEPT, json.clone());
            if body.is_some() {
                headers.insert(CONTENT_TYPE, json);
            }
            if let Some(a) = authorization {
                let v = HeaderValue::from_str(a)
                    .map_err(|_| TransportError::Io("bad Authorization value".into()))?;
                headers.insert(hyper::header::AUTHORIZATION, v);
            }
            let fut = self.request(method, url, headers, body.unwrap_or_default());
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(r) => r.map(|(status, _, bytes)| (status, bytes)),
                Err(_) => Err(TransportError::Timeout),
            }
        }

        async fn request(
            &self,
            method: hyper::Method,
            url: &str,
            headers: hyper::HeaderMap,
            body: Vec<u8>,
        ) -> Result<(u16, String, Vec<u8>), TransportError> {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|_| TransportError::BadUrl(url.to_string()))?;
            let https = match uri.scheme_str() {
                Some("http") => false,
                Some("https") => true,
                _ => return Err(TransportError::BadUrl(url.to_string())),
            };
            if uri.host().is_none() {
                return Err(TransportError::BadUrl(url.to_string()));
            }
            let body = Bytes::from(body);
            let resp = if https {
                self.send_tls(&method, &uri, headers, body).await?
            } else {
                let mut req = hyper::Request::new(Full::new(body));
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                self.client
                    .request(req)
                    .await
                    .map_err(|e| TransportError::Io(e.to_string()))?
            };
            let status = resp.status().as_u16();
            let reply_ct = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = Limited::new(resp.into_body(), self.max_reply)
                .collect()
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?
                .to_bytes();
            Ok((status, reply_ct, bytes.to_vec()))
        }
    }

    impl Transport for HttpTransport {
        fn post(
            &self,
            url: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> impl Future<Output = Result<(String, Vec<u8>), TransportError>> + Send {
            let url = url.to_string();
            let content_type = content_type.to_string();
            async move {
                match tokio::time::timeout(self.timeout, self.exchange(&url, &content_type, body))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(TransportError::Timeout),
                }
            }
        }
    }
}

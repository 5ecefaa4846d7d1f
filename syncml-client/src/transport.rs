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
    use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use std::future::Future;
    use std::time::Duration;

    /// The default HTTP transport: hyper-util's client over tokio, plain `http://`
    /// (TLS is a later addition). Keeps connections alive between the messages of a
    /// session. Must be used inside a tokio runtime.
    #[derive(Debug, Clone)]
    pub struct HttpTransport {
        client: Client<HttpConnector, Full<Bytes>>,
        timeout: Duration,
        max_reply: usize,
    }

    impl Default for HttpTransport {
        fn default() -> Self {
            HttpTransport::new()
        }
    }

    impl HttpTransport {
        /// A transport with a 60 s timeout per request and 32 MiB replies at most.
        pub fn new() -> HttpTransport {
            HttpTransport {
                client: Client::builder(TokioExecutor::new()).build_http(),
                timeout: Duration::from_secs(60),
                max_reply: 32 * 1024 * 1024,
            }
        }

        /// Sets the timeout of one request (connect, send, receive).
        pub fn with_timeout(mut self, timeout: Duration) -> HttpTransport {
            self.timeout = timeout;
            self
        }

        async fn exchange(
            &self,
            url: &str,
            content_type: &str,
            body: Vec<u8>,
        ) -> Result<(String, Vec<u8>), TransportError> {
            let uri: hyper::Uri = url
                .parse()
                .map_err(|_| TransportError::BadUrl(url.to_string()))?;
            if uri.scheme_str() != Some("http") || uri.host().is_none() {
                return Err(TransportError::BadUrl(url.to_string()));
            }
            let ct = HeaderValue::from_str(content_type)
                .map_err(|_| TransportError::Io(format!("bad content type {content_type:?}")))?;
            let mut req = hyper::Request::new(Full::new(Bytes::from(body)));
            *req.method_mut() = hyper::Method::POST;
            *req.uri_mut() = uri;
            req.headers_mut().insert(CONTENT_TYPE, ct.clone());
            req.headers_mut().insert(ACCEPT, ct);
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| TransportError::Io(e.to_string()))?;
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
            if status != 200 {
                let text: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
                return Err(TransportError::Http { status, body: text });
            }
            Ok((reply_ct, bytes.to_vec()))
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

//! Test harness shared by the server's HTTP tests: a minimal blocking HTTP/1.1 client
//! (plain and TLS, every socket with a timeout so no test can hang) and servers on
//! 127.0.0.1:0 serving any [`MessageHandler`].
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;
use syncml_server::http::{self, HttpOptions, MessageHandler, Running};

/// Long enough for Argon2 work on a loaded 2-core machine; still bounds any hang.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
// ---------------------------------------------------------------------------------
// A minimal HTTP/1.1 client.
// ---------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Writes `head` and `body` (a write error is tolerated: the server may answer and
/// close before reading everything, e.g. 413) and reads one response, framed by
/// Content-Length (or by EOF when there is none).
pub fn exchange<S: Read + Write>(s: &mut S, head: &str, body: &[u8]) -> std::io::Result<Resp> {
    let wrote = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .and_then(|()| s.flush());
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut parsed: Option<(usize, Resp, Option<usize>)> = None;
    loop {
        if parsed.is_none() {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status: u16 = lines
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let resp = Resp {
                    status,
                    headers,
                    body: Vec::new(),
                };
                let len = resp.header("content-length").and_then(|v| v.parse().ok());
                parsed = Some((end + 4, resp, len));
            }
        }
        if let Some((start, _, Some(len))) = &parsed {
            if buf.len() >= start + len {
                break;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the response arrived (the server closed with our body
            // unread) still leaves us the response.
            Err(_) if parsed.is_some() => break,
            Err(e) => {
                wrote?;
                return Err(e);
            }
        }
    }
    let (start, mut resp, len) = parsed.ok_or_else(|| {
        std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed before a response",
        )
    })?;
    let end = len.map_or(buf.len(), |l| start + l);
    if buf.len() < end {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            format!(
                "truncated body: {} of {} bytes",
                buf.len() - start,
                end - start
            ),
        ));
    }
    resp.body = buf[start..end].to_vec();
    Ok(resp)
}

/// A URL we posted to or were given as RespURI.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub https: bool,
    pub authority: String,
    /// Path and query.
    pub target: String,
}

pub fn parse_url(url: &str) -> Url {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        panic!("not an http(s) URL: {url}");
    };
    let (authority, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Url {
        https,
        authority: authority.to_string(),
        target: target.to_string(),
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

// ---------------------------------------------------------------------------------
// Servers.
// ---------------------------------------------------------------------------------

pub struct Server {
    pub addr: SocketAddr,
    /// Client TLS config trusting the server's certificate (HTTPS servers only).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub running: Option<Running>,
    pub rt: Arc<tokio::runtime::Runtime>,
    pub _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(IO_TIMEOUT, r.shutdown()).await });
        }
    }
}

pub fn runtime() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
    )
}

pub fn serve_on<H: MessageHandler>(
    rt: &tokio::runtime::Runtime,
    handler: Arc<H>,
    opts: HttpOptions,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Running {
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        http::serve(l, handler, opts, tls).expect("serve")
    })
}

pub fn start<H: MessageHandler>(handler: Arc<H>, opts: HttpOptions) -> Server {
    let rt = runtime();
    let running = serve_on(&rt, handler, opts, None);
    Server {
        addr: running.local_addr,
        tls: None,
        running: Some(running),
        rt,
        _dir: None,
    }
}

impl Server {
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT` (the certificate's name).
    pub fn origin(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// Sends one raw request (`head` must end with the blank line) on a new connection.
    pub fn raw(&self, head: &str, body: &[u8]) -> std::io::Result<Resp> {
        let mut tcp = connect(self.addr);
        match &self.tls {
            None => exchange(&mut tcp, head, body),
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                let conn = rustls::ClientConnection::new(cfg.clone(), name).expect("tls client");
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                exchange(&mut tls, head, body)
            }
        }
    }

    /// A request to `url` (scheme and authority as given; the TCP connection always
    /// goes to this server), sent with `Host: <authority of url>`.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Resp {
        let u = parse_url(url);
        assert_eq!(u.https, self.tls.is_some(), "scheme of {url}");
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            u.target, u.authority
        );
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if method == "POST" || !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.raw(&head, body).expect("HTTP exchange")
    }

    pub fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Resp {
        self.request("POST", url, Some(content_type), body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", &format!("{}{path}", self.origin()), None, b"")
    }

    pub fn shutdown(&mut self) {
        let r = self.running.take().expect("running");
        self.rt
            .block_on(async { tokio::time::timeout(IO_TIMEOUT, r.shutdown()).await })
            .expect("shutdown finished in time");
    }
}

pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub client: Arc<rustls::ClientConfig>,
}

pub fn test_cert() -> TestCert {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("rcgen");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TestCert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
        client: Arc::new(client),
    }
}

pub fn start_tls<H: MessageHandler>(handler: Arc<H>, o: HttpOptions) -> Server {
    let c = test_cert();
    let cfg = http::tls_config(c.cert_pem.as_bytes(), c.key_pem.as_bytes()).expect("tls_config");
    let rt = runtime();
    let running = serve_on(&rt, handler, o, Some(Arc::new(cfg)));
    Server {
        addr: running.local_addr,
        tls: Some(c.client),
        running: Some(running),
        rt,
        _dir: None,
    }
}

//! A real HTTPS webhook receiver on 127.0.0.1: records every request and answers as the test scripts it,
//! optionally holding each answer until the test releases it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::tls::TestCa;
use super::within;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// 0-based arrival number over the receiver's life (what the [`Script`] was called with).
    pub n: usize,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no `{name}` header"))
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What to answer: status and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// How long to wait before answering (a slow receiver).
    pub delay: Option<std::time::Duration>,
    /// The answer's body; `{"ok":true}` when not set.
    pub body: Option<Bytes>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), delay: None, body: None }
    }

    pub fn after(mut self, delay: std::time::Duration) -> Reply {
        self.delay = Some(delay);
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = Some(body.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Decides the answer to the n-th request (0-based, counted over the receiver's life).
pub type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

pub fn always(status: u16) -> Script {
    Arc::new(move |_| Reply::status(status))
}

/// Answers the given replies in turn, then `then` for every later request.
pub fn sequence(replies: Vec<Reply>, then: u16) -> Script {
    Arc::new(move |n| replies.get(n).cloned().unwrap_or_else(|| Reply::status(then)))
}

/// Decides the answer from the request itself (its headers and body).
pub type Judge = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

struct Shared {
    script: Script,
    judge: Option<Judge>,
    count: AtomicUsize,
    /// When set, every answer waits for a permit (see [`Receiver::release`]).
    gate: Option<Arc<Semaphore>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    sender: mpsc::UnboundedSender<Received>,
}

pub struct Receiver {
    pub port: u16,
    shared: Arc<Shared>,
    requests: Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl Receiver {
    pub async fn start(ca: &TestCa, script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, ca, script, false)
    }

    /// A receiver whose answers wait until [`Receiver::release`] lets them go.
    pub async fn start_holding(ca: &TestCa, script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, ca, script, true)
    }

    /// Serves on a listener the test bound earlier (its port was already in a config).
    pub fn serve(listener: TcpListener, ca: &TestCa, script: Script, hold: bool) -> Receiver {
        Self::serve_tls(listener, Arc::clone(&ca.server), script, hold)
    }

    /// A receiver presenting the certificate of `tls` (see [`super::tls::Flaw`]).
    pub async fn start_with_tls(tls: Arc<rustls::ServerConfig>, script: Script) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_tls(listener, tls, script, false)
    }

    /// A receiver that answers each request as `judge` decides from the request.
    pub async fn start_judging(ca: &TestCa, judge: Judge) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_with(listener, Arc::clone(&ca.server), always(200), Some(judge), false)
    }

    fn serve_tls(listener: TcpListener, tls: Arc<rustls::ServerConfig>, script: Script, hold: bool) -> Receiver {
        Self::serve_with(listener, tls, script, None, hold)
    }

    fn serve_with(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        script: Script,
        judge: Option<Judge>,
        hold: bool,
    ) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let (sender, requests) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            script,
            judge,
            count: AtomicUsize::new(0),
            gate: hold.then(|| Arc::new(Semaphore::new(0))),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            sender,
        });
        let acceptor = TlsAcceptor::from(tls);
        let accepting = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (acceptor, shared) = (acceptor.clone(), Arc::clone(&accepting));
                tokio::spawn(async move {
                    // Connections the relay dropped mid-handshake (a killed process) just end here.
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let service = service_fn(move |request| answer(Arc::clone(&shared), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Receiver { port, shared, requests: Mutex::new(requests) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// The next request to arrive (they come in arrival order).
    pub async fn next(&self) -> Received {
        let mut requests = self.requests.lock().await;
        within("a request at the receiver", requests.recv()).await.expect("the receiver stopped")
    }

    /// Lets `n` held answers go.
    pub fn release(&self, n: usize) {
        self.shared.gate.as_ref().expect("a holding receiver").add_permits(n);
    }

    /// The most requests that were ever waiting for their answer at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }
}

async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let n = shared.count.fetch_add(1, Ordering::SeqCst);
    let received = Received { n, path: parts.uri.path().to_owned(), headers: parts.headers, body, at: Instant::now() };
    let reply = match &shared.judge {
        Some(judge) => judge(&received),
        None => (shared.script)(n),
    };
    let _ = shared.sender.send(received);
    if let Some(gate) = &shared.gate {
        gate.acquire().await.unwrap().forget();
    }
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    let body = reply.body.unwrap_or_else(|| Bytes::from_static(b"{\"ok\":true}"));
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(response)
}

//! The HTTPS client deliveries go out through: hyper + rustls, certificates always verified against the
//! system roots plus the configured `ca_file`, TLS 1.2 or newer, HTTP/1.1 keep-alive, no redirects
//! (hyper never follows them), and one deadline over connect, TLS, request and response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use tokio::sync::Semaphore;

use super::backoff::parse_retry_after;
use super::connection_cap::CappedConnector;
use super::route::Route;
use crate::config::{ClientIdentity, Proxy, Subscription};

/// How much of a receiver's answer is kept for operators.
pub const RESPONSE_BODY_LIMIT: usize = 4096;

/// What one attempt came to.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: Option<StatusCode>,
    /// From `Retry-After`, on 429 and 503 only.
    pub retry_after: Option<Duration>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration: Duration,
}

impl Outcome {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.is_success())
    }
}

/// One pooled client.
#[derive(Clone)]
pub struct HttpsClient {
    inner: Client<CappedConnector<HttpsConnector<Route>>, Full<Bytes>>,
}

/// Headers a receiver's answer may have: hyper's default is 100, and a 2xx with more would count as a
/// failed attempt and be sent again; this is generous and still bounded.
const MAX_RESPONSE_HEADERS: usize = 1000;

impl HttpsClient {
    /// A client for one subscription: at most `concurrency` connections exist at once, connecting, in
    /// use or idle ([`CappedConnector`]), and a connect gives up after `timeout` (SPEC §7: connections
    /// to a subscriber stay bounded by its concurrency). It presents the subscription's client
    /// certificate when a receiver asks for one, and tunnels through its proxy when it has one.
    fn new(made_for: &MadeFor, outbound: Arc<Semaphore>) -> Result<HttpsClient, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_roots().iter().cloned());
        for root in made_for.roots.iter() {
            roots.add(root.clone())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots);
        let tls = match &made_for.identity {
            Some(identity) => {
                tls.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(Arc::clone(&identity.key))))
            }
            None => tls.with_no_client_auth(),
        };
        let (concurrency, timeout) = (made_for.concurrency, made_for.timeout);
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(Route::new(http, made_for.proxy.as_ref()));
        let connector = CappedConnector::new(connector, concurrency, outbound, timeout);
        let inner = Client::builder(TokioExecutor::new())
            // Without a timer hyper-util never evicts idle connections on its own, and each holds its
            // permits (connection_cap) until the receiver hangs up.
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(concurrency)
            .http1_max_headers(MAX_RESPONSE_HEADERS)
            .build(connector);
        Ok(HttpsClient { inner })
    }

    /// POSTs `body` and reads the status and the start of the answer, all within `timeout`.
    pub async fn post(&self, url: &Uri, headers: HeaderMap, body: Bytes, timeout: Duration) -> Outcome {
        let started = Instant::now();
        let mut request = Request::post(url.clone()).body(Full::new(body)).expect("a valid URI and method");
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| super::tls_hint::with_hint(describe(&e)))?;
            let status = response.status();
            let retry_after = match status {
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                _ => None,
            };
            let body = read_prefix(response.into_body(), RESPONSE_BODY_LIMIT).await;
            Ok::<_, String>((status, retry_after, body))
        };
        let mut outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((status, retry_after, body))) => {
                Outcome { status: Some(status), retry_after, response_body: Some(body), ..Outcome::default() }
            }
            Ok(Err(error)) => Outcome { error: Some(error), ..Outcome::default() },
            Err(_) => Outcome {
                error: Some(format!("timed out after {}", humantime::format_duration(timeout))),
                ..Outcome::default()
            },
        };
        if let Some(status) = outcome.status.filter(|s| !s.is_success()) {
            outcome.error = Some(format!("receiver answered {status}"));
        }
        outcome.duration = started.elapsed();
        outcome
    }
}

/// Reads at most `limit` bytes of a body; the rest is dropped unread (an enormous answer costs nothing).
async fn read_prefix(mut body: hyper::body::Incoming, limit: usize) -> String {
    let mut kept = Vec::new();
    while kept.len() < limit {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = limit - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// An error with its causes, e.g. "client error (Connect): invalid peer certificate: UnknownIssuer".
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The machine's trusted roots, read once.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            tracing::warn!(
                errors = found.errors.len(),
                "No system root certificates found; only ca_file roots are trusted."
            );
        }
        found.certs
    })
}

/// What a subscription's client was made for: when any of it changes (a reload), the next attempt gets a
/// new client, and the old one's idle connections close with it instead of holding connection permits.
#[derive(PartialEq)]
struct MadeFor {
    authority: String,
    roots: Arc<Vec<CertificateDer<'static>>>,
    concurrency: usize,
    timeout: Duration,
    proxy: Option<Proxy>,
    identity: Option<ClientIdentity>,
}

impl MadeFor {
    fn matches(&self, subscription: &Subscription) -> bool {
        let settings = &subscription.delivery;
        self.authority == subscription.url.authority().map_or("", |a| a.as_str())
            && (Arc::ptr_eq(&self.roots, &settings.extra_roots) || self.roots == settings.extra_roots)
            && self.concurrency == settings.concurrency
            && self.timeout == settings.timeout
            && self.proxy == subscription.proxy
            && self.identity == settings.client_identity
    }

    fn of(subscription: &Subscription) -> MadeFor {
        let settings = &subscription.delivery;
        MadeFor {
            authority: subscription.url.authority().map_or_else(String::new, |a| a.to_string()),
            roots: Arc::clone(&settings.extra_roots),
            concurrency: settings.concurrency,
            timeout: settings.timeout,
            proxy: subscription.proxy.clone(),
            identity: settings.client_identity.clone(),
        }
    }
}

/// One client per subscription, made again when what it was made for changes ([`MadeFor`]).
pub struct ClientPool {
    clients: Mutex<HashMap<String, (MadeFor, HttpsClient)>>,
    /// Permits for every subscription's connections together ([`crate::limits::outbound_connections`]).
    outbound: Arc<Semaphore>,
}

impl Default for ClientPool {
    fn default() -> Self {
        ClientPool {
            clients: Mutex::default(),
            outbound: Arc::new(Semaphore::new(crate::limits::outbound_connections())),
        }
    }
}

impl ClientPool {
    pub fn client(&self, subscription: &Subscription) -> Result<HttpsClient, rustls::Error> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((made_for, client)) = clients.get(&subscription.name) {
            if made_for.matches(subscription) {
                return Ok(client.clone());
            }
        }
        let made_for = MadeFor::of(subscription);
        let client = HttpsClient::new(&made_for, Arc::clone(&self.outbound))?;
        clients.insert(subscription.name.clone(), (made_for, client.clone()));
        Ok(client)
    }
}

//! The benchmark's receiver: HTTPS on 127.0.0.1, answers 204 at once (or, failing first, a 500 with a
//! long body to each `webhook-id`'s first arrival), records when each `webhook-id` arrived. Leaner than
//! the tests' receiver, which clones every request into a channel.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use hookrelay::delivery::client::RESPONSE_BODY_LIMIT;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use crate::support::tls::TestCa;

#[derive(Default)]
pub struct Arrivals {
    pub count: AtomicUsize,
    pub first: Mutex<Option<Instant>>,
    pub by_id: Mutex<HashMap<String, Instant>>,
    pub changed: Notify,
}

pub struct Sink {
    pub url: String,
    pub arrivals: Arc<Arrivals>,
}

/// A body as long as the relay keeps of an answer (SPEC §5: response bodies cut at 4 KiB).
const FAILURE_BODY: [u8; RESPONSE_BODY_LIMIT] = [b'e'; RESPONSE_BODY_LIMIT];

impl Sink {
    pub async fn start(ca: &TestCa, listener: Option<TcpListener>) -> Sink {
        Sink::start_with(ca, listener, false).await
    }

    /// A sink that answers each `webhook-id`'s first arrival with a 500 and a 4 KiB body, and later ones
    /// with a 204: every delivery takes a failed attempt with the longest answer the relay keeps, then a
    /// retry.
    pub async fn failing_first(ca: &TestCa) -> Sink {
        Sink::start_with(ca, None, true).await
    }

    async fn start_with(ca: &TestCa, listener: Option<TcpListener>, fail_first: bool) -> Sink {
        let listener = match listener {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        let arrivals = Arc::new(Arrivals::default());
        let acceptor = TlsAcceptor::from(Arc::clone(&ca.server));
        let recorded = Arc::clone(&arrivals);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (acceptor, arrivals) = (acceptor.clone(), Arc::clone(&recorded));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else { return };
                    let service = service_fn(move |request| record(Arc::clone(&arrivals), request, fail_first));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        Sink { url, arrivals }
    }

    /// Waits until `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let changed = self.arrivals.changed.notified();
            if self.arrivals.count.load(Ordering::Acquire) >= n {
                return;
            }
            changed.await;
        }
    }
}

async fn record(
    arrivals: Arc<Arrivals>,
    request: Request<Incoming>,
    fail_first: bool,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let now = Instant::now();
    let id = request.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    request.into_body().collect().await?;
    arrivals.first.lock().unwrap().get_or_insert(now);
    let first_arrival = match arrivals.by_id.lock().unwrap().entry(id) {
        Entry::Vacant(entry) => {
            entry.insert(now);
            true
        }
        Entry::Occupied(_) => false,
    };
    arrivals.count.fetch_add(1, Ordering::AcqRel);
    arrivals.changed.notify_waiters();
    let (status, body) = if fail_first && first_arrival {
        (StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(&FAILURE_BODY))
    } else {
        (StatusCode::NO_CONTENT, Bytes::new())
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    Ok(response)
}

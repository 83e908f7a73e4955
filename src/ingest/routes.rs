//! Request routing for both listeners. The TCP listener may require a bearer token for ingest; health,
//! readiness and metrics stay open on both.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use tracing::{debug, warn};

use super::accept::{Acceptor, Refusal};
use super::linger;
use super::rejection::Rejection;
use super::reply::{self, Reply};
use crate::admin::{is_admin_path, Admin};
use crate::clock::now_ms;
use crate::event::parse_submission;
use crate::metrics::{Backlog, Exposition, Metrics};

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Unix,
    Tcp,
}

pub struct Routes {
    pub acceptor: Acceptor,
    pub admin: Admin,
    pub metrics: Arc<Metrics>,
    /// Set once the store is open, the config loaded and every listener bound.
    pub ready: AtomicBool,
    /// How long a producer may take to send its headers, and then its body (see [`super::client_timeout`]).
    pub client_timeout: Duration,
}

impl Routes {
    pub async fn handle(self: Arc<Self>, listener: Listener, request: Request<Incoming>) -> Result<Reply, Infallible> {
        let path = request.uri().path();
        let reply = match (path, request.method()) {
            ("/v1/events", &Method::POST) => self.ingest(listener, request).await,
            ("/v1/events", _) => reply::method_not_allowed("POST"),
            ("/healthz", &Method::GET | &Method::HEAD) => reply::json(StatusCode::OK, &json!({ "status": "ok" })),
            ("/readyz", &Method::GET | &Method::HEAD) => readiness(self.ready.load(Ordering::Acquire)),
            ("/metrics", &Method::GET | &Method::HEAD) => self.metrics_text(request.headers()),
            ("/healthz" | "/readyz" | "/metrics", _) => reply::method_not_allowed("GET, HEAD"),
            // The admin API is for operators on the unix socket; the TCP listener does not know it.
            (path, _) if is_admin_path(path) && listener == Listener::Unix => self.admin.handle(request).await,
            _ => reply::not_found(),
        };
        Ok(reply)
    }

    async fn ingest(&self, listener: Listener, request: Request<Incoming>) -> Reply {
        let config = self.acceptor.config.load_full();
        let (parts, body) = request.into_parts();
        if listener == Listener::Tcp {
            if let Some(token) = &config.ingest.token {
                if !bearer(&parts.headers).is_some_and(|given| token.matches(given)) {
                    let refusal = self.refuse(listener, Rejection::Unauthorized, "missing or wrong bearer token");
                    return lingering(&parts.headers, body, false, refusal).await;
                }
            }
        }
        if !is_json(&parts.headers) {
            let refusal = self.refuse(
                listener,
                Rejection::UnsupportedMediaType,
                "send the events with Content-Type: application/json",
            );
            return lingering(&parts.headers, body, false, refusal).await;
        }
        let limit = config.ingest.max_body_bytes;
        let too_large = || self.refuse(listener, Rejection::PayloadTooLarge, format!("the body is over {limit} bytes"));
        let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return lingering(&parts.headers, body, false, too_large()).await;
        }
        let body = match tokio::time::timeout(self.client_timeout, linger::read_limited(body, limit)).await {
            Ok(linger::Body::Complete(bytes)) => bytes,
            Ok(linger::Body::TooLarge(rest)) => return lingering(&parts.headers, rest, true, too_large()).await,
            Ok(linger::Body::Broken) => {
                return self.refuse(listener, Rejection::BadRequest, "the body could not be read")
            }
            Err(_) => {
                let message =
                    format!("the body did not arrive within {}", humantime::format_duration(self.client_timeout));
                return closing(self.refuse(listener, Rejection::RequestTimeout, message));
            }
        };
        let submission = match parse_submission(&body) {
            Ok(submission) => submission,
            Err(invalid) => return self.refuse(listener, Rejection::InvalidEvent, invalid.message),
        };
        match self.acceptor.accept(submission).await {
            Ok(answer) => {
                self.metrics.accepted(answer.new_events);
                self.metrics.unrouted(answer.unrouted);
                let status = if answer.new_events > 0 { StatusCode::ACCEPTED } else { StatusCode::OK };
                reply::json(status, &answer.body)
            }
            Err(refusal @ Refusal::Conflict(_)) => self.refuse(listener, Rejection::Conflict, refusal.to_string()),
            Err(refusal @ Refusal::Backlogged(_)) => self.refuse(listener, Rejection::BacklogFull, refusal.to_string()),
            Err(refusal @ Refusal::Store(_)) => {
                warn!(error = %refusal, "Refused events: the store failed.");
                self.refuse(listener, Rejection::StoreUnavailable, refusal.to_string())
            }
        }
    }

    /// An error answer to an ingest request, counted and logged (at DEBUG) by reason. The log line has
    /// no message: one about the body may quote it (serde's "invalid type: string \"...\""), and bodies
    /// carry patient data.
    fn refuse(&self, listener: Listener, rejection: Rejection, message: impl Into<String>) -> Reply {
        let (status, reason) = (rejection.status(), rejection.reason());
        self.metrics.rejected(reason);
        debug!(reason, status = status.as_u16(), ?listener, "Ingest request refused.");
        reply::error(status, reason, message)
    }

    /// The metrics in the format the scraper's `Accept` asks for (see [`Exposition::for_accept`]).
    fn metrics_text(&self, headers: &HeaderMap) -> Reply {
        let accept: Vec<&str> = headers.get_all(ACCEPT).iter().filter_map(|value| value.to_str().ok()).collect();
        let exposition = Exposition::for_accept(&accept.join(","));
        let config = self.acceptor.config.load();
        let deliveries = self.acceptor.deliveries();
        let unfinished = deliveries.scheduler().unfinished();
        let backlogs: Vec<Backlog> = config
            .subscriptions
            .iter()
            .map(|subscription| {
                let queue = unfinished.iter().find(|(name, _, _)| *name == subscription.name);
                Backlog {
                    subscription: subscription.name.clone(),
                    enabled: subscription.enabled,
                    unfinished: queue.map_or(0, |q| q.1),
                    oldest_ms: queue.and_then(|q| q.2),
                    paused: deliveries.is_paused(&subscription.name),
                }
            })
            .collect();
        let text = self.metrics.render(&backlogs, deliveries.store().corrupt_records(), now_ms(), exposition);
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(exposition.content_type()));
        // The answer depends on Accept: a cache in between must not hand one scraper's format to another.
        response.headers_mut().insert(VARY, HeaderValue::from_static("accept"));
        response
    }
}

/// `/readyz`: 200 once the relay serves (the store open and recovered, the config loaded, the listeners
/// bound), 503 before. The listeners are bound last, so the 503 is seen only in the moment between the
/// first listener serving and the last being bound.
fn readiness(ready: bool) -> Reply {
    if ready {
        reply::json(StatusCode::OK, &json!({ "status": "ready" }))
    } else {
        reply::error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the relay is starting")
    }
}

/// Answers `reply` once the unread rest of the body is discarded (see [`linger::discard`]); closes the
/// connection after it when the body could not be read to its end.
async fn lingering(headers: &HeaderMap, body: Incoming, begun: bool, reply: Reply) -> Reply {
    if linger::discard(headers, body, begun).await {
        reply
    } else {
        closing(reply)
    }
}

fn closing(mut reply: Reply) -> Reply {
    reply.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    reply
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive (RFC 7235).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(reply: Reply) -> serde_json::Value {
        let bytes = reply.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Until the relay is ready, `/readyz` says so as every 503 does: an error code, a message and
    /// `Retry-After`; once ready, 200 `{"status":"ready"}` (tests/ingest.rs checks that on both listeners).
    #[tokio::test]
    async fn readiness_answers_503_with_retry_after_until_ready() {
        let starting = readiness(false);
        assert_eq!(starting.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(starting.headers()[http::header::RETRY_AFTER], reply::RETRY_AFTER_SECONDS.to_string().as_str());
        let expected = json!({"error": {"code": "not_ready", "message": "the relay is starting"}});
        assert_eq!(body(starting).await, expected);
        let ready = readiness(true);
        assert_eq!(ready.status(), StatusCode::OK);
        assert_eq!(body(ready).await, json!({"status": "ready"}));
    }
}

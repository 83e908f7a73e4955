//! Request routing for both listeners. The TCP listener may require a bearer token for ingest; health,
//! readiness and metrics stay open on both.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::warn;

use super::accept::{Acceptor, Refusal};
use super::reply::{self, Reply};
use crate::admin::{is_admin_path, Admin};
use crate::clock::now_ms;
use crate::event::parse_submission;
use crate::metrics::{Backlog, Metrics};

/// The content type of `prometheus_client`'s text encoding.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
            ("/readyz", &Method::GET | &Method::HEAD) => self.readiness(),
            ("/metrics", &Method::GET | &Method::HEAD) => self.metrics_text(),
            ("/healthz" | "/readyz" | "/metrics", _) => reply::method_not_allowed("GET, HEAD"),
            // The admin API is for operators on the unix socket; the TCP listener does not know it.
            (path, _) if is_admin_path(path) && listener == Listener::Unix => self.admin.handle(request).await,
            _ => reply::not_found(),
        };
        Ok(reply)
    }

    fn readiness(&self) -> Reply {
        if self.ready.load(Ordering::Acquire) {
            reply::json(StatusCode::OK, &json!({ "status": "ready" }))
        } else {
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the relay is starting")
        }
    }

    async fn ingest(&self, listener: Listener, request: Request<Incoming>) -> Reply {
        let config = self.acceptor.config.load_full();
        if listener == Listener::Tcp {
            if let Some(token) = &config.ingest.token {
                let given = request.headers().get(AUTHORIZATION).and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
                if !given.is_some_and(|given| token.matches(given)) {
                    return self.refuse(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer token");
                }
            }
        }
        if !is_json(&request) {
            return self.refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the events with Content-Type: application/json",
            );
        }
        let limit = config.ingest.max_body_bytes;
        let too_large = || {
            self.refuse(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is over {limit} bytes"))
        };
        let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return too_large();
        }
        let reading = tokio::time::timeout(self.client_timeout, Limited::new(request.into_body(), limit).collect());
        let body = match reading.await {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return too_large(),
            Ok(Err(_)) => return self.refuse(StatusCode::BAD_REQUEST, "bad_request", "the body could not be read"),
            Err(_) => {
                let message =
                    format!("the body did not arrive within {}", humantime::format_duration(self.client_timeout));
                let mut reply = self.refuse(StatusCode::REQUEST_TIMEOUT, "request_timeout", message);
                reply.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                return reply;
            }
        };
        let submission = match parse_submission(&body) {
            Ok(submission) => submission,
            Err(invalid) => return self.refuse(StatusCode::BAD_REQUEST, "invalid_event", invalid.message),
        };
        match self.acceptor.accept(submission).await {
            Ok(answer) => {
                self.metrics.accepted(answer.new_events);
                let status = if answer.new_events > 0 { StatusCode::ACCEPTED } else { StatusCode::OK };
                reply::json(status, &answer.body)
            }
            Err(refusal @ Refusal::Conflict(_)) => self.refuse(StatusCode::CONFLICT, "conflict", refusal.to_string()),
            Err(refusal @ Refusal::Backlogged(_)) => {
                self.refuse(StatusCode::SERVICE_UNAVAILABLE, "backlog_full", refusal.to_string())
            }
            Err(refusal @ Refusal::Store(_)) => {
                warn!(error = %refusal, "Refused events: the store failed.");
                self.refuse(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", refusal.to_string())
            }
        }
    }

    /// An error answer to an ingest request, counted by reason.
    fn refuse(&self, status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
        self.metrics.rejected(code);
        reply::error(status, code, message)
    }

    fn metrics_text(&self) -> Reply {
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
                }
            })
            .collect();
        let text = self.metrics.render(&backlogs, deliveries.store().corrupt_records(), now_ms());
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
        response
    }
}

/// `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json(request: &Request<Incoming>) -> bool {
    let Some(value) = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
}

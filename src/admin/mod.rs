//! The admin API (SPEC §5), served on the unix socket only: list and inspect deliveries and events,
//! requeue failed or cancelled deliveries. The socket's file permissions are its access control.

mod view;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

pub use view::{StatusFilter, DEFAULT_LIMIT, MAX_LIMIT};

use crate::clock::now_ms;
use crate::delivery::{Dispatcher, NotRequeued};
use crate::ingest::reply::{self, Reply};
use crate::store::{DeliveryId, DeliveryStatus, StoreError};

/// Admin request bodies are tiny; anything larger is a mistake.
const BODY_LIMIT: usize = 64 * 1024;

pub struct Admin {
    pub dispatcher: Arc<Dispatcher>,
}

/// Whether `path` belongs to the admin API (and so is 404 on the TCP listener).
pub fn is_admin_path(path: &str) -> bool {
    path == "/v1/deliveries" || path.starts_with("/v1/deliveries/") || path.starts_with("/v1/events/")
}

impl Admin {
    pub async fn handle(&self, request: Request<Incoming>) -> Reply {
        let path = request.uri().path().to_owned();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = request.method().clone();
        let outcome = match (segments.as_slice(), &method) {
            (["v1", "deliveries"], &Method::GET) => self.list(request.uri().query()),
            (["v1", "deliveries"], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "deliveries", "retry"], &Method::POST) => self.retry_matching(request).await,
            (["v1", "deliveries", "retry"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "deliveries", id], &Method::GET) => self.one(id),
            (["v1", "deliveries", _], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "deliveries", id, "retry"], &Method::POST) => self.retry_one(id).await,
            (["v1", "deliveries", _, "retry"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "events", id], &Method::GET) => self.event(id),
            (["v1", "events", _], _) => Ok(reply::method_not_allowed("GET")),
            _ => Ok(reply::not_found()),
        };
        outcome.unwrap_or_else(|error| {
            warn!(%error, "Admin request failed: the store could not be read.");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string())
        })
    }

    fn list(&self, query: Option<&str>) -> Result<Reply, StoreError> {
        let query = match view::ListQuery::parse(query) {
            Ok(query) => query,
            Err(message) => return Ok(reply::error(StatusCode::BAD_REQUEST, "invalid_query", message)),
        };
        let config = self.dispatcher.config.load();
        let mut page = Vec::new();
        let mut last = None;
        let mut more = false;
        for delivery in self.dispatcher.store.deliveries_after(query.after) {
            let delivery = delivery?;
            if !view::matches(&delivery, &config, query.status, query.subscription.as_deref()) {
                continue;
            }
            if page.len() == query.limit {
                more = true;
                break;
            }
            last = Some(delivery.id);
            page.push(view::delivery(&delivery, &config));
        }
        let next = last.filter(|_| more).map(|id| id.to_string());
        Ok(reply::json(StatusCode::OK, &json!({ "deliveries": page, "next": next })))
    }

    fn one(&self, id: &str) -> Result<Reply, StoreError> {
        let store = &self.dispatcher.store;
        let Some(delivery) = DeliveryId::parse(id).map(|id| store.delivery(id)).transpose()?.flatten() else {
            return Ok(reply::error(StatusCode::NOT_FOUND, "not_found", format!("no delivery `{id}`")));
        };
        let attempts = store.attempts(delivery.id)?;
        let config = self.dispatcher.config.load();
        Ok(reply::json(StatusCode::OK, &view::delivery_with_attempts(&delivery, &attempts, &config)))
    }

    fn event(&self, id: &str) -> Result<Reply, StoreError> {
        let store = &self.dispatcher.store;
        let Some(event) = store.event(id)? else {
            return Ok(reply::error(StatusCode::NOT_FOUND, "not_found", format!("no event `{id}`")));
        };
        let config = self.dispatcher.config.load();
        let mut deliveries = Vec::new();
        for &delivery_id in &event.deliveries {
            if let Some(delivery) = store.delivery(delivery_id)? {
                deliveries.push(view::delivery(&delivery, &config));
            }
        }
        Ok(reply::json(StatusCode::OK, &view::event(&event, deliveries)))
    }

    async fn retry_one(&self, id: &str) -> Result<Reply, StoreError> {
        let Some(delivery_id) = DeliveryId::parse(id) else {
            return Ok(reply::error(StatusCode::NOT_FOUND, "not_found", format!("no delivery `{id}`")));
        };
        match self.dispatcher.requeue(delivery_id).await? {
            Ok(()) => {
                info!(delivery_id = %delivery_id, "Delivery requeued by an operator.");
                Ok(reply::json(StatusCode::OK, &json!({ "requeued": 1 })))
            }
            Err(why @ NotRequeued::Unknown(_)) => Ok(reply::error(StatusCode::NOT_FOUND, "not_found", why.to_string())),
            Err(why) => Ok(reply::error(StatusCode::CONFLICT, "not_requeued", why.to_string())),
        }
    }

    async fn retry_matching(&self, request: Request<Incoming>) -> Result<Reply, StoreError> {
        let filter = match read_json::<RetryFilter>(request).await {
            Ok(filter) => filter,
            Err(message) => return Ok(reply::error(StatusCode::BAD_REQUEST, "invalid_request", message)),
        };
        let status = match filter.status.as_deref().unwrap_or("failed") {
            "failed" => DeliveryStatus::Failed,
            "cancelled" => DeliveryStatus::Cancelled,
            other => {
                let message = format!("`status` must be failed or cancelled, not `{other}`");
                return Ok(reply::error(StatusCode::BAD_REQUEST, "invalid_request", message));
            }
        };
        let since = match filter.since.as_deref().map(humantime::parse_duration).transpose() {
            Ok(since) => since,
            Err(error) => {
                let message = format!("`since` must be a duration such as \"1h\": {error}");
                return Ok(reply::error(StatusCode::BAD_REQUEST, "invalid_request", message));
            }
        };
        let cutoff = since.map(|since| now_ms().saturating_sub(since.as_millis() as u64));
        let mut chosen = Vec::new();
        for delivery in self.dispatcher.store.deliveries() {
            let delivery = delivery?;
            let wanted = delivery.status == status
                && filter.subscription.as_deref().is_none_or(|name| delivery.subscription == name)
                && cutoff.is_none_or(|cutoff| delivery.updated_at >= cutoff);
            if wanted {
                chosen.push(delivery.id);
            }
        }
        let mut requeued = 0;
        for id in chosen {
            if self.dispatcher.requeue(id).await?.is_ok() {
                requeued += 1;
            }
        }
        info!(requeued, "Deliveries requeued by an operator.");
        Ok(reply::json(StatusCode::OK, &json!({ "requeued": requeued })))
    }
}

/// `POST /v1/deliveries/retry` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryFilter {
    status: Option<String>,
    subscription: Option<String>,
    since: Option<String>,
}

/// Reads a small JSON body; an empty body is the type's default.
async fn read_json<T: serde::de::DeserializeOwned + Default>(request: Request<Incoming>) -> Result<T, String> {
    let body: Bytes = match Limited::new(request.into_body(), BODY_LIMIT).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(format!("the body could not be read or is over {BODY_LIMIT} bytes")),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| format!("invalid body: {e}"))
}

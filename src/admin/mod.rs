//! The admin API (SPEC §5), served on the unix socket only: list and inspect deliveries and events,
//! requeue or resend deliveries, erase events, list, pause and resume subscriptions, list quarantined
//! records. The socket's file permissions
//! are its access control. Store reads run on the blocking pool; every change goes through the
//! lifecycle owner.

mod listing;
mod subscriptions;
mod view;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::{info, warn};

pub use view::{StatusFilter, DEFAULT_LIMIT, MAX_LIMIT};

use crate::clock::now_ms;
use crate::ingest::reply::{self, Reply};
use crate::lifecycle::{Deliveries, NotRequeued, NotResent};
use crate::store::{DeliveryId, DeliveryStatus, Store, StoreError};

/// Admin request bodies are tiny; anything larger is a mistake.
const BODY_LIMIT: usize = 64 * 1024;

/// Ids longer than this are not echoed back in a 404.
const ECHO_LIMIT: usize = 128;

pub struct Admin {
    pub deliveries: Arc<Deliveries>,
}

/// Whether `path` belongs to the admin API (and so is 404 on the TCP listener).
pub fn is_admin_path(path: &str) -> bool {
    path == "/v1/deliveries"
        || path.starts_with("/v1/deliveries/")
        || path.starts_with("/v1/events/")
        || path == "/v1/quarantine"
        || path == "/v1/subscriptions"
        || path.starts_with("/v1/subscriptions/")
}

/// A path segment as sent, percent-decoded (ids may hold any printable character).
fn decoded(segment: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

/// An id as it may be shown in an error: short ids as given, long ones cut.
fn shown(id: &str) -> String {
    match id.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &id[..cut]),
        None => id.to_owned(),
    }
}

fn no_delivery(id: &str) -> Reply {
    reply::error(StatusCode::NOT_FOUND, "not_found", format!("no delivery `{}`", shown(id)))
}

impl Admin {
    pub async fn handle(&self, request: Request<Incoming>) -> Reply {
        let path = request.uri().path().to_owned();
        let segments: Vec<Cow<'_, str>> = path.trim_start_matches('/').split('/').map(decoded).collect();
        let segments: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
        let method = request.method().clone();
        let outcome = match (segments.as_slice(), &method) {
            (["v1", "deliveries"], &Method::GET) => self.list(request.uri().query().map(str::to_owned)).await,
            (["v1", "deliveries"], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "deliveries", "retry"], &Method::POST) => self.retry_matching(request).await,
            (["v1", "deliveries", "retry"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "deliveries", id], &Method::GET) => self.one(id).await,
            (["v1", "deliveries", _], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "deliveries", id, "retry"], &Method::POST) => self.retry_one(id).await,
            (["v1", "deliveries", id, "resend"], &Method::POST) => self.resend(id).await,
            (["v1", "deliveries", _, "retry" | "resend"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "events", id], &Method::GET) => self.event(id).await,
            (["v1", "events", _], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "events", id, "erase"], &Method::POST) => self.erase(id).await,
            (["v1", "events", _, "erase"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "subscriptions"], &Method::GET) => self.subscriptions().await,
            (["v1", "subscriptions"], _) => Ok(reply::method_not_allowed("GET")),
            (["v1", "subscriptions", name, "pause"], &Method::POST) => self.pause(name, true).await,
            (["v1", "subscriptions", name, "resume"], &Method::POST) => self.pause(name, false).await,
            (["v1", "subscriptions", _, "pause" | "resume"], _) => Ok(reply::method_not_allowed("POST")),
            (["v1", "quarantine"], &Method::GET) => self.quarantine().await,
            (["v1", "quarantine"], _) => Ok(reply::method_not_allowed("GET")),
            _ => Ok(reply::not_found()),
        };
        outcome.unwrap_or_else(|error| {
            warn!(%error, "Admin request failed: the store could not be read.");
            reply::error(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", error.to_string())
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Store, &mut Vec<Vec<u8>>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        read_store(&self.deliveries, read).await
    }

    async fn list(&self, query: Option<String>) -> Result<Reply, StoreError> {
        let query = match view::ListQuery::parse(query.as_deref()) {
            Ok(query) => query,
            Err(message) => return Ok(reply::error(StatusCode::BAD_REQUEST, "invalid_query", message)),
        };
        let config = self.deliveries.config();
        let deliveries = Arc::clone(&self.deliveries);
        self.read(move |store, damaged| {
            let mut page = Vec::new();
            let mut last = None;
            let mut more = false;
            for delivery in listing::candidates(store, deliveries.scheduler(), &config, &query) {
                let delivery = match delivery {
                    Ok(delivery) => delivery,
                    Err(StoreError::Corrupt { key, .. }) => {
                        damaged.push(key);
                        continue;
                    }
                    Err(error) => return Err(error),
                };
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
        })
        .await
    }

    async fn one(&self, id: &str) -> Result<Reply, StoreError> {
        let Some(delivery_id) = DeliveryId::parse(id) else { return Ok(no_delivery(id)) };
        let config = self.deliveries.config();
        let found = self
            .read(move |store, damaged| {
                let Some(delivery) = keep_damaged(store.delivery(delivery_id), damaged)? else { return Ok(None) };
                let attempts = store.attempts(&delivery, damaged)?;
                Ok(Some(view::delivery_with_attempts(&delivery, &attempts, &config)))
            })
            .await?;
        Ok(match found {
            Some(document) => reply::json(StatusCode::OK, &document),
            None => no_delivery(id),
        })
    }

    async fn event(&self, id: &str) -> Result<Reply, StoreError> {
        let config = self.deliveries.config();
        let event_id = id.to_owned();
        let found = self
            .read(move |store, damaged| {
                let Some(event) = keep_damaged(store.event(&event_id), damaged)? else { return Ok(None) };
                let mut deliveries = Vec::new();
                for &delivery_id in &event.deliveries {
                    if let Some(delivery) = keep_damaged(store.delivery(delivery_id), damaged)? {
                        deliveries.push(view::delivery(&delivery, &config));
                    }
                }
                Ok(Some(view::event(&event, deliveries)))
            })
            .await?;
        Ok(match found {
            Some(Ok(document)) => reply::json_text(StatusCode::OK, document),
            // Strings, numbers and stored JSON text always serialize; this is not reachable from input.
            Some(Err(error)) => reply::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", error.to_string()),
            None => reply::error(StatusCode::NOT_FOUND, "not_found", format!("no event `{}`", shown(id))),
        })
    }

    async fn retry_one(&self, id: &str) -> Result<Reply, StoreError> {
        let Some(delivery_id) = DeliveryId::parse(id) else { return Ok(no_delivery(id)) };
        let outcome = self.deliveries.requeue(vec![delivery_id]).await?.pop();
        match outcome.unwrap_or(Err(NotRequeued::Unknown(delivery_id))) {
            Ok(()) => {
                info!(delivery_id = %delivery_id, "Delivery requeued by an operator.");
                Ok(reply::json(StatusCode::OK, &json!({ "requeued": 1 })))
            }
            Err(why @ NotRequeued::Unknown(_)) => Ok(reply::error(StatusCode::NOT_FOUND, "not_found", why.to_string())),
            Err(why) => Ok(reply::error(StatusCode::CONFLICT, "not_requeued", why.to_string())),
        }
    }

    async fn resend(&self, id: &str) -> Result<Reply, StoreError> {
        let Some(delivery_id) = DeliveryId::parse(id) else { return Ok(no_delivery(id)) };
        match self.deliveries.resend(delivery_id).await? {
            Ok(fresh) => {
                info!(delivery_id = %delivery_id, new_delivery_id = %fresh, "Delivery resent by an operator.");
                Ok(reply::json(StatusCode::OK, &json!({ "delivery": fresh.to_string() })))
            }
            Err(why @ NotResent::Unknown(_)) => Ok(reply::error(StatusCode::NOT_FOUND, "not_found", why.to_string())),
            Err(why) => Ok(reply::error(StatusCode::CONFLICT, "not_resent", why.to_string())),
        }
    }

    async fn erase(&self, id: &str) -> Result<Reply, StoreError> {
        match self.deliveries.erase(id).await? {
            Some(erased) => {
                info!(event_id = %id, cancelled = erased.cancelled, "Event data erased by an operator.");
                Ok(reply::json(StatusCode::OK, &json!({ "erased": true, "cancelled": erased.cancelled })))
            }
            None => Ok(reply::error(StatusCode::NOT_FOUND, "not_found", format!("no event `{}`", shown(id)))),
        }
    }

    async fn subscriptions(&self) -> Result<Reply, StoreError> {
        let finished = self.read(|store, _| subscriptions::count_finished(store)).await?;
        let config = self.deliveries.config();
        let all: Vec<Value> = config
            .subscriptions
            .iter()
            .map(|s| subscriptions::view(&self.deliveries, &config, &s.name, &finished))
            .collect();
        Ok(reply::json(StatusCode::OK, &json!({ "subscriptions": all })))
    }

    /// `pause` (true) or `resume` (false) a configured subscription; answers its object.
    async fn pause(&self, name: &str, pause: bool) -> Result<Reply, StoreError> {
        let config = self.deliveries.config();
        if config.subscription(name).is_none() {
            let message = format!("no subscription named `{}` in the config", shown(name));
            return Ok(reply::error(StatusCode::NOT_FOUND, "not_found", message));
        }
        if pause {
            self.deliveries.pause_by_hand(name).await?;
        } else {
            self.deliveries.resume(name).await?;
        }
        let finished = self.read(|store, _| subscriptions::count_finished(store)).await?;
        Ok(reply::json(StatusCode::OK, &subscriptions::view(&self.deliveries, &config, name, &finished)))
    }

    async fn quarantine(&self) -> Result<Reply, StoreError> {
        let counted = self.deliveries.store().corrupt_records();
        let records = self.read(|store, _| store.quarantined()).await?;
        let records: Vec<Value> =
            records.into_iter().map(|(key, bytes)| json!({ "key": key, "bytes": bytes })).collect();
        Ok(reply::json(StatusCode::OK, &json!({ "records": records, "quarantined_since_start": counted })))
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
        let subscription = filter.subscription;
        // The scan and the requeue run in a task of their own: once the request is read, all of it is
        // carried out even if this client hangs up. The requeue checks each delivery again.
        let deliveries = Arc::clone(&self.deliveries);
        let task = tokio::spawn(async move {
            let chosen = read_store(&deliveries, move |store, damaged| {
                let mut chosen = Vec::new();
                for delivery in store.deliveries_with_status(status, None) {
                    let Some(delivery) = keep_damaged(delivery.map(Some), damaged)? else { continue };
                    let wanted = subscription.as_deref().is_none_or(|name| delivery.subscription == name)
                        && cutoff.is_none_or(|cutoff| delivery.updated_at >= cutoff);
                    if wanted {
                        chosen.push(delivery.id);
                    }
                }
                Ok(chosen)
            })
            .await?;
            Ok::<_, StoreError>(deliveries.requeue(chosen).await?.iter().filter(|r| r.is_ok()).count())
        });
        let requeued = task.await.unwrap_or(Err(StoreError::Stopped))?;
        info!(requeued, "Deliveries requeued by an operator.");
        Ok(reply::json(StatusCode::OK, &json!({ "requeued": requeued })))
    }
}

/// Runs a read of the store on the blocking pool; records found damaged on the way are quarantined.
async fn read_store<T: Send + 'static>(
    deliveries: &Arc<Deliveries>,
    read: impl FnOnce(&Store, &mut Vec<Vec<u8>>) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = deliveries.store().clone();
    let (value, damaged) = tokio::task::spawn_blocking(move || {
        let mut damaged = Vec::new();
        read(&store, &mut damaged).map(|value| (value, damaged))
    })
    .await
    .unwrap_or(Err(StoreError::Stopped))?;
    deliveries.quarantine(damaged).await?;
    Ok(value)
}

/// A read's record, or `None` with its key noted when it is damaged.
fn keep_damaged<T>(read: Result<Option<T>, StoreError>, damaged: &mut Vec<Vec<u8>>) -> Result<Option<T>, StoreError> {
    match read {
        Err(StoreError::Corrupt { key, .. }) => {
            damaged.push(key);
            Ok(None)
        }
        other => other,
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

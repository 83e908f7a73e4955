//! The admin API's documents (SPEC §5) and its query parameters.

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::clock::ms_to_rfc3339;
use crate::config::Config;
use crate::store::{AttemptRecord, DeliveryId, DeliveryRecord, DeliveryStatus, EventRecord};

/// What `status=` may ask for: the stored statuses plus `held` (pending, subscription disabled) and `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Pending,
    Held,
    Delivered,
    Failed,
    Cancelled,
    All,
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<StatusFilter> {
        Some(match text {
            "pending" => StatusFilter::Pending,
            "held" => StatusFilter::Held,
            "delivered" => StatusFilter::Delivered,
            "failed" => StatusFilter::Failed,
            "cancelled" => StatusFilter::Cancelled,
            "all" => StatusFilter::All,
            _ => return None,
        })
    }
}

/// The status shown for a delivery: `held` is a pending delivery whose subscription is disabled now.
pub fn shown_status(delivery: &DeliveryRecord, config: &Config) -> &'static str {
    match delivery.status {
        DeliveryStatus::Pending => {
            let enabled = config.subscription(&delivery.subscription).is_none_or(|s| s.enabled);
            if enabled {
                "pending"
            } else {
                "held"
            }
        }
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Cancelled => "cancelled",
    }
}

pub fn matches(delivery: &DeliveryRecord, config: &Config, status: StatusFilter, subscription: Option<&str>) -> bool {
    let status_ok = match status {
        StatusFilter::All => true,
        wanted => StatusFilter::parse(shown_status(delivery, config)) == Some(wanted),
    };
    status_ok && subscription.is_none_or(|name| delivery.subscription == name)
}

pub fn delivery(delivery: &DeliveryRecord, config: &Config) -> Value {
    json!({
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "subscription": delivery.subscription,
        "status": shown_status(delivery, config),
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at.map(ms_to_rfc3339),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": ms_to_rfc3339(delivery.created_at),
        "updated_at": ms_to_rfc3339(delivery.updated_at),
    })
}

pub fn delivery_with_attempts(record: &DeliveryRecord, attempts: &[AttemptRecord], config: &Config) -> Value {
    let mut document = delivery(record, config);
    document["attempts"] = attempts
        .iter()
        .map(|attempt| {
            json!({
                "n": attempt.n,
                "started_at": ms_to_rfc3339(attempt.started_at),
                "duration_ms": attempt.duration_ms,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "response_body": attempt.response_body,
            })
        })
        .collect();
    document
}

/// `GET /v1/events/{id}`, as JSON text: the data is embedded as stored, byte for byte (a parsed value
/// would sort its keys and reprint its numbers, and the operator asked to see what receivers get).
pub fn event(event: &EventRecord, deliveries: Vec<Value>) -> serde_json::Result<String> {
    #[derive(serde::Serialize)]
    struct EventDocument<'a> {
        id: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        occurred_at: &'a str,
        accepted_at: String,
        subscriptions: &'a [String],
        data: &'a RawValue,
        erased_at: Option<String>,
        /// The data is sealed with this store key, which encryption_key does not list (SPEC §8).
        data_sealed_with_unlisted_key: Option<String>,
        deliveries: Vec<Value>,
    }
    let document = EventDocument {
        id: &event.id,
        event_type: &event.event_type,
        occurred_at: &event.occurred_at,
        accepted_at: ms_to_rfc3339(event.accepted_at),
        subscriptions: &event.subscriptions,
        data: &event.data,
        erased_at: event.erased_at.map(ms_to_rfc3339),
        data_sealed_with_unlisted_key: event.waiting_for_key().map(|key| key.to_string()),
        deliveries,
    };
    serde_json::to_string(&document)
}

/// `GET /v1/deliveries` parameters.
#[derive(Debug)]
pub struct ListQuery {
    pub status: StatusFilter,
    pub subscription: Option<String>,
    pub limit: usize,
    pub after: Option<DeliveryId>,
}

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

impl ListQuery {
    /// Parses `status=&subscription=&limit=&after=`; the error names the parameter.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, String> {
        let mut parsed = ListQuery { status: StatusFilter::All, subscription: None, limit: DEFAULT_LIMIT, after: None };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            let value = value.as_ref();
            match key {
                "status" => {
                    parsed.status = StatusFilter::parse(value).ok_or_else(|| {
                        format!("`status` must be pending, held, delivered, failed, cancelled or all, not `{value}`")
                    })?
                }
                "subscription" => parsed.subscription = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| format!("`limit` must be a number from 1 to {MAX_LIMIT}"))?
                }
                "after" => {
                    parsed.after = Some(
                        DeliveryId::parse(value).ok_or_else(|| format!("`after` is not a delivery id: `{value}`"))?,
                    )
                }
                other => {
                    return Err(format!("unknown parameter `{other}`; expected status, subscription, limit, after"))
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_name_the_bad_parameter() {
        let query = ListQuery::parse(Some("status=held&subscription=vet&limit=5")).unwrap();
        assert_eq!((query.status, query.subscription.as_deref(), query.limit), (StatusFilter::Held, Some("vet"), 5));
        assert_eq!(ListQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        for (bad, named) in
            [("status=done", "`status`"), ("limit=0", "`limit`"), ("after=x", "`after`"), ("page=2", "`page`")]
        {
            assert!(ListQuery::parse(Some(bad)).unwrap_err().contains(named), "{bad}");
        }
    }
}

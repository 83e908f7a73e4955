//! What a subscriber receives (SPEC §6): the body and the headers of one attempt.
//!
//! The body depends only on the stored event and the subscription's settings, so it is byte-identical on
//! every attempt; only `webhook-timestamp`, the signatures over it and `x-hookrelay-attempt` change.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::sign;
use crate::config::{BodyMode, SignatureScheme, Subscription};
use crate::json::quote;
use crate::store::{DeliveryRecord, EventRecord};

/// The body sent for `event` to `subscription`.
pub fn body(subscription: &Subscription, source: Option<&str>, event: &EventRecord) -> Bytes {
    match subscription.delivery.body {
        BodyMode::Data => Bytes::copy_from_slice(event.data.get().as_bytes()),
        BodyMode::Envelope => {
            let mut body = String::with_capacity(event.data.get().len() + 160);
            body.push_str("{\"id\":");
            body.push_str(&quote(&event.id));
            body.push_str(",\"type\":");
            body.push_str(&quote(&event.event_type));
            body.push_str(",\"timestamp\":");
            body.push_str(&quote(&event.occurred_at));
            if let Some(source) = source {
                body.push_str(",\"source\":");
                body.push_str(&quote(source));
            }
            body.push_str(",\"data\":");
            body.push_str(event.data.get());
            body.push('}');
            Bytes::from(body)
        }
    }
}

/// The headers of attempt `attempt`, sent at `timestamp` (Unix seconds), signed over `body`.
pub fn headers(
    subscription: &Subscription,
    delivery: &DeliveryRecord,
    attempt: u32,
    timestamp: i64,
    body: &[u8],
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let settings = &subscription.delivery;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    headers.insert(WEBHOOK_ID, text_value(&delivery.event_id));
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    match settings.signature {
        SignatureScheme::Standard => {
            let signature = sign::standard_signature(&subscription.secrets, &delivery.event_id, timestamp, body);
            headers.insert(WEBHOOK_SIGNATURE, text_value(&signature));
        }
        SignatureScheme::HmacSha256 => {
            if let Some(secret) = subscription.secrets.first() {
                headers.insert(settings.signature_header.clone(), text_value(&sign::hex_signature(secret, body)));
            }
        }
        SignatureScheme::None => {}
    }
    headers.insert(EVENT, text_value(&delivery.event_type));
    headers.insert(DELIVERY, text_value(&delivery.id.to_string()));
    headers.insert(ATTEMPT, HeaderValue::from(attempt));
    for (name, secret) in &subscription.headers {
        // Validated at config load; `sensitive` keeps the value out of any debug output.
        if let Ok(mut value) = HeaderValue::from_str(secret.expose()) {
            value.set_sensitive(true);
            headers.insert(name.clone(), value);
        }
    }
    headers
}

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const EVENT: HeaderName = HeaderName::from_static("x-hookrelay-event");
const DELIVERY: HeaderName = HeaderName::from_static("x-hookrelay-delivery");
const ATTEMPT: HeaderName = HeaderName::from_static("x-hookrelay-attempt");

/// Ids, types and signatures are printable ASCII by validation, so this never fails in practice.
fn text_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

//! What a subscriber receives (SPEC §6): the body and the headers of one attempt.
//!
//! The body depends only on the stored event and the subscription's settings, so it is byte-identical on
//! every attempt; only `webhook-timestamp`, the signatures over it and `x-hookrelay-attempt` change.
//! Field and header names follow the subscription's dialect (SPEC §6a; see [`crate::config::Envelope`]).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::sign;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{BodyMode, Envelope, SignatureScheme, Subscription, TimestampFormat};
use crate::json::quote;
use crate::store::{DeliveryRecord, EventRecord};

/// The body sent for `event` to `subscription`, its `redact` pointers removed from the data.
pub fn body(subscription: &Subscription, source: Option<&str>, event: &EventRecord) -> Bytes {
    let redacted;
    let data = if subscription.redact.is_empty() {
        event.data.get()
    } else {
        redacted = crate::redact::redact(event.data.get(), &subscription.redact);
        &redacted
    };
    match subscription.delivery.body {
        BodyMode::Data => Bytes::copy_from_slice(data.as_bytes()),
        BodyMode::Envelope => Bytes::from(envelope(&subscription.delivery.envelope, source, event, data)),
    }
}

/// `{"id", "type", "timestamp", "source", <extra>..., "data"}` under the configured names, as compact JSON
/// built by hand so that `data` goes out byte for byte as stored.
fn envelope(names: &Envelope, source: Option<&str>, event: &EventRecord, data: &str) -> String {
    let mut body = String::with_capacity(data.len() + 192);
    body.push('{');
    let mut field = |name: &str, value: &str| {
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(&quote(name));
        body.push(':');
        body.push_str(value);
    };
    if let Some(name) = &names.id {
        field(name, &quote(&event.id));
    }
    if let Some(name) = &names.event_type {
        field(name, &quote(&event.event_type));
    }
    if let Some(name) = &names.timestamp {
        field(name, &timestamp(&event.occurred_at, names.timestamp_format));
    }
    if let (Some(name), Some(source)) = (&names.source, source) {
        field(name, &quote(source));
    }
    for (name, value) in &names.extra {
        field(name, &value.to_string());
    }
    if let Some(name) = &names.data {
        field(name, data);
    }
    body.push('}');
    body
}

/// `occurred_at` (stored as RFC 3339 UTC) in the configured format.
fn timestamp(occurred_at: &str, format: TimestampFormat) -> String {
    let parsed = OffsetDateTime::parse(occurred_at, &Rfc3339);
    match (format, parsed) {
        (TimestampFormat::Unix, Ok(at)) => at.unix_timestamp().to_string(),
        (TimestampFormat::UnixMs, Ok(at)) => (at.unix_timestamp_nanos() / 1_000_000).to_string(),
        // Stored values always parse; an unparsable one is sent as written rather than invented.
        _ => quote(occurred_at),
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
    let names = &settings.header_names;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, settings.user_agent.clone());
    headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
    match settings.signature {
        SignatureScheme::Standard => {
            headers.insert(WEBHOOK_ID, text_value(&delivery.event_id));
            let mut signature = sign::standard_signature(&subscription.secrets, &delivery.event_id, timestamp, body);
            if let Some(key) = &subscription.signing_key {
                // `v1a` after the `v1` entries, space-separated (SPEC §6b).
                if !signature.is_empty() {
                    signature.push(' ');
                }
                signature.push_str(&key.sign(&delivery.event_id, timestamp, body));
            }
            headers.insert(WEBHOOK_SIGNATURE, text_value(&signature));
        }
        SignatureScheme::HmacSha256 => {
            if let Some(secret) = subscription.secrets.first() {
                headers.insert(settings.signature_header.clone(), text_value(&sign::hex_signature(secret, body)));
            }
        }
        SignatureScheme::None => {}
    }
    if settings.signature != SignatureScheme::Standard {
        if let Some(name) = &names.id {
            headers.insert(name.clone(), text_value(&delivery.event_id));
        }
    }
    if let Some(name) = &names.event {
        headers.insert(name.clone(), text_value(&delivery.event_type));
    }
    if let Some(name) = &names.delivery {
        headers.insert(name.clone(), text_value(&delivery.id.to_string()));
    }
    if let Some(name) = &names.attempt {
        headers.insert(name.clone(), HeaderValue::from(attempt));
    }
    if let Some(name) = &names.timestamp {
        headers.insert(name.clone(), HeaderValue::from(timestamp));
    }
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

/// Ids, types and signatures are printable ASCII by validation, so this never fails in practice.
fn text_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

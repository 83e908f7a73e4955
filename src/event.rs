//! The ingest API's event objects (SPEC §4): parsing, field validation and the idempotency fingerprint.
//!
//! Each field is checked by hand after a structural parse so that a rejection names the field, and in a
//! batch the element (`[3].type`), which is what a producer's developer needs to fix the call.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::json;

/// Events in one request, at most.
pub const MAX_BATCH: usize = 1000;
const MAX_TYPE_LEN: usize = 128;
/// Deeper `data` is refused: receivers' parsers stop at some depth (serde_json at 128, counting the
/// envelope around `data`), and an event none of them can read is better refused to the producer.
pub const MAX_DATA_DEPTH: usize = 100;
const MAX_ID_LEN: usize = 128;

/// A validated event, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The producer's idempotency key, when it gave one.
    pub id: Option<String>,
    pub event_type: String,
    /// When it happened, as the producer said; acceptance time is used when absent.
    pub occurred_at: Option<OffsetDateTime>,
    /// `data`, as compact JSON.
    pub data: String,
    /// Hash of what the producer sent (type, occurred_at as written, data), to tell a retry of the same
    /// event from a different event reusing an id.
    pub fingerprint: String,
}

/// What came in: one event object, or an array of them (answered with an array).
#[derive(Debug)]
pub struct Submission {
    pub events: Vec<NewEvent>,
    pub is_batch: bool,
}

/// Why a body was refused; `message` names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidEvent {
    pub message: String,
}

impl InvalidEvent {
    fn new(message: impl Into<String>) -> Self {
        InvalidEvent { message: message.into() }
    }
}

/// The fields as found, before validation. Unknown fields are refused so that a typo such as
/// `occured_at` does not silently lose the producer's value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    event_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    occurred_at: Option<&'a RawValue>,
    /// `null` is a valid `data`, so presence is kept even for it.
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// Parses a request body into validated events.
pub fn parse_submission(body: &[u8]) -> Result<Submission, InvalidEvent> {
    let text = std::str::from_utf8(body).map_err(|_| InvalidEvent::new("body is not valid UTF-8"))?;
    let top: &RawValue =
        serde_json::from_str(text).map_err(|e| InvalidEvent::new(format!("body is not valid JSON: {e}")))?;
    match top.get().as_bytes().first() {
        Some(b'{') => Ok(Submission { events: vec![parse_event(top, "")?], is_batch: false }),
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(top.get()).expect("an array was already parsed");
            if items.is_empty() {
                return Err(InvalidEvent::new("the batch is empty: send at least one event"));
            }
            if items.len() > MAX_BATCH {
                return Err(InvalidEvent::new(format!(
                    "the batch has {} events; at most {MAX_BATCH} are accepted per request",
                    items.len()
                )));
            }
            let events = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_event(item, &format!("[{i}].")))
                .collect::<Result<_, _>>()?;
            Ok(Submission { events, is_batch: true })
        }
        _ => Err(InvalidEvent::new("body must be an event object or an array of event objects")),
    }
}

/// `prefix` locates the event in a batch (`"[3]."`), empty for a single event.
fn parse_event(raw: &RawValue, prefix: &str) -> Result<NewEvent, InvalidEvent> {
    if !raw.get().starts_with('{') {
        return Err(InvalidEvent::new(format!("`{}` must be an event object", prefix.trim_end_matches('.'))));
    }
    let fields: RawEvent<'_> = serde_json::from_str(raw.get())
        .map_err(|e| InvalidEvent::new(format!("{}{}", location(prefix), serde_message(&e))))?;
    let field = |name: &str| format!("`{prefix}{name}`");

    let event_type = string_field(fields.event_type, &field("type"))?
        .ok_or_else(|| InvalidEvent::new(format!("{} is required", field("type"))))?;
    let type_ok = event_type.len() <= MAX_TYPE_LEN
        && !event_type.is_empty()
        && event_type.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if !type_ok {
        return Err(InvalidEvent::new(format!(
            "{} must be 1-{MAX_TYPE_LEN} characters of A-Z a-z 0-9 . _ : -",
            field("type")
        )));
    }

    let id = string_field(fields.id, &field("id"))?;
    if let Some(id) = &id {
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(InvalidEvent::new(format!(
                "{} must be 1-{MAX_ID_LEN} printable ASCII characters",
                field("id")
            )));
        }
    }

    let occurred_at_text = string_field(fields.occurred_at, &field("occurred_at"))?;
    let occurred_at = match &occurred_at_text {
        Some(text) => {
            // In UTC it must still be a year of RFC 3339 (0000-9999): `9999-12-31T23:30:00-01:00` is not.
            let in_utc = OffsetDateTime::parse(text, &Rfc3339)
                .ok()
                .and_then(|time| time.checked_to_offset(time::UtcOffset::UTC))
                .filter(|time| (0..=9999).contains(&time.year()));
            Some(in_utc.ok_or_else(|| {
                InvalidEvent::new(format!(
                    "{} must be an RFC 3339 date-time such as 2026-04-11T10:30:00Z",
                    field("occurred_at")
                ))
            })?)
        }
        None => None,
    };

    let data = fields.data.ok_or_else(|| InvalidEvent::new(format!("{} is required", field("data"))))?;
    let data = json::compact(data.get());
    if data.depth > MAX_DATA_DEPTH {
        return Err(InvalidEvent::new(format!("{} nests deeper than {MAX_DATA_DEPTH} levels", field("data"))));
    }
    let data = data.text;
    let fingerprint = fingerprint(&event_type, occurred_at_text.as_deref(), &data);
    Ok(NewEvent { id, event_type, occurred_at, data, fingerprint })
}

fn location(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("`{}`: ", prefix.trim_end_matches('.'))
    }
}

/// serde_json's message without its "at line 1 column 9" suffix, which points into a sub-document.
/// serde's message without its position, except for an unknown field: its name comes from the request
/// and may hold patient data, so the answer gives where it is instead (SPEC §4 names the field for the
/// relay's own fields only).
fn serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("unknown field") {
        return format!(
            "has an unknown field (at column {} of the event); an event has only `type`, `id`, `occurred_at` and `data`",
            error.column()
        );
    }
    match text.find(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// A field that must be a string when present; JSON `null` counts as absent.
fn string_field(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, InvalidEvent> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str::<String>(raw.get())
            .map(Some)
            .map_err(|_| InvalidEvent::new(format!("{name} must be a string"))),
    }
}

fn fingerprint(event_type: &str, occurred_at: Option<&str>, data: &str) -> String {
    let mut hash = Sha256::new();
    for part in [event_type, occurred_at.unwrap_or(""), data] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Result<NewEvent, String> {
        parse_submission(body.as_bytes()).map(|s| s.events.into_iter().next().unwrap()).map_err(|e| e.message)
    }

    #[test]
    fn a_full_event_is_parsed_and_data_compacted() {
        let event = single(
            r#"{"type": "appointment.created", "id": "k-1", "occurred_at": "2026-04-11T13:30:00+03:00", "data": {"patient": {"fp": "p_1"}}}"#,
        )
        .unwrap();
        assert_eq!(event.event_type, "appointment.created");
        assert_eq!(event.id.as_deref(), Some("k-1"));
        assert_eq!(event.occurred_at.unwrap().unix_timestamp(), 1_775_903_400);
        assert_eq!(event.data, r#"{"patient":{"fp":"p_1"}}"#);
    }

    #[test]
    fn null_data_is_data_but_missing_data_is_not() {
        assert_eq!(single(r#"{"type": "a", "data": null}"#).unwrap().data, "null");
        assert_eq!(single(r#"{"type": "a"}"#).unwrap_err(), "`data` is required");
    }

    #[test]
    fn rejections_name_the_field() {
        let cases = [
            (r#"{"data": 1}"#, "`type` is required"),
            (r#"{"type": 5, "data": 1}"#, "`type` must be a string"),
            (r#"{"type": "has space", "data": 1}"#, "`type` must be 1-128 characters"),
            (r#"{"type": "a", "id": "", "data": 1}"#, "`id` must be 1-128 printable ASCII"),
            (r#"{"type": "a", "id": "caf\u00e9", "data": 1}"#, "`id` must be 1-128 printable ASCII"),
            (r#"{"type": "a", "occurred_at": "yesterday", "data": 1}"#, "`occurred_at` must be an RFC 3339"),
            (r#"{"type": "a", "data": 1, "occurred_at": "9999-12-31T23:30:00-01:00"}"#, "`occurred_at`"),
            (r#"{"type": "a", "data": 1, "occurred_at": "0000-01-01T00:30:00+01:00"}"#, "`occurred_at`"),
            (r#"{"type": "a", "data": 1, "occured_at": "x"}"#, "has an unknown field (at column 37 of the event)"),
            (r#"[{"type": "a", "data": 1}, {"type": "b"}]"#, "`[1].data` is required"),
            (r#"[{"type": "a", "data": 1}, 7]"#, "`[1]` must be an event object"),
            (r#"[]"#, "the batch is empty"),
            (r#""just a string""#, "body must be an event object"),
            (r#"{"type": "a", "data": "#, "body is not valid JSON"),
        ];
        for (body, expected) in cases {
            let message = single(body).unwrap_err();
            assert!(message.contains(expected), "{body}: got {message:?}, expected {expected:?}");
        }
        let long_type = format!(r#"{{"type": "{}", "data": 1}}"#, "a".repeat(129));
        assert!(single(&long_type).unwrap_err().contains("`type`"));
    }

    #[test]
    fn batches_are_limited_to_a_thousand() {
        let batch = |n: usize| format!("[{}]", vec![r#"{"type":"a","data":1}"#; n].join(","));
        assert_eq!(parse_submission(batch(1000).as_bytes()).unwrap().events.len(), 1000);
        let message = parse_submission(batch(1001).as_bytes()).unwrap_err().message;
        assert!(message.contains("at most 1000"), "{message}");
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let message = parse_submission(b"{\"type\":\"a\",\"data\":\"\xff\"}").unwrap_err().message;
        assert_eq!(message, "body is not valid UTF-8");
    }

    #[test]
    fn fingerprint_ignores_whitespace_but_not_content() {
        let a = single(r#"{"type":"a","id":"x","data":{"k": 1}}"#).unwrap();
        let b = single(r#"{"id":"x", "type":"a", "data": {"k":1}}"#).unwrap();
        let c = single(r#"{"type":"a","id":"x","data":{"k":2}}"#).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }
}

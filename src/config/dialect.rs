//! Vendor dialects (SPEC §6a): the envelope's field names and timestamp format, constant extra fields, the
//! relay's own header names, and the user agent, so a subscription can send exactly the format a partner
//! already verifies. Settings merge key by key over `[delivery]`; `extra` is replaced as a whole.

use std::ops::Range;

use http::{HeaderName, HeaderValue};

use super::compile::Compiler;
use super::raw::{RawDelivery, RawEnvelope, RawHeaderNames, Text};
use super::{DeliverySettings, SignatureScheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampFormat {
    /// `"2026-04-11T10:30:00Z"`
    Rfc3339,
    /// Unix seconds, a JSON number.
    Unix,
    /// Unix milliseconds, a JSON number.
    UnixMs,
}

/// The body's field names with `body = "envelope"`; `None` leaves a field out.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: Option<String>,
    pub event_type: Option<String>,
    pub timestamp: Option<String>,
    pub timestamp_format: TimestampFormat,
    pub source: Option<String>,
    pub data: Option<String>,
    /// Constant fields, written after `source` and before `data`.
    pub extra: Vec<(String, serde_json::Value)>,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope {
            id: Some("id".into()),
            event_type: Some("type".into()),
            timestamp: Some("timestamp".into()),
            timestamp_format: TimestampFormat::Rfc3339,
            source: Some("source".into()),
            data: Some("data".into()),
            extra: Vec::new(),
        }
    }
}

/// The relay's own headers; `None` drops one. With `signature = "standard"` the id header is always
/// `webhook-id`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderNames {
    pub id: Option<HeaderName>,
    pub event: Option<HeaderName>,
    pub delivery: Option<HeaderName>,
    pub attempt: Option<HeaderName>,
    /// Unix seconds of the attempt, besides `webhook-timestamp`; none by default.
    pub timestamp: Option<HeaderName>,
}

impl Default for HeaderNames {
    fn default() -> Self {
        HeaderNames {
            id: Some(HeaderName::from_static("webhook-id")),
            event: Some(HeaderName::from_static("x-hookrelay-event")),
            delivery: Some(HeaderName::from_static("x-hookrelay-delivery")),
            attempt: Some(HeaderName::from_static("x-hookrelay-attempt")),
            timestamp: None,
        }
    }
}

impl HeaderNames {
    /// The headers these names add to a request, with the key that names each.
    pub fn active(&self) -> impl Iterator<Item = (&'static str, &HeaderName)> {
        [
            ("id", &self.id),
            ("event", &self.event),
            ("delivery", &self.delivery),
            ("attempt", &self.attempt),
            ("timestamp", &self.timestamp),
        ]
        .into_iter()
        .filter_map(|(key, name)| name.as_ref().map(|name| (key, name)))
    }
}

/// Headers every request carries whatever the dialect.
const FIXED_HEADERS: &[&str] =
    &["content-type", "user-agent", "host", "content-length", "transfer-encoding", "connection", "webhook-timestamp"];

impl Compiler<'_> {
    /// Applies one level's `user_agent`, `envelope` and `header_names` over `settings`. A conflict is
    /// reported at the level that wrote one of its sides, so a bad default is not reported once per
    /// subscription.
    pub(super) fn dialect(&mut self, raw: &RawDelivery, settings: &mut DeliverySettings) {
        if let Some(agent) = &raw.user_agent {
            match HeaderValue::from_str(agent.get_ref()) {
                Ok(value) if !agent.get_ref().trim().is_empty() => settings.user_agent = value,
                _ => self.reporter.error(Some(agent.span()), "`user_agent` must be a non-empty printable header value"),
            }
        }
        if let Some(envelope) = &raw.envelope {
            self.envelope(envelope, &mut settings.envelope);
        }
        if let Some(names) = &raw.header_names {
            self.header_names(names, settings);
        }
    }

    fn envelope(&mut self, raw: &RawEnvelope, envelope: &mut Envelope) {
        let set = |text: &Option<Text>, field: &mut Option<String>| {
            if let Some(text) = text {
                *field = Some(text.get_ref().clone()).filter(|name| !name.is_empty());
            }
        };
        set(&raw.id, &mut envelope.id);
        set(&raw.event_type, &mut envelope.event_type);
        set(&raw.timestamp, &mut envelope.timestamp);
        set(&raw.source, &mut envelope.source);
        set(&raw.data, &mut envelope.data);
        if let Some(format) = &raw.timestamp_format {
            match format.get_ref().as_str() {
                "rfc3339" => envelope.timestamp_format = TimestampFormat::Rfc3339,
                "unix" => envelope.timestamp_format = TimestampFormat::Unix,
                "unix_ms" => envelope.timestamp_format = TimestampFormat::UnixMs,
                other => self.reporter.error(
                    Some(format.span()),
                    format!("unknown `timestamp_format` `{other}`; expected rfc3339, unix or unix_ms"),
                ),
            }
        }
        if let Some(extra) = &raw.extra {
            envelope.extra = extra.iter().map(|(key, value)| (key.get_ref().clone(), value.clone())).collect();
        }

        // Every name the body will hold, with the span that set it at this level (if this level did).
        let span = |text: &Option<Text>| text.as_ref().map(Text::span);
        let mut names: Vec<(String, String, Option<Range<usize>>)> = [
            ("id", &envelope.id, span(&raw.id)),
            ("type", &envelope.event_type, span(&raw.event_type)),
            ("timestamp", &envelope.timestamp, span(&raw.timestamp)),
            ("source", &envelope.source, span(&raw.source)),
            ("data", &envelope.data, span(&raw.data)),
        ]
        .into_iter()
        .filter_map(|(field, name, span)| name.as_ref().map(|name| (format!("`{field}`"), name.clone(), span)))
        .collect();
        if let Some(extra) = &raw.extra {
            names.extend(
                extra.keys().map(|key| (format!("`extra.{}`", key.get_ref()), key.get_ref().clone(), Some(key.span()))),
            );
        } else {
            names.extend(envelope.extra.iter().map(|(key, _)| (format!("`extra.{key}`"), key.clone(), None)));
        }
        self.report_clashes("envelope field", &names);
    }

    fn header_names(&mut self, raw: &RawHeaderNames, settings: &mut DeliverySettings) {
        let set = |compiler: &mut Self, text: &Option<Text>, field: &mut Option<HeaderName>| {
            if let Some(text) = text {
                if text.get_ref().is_empty() {
                    *field = None;
                } else if let Some(name) = compiler.header_name(text) {
                    *field = Some(name);
                }
            }
        };
        let names = &mut settings.header_names;
        set(self, &raw.id, &mut names.id);
        set(self, &raw.event, &mut names.event);
        set(self, &raw.delivery, &mut names.delivery);
        set(self, &raw.attempt, &mut names.attempt);
        set(self, &raw.timestamp, &mut names.timestamp);

        let standard = settings.signature == SignatureScheme::Standard;
        if let (true, Some(id)) = (standard, &raw.id) {
            self.reporter.error(
                Some(id.span()),
                "with `signature = \"standard\"` the id header is always `webhook-id`; remove `header_names.id`",
            );
        }
        let spans = [&raw.id, &raw.event, &raw.delivery, &raw.attempt, &raw.timestamp];
        let mut in_use: Vec<(String, String, Option<Range<usize>>)> =
            FIXED_HEADERS.iter().map(|h| (format!("the `{h}` header"), h.to_string(), None)).collect();
        let signature_header = match settings.signature {
            SignatureScheme::Standard => Some(HeaderName::from_static("webhook-signature")),
            SignatureScheme::HmacSha256 => Some(settings.signature_header.clone()),
            SignatureScheme::None => None,
        };
        if let Some(header) = signature_header {
            in_use.push(("the signature header".into(), header.as_str().to_owned(), None));
        }
        for ((key, name), text) in settings.header_names.active().zip(spans) {
            let span = text.as_ref().map(Text::span);
            if key == "id" && standard {
                continue;
            }
            in_use.push((format!("`header_names.{key}`"), name.as_str().to_owned(), span));
        }
        self.report_clashes("header", &in_use);
    }

    /// Reports each pair of `(what, name, span)` with the same name, when this level set one of them.
    /// (Header names are compared as `HeaderName` spells them: lowercase.)
    fn report_clashes(&mut self, kind: &str, names: &[(String, String, Option<Range<usize>>)]) {
        for (i, (what, name, span)) in names.iter().enumerate() {
            for (earlier_what, earlier_name, earlier_span) in &names[..i] {
                if name != earlier_name {
                    continue;
                }
                if let Some(at) = span.clone().or_else(|| earlier_span.clone()) {
                    self.reporter.error(Some(at), format!("{what} and {earlier_what} are the same {kind} `{name}`"));
                }
            }
        }
    }
}

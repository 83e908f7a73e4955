//! A value serde cannot read into its field (`timeout = 30`, `enabled = "yes"`), said at the value and in
//! the terms of its key: `delivery.timeout: expected a duration string like "30s", found integer 30`.
//!
//! serde's own message (`invalid type: integer `30`, expected a string`) names neither the key nor what the
//! string means; the error's span is the value's, so the value is found again in the section's table, and
//! the key path gives the hint. A secret's value is never repeated.

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

/// Keys whose values are secrets (or hold them, `headers`): a message never shows what they hold.
const SECRET_KEYS: &[&str] = &["secret", "token", "proxy", "client_key", "signing_key", "encryption_key", "headers"];

const SECRET: &str = "a string, { env = \"NAME\" }, { file = \"path\" } or { credential = \"NAME\" }";
const SECRETS: &str =
    "a string, { env = \"NAME\" }, { file = \"path\" }, { credential = \"NAME\" }, or an array of those";
const DURATION: &str = "a duration string like \"30s\"";

/// A value inside a section, found by its position.
struct Located<'a> {
    /// The keys from the section down to the value, e.g. `["envelope", "timestamp_format"]`; empty for
    /// the section itself.
    keys: Vec<String>,
    /// The value is an element of an array (`retry = ["1m", 5]`), not the key's whole value.
    element: bool,
    /// `None` when the position is a key's, not a value's (a table written as `[a.b]`).
    value: Option<&'a Value>,
}

/// A problem serde found in a section, ready to report.
pub struct Described {
    pub span: Option<Range<usize>>,
    pub message: String,
    /// The section's key that holds the bad value: without it, the section can be read again to find the
    /// next problem. `None` when the problem is not at a key.
    pub key: Option<String>,
}

/// Says what is wrong with `error`, raised while reading the section `what` (`[delivery]`,
/// `[[subscription]] #2`) from `section`.
pub fn describe(what: &str, section: &Item, error: &toml_edit::de::Error) -> Described {
    let message = error.message();
    let located = error.span().and_then(|span| section.as_table_like().and_then(|t| in_table(t, span.start)));
    let Some(located) = located.filter(|l| !l.keys.is_empty()) else {
        return Described { span: error.span(), message: format!("{what}: {message}"), key: None };
    };
    let name = section_name(what);
    let path = format!("{name}.{}", located.keys.join("."));
    let top = located.keys[0].clone();
    let secret = SECRET_KEYS.contains(&top.as_str());
    let text = match (serde_expected(message), located.value) {
        (Some(serde), Some(value)) => {
            let expected = hint(&located.keys, located.element).map_or_else(|| plain(serde), str::to_owned);
            let unquote = match value.as_str() {
                Some(text) if !secret && !expected.contains("string") && looks_unquoted(text) => {
                    "; write it without quotes"
                }
                _ => "",
            };
            format!("{path}: expected {expected}, found {}{unquote}", found(value, secret))
        }
        // A field that keeps its value's position gets a table written as a section of its own (`[a.b]`),
        // which has none once read apart from the file.
        _ if message == "value is missing a span" => {
            format!("{path}: write `{top}` inline, as `{top} = {{ ... }}`, not as a [{name}.{top}] table")
        }
        _ => format!("{path}: {message}"),
    };
    let span = located.value.and_then(Value::span).or_else(|| error.span());
    Described { span, message: text, key: Some(top) }
}

/// `relay` for `[relay]`, `subscription` for `[[subscription]] #2`, `delivery.envelope` for `[delivery.envelope]`.
fn section_name(what: &str) -> &str {
    what.trim_start_matches('[').split(']').next().unwrap_or(what)
}

fn in_table<'a>(table: &'a dyn TableLike, offset: usize) -> Option<Located<'a>> {
    for (name, item) in table.iter() {
        let found = match item {
            Item::Value(value) => in_value(value, offset),
            Item::Table(inner) => in_table(inner, offset),
            Item::ArrayOfTables(tables) => tables.iter().find_map(|inner| in_table(inner, offset)),
            Item::None => None,
        };
        let found = found.or_else(|| {
            let key_span = table.key(name).and_then(|key| key.span())?;
            covers(&key_span, offset).then(|| Located { keys: Vec::new(), element: false, value: None })
        });
        if let Some(mut found) = found {
            found.keys.insert(0, name.to_owned());
            return Some(found);
        }
    }
    None
}

fn in_value(value: &Value, offset: usize) -> Option<Located<'_>> {
    let inner = match value {
        Value::Array(array) => array.iter().find_map(|element| {
            let mut found = in_value(element, offset)?;
            found.element |= found.keys.is_empty();
            Some(found)
        }),
        Value::InlineTable(table) => table.iter().find_map(|(name, inner)| {
            let mut found = in_value(inner, offset)?;
            found.keys.insert(0, name.to_owned());
            Some(found)
        }),
        _ => None,
    };
    inner.or_else(|| {
        let span = value.span()?;
        covers(&span, offset).then(|| Located { keys: Vec::new(), element: false, value: Some(value) })
    })
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start == offset || span.contains(&offset)
}

/// The "expected" part of serde's type error (`invalid type: integer `30`, expected a string`); `None` for
/// any other error.
fn serde_expected(message: &str) -> Option<&str> {
    if !message.starts_with("invalid type: ") && !message.starts_with("invalid value: ") {
        return None;
    }
    message.rsplit_once(", expected ").map(|(_, expected)| expected)
}

/// serde's expectation in a config file's words.
fn plain(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// What the key at `keys` takes, with an example; `None` to keep serde's words.
fn hint(keys: &[String], element: bool) -> Option<&'static str> {
    let top = keys.first()?.as_str();
    let nested = keys.get(1).map(String::as_str);
    let hint = match (top, nested, element) {
        ("secret" | "encryption_key", None, false) => SECRETS,
        ("token" | "proxy" | "client_key" | "signing_key" | "secret" | "encryption_key", None, _) => SECRET,
        ("headers", None, _) => "a table of header names and values, e.g. { \"X-Api-Key\" = { env = \"API_KEY\" } }",
        ("headers", Some(_), _) if keys.len() == 2 => SECRET,
        ("timeout" | "retention" | "probe_interval", None, _) => DURATION,
        ("retry", None, true) => DURATION,
        ("retry", None, false) => "an array of duration strings like [\"1m\", \"5m\", \"30m\"]",
        ("max_pending", None, _) => "a whole number like 1000000",
        ("max_body_bytes", None, _) => "a number of bytes like 1048576",
        ("concurrency", None, _) => "a whole number like 8",
        ("pause_after", None, _) => "a whole number like 10 (0 never pauses)",
        ("give_up_on", None, true) => "an HTTP status like 404",
        ("give_up_on", None, false) => "an array of HTTP statuses like [400, 404]",
        ("jitter", None, _) => "a number from 0 to 1 like 0.1",
        ("enabled" | "ordered", None, _) => "true or false",
        ("events" | "exclude", None, true) => "a pattern string like \"appointment.*\"",
        ("events" | "exclude", None, false) => "an array of patterns like [\"appointment.*\"]",
        ("redact", None, true) => "a JSON pointer string like \"/patient/name\"",
        ("redact", None, false) => "an array of JSON pointers like [\"/patient/name\"]",
        ("order_key", None, _) => "a JSON pointer string like \"/patient/fp\"",
        ("url", None, _) => "a URL string like \"https://hooks.example.com/x\"",
        ("name", None, _) => "a name string like \"vetigen\"",
        ("http", None, _) => "an address string like \"127.0.0.1:8787\"",
        ("socket_mode", None, _) => "an octal string like \"0660\"",
        ("state_dir" | "unix_socket" | "ca_file" | "client_cert", None, _) => "a path string",
        ("source", None, _) => "a string",
        ("format", None, _) => "\"text\" or \"json\"",
        ("level", None, _) => "a log filter string like \"info\"",
        ("signature", None, _) => "\"standard\", \"hmac-sha256\" or \"none\"",
        ("signature_header", None, _) => "a header name string like \"X-Signature\"",
        ("body", None, _) => "\"envelope\" or \"data\"",
        ("user_agent", None, _) => "a string like \"ClinicApp/1.0\"",
        ("rate_limit", None, _) => "a string like \"50/s\" or \"600/m\"",
        ("envelope" | "header_names", None, _) => "a table",
        ("envelope", Some("timestamp_format"), _) => "\"rfc3339\", \"unix\" or \"unix_ms\"",
        ("envelope", Some("extra"), _) if keys.len() == 2 => "a table of constant fields, e.g. { success = true }",
        ("envelope", Some("extra"), _) => return None,
        ("envelope", Some(_), _) => "a field name string like \"event_id\" (\"\" leaves the field out)",
        ("header_names", Some(_), _) => "a header name string like \"X-Event\" (\"\" drops the header)",
        _ => return None,
    };
    Some(hint)
}

/// What was written instead: its type, and its value unless it is long or in a secret's place (a number
/// written for a secret may be one).
fn found(value: &Value, secret: bool) -> String {
    let shown = match value {
        Value::String(text) if text.value().chars().count() <= 60 => format!("string {:?}", text.value()),
        Value::Integer(n) => format!("integer {}", n.value()),
        Value::Float(x) => format!("float {:?}", x.value()),
        Value::Boolean(b) => format!("boolean {}", b.value()),
        Value::Datetime(d) => format!("datetime {}", d.value()),
        Value::String(_) | Value::Array(_) | Value::InlineTable(_) => String::new(),
    };
    if !secret && !shown.is_empty() {
        return shown;
    }
    let kind = match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    };
    kind.to_owned()
}

/// A string that reads as a TOML number or boolean (`"8"`, `"true"`): quoted by mistake.
fn looks_unquoted(text: &str) -> bool {
    text == "true" || text == "false" || text.parse::<i64>().is_ok() || text.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::Deserialize;
    use serde_spanned::Spanned;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Section {
        proxy: Option<Spanned<crate::config::raw::RawSecret>>,
        timeout: Option<Spanned<String>>,
        retry: Option<Spanned<Vec<Spanned<String>>>>,
        enabled: Option<Spanned<bool>>,
        concurrency: Option<Spanned<u64>>,
    }

    /// The position (as a byte offset) and message for the first value of `text`'s `[delivery]` that does
    /// not fit.
    fn first_problem(text: &str) -> (usize, String, Option<String>) {
        let document = toml_edit::Document::parse(text.to_owned()).unwrap();
        let item = document.as_table().get("delivery").unwrap().clone();
        let value = item.clone().into_value().unwrap();
        let error = Section::deserialize(value.into_deserializer()).unwrap_err();
        let described = describe("[delivery]", &item, &error);
        (described.span.unwrap().start, described.message, described.key)
    }

    #[test]
    fn a_type_error_names_the_key_what_it_takes_and_what_was_written() {
        let text = "[delivery]\nretry = [\"1m\"]\ntimeout = 30\n";
        let (at, message, key) = first_problem(text);
        assert_eq!(at, text.find("30").unwrap());
        assert_eq!(message, "delivery.timeout: expected a duration string like \"30s\", found integer 30");
        assert_eq!(key.as_deref(), Some("timeout"));
    }

    #[test]
    fn an_array_element_is_pointed_at() {
        let text = "[delivery]\nretry = [\"1m\", 5]\n";
        let (at, message, _) = first_problem(text);
        assert_eq!(at, text.find("5]").unwrap());
        assert_eq!(message, "delivery.retry: expected a duration string like \"30s\", found integer 5");
    }

    #[test]
    fn a_quoted_boolean_or_number_is_said_to_be_one() {
        let (_, message, _) = first_problem("[delivery]\nenabled = \"true\"\n");
        assert_eq!(message, "delivery.enabled: expected true or false, found string \"true\"; write it without quotes");
        let (_, message, _) = first_problem("[delivery]\nconcurrency = 2.5\n");
        assert_eq!(message, "delivery.concurrency: expected a whole number like 8, found float 2.5");
    }

    #[test]
    fn a_secret_is_never_repeated() {
        assert_eq!(found(&Value::from("whsec_s3cr3t"), true), "a string");
        assert_eq!(found(&Value::from(123_456_i64), true), "an integer");
        assert_eq!(found(&Value::from("30s"), false), "string \"30s\"");
        assert_eq!(found(&Value::from(30_i64), false), "integer 30");
        let (_, message, _) = first_problem("[delivery]\nproxy = 3128\n");
        assert_eq!(
            message,
            "delivery.proxy: expected a string, { env = \"NAME\" }, { file = \"path\" } or \
                             { credential = \"NAME\" }, found an integer"
        );
    }

    #[test]
    fn serde_words_become_config_words() {
        assert_eq!(serde_expected("invalid type: integer `30`, expected a string"), Some("a string"));
        assert_eq!(serde_expected("invalid value: integer `-1`, expected u64"), Some("u64"));
        assert_eq!(serde_expected("unknown secret source `envv`"), None);
        assert_eq!(plain("u64"), "a whole number, 0 or more");
        assert_eq!(section_name("[[subscription]] #2"), "subscription");
        assert_eq!(section_name("[delivery.envelope]"), "delivery.envelope");
    }
}

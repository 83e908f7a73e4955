//! The config file as written: serde structs whose every value keeps its position, so that validation can
//! point at the exact line and column. Nothing here is checked beyond its TOML type; see `compile.rs`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_spanned::Spanned;

pub type Text = Spanned<String>;
pub type TextList = Spanned<Vec<Text>>;

#[derive(Debug, Default, Deserialize)]
pub struct RawRelay {
    pub state_dir: Option<Text>,
    pub source: Option<Text>,
    pub retention: Option<Text>,
    pub max_pending: Option<Spanned<u64>>,
    pub encryption_key: Option<Spanned<RawSecrets>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawIngest {
    pub unix_socket: Option<Text>,
    pub socket_mode: Option<Text>,
    pub http: Option<Text>,
    pub token: Option<Spanned<RawSecret>>,
    pub max_body_bytes: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub format: Option<Text>,
    pub level: Option<Text>,
}

/// Delivery settings: the `[delivery]` defaults, and the same keys written inside a `[[subscription]]`.
#[derive(Debug, Default, Deserialize)]
pub struct RawDelivery {
    pub timeout: Option<Text>,
    pub retry: Option<TextList>,
    pub jitter: Option<Spanned<f64>>,
    pub concurrency: Option<Spanned<u64>>,
    pub signature: Option<Text>,
    pub signature_header: Option<Text>,
    pub body: Option<Text>,
    pub ca_file: Option<Text>,
    pub user_agent: Option<Text>,
    pub proxy: Option<Spanned<RawSecret>>,
    pub client_cert: Option<Text>,
    pub client_key: Option<Spanned<RawSecret>>,
    pub rate_limit: Option<Text>,
    pub pause_after: Option<Spanned<u64>>,
    pub probe_interval: Option<Text>,
    pub give_up_on: Option<Spanned<Vec<Spanned<u64>>>>,
    // Tables nested in a section carry no span of their own (their values do).
    pub envelope: Option<RawEnvelope>,
    pub header_names: Option<RawHeaderNames>,
}

/// `[delivery.envelope]` / `[subscription.envelope]`: the body's field names (SPEC §6a).
#[derive(Debug, Default, Deserialize)]
pub struct RawEnvelope {
    pub id: Option<Text>,
    #[serde(rename = "type")]
    pub event_type: Option<Text>,
    pub timestamp: Option<Text>,
    pub timestamp_format: Option<Text>,
    pub source: Option<Text>,
    pub data: Option<Text>,
    pub extra: Option<BTreeMap<Text, serde_json::Value>>,
}

/// `[delivery.header_names]` / `[subscription.header_names]`: the relay's own headers renamed or dropped.
#[derive(Debug, Default, Deserialize)]
pub struct RawHeaderNames {
    pub id: Option<Text>,
    pub event: Option<Text>,
    pub delivery: Option<Text>,
    pub attempt: Option<Text>,
    pub timestamp: Option<Text>,
}

/// The keys of a `[[subscription]]` that are its own; its delivery overrides are read as a [`RawDelivery`].
#[derive(Debug, Default, Deserialize)]
pub struct RawSubscription {
    pub name: Option<Text>,
    pub url: Option<Text>,
    pub events: Option<TextList>,
    pub exclude: Option<TextList>,
    pub secret: Option<Spanned<RawSecrets>>,
    pub headers: Option<Spanned<BTreeMap<Text, Spanned<RawSecret>>>>,
    pub enabled: Option<Spanned<bool>>,
    pub ordered: Option<Spanned<bool>>,
    pub redact: Option<TextList>,
    pub order_key: Option<Text>,
    pub signing_key: Option<Spanned<RawSecret>>,
}

/// Where a secret comes from: `"literal"`, `{ env = "NAME" }`, `{ file = "path" }` or
/// `{ credential = "NAME" }` (a file in systemd's `$CREDENTIALS_DIRECTORY`).
#[derive(Clone, PartialEq, Eq)]
pub enum RawSecret {
    Literal(String),
    Env(String),
    File(String),
    Credential(String),
}

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawSecret::Literal(_) => f.write_str("Literal(<redacted>)"),
            RawSecret::Env(name) => write!(f, "Env({name:?})"),
            RawSecret::File(path) => write!(f, "File({path:?})"),
            RawSecret::Credential(name) => write!(f, "Credential({name:?})"),
        }
    }
}

/// One secret or several (key rotation: every secret signs).
#[derive(Debug)]
pub struct RawSecrets(pub Vec<Spanned<RawSecret>>);

const SECRET_EXPECTED: &str = "a string, { env = \"NAME\" }, { file = \"path\" } or { credential = \"NAME\" }";

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawSecretVisitor)
    }
}

struct RawSecretVisitor;

impl<'de> Visitor<'de> for RawSecretVisitor {
    type Value = RawSecret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawSecret, E> {
        Ok(RawSecret::Literal(value.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSecret, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(format!("empty table: a secret is {SECRET_EXPECTED}")));
        };
        let value: String = map.next_value()?;
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("a secret table has exactly one key, `env`, `file` or `credential`"));
        }
        match key.as_str() {
            "env" => Ok(RawSecret::Env(value)),
            "file" => Ok(RawSecret::File(value)),
            "credential" => Ok(RawSecret::Credential(value)),
            other => Err(de::Error::custom(match super::suggest::closest(other, ["env", "file", "credential"]) {
                Some(meant) => format!("unknown secret source `{other}`; did you mean `{meant}`?"),
                None => format!("unknown secret source `{other}`; expected `env`, `file` or `credential`"),
            })),
        }
    }
}

impl<'de> Deserialize<'de> for RawSecrets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawSecretsVisitor)
    }
}

struct RawSecretsVisitor;

impl<'de> Visitor<'de> for RawSecretsVisitor {
    type Value = RawSecrets;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SECRET_EXPECTED}, or an array of those")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawSecrets, A::Error> {
        let mut secrets = Vec::new();
        while let Some(secret) = seq.next_element()? {
            secrets.push(secret);
        }
        Ok(RawSecrets(secrets))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<RawSecrets, E> {
        // A bare string has no position of its own here; the caller's span covers it.
        Ok(RawSecrets(vec![Spanned::new(0..0, RawSecret::Literal(value.to_owned()))]))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSecrets, A::Error> {
        let secret = RawSecretVisitor.visit_map(map)?;
        Ok(RawSecrets(vec![Spanned::new(0..0, secret)]))
    }
}

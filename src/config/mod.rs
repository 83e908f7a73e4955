//! The relay's configuration: what the TOML file says, validated and compiled once so that every stage
//! reads ready-to-use values (durations parsed, globs compiled, secrets resolved, paths absolute).
//!
//! Loading reports every problem of a file at once, as `FILE:LINE:COL: message` (see [`Diagnostics`]): a
//! value of the wrong type in the words of its key (`mistyped.rs`), an unknown key with the known one it is
//! likely a misspelling of (`suggest.rs`), and, for `check`, settings that are valid but likely mistakes
//! (`advice.rs`).

mod advice;
mod compile;
mod diagnostic;
mod dialect;
mod flow;
mod mistyped;
mod outbound;
mod raw;
mod sections;
mod suggest;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use rustls_pki_types::CertificateDer;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use dialect::{Envelope, HeaderNames, TimestampFormat};
pub use flow::RateLimit;
pub use outbound::{ClientIdentity, Proxy, ProxyChoice};

use crate::router::Router;
use crate::secret::Secret;

/// Where the config file is when `-c` is not given and `$HOOKRELAY_CONFIG` is unset.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hookrelay/relay.toml";

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was loaded from, absolute.
    pub file: PathBuf,
    /// SHA-256 of the file's text: a reload triggered by an editor touching the file without changing it
    /// is skipped.
    pub digest: [u8; 32],
    pub relay: RelaySettings,
    pub ingest: IngestSettings,
    pub log: LogSettings,
    pub subscriptions: Vec<Arc<Subscription>>,
    pub router: Router,
    /// Settings that are valid but likely mistakes (`check` prints them).
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// Reads and validates the file; every problem found is returned, not only the first.
    pub fn load(path: &Path) -> Result<Config, Diagnostics> {
        compile::load(path)
    }

    /// `hookrelay check`: validates the file as [`Config::load`] does. With `read_secrets = false`
    /// (`--no-secrets`) no secret source (`env`, `file`, `credential`) is read, only checked for its shape;
    /// everything else (syntax, types, globs, urls, paths, literal secrets) is checked the same.
    pub fn check(path: &Path, read_secrets: bool) -> Result<Checked, Diagnostics> {
        compile::check(path, read_secrets)
    }

    /// The unix socket path a config file names, read without validating the rest of the file: the admin
    /// commands need only this, and their user may not have the daemon's secrets in the environment.
    pub fn unix_socket_of(path: &Path) -> Result<PathBuf, String> {
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&file)
            .map_err(|error| format!("cannot read config file {}: {error}", file.display()))?;
        let document: toml_edit::DocumentMut =
            text.parse().map_err(|error| format!("{}: invalid TOML: {error}", file.display()))?;
        let socket = document.get("ingest").and_then(|ingest| ingest.get("unix_socket")).and_then(|v| v.as_str());
        let socket = socket.ok_or_else(|| {
            format!("{} has no [ingest] unix_socket; the admin commands talk to the relay through it", file.display())
        })?;
        Ok(file.parent().unwrap_or(Path::new("/")).join(socket))
    }

    pub fn subscription(&self, name: &str) -> Option<&Arc<Subscription>> {
        self.subscriptions.iter().find(|s| s.name == name)
    }
}

/// What `hookrelay check` says of a valid file.
#[derive(Debug)]
pub struct Checked {
    /// The file, absolute.
    pub file: PathBuf,
    /// How many `[[subscription]]` it has.
    pub subscriptions: usize,
    /// Settings that are valid but likely mistakes.
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub state_dir: PathBuf,
    /// Copied into every envelope as `source` when set.
    pub source: Option<String>,
    /// How long finished records and idempotency keys are kept.
    pub retention: Duration,
    /// Unfinished deliveries (pending, held, in flight) above which ingest answers 503.
    pub max_pending: u64,
    /// `encryption_key`: the first seals payloads at rest, every one opens them; empty: stored in the clear.
    pub keyring: crate::store::Keyring,
}

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub unix_socket: Option<PathBuf>,
    /// Permission bits applied to the unix socket after binding.
    pub socket_mode: u32,
    pub http: Option<SocketAddr>,
    /// Bearer token required for `POST /v1/events` on the TCP listener.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive, overridden by `RUST_LOG`.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// Standard Webhooks: `webhook-signature: v1,<base64>` over `id.timestamp.body`.
    Standard,
    /// Lowercase hex HMAC-SHA256 of the raw body in `signature_header`.
    HmacSha256,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// `{"id", "type", "timestamp", "source", "data"}`.
    Envelope,
    /// The event's `data` alone.
    Data,
}

/// How deliveries are attempted: the `[delivery]` defaults with a subscription's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySettings {
    /// Bound on a whole attempt: connect, TLS, request and response.
    pub timeout: Duration,
    /// Delay before each retry; a delivery gets `1 + retry.len()` attempts.
    pub retry: Vec<Duration>,
    /// Fraction (0..=1) by which each delay is randomly shortened or lengthened.
    pub jitter: f64,
    /// Attempts in flight at once for one subscription.
    pub concurrency: usize,
    pub signature: SignatureScheme,
    pub signature_header: HeaderName,
    pub body: BodyMode,
    /// Extra trusted roots, added to the system's.
    pub ca_file: Option<PathBuf>,
    pub extra_roots: Arc<Vec<CertificateDer<'static>>>,
    /// `user-agent` of every attempt; `hookrelay/<version>` unless configured.
    pub user_agent: HeaderValue,
    /// The body's field names with `body = "envelope"`.
    pub envelope: Envelope,
    /// The relay's own headers, renamed or dropped.
    pub header_names: HeaderNames,
    /// `proxy`: the environment's, none, or one configured (applied per subscription: [`Subscription::proxy`]).
    pub proxy: ProxyChoice,
    /// `client_cert` / `client_key`: presented to receivers that ask for a client certificate.
    pub client_identity: Option<ClientIdentity>,
    /// `rate_limit`: attempt starts per period, probes included.
    pub rate_limit: Option<RateLimit>,
    /// `pause_after`: consecutive failed attempts that pause the subscription; 0 never pauses.
    pub pause_after: u32,
    /// `probe_interval`: while paused, one attempt per interval.
    pub probe_interval: Duration,
    /// `give_up_on`: answers that fail a delivery at once.
    pub give_up_on: Vec<u16>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        DeliverySettings {
            timeout: Duration::from_secs(30),
            retry: vec![minutes(1), minutes(5), minutes(30), minutes(120), minutes(720)],
            jitter: 0.1,
            concurrency: 8,
            signature: SignatureScheme::Standard,
            signature_header: HeaderName::from_static("x-hookrelay-signature"),
            body: BodyMode::Envelope,
            ca_file: None,
            extra_roots: Arc::new(Vec::new()),
            user_agent: HeaderValue::from_static(crate::USER_AGENT),
            envelope: Envelope::default(),
            header_names: HeaderNames::default(),
            proxy: ProxyChoice::Environment,
            client_identity: None,
            rate_limit: None,
            pause_after: 10,
            probe_interval: Duration::from_secs(60),
            give_up_on: Vec::new(),
        }
    }
}

/// One `[[subscription]]`: where matching events go and how. Equality tells a reload which subscriptions
/// changed.
#[derive(Debug, PartialEq)]
pub struct Subscription {
    /// Stable identity: deliveries refer to their subscription by this name.
    pub name: String,
    pub url: Uri,
    pub events: Vec<String>,
    pub exclude: Vec<String>,
    /// Signing keys; with several (rotation) every one signs.
    pub secrets: Vec<Secret>,
    /// Static headers; the values are secrets (API keys).
    pub headers: Vec<(HeaderName, Secret)>,
    /// `false` holds the subscription's deliveries until it is enabled again.
    pub enabled: bool,
    /// `true`: one delivery at a time, in acceptance order.
    pub ordered: bool,
    /// JSON pointers removed from `data` for this subscription (`redact`).
    pub redact: Vec<crate::redact::Pointer>,
    /// `order_key`: deliveries whose data has the same value here go one at a time, in acceptance order.
    pub order_key: Option<String>,
    /// `signing_key`: signs `v1a` (ed25519) next to the `v1` entries (SPEC §6b).
    pub signing_key: Option<crate::delivery::sign::SigningKey>,
    /// The proxy its deliveries tunnel through ([`DeliverySettings::proxy`] applied to `url`'s host).
    pub proxy: Option<Proxy>,
    pub delivery: DeliverySettings,
}

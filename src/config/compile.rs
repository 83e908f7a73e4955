//! Raw sections → validated [`Config`]. Every check reports at the position of the offending value and
//! carries on, so one run lists every problem.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde_spanned::Spanned;
use sha2::{Digest, Sha256};
use toml_edit::Item;

use super::diagnostic::{Diagnostic, Diagnostics, Reporter};
use super::raw::{
    RawDelivery, RawEnvelope, RawHeaderNames, RawIngest, RawLog, RawRelay, RawSecrets, RawSubscription, Text, TextList,
};
use super::sections::{field_names, parse_document, read_section, read_table, report_unknown_keys, Section};
use super::{advice, suggest};
use super::{
    BodyMode, Config, DeliverySettings, IngestSettings, LogFormat, LogSettings, RelaySettings, SignatureScheme,
    Subscription,
};
use crate::router::{compile_pattern, RouteSpec, Router};
use crate::secret::Secret;

/// Headers the relay sets itself; a configured static header may not replace them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "user-agent",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// Upper bounds of counts (SPEC §3: a value past them is a config error, never an overflow at run time).
const MAX_CONCURRENCY: usize = 1024;
const MAX_PAUSE_AFTER: u32 = 1_000_000;
const MAX_RETRIES: usize = 100;
const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// `relay.source` is copied into every envelope.
const MAX_SOURCE_BYTES: usize = 256;

pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    load_with(path, true)
}

/// `hookrelay check`: [`load`], or with `read_secrets = false` (`--no-secrets`) the same checks without
/// reading any secret source (`env`, `file`, `credential`); only what a valid file yields is returned, so a
/// config with unread secrets never leaves this module.
pub fn check(path: &Path, read_secrets: bool) -> Result<super::Checked, Diagnostics> {
    let config = load_with(path, read_secrets)?;
    Ok(super::Checked { file: config.file, subscriptions: config.subscriptions.len(), warnings: config.warnings })
}

fn load_with(path: &Path, read_secrets: bool) -> Result<Config, Diagnostics> {
    let file = absolute(path);
    let text = std::fs::read_to_string(&file).map_err(|error| {
        Diagnostics(vec![Diagnostic {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {error}"),
        }])
    })?;
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let mut compiler = Compiler { reporter: Reporter::new(&file, &text), base_dir, read_secrets };
    let config = compiler.compile(&text, &file);
    if config.is_none() && !compiler.reporter.has_errors() {
        // Every path that yields no config reports why; this keeps a gap from ever passing as valid.
        compiler.reporter.error(None, "the config is incomplete");
    }
    let warnings = compiler.reporter.finish()?;
    let mut config = config.ok_or_else(|| Diagnostics(Vec::new()))?;
    config.warnings = warnings;
    Ok(config)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

pub(super) struct Compiler<'a> {
    pub(super) reporter: Reporter<'a>,
    pub(super) base_dir: PathBuf,
    /// `false` for `check --no-secrets`: secret sources are checked for their shape, never read (see
    /// `values.rs`).
    pub(super) read_secrets: bool,
}

/// The document's top-level sections, each read independently.
#[derive(Default)]
struct RawDocument {
    relay: Option<Section<RawRelay>>,
    ingest: Option<Section<RawIngest>>,
    /// Sections the file has, read or not: one that could not be read is not reported missing as well.
    written: Vec<&'static str>,
    log: Option<Section<RawLog>>,
    delivery: Option<Section<RawDelivery>>,
    subscriptions: Vec<(Section<RawSubscription>, Section<RawDelivery>)>,
}

impl Compiler<'_> {
    fn compile(&mut self, text: &str, file: &Path) -> Option<Config> {
        let document = parse_document(&mut self.reporter, text)?;
        let raw = self.read_sections(document.as_table());

        let relay = self.relay(raw.relay.as_ref(), raw.written.contains(&"relay"));
        let ingest = self.ingest(raw.ingest.as_ref(), raw.written.contains(&"ingest"));
        let log = self.log(raw.log.as_ref());
        let defaults = match &raw.delivery {
            Some(section) => self.delivery(&section.value, &DeliverySettings::default()),
            None => DeliverySettings::default(),
        };
        let mut names = HashMap::new();
        let mut subscriptions = Vec::new();
        let mut routes = Vec::new();
        // Whether a subscription signs with hmac-sha256 in the `signature_header` of [delivery]. A file with
        // no subscription yet whose [delivery] signs with hmac-sha256 is a default set up for the ones to
        // come: not warned about.
        let mut default_header_used = raw.subscriptions.is_empty() && defaults.signature == SignatureScheme::HmacSha256;
        for (own, overrides) in &raw.subscriptions {
            let delivery = self.delivery(&overrides.value, &defaults);
            match &overrides.value.signature_header {
                Some(header) if delivery.signature != SignatureScheme::HmacSha256 => {
                    self.warn_unused_signature_header(header, advice::unused_by(delivery.signature))
                }
                Some(_) => {}
                None => default_header_used |= delivery.signature == SignatureScheme::HmacSha256,
            }
            if let Some((subscription, route)) = self.subscription(own, delivery, &mut names) {
                subscriptions.push(Arc::new(subscription));
                routes.push(route);
            }
        }
        let default_header = raw.delivery.as_ref().and_then(|section| section.value.signature_header.as_ref());
        if let (Some(header), false) = (default_header, default_header_used) {
            self.warn_unused_signature_header(header, "no subscription that takes it from [delivery] signs that way");
        }
        if self.reporter.has_errors() {
            return None;
        }
        let router = match Router::new(routes) {
            Ok(router) => router,
            Err(error) => return self.fail(None, format!("the event patterns cannot be combined: {error}")),
        };
        let digest = Sha256::digest(text).into();
        let (relay, ingest, log) = (relay?, ingest?, log?);
        let warnings = Vec::new();
        Some(Config { file: file.to_path_buf(), digest, relay, ingest, log, subscriptions, router, warnings })
    }

    fn read_sections(&mut self, top: &toml_edit::Table) -> RawDocument {
        let reporter = &mut self.reporter;
        let mut raw = RawDocument::default();
        for (key, item) in top.iter() {
            if let Some(known) = SECTIONS.iter().find(|known| **known == key) {
                raw.written.push(*known);
            }
            match key {
                "relay" => raw.relay = read_section(reporter, "[relay]", item),
                "ingest" => raw.ingest = read_section(reporter, "[ingest]", item),
                "log" => raw.log = read_section(reporter, "[log]", item),
                "delivery" => {
                    report_unknown_dialect_keys(reporter, "[delivery", item);
                    raw.delivery = read_section(reporter, "[delivery]", item)
                }
                "subscription" => raw.subscriptions = read_subscriptions(reporter, item),
                other => {
                    let span = top.key(other).and_then(|k| k.span());
                    let message = match suggest::closest(other, SECTIONS.iter().copied()) {
                        Some(meant) => format!("unknown key `{other}`; did you mean `{meant}`?"),
                        None => format!("unknown key `{other}`; expected one of: {}", SECTIONS.join(", ")),
                    };
                    reporter.error(span, message);
                }
            }
        }
        raw
    }

    fn relay(&mut self, section: Option<&Section<RawRelay>>, written: bool) -> Option<RelaySettings> {
        let Some(section) = section else {
            if !written {
                self.reporter.error(Some(0..0), "missing [relay] section (it needs at least `state_dir`)");
            }
            return None;
        };
        let raw = &section.value;
        let state_dir = match &raw.state_dir {
            Some(dir) if !dir.get_ref().is_empty() => Some(self.path(dir)),
            Some(dir) => self.fail(dir.span(), "`state_dir` must not be empty"),
            None => self.fail(section.span.clone(), "[relay] needs `state_dir`, the directory of the database"),
        };
        let retention = match &raw.retention {
            Some(text) => self.duration_up_to(text, super::values::MAX_RETENTION, "3650 days"),
            None => Some(Duration::from_secs(7 * 24 * 3600)),
        };
        let max_pending = match &raw.max_pending {
            Some(n) if *n.get_ref() == 0 => self.fail(n.span(), "`max_pending` must be at least 1"),
            Some(n) => Some(*n.get_ref()),
            None => Some(1_000_000),
        };
        let source = match &raw.source {
            Some(text) if text.get_ref().len() > MAX_SOURCE_BYTES => {
                self.fail(text.span(), format!("`source` must be at most {MAX_SOURCE_BYTES} bytes"))
            }
            Some(text) => Some(Some(text.get_ref().clone())),
            None => Some(None),
        };
        let keyring = match &raw.encryption_key {
            Some(keys) => self.store_keys(keys).map(crate::store::Keyring::new),
            None => {
                self.reporter.warn(
                    section.span.clone(),
                    "no `encryption_key`: event data and response bodies are stored unencrypted in `state_dir` \
                     (see `hookrelay secret --kind store-key`)",
                );
                Some(crate::store::Keyring::default())
            }
        };
        let source = source?;
        Some(RelaySettings {
            state_dir: state_dir?,
            source,
            retention: retention?,
            max_pending: max_pending?,
            keyring: keyring?,
        })
    }

    fn ingest(&mut self, section: Option<&Section<RawIngest>>, written: bool) -> Option<IngestSettings> {
        let Some(section) = section else {
            if !written {
                self.reporter.error(Some(0..0), "missing [ingest] section: set `unix_socket`, `http` or both");
            }
            return None;
        };
        let raw = &section.value;
        if raw.unix_socket.is_none() && raw.http.is_none() {
            self.reporter.error(section.span.clone(), "[ingest] needs `unix_socket`, `http` or both");
        }
        let unix_socket = raw.unix_socket.as_ref().map(|p| self.path(p));
        if let (Some(text), Some(path)) = (&raw.unix_socket, &unix_socket) {
            if let Some(kind) = crate::ingest::not_a_socket(path) {
                let message = format!(
                    "`unix_socket` {} names {kind}, not a socket; the relay would not remove it",
                    path.display()
                );
                self.reporter.error(Some(text.span()), message);
            }
        }
        let socket_mode = match &raw.socket_mode {
            Some(mode) => self.socket_mode(mode),
            None => Some(0o660),
        };
        let http = match &raw.http {
            Some(text) => match text.get_ref().parse::<SocketAddr>() {
                Ok(addr) => {
                    self.warn_if_reachable(&addr, text.span(), raw.token.is_some());
                    Some(addr)
                }
                Err(_) => self.fail(
                    text.span(),
                    format!("invalid `http` address `{}`: expected IP:PORT such as 127.0.0.1:8787", text.get_ref()),
                ),
            },
            None => None,
        };
        let token = raw.token.as_ref().and_then(|t| self.secret(t, t.span()));
        let max_body_bytes = match &raw.max_body_bytes {
            Some(n) if *n.get_ref() == 0 => self.fail(n.span(), "`max_body_bytes` must be at least 1"),
            Some(n) if *n.get_ref() > MAX_BODY_BYTES => {
                self.fail(n.span(), format!("`max_body_bytes` must be at most {MAX_BODY_BYTES} (64 MiB)"))
            }
            Some(n) => usize::try_from(*n.get_ref()).ok(),
            None => Some(1024 * 1024),
        };
        if self.reporter.has_errors() {
            return None;
        }
        Some(IngestSettings { unix_socket, socket_mode: socket_mode?, http, token, max_body_bytes: max_body_bytes? })
    }

    fn log(&mut self, section: Option<&Section<RawLog>>) -> Option<LogSettings> {
        let default = RawLog::default();
        let raw = section.map_or(&default, |s| &s.value);
        let format = match raw.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("text", _)) => Some(LogFormat::Text),
            Some(("json", _)) => Some(LogFormat::Json),
            Some((other, span)) => self.fail(span, format!("unknown log `format` `{other}`; expected text or json")),
        };
        let level = match &raw.level {
            Some(level) => match tracing_subscriber::EnvFilter::builder().parse(level.get_ref()) {
                Ok(_) => Some(level.get_ref().clone()),
                Err(error) => self.fail(level.span(), format!("invalid log `level`: {error}")),
            },
            None => Some("info".to_owned()),
        };
        Some(LogSettings { format: format?, level: level? })
    }

    /// `base` with the keys `raw` sets replaced; a key that is invalid keeps the base value after reporting.
    fn delivery(&mut self, raw: &RawDelivery, base: &DeliverySettings) -> DeliverySettings {
        let mut settings = base.clone();
        if let Some(text) = &raw.timeout {
            match self.duration(text) {
                Some(d) if d.is_zero() => self.reporter.error(Some(text.span()), "`timeout` must be more than 0s"),
                Some(d) => settings.timeout = d,
                None => {}
            }
        }
        if let Some(list) = &raw.retry {
            self.warn_if_no_retry(list);
            if list.get_ref().len() > MAX_RETRIES {
                self.reporter.error(Some(list.span()), format!("`retry` may list at most {MAX_RETRIES} delays"));
            }
            let delays: Vec<_> = list.get_ref().iter().map(|d| self.duration(d)).collect();
            if let Some(delays) = delays.into_iter().collect::<Option<Vec<_>>>() {
                settings.retry = delays;
            }
        }
        if let Some(jitter) = &raw.jitter {
            let value = *jitter.get_ref();
            if (0.0..=1.0).contains(&value) {
                settings.jitter = value;
            } else {
                self.reporter.error(Some(jitter.span()), "`jitter` must be between 0 and 1 (0.1 means ±10 %)");
            }
        }
        if let Some(n) = &raw.concurrency {
            match usize::try_from(*n.get_ref()) {
                Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => settings.concurrency = n,
                _ => self.reporter.error(Some(n.span()), format!("`concurrency` must be from 1 to {MAX_CONCURRENCY}")),
            }
        }
        if let Some(scheme) = &raw.signature {
            match scheme.get_ref().as_str() {
                "standard" => settings.signature = SignatureScheme::Standard,
                "hmac-sha256" => settings.signature = SignatureScheme::HmacSha256,
                "none" => settings.signature = SignatureScheme::None,
                other => self.reporter.error(
                    Some(scheme.span()),
                    format!("unknown `signature` `{other}`; expected standard, hmac-sha256 or none"),
                ),
            }
        }
        if let Some(name) = &raw.signature_header {
            if let Some(name) = self.header_name(name) {
                settings.signature_header = name;
            }
        }
        if let Some(body) = &raw.body {
            match body.get_ref().as_str() {
                "envelope" => settings.body = BodyMode::Envelope,
                "data" => settings.body = BodyMode::Data,
                other => self
                    .reporter
                    .error(Some(body.span()), format!("unknown `body` `{other}`; expected envelope or data")),
            }
        }
        if let Some(file) = &raw.ca_file {
            let path = self.path(file);
            if matches!(path.try_exists(), Ok(false)) {
                // Not (yet) there: a warning, not an error, so one subscription's missing roots never keep
                // the relay from accepting events; its deliveries fail their TLS check and wait, and a reload
                // reads the file once it exists (the example's `hookrelay receive` CA, a CA being rolled out).
                self.reporter.warn(
                    Some(file.span()),
                    format!(
                        "`ca_file` {} does not exist: deliveries that need it fail their TLS check until it does \
                         and the config is reloaded",
                        path.display()
                    ),
                );
                settings.ca_file = Some(path);
                settings.extra_roots = Arc::new(Vec::new());
            } else if let Some(roots) = self.pem_certificates("ca_file", &path, file.span()) {
                settings.ca_file = Some(path);
                settings.extra_roots = Arc::new(roots);
            }
        }
        self.dialect(raw, &mut settings);
        self.flow_and_outbound(raw, &mut settings);
        settings
    }

    /// The keys of SPEC §6c and the outbound ones (`proxy`, `client_cert`, `client_key`).
    fn flow_and_outbound(&mut self, raw: &RawDelivery, settings: &mut DeliverySettings) {
        if let Some(proxy) = &raw.proxy {
            if let Some(choice) = self.proxy_choice(proxy) {
                settings.proxy = choice;
            }
        }
        match (&raw.client_cert, &raw.client_key) {
            (Some(cert), Some(key)) => {
                if let Some(identity) = self.client_identity(cert, key) {
                    settings.client_identity = Some(identity);
                }
            }
            (Some(cert), None) => {
                self.reporter.error(Some(cert.span()), "`client_cert` needs `client_key`, its private key")
            }
            (None, Some(key)) => {
                self.reporter.error(Some(key.span()), "`client_key` needs `client_cert`, its certificate chain")
            }
            (None, None) => {}
        }
        if let Some(text) = &raw.rate_limit {
            if let Some(limit) = self.rate_limit(text) {
                settings.rate_limit = Some(limit);
            }
        }
        if let Some(n) = &raw.pause_after {
            match u32::try_from(*n.get_ref()) {
                Ok(n) if n <= MAX_PAUSE_AFTER => settings.pause_after = n,
                _ => self
                    .reporter
                    .error(Some(n.span()), format!("`pause_after` must be from 0 (never pause) to {MAX_PAUSE_AFTER}")),
            }
        }
        if let Some(text) = &raw.probe_interval {
            match self.duration(text) {
                Some(d) if d.is_zero() => {
                    self.reporter.error(Some(text.span()), "`probe_interval` must be more than 0s")
                }
                Some(d) => settings.probe_interval = d,
                None => {}
            }
        }
        if let Some(list) = &raw.give_up_on {
            if let Some(codes) = self.give_up_on(list) {
                settings.give_up_on = codes;
            }
        }
    }

    fn subscription(
        &mut self,
        section: &Section<RawSubscription>,
        delivery: DeliverySettings,
        names: &mut HashMap<String, usize>,
    ) -> Option<(Subscription, RouteSpec)> {
        let raw = &section.value;
        let here = section.span.clone();
        let name = match &raw.name {
            Some(name) => self.subscription_name(name, names),
            None => self.fail(here.clone(), "[[subscription]] needs a `name`"),
        };
        let url = match &raw.url {
            Some(url) => self.https_url(url),
            None => self.fail(here.clone(), "[[subscription]] needs a `url`"),
        };
        let events = match &raw.events {
            Some(list) if list.get_ref().is_empty() => {
                self.fail(list.span(), "`events` is empty: add at least one pattern (\"*\" matches every event)")
            }
            Some(list) => self.patterns(list),
            None => self.fail(here.clone(), "[[subscription]] needs `events`, a list of glob patterns"),
        };
        let exclude = match &raw.exclude {
            Some(list) => self.patterns(list),
            None => Some((Vec::new(), Vec::new())),
        };
        if let (Some((events, _)), Some((excluded, compiled)), Some(list)) = (&events, &exclude, &raw.exclude) {
            self.warn_if_excluding_everything(events, excluded, compiled, list.span());
        }
        let secrets = match &raw.secret {
            Some(secrets) => self.secrets(secrets),
            None => Some(Vec::new()),
        };
        let signing_key = match &raw.signing_key {
            Some(key) if delivery.signature != SignatureScheme::Standard => self.fail(
                key.span(),
                "`signing_key` signs Standard Webhooks `v1a` entries: it needs `signature = \"standard\"`",
            ),
            // `None` inside: not read (`check --no-secrets`), but it will sign.
            Some(key) => self.signing_key(key),
            None => Some(None),
        };
        let signs_v1a = raw.signing_key.is_some() && signing_key.is_some();
        if matches!(&secrets, Some(s) if s.is_empty()) && delivery.signature != SignatureScheme::None && !signs_v1a {
            self.reporter.error(
                raw.secret.as_ref().map_or(here.clone(), |s| Some(s.span())),
                "a `secret` is required unless `signature = \"none\"` (generate one with `hookrelay secret`)",
            );
        }
        if let (Some(list), Some(raw_secret)) = (&secrets, &raw.secret) {
            let undecodable = list.iter().any(|s| crate::delivery::sign::standard_key(s.expose()).is_err());
            if undecodable && delivery.signature == SignatureScheme::Standard {
                // Said without the value: the part after `whsec_` must be base64 (as `hookrelay secret` prints).
                self.reporter.error(Some(raw_secret.span()), "a `whsec_` secret is not valid base64 after the prefix");
            }
        }
        let headers = self.static_headers(raw, &delivery);
        let redact = match &raw.redact {
            Some(list) => self.pointers(list),
            None => Some(Vec::new()),
        };
        let ordered = raw.ordered.as_ref().is_some_and(|o| *o.get_ref());
        let order_key = match &raw.order_key {
            Some(text) if ordered => self.fail(
                text.span(),
                "`order_key` and `ordered = true` exclude each other: `ordered` already sends one at a time",
            ),
            Some(text) => match crate::redact::Pointer::parse(text.get_ref()) {
                Ok(_) => Some(Some(text.get_ref().clone())),
                Err(problem) => self.fail(text.span(), format!("invalid `order_key` pointer: {problem}")),
            },
            None => Some(None),
        };
        let proxy = match (&url, &raw.url) {
            (Some(parsed), Some(text)) => self.resolve_proxy(&delivery.proxy, parsed, text.span()),
            _ => Some(None),
        };
        let (name, url, events, exclude, secrets, headers) = (name?, url?, events?, exclude?, secrets?, headers?);
        let (redact, order_key, signing_key, proxy) = (redact?, order_key?, signing_key?, proxy?);
        let route = RouteSpec { name: name.clone(), events: events.1, exclude: exclude.1 };
        let subscription = Subscription {
            name,
            url,
            events: events.0,
            exclude: exclude.0,
            secrets,
            headers,
            enabled: raw.enabled.as_ref().is_none_or(|e| *e.get_ref()),
            ordered,
            redact,
            order_key,
            signing_key,
            proxy,
            delivery,
        };
        Some((subscription, route))
    }

    /// JSON pointers (`redact`), each reported at its position when it is not one.
    fn pointers(&mut self, list: &TextList) -> Option<Vec<crate::redact::Pointer>> {
        let parsed: Vec<_> = list
            .get_ref()
            .iter()
            .map(|text| match crate::redact::Pointer::parse(text.get_ref()) {
                Ok(pointer) => Some(pointer),
                Err(problem) => self.fail(text.span(), format!("invalid `redact` pointer: {problem}")),
            })
            .collect();
        parsed.into_iter().collect()
    }

    /// `seen`: the names so far, each with the line it is defined at.
    fn subscription_name(&mut self, name: &Text, seen: &mut HashMap<String, usize>) -> Option<String> {
        let value = name.get_ref();
        let valid_chars = value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if value.is_empty() || value.len() > 64 || !valid_chars {
            return self.fail(name.span(), format!("invalid subscription name `{value}`: use 1-64 of a-z 0-9 _ -"));
        }
        if let Some(first) = seen.get(value) {
            let message = format!("duplicate subscription name `{value}` (first defined at line {first})");
            return self.fail(name.span(), message);
        }
        seen.insert(value.clone(), self.reporter.line_of(name.span().start));
        Some(value.clone())
    }

    fn https_url(&mut self, url: &Text) -> Option<Uri> {
        if !url.get_ref().contains("://") {
            return self.fail(url.span(), without_scheme(url.get_ref()));
        }
        let parsed = match url.get_ref().parse::<Uri>() {
            Ok(uri) => uri,
            Err(error) => return self.fail(url.span(), format!("invalid `url`: {error}")),
        };
        match parsed.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => {}
            Some(scheme) => {
                return self
                    .fail(url.span(), format!("`url` must use https:// (got {scheme}://): deliveries are HTTPS only"))
            }
            None => return self.fail(url.span(), without_scheme(url.get_ref())),
        }
        if parsed.host().is_none_or(str::is_empty) {
            return self.fail(url.span(), "`url` has no host");
        }
        if parsed.authority().is_some_and(|a| a.as_str().contains('@')) {
            // It would be sent as no header and logged by the connection pool: credentials go in `headers`.
            return self.fail(url.span(), "`url` must not hold a user or password; put credentials in `headers`");
        }
        if parsed.port_u16() == Some(0) {
            return self.fail(url.span(), "`url` has port 0, where nothing can listen");
        }
        Some(parsed)
    }

    /// The patterns as written, and compiled.
    fn patterns(&mut self, list: &TextList) -> Option<(Vec<String>, Vec<globset::Glob>)> {
        let mut written = Vec::new();
        let mut compiled = Vec::new();
        let mut ok = true;
        for pattern in list.get_ref() {
            match compile_pattern(pattern.get_ref()) {
                Ok(glob) => {
                    written.push(pattern.get_ref().clone());
                    compiled.push(glob);
                }
                Err(error) => {
                    ok = false;
                    let reason = error.kind().to_string();
                    self.reporter
                        .error(Some(pattern.span()), format!("invalid pattern `{}`: {reason}", pattern.get_ref()));
                }
            }
        }
        ok.then_some((written, compiled))
    }

    fn secrets(&mut self, secrets: &Spanned<RawSecrets>) -> Option<Vec<Secret>> {
        let resolved: Vec<_> = secrets.get_ref().0.iter().map(|s| self.secret(s, secrets.span())).collect();
        resolved.into_iter().collect()
    }

    fn static_headers(
        &mut self,
        raw: &RawSubscription,
        delivery: &DeliverySettings,
    ) -> Option<Vec<(HeaderName, Secret)>> {
        let Some(headers) = &raw.headers else {
            return Some(Vec::new());
        };
        let mut compiled = Vec::new();
        let mut ok = true;
        for (name, value) in headers.get_ref() {
            let header = self.header_name(name);
            let reserved = header.as_ref().is_some_and(|h| {
                RESERVED_HEADERS.contains(&h.as_str())
                    || (delivery.signature == SignatureScheme::HmacSha256 && *h == delivery.signature_header)
                    || delivery.header_names.active().any(|(_, own)| own == h)
            });
            if reserved {
                self.reporter
                    .error(Some(name.span()), format!("header `{}` is set by the relay itself", name.get_ref()));
            }
            let secret = self.secret(value, value.span());
            if let Some(secret) = &secret {
                if HeaderValue::from_str(secret.expose()).is_err() {
                    // The value is a secret: say what is wrong without repeating it.
                    self.reporter.error(
                        Some(value.span()),
                        format!("the value of header `{}` is not a valid header value", name.get_ref()),
                    );
                    ok = false;
                }
            }
            match (header, secret) {
                (Some(header), Some(secret)) if !reserved => compiled.push((header, secret)),
                _ => ok = false,
            }
        }
        ok.then_some(compiled)
    }
}

/// The top-level keys: the sections.
const SECTIONS: &[&str] = &["delivery", "ingest", "log", "relay", "subscription"];

/// What is wrong with a `url` that names no scheme, with the URL it likely means. The text is repeated only
/// when it is plainly a host and path (no user or password, quote or space).
fn without_scheme(text: &str) -> String {
    let plain = text.len() <= 200
        && !text.is_empty()
        && text.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '@' | '"' | '\\'));
    // `https:/host` or `https:host`: a scheme without its `//`.
    let lower = text.to_ascii_lowercase();
    let half_scheme = ["https:", "http:"].into_iter().find(|scheme| lower.starts_with(scheme));
    let (example, missing) = match text.strip_prefix("//") {
        _ if !plain => ("https://hooks.example.com/webhook".to_owned(), "no scheme given"),
        _ if half_scheme.is_some() => {
            let rest = &text[half_scheme.map_or(0, str::len)..];
            (format!("https://{}", rest.trim_start_matches('/')), "the scheme needs `://`")
        }
        Some(rest) => (format!("https://{rest}"), "no scheme given"),
        None if text.starts_with('/') => (format!("https://hooks.example.com{text}"), "no scheme or host given"),
        None => (format!("https://{text}"), "no scheme given"),
    };
    format!("`url` must be an absolute https:// URL like \"{example}\" ({missing})")
}

/// `[[subscription]]` entries: each read twice from the same table, once for its own keys and once for its
/// delivery overrides, with unknown keys judged against both lists.
fn read_subscriptions(
    reporter: &mut Reporter<'_>,
    item: &Item,
) -> Vec<(Section<RawSubscription>, Section<RawDelivery>)> {
    let tables: Vec<Item> = match item {
        Item::ArrayOfTables(array) => array.iter().cloned().map(Item::Table).collect(),
        Item::Value(toml_edit::Value::Array(array)) => array.iter().cloned().map(Item::Value).collect(),
        _ => {
            reporter.error(item.span(), "`subscription` must be an array of tables: write [[subscription]]");
            return Vec::new();
        }
    };
    let own_keys = field_names::<RawSubscription>();
    let delivery_keys = field_names::<RawDelivery>();
    let mut read = Vec::new();
    for (index, table) in tables.iter().enumerate() {
        let what = format!("[[subscription]] #{}", index + 1);
        report_unknown_keys(reporter, &what, table, &[own_keys, delivery_keys]);
        report_unknown_dialect_keys(reporter, "[subscription", table);
        let own = read_table::<RawSubscription>(reporter, &what, table);
        let overrides = read_table::<RawDelivery>(reporter, &what, table);
        if let (Some(own), Some(overrides)) = (own, overrides) {
            read.push((own, overrides));
        }
    }
    read
}

/// Unknown keys inside the `envelope` and `header_names` tables of a delivery section (`prefix` is the
/// section's name without its closing bracket, e.g. `[delivery`).
fn report_unknown_dialect_keys(reporter: &mut Reporter<'_>, prefix: &str, section: &Item) {
    let Some(table) = section.as_table_like() else { return };
    if let Some(envelope) = table.get("envelope") {
        report_unknown_keys(reporter, &format!("{prefix}.envelope]"), envelope, &[field_names::<RawEnvelope>()]);
    }
    if let Some(names) = table.get("header_names") {
        report_unknown_keys(reporter, &format!("{prefix}.header_names]"), names, &[field_names::<RawHeaderNames>()]);
    }
}

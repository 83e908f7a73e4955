//! How deliveries leave the machine (SPEC §3): through an HTTP proxy or not (`proxy`), and with a client
//! certificate or not (`client_cert` / `client_key`). Both are read and checked at load, so that `check`,
//! the start and a reload refuse a proxy that cannot be used or a key that does not fit its certificate.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use serde_spanned::Spanned;
use sha2::{Digest, Sha256};

use super::compile::Compiler;
use super::raw::{RawSecret, Text};
use super::values::Loaded;

/// What `proxy` says, before it is applied to a subscription's host.
#[derive(Debug, Clone, PartialEq)]
pub enum ProxyChoice {
    /// Not set: the relay's `HTTPS_PROXY` / `NO_PROXY` environment (read at load).
    Environment,
    /// `"none"`: always direct.
    Direct,
    /// A proxy URL; a secret, as it may hold `user:password`.
    Configured(crate::secret::Secret),
}

/// The proxy one subscription's deliveries tunnel through.
#[derive(Clone, PartialEq)]
pub struct Proxy {
    /// `http://host:port`, without credentials: where the tunnel is opened.
    pub uri: Uri,
    /// `Proxy-Authorization: Basic ...` from the URL's `user:password`, marked sensitive.
    pub authorization: Option<HeaderValue>,
    /// `host:port`: what errors and logs name (never the credentials).
    pub shown: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("at", &self.shown).field("authorization", &self.authorization.is_some()).finish()
    }
}

/// `client_cert` and `client_key`: the identity presented to receivers that ask for one (mTLS).
#[derive(Clone)]
pub struct ClientIdentity {
    pub key: Arc<rustls::sign::CertifiedKey>,
    /// SHA-256 over the chain and the key, so that a reload can tell a changed identity.
    digest: [u8; 32],
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdentity({} certificates)", self.key.cert.len())
    }
}

const PROXY_EXPECTED: &str = "expected \"http://host:port\", \"http://user:password@host:port\" or \"none\"";

impl Compiler<'_> {
    pub(super) fn proxy_choice(&mut self, raw: &Spanned<RawSecret>) -> Option<ProxyChoice> {
        if matches!(raw.get_ref(), RawSecret::Literal(text) if text == "none") {
            return Some(ProxyChoice::Direct);
        }
        // Not read (`check --no-secrets`): nothing to check, and no config that runs comes of it.
        let Loaded::Value(secret) = self.load_secret(raw, raw.span())? else { return Some(ProxyChoice::Direct) };
        if let Err(problem) = proxy_uri(secret.expose()) {
            // The URL may hold a password: the message says what is wrong, never the value.
            return self.fail(raw.span(), format!("invalid `proxy`: {problem}; {PROXY_EXPECTED}"));
        }
        Some(ProxyChoice::Configured(secret))
    }

    /// The proxy for deliveries to `url` (a subscription's), if any: the configured one, or the
    /// environment's unless `NO_PROXY` exempts the host.
    pub(super) fn resolve_proxy(
        &mut self,
        choice: &ProxyChoice,
        url: &Uri,
        span: Range<usize>,
    ) -> Option<Option<Proxy>> {
        let (intercept, from) = match choice {
            ProxyChoice::Direct => return Some(None),
            ProxyChoice::Configured(secret) => {
                let intercept = Matcher::builder().all(secret.expose().to_owned()).build().intercept(url);
                if intercept.is_none() {
                    // Checked by `proxy_choice`; never go direct in silence if the matcher reads it otherwise.
                    return self.fail(span, format!("`proxy` cannot be used: {PROXY_EXPECTED}"));
                }
                (intercept, "`proxy`")
            }
            ProxyChoice::Environment => (environment_matcher().intercept(url), "the relay's HTTPS_PROXY"),
        };
        let Some(intercept) = intercept else { return Some(None) };
        let target = intercept.uri();
        if target.scheme_str() != Some("http") {
            let scheme = target.scheme_str().unwrap_or("none");
            return self.fail(
                span,
                format!(
                    "the proxy from {from} uses the scheme `{scheme}`: hookrelay tunnels through HTTP proxies \
                     (http://host:port, CONNECT); set `proxy` to one, or to \"none\""
                ),
            );
        }
        let Some(host) = target.host() else {
            return self.fail(span, format!("the proxy from {from} has no host"));
        };
        let port = target.port_u16().unwrap_or(80);
        // `host()` keeps an IPv6 address's brackets.
        let shown = format!("{host}:{port}");
        let uri = match format!("http://{shown}").parse::<Uri>() {
            Ok(uri) => uri,
            Err(_) => return self.fail(span, format!("the proxy from {from} is not a valid URL")),
        };
        let authorization = intercept.basic_auth().cloned().map(|mut value| {
            value.set_sensitive(true);
            value
        });
        Some(Some(Proxy { uri, authorization, shown }))
    }

    /// Reads the certificate chain and its key and checks that they belong together. With `check
    /// --no-secrets` the chain is still read, a key from a source that is not read is not (and yields none).
    pub(super) fn client_identity(&mut self, cert: &Text, key: &Spanned<RawSecret>) -> Option<ClientIdentity> {
        let path = self.path(cert);
        let chain = self.pem_certificates("client_cert", &path, cert.span());
        let Loaded::Value(key_text) = self.load_secret(key, key.span())? else { return None };
        let chain = chain?;
        let Ok(key_der) = PrivateKeyDer::from_pem_slice(key_text.expose().as_bytes()) else {
            // The key is a secret: say what is wrong without showing any of it.
            return self.fail(key.span(), "`client_key` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)");
        };
        let mut digest = Sha256::new();
        for certificate in &chain {
            digest.update((certificate.len() as u64).to_be_bytes());
            digest.update(certificate);
        }
        digest.update(key_der.secret_der());
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(chain, key_der, &provider) {
            Ok(certified) => Some(ClientIdentity { key: Arc::new(certified), digest: digest.finalize().into() }),
            Err(rustls::Error::InconsistentKeys(_)) => self.fail(
                key.span(),
                format!("`client_key` is not the key of the certificate in `client_cert` {}", path.display()),
            ),
            Err(error) => self.fail(key.span(), format!("`client_key` cannot be used: {error}")),
        }
    }
}

/// The proxy of the relay's environment (SPEC §3): `HTTPS_PROXY` / `https_proxy`, except for the hosts
/// `NO_PROXY` / `no_proxy` names (hyper-util's matcher reads that list: hosts, domains with their
/// subdomains, IPs, CIDR ranges, `*`).
fn environment_matcher() -> Matcher {
    let first = |names: [&str; 2]| names.iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let mut builder = Matcher::builder();
    if let Some(proxy) = first(["HTTPS_PROXY", "https_proxy"]) {
        builder = builder.https(proxy);
    }
    if let Some(exempt) = first(["NO_PROXY", "no_proxy"]) {
        builder = builder.no(exempt);
    }
    builder.build()
}

/// The proxy URL, checked: `http://` (or no scheme), a host, no path. Problems never quote the text.
fn proxy_uri(text: &str) -> Result<Uri, &'static str> {
    let with_scheme = if text.contains("://") { text.to_owned() } else { format!("http://{text}") };
    let uri: Uri = with_scheme.parse().map_err(|_| "it is not a URL")?;
    if !uri.scheme_str().is_some_and(|s| s.eq_ignore_ascii_case("http")) {
        return Err("only http:// proxies are supported (the tunnel is CONNECT; TLS to the receiver stays end to end)");
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("it has no host");
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
        return Err("a proxy URL has no path");
    }
    Ok(uri)
}

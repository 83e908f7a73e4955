//! `hookrelay receive`: a local HTTPS receiver for trying the relay out and for debugging a subscription
//! (SPEC §2). It makes (once) a throwaway CA and a `localhost` certificate, prints what a subscription
//! needs to reach it, then prints every request it receives, whether its signature verifies with each
//! `--secret` and if not why, and answers `--status`.

mod certificates;
mod verify;

pub use verify::{keys, Key};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Requests larger than this are answered 413 and shown by size only.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub struct Options {
    pub listen: SocketAddr,
    pub dir: PathBuf,
    /// The `--secret` values, parsed by [`keys`].
    pub keys: Vec<Key>,
    pub status: StatusCode,
}

/// Runs until Ctrl-C or SIGTERM. Errors are for the command line (exit 1).
pub fn run(options: Options) -> Result<(), String> {
    let identity = certificates::load_or_make(&options.dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(serve(options, identity))
}

async fn serve(options: Options, identity: certificates::Identity) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(vec![identity.certificate], identity.key))
        .map_err(|e| format!("cannot use the certificate in {}: {e}", options.dir.display()))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener =
        TcpListener::bind(options.listen).await.map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let bound = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("{}", banner(bound, &identity.ca_file, identity.made, &options.keys));

    let shared = Arc::new(Shared { keys: options.keys, status: options.status });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch for SIGTERM: {e}"))?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    eprintln!("hookrelay receive: accept failed: {error}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(error) => {
                    println!("── TLS handshake from {peer} failed: {error}\n");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(shared.answer(request, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

struct Shared {
    keys: Vec<verify::Key>,
    status: StatusCode,
}

impl Shared {
    async fn answer(&self, request: Request<hyper::body::Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let mut lines = vec![format!(
            "── {} {} from {peer} at {}",
            parts.method,
            parts.uri,
            crate::clock::rfc3339_utc(time::OffsetDateTime::now_utc())
        )];
        for (name, value) in &parts.headers {
            lines.push(format!("{name}: {}", crate::terminal::printable(&String::from_utf8_lossy(value.as_bytes()))));
        }
        let status = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => {
                let body = collected.to_bytes();
                lines.push(String::new());
                lines.push(shown_body(&body));
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                lines.extend(verify::verdicts(&parts.headers, &body, &self.keys, now));
                self.status
            }
            Err(error) => {
                lines.push(format!("body not read: {error}"));
                StatusCode::PAYLOAD_TOO_LARGE
            }
        };
        lines.push(format!("answered {status}"));
        println!("{}\n", lines.join("\n"));
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        response
    }
}

/// The body for people: JSON indented (key order and numbers as received), other UTF-8 as is, and binary
/// by size only; always with its size in bytes.
fn shown_body(body: &[u8]) -> String {
    let size = format!("body: {} bytes", body.len());
    match std::str::from_utf8(body) {
        Ok("") => size,
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            // JSON escapes C0 controls but may hold raw DEL and C1 ones (U+009B is CSI).
            format!("{size}, JSON\n{}", crate::terminal::printable(&crate::json::pretty(text)))
        }
        Ok(text) => format!("{size}, text\n{}", crate::terminal::printable(text)),
        Err(_) => format!("{size}, not UTF-8 (not shown)"),
    }
}

/// What a subscription needs to deliver here, printed once at start.
fn banner(bound: SocketAddr, ca_file: &std::path::Path, made: bool, keys: &[Key]) -> String {
    // The certificate names localhost, 127.0.0.1 and ::1: the url must be one of those to pass the
    // relay's name check.
    let (host, outside) = match bound.ip() {
        std::net::IpAddr::V6(ip) if ip.is_loopback() => (format!("[::1]:{}", bound.port()), false),
        ip if ip.is_unspecified() || ip == std::net::Ipv4Addr::LOCALHOST => {
            (format!("127.0.0.1:{}", bound.port()), false)
        }
        _ => (bound.to_string(), true),
    };
    let url = format!("https://{host}/");
    let caveat = if outside {
        "\nNote: the certificate covers localhost, 127.0.0.1 and ::1 only; a relay that connects to this \
         address fails its name check (NotValidForName).\n"
    } else {
        ""
    };
    let ca = crate::json::quote(&ca_file.display().to_string());
    let origin =
        if made { "made now: a throwaway CA, and a certificate for localhost, 127.0.0.1 and ::1" } else { "found" };
    let first_secret = keys.iter().find_map(|key| match key {
        Key::Secret { text, .. } => Some(text),
        Key::Public { .. } => None,
    });
    let secret = match first_secret {
        Some(secret) => format!("secret = {}", crate::json::quote(secret)),
        None => {
            "secret = \"whsec_…\"                  # `hookrelay secret`; then restart receive with --secret".to_owned()
        }
    };
    format!(
        "hookrelay receive: listening on {url}\n\
         url     = \"{url}\"\n\
         ca_file = {ca}   ({origin})\n\
         \n\
         A subscription that delivers here:\n\
         \n\
         [[subscription]]\n\
         name = \"local-receiver\"\n\
         url = \"{url}\"\n\
         events = [\"*\"]\n\
         ca_file = {ca}\n\
         {secret}\n{caveat}"
    )
}

#[cfg(test)]
mod tests {
    use super::banner;

    fn url_line(listen: &str) -> String {
        let printed = banner(listen.parse().unwrap(), std::path::Path::new("ca.pem"), false, &[]);
        printed.lines().nth(1).unwrap().to_owned() + if printed.contains("NotValidForName") { " (caveat)" } else { "" }
    }

    #[test]
    fn a_body_s_control_characters_are_shown_escaped_json_or_not() {
        assert_eq!(
            super::shown_body("{\"a\":\"\u{9b}31m\u{7f}\"}".as_bytes()),
            "body: 14 bytes, JSON\n{\n  \"a\": \"\\u{9b}31m\\u{7f}\"\n}"
        );
        assert_eq!(super::shown_body("hi\u{1b}[2J".as_bytes()), "body: 6 bytes, text\nhi\\u{1b}[2J");
    }

    #[test]
    fn the_printed_url_reaches_the_listener_and_its_certificate_covers_it() {
        assert_eq!(url_line("127.0.0.1:8443"), "url     = \"https://127.0.0.1:8443/\"");
        assert_eq!(url_line("0.0.0.0:8443"), "url     = \"https://127.0.0.1:8443/\"");
        assert_eq!(url_line("[::]:8443"), "url     = \"https://127.0.0.1:8443/\"");
        assert_eq!(url_line("[::1]:8443"), "url     = \"https://[::1]:8443/\"");
        assert_eq!(url_line("127.0.0.2:8443"), "url     = \"https://127.0.0.2:8443/\" (caveat)");
        assert_eq!(url_line("192.0.2.7:8443"), "url     = \"https://192.0.2.7:8443/\" (caveat)");
    }
}

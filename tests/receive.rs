//! `hookrelay receive` (SPEC §2): the relay delivers to it and it says, per request, which header and
//! which `--secret` verify; for requests made here, what differs when nothing does.

mod support;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::receive::ReceiveProcess;
use support::relay::{cli, Setup, TestEnv};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8=";
const ERP_SECRET: &str = "erp shared secret";

fn block_with<'a>(blocks: &'a [String], text: &str) -> &'a str {
    let found: Vec<&String> = blocks.iter().filter(|block| block.contains(text)).collect();
    assert_eq!(found.len(), 1, "one request shows {text:?}: {blocks:#?}");
    found[0]
}

#[tokio::test]
async fn the_relay_delivers_to_receive_which_verifies_each_scheme_and_names_the_secret() {
    let env = TestEnv::new();
    let pair =
        std::process::Command::new(env!("CARGO_BIN_EXE_hookrelay")).args(["secret", "--kind", "ed25519"]).output();
    let ed25519 = String::from_utf8(pair.unwrap().stdout).unwrap();
    let (seed, public) = ed25519.trim().split_once('\n').unwrap();
    let dir = env.dir.path().join("receiver");
    let receive = ReceiveProcess::start(&dir, &["--secret", SECRET, "--secret", public, "--secret", ERP_SECRET]).await;
    assert!(receive.banner[2].contains("made now"), "first use makes the certificates: {:?}", receive.banner);
    assert_eq!(receive.ca_file, dir.join("ca.pem").canonicalize().unwrap().display().to_string());

    // The printed snippet is used as printed, for one event type.
    let snippet = receive.snippet();
    assert!(snippet.contains(&format!("secret = \"{SECRET}\"")), "{snippet}");
    let url = &receive.url;
    let ca = format!("ca_file = {:?}", receive.ca_file);
    let subscriptions = [
        snippet.replace("events = [\"*\"]", "events = [\"lab.*\"]"),
        format!("[[subscription]]\nname = \"ed\"\nurl = \"{url}\"\nevents = [\"soap.*\"]\n{ca}\nsecret = \"{SECRET}\"\nsigning_key = \"{seed}\"\n"),
        format!(
            "[[subscription]]\nname = \"erp\"\nurl = \"{url}\"\nevents = [\"order:*\"]\n{ca}\nsignature = \"hmac-sha256\"\n\
             signature_header = \"X-Erp-Signature\"\nbody = \"data\"\nsecret = \"{ERP_SECRET}\"\n"
        ),
        format!("[[subscription]]\nname = \"wrong\"\nurl = \"{url}\"\nevents = [\"patient.*\"]\n{ca}\nsecret = \"{OTHER_SECRET}\"\n"),
    ];
    env.write_config(&Setup { subscriptions: subscriptions.concat(), ..Setup::default() });
    let relay = env.start().await;

    // `send` keeps DATA's bytes: key order, number text and escapes as given.
    let data = r#"{"zeta": 1, "amount": 500.00, "note": "caf\u00e9"}"#;
    for event_type in ["lab.completed", "soap.signed", "order:shipped", "patient.updated"] {
        let sent = cli(&env, &["send", event_type, data]).await;
        assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    }
    let blocks = receive.wait_for_requests(4).await;

    let lab = block_with(&blocks, "\"type\": \"lab.completed\"");
    assert!(lab.starts_with("── POST / from 127.0.0.1:"), "{lab}");
    assert!(
        lab.contains("\n  \"data\": {\n    \"zeta\": 1,\n    \"amount\": 500.00,\n    \"note\": \"caf\\u00e9\"\n  }"),
        "{lab}"
    );
    assert!(lab.contains("\nwebhook-signature: v1,"), "headers are shown: {lab}");
    assert!(lab.contains("\nsignature: webhook-signature v1 verified with --secret #1\n"), "{lab}");
    assert!(!lab.contains("v1a") && !lab.contains("\ntimestamp:"), "{lab}");
    assert!(lab.ends_with("\nanswered 200 OK"), "{lab}");

    let ed = block_with(&blocks, "\"type\": \"soap.signed\"");
    assert!(ed.contains("\nsignature: webhook-signature v1 verified with --secret #1\n"), "{ed}");
    assert!(ed.contains("\nsignature: webhook-signature v1a verified with --secret #2\n"), "{ed}");

    let erp = block_with(&blocks, "x-erp-signature: ");
    let compact = r#"{"zeta":1,"amount":500.00,"note":"caf\u00e9"}"#;
    let shown = format!("body: {} bytes, JSON\n{{\n  \"zeta\": 1,\n  \"amount\": 500.00,", compact.len());
    assert!(erp.contains(&shown), "the data alone, byte for byte: {erp}");
    assert!(
        erp.contains("\nsignature: x-erp-signature (hex HMAC-SHA256 of the body) verified with --secret #3\n"),
        "{erp}"
    );

    let wrong = block_with(&blocks, "\"type\": \"patient.updated\"");
    assert!(
        wrong.contains(
            "\nsignature: webhook-signature v1 does NOT verify with any --secret: it was signed with another secret"
        ),
        "{wrong}"
    );
    // The relay saw 200 from each: every delivery delivered.
    relay.wait_for_log("Delivery succeeded.", 4, |_| true).await;
    let listed = relay.admin_get("/v1/deliveries?status=delivered").await;
    assert_eq!(listed["deliveries"].as_array().unwrap().len(), 4, "{listed}");
}

/// A POST to `url` over TLS trusting `ca_file`; returns the status line's code.
async fn post(url: &str, ca_file: &str, headers: &[(&str, String)], body: &[u8]) -> u16 {
    let authority = url.trim_start_matches("https://").trim_end_matches('/');
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls)).connect(name, tcp).await.unwrap();
    let mut request =
        format!("POST / HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status: {answer}"))
}

fn standard_headers(id: &str, timestamp: i64, signed_body: &[u8]) -> Vec<(&'static str, String)> {
    let key = BASE64.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(signed_body);
    let signature = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    vec![("webhook-id", id.to_owned()), ("webhook-timestamp", timestamp.to_string()), ("webhook-signature", signature)]
}

#[tokio::test]
async fn receive_says_what_differs_when_a_signature_fails_and_answers_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let first = ReceiveProcess::start(dir.path(), &["--secret", SECRET]).await;
    let ca = std::fs::read(&first.ca_file).unwrap();
    drop(first);
    let receive = ReceiveProcess::start(dir.path(), &["--secret", SECRET, "--status", "503"]).await;
    assert!(receive.banner[2].contains("(found)"), "the second run reuses them: {:?}", receive.banner);
    assert_eq!(std::fs::read(&receive.ca_file).unwrap(), ca, "the same CA");
    let key_mode = std::fs::metadata(dir.path().join("localhost-key.pem")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777, 0o600);
    let (url, ca_file) = (&receive.url, &receive.ca_file);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;

    // Signed over the keys sorted, sent in the producer's order.
    let sent = br#"{"zeta":1,"amount":2}"#;
    assert_eq!(post(url, ca_file, &standard_headers("msg_sorted", now, br#"{"amount":2,"zeta":1}"#), sent).await, 503);
    // Signed compact, sent with whitespace.
    let spaced = br#"{ "zeta": 1 }"#;
    assert_eq!(post(url, ca_file, &standard_headers("msg_spaced", now, br#"{"zeta":1}"#), spaced).await, 503);
    // Signed right, an hour ago.
    assert_eq!(post(url, ca_file, &standard_headers("msg_old", now - 3600, sent), sent).await, 503);
    // Not signed at all.
    assert_eq!(post(url, ca_file, &[], sent).await, 503);
    // A hex HMAC under a secret receive was not given.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"not given").unwrap();
    mac.update(sent);
    let hex_header = [("x-signature", format!("sha256={}", hex::encode(mac.finalize().into_bytes())))];
    assert_eq!(post(url, ca_file, &hex_header, sent).await, 503);

    let blocks = receive.wait_for_requests(5).await;
    let sorted = block_with(&blocks, "msg_sorted");
    assert!(
        sorted.contains(
            "signature: webhook-signature v1 does NOT verify over the bytes received; it verifies with --secret #1 \
             over the body with its keys sorted: something between the signer and here re-serialized the JSON"
        ),
        "{sorted}"
    );
    let spaced = block_with(&blocks, "msg_spaced");
    assert!(spaced.contains("verifies with --secret #1 over the body without whitespace"), "{spaced}");
    let old = block_with(&blocks, "msg_old");
    assert!(old.contains("\nsignature: webhook-signature v1 verified with --secret #1\n"), "{old}");
    // 3601 when a second ticks between signing here and checking there.
    let behind = |seconds: u32| format!("\ntimestamp: webhook-timestamp is {seconds} s behind this machine's clock;");
    assert!(old.contains(&behind(3600)) || old.contains(&behind(3601)), "{old}");
    for block in [sorted, spaced] {
        assert!(!block.contains("\ntimestamp:"), "{block}");
    }
    let unsigned = block_with(&blocks, "\nsignature: none (no webhook-signature header, no header holding a hex HMAC)");
    assert!(!unsigned.contains("\nwebhook-signature: "), "{unsigned}");
    let hex = block_with(&blocks, "x-signature: sha256=");
    assert!(hex.contains("signature: x-signature (hex HMAC-SHA256) does NOT verify with any --secret"), "{hex}");
    assert!(blocks.iter().all(|block| block.ends_with("\nanswered 503 Service Unavailable")), "{blocks:#?}");
}

#[test]
fn receive_refuses_a_malformed_key_before_making_anything() {
    let dir = tempfile::tempdir().unwrap();
    let made = dir.path().join("receiver");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(["receive", "--listen", "127.0.0.1:0", "--secret", "whpk_short", "--dir"])
        .arg(&made)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a malformed key is a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--secret #1 is not an ed25519 public key"), "{stderr}");
    assert!(!stderr.contains("whpk_short"), "a key is not repeated: {stderr}");
    assert!(!made.exists(), "nothing was made");
    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args(["receive", "--status", "99"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "a status outside 200-599 is a usage error");
}

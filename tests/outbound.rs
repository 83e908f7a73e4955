//! How deliveries leave the machine (SPEC §3, §6b) through the real binary: a real CONNECT proxy (with
//! credentials, from the environment, refusing or down), a receiver that requires client certificates
//! (mTLS), and ed25519 `v1a` signatures checked with an independent implementation (ed25519-dalek) on
//! the exact bytes received.

mod support;

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use support::proxy::{ConnectProxy, ProxyMode};
use support::receiver::{always, Receiver};
use support::relay::{cli, Setup, TestEnv};

const DELIVERED: &str = "Delivery succeeded.";
const FAILED: &str = "Delivery failed after its last attempt; requeue it with `hookrelay retry`.";

fn subscription(name: &str, url: &str, extra: &str) -> String {
    support::relay::unsigned_subscription(name, url, extra)
}

#[tokio::test]
async fn deliveries_tunnel_through_the_configured_proxy_with_its_credentials_and_tls_end_to_end() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    // "Basic " + base64("clinic:s3cret-pw")
    let proxy = ConnectProxy::start(ProxyMode::RequireAuthorization("Basic Y2xpbmljOnMzY3JldC1wdw==".into())).await;
    let extra = format!("proxy = \"{}\"", proxy.url(Some("clinic:s3cret-pw")));
    // Every level, so that the password check below reads every line the relay writes.
    let setup = Setup {
        subscriptions: subscription("vet", &receiver.url("/hook"), &extra),
        log_level: "debug",
        ..Setup::default()
    };
    env.write_config(&setup);
    let mut relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type": "lab.completed", "data": {"n": 1}}"#).await.status, 202);
    relay.wait_for_log(DELIVERED, 1, |_| true).await;
    let request = receiver.next().await;
    assert_eq!(request.body_json()["data"]["n"], 1, "the receiver (HTTPS, test CA) got it through the tunnel");
    let connects = proxy.connects();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(connects[0].target, format!("127.0.0.1:{}", receiver.port));
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let logs: Vec<String> = relay.logs().iter().map(|line| line.to_string()).collect();
    assert!(logs.iter().all(|line| !line.contains("s3cret-pw")), "the proxy's password is never logged");
}

#[tokio::test]
async fn the_environments_https_proxy_is_used_unless_no_proxy_or_proxy_none_says_otherwise() {
    let env = TestEnv::new();
    let proxied = Receiver::start(&env.ca, always(200)).await;
    let exempt = Receiver::start(&env.ca, always(200)).await;
    let direct = Receiver::start(&env.ca, always(200)).await;
    let proxy = ConnectProxy::start(ProxyMode::Open).await;
    let exempt_url = format!("https://localhost:{}/hook", exempt.port);
    let subscriptions = subscription("proxied", &proxied.url("/hook"), "")
        + &subscription("exempt", &exempt_url, "")
        + &subscription("direct", &direct.url("/hook"), "proxy = \"none\"");
    env.write_config(&Setup { subscriptions, ..Setup::default() });
    let proxy_url = proxy.url(None);
    let relay = env.start_with_env(&[("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "localhost")]).await;
    assert_eq!(relay.post_unix(r#"{"type": "lab.completed", "data": {}}"#).await.status, 202);
    relay.wait_for_log(DELIVERED, 3, |_| true).await;
    let targets: BTreeSet<String> = proxy.connects().into_iter().map(|c| c.target).collect();
    assert_eq!(targets, BTreeSet::from([format!("127.0.0.1:{}", proxied.port)]));
    for receiver in [&proxied, &exempt, &direct] {
        receiver.next().await;
    }
}

#[tokio::test]
async fn a_proxy_that_refuses_or_is_down_fails_the_attempt_naming_the_proxy_never_its_credentials() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let forbidden = ConnectProxy::start(ProxyMode::Refuse(403)).await;
    let bad_gateway = ConnectProxy::start(ProxyMode::Refuse(502)).await;
    let wants_auth = ConnectProxy::start(ProxyMode::RequireAuthorization("Basic nothing-we-send".into())).await;
    let down_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases = [
        ("forbidden", forbidden.url(Some("u:hunter2")), format!("127.0.0.1:{}", forbidden.port), "403 Forbidden"),
        ("gateway", bad_gateway.url(None), format!("127.0.0.1:{}", bad_gateway.port), "502 Bad Gateway"),
        ("auth", wants_auth.url(Some("u:hunter2")), format!("127.0.0.1:{}", wants_auth.port), "407"),
        ("down", format!("http://u:hunter2@127.0.0.1:{down_port}"), format!("127.0.0.1:{down_port}"), "cannot connect"),
    ];
    let subscriptions: String = cases
        .iter()
        .map(|(name, proxy, _, _)| {
            subscription(name, &receiver.url("/"), &format!("proxy = \"{proxy}\"\nretry = []\npause_after = 0"))
        })
        .collect();
    env.write_config(&Setup { subscriptions, log_level: "debug", ..Setup::default() });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type": "lab.completed", "data": {}}"#).await.status, 202);
    relay.wait_for_log(FAILED, cases.len(), |_| true).await;
    let failed = relay.admin_get("/v1/deliveries?status=failed").await;
    for (name, _, shown, says) in &cases {
        let delivery = failed["deliveries"].as_array().unwrap().iter().find(|d| d["subscription"] == *name).unwrap();
        let error = delivery["last_error"].as_str().unwrap();
        assert!(error.contains(&format!("proxy {shown}")), "{name}: {error}");
        assert!(error.contains(says), "{name}: {error}");
        assert!(!error.contains("hunter2") && !error.contains("u:"), "{name}: no credentials in {error}");
    }
    assert_eq!(receiver.count(), 0, "nothing went around the proxy");
    let logs: Vec<String> = relay.logs().iter().map(|line| line.to_string()).collect();
    assert!(logs.iter().all(|line| !line.contains("hunter2")));
}

#[tokio::test]
async fn a_receiver_that_requires_a_client_certificate_gets_the_configured_one() {
    let env = TestEnv::new();
    env.ca.write_client_identity(&env.dir.path().join("client.pem"), &env.dir.path().join("client.key"));
    let strict = Receiver::start_with_tls(env.ca.server_requiring_client_certificates(), always(200)).await;
    let identity = "client_cert = \"client.pem\"\nclient_key = { file = \"client.key\" }";
    let subscriptions = subscription("with-cert", &strict.url("/a"), identity)
        + &subscription("without-cert", &strict.url("/b"), "retry = []\npause_after = 0");
    env.write_config(&Setup { subscriptions, ..Setup::default() });
    let relay = env.start().await;
    assert_eq!(relay.post_unix(r#"{"type": "lab.completed", "data": {}}"#).await.status, 202);
    relay.wait_for_log(DELIVERED, 1, |line| line["subscription"] == "with-cert").await;
    let refused = relay.wait_for_log(FAILED, 1, |line| line["subscription"] == "without-cert").await;
    // TLS 1.3 sends the alert after the handshake; it may also arrive as a reset, or (on a loaded machine)
    // close the connection before the client has sent the request on it.
    let error = refused["error"].as_str().unwrap();
    let refusals = ["CertificateRequired", "reset", "connection was not ready"];
    assert!(refusals.iter().any(|refusal| error.contains(refusal)), "{refused}");
    assert_eq!(strict.next().await.path, "/a");
    assert_eq!(strict.count(), 1, "the request without a certificate never got through");
}

#[tokio::test]
async fn a_client_key_that_does_not_fit_or_cannot_be_read_is_a_config_error() {
    let env = TestEnv::new();
    let dir = env.dir.path();
    env.ca.write_client_identity(&dir.join("client.pem"), &dir.join("client.key"));
    env.ca.write_client_identity(&dir.join("other.pem"), &dir.join("other.key"));
    std::fs::write(dir.join("junk.key"), "not a key\n").unwrap();
    let cases = [
        ("client_key = { file = \"other.key\" }", "is not the key of the certificate in `client_cert`"),
        ("client_key = { file = \"missing.key\" }", "cannot read secret file"),
        ("client_key = { file = \"junk.key\" }", "holds no PEM private key"),
    ];
    for (key, says) in cases {
        let extra = format!("client_cert = \"client.pem\"\n{key}");
        env.write_config(&Setup {
            subscriptions: subscription("vet", "https://127.0.0.1:9/", &extra),
            ..Setup::default()
        });
        let checked = cli(&env, &["check"]).await;
        let stdout = String::from_utf8_lossy(&checked.stdout);
        assert_eq!(checked.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains(says), "{key}: {stdout}");
        assert!(stdout.contains("relay.toml:"), "with a position: {stdout}");
    }
    // An IPv6 proxy address is a proxy like any other.
    let extra = "proxy = \"http://[::1]:3128\"";
    env.write_config(&Setup { subscriptions: subscription("vet", "https://127.0.0.1:9/", extra), ..Setup::default() });
    let checked = cli(&env, &["check"]).await;
    assert_eq!(checked.status.code(), Some(0), "{}", String::from_utf8_lossy(&checked.stdout));
    let extra = "client_cert = \"client.pem\"";
    env.write_config(&Setup { subscriptions: subscription("vet", "https://127.0.0.1:9/", extra), ..Setup::default() });
    let stdout = String::from_utf8_lossy(&cli(&env, &["check"]).await.stdout).into_owned();
    assert!(stdout.contains("`client_cert` needs `client_key`"), "{stdout}");
}

/// The `whsk_`/`whpk_` pair `hookrelay secret --kind ed25519` prints.
async fn ed25519_pair() -> (String, String) {
    let output =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay")).args(["secret", "--kind", "ed25519"]).output();
    let output = output.await.unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("whsk_") && lines[1].starts_with("whpk_"), "{text}");
    (lines[0].to_owned(), lines[1].to_owned())
}

/// Verifies `v1a,<sig>` over `<id>.<timestamp>.<body>` with ed25519-dalek.
fn verify_v1a(public: &str, entry: &str, id: &str, timestamp: &str, body: &[u8]) -> bool {
    let key: [u8; 32] = BASE64.decode(public.strip_prefix("whpk_").unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key).unwrap();
    let signature: [u8; 64] = BASE64.decode(entry.strip_prefix("v1a,").unwrap()).unwrap().try_into().unwrap();
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    key.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&signature)).is_ok()
}

#[tokio::test]
async fn v1a_signatures_verify_with_an_independent_ed25519_on_the_exact_bytes_received() {
    let env = TestEnv::new();
    let receiver = Receiver::start(&env.ca, always(200)).await;
    let (private, public) = ed25519_pair().await;
    let (other_private, other_public) = ed25519_pair().await;
    assert_ne!(private, other_private, "every pair is new");
    std::fs::write(env.dir.path().join("vet.whsk"), format!("{private}\n")).unwrap();
    let both = "[[subscription]]\nname = \"both\"\nurl = \"URL\"\nevents = [\"*\"]\n\
                secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\nsigning_key = { file = \"vet.whsk\" }\n";
    let only = format!(
        "[[subscription]]\nname = \"only\"\nurl = \"URL\"\nevents = [\"*\"]\nsigning_key = \"{other_private}\"\n"
    );
    let subscriptions = both.replace("URL", &receiver.url("/both")) + &only.replace("URL", &receiver.url("/only"));
    env.write_config(&Setup { subscriptions, ..Setup::default() });
    let relay = env.start().await;
    let sent = r#"{"type": "soap.signed", "data": {"zeta": 1, "amount": 500.00, "note": "caf\u00e9"}}"#;
    assert_eq!(relay.post_unix(sent).await.status, 202);
    relay.wait_for_log(DELIVERED, 2, |_| true).await;
    for _ in 0..2 {
        let request = receiver.next().await;
        let (id, timestamp) = (request.header("webhook-id"), request.header("webhook-timestamp"));
        let entries: Vec<&str> = request.header("webhook-signature").split(' ').collect();
        let body = &request.body;
        assert!(std::str::from_utf8(body).unwrap().contains(r#""data":{"zeta":1,"amount":500.00,"note":"caf\u00e9"}"#));
        match request.path.as_str() {
            "/both" => {
                assert_eq!(entries.len(), 2, "{entries:?}");
                assert!(entries[0].starts_with("v1,"), "v1 first: {entries:?}");
                assert!(verify_v1a(&public, entries[1], id, timestamp, body));
                assert!(!verify_v1a(&other_public, entries[1], id, timestamp, body), "another key does not verify");
                let mut changed = body.to_vec();
                changed[body.len() - 2] ^= 1;
                assert!(!verify_v1a(&public, entries[1], id, timestamp, &changed), "other bytes do not verify");
            }
            "/only" => {
                assert_eq!(entries.len(), 1, "only v1a without a secret: {entries:?}");
                assert!(verify_v1a(&other_public, entries[0], id, timestamp, body));
            }
            other => panic!("unexpected path {other}"),
        }
    }
}

#[tokio::test]
async fn a_bad_signing_key_is_a_config_error_that_never_shows_the_key() {
    let env = TestEnv::new();
    for (key, says) in [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "does not start with `whsk_`"),
        ("whsk_c2hvcnQ=", "does not decode to a 32-byte ed25519 seed"),
        ("whsk_!!!not-base64", "is not base64"),
    ] {
        let extra = format!("signing_key = \"{key}\"");
        let subscriptions =
            format!("[[subscription]]\nname = \"vet\"\nurl = \"https://127.0.0.1:9/\"\nevents = [\"*\"]\n{extra}\n");
        env.write_config(&Setup { subscriptions, ..Setup::default() });
        let checked = cli(&env, &["check"]).await;
        let stdout = String::from_utf8_lossy(&checked.stdout);
        assert_eq!(checked.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains(says), "{stdout}");
        assert!(!stdout.contains(&key[5..]), "the key is not shown: {stdout}");
    }
}

//! Producers on a bad day (issue #5): malformed, deeply nested, enormous or non-UTF-8 bodies, slow and
//! idle connections. Each gets a clear 4xx or a closed connection, nothing is stored, and the relay keeps
//! serving everyone else.

mod support;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use support::client::{send, Call, Target};
use support::relay::{deliveries, RelayProcess, Setup, TestEnv};
use support::within;

/// A body of `depth` nested arrays inside an event's `data`.
fn nested(depth: usize) -> Vec<u8> {
    format!(r#"{{"type":"a","data":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)).into_bytes()
}

async fn assert_served(relay: &RelayProcess, id: &str) {
    let body = format!(r#"{{"type":"lab.completed","id":"{id}","data":{{}}}}"#);
    for target in [&relay.unix, relay.tcp()] {
        let answer = send(target, Call::events(body.clone())).await;
        assert!(answer.status == 202 || answer.status == 200, "{id}: {}", answer.status);
    }
}

#[tokio::test]
async fn hostile_bodies_get_a_clear_400_store_nothing_and_the_relay_keeps_serving() {
    let (env, _receiver) = TestEnv::with_catch_all().await;
    let mut relay = env.start().await;

    let huge = "a".repeat(900_000);
    let batch = format!("[{}]", vec![r#"{"type":"a","data":1}"#; 1001].join(","));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", br#"{"type":"a","data":{"x":[1,2"#.to_vec(), "body is not valid JSON"),
        ("nested data", nested(200_000), "`data` nests deeper than 100 levels"),
        ("nested just too deep", nested(101), "`data` nests deeper than 100 levels"),
        ("nested top", "[".repeat(500_000).into_bytes(), "body is not valid JSON"),
        ("invalid UTF-8", b"{\"type\":\"a\",\"data\":\"\xff\xfe\xfd\"}".to_vec(), "not valid UTF-8"),
        ("huge type", format!(r#"{{"type":"{huge}","data":1}}"#).into_bytes(), "`type`"),
        ("huge id", format!(r#"{{"type":"a","id":"{huge}","data":1}}"#).into_bytes(), "`id`"),
        ("control in id", br#"{"type":"a","id":"x\u0007y","data":1}"#.to_vec(), "`id`"),
        ("NUL in type", br#"{"type":"a\u0000","data":1}"#.to_vec(), "`type`"),
        ("duplicate field", br#"{"type":"a","type":"b","data":1}"#.to_vec(), "`type`"),
        ("lone surrogate", br#"{"type":"\ud800","data":1}"#.to_vec(), "`type`"),
        ("big batch", batch.into_bytes(), "at most 1000"),
        ("null", b"null".to_vec(), "event object"),
        ("a number", b"12".to_vec(), "event object"),
        ("batch of numbers", b"[1]".to_vec(), "`[0]` must be an event object"),
        ("empty", Vec::new(), "body is not valid JSON"),
    ];
    for (case, body, named) in cases {
        let answer = send(&relay.unix, Call::events(body)).await;
        assert_eq!(answer.status, 400, "{case}: {}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.error_code(), "invalid_event", "{case}");
        let message = answer.error_message();
        assert!(message.contains(named), "{case}: {message:?} should say {named:?}");
        assert!(message.len() < 1000, "{case}: the message does not echo the body ({} bytes)", message.len());
    }
    for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("json")] {
        let mut call = Call::events(r#"{"type":"a","id":"wrong-type","data":1}"#);
        call.headers.retain(|(name, _)| *name != "content-type");
        if let Some(value) = content_type {
            call = call.header("content-type", value);
        }
        let answer = send(&relay.unix, call).await;
        assert_eq!(answer.status, 415, "{content_type:?}");
        assert_eq!(answer.error_code(), "unsupported_media_type");
    }

    let deepest_allowed = send(&relay.unix, Call::events(nested(100))).await;
    assert_eq!(deepest_allowed.status, 202, "100 levels of data are accepted");
    assert_served(&relay, "after-hostile-bodies").await;
    let rss = relay.rss_kib();
    assert!(rss < 100 * 1024, "memory stayed bounded: {rss} KiB");
    relay.terminate();
    assert!(relay.wait_exit().await.success());
    let stored = deliveries(&env.store());
    let mut stored: Vec<&str> = stored.iter().map(|d| d.event_id.as_str()).collect();
    stored.retain(|id| *id != "after-hostile-bodies");
    assert_eq!(stored.len(), 1, "besides the served one, only the 100-level event was stored: {stored:?}");
    assert!(stored[0].starts_with("evt_"), "the 100-level event: {stored:?}");
}

/// Reads until the relay closes the connection; returns what it said first.
async fn until_closed<S: AsyncRead + Unpin>(what: &str, stream: &mut S) -> String {
    let mut said = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match within(what, stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&said).into_owned(),
            Ok(n) => said.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

#[tokio::test]
async fn slow_and_idle_producers_are_disconnected_while_others_are_served() {
    let (env, _receiver) = TestEnv::with_catch_all().await;
    let relay = env.start_with_env(&[("HOOKRELAY_INGEST_CLIENT_TIMEOUT", "1s")]).await;
    let Target::Tcp(address) = relay.tcp().clone() else { unreachable!() };
    let Target::Unix(socket) = relay.unix.clone() else { unreachable!() };

    let mut idle_tcp = Vec::new();
    for _ in 0..200 {
        idle_tcp.push(TcpStream::connect(address).await.unwrap());
    }
    let mut idle_unix = Vec::new();
    for _ in 0..50 {
        idle_unix.push(UnixStream::connect(&socket).await.unwrap());
    }
    let mut slow_headers = TcpStream::connect(address).await.unwrap();
    write(&mut slow_headers, b"POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: app").await;
    let mut slow_body = TcpStream::connect(address).await.unwrap();
    let head = "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    write(&mut slow_body, head.as_bytes()).await;
    write(&mut slow_body, br#"{"type":"slow","id":"slow-body","#).await;

    assert_served(&relay, "while-held").await;

    let said = until_closed("the slow body to be refused", &mut slow_body).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("\"request_timeout\"") && said.contains("within 1s"), "{said}");
    until_closed("the slow headers to be cut off", &mut slow_headers).await;
    for stream in &mut idle_tcp {
        until_closed("an idle TCP connection to be closed", stream).await;
    }
    for stream in &mut idle_unix {
        until_closed("an idle unix connection to be closed", stream).await;
    }

    assert_served(&relay, "after-slow-clients").await;
    let admin = send(&relay.unix, Call::get("/v1/events/slow-body")).await;
    assert_eq!(admin.status, 404, "the slow body was not stored");
}

/// The durations read from the environment at start: a value that is not one stops the relay before it
/// opens the store, naming the variable.
#[tokio::test]
async fn an_invalid_duration_in_the_environment_stops_the_relay_at_start_with_a_clear_error() {
    let cases = [
        ("HOOKRELAY_INGEST_CLIENT_TIMEOUT", "soon", "is not a duration"),
        ("HOOKRELAY_INGEST_CLIENT_TIMEOUT", "0s", "must be longer than 0s"),
        ("HOOKRELAY_REMOVED_SUBSCRIPTION_GRACE", "10 minutes or so", "is not a duration"),
        (hookrelay::relay::COMMIT_LINGER_VARIABLE, "-1ms", "is not a duration"),
    ];
    for (variable, value, says) in cases {
        let env = TestEnv::new();
        env.write_config(&Setup::default());
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"))
            .args(["run", "-c"])
            .arg(env.config_path())
            .env(variable, value)
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable) && stderr.contains(says), "{variable}={value}: {stderr}");
        assert!(!env.state_dir().exists(), "{variable}={value}: the store was not opened");
    }
}

/// Writes a whole request and only then reads the answer, as Python's `http.client` and `requests` do.
async fn send_whole_then_read<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, head: &str, body: &[u8]) -> String {
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await
    };
    within("the request to be written", written).await.expect("the relay reads the whole body before closing");
    let mut answer = Vec::new();
    within("the answer", stream.read_to_end(&mut answer)).await.expect("a readable answer");
    String::from_utf8_lossy(&answer).into_owned()
}

/// Before: a POST over `max_body_bytes` was answered 413 and the connection closed before its body was
/// read, so a client writing its whole body first got a broken pipe or a reset instead of the 413 (on
/// the unix socket from about 5 KB, on TCP from about 1 MB). Lingering close (SPEC §4) fixes it.
#[tokio::test]
async fn an_oversized_body_gets_a_readable_413_on_both_listeners() {
    let env = TestEnv::new();
    env.write_config(&Setup { ingest: "max_body_bytes = 1024\ntoken = \"ingest-token\"".into(), ..Setup::default() });
    let relay = env.start().await;
    let Target::Tcp(address) = *relay.tcp() else { unreachable!() };
    let Target::Unix(path) = &relay.unix else { unreachable!() };
    for size in [5 * 1024, 1024 * 1024, 10 * 1024 * 1024] {
        let body = vec![b'x'; size];
        let declared = format!(
            "POST /v1/events HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Authorization: bearer ingest-token\r\nContent-Length: {size}\r\n\r\n"
        );
        let chunked_head =
            "POST /v1/events HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Authorization: Bearer ingest-token\r\nTransfer-Encoding: chunked\r\n\r\n";
        let chunked = [format!("{size:x}\r\n").into_bytes(), body.clone(), b"\r\n0\r\n\r\n".to_vec()].concat();
        for (what, head, bytes) in [("declared", declared.as_str(), &body), ("chunked", chunked_head, &chunked)] {
            let unix = send_whole_then_read(UnixStream::connect(path).await.unwrap(), head, bytes).await;
            assert!(unix.starts_with("HTTP/1.1 413"), "unix, {size} bytes {what}: {unix}");
            let tcp = send_whole_then_read(TcpStream::connect(address).await.unwrap(), head, bytes).await;
            assert!(tcp.starts_with("HTTP/1.1 413"), "tcp, {size} bytes {what}: {tcp}");
        }
    }
    // An early 401 (no token) and 415 are readable too.
    let body = vec![b'x'; 1024 * 1024];
    for (head, status) in [
        (format!("POST /v1/events HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()), "401"),
        (format!("POST /v1/events HTTP/1.1\r\nHost: r\r\nConnection: close\r\nContent-Type: text/plain\r\nAuthorization: Bearer ingest-token\r\nContent-Length: {}\r\n\r\n", body.len()), "415"),
    ] {
        let answer = send_whole_then_read(TcpStream::connect(address).await.unwrap(), &head, &body).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
    }
    drop(relay);
}

/// Before: with the soft open-file limit at 1,024 and no cap on connections, 1,100 idle TCP connections
/// (anyone on the machine may open them; the token is checked per request) used up the relay's file
/// descriptors: every accept failed, the clinic app was locked out of the unix socket, and the next
/// commit's failure to open a file made the relay exit 1. Here the limit is 128 (a cap of 32 per
/// listener) and 150 connections are opened: more than the relay could hold without the cap, fewer than
/// the cap plus the listen backlog (128), so that every connect completes.
#[tokio::test]
async fn idle_tcp_connections_past_the_cap_leave_the_unix_socket_and_the_store_working() {
    let env = TestEnv::new();
    env.write_config(&Setup::default());
    let relay = env.start_with_open_files("128:128").await;
    let Target::Tcp(address) = *relay.tcp() else { unreachable!() };
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(within("an idle connection", TcpStream::connect(address)).await.unwrap());
    }
    for i in 0..20 {
        let event = format!(r#"{{"type":"lab.completed","id":"app-{i}","data":{i}}}"#);
        assert_eq!(relay.post_unix(&event).await.status, 202, "the clinic app still gets in");
    }
    assert_eq!(send(&relay.unix, Call::get("/readyz")).await.status, 200);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", relay.pid())).unwrap();
    assert!(limits.lines().any(|l| l.starts_with("Max open files") && l.contains("128")), "{limits}");
    drop(idle);
    assert_served(&relay, "after-the-flood").await;
}

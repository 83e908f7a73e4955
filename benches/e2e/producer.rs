//! Producers: keep-alive HTTP/1.1 connections on the relay's unix socket, each sending its share of
//! events one request at a time, recording when each was accepted.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(socket: &Path) -> Connection {
        let stream = UnixStream::connect(socket).await.expect("the relay's socket");
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        Connection { sender }
    }

    /// Posts one body to `/v1/events`; returns how long until the answer, which must be 202.
    pub async fn post(&mut self, body: Bytes) -> Duration {
        let started = Instant::now();
        let request = Request::post("/v1/events")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        self.sender.ready().await.expect("the connection to the relay");
        let response = self.sender.send_request(request).await.expect("an answer");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
        started.elapsed()
    }
}

/// `{"type": "bench.event", "id": <id>, "data": {"pad": "<pad_bytes of x>"}}`
pub fn event(id: &str, pad_bytes: usize) -> String {
    format!(r#"{{"type":"bench.event","id":"{id}","data":{{"pad":"{}"}}}}"#, "x".repeat(pad_bytes))
}

/// Sends `total` events from `producers` connections, `batch` events per request; returns the wall time.
pub async fn drive(
    socket: &Path,
    producers: usize,
    total: usize,
    batch: usize,
    pad_bytes: usize,
    tag: &str,
) -> Duration {
    let requests = total / batch;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let socket = socket.to_path_buf();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(&socket).await;
            let mut r = p;
            while r < requests {
                let events: Vec<String> =
                    (0..batch).map(|i| event(&format!("{tag}-{}", r * batch + i), pad_bytes)).collect();
                let body = if batch == 1 { events[0].clone() } else { format!("[{}]", events.join(",")) };
                connection.post(Bytes::from(body)).await;
                r += producers;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

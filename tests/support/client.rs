//! A plain HTTP/1.1 client for the relay's listeners, one connection per request.

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::within;

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error.code` of an error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().expect("an error body").to_owned()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().expect("an error body").to_owned()
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Target {
    Unix(std::path::PathBuf),
    Tcp(std::net::SocketAddr),
}

/// A request to send: method, path, headers and body.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    /// `POST /v1/events` with a JSON content type.
    pub fn events(body: impl Into<Bytes>) -> Call<'a> {
        Call {
            method: Method::POST,
            path: "/v1/events",
            headers: vec![("content-type", "application/json")],
            body: body.into(),
        }
    }

    /// A JSON `POST` to `path`.
    pub fn post(path: &'a str, body: impl Into<Bytes>) -> Call<'a> {
        Call { path, ..Call::events(body) }
    }

    pub fn get(path: &'a str) -> Call<'a> {
        Call { method: Method::GET, path, headers: Vec::new(), body: Bytes::new() }
    }

    pub fn header(mut self, name: &'a str, value: &'a str) -> Call<'a> {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value));
        self
    }

    pub fn method(mut self, method: Method) -> Call<'a> {
        self.method = method;
        self
    }
}

pub async fn send(target: &Target, call: Call<'_>) -> Answer {
    within("an answer from the relay", try_send(target, call)).await.unwrap_or_else(|error| panic!("{error}"))
}

/// Like [`send`], but a refused or broken connection (a relay that was just killed) is an error.
pub async fn try_send(target: &Target, call: Call<'_>) -> Result<Answer, String> {
    match target {
        Target::Unix(path) => {
            let stream =
                UnixStream::connect(path).await.map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
            exchange(stream, call).await
        }
        Target::Tcp(address) => {
            let stream = TcpStream::connect(address).await.map_err(|e| format!("cannot connect to {address}: {e}"))?;
            exchange(stream, call).await
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    call: Call<'_>,
) -> Result<Answer, String> {
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = Request::builder().method(call.method).uri(call.path).header("host", "localhost");
    for (name, value) in call.headers {
        request = request.header(name, value);
    }
    let response = sender.send_request(request.body(Full::new(call.body)).unwrap()).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer { status: parts.status, headers: parts.headers, body })
}

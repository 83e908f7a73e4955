//! The admin commands' side of the unix socket: one HTTP/1.1 request per call, errors worded for the
//! person at the terminal (which socket, what went wrong, what to check).

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::UnixStream;

pub struct AdminClient {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    pub fn new(socket: PathBuf) -> Result<AdminClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start: {e}"))?;
        Ok(AdminClient { socket, runtime })
    }

    pub fn get(&self, path: &str) -> Result<Value, String> {
        self.call(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.call(Method::POST, path, Some(body.to_string().into_bytes()))
    }

    /// Posts `body` exactly as given.
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value, String> {
        self.call(Method::POST, path, Some(body))
    }

    /// The answer's JSON text as the relay sent it, for documents that embed stored bytes (`event`).
    pub fn get_text(&self, path: &str) -> Result<String, String> {
        let (status, bytes) = self.runtime.block_on(self.exchange(Method::GET, path, None))?;
        if status.is_success() {
            return String::from_utf8(bytes.to_vec())
                .map_err(|_| "the relay answered text that is not UTF-8".to_owned());
        }
        Err(error_message(status, &bytes))
    }

    /// Sends one request; a non-2xx answer becomes its error message.
    fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Value, String> {
        let (status, bytes) = self.runtime.block_on(self.exchange(method, path, body))?;
        if status.is_success() {
            return Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
        }
        Err(error_message(status, &bytes))
    }

    async fn exchange(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(StatusCode, Bytes), String> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|error| connect_error(&self.socket, &error))?;
        let lost =
            |error: hyper::Error| format!("the connection to the relay at {} failed: {error}", self.socket.display());
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(lost)?;
        tokio::spawn(connection);
        let payload = body.map(Bytes::from).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(payload))
            .map_err(|error| format!("cannot make a request for {path:?}: {error}"))?;
        let response = sender.send_request(request).await.map_err(lost)?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(lost)?.to_bytes();
        Ok((status, bytes))
    }
}

/// A refusal in words: the admin API's `error.message`, else the status.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let document: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = document["error"]["message"].as_str().map(str::to_owned);
    message.unwrap_or_else(|| format!("the relay answered {status}"))
}

fn connect_error(socket: &Path, error: &io::Error) -> String {
    let hint = match error.kind() {
        io::ErrorKind::NotFound => " (is hookrelay running? is this the config it runs with?)",
        io::ErrorKind::ConnectionRefused => " (is hookrelay running? the socket file may be left over from a crash)",
        io::ErrorKind::PermissionDenied => " (run as a user in the socket's group, or as the hookrelay user)",
        _ => "",
    };
    format!("cannot connect to the relay at {}: {error}{hint}", socket.display())
}

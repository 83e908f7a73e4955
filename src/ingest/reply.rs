//! JSON answers of the ingest API, errors included: `{"error": {"code": "...", "message": "..."}}`.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

pub type Reply = Response<Full<Bytes>>;

/// Seconds a producer is asked to wait after a 503.
pub const RETRY_AFTER_SECONDS: u32 = 5;

pub fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    json_text(status, body.to_string())
}

/// An answer whose JSON text is already made (one that embeds stored bytes as they are).
pub fn json_text(status: StatusCode, body: String) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
    let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
    let mut response = json(status, &body);
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        StatusCode::UNAUTHORIZED => {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    response
}

pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut response =
        error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("this path accepts {allow} only"));
    response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

pub fn not_found() -> Reply {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

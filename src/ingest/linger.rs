//! Reading a request body within a size limit, and lingering close (SPEC §4): when the relay answers
//! before it has read the whole body (413, 401, 415, ...), it first reads and discards the rest, within
//! bounds, so that a client that sends its whole body before reading the answer (Python `http.client`,
//! `requests`, many others) reads the status instead of a broken pipe or a reset — as nginx does.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::EXPECT;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// At most this much of an unwanted body is read and thrown away...
const LINGER_BYTES: u64 = 64 * 1024 * 1024;
/// ...for at most this long; past either the connection is closed (the answer is still sent first).
const LINGER_TIME: Duration = Duration::from_secs(10);

/// What reading a body within its limit came to.
pub enum Body {
    Complete(Bytes),
    /// The body passed the limit; the rest of it is unread (see [`discard`]).
    TooLarge(Incoming),
    /// The connection broke or the body was malformed.
    Broken,
}

/// Reads `body` whole, unless it grows past `limit` bytes.
pub async fn read_limited(mut body: Incoming, limit: usize) -> Body {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Body::Broken };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Body::TooLarge(body);
            }
            collected.extend_from_slice(&data);
        }
    }
    Body::Complete(collected.freeze())
}

/// Reads and discards what is left of a body that will not be used, within [`LINGER_BYTES`] and
/// [`LINGER_TIME`]. A client that asked `Expect: 100-continue` has not sent the body and will not once
/// it reads the early answer, so nothing is read then, unless reading had begun (`begun`: hyper then
/// sent the 100 and the body is on its way). Returns whether the body was read to its end (if not, the
/// connection should close after the answer).
pub async fn discard(headers: &HeaderMap, mut body: Incoming, begun: bool) -> bool {
    if !begun && headers.get(EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        return false;
    }
    let reading = async {
        let mut read: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Ok(data) = frame.into_data() {
                read += data.len() as u64;
                if read > LINGER_BYTES {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(LINGER_TIME, reading).await.unwrap_or(false)
}

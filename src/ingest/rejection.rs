//! Why an ingest request is refused (SPEC §4): its status, and the reason that is both the answer's
//! `error.code` and the `reason` label of `hookrelay_events_rejected_total`. One list, so that every reason
//! has its series from start.

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The TCP listener requires a bearer token, and the request's is missing or wrong.
    Unauthorized,
    /// The body is not declared `application/json`.
    UnsupportedMediaType,
    /// The body is over `max_body_bytes`.
    PayloadTooLarge,
    /// The body could not be read to its end.
    BadRequest,
    /// The body did not arrive within the client timeout.
    RequestTimeout,
    /// Bad JSON, or a bad or missing field.
    InvalidEvent,
    /// An id already accepted with a different body.
    Conflict,
    /// `max_pending` reached.
    BacklogFull,
    /// The store cannot write.
    StoreUnavailable,
}

impl Rejection {
    /// Every rejection; keep it in step with the enum.
    pub const ALL: [Rejection; 9] = [
        Rejection::Unauthorized,
        Rejection::UnsupportedMediaType,
        Rejection::PayloadTooLarge,
        Rejection::BadRequest,
        Rejection::RequestTimeout,
        Rejection::InvalidEvent,
        Rejection::Conflict,
        Rejection::BacklogFull,
        Rejection::StoreUnavailable,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::BadRequest | Rejection::InvalidEvent => StatusCode::BAD_REQUEST,
            Rejection::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Rejection::Conflict => StatusCode::CONFLICT,
            Rejection::BacklogFull | Rejection::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer's `error.code` and the metric's `reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Unauthorized => "unauthorized",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::BadRequest => "bad_request",
            Rejection::RequestTimeout => "request_timeout",
            Rejection::InvalidEvent => "invalid_event",
            Rejection::Conflict => "conflict",
            Rejection::BacklogFull => "backlog_full",
            Rejection::StoreUnavailable => "store_unavailable",
        }
    }

    /// The reasons of [`Rejection::ALL`].
    pub fn reasons() -> [&'static str; 9] {
        Rejection::ALL.map(Rejection::reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_has_its_own_reason_and_an_error_status() {
        let mut reasons = Rejection::reasons().to_vec();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), Rejection::ALL.len(), "{reasons:?}");
        for rejection in Rejection::ALL {
            assert!(rejection.status().is_client_error() || rejection.status().is_server_error(), "{rejection:?}");
            assert!(rejection.reason().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{rejection:?}");
        }
    }

    /// A new variant does not compile here until it is given a place: the reminder to add it to `ALL`.
    /// The test checks that every place in `ALL` holds its own variant.
    fn place_in_all(rejection: Rejection) -> usize {
        match rejection {
            Rejection::Unauthorized => 0,
            Rejection::UnsupportedMediaType => 1,
            Rejection::PayloadTooLarge => 2,
            Rejection::BadRequest => 3,
            Rejection::RequestTimeout => 4,
            Rejection::InvalidEvent => 5,
            Rejection::Conflict => 6,
            Rejection::BacklogFull => 7,
            Rejection::StoreUnavailable => 8,
        }
    }

    #[test]
    fn all_lists_every_rejection() {
        for rejection in Rejection::ALL {
            assert_eq!(Rejection::ALL[place_in_all(rejection)], rejection);
        }
        let highest = Rejection::ALL.iter().map(|&r| place_in_all(r)).max();
        assert_eq!(highest, Some(Rejection::ALL.len() - 1));
    }
}

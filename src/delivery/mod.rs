//! Getting deliveries to subscribers: per-subscription workers ([`worker`]), the request they send
//! ([`request`], [`sign`]), the HTTPS client ([`client`]) and the retry decision ([`backoff`]).

pub mod backoff;
pub mod client;
pub mod request;
pub mod requeue;
pub mod sign;
pub mod worker;

pub use requeue::NotRequeued;
pub use worker::Dispatcher;

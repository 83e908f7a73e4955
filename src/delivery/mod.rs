//! Getting deliveries to subscribers: per-subscription workers ([`worker`]), the request they send
//! ([`request`], [`sign`]), the HTTPS client ([`client`]) and the retry decision ([`backoff`]).

pub mod backoff;
pub mod client;
mod connection_cap;
pub mod failure_log;
pub mod request;
pub mod sign;
pub mod worker;

pub use worker::Dispatcher;

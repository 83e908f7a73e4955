//! Getting deliveries to subscribers: per-subscription workers ([`worker`]), the request they send
//! ([`request`], [`sign`]), the HTTPS client ([`client`]) and its way out ([`route`]: direct or through a proxy) and the retry decision ([`backoff`]).

pub mod backoff;
pub mod client;
mod connection_cap;
pub mod failure_log;
pub mod request;
mod route;
pub mod sign;
mod tls_hint;
pub use tls_hint::warn_about_missing_ca_files;
pub mod worker;

pub use worker::Dispatcher;

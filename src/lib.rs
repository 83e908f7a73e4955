//! hookrelay: a durable webhook relay for clinic software.
//!
//! # Layout
//! ```text
//! clinic app ──HTTP/unix──▶ ingest ──▶ router ──▶ store (sled, group commit + fdatasync) ──202──▶ clinic app
//!                                                   │
//!            reload (notify + SIGHUP) ──▶ config (ArcSwap) ◀── every stage reads the current one
//!                                                   ▼
//!                      scheduler (in-memory due-time queues, rebuilt from the store at start)
//!                                                   ▼
//!                 dispatch (per-subscription workers) ──▶ request (body + signature) ──▶ HTTPS client
//!                                                   ▼
//!                         attempt recorded in store ──▶ delivered | retry at T | failed
//! ```
//! - [`config`]: TOML → validated [`config::Config`]; every problem reported with line and column.
//! - [`secret`]: the redacted [`secret::Secret`] type.
//! - [`router`]: event type → subscription names (one `GlobSet`).
//! - [`event`]: the ingest API's event objects: parsing, validation, compact JSON.
//! - [`ingest`]: the HTTP/1.1 server on the unix socket and TCP listener.
//! - [`store`]: the sled database, its key layout and invariants, and the group-commit flusher.
//! - [`scheduler`]: which deliveries are due, per subscription.
//! - [`delivery`]: workers, the outgoing request, signing, the HTTPS client, retry decisions.
//! - [`reload`]: watches the config file (and SIGHUP), validates, swaps, cancels removed subscriptions' work.
//! - [`admin`]: the unix-socket-only admin API (list, inspect, requeue).
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`retention`]: the background purge of finished records.
//! - [`relay`]: wires the parts together and runs until shutdown.

pub mod admin;
pub mod backlog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod event;
pub mod ingest;
pub mod json;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod relay;
pub mod reload;
pub mod retention;
pub mod router;
pub mod scheduler;
pub mod secret;
pub mod shutdown;
pub mod store;
pub mod str_map;
pub mod systemd;

/// `hookrelay/<version>`, the default `user-agent` of deliveries.
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));

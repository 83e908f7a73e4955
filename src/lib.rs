//! hookrelay: a durable webhook relay for clinic software.
//!
//! # Layout
//! ```text
//! clinic app ──HTTP/unix──▶ ingest ──▶ router ──▶ lifecycle: create ──▶ store (group commit + fdatasync) ──202──▶
//!                                                   │
//!            reload (notify + SIGHUP) ──▶ config (ArcSwap) ◀── every stage reads the current one
//!                                                   ▼
//!    ingest ─┐ workers ─┐ reload ─┐ admin ─┐ retention ─┐ recovery ─┐
//!            ▼          ▼         ▼        ▼            ▼            ▼
//!                lifecycle (the only writer of delivery state; transitions on the commit thread)
//!                   ├─ store (every transition durable before it returns)
//!                   ├─ scheduler (each delivery queued or in flight at most once)
//!                   └─ backlog + metrics (updated in the same follow-up)
//!                                                   ▼
//!                 dispatch (per-subscription workers) ──▶ request (body + signature) ──▶ HTTPS client
//! ```
//! - [`config`]: TOML → validated [`config::Config`]; every problem reported with line and column.
//! - [`secret`]: the redacted [`secret::Secret`] type.
//! - [`router`]: event type → subscription names (one `GlobSet`).
//! - [`event`]: the ingest API's event objects: parsing, validation, compact JSON.
//! - [`json`]: compacting JSON text byte for byte.
//! - [`redact`]: JSON pointers removed from an event's data for one subscription, on the text.
//! - [`order_key`]: the keyed hash deliveries with the same `order_key` value share.
//! - [`ingest`]: the HTTP/1.1 server on the unix socket and TCP listener, lingering close.
//! - [`lifecycle`]: the owner of every delivery's state: create, attempt result, requeue, resend,
//!   cancel, erase, purge, quarantine, recovery, and subscriptions' pauses.
//! - [`store`]: the sled database, its key layout and invariants, the group-commit thread and its
//!   transitions.
//! - [`scheduler`]: which deliveries are due, per subscription.
//! - [`backlog`]: the count of unfinished deliveries behind `max_pending`.
//! - [`delivery`]: workers (which obey the lifecycle owner's pauses, probe, and pace `rate_limit`), the outgoing request, signing, the HTTPS
//!   client and its route (direct or through a proxy), retry delays.
//! - [`reload`]: watches the config file (and SIGHUP), validates, swaps.
//! - [`admin`]: the unix-socket-only admin API.
//! - [`cli`]: the command line and the admin commands' client.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`, served as classic Prometheus text or
//!   OpenMetrics as the scraper asks.
//! - [`retention`]: the timer of the retention purge.
//! - [`relay`]: wires the parts together and runs until shutdown.
//! - [`shutdown`], [`systemd`], [`logging`], [`clock`], [`str_map`], [`limits`]: signals and grace,
//!   sd_notify and the watchdog, tracing set-up, wall-clock helpers, a map helper, the open-file limit.

pub mod admin;
pub mod backlog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod env_duration;
pub mod event;
pub mod ingest;
pub mod json;
pub mod lifecycle;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod order_key;
pub mod receive;
pub mod redact;
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
pub mod terminal;

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit this build is from (12 hex digits), `unknown` outside a checkout; see `build.rs`.
pub const COMMIT: &str = env!("HOOKRELAY_COMMIT");

/// What `hookrelay --version` prints after the name: the version and the commit.
pub const VERSION_AND_COMMIT: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HOOKRELAY_COMMIT"), ")");

/// `hookrelay/<version>`, the default `user-agent` of deliveries.
pub const USER_AGENT: &str = concat!("hookrelay/", env!("CARGO_PKG_VERSION"));

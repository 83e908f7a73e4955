//! Log output for journald and terminals: one line per event on stderr, `text` or `json`.
//!
//! `RUST_LOG`, when set, replaces the configured level so an operator can turn on `debug` for one module
//! without editing the file.
//!
//! sled reports a repair it makes while opening a damaged database (zeroing a torn segment) at DEBUG,
//! through the `log` crate; SPEC §7 wants every repair at WARN or above. [`SledRepairs`] re-logs those at
//! WARN, and [`while_opening_the_store`] lets sled's DEBUG records through only while the store opens,
//! since sled logs at DEBUG on hot paths too.

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, before the runtime starts.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.level));
    let usual = filter.max_level_hint().and_then(|level| level.into_level()).map_or(log::LevelFilter::Off, as_log);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false);
    let repairs = SledRepairs.with_filter(Targets::new().with_target("sled", Level::DEBUG));
    let registry = tracing_subscriber::registry().with(repairs);
    let installed = match settings.format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(fmt.with_ansi(ansi).with_filter(filter)).try_init()
        }
        LogFormat::Json => registry.with(fmt.json().flatten_event(true).with_filter(filter)).try_init(),
    };
    if installed.is_ok() {
        log::set_max_level(usual);
    }
}

/// Runs `open` with sled's DEBUG records let through (see the module doc).
pub fn while_opening_the_store<T>(open: impl FnOnce() -> T) -> T {
    let usual = log::max_level();
    log::set_max_level(usual.max(log::LevelFilter::Debug));
    let opened = open();
    log::set_max_level(usual);
    opened
}

fn as_log(level: Level) -> log::LevelFilter {
    match level {
        Level::ERROR => log::LevelFilter::Error,
        Level::WARN => log::LevelFilter::Warn,
        Level::INFO => log::LevelFilter::Info,
        Level::DEBUG => log::LevelFilter::Debug,
        Level::TRACE => log::LevelFilter::Trace,
    }
}

/// Re-logs sled's repair messages at WARN.
struct SledRepairs;

impl<S: Subscriber> Layer<S> for SledRepairs {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        if message.0.starts_with("zeroing torn segment") {
            tracing::warn!(
                repair = %message.0,
                "sled repaired the database while opening it (a torn write, as after a crash or a damaged disk)."
            );
        }
    }
}

#[derive(Default)]
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

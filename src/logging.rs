//! Log output for journald and terminals: one line per event on stderr, `text` or `json`.
//!
//! `RUST_LOG`, when set, replaces the configured level so an operator can turn on `debug` for one module
//! without editing the file.
//!
//! sled reports a repair it makes while opening a damaged database (zeroing a torn segment) at DEBUG,
//! through the `log` crate; SPEC §7 wants every repair at WARN or above. [`LogBridge`], the `log` crate's
//! logger, re-logs those at WARN before anything filters them, and [`while_opening_the_store`] lets
//! sled's DEBUG records reach it only while the store opens, since sled logs at DEBUG on hot paths too.
//! (A tracing layer for them saw nothing when the configured level was `info`: tracing's own level
//! filter drops `log` records below the subscriber's most verbose level first.)

use tracing_log::AsLog;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Call once, before the runtime starts.
pub fn init(settings: &LogSettings) {
    let from_env = std::env::var("RUST_LOG").ok().and_then(|d| EnvFilter::try_new(&d).ok().map(|filter| (d, filter)));
    let (directives, filter) = from_env.unwrap_or_else(|| (settings.level.clone(), EnvFilter::new(&settings.level)));
    let usual = filter.max_level_hint().map_or(log::LevelFilter::Off, |level| level.as_log());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false);
    let registry = tracing_subscriber::registry();
    let installed = match settings.format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            tracing::subscriber::set_global_default(registry.with(fmt.with_ansi(ansi).with_filter(filter)))
        }
        LogFormat::Json => {
            tracing::subscriber::set_global_default(registry.with(fmt.json().flatten_event(true).with_filter(filter)))
        }
    };
    if installed.is_ok()
        && log::set_boxed_logger(Box::new(LogBridge {
            tracer: tracing_log::LogTracer::new(),
            watcher_trace: names_notify(&directives),
        }))
        .is_ok()
    {
        log::set_max_level(usual);
    }
}

/// Whether the directives name notify's own target (`notify`, `notify::inotify`), not just a word that
/// contains it (`sd_notify`, one of the relay's dependencies).
fn names_notify(directives: &str) -> bool {
    directives.split(',').filter_map(|directive| directive.split(['=', '[']).next()).any(|t| is_notify(t.trim()))
}

/// notify's own log target or one of its modules'.
fn is_notify(target: &str) -> bool {
    target == "notify" || target.starts_with("notify::")
}

/// Runs `open` with sled's DEBUG records let through (see the module doc).
pub fn while_opening_the_store<T>(open: impl FnOnce() -> T) -> T {
    let usual = log::max_level();
    log::set_max_level(usual.max(log::LevelFilter::Debug));
    let opened = open();
    log::set_max_level(usual);
    opened
}

/// The `log` crate's logger: records of crates that log through `log` (sled, rustls, notify) go on to
/// tracing; sled's repair messages are re-logged at WARN first.
///
/// notify's TRACE records are dropped unless the directives name notify: it logs every file event in a
/// watched directory (`inotify event: ...`) before the config watcher picks out the config file's by name,
/// so with `RUST_LOG=trace` and the log written to a file in the config's directory each line logged was a
/// file event that was logged (252,078 lines in 3 s).
struct LogBridge {
    tracer: tracing_log::LogTracer,
    /// Whether notify's TRACE records are wanted (someone debugging the watcher named it).
    watcher_trace: bool,
}

impl LogBridge {
    fn is_watcher_echo(&self, metadata: &log::Metadata<'_>) -> bool {
        !self.watcher_trace && metadata.level() == log::Level::Trace && is_notify(metadata.target())
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        if self.is_watcher_echo(metadata) {
            return false;
        }
        metadata.target().starts_with("sled") || self.tracer.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        // Only the modules of sled's recovery are read: sled logs at DEBUG on every flush too.
        if record.module_path().is_some_and(|module| module.starts_with("sled::pagecache")) {
            let message = record.args().to_string();
            // sled 0.34's words when it cuts its log short at a torn batch and zeroes a torn segment. (It
            // also zeroes "the end of the recovered segment" at every start: that is routine.)
            if message.contains("torn") {
                tracing::warn!(
                    repair = %message,
                    "sled repaired the database while opening it (a torn write, as after a crash or a damaged disk)."
                );
            }
        }
        if !self.is_watcher_echo(record.metadata()) && self.tracer.enabled(record.metadata()) {
            self.tracer.log(record);
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::names_notify;

    #[test]
    fn only_notify_s_own_target_turns_its_trace_lines_back_on() {
        assert!(names_notify("trace,notify=trace"));
        assert!(names_notify("info,notify::inotify=trace"));
        assert!(names_notify("info, notify[watch]=trace"));
        assert!(names_notify("notify"));
        assert!(!names_notify("trace"));
        assert!(!names_notify("trace,sd_notify=warn"));
        assert!(!names_notify("trace,hookrelay::notifier=debug"));
    }
}

//! The `hookrelay` command: parse the command line and map the outcome to an exit code (0 success,
//! 1 failure, 2 usage error, which clap exits with on its own).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use hookrelay::cli::{execute, Cli, Command};
use hookrelay::config::Config;
use hookrelay::shutdown::Shutdown;

/// glibc's allocator took about a third of the relay's CPU under load (arena locks, and consolidating the
/// buffers that ingest tasks allocate and the commit thread frees); jemalloc cut that to a few percent
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main`. Each arena and each thread's cache keeps freed memory for
/// reuse; with the defaults (four arenas per core, thread caches for objects up to 32 KiB) the relay went
/// past its memory budget (64 MiB during the end-to-end benchmark). Two arenas, and thread caches for
/// objects up to 4 KiB, took about 10 MiB off that peak for no measurable speed (BENCHMARKS.md).
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: JemallocOptions = JemallocOptions(c"narenas:2,tcache_max:4096".as_ptr());

/// jemalloc reads its options through a `const char *`: a thin pointer, which a `&CStr` is not.
#[repr(transparent)]
struct JemallocOptions(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, immutable for the life of the process.
unsafe impl Sync for JemallocOptions {}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => {
            run(&args.config.config, hookrelay::relay::Options { accept_damaged_store: args.accept_damaged_store })
        }
        other => execute(other),
    }
}

/// How long the exit waits for leftover blocking work (see [`run`]); a store call finishes far sooner.
const LEFTOVER_BLOCKING_WORK: std::time::Duration = std::time::Duration::from_millis(200);

fn run(path: &Path, options: hookrelay::relay::Options) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("hookrelay: not started: the config file has problems");
            return ExitCode::FAILURE;
        }
    };
    hookrelay::logging::init(&config.log);
    ignore_file_size_signal();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "Cannot start the async runtime.");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let shutdown = Shutdown::default();
        shutdown.on_signals()?;
        hookrelay::relay::run(config, shutdown, options).await
    });
    // Everything the relay owes is done and flushed by now. What can still run on the blocking pool is work
    // nobody waits for: a name lookup (getaddrinfo) of an attempt that timed out or was abandoned, which
    // can block for the resolver's whole timeout. Dropping the runtime would wait for it.
    runtime.shutdown_timeout(LEFTOVER_BLOCKING_WORK);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "The relay stopped on an error.");
            ExitCode::FAILURE
        }
    }
}

/// Past a file-size limit (`LimitFSIZE=`, `ulimit -f`) the kernel sends SIGXFSZ, which would kill the relay
/// mid-write with a core dump. Ignored, the write fails with EFBIG instead: the store reports the error,
/// ingest answers 503, and the event is not acknowledged, as on a full disk.
fn ignore_file_size_signal() {
    // SAFETY: called before the runtime starts any thread; SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

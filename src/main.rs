//! The `hookrelay` command: parse the command line and map the outcome to an exit code (0 success,
//! 1 failure, 2 usage error, which clap exits with on its own).

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;

use hookrelay::cli::{execute, Cli, Command};
use hookrelay::config::Config;
use hookrelay::shutdown::Shutdown;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(&args.config),
        other => execute(other),
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("hookrelay: not started: the config file has problems");
            return ExitCode::FAILURE;
        }
    };
    hookrelay::logging::init(&config.log);
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
        hookrelay::relay::run(config, shutdown).await
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "The relay stopped on an error.");
            ExitCode::FAILURE
        }
    }
}

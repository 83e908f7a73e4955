//! The `hookrelay` command: parse the command line, load the config, and map the outcome to an exit code
//! (0 success, 1 failure, 2 usage error; clap exits 2 on its own).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine;
use clap::{Parser, Subcommand};
use rand::RngCore;

use hookrelay::config::{Config, DEFAULT_CONFIG_PATH};
use hookrelay::shutdown::Shutdown;

#[derive(Parser)]
#[command(name = "hookrelay", version, about = "A durable webhook relay for clinic software.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run(ConfigArg),
    /// Validate the config file; print every problem as FILE:LINE:COL: message.
    Check(ConfigArg),
    /// Print a new random signing secret (whsec_<base64 of 32 bytes>).
    Secret,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The config file.
    #[arg(short = 'c', long = "config", env = "HOOKRELAY_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(&args.config),
        Command::Check(args) => check(&args.config),
        Command::Secret => {
            println!("{}", new_secret());
            ExitCode::SUCCESS
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            println!("{}: ok ({} subscriptions)", config.file.display(), config.subscriptions.len());
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            println!("{diagnostics}");
            ExitCode::FAILURE
        }
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

/// 32 bytes from the OS's CSPRNG, in the Standard Webhooks secret format.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(key))
}

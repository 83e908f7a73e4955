//! Project tasks that need the product's own definitions, run with `cargo xtask <task>`:
//! - `dist`: the man pages (one per command, generated from the command line's definition with
//!   clap_mangen, and hookrelay.toml(5) from `docs/configuration.md`) and the bash, zsh and fish
//!   completions (clap_complete), into `target/dist`. Generated at every package build, never checked in.
//! - `deb`: `dist`, then `cargo deb`, which builds the release binary and `target/debian/*.deb`
//!   (metadata in the root `Cargo.toml`).

mod config_page;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask lives in the repository")?;
    match std::env::args().nth(1).as_deref() {
        Some("dist") => dist(root),
        Some("deb") => {
            dist(root)?;
            // The release profile keeps debug info for profiling; the package gets a stripped binary.
            let status = Command::new("cargo").args(["deb", "--locked", "--strip"]).current_dir(root).status()?;
            if !status.success() {
                bail!("cargo deb failed ({status}); install it with `cargo install cargo-deb --locked`");
            }
            Ok(())
        }
        _ => bail!("usage: cargo xtask dist | deb"),
    }
}

fn dist(root: &Path) -> anyhow::Result<()> {
    let out = root.join("target/dist");
    let (man1, man5, completions) = (out.join("man/man1"), out.join("man/man5"), out.join("completions"));
    for dir in [&man1, &man5, &completions] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let command = hookrelay::cli::Cli::command();
    write_man(&man1.join("hookrelay.1"), command.clone())?;
    for sub in command.get_subcommands() {
        // clap names commands with &'static str; this process ends in a moment.
        let name: &'static str = Box::leak(format!("hookrelay-{}", sub.get_name()).into_boxed_str());
        let page = sub.clone().name(name).version(hookrelay::VERSION);
        write_man(&man1.join(format!("{name}.1")), page)?;
    }
    let reference = std::fs::read_to_string(root.join("docs/configuration.md"))?;
    std::fs::write(man5.join("hookrelay.toml.5"), config_page::render(&reference, hookrelay::VERSION))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "hookrelay", &completions)?;
    }
    println!("man pages and completions in {}", out.display());
    Ok(())
}

/// One man page, with a FILES and SEE ALSO section after what clap_mangen makes of the command.
fn write_man(path: &PathBuf, command: clap::Command) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    page.extend_from_slice(
        b".SH FILES\n.TP\n/etc/hookrelay/relay.toml\nThe configuration (hookrelay.toml(5)); \\fB\\-c\\fR or HOOKRELAY_CONFIG \
          name another.\n.TP\n/var/lib/hookrelay\nThe store of the packaged service.\n.TP\n/run/hookrelay/relay.sock\n\
          The unix socket of the packaged service: events, and the admin commands.\n\
          .SH SEE ALSO\nhookrelay.toml(5), systemctl(1), journalctl(1); /usr/share/doc/hookrelay/\n",
    );
    std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))
}

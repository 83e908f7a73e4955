//! Records the git commit the binary is built from, for `hookrelay --version` and
//! `hookrelay_build_info{commit}`. Outside a git checkout (a source tarball, a crate) it is `unknown`;
//! `HOOKRELAY_COMMIT` in the build's environment overrides both (packagers building from an export).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOOKRELAY_COMMIT");
    let given = std::env::var("HOOKRELAY_COMMIT").ok().filter(|c| !c.is_empty());
    // Whether the commit was given rather than read from git (tests/cli.rs compares it with HEAD only then).
    println!("cargo:rustc-env=HOOKRELAY_COMMIT_GIVEN={}", given.is_some());
    let commit = given.unwrap_or_else(git_commit);
    println!("cargo:rustc-env=HOOKRELAY_COMMIT={commit}");
}

fn git_commit() -> String {
    // Rebuild when HEAD moves (a commit, a checkout). Only paths that exist are named: cargo counts a
    // missing one as changed, which would rebuild the crate at every build.
    let mut watched = Vec::new();
    if let Ok(dir) = git(&["rev-parse", "--git-dir"]) {
        watched.push(format!("{dir}/HEAD"));
    }
    if let Ok(common) = git(&["rev-parse", "--git-common-dir"]) {
        // The branch's ref file while it is loose (`symbolic-ref` also names a branch with no commit yet;
        // a detached HEAD has none); once git packs refs, the packed file, and the refs directory, where a
        // commit on a packed branch writes the loose file anew.
        if let Ok(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watched.push(format!("{common}/{branch}"));
        }
        watched.push(format!("{common}/packed-refs"));
        watched.push(format!("{common}/refs/heads"));
    }
    for path in watched.iter().filter(|path| std::path::Path::new(path).exists()) {
        println!("cargo:rerun-if-changed={path}");
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|()| "unknown".to_owned())
}

fn git(args: &[&str]) -> Result<String, ()> {
    let output = Command::new("git").args(args).output().map_err(|_| ())?;
    if !output.status.success() {
        return Err(());
    }
    String::from_utf8(output.stdout).map(|s| s.trim().to_owned()).map_err(|_| ())
}

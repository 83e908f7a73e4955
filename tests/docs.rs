//! The documents a clone, a package and a user have: every relative link in the repository's Markdown
//! resolves to a file or directory in the repository, and the Debian changelog names the crate's version.

use std::path::{Path, PathBuf};

/// Every `*.md` under `dir`, except build output and dependencies.
fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                markdown_files(&path, found);
            }
        } else if name.ends_with(".md") {
            found.push(path);
        }
    }
}

/// The targets of `[text](target)` links, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

#[test]
fn every_relative_link_in_the_markdown_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("docs/configuration.md")), "{files:?}");
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in link_targets(&text) {
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            let inside = resolved.canonicalize().is_ok_and(|real| real.starts_with(root.canonicalize().unwrap()));
            if !inside {
                broken.push(format!("{}: {target}", file.strip_prefix(root).unwrap().display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing, or to outside the repository:\n{}", broken.join("\n"));
}

#[test]
fn the_debian_changelog_names_this_version() {
    let changelog =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/debian/changelog")).unwrap();
    let first = changelog.lines().next().unwrap();
    let expected = format!("hookrelay ({}-", env!("CARGO_PKG_VERSION"));
    assert!(first.starts_with(&expected), "packaging/debian/changelog starts `{first}`, not `{expected}…`");
}

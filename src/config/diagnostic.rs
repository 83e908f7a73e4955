//! Config problems with their position, printed as `FILE:LINE:COL: message` like a compiler would.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no position in the file (e.g. the file cannot be read).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
        }
    }
}

/// Every problem found in one config file. Loading never stops at the first one, so an operator fixes
/// the file in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one source text and turns byte spans into line and column.
pub struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    found: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Reporter { file, text, found: Vec::new(), warnings: Vec::new() }
    }

    /// Records a problem at the start of `span` (or without a position when there is none).
    pub fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let diagnostic = self.at(span, message.into());
        self.found.push(diagnostic);
    }

    /// Records a setting that is valid but likely a mistake (`FILE:LINE:COL: warning: ...`); it does not
    /// make the file invalid.
    pub fn warn(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let diagnostic = self.at(span, format!("warning: {}", message.into()));
        self.warnings.push(diagnostic);
    }

    fn at(&self, span: Option<Range<usize>>, message: String) -> Diagnostic {
        let (line, column) = match span {
            Some(span) => line_and_column(self.text, span.start),
            None => (0, 0),
        };
        Diagnostic { file: self.file.to_path_buf(), line, column, message }
    }

    /// The 1-based line of a byte offset, for a message that names a second place ("first defined at
    /// line 3").
    pub fn line_of(&self, offset: usize) -> usize {
        line_and_column(self.text, offset).0
    }

    pub fn has_errors(&self) -> bool {
        !self.found.is_empty()
    }

    /// The warnings of a valid file, or every error of an invalid one.
    pub fn finish(mut self) -> Result<Vec<Diagnostic>, Diagnostics> {
        if self.found.is_empty() {
            self.warnings.sort_by_key(|d| (d.line, d.column));
            return Ok(self.warnings);
        }
        self.found.sort_by_key(|d| (d.line, d.column));
        Err(Diagnostics(self.found))
    }
}

/// 1-based line and character column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters: the value starts at column 6.
        assert_eq!(line_and_column(text, 12), (2, 6));
    }

    #[test]
    fn diagnostics_print_like_a_compiler() {
        let mut reporter = Reporter::new(Path::new("relay.toml"), "x\ny = 2\n");
        reporter.error(Some(2..3), "unknown key `y`");
        let printed = reporter.finish().unwrap_err().to_string();
        assert_eq!(printed, "relay.toml:2:1: unknown key `y`");
    }
}

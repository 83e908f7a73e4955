//! hookrelay.toml(5), rendered from `docs/configuration.md` so that the man page and the reference in the
//! repository say the same thing. The reference keeps to a small part of Markdown, which this renders:
//! `#` to `###` headings, paragraphs, `-` lists, fenced code, tables of `| key | type | default | meaning |`,
//! and inline `code`, **bold** and [links](target).

/// The roff text of the man page.
pub fn render(markdown: &str, version: &str) -> String {
    let mut out = format!(
        ".TH HOOKRELAY.TOML 5 \"\" \"hookrelay {version}\" \"File Formats\"\n\
         .SH NAME\nhookrelay.toml \\- the configuration file of hookrelay\n\
         .SH SYNOPSIS\n/etc/hookrelay/relay.toml\n"
    );
    let mut in_code = false;
    let mut table_row = 0;
    for line in markdown.lines() {
        if line.starts_with("```") {
            out.push_str(if in_code { ".fi\n" } else { ".PP\n.nf\n" });
            in_code = !in_code;
            continue;
        }
        if in_code {
            out.push_str(&escape_line(line));
            out.push('\n');
            continue;
        }
        if let Some(row) = line.strip_prefix('|') {
            table_row += 1;
            // The header row and the |---| row.
            if table_row > 2 {
                let cells: Vec<&str> = row.trim_end_matches('|').split('|').map(str::trim).collect();
                if let [key, kind, default, meaning, ..] = cells.as_slice() {
                    out.push_str(&format!(
                        ".TP\n{} ({}; default: {})\n{}\n",
                        inline(key),
                        inline(kind),
                        inline(default),
                        inline(meaning)
                    ));
                }
            }
            continue;
        }
        table_row = 0;
        if line.starts_with("# ") {
            continue;
        } else if let Some(heading) = line.strip_prefix("## ") {
            out.push_str(&format!(".SH {}\n", inline(&heading.to_uppercase())));
        } else if let Some(heading) = line.strip_prefix("### ") {
            out.push_str(&format!(".SS {}\n", inline(heading)));
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", inline(item)));
        } else if line.trim().is_empty() {
            out.push_str(".PP\n");
        } else {
            out.push_str(&inline(line.trim_start()));
            out.push('\n');
        }
    }
    out
}

/// Inline Markdown to roff: `code` and **bold** in bold, [text](target) as its text.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                out.push_str(&format!("\\fB{}\\fR", escape(&after[..end])));
                rest = &after[end + 2..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                out.push_str(&format!("\\fB{}\\fR", escape(&after[..end])));
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix('[') {
            if let Some((label, tail)) = after.split_once("](") {
                if let Some(end) = tail.find(')') {
                    out.push_str(&inline(label));
                    rest = &tail[end + 1..];
                    continue;
                }
            }
        }
        out.push_str(&escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    escape_line_start(out)
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

fn escape_line(line: &str) -> String {
    escape_line_start(escape(line))
}

/// A line starting with `.` or `'` would be a roff request.
fn escape_line_start(line: String) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line
    }
}

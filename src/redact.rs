//! `redact` (SPEC §6c): JSON pointers (RFC 6901) removed from an event's `data` for one subscription.
//!
//! The data is the producer's compact JSON, sent byte for byte; receivers verify signatures over it, and
//! some re-serialize what they parsed. So redaction works on the text, like [`crate::json::compact`]:
//! the containers along a pointer are rebuilt from the byte slices of the members they keep, and nothing
//! else changes. The result depends on the stored data and the subscription's `redact` list alone, so
//! every attempt sends the same bytes (until a reload changes the list: queued deliveries use their
//! subscription's current settings, SPEC §7).
//!
//! An object that holds a key twice has every member of that name removed (and followed): for patient
//! data, the safe reading of an ambiguous document. A pointer that matches nothing removes nothing.

use std::fmt;

use crate::json::string_end;

/// A parsed JSON pointer: `/patient/name`, `/a~1b` (the key `a/b`), `/x~0y` (the key `x~y`), `/items/0`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Parses a pointer to something inside the data; the empty pointer (the whole data) is refused.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(if text.is_empty() {
                "the empty pointer names the whole data; a redact pointer names a field inside it, e.g. /patient/name"
                    .to_owned()
            } else {
                format!("`{text}` is not a JSON pointer: it must start with `/`, e.g. /patient/name")
            });
        };
        let tokens = rest.split('/').map(unescape).collect::<Option<Vec<_>>>().ok_or_else(|| {
            format!("`{text}` is not a JSON pointer: `~` must be followed by 0 (for `~`) or 1 (for `/`)")
        })?;
        Ok(Pointer { text: text.to_owned(), tokens })
    }
}

impl fmt::Debug for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pointer({:?})", self.text)
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

/// `data` (compact, valid JSON) without what `pointers` name, applied in order.
pub fn redact(data: &str, pointers: &[Pointer]) -> String {
    let mut text = data.to_owned();
    for pointer in pointers {
        if let Some(changed) = without(&text, &pointer.tokens) {
            text = changed;
        }
    }
    text
}

/// One member of an object or element of an array, as byte offsets into the container's text.
struct Member {
    start: usize,
    /// Where the member's value starts (after `"key":` in an object).
    value_start: usize,
    end: usize,
    /// The object key, unescaped; `None` in an array.
    key: Option<String>,
}

/// The value `text` with the target of `tokens` removed, or `None` if nothing matched.
fn without(text: &str, tokens: &[String]) -> Option<String> {
    let (token, rest) = tokens.split_first()?;
    let bytes = text.as_bytes();
    let (open, close) = match bytes.first()? {
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => return None,
    };
    let members = members(bytes);
    let index = if open == b'[' { array_index(token) } else { None };
    let mut kept: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(members.len());
    let mut changed = false;
    for (i, member) in members.iter().enumerate() {
        let matches = match &member.key {
            Some(key) => key == token,
            None => index == Some(i),
        };
        let whole = &text[member.start..member.end];
        if !matches {
            kept.push(whole.into());
        } else if rest.is_empty() {
            changed = true;
        } else if let Some(inner) = without(&text[member.value_start..member.end], rest) {
            changed = true;
            kept.push(format!("{}{inner}", &text[member.start..member.value_start]).into());
        } else {
            kept.push(whole.into());
        }
    }
    if !changed {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    out.push(open as char);
    for (i, member) in kept.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(member);
    }
    out.push(close as char);
    Some(out)
}

/// An array index token: digits without a leading zero (RFC 6901); `-` names no element.
fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
    if canonical && !token.is_empty() {
        token.parse().ok()
    } else {
        None
    }
}

/// The members of the object or array that `bytes` (compact JSON) starts with.
fn members(bytes: &[u8]) -> Vec<Member> {
    let mut members = Vec::new();
    let is_object = bytes.first() == Some(&b'{');
    let mut at = 1;
    while at < bytes.len() && !matches!(bytes[at], b'}' | b']') {
        let start = at;
        let mut key = None;
        if is_object {
            let key_end = string_end(bytes, at + 1);
            key = Some(decode_key(&bytes[at..key_end]));
            at = key_end + 1; // past the colon
        }
        let value_start = at;
        let end = value_end(bytes, at);
        members.push(Member { start, value_start, end, key });
        at = end + 1; // past the comma (or onto the closing bracket's successor; the loop stops there)
        if bytes.get(end) != Some(&b',') {
            break;
        }
    }
    members
}

/// An object key's text (with its quotes) as the string it stands for.
fn decode_key(quoted: &[u8]) -> String {
    let text = std::str::from_utf8(quoted).unwrap_or_default();
    if !text.contains('\\') {
        return text.get(1..text.len().saturating_sub(1)).unwrap_or_default().to_owned();
    }
    serde_json::from_str(text).unwrap_or_default()
}

/// The index just past the value that starts at `at`.
fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        Some(b'"') => string_end(bytes, at + 1),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(&byte) = bytes.get(i) {
                match byte {
                    b'"' => {
                        i = string_end(bytes, i + 1);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        _ => {
            let rest = bytes.get(at..).unwrap_or_default();
            at + rest.iter().position(|b| matches!(b, b',' | b'}' | b']')).unwrap_or(rest.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(data: &str, pointers: &[&str]) -> String {
        let pointers: Vec<Pointer> = pointers.iter().map(|p| Pointer::parse(p).unwrap()).collect();
        redact(data, &pointers)
    }

    #[test]
    fn removes_members_and_keeps_every_other_byte() {
        let data = r#"{"zeta":1,"patient":{"name":"Luna \"the\" cat","fp":"p_1","n":500.00},"owner":{"phone":"555"}}"#;
        assert_eq!(
            run(data, &["/patient/name", "/owner/phone"]),
            r#"{"zeta":1,"patient":{"fp":"p_1","n":500.00},"owner":{}}"#
        );
        assert_eq!(
            run(data, &["/zeta"]),
            r#"{"patient":{"name":"Luna \"the\" cat","fp":"p_1","n":500.00},"owner":{"phone":"555"}}"#
        );
        assert_eq!(run(data, &["/owner"]), r#"{"zeta":1,"patient":{"name":"Luna \"the\" cat","fp":"p_1","n":500.00}}"#);
    }

    #[test]
    fn escapes_in_pointers_and_in_keys() {
        let data = r#"{"a/b":1,"x~y":2,"\u0063":3,"keep":4}"#;
        assert_eq!(run(data, &["/a~1b", "/x~0y", "/c"]), r#"{"keep":4}"#);
    }

    #[test]
    fn array_elements_by_index_and_through_arrays() {
        let data = r#"{"items":[{"name":"a","id":1},{"name":"b","id":2}],"n":[1,2,3]}"#;
        assert_eq!(run(data, &["/items/1/name", "/n/0"]), r#"{"items":[{"name":"a","id":1},{"id":2}],"n":[2,3]}"#);
        assert_eq!(run(data, &["/n/01", "/n/-", "/n/9", "/items/x"]), data, "not indexes of these arrays");
    }

    #[test]
    fn a_pointer_that_matches_nothing_changes_nothing() {
        let data = r#"{"a":{"b":[1,"x"]},"s":"/a/b"}"#;
        for pointer in ["/nope", "/a/nope", "/a/b/5", "/s/0", "/a/b/1/deeper"] {
            assert_eq!(run(data, &[pointer]), data, "{pointer}");
        }
        assert_eq!(run("[]", &["/0"]), "[]");
        assert_eq!(run("7", &["/a"]), "7");
    }

    #[test]
    fn a_key_given_twice_is_removed_every_time() {
        assert_eq!(run(r#"{"n":"a","k":1,"n":"b"}"#, &["/n"]), r#"{"k":1}"#);
        assert_eq!(run(r#"{"p":{"n":1},"p":{"n":2,"m":3}}"#, &["/p/n"]), r#"{"p":{},"p":{"m":3}}"#);
    }

    #[test]
    fn brackets_and_commas_inside_strings_are_text() {
        let data = r#"{"a":"},{]","b":["[,]",{"c":"\\"}],"d":1}"#;
        assert_eq!(run(data, &["/b/1/c"]), r#"{"a":"},{]","b":["[,]",{}],"d":1}"#);
        assert_eq!(run(data, &["/a", "/d"]), r#"{"b":["[,]",{"c":"\\"}]}"#);
    }

    #[test]
    fn bad_pointers_are_refused_with_a_reason() {
        for (text, says) in [("", "whole data"), ("patient/name", "start with `/`"), ("/a~2", "~"), ("/a~", "~")] {
            let error = Pointer::parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert!(Pointer::parse("/").is_ok(), "the key \"\"");
        assert_eq!(run(r#"{"":1,"a":2}"#, &["/"]), r#"{"a":2}"#);
    }
}

//! JSON text handled as text: compacted to the producer's bytes minus insignificant whitespace, and
//! measured for nesting.
//!
//! Receivers verify signatures over the body, and some re-serialize the parsed body first
//! (`JSON.stringify(req.body)`); a compact body with the producer's key order, numbers and escapes kept
//! byte for byte is what they compute too. Working on the text instead of a parsed value keeps all of that.

/// JSON text without insignificant whitespace, and how deeply its arrays and objects nest (`1` for `[]`).
pub struct Compact {
    pub text: String,
    pub depth: usize,
}

/// Removes whitespace outside strings from text that is already known to be valid JSON, measuring its
/// nesting in the same pass. Works on bytes: every character JSON gives meaning to is ASCII, and a
/// string's contents are copied as whole runs up to its next quote or backslash (ingest compacts every
/// event's `data`, so this is on the hot path).
pub fn compact(valid_json: &str) -> Compact {
    let bytes = valid_json.as_bytes();
    let mut text = Vec::with_capacity(bytes.len());
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b' ' | b'\n' | b'\r' | b'\t' => {
                at += 1;
                continue;
            }
            b'"' => {
                let end = string_end(bytes, at + 1);
                text.extend_from_slice(&bytes[at..end]);
                at = end;
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        text.push(byte);
        at += 1;
    }
    // Only whole strings and ASCII outside them were copied, so the bytes are still UTF-8.
    let text = String::from_utf8(text).expect("compacting valid JSON keeps it UTF-8");
    Compact { text, depth: deepest }
}

/// The index just past the quote that closes the string whose contents start at `from`.
pub(crate) fn string_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(offset) = bytes.get(from..).and_then(|rest| rest.iter().position(|&b| b == b'"' || b == b'\\')) {
        from += offset;
        if bytes[from] == b'"' {
            return from + 1;
        }
        from += 2; // a backslash and the character it escapes
    }
    bytes.len()
}

/// Valid JSON text indented two spaces a level, for people to read (`hookrelay receive`). Works on the text
/// like [`compact`], so key order, numbers and escapes are shown exactly as they arrived; a parsed value
/// would sort the keys and reprint the numbers.
pub fn pretty(valid_json: &str) -> String {
    let compact = compact(valid_json).text;
    let bytes = compact.as_bytes();
    let mut out = String::with_capacity(bytes.len() * 2);
    let mut level = 0usize;
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    };
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'"' => {
                let end = string_end(bytes, at + 1);
                out.push_str(&compact[at..end]);
                at = end;
                continue;
            }
            b'{' | b'[' => {
                out.push(byte as char);
                // An empty object or array stays on one line.
                if matches!(bytes.get(at + 1), Some(b'}' | b']')) {
                    out.push(bytes[at + 1] as char);
                    at += 2;
                    continue;
                }
                level += 1;
                newline(&mut out, level);
            }
            b'}' | b']' => {
                level = level.saturating_sub(1);
                newline(&mut out, level);
                out.push(byte as char);
            }
            b',' => {
                out.push(',');
                newline(&mut out, level);
            }
            b':' => out.push_str(": "),
            _ => out.push(byte as char),
        }
        at += 1;
    }
    out
}

/// A JSON string literal for `text`.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("a str always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_goes_but_strings_keys_and_numbers_stay() {
        let input = "{ \"b\" : 1.0 ,\n\t\"a\": [ 1e3, \"x \\\" y\\\\\" ], \"c\" : { } }";
        assert_eq!(compact(input).text, r#"{"b":1.0,"a":[1e3,"x \" y\\"],"c":{}}"#);
    }

    #[test]
    fn strings_keep_their_spaces_escapes_and_other_scripts() {
        let input = "[ \"a  b\" , \"ünï \\u00e9 ✓ 🦷\", \"\\\\\" , \"tail \\\"\"\n]";
        assert_eq!(compact(input).text, "[\"a  b\",\"ünï \\u00e9 ✓ 🦷\",\"\\\\\",\"tail \\\"\"]");
    }

    #[test]
    fn matches_what_javascript_would_print_for_plain_values() {
        // JSON.stringify(JSON.parse(s)) for a body without floats like 1.0 gives the same bytes.
        let input = "{\"patient\": {\"fp\": \"patient_01J\", \"name\": \"Luna\"}, \"n\": [1, 2]}";
        assert_eq!(compact(input).text, r#"{"patient":{"fp":"patient_01J","name":"Luna"},"n":[1,2]}"#);
    }

    #[test]
    fn pretty_keeps_key_order_numbers_and_escapes() {
        let input = r#"{"zeta":1,"amount":500.00,"s":"a, b: {c}","e":[],"o":{},"n":[1,{"k":"\\\""}]}"#;
        let expected = "{\n  \"zeta\": 1,\n  \"amount\": 500.00,\n  \"s\": \"a, b: {c}\",\n  \"e\": [],\n  \"o\": {},\n  \"n\": [\n    1,\n    {\n      \"k\": \"\\\\\\\"\"\n    }\n  ]\n}";
        assert_eq!(pretty(input), expected);
        assert_eq!(compact(&pretty(input)).text, input);
        assert_eq!(pretty("7"), "7");
    }

    #[test]
    fn depth_counts_nesting_but_not_brackets_inside_strings() {
        let depth = |text: &str| compact(text).depth;
        assert_eq!(depth("1"), 0);
        assert_eq!(depth("[]"), 1);
        assert_eq!(depth(r#"{"a": [1, {"b": []}], "c": {}}"#), 4);
        assert_eq!(depth(r#"["[[[[", "\\\"{{{"]"#), 1);
        assert_eq!(depth(&format!("{}{}", "[".repeat(5000), "]".repeat(5000))), 5000);
    }
}

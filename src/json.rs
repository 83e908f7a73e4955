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
/// nesting in the same pass.
pub fn compact(valid_json: &str) -> Compact {
    let mut text = String::with_capacity(valid_json.len());
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for c in valid_json.chars() {
        if in_string {
            text.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            ' ' | '\n' | '\r' | '\t' => continue,
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        text.push(c);
    }
    Compact { text, depth: deepest }
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
    fn matches_what_javascript_would_print_for_plain_values() {
        // JSON.stringify(JSON.parse(s)) for a body without floats like 1.0 gives the same bytes.
        let input = "{\"patient\": {\"fp\": \"patient_01J\", \"name\": \"Luna\"}, \"n\": [1, 2]}";
        assert_eq!(compact(input).text, r#"{"patient":{"fp":"patient_01J","name":"Luna"},"n":[1,2]}"#);
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

//! Text from outside (a receiver's answer, a request's body) made safe to print on an operator's
//! terminal: control characters other than newline and tab are shown escaped (`\u{1b}`), so a hostile
//! peer cannot send escape sequences that recolour the screen, rewrite earlier lines or (OSC 52) set the
//! clipboard.

use std::borrow::Cow;

pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(printable("plain\n\ttext"), "plain\n\ttext");
        assert_eq!(printable("\u{1b}]52;c;aGk=\u{7}red"), "\\u{1b}]52;c;aGk=\\u{7}red");
        assert_eq!(printable("cr\rdel\u{7f}c1\u{9b}"), "cr\\rdel\\u{7f}c1\\u{9b}");
    }
}

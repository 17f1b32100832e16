//! Escaping names for human output (tables, progress lines, error messages).
//!
//! Repository and tag names come from directory names in the storage, which anyone who can
//! write there chooses: an ESC or CR in a name printed raw can rewrite the terminal (clear it,
//! move the cursor, hide a line), and bidirectional overrides can make a name read as another.
//! Every human output goes through [`escape`] (or [`escape_lines`] for multi-line messages);
//! JSON output stays exact, since a JSON string escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` must not reach a terminal raw: control characters (C0, DEL, C1), bidi
/// embeddings, overrides, isolates and marks, and the line and paragraph separators.
pub fn is_dangerous(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}'
        )
}

/// `s` with every dangerous character written as `\x1b` or `\u{202e}`; borrowed when there
/// is none (the usual case).
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_keeping(s, &[])
}

/// [`escape`], keeping newlines and tabs (for messages of several lines).
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_keeping(s, &['\n', '\t'])
}

fn escape_keeping<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !s.chars().any(|c| is_dangerous(c) && !keep.contains(&c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_dangerous(c) || keep.contains(&c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_esc_cr_and_bidi_are_escaped() {
        assert!(matches!(escape("team/app:1.0"), Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb\rc"), "a\\x1b[2Jb\\x0dc");
        assert_eq!(escape("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
        assert_eq!(escape_lines("one\ntwo\u{7}"), "one\ntwo\\x07");
        assert_eq!(escape("one\ntwo"), "one\\x0atwo");
    }
}

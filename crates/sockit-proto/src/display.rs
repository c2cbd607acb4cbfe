//! Text from peers made safe to show on a terminal.
//!
//! A peer's chat line, file name or message may carry control characters:
//! ANSI escapes that recolour, move the cursor or retitle the window, a
//! carriage return that overwrites the line it is on, a newline that fakes
//! a second listing line, or Unicode bidirectional overrides that show a
//! name reversed. Everything that is not ordinary printable text is shown
//! as a visible escape (`\x1b`, `\r`, `\u{202e}`) instead of acting.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control and bidirectional-formatting character shown
/// as an escape. With `keep_tab`, a tab is left as it is (chat lines).
pub fn escape(text: &str, keep_tab: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| needs_escape(c, keep_tab)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs_escape(c, keep_tab) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// Multi-line text from a peer (a message): controls escaped as by
/// [`escape`], line breaks kept, and every line after the first indented by
/// `indent`, so no line of it can pass for a line of the program's own.
pub fn escape_lines(text: &str, indent: &str) -> String {
    text.split('\n')
        .map(|line| escape(line.strip_suffix('\r').unwrap_or(line), true).into_owned())
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// C0 and C1 controls, DEL, and the bidirectional embeddings, overrides
/// and isolates (U+202A-202E, U+2066-2069), plus the line and paragraph
/// separators.
fn needs_escape(c: char, keep_tab: bool) -> bool {
    match c {
        '\t' => !keep_tab,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// The first C0 control character in `text` other than tab, if any: what
/// a chat room refuses in a line.
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|&c| (c < ' ' && c != '\t') || c == '\u{7f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_overrides_become_visible() {
        assert_eq!(escape("plain 文字", false), "plain 文字");
        assert!(matches!(escape("plain", false), Cow::Borrowed(_)));
        assert_eq!(escape("\u{1b}[31mred\u{1b}[0m", false), "\\x1b[31mred\\x1b[0m");
        assert_eq!(escape("a\nd 0 fake", false), "a\\nd 0 fake");
        assert_eq!(escape("x\ry", false), "x\\ry");
        assert_eq!(escape("a\tb", true), "a\tb");
        assert_eq!(escape("a\tb", false), "a\\tb");
        assert_eq!(escape("evil\u{202e}txt.exe", false), "evil\\u{202e}txt.exe");
        assert_eq!(escape("\u{9b}2J", false), "\\x9b2J");
        assert_eq!(escape_lines("one\r\ntwo\u{1b}[2J", "   "), "one\n   two\\x1b[2J");
        assert_eq!(first_control("fine\tline"), None);
        assert_eq!(first_control("bell\u{7}"), Some('\u{7}'));
    }
}

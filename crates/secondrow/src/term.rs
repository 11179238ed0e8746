//! Text from users, pipelines and servers on its way to the terminal. Run and task names, parameters,
//! URIs and error messages can hold anything a spec or an API client put there; printed raw, escape
//! sequences in them could move the cursor, rewrite earlier lines, retitle the window or hide text.
//! Everything the CLI prints from such sources goes through [`Safe`] (names: every control character
//! escaped) or [`SafeText`] (messages: line breaks and tabs kept), which write C0 and C1 controls,
//! DEL and the Unicode bidirectional overrides as visible `\u{..}` escapes.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` must not reach the terminal as it is (`keep_breaks`: newline and tab may).
fn is_unsafe(c: char, keep_breaks: bool) -> bool {
    if keep_breaks && (c == '\n' || c == '\t') {
        return false;
    }
    // `is_control` is C0, DEL and C1; the rest are the bidirectional embeddings, overrides and isolates.
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(s: &str, keep_breaks: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c, keep_breaks)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c, keep_breaks) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A name or value for one line of output: every control character escaped. Honours width and
/// alignment (`{:<30}`).
pub struct Safe<'a>(pub &'a str);

impl fmt::Display for Safe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(self.0, false))
    }
}

/// A message that may span lines (errors): control characters escaped but newline and tab.
pub struct SafeText<'a>(pub &'a str);

impl fmt::Display for SafeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&escape(self.0, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_plain_text_is_untouched() {
        assert_eq!(Safe("plain name é ✓").to_string(), "plain name é ✓");
        assert_eq!(Safe("a\x1b[2Jb").to_string(), "a\\u{1b}[2Jb");
        assert_eq!(Safe("x\ry\nz\u{9b}31m\u{7f}").to_string(), "x\\u{d}y\\u{a}z\\u{9b}31m\\u{7f}");
        assert_eq!(Safe("evil\u{202e}txt.exe").to_string(), "evil\\u{202e}txt.exe");
        assert_eq!(SafeText("line 1\n\tline 2\x07").to_string(), "line 1\n\tline 2\\u{7}");
        assert_eq!(format!("[{:<6}]", Safe("ab")), "[ab    ]");
    }
}

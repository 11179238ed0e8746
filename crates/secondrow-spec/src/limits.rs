//! Bounds on a spec's text checked before it is parsed, so that a hostile document (a 50,000-level nested
//! list, a gigabyte of YAML) is refused in one linear pass instead of tying up the parser.
//!
//! The nesting check over-approximates YAML's structure without building it: the indentation stack of block
//! collections, `- ` entries opened on one line, and `[`/`{` flow collections, skipping quoted scalars,
//! comments and the bodies of block scalars (`|`, `>`), where embedded scripts keep their own indentation.
//! Real kfp specs nest about a dozen levels; the limit leaves ten times that.

use crate::SpecError;

/// The largest spec text accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 32 << 20;

/// The deepest nesting of collections accepted (the same bound serde_json applies to JSON).
pub const MAX_NESTING: usize = 128;

/// Refuses a spec text over [`MAX_SPEC_BYTES`] or nested deeper than [`MAX_NESTING`], naming the line.
pub fn check_text(text: &str) -> Result<(), SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::Syntax(format!(
            "the spec is {} bytes; the limit is {MAX_SPEC_BYTES} bytes",
            text.len()
        )));
    }
    let mut scan = Scanner::default();
    for (index, line) in text.lines().enumerate() {
        let depth = scan.line(line);
        if depth > MAX_NESTING {
            return Err(SpecError::Syntax(format!(
                "line {}: collections nested deeper than {MAX_NESTING} levels",
                index + 1
            )));
        }
    }
    Ok(())
}

/// Refuses a JSON value nested deeper than [`MAX_NESTING`] (iteratively: the check itself cannot overflow).
pub fn check_value(value: &serde_json::Value) -> Result<(), SpecError> {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(SpecError::Syntax(format!("collections nested deeper than {MAX_NESTING} levels")));
        }
        match v {
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            serde_json::Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct Scanner {
    /// Indentation of the open block collections.
    indents: Vec<usize>,
    /// Open `[`/`{` collections (they may span lines).
    flow: usize,
    /// Inside a quoted scalar that continues on the next line: its quote character.
    quote: Option<char>,
    /// Inside a block scalar: the indentation of the line that opened it.
    block_scalar: Option<usize>,
}

impl Scanner {
    /// Reads one line and returns the nesting depth reached on it.
    fn line(&mut self, line: &str) -> usize {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line.trim();
        if let Some(parent) = self.block_scalar {
            if body.is_empty() || indent > parent {
                return 0;
            }
            self.block_scalar = None;
        }
        if self.quote.is_none() && self.flow == 0 {
            if body.is_empty() || body.starts_with('#') {
                return 0;
            }
            while self.indents.last().is_some_and(|&top| top > indent) {
                self.indents.pop();
            }
            if self.indents.last().is_none_or(|&top| top < indent) {
                self.indents.push(indent);
            }
        }
        let mut depth = self.indents.len();
        let mut rest = body;
        if self.quote.is_none() && self.flow == 0 {
            // `- - - x` opens one sequence per dash.
            while let Some(after) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
                depth += 1;
                rest = after.trim_start();
            }
        }
        let mut max = depth + self.flow;
        let mut previous = ' ';
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match self.quote {
                Some('\'') => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            self.quote = None;
                        }
                    }
                }
                Some(_) => match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => self.quote = None,
                    _ => {}
                },
                None => match c {
                    '#' if previous.is_whitespace() => break,
                    '"' | '\'' if previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':') => {
                        self.quote = Some(c)
                    }
                    '[' | '{' => {
                        self.flow += 1;
                        max = max.max(depth + self.flow);
                    }
                    ']' | '}' => self.flow = self.flow.saturating_sub(1),
                    _ => {}
                },
            }
            previous = c;
        }
        if self.quote.is_none() && self.flow == 0 && opens_block_scalar(rest) {
            self.block_scalar = Some(indent);
        }
        max
    }
}

/// Whether a line ends with a block scalar indicator (`key: |`, `- >-`, `|2+`), comments aside.
fn opens_block_scalar(rest: &str) -> bool {
    let code = match rest.find(" #") {
        Some(at) => &rest[..at],
        None => rest,
    };
    let code = code.trim_end();
    let indicator = code.trim_end_matches(|c: char| c.is_ascii_digit() || c == '+' || c == '-');
    let Some(head) = indicator.strip_suffix(['|', '>']) else {
        return false;
    };
    head.is_empty() || head.ends_with(' ') || head.ends_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_of(text: &str) -> usize {
        let mut scan = Scanner::default();
        text.lines().map(|l| scan.line(l)).max().unwrap_or(0)
    }

    #[test]
    fn block_flow_and_dash_nesting_are_counted() {
        assert_eq!(depth_of("a: 1\nb:\n  c:\n    d: 2\n"), 3);
        assert_eq!(depth_of("a: [[[1]]]\n"), 4);
        assert_eq!(depth_of("a:\n- - - x\n"), 4);
        assert_eq!(depth_of("a: [\n  [\n    [1]\n  ]\n]\n"), 4);
    }

    #[test]
    fn quoted_text_comments_and_block_scalars_do_not_count() {
        assert_eq!(depth_of("a: '[[[[' # [[[[\nb: \"{{{\\\"{\"\n"), 1);
        let script = "cmd: |\n  def f():\n      if x:\n          if y:\n              return [[[[1]]]]\nnext: 1\n";
        assert_eq!(depth_of(script), 1);
        assert_eq!(depth_of("- >-\n        deep\n            deeper\n- x\n"), 2);
    }

    #[test]
    fn hostile_documents_fail_fast_with_the_line() {
        let n = 50_000;
        let text = format!("pipelineInfo: {{name: x}}\nroot: {}{}\n", "[".repeat(n), "]".repeat(n));
        let started = std::time::Instant::now();
        let err = check_text(&text).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("nested deeper than 128"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let indented: String = (0..300).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(check_text(&indented).is_err());
        let mut value = serde_json::json!(1);
        for _ in 0..200 {
            value = serde_json::json!([value]);
        }
        assert!(check_value(&value).is_err());
        assert!(check_text(&"x".repeat(MAX_SPEC_BYTES + 1)).unwrap_err().to_string().contains("limit"));
    }
}

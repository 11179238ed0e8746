//! Monitor rule conditions: `psi(feature) > 0.2 or accuracy < 0.8`.
//!
//! Grammar: `expr := and ("or" and)*`, `and := atom ("and" atom)*`, `atom := "(" expr ")" | measure op
//! number`, `measure := name "(" feature ")" | name`, `op := > | >= | < | <=`. Per-feature measures: `psi`,
//! `ks`, `chi_square_p_value`, `missing_rate`; version measures: `accuracy`, `rmse`,
//! `schema_violation_rate`, `rows`. A comparison whose measure has no value (no labels yet, a feature
//! not logged) is false. Parse errors name the column (1-based) where they happen.

use crate::error::{MonitorError, Result};

/// Measures taking a feature.
pub const FEATURE_MEASURES: [&str; 4] = ["psi", "ks", "chi_square_p_value", "missing_rate"];
/// Measures of a whole version.
pub const VERSION_MEASURES: [&str; 4] = ["accuracy", "rmse", "schema_violation_rate", "rows"];

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Or(Vec<Condition>),
    And(Vec<Condition>),
    Compare { measure: String, feature: Option<String>, op: Op, value: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

/// Where a condition reads its numbers.
pub trait Measures {
    /// The value of `measure` (of `feature` for per-feature measures), if there is one.
    fn measure(&self, measure: &str, feature: Option<&str>) -> Option<f64>;
}

impl Condition {
    /// Parses a condition.
    pub fn parse(text: &str) -> Result<Condition> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, at: 0, len: text.chars().count() };
        let c = p.or()?;
        if let Some((column, token)) = p.tokens.get(p.at) {
            return Err(p.error(*column, &format!("unexpected `{}` after a complete condition", token.text())));
        }
        Ok(c)
    }

    /// Features named by the condition, in order of appearance.
    pub fn features(&self) -> Vec<&str> {
        match self {
            Condition::Or(cs) | Condition::And(cs) => cs.iter().flat_map(Condition::features).collect(),
            Condition::Compare { feature, .. } => feature.as_deref().into_iter().collect(),
        }
    }

    /// Whether the condition holds.
    pub fn holds(&self, m: &dyn Measures) -> bool {
        match self {
            Condition::Or(cs) => cs.iter().any(|c| c.holds(m)),
            Condition::And(cs) => cs.iter().all(|c| c.holds(m)),
            Condition::Compare { measure, feature, op, value } => match m.measure(measure, feature.as_deref()) {
                Some(x) => match op {
                    Op::Gt => x > *value,
                    Op::Ge => x >= *value,
                    Op::Lt => x < *value,
                    Op::Le => x <= *value,
                },
                None => false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Number(f64),
    Op(Op),
    Open,
    Close,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Number(n) => n.to_string(),
            Token::Op(Op::Gt) => ">".into(),
            Token::Op(Op::Ge) => ">=".into(),
            Token::Op(Op::Lt) => "<".into(),
            Token::Op(Op::Le) => "<=".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            out.push((column, if c == '(' { Token::Open } else { Token::Close }));
            i += 1;
        } else if c == '>' || c == '<' {
            let eq = chars.get(i + 1) == Some(&'=');
            let op = match (c, eq) {
                ('>', false) => Op::Gt,
                ('>', true) => Op::Ge,
                ('<', false) => Op::Lt,
                _ => Op::Le,
            };
            out.push((column, Token::Op(op)));
            i += if eq { 2 } else { 1 };
        } else if c.is_ascii_digit() || c == '.' || c == '-' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '-') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n = s
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| MonitorError::Rule(format!("column {column}: `{s}` is not a number")))?;
            out.push((column, Token::Number(n)));
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-')) {
                i += 1;
            }
            out.push((column, Token::Word(chars[start..i].iter().collect())));
        } else {
            return Err(MonitorError::Rule(format!("column {column}: unexpected character `{c}`")));
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// Characters of the text (the column after its end names "the end").
    len: usize,
}

impl Parser {
    fn error(&self, column: usize, message: &str) -> MonitorError {
        MonitorError::Rule(format!("column {column}: {message}"))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.len + 1, |(c, _)| *c)
    }

    fn next(&mut self, expected: &str) -> Result<(usize, Token)> {
        let found = self.tokens.get(self.at).cloned();
        self.at += 1;
        found.ok_or_else(|| self.error(self.len + 1, &format!("expected {expected}, found the end")))
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn or(&mut self) -> Result<Condition> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::Or(parts) })
    }

    fn and(&mut self) -> Result<Condition> {
        let mut parts = vec![self.atom()?];
        while self.keyword("and") {
            self.at += 1;
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 { parts.remove(0) } else { Condition::And(parts) })
    }

    fn atom(&mut self) -> Result<Condition> {
        let (column, token) = self.next("a measure or `(`")?;
        let measure = match token {
            Token::Open => {
                let inner = self.or()?;
                let column = self.column();
                match self.next("`)`")? {
                    (_, Token::Close) => return Ok(inner),
                    (_, other) => return Err(self.error(column, &format!("expected `)`, found `{}`", other.text()))),
                }
            }
            Token::Word(w) => w.to_ascii_lowercase(),
            other => return Err(self.error(column, &format!("expected a measure, found `{}`", other.text()))),
        };
        let feature = if FEATURE_MEASURES.contains(&measure.as_str()) {
            let open_column = self.column();
            if self.next("`(`")?.1 != Token::Open {
                return Err(self.error(open_column, &format!("`{measure}` takes a feature: `{measure}(FEATURE)`")));
            }
            let name_column = self.column();
            let name = match self.next("a feature name")? {
                (_, Token::Word(w)) => w,
                (_, other) => {
                    return Err(self.error(name_column, &format!("expected a feature name, found `{}`", other.text())))
                }
            };
            let close_column = self.column();
            if self.next("`)`")?.1 != Token::Close {
                return Err(self.error(close_column, "expected `)` after the feature name"));
            }
            Some(name)
        } else if VERSION_MEASURES.contains(&measure.as_str()) {
            None
        } else {
            return Err(self.error(
                column,
                &format!(
                    "unknown measure `{measure}` (per feature: {}; per version: {})",
                    FEATURE_MEASURES.join(", "),
                    VERSION_MEASURES.join(", ")
                ),
            ));
        };
        let op_column = self.column();
        let op = match self.next("a comparison (>, >=, <, <=)")? {
            (_, Token::Op(op)) => op,
            (_, other) => {
                return Err(
                    self.error(op_column, &format!("expected a comparison (>, >=, <, <=), found `{}`", other.text()))
                )
            }
        };
        let value_column = self.column();
        let value = match self.next("a number")? {
            (_, Token::Number(n)) => n,
            (_, other) => return Err(self.error(value_column, &format!("expected a number, found `{}`", other.text()))),
        };
        Ok(Condition::Compare { measure, feature, op, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Figures(HashMap<(String, Option<String>), f64>);

    impl Measures for Figures {
        fn measure(&self, measure: &str, feature: Option<&str>) -> Option<f64> {
            self.0.get(&(measure.to_owned(), feature.map(str::to_owned))).copied()
        }
    }

    #[test]
    fn conditions_parse_and_evaluate() {
        let c = Condition::parse("psi(x1) > 0.2 or accuracy < 0.8").unwrap();
        assert_eq!(c.features(), ["x1"]);
        let figures = |psi: f64, accuracy: Option<f64>| {
            let mut m = HashMap::from([(("psi".to_owned(), Some("x1".to_owned())), psi)]);
            if let Some(a) = accuracy {
                m.insert(("accuracy".to_owned(), None), a);
            }
            Figures(m)
        };
        assert!(c.holds(&figures(0.3, None)));
        assert!(!c.holds(&figures(0.1, None)), "no accuracy yet: that side is false");
        assert!(c.holds(&figures(0.1, Some(0.5))));
        let c = Condition::parse("(PSI(monthly_charges) >= 0.1 and rows > 100) or ks(x-2) <= -1e-3").unwrap();
        assert_eq!(c.features(), ["monthly_charges", "x-2"]);
    }

    #[test]
    fn parse_errors_name_the_column() {
        for (text, message) in [
            ("psi(x1) > ", "column 11: expected a number, found the end"),
            ("psi x1 > 0.2", "column 5: `psi` takes a feature"),
            ("psi(x1) = 0.2", "column 9: unexpected character `=`"),
            ("speed > 3", "column 1: unknown measure `speed`"),
            ("accuracy < 0.8 or", "column 18: expected a measure or `(`, found the end"),
            ("accuracy < 0.8 0.9", "column 16: unexpected `0.9` after a complete condition"),
            ("(accuracy < 0.8", "column 16: expected `)`, found the end"),
            ("accuracy < abc", "column 12: expected a number, found `abc`"),
            ("rows > 1e999", "column 8: `1e999` is not a number"),
        ] {
            let e = Condition::parse(text).unwrap_err();
            assert!(e.to_string().contains(message), "{text}: {e}");
            assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);
        }
    }
}

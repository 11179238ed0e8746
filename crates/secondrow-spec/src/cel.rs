//! Condition and selector expressions: the part of CEL that KFP emits, parsed and evaluated.
//!
//! The compiler writes `triggerPolicy.condition` (e.g. `!(int(inputs.parameter_values['p']) > 5) && …`)
//! and `parameterExpressionSelector` (e.g. `parseJson(string_value)["a"]`) as CEL.
//! This module implements a real CEL subset rather than pattern-matching the samples: literals (int, double,
//! string with both quote styles and escapes, bool, null, lists, maps), identifiers, member access, indexing,
//! calls (`int`, `double`, `string`, `bool`, `size`, `parseJson`, `dyn`, and the methods `contains`,
//! `startsWith`, `endsWith`, `size`), unary `!`/`-`, `* / %`, `+ -`, comparisons, `in`, `&&`, `||`
//! (with CEL's commutative error absorption) and the ternary `?:`.
//! It owns no IO and knows nothing about tasks: callers provide variables as JSON values.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(CelValue),
    Ident(String),
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Member(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    Call { target: Option<Box<Expr>>, name: String, args: Vec<Expr> },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A runtime value (CEL's types, minus bytes, durations and timestamps).
#[derive(Debug, Clone, PartialEq)]
pub enum CelValue {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    List(Vec<CelValue>),
    Map(BTreeMap<String, CelValue>),
}

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelError {
    pub message: String,
}

impl fmt::Display for CelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CelError {}

fn err<T>(message: impl Into<String>) -> Result<T, CelError> {
    Err(CelError { message: message.into() })
}

impl CelValue {
    pub fn from_json(v: &Json) -> CelValue {
        match v {
            Json::Null => CelValue::Null,
            Json::Bool(b) => CelValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => CelValue::Int(i),
                None => CelValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => CelValue::String(s.clone()),
            Json::Array(a) => CelValue::List(a.iter().map(CelValue::from_json).collect()),
            Json::Object(o) => CelValue::Map(o.iter().map(|(k, v)| (k.clone(), CelValue::from_json(v))).collect()),
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            CelValue::Null => Json::Null,
            CelValue::Bool(b) => Json::Bool(*b),
            CelValue::Int(i) => Json::from(*i),
            CelValue::Double(d) => serde_json::Number::from_f64(*d).map(Json::Number).unwrap_or(Json::Null),
            CelValue::String(s) => Json::String(s.clone()),
            CelValue::List(l) => Json::Array(l.iter().map(CelValue::to_json).collect()),
            CelValue::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            CelValue::Null => "null",
            CelValue::Bool(_) => "bool",
            CelValue::Int(_) => "int",
            CelValue::Double(_) => "double",
            CelValue::String(_) => "string",
            CelValue::List(_) => "list",
            CelValue::Map(_) => "map",
        }
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(i64),
    Double(f64),
    Str(String),
    Ident(String),
    Punct(&'static str),
}

const PUNCTS: [&str; 22] = [
    "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", "{", "}", ".", ",", ":", "?", "+", "-", "*",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, CelError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let mut is_double = false;
            if j + 1 < chars.len() && chars[j] == '.' && chars[j + 1].is_ascii_digit() {
                is_double = true;
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                let mut k = j + 1;
                if k < chars.len() && (chars[k] == '+' || chars[k] == '-') {
                    k += 1;
                }
                if k < chars.len() && chars[k].is_ascii_digit() {
                    is_double = true;
                    j = k;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
            }
            let text: String = chars[i..j].iter().collect();
            let tok = if is_double {
                Tok::Double(text.parse().map_err(|_| CelError { message: format!("bad number `{text}`") })?)
            } else {
                match text.parse::<i64>() {
                    Ok(v) => Tok::Int(v),
                    Err(_) => return err(format!("integer `{text}` out of range at offset {start}")),
                }
            };
            // CEL's unsigned suffix: accept and treat as int.
            if j < chars.len() && (chars[j] == 'u' || chars[j] == 'U') {
                j += 1;
            }
            out.push((tok, start));
            i = j;
            continue;
        }
        if c == '\'' || c == '"' {
            let quote = c;
            let mut j = i + 1;
            let mut s = String::new();
            loop {
                if j >= chars.len() {
                    return err(format!("unterminated string starting at offset {start}"));
                }
                let d = chars[j];
                if d == quote {
                    j += 1;
                    break;
                }
                if d == '\\' {
                    j += 1;
                    let e = *chars.get(j).ok_or(CelError { message: "dangling escape".into() })?;
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        other => other,
                    });
                    j += 1;
                    continue;
                }
                s.push(d);
                j += 1;
            }
            out.push((Tok::Str(s), start));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push((Tok::Ident(chars[i..j].iter().collect()), start));
            i = j;
            continue;
        }
        let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            out.push((Tok::Punct(p), start));
            i += p.len();
            continue;
        }
        match c {
            '/' => out.push((Tok::Punct("/"), start)),
            '%' => out.push((Tok::Punct("%"), start)),
            _ => return err(format!("unexpected character `{c}` at offset {start}")),
        }
        i += 1;
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

/// The most tokens an expression may have. KFP's longest conditions (an `Elif` chain negating every earlier
/// branch) stay in the hundreds; the bound keeps the parsed tree, and so evaluating and dropping it, shallow.
pub const MAX_TOKENS: usize = 4_000;

/// The deepest nesting of parentheses, brackets, calls and prefix operators the parser follows.
pub const MAX_NESTING: usize = 64;

/// Parses a CEL expression.
pub fn parse(src: &str) -> Result<Expr, CelError> {
    let toks = lex(src)?;
    if toks.len() > MAX_TOKENS {
        return err(format!("the expression has {} tokens; at most {MAX_TOKENS} are accepted", toks.len()));
    }
    let mut p = Parser { toks, pos: 0, depth: 0 };
    let e = p.ternary()?;
    if let Some((t, off)) = p.toks.get(p.pos) {
        return err(format!("unexpected {t:?} at offset {off}"));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    /// How many nested `ternary`/`unary` calls are open.
    depth: usize,
}

impl Parser {
    /// Runs one nested parse, refusing to go deeper than [`MAX_NESTING`].
    fn nested(&mut self, parse: fn(&mut Parser) -> Result<Expr, CelError>) -> Result<Expr, CelError> {
        if self.depth >= MAX_NESTING {
            return err(format!("the expression nests deeper than {MAX_NESTING} levels"));
        }
        self.depth += 1;
        let e = parse(self);
        self.depth -= 1;
        e
    }

    fn peek_punct(&self, p: &str) -> bool {
        matches!(self.toks.get(self.pos), Some((Tok::Punct(q), _)) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.peek_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, p: &str) -> Result<(), CelError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            match self.toks.get(self.pos) {
                Some((t, off)) => err(format!("expected `{p}` but found {t:?} at offset {off}")),
                None => err(format!("expected `{p}` but the expression ended")),
            }
        }
    }

    fn ternary(&mut self) -> Result<Expr, CelError> {
        self.nested(Parser::ternary_at)
    }

    fn ternary_at(&mut self) -> Result<Expr, CelError> {
        let cond = self.or()?;
        if self.eat_punct("?") {
            let a = self.or()?;
            self.expect(":")?;
            let b = self.ternary()?;
            return Ok(Expr::Ternary(Box::new(cond), Box::new(a), Box::new(b)));
        }
        Ok(cond)
    }

    fn or(&mut self) -> Result<Expr, CelError> {
        let mut l = self.and()?;
        while self.eat_punct("||") {
            let r = self.and()?;
            l = Expr::Binary(BinaryOp::Or, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, CelError> {
        let mut l = self.relation()?;
        while self.eat_punct("&&") {
            let r = self.relation()?;
            l = Expr::Binary(BinaryOp::And, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn relation(&mut self) -> Result<Expr, CelError> {
        let mut l = self.addition()?;
        loop {
            let op = match self.toks.get(self.pos) {
                Some((Tok::Punct("=="), _)) => BinaryOp::Eq,
                Some((Tok::Punct("!="), _)) => BinaryOp::Ne,
                Some((Tok::Punct("<"), _)) => BinaryOp::Lt,
                Some((Tok::Punct("<="), _)) => BinaryOp::Le,
                Some((Tok::Punct(">"), _)) => BinaryOp::Gt,
                Some((Tok::Punct(">="), _)) => BinaryOp::Ge,
                Some((Tok::Ident(k), _)) if k == "in" => BinaryOp::In,
                _ => return Ok(l),
            };
            self.pos += 1;
            let r = self.addition()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn addition(&mut self) -> Result<Expr, CelError> {
        let mut l = self.multiplication()?;
        loop {
            let op = if self.eat_punct("+") {
                BinaryOp::Add
            } else if self.eat_punct("-") {
                BinaryOp::Sub
            } else {
                return Ok(l);
            };
            let r = self.multiplication()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplication(&mut self) -> Result<Expr, CelError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat_punct("*") {
                BinaryOp::Mul
            } else if self.eat_punct("/") {
                BinaryOp::Div
            } else if self.eat_punct("%") {
                BinaryOp::Rem
            } else {
                return Ok(l);
            };
            let r = self.unary()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, CelError> {
        if self.eat_punct("!") {
            return Ok(Expr::Unary(UnaryOp::Not, Box::new(self.nested(Parser::unary)?)));
        }
        if self.eat_punct("-") {
            return Ok(Expr::Unary(UnaryOp::Neg, Box::new(self.nested(Parser::unary)?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, CelError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_punct(".") {
                let name = match self.toks.get(self.pos) {
                    Some((Tok::Ident(n), _)) => n.clone(),
                    _ => return err("expected a field name after `.`"),
                };
                self.pos += 1;
                if self.eat_punct("(") {
                    let args = self.args(")")?;
                    e = Expr::Call { target: Some(Box::new(e)), name, args };
                } else {
                    e = Expr::Member(Box::new(e), name);
                }
            } else if self.eat_punct("[") {
                let idx = self.ternary()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else {
                return Ok(e);
            }
        }
    }

    fn args(&mut self, close: &str) -> Result<Vec<Expr>, CelError> {
        let mut args = Vec::new();
        if self.eat_punct(close) {
            return Ok(args);
        }
        loop {
            args.push(self.ternary()?);
            if self.eat_punct(close) {
                return Ok(args);
            }
            self.expect(",")?;
            if self.eat_punct(close) {
                return Ok(args);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, CelError> {
        let Some((tok, off)) = self.toks.get(self.pos).cloned() else {
            return err("the expression ended early");
        };
        self.pos += 1;
        match tok {
            Tok::Int(i) => Ok(Expr::Lit(CelValue::Int(i))),
            Tok::Double(d) => Ok(Expr::Lit(CelValue::Double(d))),
            Tok::Str(s) => Ok(Expr::Lit(CelValue::String(s))),
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Expr::Lit(CelValue::Bool(true))),
                "false" => Ok(Expr::Lit(CelValue::Bool(false))),
                "null" => Ok(Expr::Lit(CelValue::Null)),
                _ => {
                    if self.eat_punct("(") {
                        let args = self.args(")")?;
                        Ok(Expr::Call { target: None, name, args })
                    } else {
                        Ok(Expr::Ident(name))
                    }
                }
            },
            Tok::Punct("(") => {
                let e = self.ternary()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Punct("[") => Ok(Expr::List(self.args("]")?)),
            Tok::Punct("{") => {
                let mut entries = Vec::new();
                if !self.eat_punct("}") {
                    loop {
                        let k = self.ternary()?;
                        self.expect(":")?;
                        let v = self.ternary()?;
                        entries.push((k, v));
                        if self.eat_punct("}") {
                            break;
                        }
                        self.expect(",")?;
                        if self.eat_punct("}") {
                            break;
                        }
                    }
                }
                Ok(Expr::Map(entries))
            }
            other => err(format!("unexpected {other:?} at offset {off}")),
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// Variables visible to an expression, by top-level identifier.
pub type Env = BTreeMap<String, CelValue>;

/// Evaluates `expr` against `env`.
pub fn eval(expr: &Expr, env: &Env) -> Result<CelValue, CelError> {
    match expr {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Ident(name) => match env.get(name) {
            Some(v) => Ok(v.clone()),
            None => err(format!("undeclared reference to `{name}`")),
        },
        Expr::List(items) => Ok(CelValue::List(items.iter().map(|e| eval(e, env)).collect::<Result<_, _>>()?)),
        Expr::Map(entries) => {
            let mut m = BTreeMap::new();
            for (k, v) in entries {
                let key = match eval(k, env)? {
                    CelValue::String(s) => s,
                    CelValue::Int(i) => i.to_string(),
                    CelValue::Bool(b) => b.to_string(),
                    other => return err(format!("unsupported map key type {}", other.type_name())),
                };
                m.insert(key, eval(v, env)?);
            }
            Ok(CelValue::Map(m))
        }
        Expr::Member(target, field) => match eval(target, env)? {
            CelValue::Map(m) => match m.get(field) {
                Some(v) => Ok(v.clone()),
                None => err(format!("no such key: `{field}`")),
            },
            other => err(format!("cannot select field `{field}` from {}", other.type_name())),
        },
        Expr::Index(target, idx) => index(eval(target, env)?, eval(idx, env)?),
        Expr::Call { target, name, args } => {
            let target = match target {
                Some(t) => Some(eval(t, env)?),
                None => None,
            };
            let args = args.iter().map(|a| eval(a, env)).collect::<Result<Vec<_>, _>>()?;
            call(target, name, args)
        }
        Expr::Unary(UnaryOp::Not, e) => match eval(e, env)? {
            CelValue::Bool(b) => Ok(CelValue::Bool(!b)),
            other => err(format!("no such overload: !{}", other.type_name())),
        },
        Expr::Unary(UnaryOp::Neg, e) => match eval(e, env)? {
            CelValue::Int(i) => i.checked_neg().map(CelValue::Int).ok_or(CelError { message: "int overflow".into() }),
            CelValue::Double(d) => Ok(CelValue::Double(-d)),
            other => err(format!("no such overload: -{}", other.type_name())),
        },
        Expr::Binary(BinaryOp::And, l, r) => logic(true, eval(l, env), || eval(r, env)),
        Expr::Binary(BinaryOp::Or, l, r) => logic(false, eval(l, env), || eval(r, env)),
        Expr::Binary(op, l, r) => binary(*op, eval(l, env)?, eval(r, env)?),
        Expr::Ternary(c, a, b) => match eval(c, env)? {
            CelValue::Bool(true) => eval(a, env),
            CelValue::Bool(false) => eval(b, env),
            other => err(format!("ternary condition must be bool, not {}", other.type_name())),
        },
    }
}

/// Evaluates a condition: the result must be a bool.
pub fn eval_condition(src: &str, env: &Env) -> Result<bool, CelError> {
    match eval(&parse(src)?, env)? {
        CelValue::Bool(b) => Ok(b),
        other => err(format!("condition evaluated to {}, not bool", other.type_name())),
    }
}

/// `&&` (short = false) and `||` (short = true) with CEL's rule that a decisive side wins over an error.
fn logic(
    is_and: bool,
    left: Result<CelValue, CelError>,
    right: impl FnOnce() -> Result<CelValue, CelError>,
) -> Result<CelValue, CelError> {
    let decisive = !is_and;
    let as_bool = |v: Result<CelValue, CelError>| -> Result<bool, CelError> {
        match v? {
            CelValue::Bool(b) => Ok(b),
            other => err(format!("logical operator needs bool, not {}", other.type_name())),
        }
    };
    let l = as_bool(left);
    if let Ok(b) = l {
        if b == decisive {
            return Ok(CelValue::Bool(decisive));
        }
    }
    let r = as_bool(right());
    match (l, r) {
        (_, Ok(b)) if b == decisive => Ok(CelValue::Bool(decisive)),
        (Ok(_), Ok(_)) => Ok(CelValue::Bool(!decisive)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn index(target: CelValue, idx: CelValue) -> Result<CelValue, CelError> {
    match (target, idx) {
        (CelValue::Map(m), CelValue::String(k)) => match m.get(&k) {
            Some(v) => Ok(v.clone()),
            None => err(format!("no such key: `{k}`")),
        },
        (CelValue::Map(m), CelValue::Int(i)) => match m.get(&i.to_string()) {
            Some(v) => Ok(v.clone()),
            None => err(format!("no such key: {i}")),
        },
        (CelValue::List(l), CelValue::Int(i)) => {
            if i < 0 || i as usize >= l.len() {
                err(format!("index {i} out of range for a list of {}", l.len()))
            } else {
                Ok(l[i as usize].clone())
            }
        }
        (CelValue::List(l), CelValue::Double(d)) if d.fract() == 0.0 => {
            index(CelValue::List(l), CelValue::Int(d as i64))
        }
        (t, i) => err(format!("cannot index {} with {}", t.type_name(), i.type_name())),
    }
}

fn call(target: Option<CelValue>, name: &str, args: Vec<CelValue>) -> Result<CelValue, CelError> {
    let mut all = Vec::with_capacity(args.len() + 1);
    all.extend(target);
    all.extend(args);
    match (name, all.as_slice()) {
        ("int", [v]) => to_int(v),
        ("double", [v]) => to_double(v),
        ("string", [v]) => Ok(CelValue::String(to_string(v))),
        ("bool", [CelValue::Bool(b)]) => Ok(CelValue::Bool(*b)),
        ("bool", [CelValue::String(s)]) => match s.as_str() {
            "true" | "True" | "TRUE" | "t" | "1" => Ok(CelValue::Bool(true)),
            "false" | "False" | "FALSE" | "f" | "0" => Ok(CelValue::Bool(false)),
            _ => err(format!("cannot convert `{s}` to bool")),
        },
        ("dyn", [v]) => Ok(v.clone()),
        ("size", [CelValue::String(s)]) => Ok(CelValue::Int(s.chars().count() as i64)),
        ("size", [CelValue::List(l)]) => Ok(CelValue::Int(l.len() as i64)),
        ("size", [CelValue::Map(m)]) => Ok(CelValue::Int(m.len() as i64)),
        ("parseJson", [CelValue::String(s)]) => match serde_json::from_str::<Json>(s) {
            Ok(j) => Ok(CelValue::from_json(&j)),
            Err(e) => err(format!("parseJson: {e}")),
        },
        // KFP hands already-structured values to selectors too; parsing them is the identity.
        ("parseJson", [v]) => Ok(v.clone()),
        ("contains", [CelValue::String(s), CelValue::String(p)]) => Ok(CelValue::Bool(s.contains(p.as_str()))),
        ("startsWith", [CelValue::String(s), CelValue::String(p)]) => Ok(CelValue::Bool(s.starts_with(p.as_str()))),
        ("endsWith", [CelValue::String(s), CelValue::String(p)]) => Ok(CelValue::Bool(s.ends_with(p.as_str()))),
        (name, args) => {
            let types: Vec<_> = args.iter().map(CelValue::type_name).collect();
            err(format!("no such function or overload: {name}({})", types.join(", ")))
        }
    }
}

fn to_int(v: &CelValue) -> Result<CelValue, CelError> {
    match v {
        CelValue::Int(i) => Ok(CelValue::Int(*i)),
        CelValue::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Ok(CelValue::Int(d.trunc() as i64)),
        CelValue::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => Ok(CelValue::Int(i)),
            // KFP outputs travel as doubles; "7.0" is still the integer 7.
            Err(_) => match s.trim().parse::<f64>() {
                Ok(d) if d.fract() == 0.0 => Ok(CelValue::Int(d as i64)),
                _ => err(format!("cannot convert `{s}` to int")),
            },
        },
        CelValue::Bool(b) => Ok(CelValue::Int(*b as i64)),
        other => err(format!("cannot convert {} to int", other.type_name())),
    }
}

fn to_double(v: &CelValue) -> Result<CelValue, CelError> {
    match v {
        CelValue::Int(i) => Ok(CelValue::Double(*i as f64)),
        CelValue::Double(d) => Ok(CelValue::Double(*d)),
        CelValue::String(s) => match s.trim().parse::<f64>() {
            Ok(d) => Ok(CelValue::Double(d)),
            Err(_) => err(format!("cannot convert `{s}` to double")),
        },
        other => err(format!("cannot convert {} to double", other.type_name())),
    }
}

fn to_string(v: &CelValue) -> String {
    match v {
        CelValue::String(s) => s.clone(),
        CelValue::Null => "null".into(),
        CelValue::Bool(b) => b.to_string(),
        CelValue::Int(i) => i.to_string(),
        CelValue::Double(d) => d.to_string(),
        other => other.to_json().to_string(),
    }
}

fn num(v: &CelValue) -> Option<f64> {
    match v {
        CelValue::Int(i) => Some(*i as f64),
        CelValue::Double(d) => Some(*d),
        _ => None,
    }
}

fn equal(a: &CelValue, b: &CelValue) -> bool {
    match (a, b) {
        (CelValue::Int(x), CelValue::Int(y)) => x == y,
        (CelValue::List(x), CelValue::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q)),
        (CelValue::Map(x), CelValue::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

fn binary(op: BinaryOp, l: CelValue, r: CelValue) -> Result<CelValue, CelError> {
    use std::cmp::Ordering;
    let overload = |sym: &str, l: &CelValue, r: &CelValue| -> CelError {
        CelError { message: format!("no such overload: {} {sym} {}", l.type_name(), r.type_name()) }
    };
    let ordering = |l: &CelValue, r: &CelValue| -> Option<Ordering> {
        match (l, r) {
            (CelValue::Int(x), CelValue::Int(y)) => Some(x.cmp(y)),
            (CelValue::String(x), CelValue::String(y)) => Some(x.cmp(y)),
            (CelValue::Bool(x), CelValue::Bool(y)) => Some(x.cmp(y)),
            _ => match (num(l), num(r)) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => None,
            },
        }
    };
    match op {
        BinaryOp::Eq => Ok(CelValue::Bool(equal(&l, &r))),
        BinaryOp::Ne => Ok(CelValue::Bool(!equal(&l, &r))),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let sym = match op {
                BinaryOp::Lt => "<",
                BinaryOp::Le => "<=",
                BinaryOp::Gt => ">",
                _ => ">=",
            };
            let Some(ord) = ordering(&l, &r) else {
                // NaN compares false; mismatched types have no overload.
                if num(&l).is_some() && num(&r).is_some() {
                    return Ok(CelValue::Bool(false));
                }
                return Err(overload(sym, &l, &r));
            };
            Ok(CelValue::Bool(match op {
                BinaryOp::Lt => ord == Ordering::Less,
                BinaryOp::Le => ord != Ordering::Greater,
                BinaryOp::Gt => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            }))
        }
        BinaryOp::In => match &r {
            CelValue::List(items) => Ok(CelValue::Bool(items.iter().any(|i| equal(i, &l)))),
            CelValue::Map(m) => match &l {
                CelValue::String(k) => Ok(CelValue::Bool(m.contains_key(k))),
                _ => Err(overload("in", &l, &r)),
            },
            _ => Err(overload("in", &l, &r)),
        },
        BinaryOp::Add => match (l, r) {
            (CelValue::Int(x), CelValue::Int(y)) => {
                x.checked_add(y).map(CelValue::Int).ok_or(CelError { message: "int overflow".into() })
            }
            (CelValue::String(x), CelValue::String(y)) => Ok(CelValue::String(x + &y)),
            (CelValue::List(mut x), CelValue::List(y)) => {
                x.extend(y);
                Ok(CelValue::List(x))
            }
            (l, r) => arith(&l, &r, "+", |a, b| a + b).ok_or_else(|| overload("+", &l, &r)),
        },
        BinaryOp::Sub => match (&l, &r) {
            (CelValue::Int(x), CelValue::Int(y)) => {
                x.checked_sub(*y).map(CelValue::Int).ok_or(CelError { message: "int overflow".into() })
            }
            _ => arith(&l, &r, "-", |a, b| a - b).ok_or_else(|| overload("-", &l, &r)),
        },
        BinaryOp::Mul => match (&l, &r) {
            (CelValue::Int(x), CelValue::Int(y)) => {
                x.checked_mul(*y).map(CelValue::Int).ok_or(CelError { message: "int overflow".into() })
            }
            _ => arith(&l, &r, "*", |a, b| a * b).ok_or_else(|| overload("*", &l, &r)),
        },
        BinaryOp::Div => match (&l, &r) {
            (CelValue::Int(_), CelValue::Int(0)) => err("division by zero"),
            (CelValue::Int(x), CelValue::Int(y)) => Ok(CelValue::Int(x / y)),
            _ => arith(&l, &r, "/", |a, b| a / b).ok_or_else(|| overload("/", &l, &r)),
        },
        BinaryOp::Rem => match (&l, &r) {
            (CelValue::Int(_), CelValue::Int(0)) => err("modulus by zero"),
            (CelValue::Int(x), CelValue::Int(y)) => Ok(CelValue::Int(x % y)),
            _ => Err(overload("%", &l, &r)),
        },
        BinaryOp::And | BinaryOp::Or => unreachable!("handled by logic()"),
    }
}

fn arith(l: &CelValue, r: &CelValue, _sym: &str, f: impl Fn(f64, f64) -> f64) -> Option<CelValue> {
    Some(CelValue::Double(f(num(l)?, num(r)?)))
}

#[cfg(test)]
mod tests;

//! Parameter values: coercion to declared types, CLI parsing, output-file parsing, placeholder text.
//!
//! The IR stores numbers as protobuf doubles (`3.0` for an int 3); executors need native JSON of the
//! declared type (`3`). Numbers nested in lists and structs carry no int/float distinction, and KFP writes
//! whole doubles without a fraction, so [`normalize`] turns whole floats into integers there.

use serde_json::{Map, Number, Value};

use crate::ir::ParameterType;

/// Why a value does not fit its declared parameter type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// The value cannot be coerced to the type (`what` describes it: "the string", "the value", …).
    #[error("expected {expected} but got {what} `{value}`")]
    Mismatch { expected: &'static str, what: &'static str, value: String },
    /// An output-parameter file of a non-string type does not hold JSON.
    #[error("not valid JSON ({reason}): `{text}`")]
    NotJson { reason: String, text: String },
}

impl ValueError {
    /// Always `InvalidInput`: the value came from a spec, an argument or a component's output.
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        secondrow_error::ErrorKind::InvalidInput
    }
}

/// Rewrites whole-valued floats as integers, recursively (`[1.0, 2.5]` → `[1, 2.5]`).
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect::<Map<_, _>>()),
        other => other,
    }
}

/// Coerces `v` to the declared type, or says why it cannot.
pub fn coerce(v: &Value, ty: ParameterType) -> Result<Value, ValueError> {
    let wrong = |what: &'static str| Err(ValueError::Mismatch { expected: ty.as_str(), what, value: v.to_string() });
    match ty {
        ParameterType::NumberInteger => match v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Value::from(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                _ => wrong("a non-integer number"),
            },
            Value::String(s) => match s.trim().parse::<i64>() {
                Ok(i) => Ok(Value::from(i)),
                Err(_) => match s.trim().parse::<f64>() {
                    Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Value::from(f as i64)),
                    _ => wrong("the string"),
                },
            },
            _ => wrong("the value"),
        },
        ParameterType::NumberDouble => match v {
            Value::Number(n) => match n.as_f64().and_then(Number::from_f64) {
                Some(n) => Ok(Value::Number(n)),
                None => wrong("the number"),
            },
            Value::String(s) => match s.trim().parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Ok(Value::Number(n)),
                None => wrong("the string"),
            },
            _ => wrong("the value"),
        },
        ParameterType::String => match v {
            Value::String(s) => Ok(Value::String(s.clone())),
            other => Ok(Value::String(normalize(other.clone()).to_string())),
        },
        ParameterType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => wrong("the string"),
            },
            _ => wrong("the value"),
        },
        ParameterType::List => match v {
            Value::Array(_) => Ok(normalize(v.clone())),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(a @ Value::Array(_)) => Ok(normalize(a)),
                _ => wrong("the string"),
            },
            _ => wrong("the value"),
        },
        ParameterType::Struct => match v {
            Value::Object(_) => Ok(normalize(v.clone())),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(o @ Value::Object(_)) => Ok(normalize(o)),
                _ => wrong("the string"),
            },
            _ => wrong("the value"),
        },
        ParameterType::TaskFinalStatus | ParameterType::ParameterTypeEnumUnspecified => Ok(normalize(v.clone())),
    }
}

/// Parses a `--param name=TEXT` value for a declared type: strings stay raw, the rest is JSON.
pub fn parse_cli(text: &str, ty: ParameterType) -> Result<Value, ValueError> {
    match ty {
        ParameterType::String => Ok(Value::String(text.to_owned())),
        _ => {
            let v = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_owned()));
            coerce(&v, ty)
        }
    }
}

/// Reads an output-parameter file's text as the declared type (Python's `True`/`False` accepted).
pub fn parse_output_file(text: &str, ty: ParameterType) -> Result<Value, ValueError> {
    match ty {
        ParameterType::String => Ok(Value::String(text.to_owned())),
        ParameterType::Boolean => coerce(&Value::String(text.trim().to_owned()), ty),
        _ => {
            let trimmed = text.trim();
            let v: Value = serde_json::from_str(trimmed)
                .map_err(|e| ValueError::NotJson { reason: e.to_string(), text: trimmed.to_owned() })?;
            coerce(&v, ty)
        }
    }
}

/// The text a placeholder substitutes: strings raw, everything else compact JSON.
pub fn placeholder_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text kfp's launcher substitutes for a parameter inside a formatted constant (an f-string) or a
/// resource setting: strings raw, whole numbers without a fraction (`3`, not `3.0`), other numbers as
/// they print (`0.5`), booleans `true`/`false`, null as nothing, lists and structs as compact JSON.
pub fn channel_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => normalize(other.clone()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ints_from_ir_doubles() {
        assert_eq!(coerce(&json!(3.0), ParameterType::NumberInteger), Ok(json!(3)));
        assert!(coerce(&json!(3.5), ParameterType::NumberInteger).unwrap_err().to_string().contains("NUMBER_INTEGER"));
        assert_eq!(coerce(&json!([1.0, 2.5, {"n": 2.0}]), ParameterType::List), Ok(json!([1, 2.5, {"n": 2}])));
        assert_eq!(coerce(&json!(7), ParameterType::String), Ok(json!("7")));
    }

    #[test]
    fn channel_text_formats_like_kfp() {
        assert_eq!(channel_text(&json!("a b")), "a b");
        assert_eq!(channel_text(&json!(3.0)), "3");
        assert_eq!(channel_text(&json!(0.001)), "0.001");
        assert_eq!(channel_text(&json!(-7)), "-7");
        assert_eq!(channel_text(&json!(true)), "true");
        assert_eq!(channel_text(&json!(null)), "");
        assert_eq!(channel_text(&json!(["a", 1.0])), r#"["a",1]"#);
        assert_eq!(channel_text(&json!({"key": "val"})), r#"{"key":"val"}"#);
    }

    #[test]
    fn cli_and_files() {
        assert_eq!(parse_cli("10", ParameterType::NumberInteger), Ok(json!(10)));
        assert_eq!(parse_cli("[\"a\"]", ParameterType::List), Ok(json!(["a"])));
        assert_eq!(parse_cli("10", ParameterType::String), Ok(json!("10")));
        assert!(parse_cli("ten", ParameterType::NumberInteger).is_err());
        assert_eq!(parse_output_file("3\n", ParameterType::NumberInteger), Ok(json!(3)));
        assert_eq!(parse_output_file("True", ParameterType::Boolean), Ok(json!(true)));
        assert_eq!(parse_output_file(" x \n", ParameterType::String), Ok(json!(" x \n")));
    }

    #[test]
    fn errors_keep_their_wording_and_kind() {
        let e = coerce(&json!("x"), ParameterType::NumberInteger).unwrap_err();
        assert_eq!(e.to_string(), "expected NUMBER_INTEGER but got the string `\"x\"`");
        assert_eq!(e.kind(), secondrow_error::ErrorKind::InvalidInput);
        let e = parse_output_file(" {nope\n", ParameterType::Struct).unwrap_err();
        assert!(matches!(&e, ValueError::NotJson { text, .. } if text == "{nope"), "{e:?}");
        assert!(e.to_string().starts_with("not valid JSON (") && e.to_string().ends_with("): `{nope`"), "{e}");
    }
}

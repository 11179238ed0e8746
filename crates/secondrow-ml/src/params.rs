//! Typed access to hyperparameters given as a name → JSON value map (from the command line, the kfp
//! executor input, or a library caller). Every accessor names the parameter in its error.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Hyperparameters by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub values: BTreeMap<String, serde_json::Value>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Sets `name` (builder style).
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Params {
        self.values.insert(name.to_string(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.values.get(name).filter(|v| !v.is_null())
    }

    pub fn f64(&self, name: &str, default: f64) -> Result<f64> {
        match self.get(name) {
            None => Ok(default),
            Some(serde_json::Value::Number(n)) => n.as_f64().ok_or_else(|| Error::arg(name, "not a number")),
            Some(serde_json::Value::String(s)) => {
                s.trim().parse().map_err(|_| Error::arg(name, format!("`{s}` is not a number")))
            }
            Some(other) => Err(Error::arg(name, format!("`{other}` is not a number"))),
        }
    }

    pub fn usize(&self, name: &str, default: usize) -> Result<usize> {
        let v = self.f64(name, default as f64)?;
        if v < 0.0 || v.fract() != 0.0 || v > 1e12 {
            return Err(Error::arg(name, format!("`{v}` is not a non-negative integer")));
        }
        Ok(v as usize)
    }

    pub fn u64(&self, name: &str, default: u64) -> Result<u64> {
        Ok(self.usize(name, default as usize)? as u64)
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(serde_json::Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(Error::arg(name, format!("`{s}` is not a boolean"))),
            },
            Some(other) => Err(Error::arg(name, format!("`{other}` is not a boolean"))),
        }
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
        }
    }

    /// A positive number.
    pub fn positive(&self, name: &str, default: f64) -> Result<f64> {
        let v = self.f64(name, default)?;
        if v > 0.0 && v.is_finite() {
            Ok(v)
        } else {
            Err(Error::arg(name, format!("must be > 0, got {v}")))
        }
    }

    /// A comma-separated list (empty string → empty list).
    pub fn list(&self, name: &str) -> Result<Vec<String>> {
        Ok(self.string(name, "")?.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }

    /// The parameters as a JSON object (recorded in model files).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

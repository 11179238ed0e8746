//! Metrics collection as Katib's collectors read a trial's output: TEXT lines through filter regexes
//! (StdOut and File/TEXT) and JSON lines (File/JSON). Pure functions over text.

use crate::error::{Result, TuneError};
use chrono::{DateTime, FixedOffset};
use regex::Regex;

/// Katib's `DefaultFilter`: group 1 the name, group 2 the value.
pub const DEFAULT_FILTER: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// One reported value. `value` is kept as printed (it may be empty, as Katib stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricLog {
    pub name: String,
    pub value: String,
    pub timestamp: Option<DateTime<FixedOffset>>,
}

/// The compiled TEXT filters.
#[derive(Debug, Clone)]
pub struct Filters(Vec<Regex>);

impl Filters {
    pub fn default_filter() -> Filters {
        // The constant is a valid pattern; a failure here would be a bug caught by the unit tests.
        Filters(Regex::new(DEFAULT_FILTER).map(|r| vec![r]).unwrap_or_default())
    }

    /// Custom `metricsFormat` regexes; each must compile and have at least two groups. `path` names the field.
    pub fn new(patterns: &[String], path: &str) -> Result<Filters> {
        let mut out = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let r = Regex::new(p)
                .map_err(|e| TuneError::invalid(format!("{path}[{i}]"), format!("not a valid regex: {e}")))?;
            if r.captures_len() < 3 {
                return Err(TuneError::invalid(
                    format!("{path}[{i}]"),
                    "needs two groups: the metric name and its value",
                ));
            }
            out.push(r);
        }
        Ok(Filters(out))
    }
}

fn leading_timestamp(line: &str) -> Option<DateTime<FixedOffset>> {
    let (first, _) = line.split_once(' ')?;
    DateTime::parse_from_rfc3339(first).ok()
}

/// TEXT parsing, line by line: only lines containing a metric name are looked at; an RFC 3339
/// timestamp followed by a space at the start is the time; each filter is matched repeatedly and a
/// pair is kept when its name equals one of `names`.
pub fn parse_text(text: &str, names: &[String], filters: &Filters) -> Vec<MetricLog> {
    let mut out = Vec::new();
    for line in text.lines() {
        if !names.iter().any(|n| line.contains(n.as_str())) {
            continue;
        }
        let timestamp = leading_timestamp(line);
        for re in &filters.0 {
            for c in re.captures_iter(line) {
                let (Some(n), v) = (c.get(1), c.get(2)) else { continue };
                if names.iter().any(|x| x == n.as_str()) {
                    out.push(MetricLog {
                        name: n.as_str().to_string(),
                        value: v.map(|m| m.as_str().trim().to_string()).unwrap_or_default(),
                        timestamp,
                    });
                }
            }
        }
    }
    out
}

/// JSON lines: one object per line; a metric's value is taken only when it is a JSON string; an
/// optional `timestamp` holds RFC 3339 text or Unix seconds. Blank lines are skipped; a line that is
/// not a JSON object is an error naming its line number.
pub fn parse_json_lines(text: &str, names: &[String]) -> Result<Vec<MetricLog>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| TuneError::Metrics(format!("line {}: not JSON: {e}", i + 1)))?;
        let obj = v.as_object().ok_or_else(|| TuneError::Metrics(format!("line {}: not a JSON object", i + 1)))?;
        let timestamp = match obj.get("timestamp") {
            Some(serde_json::Value::String(s)) => DateTime::parse_from_rfc3339(s).ok(),
            Some(serde_json::Value::Number(n)) => n
                .as_f64()
                .and_then(|s| DateTime::from_timestamp(s.trunc() as i64, (s.fract() * 1e9) as u32))
                .map(|d| d.fixed_offset()),
            _ => None,
        };
        for n in names {
            if let Some(serde_json::Value::String(s)) = obj.get(n) {
                out.push(MetricLog { name: n.clone(), value: s.clone(), timestamp });
            }
        }
    }
    Ok(out)
}

/// A metric's summary in a trial's observation (Katib's `{name, min, max, latest}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub name: String,
    pub min: f64,
    pub max: f64,
    pub latest: f64,
}

/// Per metric: its numeric values in order (values that do not parse as a float are skipped).
pub fn series(logs: &[MetricLog], name: &str) -> Vec<f64> {
    logs.iter().filter(|l| l.name == name).filter_map(|l| l.value.parse::<f64>().ok()).filter(|v| !v.is_nan()).collect()
}

/// Summaries for `names`; a metric never reported (or never numeric) is absent, so a missing
/// objective means the trial's metrics are unavailable.
pub fn summarise(logs: &[MetricLog], names: &[String]) -> Vec<MetricSummary> {
    names
        .iter()
        .filter_map(|n| {
            let s = series(logs, n);
            let latest = *s.last()?;
            Some(MetricSummary {
                name: n.clone(),
                min: s.iter().copied().fold(f64::INFINITY, f64::min),
                max: s.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                latest,
            })
        })
        .collect()
}

impl MetricSummary {
    /// The value after a strategy (`min`, `max`, `latest`).
    pub fn value(&self, strategy: &str) -> f64 {
        match strategy {
            "min" => self.min,
            "max" => self.max,
            _ => self.latest,
        }
    }
}

//! Data schemas: inferring one from a table and validating a table against one.
//!
//! Validation reports every anomaly it finds (never just the first), so one run names every bad column.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::report::{fmt, Report};
use crate::table::{format_number, ColumnValues, Table};

/// Expected shape of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub columns: Vec<ColumnSchema>,
    /// Whether columns not listed are accepted (default true).
    #[serde(default = "yes")]
    pub allow_extra_columns: bool,
}

/// Expectations for one column; every constraint is optional.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Allowed categories of a string column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// Largest accepted fraction of missing cells, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missing_ratio: Option<f64>,
}

/// Column types a schema can require.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Number,
    Integer,
    String,
}

/// One problem found by [`validate`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Anomaly {
    pub column: String,
    /// `missing_column`, `unexpected_column`, `type_mismatch`, `below_min`, `above_max`,
    /// `unexpected_category` or `too_many_missing`.
    pub kind: String,
    /// Number of offending cells (0 for column-level anomalies).
    pub count: usize,
    pub message: String,
}

fn yes() -> bool {
    true
}

/// Infers a schema: types, observed ranges, categories of string columns with at most `max_categories`
/// distinct values, and the observed missing ratio.
pub fn infer(table: &Table, max_categories: usize) -> Schema {
    let n = table.n_rows().max(1) as f64;
    let columns = table
        .columns
        .iter()
        .map(|column| {
            let missing_ratio = column.n_missing() as f64 / n;
            let mut schema = ColumnSchema {
                name: column.name.clone(),
                kind: ColumnType::String,
                required: true,
                min: None,
                max: None,
                allowed: None,
                max_missing_ratio: Some(missing_ratio),
            };
            match &column.values {
                ColumnValues::Number(values) => {
                    let present = values.iter().copied().filter(|v| !v.is_nan());
                    let integral = present.clone().all(|v| v.fract() == 0.0);
                    schema.kind = if integral { ColumnType::Integer } else { ColumnType::Number };
                    schema.min = present.clone().reduce(f64::min);
                    schema.max = present.reduce(f64::max);
                }
                ColumnValues::Text(values) => {
                    let distinct: BTreeSet<&str> = values.iter().flatten().map(String::as_str).collect();
                    if distinct.len() <= max_categories {
                        schema.allowed = Some(distinct.into_iter().map(str::to_string).collect());
                    }
                }
            }
            schema
        })
        .collect();
    Schema { columns, allow_extra_columns: true }
}

/// Checks `table` against `schema` and returns every anomaly.
pub fn validate(table: &Table, schema: &Schema) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut push = |column: &str, kind: &str, count: usize, message: String| {
        anomalies.push(Anomaly { column: column.to_string(), kind: kind.to_string(), count, message })
    };
    let n_rows = table.n_rows();
    for expected in &schema.columns {
        let Some(column) = table.find(&expected.name) else {
            if expected.required {
                push(&expected.name, "missing_column", 0, format!("required column `{}` is missing", expected.name));
            }
            continue;
        };
        let missing = column.n_missing();
        if let Some(max_ratio) = expected.max_missing_ratio {
            let ratio = if n_rows == 0 { 0.0 } else { missing as f64 / n_rows as f64 };
            if ratio > max_ratio + 1e-12 {
                push(
                    &expected.name,
                    "too_many_missing",
                    missing,
                    format!(
                        "{missing} missing cells ({}%) exceed the allowed {}%",
                        fmt(ratio * 100.0),
                        fmt(max_ratio * 100.0)
                    ),
                );
            }
        }
        match expected.kind {
            ColumnType::Number | ColumnType::Integer => {
                let mut bad = Vec::new();
                let mut numbers = Vec::with_capacity(n_rows);
                for row in 0..n_rows {
                    match (&column.values, column.cell_text(row)) {
                        (_, None) => numbers.push(f64::NAN),
                        (ColumnValues::Number(v), _) => numbers.push(v[row]),
                        (ColumnValues::Text(_), Some(text)) => match text.trim().parse::<f64>() {
                            Ok(v) => numbers.push(v),
                            Err(_) => {
                                bad.push(text);
                                numbers.push(f64::NAN);
                            }
                        },
                    }
                }
                if expected.kind == ColumnType::Integer {
                    for v in numbers.iter_mut() {
                        if !v.is_nan() && v.fract() != 0.0 {
                            bad.push(format_number(*v));
                            *v = f64::NAN;
                        }
                    }
                }
                if !bad.is_empty() {
                    let kind = if expected.kind == ColumnType::Integer { "integer" } else { "number" };
                    push(
                        &expected.name,
                        "type_mismatch",
                        bad.len(),
                        format!("{} value(s) are not of type {kind}, e.g. `{}`", bad.len(), bad[0]),
                    );
                }
                if let Some(min) = expected.min {
                    let below: Vec<f64> = numbers.iter().copied().filter(|v| *v < min).collect();
                    if !below.is_empty() {
                        let lowest = below.iter().copied().fold(f64::INFINITY, f64::min);
                        push(
                            &expected.name,
                            "below_min",
                            below.len(),
                            format!("{} value(s) below min {} (lowest {})", below.len(), fmt(min), fmt(lowest)),
                        );
                    }
                }
                if let Some(max) = expected.max {
                    let above: Vec<f64> = numbers.iter().copied().filter(|v| *v > max).collect();
                    if !above.is_empty() {
                        let highest = above.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        push(
                            &expected.name,
                            "above_max",
                            above.len(),
                            format!("{} value(s) above max {} (highest {})", above.len(), fmt(max), fmt(highest)),
                        );
                    }
                }
            }
            ColumnType::String => {
                if let Some(allowed) = &expected.allowed {
                    let allowed: HashSet<&str> = allowed.iter().map(String::as_str).collect();
                    let mut unexpected = BTreeSet::new();
                    let mut count = 0;
                    for row in 0..n_rows {
                        if let Some(text) = column.cell_text(row) {
                            if !allowed.contains(text.as_str()) {
                                count += 1;
                                unexpected.insert(text);
                            }
                        }
                    }
                    if count > 0 {
                        let examples: Vec<String> = unexpected.into_iter().take(5).map(|s| format!("`{s}`")).collect();
                        push(
                            &expected.name,
                            "unexpected_category",
                            count,
                            format!("{count} value(s) not in the allowed categories: {}", examples.join(", ")),
                        );
                    }
                }
            }
        }
    }
    if !schema.allow_extra_columns {
        for column in &table.columns {
            if !schema.columns.iter().any(|c| c.name == column.name) {
                push(&column.name, "unexpected_column", 0, format!("column `{}` is not in the schema", column.name));
            }
        }
    }
    anomalies
}

/// Renders the anomalies of a validation run.
pub fn anomalies_report(anomalies: &[Anomaly], rows: usize) -> Report {
    let mut report = Report::new("Data validation");
    if anomalies.is_empty() {
        report.paragraph(format!("No anomalies in {rows} rows."));
    } else {
        report.paragraph(format!("{} anomalies in {rows} rows.", anomalies.len()));
        let rows = anomalies
            .iter()
            .map(|a| vec![a.column.clone(), a.kind.clone(), a.count.to_string(), a.message.clone()])
            .collect();
        report.table(&["column", "anomaly", "cells", "detail"], rows);
    }
    report
}

#[cfg(test)]
mod tests;

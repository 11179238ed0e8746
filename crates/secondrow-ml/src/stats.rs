//! Per-column statistics of a table: count, missing, distinct, top values, and for numbers min, max, mean,
//! standard deviation and a histogram. Serialised as JSON and rendered as a [`Report`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::report::{fmt, Report};
use crate::table::{format_number, ColumnValues, Table};

/// Statistics of a whole table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableStats {
    pub rows: usize,
    pub columns: Vec<ColumnStats>,
}

/// Statistics of one column.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnStats {
    pub name: String,
    /// `number` or `string`.
    #[serde(rename = "type")]
    pub kind: String,
    pub count: usize,
    pub missing: usize,
    pub distinct: usize,
    /// Most frequent values with their counts, most frequent first (ties by value).
    pub top_values: Vec<(String, usize)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Population standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// Equal-width histogram: `counts[i]` counts values in `[edges[i], edges[i+1])` (last bin closed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub edges: Vec<f64>,
    pub counts: Vec<usize>,
}

const TOP_VALUES: usize = 10;

/// Computes statistics for every column, with `bins` histogram bins for numeric columns.
pub fn compute(table: &Table, bins: usize) -> TableStats {
    let bins = bins.max(1);
    let columns = table
        .columns
        .iter()
        .map(|column| {
            let missing = column.n_missing();
            let count = column.len() - missing;
            match &column.values {
                ColumnValues::Number(values) => {
                    let mut present: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
                    present.sort_by(f64::total_cmp);
                    let mut frequencies: Vec<(f64, usize)> = Vec::new();
                    for &v in &present {
                        match frequencies.last_mut() {
                            Some((last, n)) if *last == v => *n += 1,
                            _ => frequencies.push((v, 1)),
                        }
                    }
                    let distinct = frequencies.len();
                    frequencies.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)));
                    let top_values =
                        frequencies.iter().take(TOP_VALUES).map(|(v, n)| (format_number(*v), *n)).collect();
                    let (min, max) = (present.first().copied(), present.last().copied());
                    let mean = (!present.is_empty()).then(|| present.iter().sum::<f64>() / count as f64);
                    let std =
                        mean.map(|m| (present.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / count as f64).sqrt());
                    let histogram = match (min, max) {
                        (Some(lo), Some(hi)) => Some(histogram(&present, lo, hi, bins)),
                        _ => None,
                    };
                    ColumnStats {
                        name: column.name.clone(),
                        kind: "number".into(),
                        count,
                        missing,
                        distinct,
                        top_values,
                        min,
                        max,
                        mean,
                        std,
                        histogram,
                    }
                }
                ColumnValues::Text(values) => {
                    let mut counts: HashMap<&str, usize> = HashMap::new();
                    for v in values.iter().flatten() {
                        *counts.entry(v.as_str()).or_default() += 1;
                    }
                    let distinct = counts.len();
                    let mut frequencies: Vec<(&str, usize)> = counts.into_iter().collect();
                    frequencies.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                    ColumnStats {
                        name: column.name.clone(),
                        kind: "string".into(),
                        count,
                        missing,
                        distinct,
                        top_values: frequencies.iter().take(TOP_VALUES).map(|(v, n)| (v.to_string(), *n)).collect(),
                        min: None,
                        max: None,
                        mean: None,
                        std: None,
                        histogram: None,
                    }
                }
            }
        })
        .collect();
    TableStats { rows: table.n_rows(), columns }
}

fn histogram(sorted: &[f64], lo: f64, hi: f64, bins: usize) -> Histogram {
    let width = (hi - lo) / bins as f64;
    let edges = (0..=bins).map(|i| if i == bins { hi } else { lo + width * i as f64 }).collect();
    let mut counts = vec![0; bins];
    for &v in sorted {
        let b = if width > 0.0 { (((v - lo) / width) as usize).min(bins - 1) } else { 0 };
        counts[b] += 1;
    }
    Histogram { edges, counts }
}

/// Renders statistics as a report (summary table, top values, histograms).
pub fn report(stats: &TableStats, title: &str) -> Report {
    let mut report = Report::new(title);
    report.paragraph(format!("{} rows, {} columns.", stats.rows, stats.columns.len()));
    let rows = stats
        .columns
        .iter()
        .map(|c| {
            let o = |v: Option<f64>| v.map(fmt).unwrap_or_default();
            vec![
                c.name.clone(),
                c.kind.clone(),
                c.count.to_string(),
                c.missing.to_string(),
                c.distinct.to_string(),
                o(c.min),
                o(c.max),
                o(c.mean),
                o(c.std),
            ]
        })
        .collect();
    report.table(&["column", "type", "count", "missing", "distinct", "min", "max", "mean", "std"], rows);
    for c in &stats.columns {
        report.heading(format!("`{}`", c.name));
        let top = c.top_values.iter().map(|(v, n)| format!("{v} ({n})")).collect::<Vec<_>>().join(", ");
        report.paragraph(format!("Top values: {top}"));
        if let Some(h) = &c.histogram {
            let bars = h
                .counts
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("[{}, {})", fmt(h.edges[i]), fmt(h.edges[i + 1])), *n as f64))
                .collect();
            report.bars("Histogram", bars);
        }
    }
    report
}

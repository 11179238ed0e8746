//! Drift of a window of logged inputs against the training data ([`Reference`]): per feature, PSI and
//! the Kolmogorov–Smirnov statistic for numbers, PSI and chi-square for categories, and the missing
//! rates on both sides.
//!
//! The reference is either the training data itself ([`Reference::from_columns`]: KS over the raw
//! values; PSI over equal-width bins of both samples' range) or the `statistics` component's JSON
//! ([`Reference::from_statistics`]: its histogram's bins, the distribution taken as linear inside a
//! bin; its top values for categories, the rest as one "other" category).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{MonitorError, Result};
use crate::log::{Column, Values};
use crate::stats;

/// Bins of the PSI over raw numbers.
pub const DEFAULT_BINS: usize = 10;

/// The training side of one feature.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureReference {
    /// Sorted values (missing ones left out).
    Values { sorted: Vec<f64>, missing: usize },
    /// A histogram over `edges` (len = counts + 1).
    Histogram { edges: Vec<f64>, counts: Vec<f64>, missing: usize },
    /// Counts per category; `other` counts values outside the listed ones.
    Categories { counts: BTreeMap<String, f64>, other: f64, missing: usize },
}

impl FeatureReference {
    fn missing_rate(&self) -> f64 {
        let (present, missing) = match self {
            FeatureReference::Values { sorted, missing } => (sorted.len() as f64, *missing),
            FeatureReference::Histogram { counts, missing, .. } => (counts.iter().sum(), *missing),
            FeatureReference::Categories { counts, other, missing } => (counts.values().sum::<f64>() + other, *missing),
        };
        rate(missing as f64, present + missing as f64)
    }
}

/// The training data's distribution, feature by feature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    pub features: Vec<(String, FeatureReference)>,
}

impl Reference {
    pub fn feature(&self, name: &str) -> Option<&FeatureReference> {
        self.features.iter().find(|(n, _)| n == name).map(|(_, f)| f)
    }

    pub fn names(&self) -> Vec<&str> {
        self.features.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The training data itself.
    pub fn from_columns(columns: &[Column]) -> Reference {
        let features = columns
            .iter()
            .map(|c| {
                let reference = match &c.values {
                    Values::Number(v) => {
                        let mut sorted: Vec<f64> = v.iter().flatten().copied().filter(|x| !x.is_nan()).collect();
                        sorted.sort_by(f64::total_cmp);
                        FeatureReference::Values { missing: v.len() - sorted.len(), sorted }
                    }
                    Values::Text(v) => {
                        let mut counts = BTreeMap::new();
                        for s in v.iter().flatten() {
                            *counts.entry(s.clone()).or_insert(0.0) += 1.0;
                        }
                        FeatureReference::Categories {
                            counts,
                            other: 0.0,
                            missing: v.iter().filter(|s| s.is_none()).count(),
                        }
                    }
                };
                (c.name.clone(), reference)
            })
            .collect();
        Reference { features }
    }

    /// The `statistics` component's JSON (`{"rows", "columns": [{"name", "type", "count", "missing",
    /// "top_values", "histogram": {"edges", "counts"}}]}`).
    pub fn from_statistics(json: &Value) -> Result<Reference> {
        let bad = |what: String| MonitorError::Reference(what);
        let columns = json["columns"].as_array().ok_or_else(|| bad("no `columns` list".into()))?;
        let mut features = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            let name = c["name"].as_str().ok_or_else(|| bad(format!("columns[{i}]: no `name`")))?;
            let count = c["count"].as_f64().ok_or_else(|| bad(format!("column `{name}`: no `count`")))?;
            let missing = c["missing"].as_u64().unwrap_or(0) as usize;
            let reference = match c["type"].as_str() {
                Some("number") => {
                    let h = &c["histogram"];
                    let numbers = |v: &Value| -> Option<Vec<f64>> { v.as_array()?.iter().map(Value::as_f64).collect() };
                    match (numbers(&h["edges"]), numbers(&h["counts"])) {
                        (Some(edges), Some(counts)) if edges.len() == counts.len() + 1 && !counts.is_empty() => {
                            FeatureReference::Histogram { edges, counts, missing }
                        }
                        // No values at all: nothing to compare with.
                        _ if count == 0.0 => continue,
                        _ => return Err(bad(format!("column `{name}`: no usable `histogram`"))),
                    }
                }
                Some("string") => {
                    let mut counts = BTreeMap::new();
                    for pair in c["top_values"].as_array().map(Vec::as_slice).unwrap_or_default() {
                        if let (Some(v), Some(n)) = (pair[0].as_str(), pair[1].as_f64()) {
                            counts.insert(v.to_owned(), n);
                        }
                    }
                    let other = (count - counts.values().sum::<f64>()).max(0.0);
                    FeatureReference::Categories { counts, other, missing }
                }
                other => return Err(bad(format!("column `{name}`: unknown type {other:?}"))),
            };
            features.push((name.to_owned(), reference));
        }
        Ok(Reference { features })
    }
}

/// Drift of one feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// `number` or `string`.
    pub kind: &'static str,
    /// Values in the window (missing ones included).
    pub count: usize,
    pub psi: f64,
    /// Numbers: the Kolmogorov–Smirnov statistic and its p-value.
    pub ks: Option<f64>,
    pub ks_p_value: Option<f64>,
    /// Categories: chi-square and its p-value.
    pub chi_square: Option<f64>,
    pub chi_square_p_value: Option<f64>,
    pub missing_rate: f64,
    pub reference_missing_rate: f64,
}

/// Drift of every feature of `window` that the reference knows, in the window's column order, with
/// `bins` bins for the PSI over raw numbers. A feature of the wrong kind (text against numbers) is left
/// out; see [`schema_violations`].
pub fn drift(reference: &Reference, window: &[Column], bins: usize) -> Vec<FeatureDrift> {
    window
        .iter()
        .filter_map(|column| {
            let reference = reference.feature(&column.name)?;
            feature_drift(&column.name, reference, &column.values, bins)
        })
        .collect()
}

fn feature_drift(name: &str, reference: &FeatureReference, values: &Values, bins: usize) -> Option<FeatureDrift> {
    let count = values.len();
    let reference_missing_rate = reference.missing_rate();
    match (reference, values) {
        (FeatureReference::Values { sorted, .. }, Values::Number(v)) => {
            let current = sorted_present(v);
            let lo = sorted.first().copied().unwrap_or(0.0).min(current.first().copied().unwrap_or(f64::INFINITY));
            let hi = sorted.last().copied().unwrap_or(0.0).max(current.last().copied().unwrap_or(f64::NEG_INFINITY));
            let edges = stats::equal_width_edges(lo, hi, bins);
            let psi = stats::psi(&stats::bin_counts(sorted, &edges), &stats::bin_counts(&current, &edges));
            let ks = stats::ks_statistic(sorted, &current);
            Some(number_drift(name, count, current.len(), psi, ks, sorted.len(), reference_missing_rate))
        }
        (FeatureReference::Histogram { edges, counts, .. }, Values::Number(v)) => {
            let current = sorted_present(v);
            let psi = stats::psi(counts, &stats::bin_counts(&current, edges));
            let ks = stats::ks_against_histogram(&current, edges, counts);
            let n_reference = counts.iter().sum::<f64>() as usize;
            Some(number_drift(name, count, current.len(), psi, ks, n_reference, reference_missing_rate))
        }
        (FeatureReference::Categories { counts, other, .. }, Values::Text(v)) => {
            let mut current: BTreeMap<&str, f64> = BTreeMap::new();
            let mut current_other = 0.0;
            let mut present = 0usize;
            for s in v.iter().flatten() {
                present += 1;
                match counts.get_key_value(s.as_str()) {
                    Some((k, _)) => *current.entry(k.as_str()).or_insert(0.0) += 1.0,
                    None => current_other += 1.0,
                }
            }
            let mut expected: Vec<f64> = counts.values().copied().collect();
            let mut observed: Vec<f64> =
                counts.keys().map(|k| current.get(k.as_str()).copied().unwrap_or(0.0)).collect();
            if *other > 0.0 || current_other > 0.0 {
                expected.push(*other);
                observed.push(current_other);
            }
            let (chi, p) = stats::chi_square(&expected, &observed);
            Some(FeatureDrift {
                feature: name.to_owned(),
                kind: "string",
                count,
                psi: stats::psi(&expected, &observed),
                ks: None,
                ks_p_value: None,
                chi_square: Some(chi),
                chi_square_p_value: Some(p),
                missing_rate: rate((count - present) as f64, count as f64),
                reference_missing_rate,
            })
        }
        _ => None,
    }
}

/// A numeric feature's figures: `present` of the window's `count` rows had a value, compared with
/// `n_reference` reference values.
fn number_drift(
    name: &str,
    count: usize,
    present: usize,
    psi: f64,
    ks: f64,
    n_reference: usize,
    reference_missing_rate: f64,
) -> FeatureDrift {
    FeatureDrift {
        feature: name.to_owned(),
        kind: "number",
        count,
        psi,
        ks: Some(ks),
        ks_p_value: Some(stats::ks_p_value(ks, n_reference, present)),
        chi_square: None,
        chi_square_p_value: None,
        missing_rate: rate((count - present) as f64, count as f64),
        reference_missing_rate,
    }
}

/// Share of window rows with at least one value the reference does not allow: a text where numbers
/// are expected or the other way round (a whole column), a category never seen in training (when the
/// reference lists every category), or a feature the reference lacks.
pub fn schema_violations(reference: &Reference, window: &[Column]) -> f64 {
    let rows = window.first().map_or(0, |c| c.values.len());
    if rows == 0 {
        return 0.0;
    }
    let mut bad = vec![false; rows];
    for column in window {
        match (reference.feature(&column.name), &column.values) {
            (None, _) => bad.iter_mut().for_each(|b| *b = true),
            (Some(FeatureReference::Categories { counts, other, .. }), Values::Text(v)) if *other == 0.0 => {
                for (i, s) in v.iter().enumerate() {
                    if s.as_ref().is_some_and(|s| !counts.contains_key(s)) {
                        bad[i] = true;
                    }
                }
            }
            (Some(FeatureReference::Categories { .. }), Values::Number(_))
            | (Some(FeatureReference::Values { .. } | FeatureReference::Histogram { .. }), Values::Text(_)) => {
                bad.iter_mut().for_each(|b| *b = true)
            }
            _ => {}
        }
    }
    rate(bad.iter().filter(|b| **b).count() as f64, rows as f64)
}

fn sorted_present(v: &[Option<f64>]) -> Vec<f64> {
    let mut out: Vec<f64> = v.iter().flatten().copied().filter(|x| !x.is_nan()).collect();
    out.sort_by(f64::total_cmp);
    out
}

fn rate(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

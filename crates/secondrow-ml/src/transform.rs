//! Feature transforms: impute, standardize, min-max scale, one-hot, ordinal, drop and select.
//!
//! A [`TransformSpec`] (what the user asks for) is fitted on training data into a [`Transformer`] (the
//! fitted parameters: fill values, means, scales, category lists), which is saved on its own and inside
//! every model trained with it, and re-applied unchanged at prediction time.
//! Steps never touch the label column, so the same transformer works on tables without a label.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::{Column, ColumnValues, Table, TextMap};

/// What the user asks for: a list of steps, fitted in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    pub steps: Vec<StepSpec>,
}

/// One requested step; `columns` defaults to every feature column the step applies to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Fill missing cells: `mean`/`median` (numbers), `most_frequent` or `constant` (both kinds).
    Impute {
        #[serde(default)]
        columns: Option<Vec<String>>,
        #[serde(default = "default_strategy")]
        strategy: String,
        #[serde(default)]
        value: Option<serde_json::Value>,
    },
    /// Subtract the mean and divide by the (population) standard deviation.
    Standardize {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    /// Scale to [0, 1] using the fitted min and max.
    MinMax {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    /// Replace a categorical column by one 0/1 column per fitted category (`name=category`); unknown and
    /// missing values get all zeros.
    OneHot {
        #[serde(default)]
        columns: Option<Vec<String>>,
    },
    /// Replace categories by their index in the (given or sorted) category list; unknown and missing → -1.
    Ordinal {
        #[serde(default)]
        columns: Option<Vec<String>>,
        #[serde(default)]
        categories: Option<HashMap<String, Vec<String>>>,
    },
    Drop {
        columns: Vec<String>,
    },
    Select {
        columns: Vec<String>,
    },
}

fn default_strategy() -> String {
    "mean".to_string()
}

/// A fitted transformer, stored as JSON (`format: secondrow-transformer`, `version: 1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Transformer {
    pub format: String,
    pub version: u32,
    /// Column passed through untouched (the label), if any.
    pub label: Option<String>,
    /// Feature columns the transformer was fitted on.
    pub input_columns: Vec<String>,
    /// Feature columns it produces.
    pub output_columns: Vec<String>,
    pub steps: Vec<FittedStep>,
}

/// A fitted step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FittedStep {
    Impute { fills: Vec<(String, Fill)> },
    Standardize { columns: Vec<(String, f64, f64)> },
    MinMax { columns: Vec<(String, f64, f64)> },
    OneHot { columns: Vec<(String, Vec<String>)> },
    Ordinal { columns: Vec<(String, Vec<String>)> },
    Drop { columns: Vec<String> },
    Select { columns: Vec<String> },
}

/// A fill value for imputation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Fill {
    Number(f64),
    Text(String),
}

pub const TRANSFORMER_FORMAT: &str = "secondrow-transformer";

impl TransformSpec {
    /// Parses a spec from JSON: `{"steps": [...]}` or a bare list of steps.
    pub fn parse(text: &str) -> Result<TransformSpec> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::arg("spec", format!("not valid JSON: {e}")))?;
        let value = if value.is_array() { serde_json::json!({ "steps": value }) } else { value };
        serde_json::from_value(value).map_err(|e| Error::arg("spec", e.to_string()))
    }
}

impl Transformer {
    /// Fits `spec` on `table` (the label column, if named, is left alone) and returns the transformer
    /// and the transformed table.
    pub fn fit(spec: &TransformSpec, table: &Table, label: Option<&str>) -> Result<(Transformer, Table)> {
        if let Some(label) = label {
            table.column(label)?;
        }
        let features = |t: &Table| -> Vec<String> {
            t.columns.iter().filter(|c| Some(c.name.as_str()) != label).map(|c| c.name.clone()).collect()
        };
        let input_columns = features(table);
        let mut current = table.clone();
        let mut steps = Vec::with_capacity(spec.steps.len());
        for step in &spec.steps {
            let feature_names = features(&current);
            let pick = |columns: &Option<Vec<String>>, want_number: Option<bool>| -> Result<Vec<String>> {
                match columns {
                    Some(list) => {
                        for name in list {
                            current.column(name)?;
                            if Some(name.as_str()) == label {
                                return Err(Error::arg(
                                    "spec",
                                    format!("column `{name}` is the label and cannot be transformed"),
                                ));
                            }
                        }
                        Ok(list.clone())
                    }
                    None => Ok(feature_names
                        .iter()
                        .filter(|n| match want_number {
                            None => true,
                            Some(number) => current.find(n).is_some_and(|c| c.is_number() == number),
                        })
                        .cloned()
                        .collect()),
                }
            };
            let fitted = match step {
                StepSpec::Impute { columns, strategy, value } => {
                    let want = match strategy.as_str() {
                        "mean" | "median" => Some(true),
                        "most_frequent" | "constant" => None,
                        other => {
                            return Err(Error::arg(
                                "spec",
                                format!("impute strategy `{other}`: expected mean, median, most_frequent or constant"),
                            ))
                        }
                    };
                    let mut fills = Vec::new();
                    for name in pick(columns, want)? {
                        let column = current.column(&name)?;
                        fills.push((name.clone(), fit_fill(column, strategy, value.as_ref())?));
                    }
                    FittedStep::Impute { fills }
                }
                StepSpec::Standardize { columns } => {
                    let mut fitted = Vec::new();
                    for name in pick(columns, Some(true))? {
                        let values = present(&current.column(&name)?.to_numbers()?);
                        let (mean, std) = mean_std(&values);
                        fitted.push((name, mean, if std > 0.0 { std } else { 1.0 }));
                    }
                    FittedStep::Standardize { columns: fitted }
                }
                StepSpec::MinMax { columns } => {
                    let mut fitted = Vec::new();
                    for name in pick(columns, Some(true))? {
                        let values = present(&current.column(&name)?.to_numbers()?);
                        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let (min, max) = if values.is_empty() { (0.0, 1.0) } else { (min, max) };
                        fitted.push((name, min, max));
                    }
                    FittedStep::MinMax { columns: fitted }
                }
                StepSpec::OneHot { columns } => {
                    let mut fitted = Vec::new();
                    for name in pick(columns, Some(false))? {
                        fitted.push((name.clone(), categories(current.column(&name)?)));
                    }
                    FittedStep::OneHot { columns: fitted }
                }
                StepSpec::Ordinal { columns, categories: given } => {
                    let mut fitted = Vec::new();
                    for name in pick(columns, Some(false))? {
                        let cats = match given.as_ref().and_then(|g| g.get(&name)) {
                            Some(list) => list.clone(),
                            None => categories(current.column(&name)?),
                        };
                        fitted.push((name.clone(), cats));
                    }
                    FittedStep::Ordinal { columns: fitted }
                }
                StepSpec::Drop { columns } => {
                    for name in columns {
                        current.column(name)?;
                    }
                    FittedStep::Drop { columns: columns.clone() }
                }
                StepSpec::Select { columns } => {
                    for name in columns {
                        current.column(name)?;
                    }
                    FittedStep::Select { columns: columns.clone() }
                }
            };
            current = apply_step(&fitted, current, label)?;
            steps.push(fitted);
        }
        let output_columns = features(&current);
        let transformer = Transformer {
            format: TRANSFORMER_FORMAT.to_string(),
            version: 1,
            label: label.map(str::to_string),
            input_columns,
            output_columns,
            steps,
        };
        Ok((transformer, current))
    }

    /// Applies the fitted steps to `table` (which may lack the label column).
    pub fn apply(&self, table: &Table) -> Result<Table> {
        let mut current = table.clone();
        for step in &self.steps {
            current = apply_step(step, current, self.label.as_deref())?;
        }
        Ok(current)
    }
}

fn present(values: &[f64]) -> Vec<f64> {
    values.iter().copied().filter(|v| !v.is_nan()).collect()
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The distinct present values of `column` as text, sorted.
fn categories(column: &Column) -> Vec<String> {
    let mut cats: Vec<String> = column.text_counts().into_keys().collect();
    cats.sort_unstable();
    cats
}

fn fit_fill(column: &Column, strategy: &str, value: Option<&serde_json::Value>) -> Result<Fill> {
    match strategy {
        "mean" | "median" => {
            let mut values = present(&column.to_numbers()?);
            if values.is_empty() {
                return Err(Error::InvalidData(format!("column `{}`: no values to impute from", column.name)));
            }
            if strategy == "mean" {
                Ok(Fill::Number(values.iter().sum::<f64>() / values.len() as f64))
            } else {
                let n = values.len();
                let (lower, &mut upper, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
                let median = if n % 2 == 1 {
                    upper
                } else {
                    // The largest of the lower half is the other middle value.
                    let below = lower.iter().copied().max_by(f64::total_cmp).unwrap_or(upper);
                    (below + upper) / 2.0
                };
                Ok(Fill::Number(median))
            }
        }
        "most_frequent" => {
            let counts = column.text_counts();
            // Ties go to the smallest value, as in scikit-learn.
            let best = counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((text, _)) = best else {
                return Err(Error::InvalidData(format!("column `{}`: no values to impute from", column.name)));
            };
            Ok(if column.is_number() { Fill::Number(text.parse().unwrap_or(f64::NAN)) } else { Fill::Text(text) })
        }
        _ => match value {
            Some(serde_json::Value::Number(n)) => Ok(Fill::Number(n.as_f64().unwrap_or(0.0))),
            Some(serde_json::Value::String(s)) if column.is_number() => s
                .parse()
                .map(Fill::Number)
                .map_err(|_| Error::arg("spec", format!("column `{}`: constant `{s}` is not a number", column.name))),
            Some(serde_json::Value::String(s)) => Ok(Fill::Text(s.clone())),
            _ => Err(Error::arg("spec", format!("column `{}`: constant impute needs a `value`", column.name))),
        },
    }
}

/// Whether entry `i` of a step, for column `name`, is followed by another entry for the same column.
fn listed_again<'a>(names: impl Iterator<Item = &'a String>, i: usize, name: &str) -> bool {
    names.skip(i + 1).any(|n| n == name)
}

/// Applies one fitted step to `table`, in place. A column listed twice in a step is transformed once,
/// from its input values, by its last entry (as if every entry read the step's input table).
fn apply_step(step: &FittedStep, mut table: Table, label: Option<&str>) -> Result<Table> {
    match step {
        FittedStep::Impute { fills } => {
            for (i, (name, fill)) in fills.iter().enumerate() {
                let column = table.column_mut(name)?;
                if listed_again(fills.iter().map(|f| &f.0), i, name) {
                    continue;
                }
                match (&mut column.values, fill) {
                    (ColumnValues::Number(v), Fill::Number(f)) => {
                        v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = *f)
                    }
                    (ColumnValues::Text(v), fill) => {
                        let f = match fill {
                            Fill::Number(x) => crate::table::format_number(*x),
                            Fill::Text(s) => s.clone(),
                        };
                        v.iter_mut().filter(|x| x.is_none()).for_each(|x| *x = Some(f.clone()));
                    }
                    (ColumnValues::Number(v), Fill::Text(s)) => {
                        // A text fill on a column that now reads as numbers: fill the text form.
                        let f = s.parse::<f64>().map_err(|_| Error::NonNumeric {
                            column: name.clone(),
                            row: 0,
                            value: s.clone(),
                        })?;
                        v.iter_mut().filter(|x| x.is_nan()).for_each(|x| *x = f);
                    }
                }
            }
        }
        FittedStep::Standardize { columns } | FittedStep::MinMax { columns } => {
            let standardize = matches!(step, FittedStep::Standardize { .. });
            for (i, (name, a, b)) in columns.iter().enumerate() {
                let column = table.column_mut(name)?;
                if listed_again(columns.iter().map(|c| &c.0), i, name) {
                    continue;
                }
                if !column.is_number() {
                    column.values = ColumnValues::Number(column.to_numbers()?);
                }
                if let ColumnValues::Number(values) = &mut column.values {
                    for x in values.iter_mut() {
                        *x = if standardize {
                            (*x - a) / b
                        } else if b > a {
                            (*x - a) / (b - a)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        FittedStep::OneHot { columns } => {
            // Columns already replaced in this step, should one be listed again.
            let mut replaced: Vec<Column> = Vec::new();
            for (name, cats) in columns {
                let (column, position) = match table.columns.iter().position(|c| &c.name == name) {
                    Some(position) => (table.columns.remove(position), position),
                    // Listed again in this step: encoded once more, at the end.
                    None => match replaced.iter().find(|c| &c.name == name) {
                        Some(column) => (column.clone(), table.columns.len()),
                        None => return Err(table.missing_column(name)),
                    },
                };
                let index: TextMap<usize> = cats.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
                let mut encoded = vec![vec![0.0; column.len()]; cats.len()];
                column.for_each_text(|row, text| {
                    if let Some(&k) = text.and_then(|t| index.get(t)) {
                        encoded[k][row] = 1.0;
                    }
                });
                table.columns.retain(|c| &c.name != name);
                let position = position.min(table.columns.len());
                let new_columns = cats.iter().zip(encoded).map(|(cat, v)| Column::number(&format!("{name}={cat}"), v));
                table.columns.splice(position..position, new_columns);
                replaced.push(column);
            }
        }
        FittedStep::Ordinal { columns } => {
            for (i, (name, cats)) in columns.iter().enumerate() {
                let column = table.column_mut(name)?;
                if listed_again(columns.iter().map(|c| &c.0), i, name) {
                    continue;
                }
                let index: TextMap<usize> = cats.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
                let mut values = vec![-1.0; column.len()];
                column.for_each_text(|row, text| {
                    if let Some(&k) = text.and_then(|t| index.get(t)) {
                        values[row] = k as f64;
                    }
                });
                column.values = ColumnValues::Number(values);
            }
        }
        FittedStep::Drop { columns } => {
            table.columns.retain(|c| !columns.contains(&c.name));
        }
        FittedStep::Select { columns } => {
            for name in columns {
                table.column(name)?;
            }
            table.columns.retain(|c| columns.contains(&c.name) || Some(c.name.as_str()) == label);
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests;

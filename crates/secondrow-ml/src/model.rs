//! The model file: one versioned JSON document holding the fitted estimator together with everything
//! needed to predict from raw data — the fitted [`Transformer`], the feature names, the label and the
//! class names. See the crate README for the format.
//!
//! Invariant: `Model::predict` on a raw table gives the same result as the evaluation component, because
//! both go through [`Model::features`].

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::estimator::{Estimator, Task};
use crate::table::{format_number, Column, ColumnValues, Matrix, Table, TextMap};
use crate::transform::Transformer;

/// `format` field of every model file.
pub const MODEL_FORMAT: &str = "secondrow-model";
/// Current `version` of the model format.
pub const MODEL_VERSION: u32 = 1;

/// A trained model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Model {
    pub format: String,
    pub version: u32,
    /// Algorithm name (`random_forest`, ...).
    pub kind: String,
    pub task: Task,
    /// Label column used in training (`None` for clustering without one).
    pub label: Option<String>,
    /// Columns the estimator reads, after the transformer.
    pub feature_names: Vec<String>,
    /// Class names in estimator order (classification only).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Fitted transforms applied to raw input before the estimator.
    #[serde(default)]
    pub transformer: Option<Transformer>,
    /// Hyperparameters as given.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Facts about the training run (rows, seconds, iterations).
    #[serde(default)]
    pub training: serde_json::Value,
    pub estimator: Estimator,
}

/// Predictions for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// Class names (classification), formatted values (regression) or cluster ids (clustering).
    pub labels: Vec<String>,
    /// Numeric predictions: class index, value or cluster id.
    pub values: Vec<f64>,
    /// Class probabilities (classification only), n × classes.
    pub proba: Option<Matrix>,
}

/// Loads and checks a model file.
pub fn load_model(path: &Path) -> Result<Model> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidModelFile { path: path.to_path_buf(), message: format!("not JSON: {e}") })?;
    let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
    if format != MODEL_FORMAT {
        let message = if format.is_empty() {
            "no `format` field".to_string()
        } else {
            format!("format is `{format}`, expected `{MODEL_FORMAT}`")
        };
        return Err(Error::InvalidModelFile { path: path.to_path_buf(), message });
    }
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
    if version != MODEL_VERSION as u64 {
        return Err(Error::InvalidModelFile {
            path: path.to_path_buf(),
            message: format!("version {version} is not supported (this build reads version {MODEL_VERSION})"),
        });
    }
    serde_json::from_value(value)
        .map_err(|e| Error::InvalidModelFile { path: path.to_path_buf(), message: e.to_string() })
}

impl Model {
    /// The model as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidData(format!("cannot serialise model: {e}")))
    }

    /// Applies the transformer and extracts the feature matrix from a raw table.
    pub fn features(&self, table: &Table) -> Result<Matrix> {
        let transformed;
        let table = match &self.transformer {
            Some(t) => {
                transformed = t.apply(table)?;
                &transformed
            }
            None => table,
        };
        table.feature_matrix(&self.feature_names)
    }

    /// Predicts from a raw table (it may lack the label column).
    pub fn predict(&self, table: &Table) -> Result<Predictions> {
        let x = self.features(table)?;
        Ok(self.predict_features(&x))
    }

    /// Predicts from raw numeric rows, in the order of the transformer's input columns (or of
    /// `feature_names` when there is no transformer).
    pub fn predict_rows(&self, rows: &[Vec<f64>]) -> Result<Predictions> {
        let names = self.input_columns();
        let mut columns = Vec::with_capacity(names.len());
        for (j, name) in names.iter().enumerate() {
            let mut values = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                if row.len() != names.len() {
                    return Err(Error::InvalidData(format!(
                        "row {}: expected {} values ({}), got {}",
                        i + 1,
                        names.len(),
                        names.join(", "),
                        row.len()
                    )));
                }
                values.push(row[j]);
            }
            columns.push(Column::number(name, values));
        }
        self.predict(&Table::new(columns))
    }

    /// Class probabilities from a raw table (classification only).
    pub fn predict_proba(&self, table: &Table) -> Result<Matrix> {
        self.predict(table)?.proba.ok_or_else(|| Error::WrongModelKind {
            path: Default::default(),
            found: self.kind.clone(),
            expected: "probabilities need a classification model".into(),
        })
    }

    /// Raw input columns the model expects.
    pub fn input_columns(&self) -> Vec<String> {
        match &self.transformer {
            Some(t) => t.input_columns.clone(),
            None => self.feature_names.clone(),
        }
    }

    /// Predicts from an already transformed feature matrix.
    pub fn predict_features(&self, x: &Matrix) -> Predictions {
        let out = self.estimator.predict_matrix(x);
        match self.task {
            Task::Classification => {
                let k = out.n_cols;
                let values: Vec<f64> = (0..out.n_rows)
                    .map(|i| {
                        let row = out.row(i);
                        let mut best = 0;
                        for c in 1..k {
                            if row[c] > row[best] {
                                best = c;
                            }
                        }
                        best as f64
                    })
                    .collect();
                let labels =
                    values.iter().map(|&c| self.classes.get(c as usize).cloned().unwrap_or_default()).collect();
                Predictions { labels, values, proba: Some(out) }
            }
            Task::Regression | Task::Clustering => {
                let values = out.data;
                Predictions { labels: values.iter().map(|&v| format_number(v)).collect(), values, proba: None }
            }
        }
    }
}

/// Encodes a label column as class indices; classes are sorted numerically when all are numbers.
pub fn encode_classes(table: &Table, label: &str) -> Result<(Vec<usize>, Vec<String>)> {
    let column = table.column(label)?;
    if let Some(row) = (0..column.len()).find(|&row| column.is_missing(row)) {
        return Err(Error::MissingValues { column: label.to_string(), count: column.n_missing(), row: row + 1 });
    }
    let mut classes: Vec<String> = column.text_counts().into_keys().collect();
    classes.sort();
    if classes.iter().all(|c| c.parse::<f64>().is_ok()) {
        classes.sort_by(|a, b| a.parse::<f64>().unwrap_or(0.0).total_cmp(&b.parse::<f64>().unwrap_or(0.0)));
    }
    if classes.len() < 2 {
        return Err(Error::SingleClass {
            column: label.to_string(),
            class: classes.first().cloned().unwrap_or_default(),
        });
    }
    let index: TextMap<usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let class_of = |text: &str| {
        index
            .get(text)
            .copied()
            .ok_or_else(|| Error::InvalidData(format!("column `{label}`: class `{text}` has no index")))
    };
    let y = match &column.values {
        // Numbers are formatted once per distinct value, not once per row.
        ColumnValues::Number(v) => {
            let mut by_bits: HashMap<u64, usize> = HashMap::new();
            let mut y = Vec::with_capacity(v.len());
            for x in v {
                let class = match by_bits.get(&x.to_bits()) {
                    Some(&class) => class,
                    None => {
                        let class = class_of(&format_number(*x))?;
                        by_bits.insert(x.to_bits(), class);
                        class
                    }
                };
                y.push(class);
            }
            y
        }
        ColumnValues::Text(v) => v.iter().map(|t| class_of(t.as_deref().unwrap_or_default())).collect::<Result<_>>()?,
    };
    Ok((y, classes))
}

/// Maps a label column onto known classes; unknown labels are an error naming the value.
pub fn encode_known_classes(table: &Table, label: &str, classes: &[String]) -> Result<Vec<usize>> {
    let column = table.column(label)?;
    let index: TextMap<usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    (0..column.len())
        .map(|row| {
            let text = column.cell_text(row).ok_or_else(|| Error::MissingValues {
                column: label.to_string(),
                count: column.n_missing(),
                row: row + 1,
            })?;
            index.get(text.as_str()).copied().ok_or_else(|| {
                Error::InvalidData(format!(
                    "column `{label}`: row {}: class `{text}` was not seen in training (known: {})",
                    row + 1,
                    classes.join(", ")
                ))
            })
        })
        .collect()
}

/// Adds prediction columns to `table`: `prediction`, and `probability_<class>` per class.
pub fn append_predictions(table: &mut Table, model: &Model, predictions: &Predictions) {
    let numeric_labels = model.task != Task::Classification || model.classes.iter().all(|c| c.parse::<f64>().is_ok());
    let prediction = if model.task == Task::Classification && !numeric_labels {
        ColumnValues::Text(predictions.labels.iter().map(|l| Some(l.clone())).collect())
    } else if model.task == Task::Classification {
        ColumnValues::Number(predictions.labels.iter().map(|l| l.parse().unwrap_or(f64::NAN)).collect())
    } else {
        ColumnValues::Number(predictions.values.clone())
    };
    table.set_column(Column { name: "prediction".into(), values: prediction });
    if let Some(proba) = &predictions.proba {
        for (c, class) in model.classes.iter().enumerate() {
            table.set_column(Column::number(&format!("probability_{class}"), proba.column(c)));
        }
    }
}

//! The inference observer hook: a way for whoever runs the server (the `secondrow server` deployments)
//! to see sampled requests and their answers, for prediction logging and monitoring, without this crate
//! knowing where they go.
//!
//! The repository asks [`InferenceObserver::sample`] on every inference (it must be cheap and must not
//! block); only for a sampled request are the inputs kept and turned into named feature columns
//! ([`ObservedRows`]) after a successful prediction. [`InferenceObserver::record`] must not block either
//! (hand the rows to a bounded queue and drop when it is full).

use crate::runtime::Runtime;
use crate::tensor::{Tensor, TensorData};

/// Sees sampled inferences of the repository it is installed in ([`crate::Repository::set_observer`]).
pub trait InferenceObserver: Send + Sync + 'static {
    /// Whether this request of `model` is logged. Called on every inference.
    fn sample(&self, model: &str) -> bool;
    /// A sampled request that was answered.
    fn record(&self, record: ObservedInference);
    /// Prometheus text appended to `/metrics` (with its own `# HELP`/`# TYPE` lines).
    fn render_metrics(&self, _out: &mut String) {}
}

/// One sampled, answered request: its rows as named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedInference {
    pub model: String,
    pub version: String,
    /// The request id (V2 `id`, or generated and returned to the caller).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub rows: ObservedRows,
}

/// Rows of a request: the input features and the prediction, column by column.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedRows {
    pub len: usize,
    /// Input features, in the model's column order.
    pub features: Vec<ObservedColumn>,
    /// The first output, one value per row (the label of a classifier, the value of a regressor).
    pub prediction: Option<ObservedValues>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedColumn {
    pub name: String,
    pub values: ObservedValues,
}

/// A column's values; `None` (numbers: NaN) is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservedValues {
    Number(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

impl ObservedRows {
    /// Names the columns of the model's inputs (its column names where it has them, else
    /// `INPUT` for a one-column input and `INPUT[j]` for column `j` of a wider one) and takes the
    /// first output as the prediction. Returns `None` for inputs it cannot lay out as rows.
    pub fn from_tensors(runtime: &dyn Runtime, inputs: &[Tensor], outputs: &[Tensor]) -> Option<ObservedRows> {
        let len = inputs.first()?.rows();
        let named = runtime.column_names();
        let mut next_named = 0;
        let mut features = Vec::new();
        for tensor in inputs {
            if tensor.rows() != len {
                return None;
            }
            let width = tensor.data.len().checked_div(len).unwrap_or(0);
            let values = values_of(&tensor.data);
            for j in 0..width {
                let name = match named.and_then(|n| n.get(next_named)) {
                    Some(n) => n.clone(),
                    None if width == 1 => tensor.name.clone(),
                    None => format!("{}[{j}]", tensor.name),
                };
                next_named += 1;
                features.push(ObservedColumn { name, values: values.column(j, width, len) });
            }
        }
        let prediction = outputs.first().filter(|t| t.data.len() == len).map(|t| values_of(&t.data).column(0, 1, len));
        Some(ObservedRows { len, features, prediction })
    }
}

impl ObservedValues {
    fn column(&self, j: usize, width: usize, len: usize) -> ObservedValues {
        match self {
            ObservedValues::Number(v) => {
                ObservedValues::Number((0..len).map(|i| v.get(i * width + j).copied().flatten()).collect())
            }
            ObservedValues::Text(v) => {
                ObservedValues::Text((0..len).map(|i| v.get(i * width + j).cloned().flatten()).collect())
            }
        }
    }
}

fn values_of(data: &TensorData) -> ObservedValues {
    match data {
        TensorData::Bytes(cells) => ObservedValues::Text(
            cells.iter().map(|c| (!c.is_empty()).then(|| String::from_utf8_lossy(c).into_owned())).collect(),
        ),
        TensorData::Bool(v) => ObservedValues::Number(v.iter().map(|&b| Some(f64::from(u8::from(b)))).collect()),
        other => ObservedValues::Number(
            other.to_f64().unwrap_or_default().into_iter().map(|x| (!x.is_nan()).then_some(x)).collect(),
        ),
    }
}

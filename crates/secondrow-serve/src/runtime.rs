//! Model runtimes: what a loaded model file can do — describe its inputs and outputs and predict on a
//! batch of tensors. Three are built in: ONNX-ML graphs (tree ensembles, linear models) evaluated
//! natively by [`crate::native`], any other ONNX graph through tract (pure Rust), and SecondRow's own
//! model format from `secondrow-ml`. A runtime never sees HTTP; inputs reach it already checked against its
//! [`TensorSpec`]s (see `repository::check_inputs`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::ModelError;
use crate::native::NativeGraph;
pub use crate::tensor::TensorSpec;
use crate::tensor::{Datatype, Tensor as V2Tensor, TensorData};

/// A loaded model file.
pub trait Runtime: Send + Sync + 'static {
    /// The V2 metadata `platform` string.
    fn platform(&self) -> &'static str;
    fn inputs(&self) -> &[TensorSpec];
    fn outputs(&self) -> &[TensorSpec];
    /// Whether input `index` takes `datatype` (by default only its declared one).
    fn accepts(&self, index: usize, datatype: Datatype) -> bool {
        self.inputs().get(index).is_some_and(|spec| spec.datatype == datatype)
    }
    /// Names of the model's raw columns, where it knows them (V1 object rows): those not in
    /// [`Runtime::text_columns`] fill input 0 ([N, F], numbers), the text columns input 1 ([N, T], strings).
    fn column_names(&self) -> Option<&[String]> {
        None
    }
    /// The columns of [`Runtime::column_names`] that are read as text.
    fn text_columns(&self) -> &[String] {
        &[]
    }
    /// Whether a NaN in column `column` of input `index` is a missing value the model fills in (an
    /// imputing transform); otherwise NaN, like infinity, is refused before predicting.
    fn takes_missing(&self, index: usize, column: usize) -> bool {
        let _ = (index, column);
        false
    }
    /// Predicts on inputs given in the order of [`Runtime::inputs`]; returns every output in the order
    /// of [`Runtime::outputs`]. The error is a message for the client.
    fn predict(&self, inputs: Vec<V2Tensor>) -> Result<Vec<V2Tensor>, ModelError>;
}

/// Loads a model file, choosing the runtime by its extension: `.onnx` for ONNX, anything else is read
/// as a SecondRow model file (JSON). An ONNX graph made only of the classic-ML ops [`OnnxMlRuntime`]
/// evaluates runs there; any other graph runs on tract.
pub fn load(path: &Path) -> Result<Arc<dyn Runtime>, ModelError> {
    let is_onnx = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if !is_onnx {
        return Ok(Arc::new(SecondrowModelRuntime::load(path)?));
    }
    match OnnxMlRuntime::load(path) {
        Ok(Some(native)) => return Ok(Arc::new(native)),
        Ok(None) => {}
        Err(message) => {
            tracing::warn!(path = %path.display(), %message, "native ONNX-ML evaluation refused the graph; using tract")
        }
    }
    Ok(Arc::new(TractRuntime::load(path)?))
}

/// An ONNX graph of tree ensembles, linear models and their helper ops, evaluated by
/// [`crate::native`] without tract.
pub struct OnnxMlRuntime {
    graph: NativeGraph,
}

impl OnnxMlRuntime {
    /// `Ok(None)` when the graph holds an op the native evaluator does not have.
    pub fn load(path: &Path) -> Result<Option<OnnxMlRuntime>, ModelError> {
        let proto = tract_onnx::onnx().proto_model_for_path(path).map_err(|e| ModelError(format!("{e:#}")))?;
        Ok(NativeGraph::from_proto(&proto)?.map(|graph| OnnxMlRuntime { graph }))
    }
}

impl Runtime for OnnxMlRuntime {
    fn platform(&self) -> &'static str {
        "onnx"
    }
    fn inputs(&self) -> &[TensorSpec] {
        self.graph.inputs()
    }
    fn outputs(&self) -> &[TensorSpec] {
        self.graph.outputs()
    }
    fn predict(&self, inputs: Vec<V2Tensor>) -> Result<Vec<V2Tensor>, ModelError> {
        let input = inputs.into_iter().next().ok_or("no input")?;
        self.graph.predict(input)
    }
}

/// Run states a [`TractRuntime`] keeps for reuse (more concurrent calls spawn fresh ones).
const MAX_POOLED_STATES: usize = 16;

/// An ONNX graph optimized and planned by tract; the variable batch dimension stays symbolic.
pub struct TractRuntime {
    plan: Arc<TypedRunnableModel>,
    /// Run states of finished calls, reused: spawning one per call allocates every node's state.
    states: Mutex<Vec<TypedSimpleState>>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl TractRuntime {
    pub fn load(path: &Path) -> Result<TractRuntime, ModelError> {
        let run = || -> Result<TractRuntime, String> {
            let mut model = tract_onnx::onnx().model_for_path(path).map_err(|e| format!("{e:#}"))?;
            let batch = model.sym("N");
            let mut inputs = Vec::new();
            for (index, outlet) in model.input_outlets().map_err(|e| e.to_string())?.to_vec().into_iter().enumerate() {
                let name = model.node(outlet.node).name.clone();
                let fact = model.input_fact(index).map_err(|e| e.to_string())?.clone();
                let datum =
                    fact.datum_type.concretize().ok_or_else(|| format!("input `{name}` has no element type"))?;
                let datatype = datatype_of(datum)
                    .ok_or_else(|| format!("input `{name}`: element type {datum:?} is not a V2 datatype"))?;
                let mut dims: Vec<TDim> = Vec::new();
                let mut shape = Vec::new();
                for (j, dim) in fact.shape.dims().enumerate() {
                    match dim.concretize().and_then(|d| d.to_i64().ok()) {
                        Some(d) => {
                            dims.push(TDim::Val(d));
                            shape.push(d);
                        }
                        None if j == 0 => {
                            dims.push(TDim::Sym(batch.clone()));
                            shape.push(-1);
                        }
                        None => {
                            return Err(format!("input `{name}`: dimension {j} is not fixed (only the first may vary)"))
                        }
                    }
                }
                model
                    .set_input_fact(index, InferenceFact::dt_shape(datum, dims))
                    .map_err(|e| format!("input `{name}`: {e:#}"))?;
                inputs.push(TensorSpec { name, datatype, shape });
            }
            let output_names: Vec<String> = model
                .output_outlets()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|o| model.outlet_label(*o).map(str::to_owned).unwrap_or_else(|| model.node(o.node).name.clone()))
                .collect();
            let typed = model.into_optimized().map_err(|e| format!("{e:#}"))?;
            let mut outputs = Vec::new();
            for (index, name) in output_names.into_iter().enumerate() {
                let fact = typed.output_fact(index).map_err(|e| e.to_string())?;
                let datatype = datatype_of(fact.datum_type).ok_or_else(|| {
                    format!("output `{name}`: element type {:?} is not a V2 datatype", fact.datum_type)
                })?;
                let shape = fact.shape.iter().map(|d| d.to_i64().unwrap_or(-1)).collect();
                outputs.push(TensorSpec { name, datatype, shape });
            }
            let plan = typed.into_runnable().map_err(|e| format!("{e:#}"))?;
            Ok(TractRuntime { plan, states: Mutex::new(Vec::new()), inputs, outputs })
        };
        Ok(run()?)
    }
}

impl Runtime for TractRuntime {
    fn platform(&self) -> &'static str {
        "onnx"
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    fn predict(&self, inputs: Vec<V2Tensor>) -> Result<Vec<V2Tensor>, ModelError> {
        let run = || -> Result<Vec<V2Tensor>, String> {
            let values: TVec<TValue> =
                inputs.into_iter().map(|t| to_tract(t).map(TValue::from)).collect::<Result<_, String>>()?;
            let pooled = self.states.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut state = match pooled {
                Some(state) => state,
                None => self.plan.spawn().map_err(|e| format!("{e:#}"))?,
            };
            let results = state.run(values).map_err(|e| format!("{e:#}"))?;
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            if states.len() < MAX_POOLED_STATES {
                states.push(state);
            }
            drop(states);
            results.into_iter().zip(&self.outputs).map(|(value, spec)| from_tract(&spec.name, &value)).collect()
        };
        Ok(run()?)
    }
}

fn datatype_of(datum: DatumType) -> Option<Datatype> {
    Some(match datum {
        DatumType::Bool => Datatype::Bool,
        DatumType::U8 => Datatype::Uint8,
        DatumType::U16 => Datatype::Uint16,
        DatumType::U32 => Datatype::Uint32,
        DatumType::U64 => Datatype::Uint64,
        DatumType::I8 => Datatype::Int8,
        DatumType::I16 => Datatype::Int16,
        DatumType::I32 => Datatype::Int32,
        DatumType::I64 => Datatype::Int64,
        DatumType::F16 => Datatype::Fp16,
        DatumType::F32 => Datatype::Fp32,
        DatumType::F64 => Datatype::Fp64,
        DatumType::String => Datatype::Bytes,
        // Integer arithmetic on shapes (ArgMax indices in some exported graphs) is typed TDim by tract.
        DatumType::TDim => Datatype::Int64,
        _ => return None,
    })
}

fn to_tract(t: V2Tensor) -> Result<Tensor, String> {
    let shape = t.shape;
    let result = match t.data {
        TensorData::Bool(v) => Tensor::from_shape(&shape, &v),
        TensorData::Uint8(v) => Tensor::from_shape(&shape, &v),
        TensorData::Uint16(v) => Tensor::from_shape(&shape, &v),
        TensorData::Uint32(v) => Tensor::from_shape(&shape, &v),
        TensorData::Uint64(v) => Tensor::from_shape(&shape, &v),
        TensorData::Int8(v) => Tensor::from_shape(&shape, &v),
        TensorData::Int16(v) => Tensor::from_shape(&shape, &v),
        TensorData::Int32(v) => Tensor::from_shape(&shape, &v),
        TensorData::Int64(v) => Tensor::from_shape(&shape, &v),
        TensorData::Fp16(v) => Tensor::from_shape(&shape, &v),
        TensorData::Fp32(v) => Tensor::from_shape(&shape, &v),
        TensorData::Fp64(v) => Tensor::from_shape(&shape, &v),
        TensorData::Bytes(v) => {
            let strings: Vec<String> = v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
            tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(&shape), strings)
                .map(|array| array.into_tensor())
                .map_err(|e| TractError::msg(e.to_string()))
        }
    };
    result.map_err(|e| format!("input `{}`: {e:#}", t.name))
}

fn from_tract(name: &str, t: &Tensor) -> Result<V2Tensor, String> {
    fn slice<T: Datum + Clone>(name: &str, t: &Tensor) -> Result<Vec<T>, String> {
        t.to_plain_array_view::<T>()
            .map(|view| view.iter().cloned().collect())
            .map_err(|e| format!("output `{name}`: {e:#}"))
    }
    let data = match t.datum_type() {
        DatumType::Bool => TensorData::Bool(slice(name, t)?),
        DatumType::U8 => TensorData::Uint8(slice(name, t)?),
        DatumType::U16 => TensorData::Uint16(slice(name, t)?),
        DatumType::U32 => TensorData::Uint32(slice(name, t)?),
        DatumType::U64 => TensorData::Uint64(slice(name, t)?),
        DatumType::I8 => TensorData::Int8(slice(name, t)?),
        DatumType::I16 => TensorData::Int16(slice(name, t)?),
        DatumType::I32 => TensorData::Int32(slice(name, t)?),
        DatumType::I64 => TensorData::Int64(slice(name, t)?),
        DatumType::F16 => TensorData::Fp16(slice(name, t)?),
        DatumType::F32 => TensorData::Fp32(slice(name, t)?),
        DatumType::F64 => TensorData::Fp64(slice(name, t)?),
        DatumType::String => TensorData::Bytes(slice::<String>(name, t)?.into_iter().map(String::into_bytes).collect()),
        DatumType::TDim => {
            let cast = t.cast_to::<i64>().map_err(|e| format!("output `{name}`: {e:#}"))?;
            TensorData::Int64(slice(name, &cast)?)
        }
        other => return Err(format!("output `{name}`: element type {other:?} is not a V2 datatype")),
    };
    Ok(V2Tensor { name: name.to_owned(), shape: t.shape().to_vec(), data })
}

/// A SecondRow model file (`secondrow-ml`'s format): input `input-0` of shape [-1, F] whose columns are
/// the model's raw numeric input columns and, for a model whose transformer one-hot or ordinal encodes
/// columns, `text_input` [-1, T] with those columns as strings (empty = missing) — the layout of its
/// ONNX export; outputs `label` (class names) and `probabilities` for classifiers, `prediction` otherwise.
pub struct SecondrowModelRuntime {
    model: secondrow_ml::Model,
    /// Numeric columns, then text columns.
    columns: Vec<String>,
    n_numeric: usize,
    /// Per numeric column: whether the model's transformer imputes it.
    imputed: Vec<bool>,
    classification: bool,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

/// Name of the one input of a built-in model (the name KServe's sklearn examples use).
pub const BUILTIN_INPUT: &str = "input-0";
/// Name of the text input of a built-in model with categorical columns (as in its ONNX export).
pub const BUILTIN_TEXT_INPUT: &str = "text_input";

impl SecondrowModelRuntime {
    pub fn load(path: &Path) -> Result<SecondrowModelRuntime, ModelError> {
        let run = || -> Result<SecondrowModelRuntime, String> {
            let model = secondrow_ml::load_model(path).map_err(|e| e.to_string())?;
            // A transformer the ONNX layout does not cover reads every column as a number, as before.
            let (numeric, text) =
                secondrow_ml::onnx::input_layout(&model).unwrap_or_else(|_| (model.input_columns(), Vec::new()));
            let classification = !model.classes.is_empty();
            let mut inputs = vec![TensorSpec {
                name: BUILTIN_INPUT.into(),
                datatype: Datatype::Fp32,
                shape: vec![-1, numeric.len() as i64],
            }];
            if !text.is_empty() {
                inputs.push(TensorSpec {
                    name: BUILTIN_TEXT_INPUT.into(),
                    datatype: Datatype::Bytes,
                    shape: vec![-1, text.len() as i64],
                });
            }
            let n_numeric = numeric.len();
            let imputes = |column: &String| {
                model.transformer.iter().flat_map(|t| &t.steps).any(|step| match step {
                    secondrow_ml::transform::FittedStep::Impute { fills } => fills.iter().any(|(c, _)| c == column),
                    _ => false,
                })
            };
            let imputed = numeric.iter().map(imputes).collect();
            let columns = numeric.into_iter().chain(text).collect();
            let outputs = if classification {
                vec![
                    TensorSpec { name: "label".into(), datatype: Datatype::Bytes, shape: vec![-1] },
                    TensorSpec {
                        name: "probabilities".into(),
                        datatype: Datatype::Fp64,
                        shape: vec![-1, model.classes.len() as i64],
                    },
                ]
            } else {
                vec![TensorSpec { name: "prediction".into(), datatype: Datatype::Fp64, shape: vec![-1] }]
            };
            Ok(SecondrowModelRuntime { model, columns, n_numeric, imputed, classification, inputs, outputs })
        };
        Ok(run()?)
    }
}

impl SecondrowModelRuntime {
    /// The raw table of a batch: numeric columns from `values` ([rows, numeric]), text columns from
    /// `cells` ([rows, text], an empty string is a missing value).
    fn table(&self, n_rows: usize, values: &[f64], cells: &[Vec<u8>]) -> Result<secondrow_ml::Table, String> {
        let (n_numeric, n_text) = (self.n_numeric, self.columns.len() - self.n_numeric);
        if values.len() != n_rows * n_numeric || cells.len() != n_rows * n_text {
            return Err(format!("expected {n_rows} rows of {n_numeric} numbers and {n_text} strings"));
        }
        let mut columns = Vec::with_capacity(self.columns.len());
        for (j, name) in self.columns[..n_numeric].iter().enumerate() {
            columns.push(secondrow_ml::Column::number(name, (0..n_rows).map(|i| values[i * n_numeric + j]).collect()));
        }
        for (j, name) in self.columns[n_numeric..].iter().enumerate() {
            let text = (0..n_rows).map(|i| {
                let cell = &cells[i * n_text + j];
                (!cell.is_empty()).then(|| String::from_utf8_lossy(cell).into_owned())
            });
            columns.push(secondrow_ml::Column::text(name, text.collect()));
        }
        Ok(secondrow_ml::Table::new(columns))
    }
}

impl Runtime for SecondrowModelRuntime {
    fn platform(&self) -> &'static str {
        "secondrow"
    }
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }
    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }
    fn column_names(&self) -> Option<&[String]> {
        Some(&self.columns)
    }
    fn text_columns(&self) -> &[String] {
        &self.columns[self.n_numeric..]
    }
    fn takes_missing(&self, index: usize, column: usize) -> bool {
        index == 0 && self.imputed.get(column).copied().unwrap_or(false)
    }
    /// Any numeric datatype for the numbers (converted to f64, the estimators' type); BYTES for the text.
    fn accepts(&self, index: usize, datatype: Datatype) -> bool {
        match index {
            0 => datatype.is_numeric(),
            1 => self.inputs.len() == 2 && datatype == Datatype::Bytes,
            _ => false,
        }
    }
    fn predict(&self, inputs: Vec<V2Tensor>) -> Result<Vec<V2Tensor>, ModelError> {
        let run = || -> Result<Vec<V2Tensor>, String> {
            let mut inputs = inputs.into_iter();
            let input = inputs.next().ok_or("no input")?;
            let n_rows = input.rows();
            let values = input.data.to_f64().ok_or("input must be numeric")?;
            let predictions = if self.n_numeric == self.columns.len() {
                let n_cols = values.len().checked_div(n_rows).unwrap_or(0);
                let rows: Vec<Vec<f64>> = values.chunks(n_cols.max(1)).take(n_rows).map(|c| c.to_vec()).collect();
                self.model.predict_rows(&rows)
            } else {
                let text = inputs.next().ok_or("no text input")?;
                let TensorData::Bytes(cells) = text.data else { return Err("text_input must be BYTES".into()) };
                let table = self.table(n_rows, &values, &cells)?;
                self.model.predict(&table)
            }
            .map_err(|e| e.to_string())?;
            if self.classification {
                let label = V2Tensor {
                    name: "label".into(),
                    shape: vec![n_rows],
                    data: TensorData::Bytes(predictions.labels.into_iter().map(String::into_bytes).collect()),
                };
                let proba = predictions.proba.ok_or("classifier returned no probabilities")?;
                let probabilities = V2Tensor {
                    name: "probabilities".into(),
                    shape: vec![proba.n_rows, proba.n_cols],
                    data: TensorData::Fp64(proba.data),
                };
                Ok(vec![label, probabilities])
            } else {
                Ok(vec![V2Tensor {
                    name: "prediction".into(),
                    shape: vec![n_rows],
                    data: TensorData::Fp64(predictions.values),
                }])
            }
        };
        Ok(run()?)
    }
}

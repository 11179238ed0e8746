//! Native evaluation of classic-ML ONNX graphs: tree ensembles and linear models of the `ai.onnx.ml`
//! domain with the few ops exporters put around them (Identity, Cast, Normalizer, Scaler, Imputer).
//! tract runs these through its generic machinery (one row of a 100-tree forest took about 10 ms);
//! here a forest is flattened into one node array and a row walks it in microseconds.
//!
//! Semantics follow the ONNX reference implementation (`onnx/reference/ops/aionnxml`), attributes as
//! the operator specs define them (`*_as_tensor` variants, every branch mode, missing-value tracks,
//! base values, all post transforms). [`NativeGraph::from_proto`] answers `Ok(None)` for a graph with
//! any other op, which is then left to tract. Numbers are computed in f64 and written in the output's
//! declared type.

use std::collections::HashMap;

use tract_onnx::pb;

use crate::tensor::TensorSpec;
use crate::tensor::{Datatype, Tensor, TensorData};

const ML_DOMAIN: &str = "ai.onnx.ml";

// ONNX TensorProto.DataType codes.
const ONNX_FLOAT: i32 = 1;
const ONNX_INT32: i32 = 6;
const ONNX_INT64: i32 = 7;
const ONNX_STRING: i32 = 8;
const ONNX_DOUBLE: i32 = 11;

/// A graph every node of which this module evaluates.
pub struct NativeGraph {
    input_slot: usize,
    n_features: usize,
    ops: Vec<Op>,
    n_slots: usize,
    /// Slot of each graph output, in [`NativeGraph::outputs`] order.
    output_slots: Vec<usize>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl NativeGraph {
    /// Builds the native form of `model`: `Ok(None)` when some part of the graph is not handled
    /// here, `Err` when a handled op has inconsistent attributes.
    pub fn from_proto(model: &pb::ModelProto) -> Result<Option<NativeGraph>, String> {
        let Some(graph) = &model.graph else { return Ok(None) };
        if graph.input.len() != 1 || !graph.initializer.is_empty() || !graph.sparse_initializer.is_empty() {
            return Ok(None);
        }
        let input = &graph.input[0];
        let Some((elem, dims)) = tensor_type(input) else { return Ok(None) };
        let datatype = match elem {
            ONNX_FLOAT => Datatype::Fp32,
            ONNX_DOUBLE => Datatype::Fp64,
            ONNX_INT64 => Datatype::Int64,
            ONNX_INT32 => Datatype::Int32,
            _ => return Ok(None),
        };
        let (batch, n_features) = match dims.as_slice() {
            [batch, Some(f)] if *f > 0 => (batch.unwrap_or(-1), *f as usize),
            _ => return Ok(None),
        };
        let mut slots: HashMap<&str, (usize, Ty)> = HashMap::new();
        slots.insert(input.name.as_str(), (0, Ty { elem: Elem::F32, cols: Some(n_features) }));
        let mut ops = Vec::with_capacity(graph.node.len());
        for node in &graph.node {
            let ml = node.domain == ML_DOMAIN;
            let standard = node.domain.is_empty() || node.domain == "ai.onnx";
            let Some(first) = node.input.first() else { return Ok(None) };
            let Some(&(src, src_ty)) = slots.get(first.as_str()) else { return Ok(None) };
            if node.input.len() != 1 {
                return Ok(None);
            }
            let attrs = Attrs(node);
            let context = |e: String| format!("node `{}` ({}): {e}", node.name, node.op_type);
            let (kind, out_tys): (OpKind, Vec<Ty>) = match (node.op_type.as_str(), ml, standard) {
                ("Identity", _, true) => (OpKind::Identity, vec![src_ty]),
                ("Cast", _, true) => {
                    let to = match attrs.int("to") {
                        Some(t) if t == i64::from(ONNX_FLOAT) => Elem::F32,
                        Some(t) if t == i64::from(ONNX_DOUBLE) => Elem::F64,
                        Some(t) if t == i64::from(ONNX_INT64) => Elem::I64,
                        _ => return Ok(None),
                    };
                    if src_ty.elem == Elem::Str {
                        return Ok(None);
                    }
                    (OpKind::Cast(to), vec![Ty { elem: to, ..src_ty }])
                }
                ("Normalizer", true, _) => {
                    let norm = match attrs.string("norm").as_deref() {
                        Some("MAX") => Norm::Max,
                        Some("L1") => Norm::L1,
                        Some("L2") => Norm::L2,
                        other => return Err(context(format!("unknown norm {other:?}"))),
                    };
                    (OpKind::Normalizer(norm), vec![Ty { elem: Elem::F32, ..numeric(src_ty)? }])
                }
                ("Scaler", true, _) => {
                    let ty = matrix(src_ty)?;
                    let cols = ty.cols.unwrap_or(0);
                    let offset =
                        per_column(attrs.floats("offset"), cols, 0.0).map_err(|e| context(format!("offset: {e}")))?;
                    let scale =
                        per_column(attrs.floats("scale"), cols, 1.0).map_err(|e| context(format!("scale: {e}")))?;
                    (OpKind::Scaler { offset, scale }, vec![Ty { elem: Elem::F32, ..ty }])
                }
                ("Imputer", true, _) => {
                    let ty = matrix(src_ty)?;
                    if attrs.has("imputed_value_int64s") || ty.elem == Elem::I64 {
                        return Ok(None);
                    }
                    let cols = ty.cols.unwrap_or(0);
                    let values = per_column(attrs.floats("imputed_value_floats"), cols, f64::NAN)
                        .map_err(|e| context(format!("imputed_value_floats: {e}")))?;
                    let replaced = attrs.float("replaced_value_float").unwrap_or(f64::NAN);
                    (OpKind::Imputer { values, replaced }, vec![ty])
                }
                ("LinearClassifier", true, _) => {
                    let ty = matrix(src_ty)?;
                    let model = LinearClassifier::load(&attrs, ty.cols.unwrap_or(0)).map_err(context)?;
                    let tys = vec![
                        Ty { elem: model.labels.elem(), cols: None },
                        Ty { elem: Elem::F32, cols: Some(model.score_cols()) },
                    ];
                    (OpKind::LinearClassifier(model), tys)
                }
                ("LinearRegressor", true, _) => {
                    let ty = matrix(src_ty)?;
                    let Some(model) = LinearRegressor::load(&attrs, ty.cols.unwrap_or(0)).map_err(context)? else {
                        return Ok(None);
                    };
                    let tys = vec![Ty { elem: Elem::F32, cols: Some(model.targets) }];
                    (OpKind::LinearRegressor(model), tys)
                }
                ("TreeEnsembleClassifier", true, _) => {
                    let ty = matrix(src_ty)?;
                    let model = TreeClassifier::load(&attrs, ty.cols.unwrap_or(0)).map_err(context)?;
                    let tys = vec![
                        Ty { elem: model.labels.elem(), cols: None },
                        Ty { elem: Elem::F32, cols: Some(model.score_cols()) },
                    ];
                    (OpKind::TreeClassifier(model), tys)
                }
                ("TreeEnsembleRegressor", true, _) => {
                    let ty = matrix(src_ty)?;
                    let model = TreeRegressor::load(&attrs, ty.cols.unwrap_or(0)).map_err(context)?;
                    let tys = vec![Ty { elem: Elem::F32, cols: Some(model.trees.n_targets) }];
                    (OpKind::TreeRegressor(model), tys)
                }
                _ => return Ok(None),
            };
            if node.output.len() > out_tys.len() {
                return Ok(None);
            }
            let mut outputs = Vec::with_capacity(node.output.len());
            for (name, ty) in node.output.iter().zip(out_tys) {
                if name.is_empty() {
                    outputs.push(None);
                    continue;
                }
                let slot = slots.len();
                if slots.insert(name.as_str(), (slot, ty)).is_some() {
                    return Ok(None);
                }
                outputs.push(Some(slot));
            }
            ops.push(Op { kind, input: src, outputs });
        }
        let mut output_slots = Vec::new();
        let mut outputs = Vec::new();
        for value in &graph.output {
            let Some(&(slot, ty)) = slots.get(value.name.as_str()) else { return Ok(None) };
            if let Some((elem, _)) = tensor_type(value) {
                if elem != ty.elem.onnx() {
                    return Ok(None);
                }
            }
            let mut shape = vec![batch];
            shape.extend(ty.cols.map(|c| c as i64));
            outputs.push(TensorSpec { name: value.name.clone(), datatype: ty.elem.datatype(), shape });
            output_slots.push(slot);
        }
        if (1..output_slots.len()).any(|i| output_slots[..i].contains(&output_slots[i])) {
            return Ok(None);
        }
        let inputs = vec![TensorSpec { name: input.name.clone(), datatype, shape: vec![batch, n_features as i64] }];
        Ok(Some(NativeGraph { input_slot: 0, n_features, ops, n_slots: slots.len(), output_slots, inputs, outputs }))
    }

    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Evaluates the graph on one input tensor of shape [N, F].
    pub fn predict(&self, input: Tensor) -> Result<Vec<Tensor>, String> {
        let rows = input.rows();
        let x = input.data.to_f64().ok_or_else(|| format!("input `{}` must be numeric", input.name))?;
        if x.len() != rows * self.n_features {
            return Err(format!("input `{}` must have {} columns", input.name, self.n_features));
        }
        let mut slots: Vec<Option<Value>> = (0..self.n_slots).map(|_| None).collect();
        slots[self.input_slot] = Some(Value { rows, cols: Some(self.n_features), elem: Elem::F32, data: Data::F(x) });
        for op in &self.ops {
            let input = slots[op.input].as_ref().ok_or("internal: input not computed")?;
            let produced = op.kind.eval(input);
            for (slot, value) in op.outputs.iter().zip(produced) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(value);
                }
            }
        }
        self.output_slots
            .iter()
            .zip(&self.outputs)
            .map(|(&slot, spec)| {
                let value = slots[slot].take().ok_or_else(|| format!("output `{}` was not computed", spec.name))?;
                Ok(value.into_tensor(&spec.name))
            })
            .collect()
    }
}

// ------------------------------------------------------------------------------------------ values

#[derive(Debug, Clone, Copy, PartialEq)]
enum Elem {
    F32,
    F64,
    I64,
    Str,
}

impl Elem {
    fn onnx(self) -> i32 {
        match self {
            Elem::F32 => ONNX_FLOAT,
            Elem::F64 => ONNX_DOUBLE,
            Elem::I64 => ONNX_INT64,
            Elem::Str => ONNX_STRING,
        }
    }

    fn datatype(self) -> Datatype {
        match self {
            Elem::F32 => Datatype::Fp32,
            Elem::F64 => Datatype::Fp64,
            Elem::I64 => Datatype::Int64,
            Elem::Str => Datatype::Bytes,
        }
    }
}

/// Static type of a value: element type, and columns of a [N, cols] matrix (`None` for [N]).
#[derive(Debug, Clone, Copy)]
struct Ty {
    elem: Elem,
    cols: Option<usize>,
}

fn numeric(ty: Ty) -> Result<Ty, String> {
    if ty.elem == Elem::Str {
        Err("needs a numeric input".into())
    } else {
        Ok(ty)
    }
}

fn matrix(ty: Ty) -> Result<Ty, String> {
    let ty = numeric(ty)?;
    if ty.cols.is_none() {
        return Err("needs a [N, F] input".into());
    }
    Ok(ty)
}

#[derive(Debug, Clone)]
enum Data {
    F(Vec<f64>),
    I(Vec<i64>),
    S(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Value {
    rows: usize,
    cols: Option<usize>,
    elem: Elem,
    data: Data,
}

impl Value {
    fn floats(rows: usize, cols: usize, data: Vec<f64>) -> Value {
        Value { rows, cols: Some(cols), elem: Elem::F32, data: Data::F(data) }
    }

    /// Elements as f64 (strings never reach here: the static types exclude them).
    fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F(v) => v.clone(),
            Data::I(v) => v.iter().map(|&x| x as f64).collect(),
            Data::S(v) => vec![f64::NAN; v.len()],
        }
    }

    fn as_f64(&self) -> std::borrow::Cow<'_, [f64]> {
        match &self.data {
            Data::F(v) => std::borrow::Cow::Borrowed(v),
            _ => std::borrow::Cow::Owned(self.to_f64()),
        }
    }

    fn into_tensor(self, name: &str) -> Tensor {
        let mut shape = vec![self.rows];
        shape.extend(self.cols);
        let data = match (self.data, self.elem) {
            (Data::F(v), Elem::F32) => TensorData::Fp32(v.into_iter().map(|x| x as f32).collect()),
            (Data::F(v), _) => TensorData::Fp64(v),
            (Data::I(v), _) => TensorData::Int64(v),
            (Data::S(v), _) => TensorData::Bytes(v),
        };
        Tensor { name: name.to_owned(), shape, data }
    }
}

// --------------------------------------------------------------------------------------------- ops

struct Op {
    kind: OpKind,
    input: usize,
    outputs: Vec<Option<usize>>,
}

enum OpKind {
    Identity,
    Cast(Elem),
    Normalizer(Norm),
    Scaler { offset: Vec<f64>, scale: Vec<f64> },
    Imputer { values: Vec<f64>, replaced: f64 },
    LinearClassifier(LinearClassifier),
    LinearRegressor(LinearRegressor),
    TreeClassifier(TreeClassifier),
    TreeRegressor(TreeRegressor),
}

#[derive(Debug, Clone, Copy)]
enum Norm {
    Max,
    L1,
    L2,
}

impl OpKind {
    fn eval(&self, x: &Value) -> Vec<Value> {
        let rows = x.rows;
        let cols = x.cols.unwrap_or(1);
        match self {
            OpKind::Identity => vec![x.clone()],
            OpKind::Cast(to) => {
                let data = match to {
                    Elem::I64 => Data::I(match &x.data {
                        Data::I(v) => v.clone(),
                        _ => x.to_f64().into_iter().map(|v| v as i64).collect(),
                    }),
                    Elem::F32 => Data::F(x.to_f64().into_iter().map(|v| v as f32 as f64).collect()),
                    _ => Data::F(x.to_f64()),
                };
                vec![Value { elem: *to, data, ..x.clone() }]
            }
            OpKind::Normalizer(norm) => {
                let mut v = x.to_f64();
                for row in v.chunks_mut(cols) {
                    let div = match norm {
                        Norm::Max => row.iter().fold(0.0f64, |m, a| m.max(a.abs())),
                        Norm::L1 => row.iter().map(|a| a.abs()).sum(),
                        Norm::L2 => row.iter().map(|a| a * a).sum::<f64>().sqrt(),
                    }
                    .max(1e-30);
                    row.iter_mut().for_each(|a| *a /= div);
                }
                vec![Value { elem: Elem::F32, data: Data::F(v), ..x.clone() }]
            }
            OpKind::Scaler { offset, scale } => {
                let mut v = x.to_f64();
                for row in v.chunks_mut(cols) {
                    for ((a, o), s) in row.iter_mut().zip(offset).zip(scale) {
                        *a = (*a - o) * s;
                    }
                }
                vec![Value { elem: Elem::F32, data: Data::F(v), ..x.clone() }]
            }
            OpKind::Imputer { values, replaced } => {
                let mut v = x.to_f64();
                for row in v.chunks_mut(cols) {
                    for (a, fill) in row.iter_mut().zip(values) {
                        let hit = if replaced.is_nan() { a.is_nan() } else { *a == *replaced };
                        if hit {
                            *a = *fill;
                        }
                    }
                }
                vec![Value { data: Data::F(v), ..x.clone() }]
            }
            OpKind::LinearClassifier(m) => m.eval(rows, &x.as_f64()),
            OpKind::LinearRegressor(m) => vec![m.eval(rows, &x.as_f64())],
            OpKind::TreeClassifier(m) => m.eval(rows, &x.as_f64()),
            OpKind::TreeRegressor(m) => vec![m.eval(rows, &x.as_f64())],
        }
    }
}

/// A per-column attribute: one value per column, or one value for all.
fn per_column(values: Option<Vec<f64>>, cols: usize, default: f64) -> Result<Vec<f64>, String> {
    match values {
        None => Ok(vec![default; cols]),
        Some(v) if v.len() == cols => Ok(v),
        Some(v) if v.len() == 1 => Ok(vec![v[0]; cols]),
        Some(v) => Err(format!("{} values for {cols} columns", v.len())),
    }
}

// ---------------------------------------------------------------------------------- post transform

#[derive(Debug, Clone, Copy, PartialEq)]
enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl Post {
    fn parse(attrs: &Attrs) -> Result<Post, String> {
        Ok(match attrs.string("post_transform").as_deref() {
            None | Some("NONE") => Post::None,
            Some("LOGISTIC") => Post::Logistic,
            Some("SOFTMAX") => Post::Softmax,
            Some("SOFTMAX_ZERO") => Post::SoftmaxZero,
            Some("PROBIT") => Post::Probit,
            Some(other) => return Err(format!("unknown post_transform `{other}`")),
        })
    }

    /// Applies the transform to one row of scores.
    fn apply(self, row: &mut [f64]) {
        match self {
            Post::None => {}
            Post::Logistic => row.iter_mut().for_each(|v| *v = logistic(*v)),
            Post::Probit => row.iter_mut().for_each(|v| *v = probit(*v)),
            Post::Softmax => {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                row.iter_mut().for_each(|v| *v = (*v - max).exp());
                let sum: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= sum);
            }
            Post::SoftmaxZero => {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exp_neg_max = (-max).exp();
                let mut sum = 0.0;
                for v in row.iter_mut() {
                    *v = if v.abs() > 1e-7 { (*v - max).exp() } else { *v * exp_neg_max };
                    sum += *v;
                }
                if sum == 0.0 {
                    row.iter_mut().for_each(|v| *v = 0.5);
                } else {
                    row.iter_mut().for_each(|v| *v /= sum);
                }
            }
        }
    }
}

fn logistic(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// The ONNX reference's probit (an approximate inverse error function).
fn probit(x: f64) -> f64 {
    let y = x * 2.0 - 1.0;
    let sign = if y < 0.0 { -1.0 } else { 1.0 };
    let z = (1.0 - y) * (1.0 + y);
    if z == 0.0 {
        return 0.0;
    }
    let log = z.ln();
    let a = 0.147;
    let v = 2.0 / (std::f64::consts::PI * a) + 0.5 * log;
    let v2 = log / a;
    let v3 = -v + (v * v - v2).sqrt();
    std::f64::consts::SQRT_2 * sign * v3.sqrt()
}

/// Index of the first largest value (numpy's argmax).
fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------------------------------------ labels

enum Labels {
    Int(Vec<i64>),
    Str(Vec<Vec<u8>>),
}

impl Labels {
    fn parse(attrs: &Attrs, ints: &str, strings: &str) -> Labels {
        match attrs.strings(strings) {
            Some(s) if !s.is_empty() => Labels::Str(s),
            _ => Labels::Int(attrs.ints(ints).map(<[i64]>::to_vec).unwrap_or_default()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    fn elem(&self) -> Elem {
        match self {
            Labels::Int(_) => Elem::I64,
            Labels::Str(_) => Elem::Str,
        }
    }

    fn output(&self, rows: usize) -> LabelOut {
        match self {
            Labels::Int(_) => LabelOut::Int(Vec::with_capacity(rows)),
            Labels::Str(_) => LabelOut::Str(Vec::with_capacity(rows)),
        }
    }
}

enum LabelOut {
    Int(Vec<i64>),
    Str(Vec<Vec<u8>>),
}

impl LabelOut {
    /// Pushes the label of class index `i`, or `fallback`'s label when the index has no label.
    fn push(&mut self, labels: &Labels, i: usize) {
        match (self, labels) {
            (LabelOut::Int(out), Labels::Int(l)) => out.push(l.get(i).copied().unwrap_or(i as i64)),
            (LabelOut::Str(out), Labels::Str(l)) => out.push(l.get(i).cloned().unwrap_or_default()),
            _ => {}
        }
    }

    fn into_value(self, rows: usize) -> Value {
        match self {
            LabelOut::Int(v) => Value { rows, cols: None, elem: Elem::I64, data: Data::I(v) },
            LabelOut::Str(v) => Value { rows, cols: None, elem: Elem::Str, data: Data::S(v) },
        }
    }
}

// ------------------------------------------------------------------------------------------ linear

/// `LinearClassifier`: scores = X·Cᵀ + b, post transform, label by argmax (or threshold for one score).
struct LinearClassifier {
    n_features: usize,
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    n_scores: usize,
    labels: Labels,
    post: Post,
}

impl LinearClassifier {
    fn load(attrs: &Attrs, n_features: usize) -> Result<LinearClassifier, String> {
        let coefficients = attrs.floats("coefficients").ok_or("missing coefficients")?;
        if n_features == 0 || coefficients.is_empty() || coefficients.len() % n_features != 0 {
            return Err(format!("{} coefficients do not fit {n_features} features", coefficients.len()));
        }
        let n_scores = coefficients.len() / n_features;
        let intercepts = attrs.floats("intercepts").unwrap_or_default();
        if !intercepts.is_empty() && intercepts.len() != n_scores {
            return Err(format!("{} intercepts for {n_scores} classes", intercepts.len()));
        }
        let labels = Labels::parse(attrs, "classlabels_ints", "classlabels_strings");
        Ok(LinearClassifier { n_features, coefficients, intercepts, n_scores, labels, post: Post::parse(attrs)? })
    }

    fn binary(&self) -> bool {
        self.n_scores == 1 && self.labels.len() == 2
    }

    fn score_cols(&self) -> usize {
        if self.binary() {
            2
        } else {
            self.n_scores
        }
    }

    fn eval(&self, rows: usize, x: &[f64]) -> Vec<Value> {
        let cols = self.score_cols();
        let mut scores = vec![0.0; rows * cols];
        let mut labels = self.labels.output(rows);
        for (row, out) in x.chunks_exact(self.n_features).zip(scores.chunks_exact_mut(cols)) {
            for (j, w) in self.coefficients.chunks_exact(self.n_features).enumerate() {
                let dot: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                out[j] = dot + self.intercepts.get(j).copied().unwrap_or(0.0);
            }
            if self.binary() {
                out[1] = out[0];
                out[0] = -out[1];
            }
            self.post.apply(out);
            if cols > 1 {
                labels.push(&self.labels, argmax(out));
            } else {
                let threshold = if self.post == Post::None { 0.0 } else { 0.5 };
                match &mut labels {
                    LabelOut::Int(v) => {
                        let positive = match &self.labels {
                            Labels::Int(l) => l.first().copied().unwrap_or(1),
                            Labels::Str(_) => 1,
                        };
                        v.push(if out[0] >= threshold { positive } else { 0 });
                    }
                    LabelOut::Str(v) => {
                        let positive = match &self.labels {
                            Labels::Str(l) => l.first().cloned().unwrap_or_default(),
                            Labels::Int(_) => Vec::new(),
                        };
                        v.push(if out[0] >= threshold { positive } else { Vec::new() });
                    }
                }
            }
        }
        vec![labels.into_value(rows), Value::floats(rows, cols, scores)]
    }
}

/// `LinearRegressor` (post transform NONE only, as the reference implements).
struct LinearRegressor {
    n_features: usize,
    coefficients: Vec<f64>,
    intercepts: Vec<f64>,
    targets: usize,
}

impl LinearRegressor {
    fn load(attrs: &Attrs, n_features: usize) -> Result<Option<LinearRegressor>, String> {
        if Post::parse(attrs)? != Post::None {
            return Ok(None);
        }
        let targets = attrs.int("targets").unwrap_or(1);
        let targets = usize::try_from(targets)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("targets must be positive, got {targets}"))?;
        let coefficients = attrs.floats("coefficients").ok_or("missing coefficients")?;
        if coefficients.len() != targets * n_features {
            return Err(format!(
                "{} coefficients do not fit {targets} targets of {n_features} features",
                coefficients.len()
            ));
        }
        let intercepts = attrs.floats("intercepts").unwrap_or_default();
        if !intercepts.is_empty() && intercepts.len() != targets {
            return Err(format!("{} intercepts for {targets} targets", intercepts.len()));
        }
        Ok(Some(LinearRegressor { n_features, coefficients, intercepts, targets }))
    }

    fn eval(&self, rows: usize, x: &[f64]) -> Value {
        let mut out = Vec::with_capacity(rows * self.targets);
        for row in x.chunks_exact(self.n_features) {
            for (j, w) in self.coefficients.chunks_exact(self.n_features).enumerate() {
                let dot: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                out.push(dot + self.intercepts.get(j).copied().unwrap_or(0.0));
            }
        }
        Value::floats(rows, self.targets, out)
    }
}

// ------------------------------------------------------------------------------------------- trees

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
    Leaf,
}

/// One node of the flattened ensemble. For a leaf, `next[0]` is its leaf number.
#[derive(Debug, Clone, Copy)]
struct Node {
    threshold: f64,
    feature: u32,
    /// Node index taken when the test is true, and when it is false.
    next: [u32; 2],
    mode: Mode,
    missing_true: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate {
    Sum,
    Average,
    Min,
    Max,
}

/// The trees of an ensemble, flattened: one node array for every tree, and per leaf a range of
/// (target, weight) pairs.
struct Trees {
    nodes: Vec<Node>,
    roots: Vec<u32>,
    leaf_start: Vec<u32>,
    leaf_target: Vec<u32>,
    leaf_weight: Vec<f64>,
    n_targets: usize,
    n_features: usize,
    base_values: Vec<f64>,
    aggregate: Aggregate,
}

impl Trees {
    /// Reads the `nodes_*` attributes and the leaf weights under `prefix` (`class` or `target`).
    fn load(
        attrs: &Attrs,
        prefix: &str,
        n_targets: usize,
        n_features: usize,
        aggregate: Aggregate,
    ) -> Result<Trees, String> {
        let ints = |name: &str| attrs.ints(name).ok_or_else(|| format!("missing {name}"));
        let tree_ids = ints("nodes_treeids")?;
        let node_ids = ints("nodes_nodeids")?;
        let features = ints("nodes_featureids")?;
        let trues = ints("nodes_truenodeids")?;
        let falses = ints("nodes_falsenodeids")?;
        let modes = attrs.strings("nodes_modes").ok_or("missing nodes_modes")?;
        let values = attrs.floats("nodes_values").unwrap_or_default();
        let missing = attrs.ints("nodes_missing_value_tracks_true").unwrap_or(&[]);
        let n = tree_ids.len();
        for (name, len) in [
            ("nodes_nodeids", node_ids.len()),
            ("nodes_featureids", features.len()),
            ("nodes_truenodeids", trues.len()),
            ("nodes_falsenodeids", falses.len()),
            ("nodes_modes", modes.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries, nodes_treeids {n}"));
            }
        }
        if values.len() != n && !(values.is_empty() && modes.iter().all(|m| m == b"LEAF")) {
            return Err(format!("nodes_values has {} entries for {n} nodes", values.len()));
        }
        if !missing.is_empty() && missing.len() != n {
            return Err(format!("nodes_missing_value_tracks_true has {} entries for {n} nodes", missing.len()));
        }
        let mut index: HashMap<(i64, i64), u32> = HashMap::with_capacity(n);
        for (i, (&t, &id)) in tree_ids.iter().zip(node_ids).enumerate() {
            if index.insert((t, id), i as u32).is_some() {
                return Err(format!("node {id} of tree {t} is defined twice"));
            }
        }
        let mut roots: Vec<(i64, u32)> = Vec::new();
        for (i, &t) in tree_ids.iter().enumerate() {
            match roots.iter_mut().find(|(tree, _)| *tree == t) {
                Some(_) => {}
                None => roots.push((t, i as u32)),
            }
        }
        roots.sort_by_key(|(t, _)| *t);
        let mut nodes = Vec::with_capacity(n);
        let mut n_leaves = 0u32;
        let mut leaf_of = vec![u32::MAX; n];
        for i in 0..n {
            let mode = match modes[i].as_slice() {
                b"BRANCH_LEQ" => Mode::Leq,
                b"BRANCH_LT" => Mode::Lt,
                b"BRANCH_GTE" => Mode::Gte,
                b"BRANCH_GT" => Mode::Gt,
                b"BRANCH_EQ" => Mode::Eq,
                b"BRANCH_NEQ" => Mode::Neq,
                b"LEAF" => Mode::Leaf,
                other => return Err(format!("unknown node mode `{}`", String::from_utf8_lossy(other))),
            };
            let node = if mode == Mode::Leaf {
                leaf_of[i] = n_leaves;
                n_leaves += 1;
                Node { threshold: 0.0, feature: 0, next: [leaf_of[i]; 2], mode, missing_true: false }
            } else {
                let child = |id: i64| {
                    index.get(&(tree_ids[i], id)).copied().ok_or_else(|| {
                        format!("node {} of tree {} points to missing node {id}", node_ids[i], tree_ids[i])
                    })
                };
                let feature = usize::try_from(features[i]).ok().filter(|&f| f < n_features).ok_or_else(|| {
                    format!(
                        "node {} of tree {} tests feature {} of {n_features}",
                        node_ids[i], tree_ids[i], features[i]
                    )
                })?;
                Node {
                    threshold: values[i],
                    feature: feature as u32,
                    next: [child(trues[i])?, child(falses[i])?],
                    mode,
                    missing_true: missing.get(i).is_some_and(|&m| m != 0),
                }
            };
            nodes.push(node);
        }
        check_acyclic(&nodes, roots.iter().map(|(_, r)| *r))?;

        let w_trees = ints(&format!("{prefix}_treeids"))?;
        let w_nodes = ints(&format!("{prefix}_nodeids"))?;
        let w_ids = ints(&format!("{prefix}_ids"))?;
        let w_values = attrs.floats(&format!("{prefix}_weights")).ok_or_else(|| format!("missing {prefix}_weights"))?;
        if [w_nodes.len(), w_ids.len(), w_values.len()].iter().any(|&l| l != w_trees.len()) {
            return Err(format!("{prefix}_treeids, _nodeids, _ids and _weights differ in length"));
        }
        let mut per_leaf: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n_leaves as usize];
        for k in 0..w_trees.len() {
            let node = *index
                .get(&(w_trees[k], w_nodes[k]))
                .ok_or_else(|| format!("weight {k} names missing node {} of tree {}", w_nodes[k], w_trees[k]))?;
            let target = usize::try_from(w_ids[k])
                .ok()
                .filter(|&t| t < n_targets)
                .ok_or_else(|| format!("weight {k}: id {} is not below {n_targets}", w_ids[k]))?;
            // Weights on inner nodes are never reached.
            if let Some(leaf) = per_leaf.get_mut(leaf_of[node as usize] as usize) {
                leaf.push((target as u32, w_values[k]));
            }
        }
        let mut leaf_start = Vec::with_capacity(per_leaf.len() + 1);
        let mut leaf_target = Vec::with_capacity(w_trees.len());
        let mut leaf_weight = Vec::with_capacity(w_trees.len());
        leaf_start.push(0);
        for leaf in per_leaf {
            for (t, w) in leaf {
                leaf_target.push(t);
                leaf_weight.push(w);
            }
            leaf_start.push(leaf_target.len() as u32);
        }
        let base_values = match attrs.floats("base_values") {
            None => Vec::new(),
            Some(b) if b.is_empty() => Vec::new(),
            Some(b) if b.len() == n_targets => b,
            Some(b) if b.len() == 1 => vec![b[0]; n_targets],
            Some(b) => return Err(format!("{} base_values for {n_targets} outputs", b.len())),
        };
        Ok(Trees {
            nodes,
            roots: roots.into_iter().map(|(_, r)| r).collect(),
            leaf_start,
            leaf_target,
            leaf_weight,
            n_targets,
            n_features,
            base_values,
            aggregate,
        })
    }

    /// The leaf number reached in the tree rooted at `root`.
    #[inline]
    fn leaf(&self, root: u32, row: &[f64]) -> u32 {
        let mut node = self.nodes[root as usize];
        while node.mode != Mode::Leaf {
            let x = row[node.feature as usize];
            let go_true = if x.is_nan() {
                node.missing_true
            } else {
                match node.mode {
                    Mode::Leq => x <= node.threshold,
                    Mode::Lt => x < node.threshold,
                    Mode::Gte => x >= node.threshold,
                    Mode::Gt => x > node.threshold,
                    Mode::Eq => x == node.threshold,
                    Mode::Neq => x != node.threshold,
                    Mode::Leaf => true,
                }
            };
            node = self.nodes[node.next[usize::from(!go_true)] as usize];
        }
        node.next[0]
    }

    /// Aggregated scores of one row (`out` has `n_targets` entries), base values added first
    /// (classifier) or last (regressor), as the reference does. Sums are f32, as in the reference
    /// and onnxruntime: in f64, five weights of 0.1 make more than 0.5 and break a 0.5/0.5 tie the
    /// other way.
    fn scores(&self, row: &[f64], out: &mut [f32], base_first: bool) {
        let init = match self.aggregate {
            Aggregate::Sum | Aggregate::Average => 0.0,
            Aggregate::Min => f32::MAX,
            Aggregate::Max => f32::MIN,
        };
        out.iter_mut().for_each(|v| *v = init);
        if base_first {
            for (v, b) in out.iter_mut().zip(&self.base_values) {
                *v += *b as f32;
            }
        }
        for &root in &self.roots {
            let leaf = self.leaf(root, row) as usize;
            let range = self.leaf_start[leaf] as usize..self.leaf_start[leaf + 1] as usize;
            for (&t, &w) in self.leaf_target[range.clone()].iter().zip(&self.leaf_weight[range]) {
                let slot = &mut out[t as usize];
                let w = w as f32;
                match self.aggregate {
                    Aggregate::Sum | Aggregate::Average => *slot += w,
                    Aggregate::Min => *slot = slot.min(w),
                    Aggregate::Max => *slot = slot.max(w),
                }
            }
        }
        if self.aggregate == Aggregate::Average && !self.roots.is_empty() {
            let n = self.roots.len() as f32;
            out.iter_mut().for_each(|v| *v /= n);
        }
        if !base_first {
            for (v, b) in out.iter_mut().zip(&self.base_values) {
                *v += *b as f32;
            }
        }
    }
}

/// Fails when following children from a root can come back to a node on the current path.
fn check_acyclic(nodes: &[Node], roots: impl Iterator<Item = u32>) -> Result<(), String> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut state = vec![0u8; nodes.len()];
    for root in roots {
        let mut stack: Vec<(u32, bool)> = vec![(root, false)];
        while let Some((i, leaving)) = stack.pop() {
            let i_us = i as usize;
            if leaving {
                state[i_us] = 2;
                continue;
            }
            match state[i_us] {
                1 => return Err("the trees contain a cycle".into()),
                2 => continue,
                _ => {}
            }
            state[i_us] = 1;
            stack.push((i, true));
            let node = nodes[i_us];
            if node.mode != Mode::Leaf {
                for child in node.next {
                    if state[child as usize] == 1 {
                        return Err("the trees contain a cycle".into());
                    }
                    stack.push((child, false));
                }
            }
        }
    }
    Ok(())
}

/// `TreeEnsembleClassifier`: summed class weights, the binary convention of the reference
/// (one class id: scores [1 - s, s] or [-s, s]), post transform, label by argmax.
struct TreeClassifier {
    trees: Trees,
    labels: Labels,
    /// The one class id when every weight names the same class.
    binary: Option<usize>,
    post: Post,
}

impl TreeClassifier {
    fn load(attrs: &Attrs, n_features: usize) -> Result<TreeClassifier, String> {
        let labels = Labels::parse(attrs, "classlabels_int64s", "classlabels_strings");
        if labels.len() == 0 {
            return Err("missing classlabels_int64s or classlabels_strings".into());
        }
        let trees = Trees::load(attrs, "class", labels.len(), n_features, Aggregate::Sum)?;
        let ids = attrs.ints("class_ids").unwrap_or(&[]);
        let binary = match ids.first() {
            Some(&first) if ids.iter().all(|&i| i == first) => Some(first as usize),
            _ => None,
        };
        if labels.len() == 1 && !matches!(&labels, Labels::Int(l) if l[0] == 1) {
            return Err("a single class label must be the integer 1".into());
        }
        Ok(TreeClassifier { trees, labels, binary, post: Post::parse(attrs)? })
    }

    fn score_cols(&self) -> usize {
        self.labels.len().max(2)
    }

    fn eval(&self, rows: usize, x: &[f64]) -> Vec<Value> {
        let cols = self.score_cols();
        let n_targets = self.trees.n_targets;
        let mut scores = vec![0.0; rows * cols];
        let mut labels = self.labels.output(rows);
        let mut sums = vec![0.0f32; cols];
        for (row, out) in x.chunks_exact(self.trees.n_features).zip(scores.chunks_exact_mut(cols)) {
            self.trees.scores(row, &mut sums[..n_targets], true);
            if let Some(id) = self.binary {
                let s = sums[id.min(n_targets - 1)];
                sums[1] = s;
                sums[0] = if matches!(self.post, Post::None | Post::Probit) { 1.0 - s } else { -s };
            }
            out.iter_mut().zip(&sums).for_each(|(o, s)| *o = f64::from(*s));
            self.post.apply(out);
            // The label comes from the scores as they leave (f32), like the reference's argmax.
            out.iter_mut().for_each(|v| *v = f64::from(*v as f32));
            let best = argmax(out);
            if self.labels.len() == 1 {
                // The reference's one-label case: label 1 for the second score, else 0.
                if let LabelOut::Int(v) = &mut labels {
                    v.push(if best == 1 { 1 } else { 0 });
                }
            } else {
                labels.push(&self.labels, best);
            }
        }
        vec![labels.into_value(rows), Value::floats(rows, cols, scores)]
    }
}

/// `TreeEnsembleRegressor`: aggregated target weights plus base values, post transform.
struct TreeRegressor {
    trees: Trees,
    post: Post,
}

impl TreeRegressor {
    fn load(attrs: &Attrs, n_features: usize) -> Result<TreeRegressor, String> {
        let n_targets = attrs.int("n_targets").unwrap_or(1);
        let n_targets = usize::try_from(n_targets)
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| format!("n_targets must be positive, got {n_targets}"))?;
        let aggregate = match attrs.string("aggregate_function").as_deref() {
            None | Some("SUM") => Aggregate::Sum,
            Some("AVERAGE") => Aggregate::Average,
            Some("MIN") => Aggregate::Min,
            Some("MAX") => Aggregate::Max,
            Some(other) => return Err(format!("unknown aggregate_function `{other}`")),
        };
        let trees = Trees::load(attrs, "target", n_targets, n_features, aggregate)?;
        Ok(TreeRegressor { trees, post: Post::parse(attrs)? })
    }

    fn eval(&self, rows: usize, x: &[f64]) -> Value {
        let n = self.trees.n_targets;
        let mut out = vec![0.0; rows * n];
        let mut sums = vec![0.0f32; n];
        for (row, o) in x.chunks_exact(self.trees.n_features).zip(out.chunks_exact_mut(n)) {
            self.trees.scores(row, &mut sums, false);
            o.iter_mut().zip(&sums).for_each(|(o, s)| *o = f64::from(*s));
            self.post.apply(o);
        }
        Value::floats(rows, n, out)
    }
}

// -------------------------------------------------------------------------------------- attributes

/// Typed access to a node's attributes.
struct Attrs<'a>(&'a pb::NodeProto);

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.0.attribute.iter().find(|a| a.name == name)
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    fn float(&self, name: &str) -> Option<f64> {
        self.get(name).map(|a| f64::from(a.f))
    }

    fn ints(&self, name: &str) -> Option<&[i64]> {
        self.get(name).map(|a| a.ints.as_slice())
    }

    fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    fn strings(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        self.get(name).map(|a| a.strings.clone())
    }

    /// A float list, from `NAME_as_tensor` (float or double) when present, else from `NAME`.
    fn floats(&self, name: &str) -> Option<Vec<f64>> {
        if let Some(t) = self.get(&format!("{name}_as_tensor")).and_then(|a| a.t.as_ref()) {
            return tensor_f64(t);
        }
        self.get(name).map(|a| a.floats.iter().map(|&v| f64::from(v)).collect())
    }
}

fn tensor_f64(t: &pb::TensorProto) -> Option<Vec<f64>> {
    match t.data_type {
        ONNX_FLOAT if !t.float_data.is_empty() => Some(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        ONNX_FLOAT => {
            Some(t.raw_data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
        }
        ONNX_DOUBLE if !t.double_data.is_empty() => Some(t.double_data.clone()),
        ONNX_DOUBLE => Some(
            t.raw_data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        _ => None,
    }
}

/// Element type and dimensions (`None` for a symbolic one) of a tensor-typed value.
fn tensor_type(value: &pb::ValueInfoProto) -> Option<(i32, Vec<Option<i64>>)> {
    let pb::type_proto::Value::TensorType(t) = value.r#type.as_ref()?.value.as_ref()?;
    let dims = t
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
            _ => None,
        })
        .collect();
    Some((t.elem_type, dims))
}

#[cfg(test)]
mod tests;

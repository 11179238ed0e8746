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

use crate::error::ModelError;
use crate::tensor::TensorSpec;
use crate::tensor::{Datatype, Tensor, TensorData};

mod linear;
mod post;
mod trees;

use linear::{LinearClassifier, LinearRegressor};
use post::*;
use trees::{TreeClassifier, TreeRegressor};

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
    pub fn from_proto(model: &pb::ModelProto) -> Result<Option<NativeGraph>, ModelError> {
        let run = || -> Result<Option<NativeGraph>, String> {
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
                        let offset = per_column(attrs.floats("offset"), cols, 0.0)
                            .map_err(|e| context(format!("offset: {e}")))?;
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
            Ok(Some(NativeGraph {
                input_slot: 0,
                n_features,
                ops,
                n_slots: slots.len(),
                output_slots,
                inputs,
                outputs,
            }))
        };
        Ok(run()?)
    }

    pub fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    /// Evaluates the graph on one input tensor of shape [N, F].
    pub fn predict(&self, input: Tensor) -> Result<Vec<Tensor>, ModelError> {
        let run = || -> Result<Vec<Tensor>, String> {
            let rows = input.rows();
            let x = input.data.to_f64().ok_or_else(|| format!("input `{}` must be numeric", input.name))?;
            if x.len() != rows * self.n_features {
                return Err(format!("input `{}` must have {} columns", input.name, self.n_features));
            }
            let mut slots: Vec<Option<Value>> = (0..self.n_slots).map(|_| None).collect();
            slots[self.input_slot] =
                Some(Value { rows, cols: Some(self.n_features), elem: Elem::F32, data: Data::F(x) });
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
        };
        Ok(run()?)
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

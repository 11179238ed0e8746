//! ONNX export of linear models (linear regression, ridge, logistic regression) through a small
//! hand-written protobuf encoder (no protobuf dependency): the ONNX messages used here are few and stable.
//!
//! The exported graph reads one float tensor `input` [N, F] whose columns are the model's
//! `feature_names`; `standardize` and `min_max` steps of the model's transformer are folded into the
//! weights, so raw values go in. Outputs: `variable` [N, 1] for regressors; `probabilities` [N, K]
//! (Softmax) and `label` [N] (ArgMax, the class index) for classifiers.
//! Not covered: transformers with one-hot/ordinal steps (string inputs), imputation of missing values,
//! and tree, kernel, neighbour and neural models (their operator sets exist; the encoder does not yet).

use crate::error::{Error, Result};
use crate::estimator::Estimator;
use crate::model::Model;
use crate::transform::FittedStep;

/// Operator set version of exported graphs.
pub const OPSET: i64 = 13;

#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u32) {
        self.varint(((field << 3) | wire) as u64);
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Pb {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Pb {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn string(&mut self, field: u32, s: &str) -> &mut Pb {
        self.bytes(field, s.as_bytes())
    }
    fn message(&mut self, field: u32, m: &Pb) -> &mut Pb {
        self.bytes(field, &m.0)
    }
    fn float(&mut self, field: u32, v: f32) -> &mut Pb {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

fn tensor(name: &str, dims: &[i64], values: &[f32]) -> Pb {
    let mut t = Pb::default();
    for &d in dims {
        t.int(1, d);
    }
    t.int(2, 1); // FLOAT
    t.string(8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// ValueInfoProto of a tensor; `None` dims are symbolic (`N`).
fn value_info(name: &str, elem_type: i64, dims: &[Option<i64>]) -> Pb {
    let mut shape = Pb::default();
    for d in dims {
        let mut dim = Pb::default();
        match d {
            Some(v) => dim.int(1, *v),
            None => dim.string(2, "N"),
        };
        shape.message(1, &dim);
    }
    let mut tensor_type = Pb::default();
    tensor_type.int(1, elem_type).message(2, &shape);
    let mut type_proto = Pb::default();
    type_proto.message(1, &tensor_type);
    let mut v = Pb::default();
    v.string(1, name).message(2, &type_proto);
    v
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], ints: &[(&str, i64)]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n.string(1, i);
    }
    for o in outputs {
        n.string(2, o);
    }
    n.string(3, &format!("{op}_{}", outputs[0])).string(4, op);
    for (name, value) in ints {
        let mut a = Pb::default();
        a.string(1, name).int(3, *value).int(20, 2); // AttributeType INT
        n.message(5, &a);
    }
    n
}

/// Per-feature affine map (scale, offset) from raw input to what the estimator saw.
fn folded_affine(model: &Model) -> Result<Vec<(f64, f64)>> {
    let mut affine: std::collections::HashMap<&str, (f64, f64)> =
        model.feature_names.iter().map(|n| (n.as_str(), (1.0, 0.0))).collect();
    if let Some(t) = &model.transformer {
        for step in &t.steps {
            match step {
                FittedStep::Standardize { columns } => {
                    for (name, mean, std) in columns {
                        if let Some((s, o)) = affine.get_mut(name.as_str()) {
                            *s /= std;
                            *o = (*o - mean) / std;
                        }
                    }
                }
                FittedStep::MinMax { columns } => {
                    for (name, min, max) in columns {
                        if let Some((s, o)) = affine.get_mut(name.as_str()) {
                            if max > min {
                                *s /= max - min;
                                *o = (*o - min) / (max - min);
                            } else {
                                *s = 0.0;
                                *o = 0.0;
                            }
                        }
                    }
                }
                FittedStep::Impute { .. } | FittedStep::Drop { .. } | FittedStep::Select { .. } => {}
                FittedStep::OneHot { .. } | FittedStep::Ordinal { .. } => {
                    return Err(Error::WrongModelKind {
                        path: Default::default(),
                        found: model.kind.clone(),
                        expected: "ONNX export covers numeric transforms only (no one_hot/ordinal steps)".into(),
                    })
                }
            }
        }
    }
    Ok(model.feature_names.iter().map(|n| affine[n.as_str()]).collect())
}

/// Serialises `model` as an ONNX ModelProto.
pub fn export(model: &Model) -> Result<Vec<u8>> {
    let affine = folded_affine(model)?;
    let d = model.feature_names.len();
    // Weights as (columns of W, bias) in the estimator's feature space.
    let (columns, bias, classifier): (Vec<Vec<f64>>, Vec<f64>, bool) = match &model.estimator {
        Estimator::Linear(m) => (vec![m.coef.clone()], vec![m.intercept], false),
        Estimator::Logistic(m) if m.coef.len() == 1 => (vec![vec![0.0; d], m.coef[0].clone()], vec![0.0, m.intercept[0]], true),
        Estimator::Logistic(m) => (m.coef.clone(), m.intercept.clone(), true),
        _ => {
            return Err(Error::WrongModelKind {
                path: Default::default(),
                found: model.kind.clone(),
                expected: "ONNX export supports linear_regression, ridge and logistic_regression".into(),
            })
        }
    };
    let k = columns.len();
    let mut w = vec![0f32; d * k];
    let mut b = vec![0f32; k];
    for (c, (coef, b0)) in columns.iter().zip(&bias).enumerate() {
        let mut bc = *b0;
        for j in 0..d {
            let (s, o) = affine[j];
            w[j * k + c] = (coef[j] * s) as f32;
            bc += coef[j] * o;
        }
        b[c] = bc as f32;
    }
    let mut graph = Pb::default();
    graph.message(1, &node("MatMul", &["input", "W"], &["xw"], &[]));
    let linear_out = if classifier { "logits" } else { "variable" };
    graph.message(1, &node("Add", &["xw", "B"], &[linear_out], &[]));
    if classifier {
        graph.message(1, &node("Softmax", &["logits"], &["probabilities"], &[("axis", 1)]));
        graph.message(1, &node("ArgMax", &["probabilities"], &["label"], &[("axis", 1), ("keepdims", 0)]));
    }
    graph.string(2, &format!("secondrow_{}", model.kind));
    graph.message(5, &tensor("W", &[d as i64, k as i64], &w));
    graph.message(5, &tensor("B", &[k as i64], &b));
    graph.message(11, &value_info("input", 1, &[None, Some(d as i64)]));
    if classifier {
        graph.message(12, &value_info("probabilities", 1, &[None, Some(k as i64)]));
        graph.message(12, &value_info("label", 7, &[None]));
    } else {
        graph.message(12, &value_info("variable", 1, &[None, Some(1)]));
    }
    let mut opset = Pb::default();
    opset.string(1, "").int(2, OPSET);
    let mut doc = format!("features: {}", model.feature_names.join(", "));
    if classifier {
        doc.push_str(&format!("; classes (label index order): {}", model.classes.join(", ")));
    }
    let mut m = Pb::default();
    m.int(1, 7) // IR version 7 (opset 13)
        .string(2, "secondrow")
        .string(3, env!("CARGO_PKG_VERSION"))
        .string(6, &doc)
        .message(7, &graph)
        .message(8, &opset);
    let _ = Pb::float; // kept for attributes of float type
    Ok(m.0)
}

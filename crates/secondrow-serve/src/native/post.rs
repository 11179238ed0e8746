//! Post transforms (NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT) and class labels of the ONNX-ML
//! classifiers, as the ONNX reference implements them.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Post {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl Post {
    pub(super) fn parse(attrs: &Attrs) -> Result<Post, String> {
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
    pub(super) fn apply(self, row: &mut [f64]) {
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

pub(super) fn logistic(x: f64) -> f64 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 {
        1.0 - v
    } else {
        v
    }
}

/// The ONNX reference's probit (an approximate inverse error function).
pub(super) fn probit(x: f64) -> f64 {
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
pub(super) fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

// ------------------------------------------------------------------------------------------ labels

pub(super) enum Labels {
    Int(Vec<i64>),
    Str(Vec<Vec<u8>>),
}

impl Labels {
    pub(super) fn parse(attrs: &Attrs, ints: &str, strings: &str) -> Labels {
        match attrs.strings(strings) {
            Some(s) if !s.is_empty() => Labels::Str(s),
            _ => Labels::Int(attrs.ints(ints).map(<[i64]>::to_vec).unwrap_or_default()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Labels::Int(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    pub(super) fn elem(&self) -> Elem {
        match self {
            Labels::Int(_) => Elem::I64,
            Labels::Str(_) => Elem::Str,
        }
    }

    pub(super) fn output(&self, rows: usize) -> LabelOut {
        match self {
            Labels::Int(_) => LabelOut::Int(Vec::with_capacity(rows)),
            Labels::Str(_) => LabelOut::Str(Vec::with_capacity(rows)),
        }
    }
}

pub(super) enum LabelOut {
    Int(Vec<i64>),
    Str(Vec<Vec<u8>>),
}

impl LabelOut {
    /// Pushes the label of class index `i`, or `fallback`'s label when the index has no label.
    pub(super) fn push(&mut self, labels: &Labels, i: usize) {
        match (self, labels) {
            (LabelOut::Int(out), Labels::Int(l)) => out.push(l.get(i).copied().unwrap_or(i as i64)),
            (LabelOut::Str(out), Labels::Str(l)) => out.push(l.get(i).cloned().unwrap_or_default()),
            _ => {}
        }
    }

    pub(super) fn into_value(self, rows: usize) -> Value {
        match self {
            LabelOut::Int(v) => Value { rows, cols: None, elem: Elem::I64, data: Data::I(v) },
            LabelOut::Str(v) => Value { rows, cols: None, elem: Elem::Str, data: Data::S(v) },
        }
    }
}

//! `LinearClassifier` and `LinearRegressor` of the `ai.onnx.ml` domain.

use super::*;

/// `LinearClassifier`: scores = X·Cᵀ + b, post transform, label by argmax (or threshold for one score).
pub(super) struct LinearClassifier {
    pub(super) n_features: usize,
    pub(super) coefficients: Vec<f64>,
    pub(super) intercepts: Vec<f64>,
    pub(super) n_scores: usize,
    pub(super) labels: Labels,
    pub(super) post: Post,
}

impl LinearClassifier {
    pub(super) fn load(attrs: &Attrs, n_features: usize) -> Result<LinearClassifier, String> {
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

    pub(super) fn binary(&self) -> bool {
        self.n_scores == 1 && self.labels.len() == 2
    }

    pub(super) fn score_cols(&self) -> usize {
        if self.binary() {
            2
        } else {
            self.n_scores
        }
    }

    pub(super) fn eval(&self, rows: usize, x: &[f64]) -> Vec<Value> {
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
pub(super) struct LinearRegressor {
    pub(super) n_features: usize,
    pub(super) coefficients: Vec<f64>,
    pub(super) intercepts: Vec<f64>,
    pub(super) targets: usize,
}

impl LinearRegressor {
    pub(super) fn load(attrs: &Attrs, n_features: usize) -> Result<Option<LinearRegressor>, String> {
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

    pub(super) fn eval(&self, rows: usize, x: &[f64]) -> Value {
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

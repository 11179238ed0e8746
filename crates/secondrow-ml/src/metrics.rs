//! Evaluation metrics: classification (accuracy, precision, recall, F1, ROC-AUC, log-loss, confusion
//! matrix, ROC curve) and regression (RMSE, MAE, R²).
//!
//! Two classes: precision, recall and F1 are those of the second class (the positive one, `1` for 0/1
//! labels) and the ROC curve is that class's. More classes: macro averages and one-vs-rest ROC-AUC.

use serde::{Deserialize, Serialize};

use crate::table::Matrix;

/// Classification metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassificationMetrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub log_loss: f64,
    pub classes: Vec<String>,
    /// `confusion[actual][predicted]`.
    pub confusion: Vec<Vec<usize>>,
    pub roc_curve: Vec<RocPoint>,
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RocPoint {
    pub threshold: f64,
    pub tpr: f64,
    pub fpr: f64,
}

/// Regression metrics.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct RegressionMetrics {
    pub rmse: f64,
    pub mae: f64,
    pub r2: f64,
}

/// Most ROC points kept in the curve (evenly thinned).
const MAX_ROC_POINTS: usize = 200;

/// Metrics of probabilities `proba` (n × classes) against true class indices `y`.
pub fn classification(y: &[usize], proba: &Matrix, classes: &[String]) -> ClassificationMetrics {
    let k = classes.len();
    let n = y.len();
    let predicted: Vec<usize> = (0..n)
        .map(|i| {
            let row = proba.row(i);
            (0..k).fold(0, |best, c| if row[c] > row[best] { c } else { best })
        })
        .collect();
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in y.iter().zip(&predicted) {
        confusion[t][p] += 1;
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let per_class = |c: usize| {
        let tp = confusion[c][c] as f64;
        let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
        let actual_c: usize = confusion[c].iter().sum();
        let precision = if predicted_c > 0 { tp / predicted_c as f64 } else { 0.0 };
        let recall = if actual_c > 0 { tp / actual_c as f64 } else { 0.0 };
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        (precision, recall, f1)
    };
    let (precision, recall, f1) = if k == 2 {
        per_class(1)
    } else {
        let sums = (0..k).map(per_class).fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
        (sums.0 / k as f64, sums.1 / k as f64, sums.2 / k as f64)
    };
    let log_loss = (0..n).map(|i| -proba.row(i)[y[i]].clamp(1e-15, 1.0).ln()).sum::<f64>() / n.max(1) as f64;
    let scores = |c: usize| -> Vec<f64> { (0..n).map(|i| proba.row(i)[c]).collect() };
    let positives = |c: usize| -> Vec<bool> { y.iter().map(|&t| t == c).collect() };
    let roc_auc = if k == 2 {
        auc(&scores(1), &positives(1))
    } else {
        let aucs: Vec<f64> = (0..k).map(|c| auc(&scores(c), &positives(c))).filter(|a| !a.is_nan()).collect();
        aucs.iter().sum::<f64>() / aucs.len().max(1) as f64
    };
    let roc_curve = if k == 2 { roc(&scores(1), &positives(1)) } else { Vec::new() };
    ClassificationMetrics {
        accuracy: correct as f64 / n.max(1) as f64,
        precision,
        recall,
        f1,
        roc_auc,
        log_loss,
        classes: classes.to_vec(),
        confusion,
        roc_curve,
    }
}

/// Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN with one class only.
pub fn auc(scores: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            if positive[o] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// ROC curve points from the highest threshold down, one per distinct score, thinned to at most
/// [`MAX_ROC_POINTS`] (first and last kept).
pub fn roc(scores: &[f64], positive: &[bool]) -> Vec<RocPoint> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let n_pos = positive.iter().filter(|&&p| p).count().max(1) as f64;
    let n_neg = (positive.len() - positive.iter().filter(|&&p| p).count()).max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![RocPoint { threshold: f64::INFINITY, tpr: 0.0, fpr: 0.0 }];
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        points.push(RocPoint { threshold: s, tpr: tp / n_pos, fpr: fp / n_neg });
    }
    // JSON has no infinity: the first point uses a threshold just above the top score.
    points[0].threshold = points.get(1).map_or(1.0, |p| p.threshold + 1e-6);
    if points.len() > MAX_ROC_POINTS {
        let last = points.len() - 1;
        points = (0..MAX_ROC_POINTS).map(|t| points[t * last / (MAX_ROC_POINTS - 1)]).collect();
    }
    points
}

/// RMSE, MAE and R² of predictions against truth.
pub fn regression(y: &[f64], predicted: &[f64]) -> RegressionMetrics {
    let n = y.len().max(1) as f64;
    let mse = y.iter().zip(predicted).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n;
    let mae = y.iter().zip(predicted).map(|(a, b)| (a - b).abs()).sum::<f64>() / n;
    let mean = y.iter().sum::<f64>() / n;
    let total = y.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n;
    RegressionMetrics { rmse: mse.sqrt(), mae, r2: if total > 0.0 { 1.0 - mse / total } else { 0.0 } }
}

#[cfg(test)]
mod tests;

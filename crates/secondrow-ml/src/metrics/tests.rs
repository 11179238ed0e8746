use super::*;

#[test]
fn auc_matches_hand_computed_values() {
    assert_eq!(auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), 0.75);
    assert_eq!(auc(&[0.5, 0.5], &[false, true]), 0.5);
    assert!(auc(&[0.1, 0.2], &[true, true]).is_nan());
}

#[test]
fn binary_classification_metrics() {
    let classes = vec!["0".to_string(), "1".to_string()];
    let proba = Matrix::from_rows(&[vec![0.9, 0.1], vec![0.6, 0.4], vec![0.35, 0.65], vec![0.2, 0.8]]);
    let m = classification(&[0, 1, 0, 1], &proba, &classes);
    assert_eq!(m.confusion, vec![vec![1, 1], vec![1, 1]]);
    assert_eq!((m.accuracy, m.precision, m.recall, m.f1), (0.5, 0.5, 0.5, 0.5));
    assert_eq!(m.roc_auc, 0.75);
    let expected_log_loss = -(0.9f64.ln() + 0.4f64.ln() + 0.35f64.ln() + 0.8f64.ln()) / 4.0;
    assert!((m.log_loss - expected_log_loss).abs() < 1e-12);
    let first = m.roc_curve[0];
    let last = m.roc_curve[m.roc_curve.len() - 1];
    assert_eq!((first.tpr, first.fpr, last.tpr, last.fpr), (0.0, 0.0, 1.0, 1.0));
    assert!(first.threshold.is_finite());
}

#[test]
fn regression_metrics() {
    let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
    assert!((m.rmse - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    assert!((m.mae - 1.0 / 3.0).abs() < 1e-12);
    assert!((m.r2 - 0.5).abs() < 1e-12);
}

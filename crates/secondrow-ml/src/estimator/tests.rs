use super::*;
use crate::rng::Rng;

/// Two Gaussian blobs per class around different centres; separable enough for every classifier.
fn classification_data(n: usize, n_classes: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rng = Rng::new(seed);
    let d = 4;
    let mut data = Vec::with_capacity(n * d);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % n_classes;
        for j in 0..d {
            let centre = if j == c % d { 2.5 } else { 0.0 } + if j == (c + 1) % d { -1.0 } else { 0.0 };
            data.push(centre + rng.normal());
        }
        y.push(c);
    }
    (Matrix::new(n, d, data), y)
}

fn regression_data(n: usize, seed: u64) -> (Matrix, Vec<f64>) {
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(n * 3);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let x: Vec<f64> = (0..3).map(|_| rng.normal()).collect();
        y.push(3.0 * x[0] - 2.0 * x[1] + 0.5 + 0.1 * rng.normal());
        data.extend(x);
    }
    (Matrix::new(n, 3, data), y)
}

fn accuracy(estimator: &Estimator, x: &Matrix, y: &[usize]) -> f64 {
    let p = estimator.predict_matrix(x);
    let correct = (0..x.n_rows)
        .filter(|&i| {
            let row = p.row(i);
            let best = (0..row.len()).fold(0, |b, c| if row[c] > row[b] { c } else { b });
            best == y[i]
        })
        .count();
    correct as f64 / x.n_rows as f64
}

fn rmse(estimator: &Estimator, x: &Matrix, y: &[f64]) -> f64 {
    let p = estimator.predict_matrix(x);
    (y.iter().zip(&p.data).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

#[test]
fn classifiers_learn_binary_and_multiclass_problems() {
    let cases: Vec<(&str, Params, f64)> = vec![
        ("logistic_regression", Params::new(), 0.85),
        ("decision_tree", Params::new().with("max_depth", 5), 0.8),
        ("random_forest", Params::new().with("n_estimators", 20).with("max_depth", 6), 0.85),
        ("gradient_boosting", Params::new().with("max_iter", 30), 0.85),
        ("svm", Params::new(), 0.85),
        ("knn", Params::new().with("k", 7), 0.85),
        (
            "mlp",
            Params::new().with("epochs", 60).with("hidden", "16").with("batch_size", 32).with("learning_rate", 0.01),
            0.85,
        ),
    ];
    for n_classes in [2, 3] {
        let (x, y) = classification_data(600, n_classes, 1);
        let (xt, yt) = classification_data(300, n_classes, 2);
        for (algorithm, params, min_accuracy) in &cases {
            let target = Target::Classes { y: &y, n_classes };
            let fitted = fit(algorithm, &x, &target, params).unwrap();
            let acc = accuracy(&fitted, &xt, &yt);
            assert!(acc >= *min_accuracy, "{algorithm} with {n_classes} classes: accuracy {acc}");
            let proba = fitted.predict_matrix(&xt);
            assert_eq!(proba.n_cols, n_classes, "{algorithm}");
            for i in 0..proba.n_rows {
                let s: f64 = proba.row(i).iter().sum();
                assert!((s - 1.0).abs() < 1e-6, "{algorithm}: probabilities sum to {s}");
            }
            // The fitted state survives JSON (the model file).
            let json = serde_json::to_string(&fitted).unwrap();
            let back: Estimator = serde_json::from_str(&json).unwrap();
            assert_eq!(back.predict_matrix(&xt).data, proba.data, "{algorithm}");
        }
    }
}

#[test]
fn regressors_recover_a_linear_function() {
    let (x, y) = regression_data(800, 3);
    let (xt, yt) = regression_data(200, 4);
    let cases: Vec<(&str, Params, f64)> = vec![
        ("linear_regression", Params::new(), 0.15),
        ("ridge", Params::new().with("alpha", 1.0), 0.15),
        ("decision_tree", Params::new().with("task", "regression").with("max_depth", 8), 1.0),
        ("random_forest", Params::new().with("task", "regression").with("n_estimators", 20), 0.9),
        ("gradient_boosting", Params::new().with("task", "regression").with("max_iter", 200), 0.6),
        ("knn", Params::new().with("task", "regression"), 0.8),
        (
            "mlp",
            Params::new()
                .with("task", "regression")
                .with("epochs", 100)
                .with("batch_size", 32)
                .with("learning_rate", 0.01),
            0.4,
        ),
    ];
    for (algorithm, params, max_rmse) in cases {
        let fitted = fit(algorithm, &x, &Target::Values(&y), &params).unwrap();
        let e = rmse(&fitted, &xt, &yt);
        assert!(e <= max_rmse, "{algorithm}: rmse {e}");
    }
    let Estimator::Linear(lin) = fit("linear_regression", &x, &Target::Values(&y), &Params::new()).unwrap() else {
        panic!("linear model expected")
    };
    assert!(
        (lin.coef[0] - 3.0).abs() < 0.02 && (lin.coef[1] + 2.0).abs() < 0.02 && (lin.intercept - 0.5).abs() < 0.02,
        "{lin:?}"
    );
}

#[test]
fn ridge_shrinks_coefficients() {
    let (x, y) = regression_data(100, 5);
    let fit_alpha =
        |alpha: f64| match fit("ridge", &x, &Target::Values(&y), &Params::new().with("alpha", alpha)).unwrap() {
            Estimator::Linear(l) => l.coef[0],
            _ => f64::NAN,
        };
    assert!(fit_alpha(100.0).abs() < fit_alpha(0.0).abs());
}

#[test]
fn kmeans_finds_separated_clusters() {
    let mut rng = Rng::new(9);
    let centres = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)];
    let mut data = Vec::new();
    for i in 0..300 {
        let (cx, cy) = centres[i % 3];
        data.extend([cx + rng.normal(), cy + rng.normal()]);
    }
    let x = Matrix::new(300, 2, data);
    let Estimator::KMeans(km) = fit("kmeans", &x, &Target::None, &Params::new().with("k", 3)).unwrap() else {
        panic!("kmeans expected")
    };
    let labels = km.predict(&x);
    for i in 3..300 {
        assert_eq!(labels[i], labels[i % 3], "row {i}");
    }
    assert!(km.inertia / 300.0 < 2.5, "inertia per row {}", km.inertia / 300.0);
}

#[test]
fn seeded_fits_are_deterministic() {
    let (x, y) = classification_data(300, 2, 7);
    let target = Target::Classes { y: &y, n_classes: 2 };
    for algorithm in ["random_forest", "gradient_boosting", "mlp"] {
        let params = Params::new().with("seed", 3).with("n_estimators", 5).with("max_iter", 5).with("epochs", 2);
        let a = fit(algorithm, &x, &target, &params).unwrap();
        let b = fit(algorithm, &x, &target, &params).unwrap();
        assert_eq!(a, b, "{algorithm}");
    }
}

#[test]
fn bad_hyperparameters_name_the_argument() {
    let (x, y) = classification_data(50, 2, 1);
    let target = Target::Classes { y: &y, n_classes: 2 };
    let err = fit("random_forest", &x, &target, &Params::new().with("max_features", "lots")).unwrap_err();
    assert!(err.to_string().starts_with("argument `max_features`"), "{err}");
    let err = fit("logistic_regression", &x, &target, &Params::new().with("c", -1.0)).unwrap_err();
    assert!(err.to_string().starts_with("argument `c`"), "{err}");
    let err = fit("svm", &x, &target, &Params::new().with("kernel", "poly")).unwrap_err();
    assert!(err.to_string().starts_with("argument `kernel`"), "{err}");
}

//! Estimators: the fitted state of every algorithm, fitting from a feature matrix and a target, and
//! prediction. Knows nothing of tables, files or transforms (see [`crate::model`] for those).

pub mod forest;
pub mod gbt;
pub mod kmeans;
pub mod knn;
pub mod lbfgs;
pub mod linear;
pub mod logistic;
pub mod mlp;
pub mod svm;
pub mod tree;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::params::Params;
use crate::table::Matrix;

/// The algorithms, by the names used in model files and component names (`train_<name>`).
pub const ALGORITHMS: &[&str] = &[
    "linear_regression",
    "ridge",
    "logistic_regression",
    "decision_tree",
    "random_forest",
    "gradient_boosting",
    "svm",
    "knn",
    "kmeans",
    "mlp",
];

/// What a model predicts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
    Clustering,
}

impl Task {
    pub fn as_str(&self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
            Task::Clustering => "clustering",
        }
    }
}

/// Fitted state of one algorithm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Estimator {
    Linear(linear::Linear),
    Logistic(logistic::Logistic),
    Forest(forest::Forest),
    Gbt(gbt::Gbt),
    Svm(svm::Svm),
    Knn(knn::Knn),
    KMeans(kmeans::KMeans),
    Mlp(mlp::Mlp),
}

/// The training target, already encoded.
pub enum Target<'a> {
    /// Class indices in `0..n_classes`.
    Classes {
        y: &'a [usize],
        n_classes: usize,
    },
    Values(&'a [f64]),
    None,
}

/// The task an algorithm performs with the given `task` parameter (`classification` or `regression`
/// where the algorithm supports both).
pub fn task_of(algorithm: &str, params: &Params) -> Result<Task> {
    Ok(match algorithm {
        "linear_regression" | "ridge" => Task::Regression,
        "logistic_regression" | "svm" => Task::Classification,
        "kmeans" => Task::Clustering,
        "decision_tree" | "random_forest" | "gradient_boosting" | "knn" | "mlp" => {
            match params.string("task", "classification")?.as_str() {
                "classification" => Task::Classification,
                "regression" => Task::Regression,
                other => {
                    return Err(Error::arg("task", format!("expected classification or regression, got `{other}`")))
                }
            }
        }
        other => {
            return Err(Error::arg(
                "algorithm",
                format!("unknown algorithm `{other}` (known: {})", ALGORITHMS.join(", ")),
            ))
        }
    })
}

/// Fits `algorithm` with hyperparameters `params`.
pub fn fit(algorithm: &str, x: &Matrix, target: &Target, params: &Params) -> Result<Estimator> {
    let seed = params.u64("seed", 0)?;
    let (class_y, n_classes) = match target {
        Target::Classes { y, n_classes } => (Some(*y), *n_classes),
        _ => (None, 0),
    };
    let values = match target {
        Target::Values(v) => Some(*v),
        _ => None,
    };
    let need_classes =
        || class_y.ok_or_else(|| Error::arg("task", format!("{algorithm} needs a classification target")));
    let need_values = || values.ok_or_else(|| Error::arg("task", format!("{algorithm} needs a regression target")));
    let tree_target = || -> Result<tree::Target> {
        Ok(match (class_y, values) {
            (Some(y), _) => tree::Target::Classes { y, n_classes },
            (_, Some(y)) => tree::Target::Values { y },
            _ => return Err(Error::arg("task", format!("{algorithm} needs a label"))),
        })
    };
    Ok(match algorithm {
        "linear_regression" => Estimator::Linear(linear::Linear::fit(x, need_values()?, 0.0)?),
        "ridge" => Estimator::Linear(linear::Linear::fit(x, need_values()?, params.f64("alpha", 1.0)?)?),
        "logistic_regression" => {
            let p = logistic::LogisticParams {
                c: params.positive("c", 1.0)?,
                max_iter: params.usize("max_iter", 200)?,
                tol: params.positive("tol", 1e-4)?,
            };
            Estimator::Logistic(logistic::Logistic::fit(x, need_classes()?, n_classes, p))
        }
        "decision_tree" | "random_forest" => {
            let forest = algorithm == "random_forest";
            let mut max_features_text = params.string("max_features", "auto")?;
            if max_features_text == "auto" {
                // scikit-learn's defaults: sqrt for forest classifiers, every feature otherwise.
                max_features_text = if forest && class_y.is_some() { "sqrt" } else { "all" }.to_string();
            }
            let max_features = tree::resolve_max_features(&max_features_text, x.n_cols).ok_or_else(|| {
                Error::arg(
                    "max_features",
                    format!("`{max_features_text}`: expected sqrt, log2, all, an integer or a fraction"),
                )
            })?;
            let max_depth = params.usize("max_depth", 10)?;
            let cart = tree::CartParams {
                max_depth: if max_depth == 0 { usize::MAX } else { max_depth },
                min_samples_split: params.usize("min_samples_split", 2)?.max(2),
                min_samples_leaf: params.usize("min_samples_leaf", 1)?.max(1),
                max_features,
            };
            let p = forest::ForestParams {
                n_trees: if forest { params.usize("n_estimators", 100)?.max(1) } else { 1 },
                bootstrap: forest && params.bool("bootstrap", true)?,
                cart,
                max_bins: params.usize("max_bins", 256)?,
                seed,
            };
            Estimator::Forest(forest::Forest::fit(x, tree_target()?, p))
        }
        "gradient_boosting" => {
            let early = match params.string("early_stopping", "auto")?.as_str() {
                "auto" => x.n_rows > 10_000,
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(Error::arg("early_stopping", format!("expected auto, true or false, got `{other}`")))
                }
            };
            let p = gbt::GbtParams {
                max_iter: params.usize("max_iter", 100)?,
                learning_rate: params.positive("learning_rate", 0.1)?,
                max_leaf_nodes: params.usize("max_leaf_nodes", 31)?.max(2),
                max_depth: params.usize("max_depth", 0)?,
                min_samples_leaf: params.usize("min_samples_leaf", 20)?,
                l2_regularization: params.f64("l2_regularization", 0.0)?,
                max_bins: params.usize("max_bins", 255)?,
                early_stopping: early,
                validation_fraction: params.positive("validation_fraction", 0.1)?,
                n_iter_no_change: params.usize("n_iter_no_change", 10)?.max(1),
                tol: params.f64("tol", 1e-7)?,
                seed,
            };
            let (y, loss): (Vec<f64>, gbt::GbtLoss) = match (class_y, values) {
                (Some(y), _) => (
                    y.iter().map(|&c| c as f64).collect(),
                    if n_classes == 2 { gbt::GbtLoss::BinaryLogLoss } else { gbt::GbtLoss::MultinomialLogLoss },
                ),
                (_, Some(v)) => (v.to_vec(), gbt::GbtLoss::SquaredError),
                _ => return Err(Error::arg("task", "gradient_boosting needs a label")),
            };
            Estimator::Gbt(gbt::Gbt::fit(x, &y, loss, n_classes, p))
        }
        "svm" => {
            let kernel = match params.string("kernel", "rbf")?.as_str() {
                "linear" => svm::Kernel::Linear,
                "rbf" => {
                    let gamma = match params.string("gamma", "scale")?.as_str() {
                        "scale" => svm::gamma_scale(x),
                        "auto" => 1.0 / x.n_cols.max(1) as f64,
                        _ => params.positive("gamma", 1.0)?,
                    };
                    svm::Kernel::Rbf { gamma }
                }
                other => return Err(Error::arg("kernel", format!("expected linear or rbf, got `{other}`"))),
            };
            let p = svm::SvmParams {
                c: params.positive("c", 1.0)?,
                kernel,
                tol: params.positive("tol", 1e-3)?,
                max_iter: params.usize("max_iter", 10_000_000)?,
                cache_mb: params.usize("cache_mb", 1024)?,
            };
            Estimator::Svm(svm::Svm::fit(x, need_classes()?, n_classes, p))
        }
        "knn" => {
            let k = params.usize("k", 5)?;
            if k == 0 {
                return Err(Error::arg("k", "must be >= 1"));
            }
            let distance = match params.string("weights", "uniform")?.as_str() {
                "uniform" => false,
                "distance" => true,
                other => return Err(Error::arg("weights", format!("expected uniform or distance, got `{other}`"))),
            };
            let (y, classes) = match (class_y, values) {
                (Some(y), _) => (y.iter().map(|&c| c as f64).collect(), Some(n_classes)),
                (_, Some(v)) => (v.to_vec(), None),
                _ => return Err(Error::arg("task", "knn needs a label")),
            };
            Estimator::Knn(knn::Knn::fit(x, y, k, distance, classes))
        }
        "kmeans" => {
            let p = kmeans::KMeansParams {
                k: params.usize("k", 8)?.max(1),
                max_iter: params.usize("max_iter", 300)?.max(1),
                tol: params.f64("tol", 1e-4)?,
                n_init: params.usize("n_init", 1)?.max(1),
                seed,
            };
            Estimator::KMeans(kmeans::KMeans::fit(x, p))
        }
        "mlp" => {
            let hidden: Result<Vec<usize>> = params
                .list("hidden")
                .map(|l| if l.is_empty() { vec!["64".to_string()] } else { l })?
                .iter()
                .map(|h| h.parse::<usize>().map_err(|_| Error::arg("hidden", format!("`{h}` is not a layer size"))))
                .collect();
            let p = mlp::MlpParams {
                hidden: hidden?,
                learning_rate: params.positive("learning_rate", 0.001)?,
                alpha: params.f64("alpha", 1e-4)?,
                batch_size: params.usize("batch_size", 200)?.max(1),
                epochs: params.usize("epochs", 20)?.max(1),
                seed,
            };
            let (targets, output) = match (class_y, values) {
                (Some(y), _) if n_classes == 2 => {
                    (Matrix::new(y.len(), 1, y.iter().map(|&c| c as f64).collect()), mlp::MlpOutput::Sigmoid)
                }
                (Some(y), _) => {
                    let mut t = vec![0.0; y.len() * n_classes];
                    for (i, &c) in y.iter().enumerate() {
                        t[i * n_classes + c] = 1.0;
                    }
                    (Matrix::new(y.len(), n_classes, t), mlp::MlpOutput::Softmax)
                }
                (_, Some(v)) => (Matrix::new(v.len(), 1, v.to_vec()), mlp::MlpOutput::Identity),
                _ => return Err(Error::arg("task", "mlp needs a label")),
            };
            Estimator::Mlp(mlp::Mlp::fit(x, &targets, output, &p))
        }
        other => {
            return Err(Error::arg(
                "algorithm",
                format!("unknown algorithm `{other}` (known: {})", ALGORITHMS.join(", ")),
            ))
        }
    })
}

impl Estimator {
    /// Class probabilities (n × classes) for classifiers, values (n × 1) for regressors, cluster index
    /// (n × 1) for k-means.
    pub fn predict_matrix(&self, x: &Matrix) -> Matrix {
        match self {
            Estimator::Linear(m) => Matrix::new(x.n_rows, 1, m.predict(x)),
            Estimator::Logistic(m) => m.predict_proba(x),
            Estimator::Forest(m) => m.predict(x),
            Estimator::Gbt(m) => m.predict(x),
            Estimator::Svm(m) => m.predict_scores(x),
            Estimator::Knn(m) => m.predict(x),
            Estimator::KMeans(m) => Matrix::new(x.n_rows, 1, m.predict(x).into_iter().map(|c| c as f64).collect()),
            Estimator::Mlp(m) => {
                let out = m.predict(x);
                if m.output == mlp::MlpOutput::Sigmoid {
                    Matrix::new(x.n_rows, 2, out.data.iter().flat_map(|&p| [1.0 - p, p]).collect())
                } else {
                    out
                }
            }
        }
    }

    /// Iterations the solver ran, where it reports them.
    pub fn n_iter(&self) -> Option<usize> {
        match self {
            Estimator::Logistic(m) => Some(m.n_iter),
            Estimator::Gbt(m) => Some(m.n_iter),
            Estimator::KMeans(m) => Some(m.n_iter),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

//! Benchmark driver (not a test): fits every model of `bench/ml/sklearn_baseline.py` on the same
//! data and split (first 80% of rows train, last 20% test) and prints one JSON line per model in the
//! baseline's format. Run through `bench/ml/run.sh`, which puts it beside the scikit-learn anchor.
//!
//! Usage: cargo run --release -p secondrow-ml --example bench -- DATADIR [--repeat N] [--only NAME]

use std::path::Path;
use std::time::Instant;

use secondrow_ml::estimator::{self, Estimator, Target};
use secondrow_ml::model::encode_classes;
use secondrow_ml::{metrics, train_model_transformed, Matrix, Params, Table, TransformSpec, Transformer};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

struct Data {
    xtr: Matrix,
    ytr: Vec<f64>,
    xte: Matrix,
    yte: Vec<f64>,
}

fn load(path: &Path, label: &str) -> Result<Data, secondrow_ml::Error> {
    let table = Table::read(path)?;
    let features: Vec<String> = table.column_names().into_iter().filter(|c| c != label).collect();
    let x = table.feature_matrix(&features)?;
    let y = table.column(label)?.to_numbers()?;
    let cut = (x.n_rows as f64 * 0.8) as usize;
    let train: Vec<usize> = (0..cut).collect();
    let test: Vec<usize> = (cut..x.n_rows).collect();
    Ok(Data { xtr: x.select_rows(&train), ytr: y[..cut].to_vec(), xte: x.select_rows(&test), yte: y[cut..].to_vec() })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn head(x: &Matrix, n: usize) -> Matrix {
    x.select_rows(&(0..n.min(x.n_rows)).collect::<Vec<_>>())
}

fn silhouette(x: &Matrix, labels: &[usize]) -> f64 {
    let n = x.n_rows;
    let k = labels.iter().copied().max().unwrap_or(0) + 1;
    let mut total = 0.0;
    for i in 0..n {
        let mut sums = vec![0.0; k];
        let mut counts = vec![0usize; k];
        for j in 0..n {
            if i != j {
                let d: f64 = x.row(i).iter().zip(x.row(j)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
                sums[labels[j]] += d;
                counts[labels[j]] += 1;
            }
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        total += (b - a) / a.max(b);
    }
    total / n as f64
}

#[allow(clippy::too_many_arguments)]
fn bench_one(
    name: &str,
    data_name: &str,
    algorithm: &str,
    params: &Params,
    d: &Data,
    n_train: usize,
    n_test: usize,
    repeat: usize,
) {
    let xtr = head(&d.xtr, n_train);
    let xte = head(&d.xte, n_test);
    let task = estimator::task_of(algorithm, params).unwrap_or(estimator::Task::Regression);
    let ytr_c: Vec<usize> = d.ytr[..xtr.n_rows].iter().map(|&v| v as usize).collect();
    let yte_c: Vec<usize> = d.yte[..xte.n_rows].iter().map(|&v| v as usize).collect();
    let n_classes = ytr_c.iter().copied().max().unwrap_or(0) + 1;
    let target = match task {
        estimator::Task::Classification => Target::Classes { y: &ytr_c, n_classes },
        estimator::Task::Regression => Target::Values(&d.ytr[..xtr.n_rows]),
        estimator::Task::Clustering => Target::None,
    };
    let (mut fits, mut predicts, mut fit_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..repeat {
        let c0 = cpu_seconds();
        let t0 = Instant::now();
        let fitted = match estimator::fit(algorithm, &xtr, &target, params) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{name}: {e}");
                return;
            }
        };
        let t1 = Instant::now();
        fit_cpu.push(cpu_seconds() - c0);
        let out = fitted.predict_matrix(&xte);
        let t2 = Instant::now();
        fits.push((t1 - t0).as_secs_f64());
        predicts.push((t2 - t1).as_secs_f64());
        last = Some((fitted, out));
    }
    let Some((fitted, out)) = last else { return };
    let metric = match task {
        estimator::Task::Classification => {
            let classes: Vec<String> = (0..n_classes).map(|c| c.to_string()).collect();
            let m = metrics::classification(&yte_c, &out, &classes);
            serde_json::json!({"accuracy": round(m.accuracy)})
        }
        estimator::Task::Regression => {
            let m = metrics::regression(&d.yte[..xte.n_rows], &out.data);
            serde_json::json!({"rmse": round(m.rmse), "r2": round(m.r2)})
        }
        estimator::Task::Clustering => {
            let Estimator::KMeans(km) = &fitted else { return };
            let labels: Vec<usize> = out.data.iter().map(|&v| v as usize).collect();
            let n = 5000.min(xte.n_rows);
            serde_json::json!({
                "inertia_per_row": round(km.inertia_of(&xte) / xte.n_rows as f64),
                "silhouette": round(silhouette(&head(&xte, n), &labels[..n])),
            })
        }
    };
    let mut line = serde_json::json!({
        "model": name, "data": data_name, "params": params.to_json(), "train_rows": xtr.n_rows, "test_rows": xte.n_rows,
        "threads": rayon::current_num_threads(),
        "fit_seconds": round4(median(fits)), "predict_seconds": round4(median(predicts)), "fit_cpu_seconds": round4(median(fit_cpu)), "metric": metric,
    });
    if let Some(n_iter) = fitted.n_iter() {
        line["n_iter"] = serde_json::json!(n_iter);
    }
    println!("{line}");
}

/// CPU seconds of this process, all threads (user + system; Linux only, else 0): on a shared machine
/// it varies less than wall time.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th, in ticks of 10 ms.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn round(v: f64) -> f64 {
    (v * 1e5).round() / 1e5
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

fn run() -> Result<(), secondrow_ml::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(args.first().map(String::as_str).unwrap_or("."));
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let want = |name: &str| only.as_deref().is_none_or(|o| name.starts_with(o));
    let clf = load(&dir.join("clf_100k.csv"), "label")?;
    let all = usize::MAX;
    let p = Params::new;
    let runs: Vec<(&str, &str, Params, usize, usize)> = vec![
        ("logistic_regression", "logistic_regression", p().with("c", 1.0).with("max_iter", 200), all, all),
        ("decision_tree", "decision_tree", p().with("max_depth", 10), all, all),
        ("random_forest", "random_forest", p().with("n_estimators", 100).with("max_depth", 10), all, all),
        ("hist_gradient_boosting", "gradient_boosting", p().with("max_iter", 100), all, all),
        (
            "hist_gradient_boosting_no_early_stop",
            "gradient_boosting",
            p().with("max_iter", 100).with("early_stopping", "false"),
            all,
            all,
        ),
        ("mlp", "mlp", p().with("hidden", "64").with("epochs", 20), all, all),
        ("svm_rbf", "svm", p().with("kernel", "rbf").with("c", 1.0), 10_000, all),
        ("knn", "knn", p().with("k", 5), 20_000, 2_000),
        ("kmeans", "kmeans", p().with("k", 8).with("n_init", 1), all, all),
    ];
    for (name, algorithm, params, n_train, n_test) in &runs {
        if want(name) {
            bench_one(name, "clf_100k", algorithm, params, &clf, *n_train, *n_test, repeat);
        }
    }
    let clf3 = load(&dir.join("clf3_50k.csv"), "label")?;
    if want("logistic_regression_multinomial") {
        bench_one(
            "logistic_regression_multinomial",
            "clf3_50k",
            "logistic_regression",
            &p().with("max_iter", 200),
            &clf3,
            all,
            all,
            repeat,
        );
    }
    if want("random_forest_multiclass") {
        bench_one(
            "random_forest_multiclass",
            "clf3_50k",
            "random_forest",
            &p().with("n_estimators", 100).with("max_depth", 10),
            &clf3,
            all,
            all,
            repeat,
        );
    }
    let reg = load(&dir.join("reg_100k.csv"), "target")?;
    if want("linear_regression") {
        bench_one("linear_regression", "reg_100k", "linear_regression", &p(), &reg, all, all, repeat);
    }
    if want("ridge") {
        bench_one("ridge", "reg_100k", "ridge", &p().with("alpha", 1.0), &reg, all, all, repeat);
    }
    if want("impute_scale_onehot_logistic_regression") {
        // The whole pipeline (fit transforms + fit model) is timed, as scikit-learn's Pipeline.fit is.
        let table = Table::read(&dir.join("adult_like_20k.csv"))?;
        let cut = (table.n_rows() as f64 * 0.8) as usize;
        let train = table.take(&(0..cut).collect::<Vec<_>>());
        let test = table.take(&(cut..table.n_rows()).collect::<Vec<_>>());
        let spec = TransformSpec::parse(
            r#"[{"op":"impute","columns":["age","hours_per_week","income","capital_gain"],"strategy":"median"},
                {"op":"standardize","columns":["age","hours_per_week","income","capital_gain"]},
                {"op":"impute","columns":["education","job","city"],"strategy":"most_frequent"},
                {"op":"one_hot","columns":["education","job","city"]}]"#,
        )?;
        let params = p().with("max_iter", 200);
        let (mut fits, mut predicts) = (Vec::new(), Vec::new());
        let mut accuracy = 0.0;
        for _ in 0..repeat {
            let t0 = Instant::now();
            let (transformer, transformed) = Transformer::fit(&spec, &train, Some("label"))?;
            let model = train_model_transformed(
                "logistic_regression",
                &transformed,
                Some("label"),
                &[],
                Some(transformer),
                &params,
            )?;
            let t1 = Instant::now();
            let predictions = model.predict(&test)?;
            let t2 = Instant::now();
            fits.push((t1 - t0).as_secs_f64());
            predicts.push((t2 - t1).as_secs_f64());
            let (y, _) = encode_classes(&test, "label")?;
            let correct = y.iter().zip(&predictions.values).filter(|(a, b)| **a as f64 == **b).count();
            accuracy = correct as f64 / y.len() as f64;
        }
        println!(
            "{}",
            serde_json::json!({"model": "impute_scale_onehot_logistic_regression", "data": "adult_like_20k",
                "params": {"max_iter": 200}, "train_rows": cut, "test_rows": table.n_rows() - cut,
                "threads": rayon::current_num_threads(), "fit_seconds": round4(median(fits)),
                "predict_seconds": round4(median(predicts)), "metric": {"accuracy": round(accuracy)}})
        );
    }
    Ok(())
}

//! Components end to end, and their failure modes.

use serde_json::json;

use crate::support::{adult_csv, component, exists, Dir};

const SPEC: &str = r#"[{"op":"impute","columns":["age"],"strategy":"median"},{"op":"standardize","columns":["age","hours"]},{"op":"impute","columns":["job"],"strategy":"most_frequent"},{"op":"one_hot","columns":["job"]}]"#;

#[test]
fn pipeline_ingest_to_evaluate_and_predict() {
    let dir = Dir::new();
    dir.write("raw.csv", &adult_csv(600));
    component(&dir, "ingest", &["--source", "@raw.csv", "--dataset", "@data", "--format", "parquet"]).unwrap();
    component(
        &dir,
        "statistics",
        &["--data", "@data", "--statistics", "@stats.json", "--report", "@stats.md", "--html-report", "@stats.html"],
    )
    .unwrap();
    let stats = dir.json("stats.json");
    assert_eq!(stats["rows"], 600);
    assert_eq!(stats["columns"][0]["name"], "age");
    assert!(stats["columns"][0]["missing"].as_u64().unwrap() > 0);
    assert!(dir.read("stats.md").contains("| age | number |"));
    assert!(dir.read("stats.html").starts_with("<!DOCTYPE html>"));
    component(&dir, "infer_schema", &["--data", "@data", "--schema", "@schema.json"]).unwrap();
    component(
        &dir,
        "validate",
        &[
            "--data",
            "@data",
            "--schema",
            "@schema.json",
            "--anomalies",
            "@anomalies.json",
            "--report",
            "@validation.md",
        ],
    )
    .unwrap();
    assert_eq!(dir.json("anomalies.json")["anomalies"], json!([]));
    component(
        &dir,
        "split",
        &["--data", "@data", "--train", "@train", "--test", "@test", "--stratify", "label", "--seed", "7"],
    )
    .unwrap();
    component(
        &dir,
        "transform",
        &[
            "--data",
            "@train",
            "--spec",
            SPEC,
            "--label",
            "label",
            "--output",
            "@train_t",
            "--transformer",
            "@transformer.json",
        ],
    )
    .unwrap();
    // Applying the fitted transformer to the test part (as a separate step) works too.
    component(&dir, "transform", &["--data", "@test", "--fitted", "@transformer.json", "--output", "@test_t"]).unwrap();
    for algorithm in ["logistic_regression", "random_forest", "gradient_boosting", "decision_tree", "knn", "svm", "mlp"]
    {
        let model = format!("@model_{algorithm}.json");
        let args = [
            "--train-data",
            "@train",
            "--label",
            "label",
            "--transformer",
            "@transformer.json",
            "--model",
            model.as_str(),
        ];
        component(&dir, &format!("train_{algorithm}"), &args).unwrap();
        component(
            &dir,
            "evaluate",
            &[
                "--data",
                "@test",
                "--model",
                model.as_str(),
                "--metrics",
                "@metrics.json",
                "--classification-metrics",
                "@cm.json",
                "--report",
                "@eval.md",
            ],
        )
        .unwrap();
        let metrics = dir.json("metrics.json");
        let accuracy = metrics["accuracy"].as_f64().unwrap();
        assert!(accuracy > 0.75, "{algorithm}: accuracy {accuracy}");
        let cm = dir.json("cm.json");
        assert_eq!(cm["confusionMatrix"]["annotationSpecs"], json!([{"displayName": "0"}, {"displayName": "1"}]));
        let rows = cm["confusionMatrix"]["rows"].as_array().unwrap();
        let total: u64 =
            rows.iter().flat_map(|r| r["row"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap())).sum();
        assert_eq!(total, 120);
        assert!(!cm["confidenceMetrics"].as_array().unwrap().is_empty());
        assert!(dir.read("eval.md").contains("Confusion matrix"));
    }
    component(
        &dir,
        "predict",
        &["--data", "@test", "--model", "@model_logistic_regression.json", "--predictions", "@pred.csv"],
    )
    .unwrap();
    let predictions = secondrow_ml::Table::read(&dir.path("pred.csv")).unwrap();
    assert_eq!(predictions.n_rows(), 120);
    assert!(predictions.find("prediction").is_some() && predictions.find("probability_1").is_some());
    // The library API gives the same predictions as the component.
    let model = secondrow_ml::load_model(&dir.path("model_logistic_regression.json")).unwrap();
    let test = secondrow_ml::Table::read(&dir.path("test")).unwrap();
    let direct = model.predict(&test).unwrap();
    assert_eq!(predictions.column("prediction").unwrap().to_numbers().unwrap(), direct.values);
    let rows = vec![vec![30.0, 40.0]];
    assert!(
        secondrow_ml::load_model(&dir.path("model_knn.json")).unwrap().predict_rows(&rows).is_err(),
        "job is a text column"
    );
}

#[test]
fn regression_and_clustering_components() {
    let dir = Dir::new();
    let mut csv = String::from("x1,x2,y\n");
    for i in 0..300 {
        let (a, b) = ((i % 17) as f64 / 4.0, (i % 11) as f64 / 3.0);
        csv.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 1.0 + ((i % 5) as f64 - 2.0) * 0.01));
    }
    dir.write("reg.csv", &csv);
    for algorithm in ["linear_regression", "ridge"] {
        component(
            &dir,
            &format!("train_{algorithm}"),
            &["--train-data", "@reg.csv", "--label", "y", "--model", "@m.json"],
        )
        .unwrap();
        component(
            &dir,
            "evaluate",
            &[
                "--data",
                "@reg.csv",
                "--model",
                "@m.json",
                "--metrics",
                "@metrics.json",
                "--classification-metrics",
                "@cm.json",
            ],
        )
        .unwrap();
        let metrics = dir.json("metrics.json");
        assert!(metrics["r2"].as_f64().unwrap() > 0.99, "{algorithm}: {metrics}");
        assert!(metrics["rmse"].as_f64().unwrap() < 0.1);
        assert_eq!(dir.json("cm.json"), json!({}));
    }
    for algorithm in ["decision_tree", "random_forest", "gradient_boosting", "knn", "mlp"] {
        let mut args = vec!["--train-data", "@reg.csv", "--label", "y", "--task", "regression", "--model", "@m.json"];
        if algorithm == "mlp" {
            args.extend(["--epochs", "300", "--learning-rate", "0.01", "--batch-size", "32"]);
        }
        component(&dir, &format!("train_{algorithm}"), &args).unwrap();
        component(&dir, "evaluate", &["--data", "@reg.csv", "--model", "@m.json", "--metrics", "@metrics.json"])
            .unwrap();
        assert!(dir.json("metrics.json")["r2"].as_f64().unwrap() > 0.8, "{algorithm}");
    }
    component(&dir, "train_kmeans", &["--train-data", "@reg.csv", "--label", "y", "--k", "3", "--model", "@km.json"])
        .unwrap();
    component(&dir, "predict", &["--data", "@reg.csv", "--model", "@km.json", "--predictions", "@clusters.csv"])
        .unwrap();
    let clusters = secondrow_ml::Table::read(&dir.path("clusters.csv")).unwrap();
    let ids = clusters.column("prediction").unwrap().to_numbers().unwrap();
    assert!(ids.iter().all(|&c| (0.0..3.0).contains(&c)));
    let err = component(&dir, "evaluate", &["--data", "@reg.csv", "--model", "@km.json", "--metrics", "@nope.json"])
        .unwrap_err();
    assert!(err.to_string().contains("km.json") && err.to_string().contains("kmeans"), "{err}");
}

#[test]
fn executor_input_writes_kfp_metadata() {
    let dir = Dir::new();
    dir.write("raw.csv", &adult_csv(300));
    component(
        &dir,
        "transform",
        &["--data", "@raw.csv", "--spec", SPEC, "--label", "label", "--output", "@t", "--transformer", "@tr.json"],
    )
    .unwrap();
    component(
        &dir,
        "train_logistic_regression",
        &["--train-data", "@raw.csv", "--label", "label", "--transformer", "@tr.json", "--model", "@model.json"],
    )
    .unwrap();
    let path = |n: &str| dir.path(n).to_string_lossy().to_string();
    let artifact = |name: &str, title: &str, uri: String| json!({"artifacts": [{"name": name, "type": {"schemaTitle": title, "schemaVersion": "0.0.1"}, "uri": uri, "metadata": {}}]});
    let executor = json!({
        "inputs": {
            "parameterValues": {},
            "artifacts": {
                "data": artifact("data", "system.Dataset", path("raw.csv")),
                "model": artifact("model", "system.Model", path("model.json")),
            }
        },
        "outputs": {
            "artifacts": {
                "metrics": artifact("metrics", "system.Metrics", path("task/metrics")),
                "classification_metrics": artifact("classification_metrics", "system.ClassificationMetrics", path("task/cm")),
                "report": artifact("report", "system.Markdown", path("task/report")),
                "html_report": artifact("html_report", "system.HTML", path("task/report.html")),
            },
            "outputFile": path("task/executor_output.json")
        }
    });
    component(&dir, "evaluate", &["--executor-input", &executor.to_string()]).unwrap();
    let output = dir.json("task/executor_output.json");
    let metrics = &output["artifacts"]["metrics"]["artifacts"][0];
    assert_eq!(metrics["uri"], json!(path("task/metrics")));
    assert!(metrics["metadata"]["accuracy"].as_f64().unwrap() > 0.75);
    let cm = &output["artifacts"]["classification_metrics"]["artifacts"][0]["metadata"];
    assert_eq!(cm["confusionMatrix"]["rows"].as_array().unwrap().len(), 2);
    let roc = &cm["confidenceMetrics"][0];
    assert!(
        roc["confidenceThreshold"].is_number() && roc["recall"].is_number() && roc["falsePositiveRate"].is_number()
    );
    assert!(dir.read("task/report").contains("# Evaluation"));
    // Integer parameters arrive as JSON numbers (whole doubles too).
    let executor = json!({
        "inputs": {"parameterValues": {"test_fraction": 0.25, "seed": 3.0, "stratify": "label"},
                   "artifacts": {"data": artifact("data", "system.Dataset", path("raw.csv"))}},
        "outputs": {"artifacts": {"train": artifact("train", "system.Dataset", path("split/train")),
                                  "test": artifact("test", "system.Dataset", path("split/test"))},
                    "outputFile": path("split/executor_output.json")}
    });
    component(&dir, "split", &["--executor-input", &executor.to_string()]).unwrap();
    let output = dir.json("split/executor_output.json");
    assert_eq!(output["artifacts"]["test"]["artifacts"][0]["metadata"]["rows"], 75);
    assert_eq!(output["artifacts"]["train"]["artifacts"][0]["metadata"]["rows"], 225);
}

#[test]
fn bad_input_fails_with_a_clear_error_and_no_outputs() {
    let dir = Dir::new();
    dir.write("raw.csv", &adult_csv(100));
    dir.write("empty.csv", "");
    dir.write("bad.csv", "age,hours,label\n30,40,1\n31,forty,0\n32,41,1\n");
    dir.write("one.csv", "age,hours,label\n30,40,1\n31,41,1\n");
    let before = dir.files();
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "train_logistic_regression",
            vec!["--train-data", "@raw.csv", "--label", "nope", "--model", "@m.json"],
            "column `nope` not found",
        ),
        (
            "train_logistic_regression",
            vec!["--train-data", "@bad.csv", "--label", "label", "--model", "@m.json"],
            "column `hours`: non-numeric value `forty` in row 2",
        ),
        (
            "train_random_forest",
            vec!["--train-data", "@raw.csv", "--label", "label", "--model", "@m.json"],
            "column `age`",
        ),
        ("statistics", vec!["--data", "@empty.csv", "--statistics", "@s.json"], "empty.csv: file is empty"),
        (
            "train_svm",
            vec!["--train-data", "@one.csv", "--label", "label", "--model", "@m.json"],
            "label column `label` has a single class `1`",
        ),
        ("train_knn", vec!["--train-data", "@raw.csv", "--model", "@m.json"], "missing required argument `--label`"),
        (
            "train_knn",
            vec!["--train-data", "@raw.csv", "--label", "label", "--k", "many", "--model", "@m.json"],
            "argument `k`: `many` is not an integer",
        ),
        ("split", vec!["--data", "@raw.csv", "--colour", "red"], "unknown argument `--colour`"),
        (
            "evaluate",
            vec!["--data", "@raw.csv", "--model", "@raw.csv", "--metrics", "@m.json"],
            "raw.csv: not a secondrow model file",
        ),
        ("no_such_component", vec![], "unknown component `no_such_component`"),
    ];
    for (name, args, expected) in cases {
        let err = component(&dir, name, &args).unwrap_err();
        assert!(err.to_string().contains(expected), "{name}: `{err}` lacks `{expected}`");
    }
    // Validation failure: the anomalies are in the error, and no output was written.
    let schema = r#"{"columns": [{"name": "age", "type": "number", "min": 0, "max": 50}, {"name": "job", "type": "string", "allowed": ["tech"]}]}"#;
    let err = component(
        &dir,
        "validate",
        &["--data", "@raw.csv", "--schema-json", schema, "--anomalies", "@a.json", "--report", "@a.md"],
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("data validation failed with 2 anomalies"), "{err}");
    assert!(err.to_string().contains("column `job`"), "{err}");
    assert_eq!(dir.files(), before, "failed steps must leave no files");
    // Asked not to fail, the same validation reports instead.
    component(
        &dir,
        "validate",
        &["--data", "@raw.csv", "--schema-json", schema, "--fail-on-anomalies", "false", "--anomalies", "@a.json"],
    )
    .unwrap();
    assert_eq!(dir.json("a.json")["anomalies"].as_array().unwrap().len(), 2);
    // A model ONNX export does not cover: its transformer encodes `job` twice (ordinal, then one-hot of the codes).
    let twice = r#"[{"op":"ordinal","columns":["job"]},{"op":"one_hot","columns":["job"]}]"#;
    component(
        &dir,
        "transform",
        &["--data", "@raw.csv", "--spec", twice, "--label", "label", "--output", "@t2", "--transformer", "@twice.json"],
    )
    .unwrap();
    component(
        &dir,
        "train_decision_tree",
        &[
            "--train-data",
            "@raw.csv",
            "--label",
            "label",
            "--features",
            "hours",
            "--transformer",
            "@twice.json",
            "--model",
            "@tree.json",
        ],
    )
    .unwrap();
    let err = component(&dir, "export_onnx", &["--model", "@tree.json", "--onnx-model", "@m.onnx"]).unwrap_err();
    assert!(err.to_string().contains("tree.json: model kind `decision_tree`"), "{err}");
    assert!(err.to_string().contains("encodes `job` once only"), "{err}");
    assert!(!exists(&dir.path("m.onnx")));
}

#[test]
fn onnx_export_writes_a_model_proto() {
    let dir = Dir::new();
    dir.write("raw.csv", &adult_csv(200));
    let spec = r#"[{"op":"impute","columns":["age"],"strategy":"mean"},{"op":"standardize","columns":["age","hours"]},{"op":"drop","columns":["job"]}]"#;
    component(
        &dir,
        "transform",
        &["--data", "@raw.csv", "--spec", spec, "--label", "label", "--transformer", "@tr.json"],
    )
    .unwrap();
    component(
        &dir,
        "train_logistic_regression",
        &["--train-data", "@raw.csv", "--label", "label", "--transformer", "@tr.json", "--model", "@m.json"],
    )
    .unwrap();
    component(&dir, "export_onnx", &["--model", "@m.json", "--onnx-model", "@m.onnx"]).unwrap();
    let bytes = std::fs::read(dir.path("m.onnx")).unwrap();
    // ModelProto starts with ir_version (field 1, varint 7) and names its producer.
    assert_eq!(&bytes[..2], &[0x08, 0x07]);
    assert!(bytes.windows(9).any(|w| w == b"secondrow"));
    assert!(bytes.windows(7).any(|w| w == b"Softmax"));
}

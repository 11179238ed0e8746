//! The body of every component: read inputs, compute, stage outputs and their kfp metadata.

use std::time::Instant;

use serde_json::{json, Value};

use super::invocation::{Invocation, Outputs};
use crate::error::{Error, Result};
use crate::estimator::{self, Estimator, Task};
use crate::metrics;
use crate::model::{self, Model, MODEL_FORMAT, MODEL_VERSION};
use crate::report::{fmt, Report};
use crate::schema::{self, Schema};
use crate::split;
use crate::stats;
use crate::table::{Table, TableFormat};
use crate::transform::{TransformSpec, Transformer, TRANSFORMER_FORMAT};

/// Runs the component of `invocation` and commits its outputs.
pub fn run(invocation: &Invocation) -> Result<()> {
    let mut out = Outputs::new(invocation);
    let name = invocation.spec.name;
    match name {
        "ingest" => ingest(invocation, &mut out)?,
        "statistics" => statistics(invocation, &mut out)?,
        "infer_schema" => infer_schema(invocation, &mut out)?,
        "validate" => validate(invocation, &mut out)?,
        "transform" => transform(invocation, &mut out)?,
        "split" => split_component(invocation, &mut out)?,
        "evaluate" => evaluate(invocation, &mut out)?,
        "predict" => predict(invocation, &mut out)?,
        "export_onnx" => export_onnx(invocation, &mut out)?,
        "register_model" => register_model(invocation, &mut out)?,
        other => match other.strip_prefix("train_") {
            Some(algorithm) => train(invocation, algorithm, &mut out)?,
            None => {
                return Err(Error::UnknownComponent {
                    name: other.to_string(),
                    available: super::spec::COMPONENT_NAMES.join(", "),
                })
            }
        },
    }
    out.commit()
}

fn json_bytes(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| Error::InvalidData(format!("cannot serialise JSON: {e}")))
}

fn dataset_metadata(table: &Table) -> Value {
    json!({"rows": table.n_rows(), "columns": table.columns.len(), "column_names": table.column_names()})
}

fn ingest(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let format = TableFormat::parse(&inv.params.string("format", "csv")?)?;
    let source = inv.params.string("source", "")?;
    let path = match (inv.optional_input("data"), source.is_empty()) {
        (Some(path), true) => path.to_path_buf(),
        (None, false) => std::path::PathBuf::from(source),
        (Some(_), false) => return Err(Error::arg("source", "give either `source` or `data`, not both")),
        (None, true) => return Err(Error::MissingArgument { component: "ingest".into(), argument: "source".into() }),
    };
    let table = Table::read(&path)?;
    out.write_table("dataset", &table, format)?;
    let mut metadata = dataset_metadata(&table);
    metadata["format"] = json!(if format == TableFormat::Csv { "csv" } else { "parquet" });
    out.set_metadata("dataset", metadata);
    Ok(())
}

fn statistics(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let (table, _) = inv.table("data")?;
    let stats = stats::compute(&table, inv.params.usize("bins", 10)?);
    let report = stats::report(&stats, "Dataset statistics");
    out.write("statistics", &json_bytes(&stats)?)?;
    out.write("report", report.to_markdown().as_bytes())?;
    out.write("html_report", report.to_html().as_bytes())?;
    out.set_metadata("statistics", json!({"rows": stats.rows, "columns": stats.columns.len()}));
    Ok(())
}

fn infer_schema(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let (table, _) = inv.table("data")?;
    let schema = schema::infer(&table, inv.params.usize("max_categories", 50)?);
    out.write("schema", &json_bytes(&schema)?)?;
    out.set_metadata("schema", json!({"columns": schema.columns.len()}));
    Ok(())
}

fn load_schema(inv: &Invocation) -> Result<Schema> {
    let inline = inv.params.string("schema_json", "")?;
    match (inv.optional_input("schema"), inline.is_empty()) {
        (Some(path), true) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
                path: path.to_path_buf(),
                what: "schema",
                message: e.to_string(),
            })
        }
        (None, false) => serde_json::from_str(&inline).map_err(|e| Error::arg("schema_json", e.to_string())),
        (Some(_), false) => Err(Error::arg("schema_json", "give either `schema` or `schema_json`, not both")),
        (None, true) => Err(Error::MissingArgument { component: "validate".into(), argument: "schema".into() }),
    }
}

fn validate(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let schema = load_schema(inv)?;
    let (table, _) = inv.table("data")?;
    let anomalies = schema::validate(&table, &schema);
    if !anomalies.is_empty() && inv.params.bool("fail_on_anomalies", true)? {
        for a in &anomalies {
            eprintln!("anomaly: column `{}`: {}: {}", a.column, a.kind, a.message);
        }
        let summary = anomalies
            .iter()
            .take(5)
            .map(|a| format!("column `{}`: {}", a.column, a.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::ValidationFailed { count: anomalies.len(), summary });
    }
    let report = schema::anomalies_report(&anomalies, table.n_rows());
    out.write("anomalies", &json_bytes(&json!({"rows": table.n_rows(), "anomalies": anomalies}))?)?;
    out.write("report", report.to_markdown().as_bytes())?;
    out.set_metadata("anomalies", json!({"anomalies": anomalies.len(), "rows": table.n_rows()}));
    Ok(())
}

pub(crate) fn load_transformer(path: &std::path::Path) -> Result<Transformer> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let transformer: Transformer = serde_json::from_str(&text).map_err(|e| Error::InvalidFile {
        path: path.to_path_buf(),
        what: "transformer",
        message: e.to_string(),
    })?;
    if transformer.format != TRANSFORMER_FORMAT || transformer.version != 1 {
        return Err(Error::InvalidFile {
            path: path.to_path_buf(),
            what: "transformer",
            message: format!(
                "format `{}` version {}, expected `{TRANSFORMER_FORMAT}` version 1",
                transformer.format, transformer.version
            ),
        });
    }
    Ok(transformer)
}

fn transform(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let (table, format) = inv.table("data")?;
    let spec_text = inv.params.string("spec", "")?;
    let label = inv.params.string("label", "")?;
    let label = (!label.is_empty()).then_some(label.as_str());
    let (transformer, transformed) = match (inv.optional_input("fitted"), spec_text.is_empty()) {
        (Some(path), true) => {
            let transformer = load_transformer(path)?;
            let transformed = transformer.apply(&table)?;
            (transformer, transformed)
        }
        (None, false) => Transformer::fit(&TransformSpec::parse(&spec_text)?, &table, label)?,
        (Some(_), false) => {
            return Err(Error::arg("spec", "give either `spec` (to fit) or `fitted` (to apply), not both"))
        }
        (None, true) => return Err(Error::MissingArgument { component: "transform".into(), argument: "spec".into() }),
    };
    out.write_table("output", &transformed, format)?;
    out.write("transformer", &json_bytes(&transformer)?)?;
    out.set_metadata("output", dataset_metadata(&transformed));
    out.set_metadata(
        "transformer",
        json!({"steps": transformer.steps.len(), "output_columns": transformer.output_columns}),
    );
    Ok(())
}

fn split_component(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let (table, format) = inv.table("data")?;
    let stratify = inv.params.string("stratify", "")?;
    let parts = split::split(
        &table,
        inv.params.f64("test_fraction", 0.2)?,
        inv.params.u64("seed", 0)?,
        inv.params.bool("shuffle", true)?,
        (!stratify.is_empty()).then_some(stratify.as_str()),
    )?;
    let (train, test) = (table.take(&parts.train), table.take(&parts.test));
    out.write_table("train", &train, format)?;
    out.write_table("test", &test, format)?;
    out.set_metadata("train", dataset_metadata(&train));
    out.set_metadata("test", dataset_metadata(&test));
    Ok(())
}

/// Trains `algorithm` on a raw table; the library entry behind every `train_*` component.
pub fn train_model(
    algorithm: &str,
    table: &Table,
    label: Option<&str>,
    features: &[String],
    transformer: Option<Transformer>,
    params: &crate::params::Params,
) -> Result<Model> {
    estimator::task_of(algorithm, params)?;
    if let Some(label) = label {
        table.column(label)?;
    }
    match transformer {
        Some(t) => {
            let transformed = t.apply(table)?;
            train_model_transformed(algorithm, &transformed, label, features, Some(t), params)
        }
        None => train_model_transformed(algorithm, table, label, features, None, params),
    }
}

/// Like [`train_model`], on a table `transformer` has already been applied to (as
/// [`Transformer::fit`] returns it), so that fitting a transform and then a model transforms the
/// training data once, as scikit-learn's `Pipeline.fit` does. The transformer is stored in the model
/// and applied to raw tables at prediction time.
pub fn train_model_transformed(
    algorithm: &str,
    transformed: &Table,
    label: Option<&str>,
    features: &[String],
    transformer: Option<Transformer>,
    params: &crate::params::Params,
) -> Result<Model> {
    let task = estimator::task_of(algorithm, params)?;
    if let Some(label) = label {
        transformed.column(label)?;
    }
    let feature_names: Vec<String> = if features.is_empty() {
        transformed.columns.iter().filter(|c| Some(c.name.as_str()) != label).map(|c| c.name.clone()).collect()
    } else {
        features.to_vec()
    };
    if feature_names.is_empty() {
        return Err(Error::InvalidData("no feature columns left to train on".into()));
    }
    let x = transformed.feature_matrix(&feature_names)?;
    let (classes, target_classes, target_values);
    let target = match (task, label) {
        (Task::Classification, Some(label)) => {
            (target_classes, classes) = model::encode_classes(transformed, label)?;
            estimator::Target::Classes { y: &target_classes, n_classes: classes.len() }
        }
        (Task::Regression, Some(label)) => {
            let column = transformed.column(label)?;
            target_values = column.to_numbers()?;
            if let Some(row) = target_values.iter().position(|v| v.is_nan()) {
                return Err(Error::MissingValues {
                    column: label.to_string(),
                    count: column.n_missing(),
                    row: row + 1,
                });
            }
            classes = Vec::new();
            estimator::Target::Values(&target_values)
        }
        (Task::Clustering, _) => {
            classes = Vec::new();
            estimator::Target::None
        }
        (_, None) => {
            return Err(Error::MissingArgument { component: format!("train_{algorithm}"), argument: "label".into() })
        }
    };
    let started = Instant::now();
    let fitted = estimator::fit(algorithm, &x, &target, params)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut training = json!({"rows": x.n_rows, "features": x.n_cols, "fit_seconds": seconds});
    if let Some(n_iter) = fitted.n_iter() {
        training["n_iter"] = json!(n_iter);
    }
    if let Estimator::KMeans(k) = &fitted {
        training["inertia"] = json!(k.inertia);
    }
    Ok(Model {
        format: MODEL_FORMAT.to_string(),
        version: MODEL_VERSION,
        kind: algorithm.to_string(),
        task,
        label: label.map(str::to_string),
        feature_names,
        classes,
        transformer,
        params: params.to_json(),
        training,
        estimator: fitted,
    })
}

fn train(inv: &Invocation, algorithm: &str, out: &mut Outputs) -> Result<()> {
    let (table, _) = inv.table("train_data")?;
    let label = inv.params.string("label", "")?;
    let label = (!label.is_empty()).then_some(label.as_str());
    let features = inv.params.list("features")?;
    let transformer = inv.optional_input("transformer").map(load_transformer).transpose()?;
    let mut params = inv.params.clone();
    for name in ["label", "features"] {
        params.values.remove(name);
    }
    let model = train_model(algorithm, &table, label, &features, transformer, &params)?;
    out.write("model", model.to_json()?.as_bytes())?;
    out.set_metadata(
        "model",
        json!({
            "framework": "secondrow",
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "kind": model.kind,
            "task": model.task.as_str(),
            "features": model.feature_names.len(),
            "training": model.training,
        }),
    );
    Ok(())
}

fn evaluate(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let model_path = inv.input("model")?;
    let model = model::load_model(model_path)?;
    let (table, _) = inv.table("data")?;
    let label = match (&model.label, model.task) {
        (_, Task::Clustering) | (None, _) => {
            return Err(Error::WrongModelKind {
                path: model_path.to_path_buf(),
                found: model.kind.clone(),
                expected: "evaluate needs a classification or regression model".into(),
            })
        }
        (Some(label), _) => label.clone(),
    };
    table.column(&label)?;
    let predictions = model.predict(&table)?;
    let mut report = Report::new(&format!("Evaluation of `{}`", model.kind));
    report.paragraph(format!("{} rows; label `{label}`; {} features.", table.n_rows(), model.feature_names.len()));
    let scalar: serde_json::Map<String, Value>;
    let mut classification_metadata = json!({});
    if model.task == Task::Classification {
        let y = model::encode_known_classes(&table, &label, &model.classes)?;
        let proba =
            predictions.proba.as_ref().ok_or_else(|| Error::InvalidData("classifier gave no probabilities".into()))?;
        let m = metrics::classification(&y, proba, &model.classes);
        scalar = [
            ("accuracy", m.accuracy),
            ("precision", m.precision),
            ("recall", m.recall),
            ("f1", m.f1),
            ("roc_auc", m.roc_auc),
            ("log_loss", m.log_loss),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        classification_metadata = json!({
            "confusionMatrix": {
                "annotationSpecs": m.classes.iter().map(|c| json!({"displayName": c})).collect::<Vec<_>>(),
                "rows": m.confusion.iter().map(|r| json!({"row": r})).collect::<Vec<_>>(),
            },
            "confidenceMetrics": m.roc_curve.iter().map(|p| json!({"confidenceThreshold": p.threshold, "recall": p.tpr, "falsePositiveRate": p.fpr})).collect::<Vec<_>>(),
        });
        report.heading("Metrics");
        report.table(
            &["metric", "value"],
            scalar.iter().map(|(k, v)| vec![k.clone(), fmt(v.as_f64().unwrap_or(f64::NAN))]).collect(),
        );
        report.heading("Confusion matrix (rows: actual, columns: predicted)");
        let mut header: Vec<String> = vec!["actual \\ predicted".into()];
        header.extend(m.classes.iter().cloned());
        let rows = m
            .classes
            .iter()
            .zip(&m.confusion)
            .map(|(c, r)| std::iter::once(c.clone()).chain(r.iter().map(|v| v.to_string())).collect())
            .collect();
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
        report.table(&header_refs, rows);
        if !m.roc_curve.is_empty() {
            report.heading(format!("ROC curve of class `{}` (AUC {})", m.classes[1], fmt(m.roc_auc)));
            let step = (m.roc_curve.len() / 10).max(1);
            let rows =
                m.roc_curve.iter().step_by(step).map(|p| vec![fmt(p.threshold), fmt(p.fpr), fmt(p.tpr)]).collect();
            report.table(&["threshold", "false positive rate", "true positive rate"], rows);
        }
    } else {
        let y = table.column(&label)?.to_numbers()?;
        let m = metrics::regression(&y, &predictions.values);
        scalar = [("rmse", m.rmse), ("mae", m.mae), ("r2", m.r2)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        report.heading("Metrics");
        report.table(
            &["metric", "value"],
            scalar.iter().map(|(k, v)| vec![k.clone(), fmt(v.as_f64().unwrap_or(f64::NAN))]).collect(),
        );
    }
    let metrics_value = Value::Object(scalar);
    out.write("metrics", &json_bytes(&metrics_value)?)?;
    out.set_metadata("metrics", metrics_value);
    out.write("classification_metrics", &json_bytes(&classification_metadata)?)?;
    out.set_metadata("classification_metrics", classification_metadata);
    out.write("report", report.to_markdown().as_bytes())?;
    out.write("html_report", report.to_html().as_bytes())?;
    Ok(())
}

fn predict(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let model = model::load_model(inv.input("model")?)?;
    let (mut table, format) = inv.table("data")?;
    let predictions = model.predict(&table)?;
    model::append_predictions(&mut table, &model, &predictions);
    out.write_table("predictions", &table, format)?;
    out.set_metadata("predictions", dataset_metadata(&table));
    Ok(())
}

/// The metadata key the engine looks for on a succeeded task's outputs to register a model version.
pub const REGISTER_MODEL_KEY: &str = "secondrow.register_model";

/// Writes the registration request; the engine (which has the store) registers it when the task succeeds.
fn register_model(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    inv.input("model")?;
    let request = json!({
        "model_name": inv.params.string("model_name", "")?,
        "version": inv.params.string("version", "")?,
        "description": inv.params.string("description", "")?,
    });
    out.write("registration", request.to_string().as_bytes())?;
    out.set_metadata("registration", json!({ REGISTER_MODEL_KEY: request }));
    Ok(())
}

fn export_onnx(inv: &Invocation, out: &mut Outputs) -> Result<()> {
    let path = inv.input("model")?;
    let model = model::load_model(path)?;
    let bytes = crate::onnx::export(&model).map_err(|e| match e {
        Error::WrongModelKind { found, expected, .. } => {
            Error::WrongModelKind { path: path.to_path_buf(), found, expected }
        }
        other => other,
    })?;
    out.write("onnx_model", &bytes)?;
    out.set_metadata(
        "onnx_model",
        json!({"framework": "onnx", "opset": crate::onnx::OPSET, "source_kind": model.kind}),
    );
    Ok(())
}

//! The catalogue of built-in components: every component's inputs and outputs with their kfp types,
//! defaults and help. It is the single source for argument parsing and for `components/NAME.yaml`.

use serde_json::{json, Value};

/// The kfp type of an input or output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
    Float,
    Boolean,
    Dataset,
    Model,
    Artifact,
    Metrics,
    ClassificationMetrics,
    Markdown,
    Html,
}

impl Kind {
    pub fn is_artifact(self) -> bool {
        !matches!(self, Kind::String | Kind::Integer | Kind::Float | Kind::Boolean)
    }

    /// `parameterType` of a parameter or `schemaTitle` of an artifact in kfp's IR.
    pub fn ir_type(self) -> &'static str {
        match self {
            Kind::String => "STRING",
            Kind::Integer => "NUMBER_INTEGER",
            Kind::Float => "NUMBER_DOUBLE",
            Kind::Boolean => "BOOLEAN",
            Kind::Dataset => "system.Dataset",
            Kind::Model => "system.Model",
            Kind::Artifact => "system.Artifact",
            Kind::Metrics => "system.Metrics",
            Kind::ClassificationMetrics => "system.ClassificationMetrics",
            Kind::Markdown => "system.Markdown",
            Kind::Html => "system.HTML",
        }
    }
}

/// One input or output.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: &'static str,
    pub kind: Kind,
    pub optional: bool,
    pub default: Option<Value>,
    pub help: &'static str,
}

/// One component.
#[derive(Debug, Clone)]
pub struct ComponentSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
}

fn required(name: &'static str, kind: Kind, help: &'static str) -> Port {
    Port { name, kind, optional: false, default: None, help }
}

fn optional(name: &'static str, kind: Kind, help: &'static str) -> Port {
    Port { name, kind, optional: true, default: None, help }
}

fn default(name: &'static str, kind: Kind, value: Value, help: &'static str) -> Port {
    Port { name, kind, optional: true, default: Some(value), help }
}

fn output(name: &'static str, kind: Kind, help: &'static str) -> Port {
    Port { name, kind, optional: true, default: None, help }
}

/// Names of every component, in catalogue order.
pub const COMPONENT_NAMES: &[&str] = &[
    "ingest",
    "statistics",
    "infer_schema",
    "validate",
    "transform",
    "split",
    "train_linear_regression",
    "train_ridge",
    "train_logistic_regression",
    "train_decision_tree",
    "train_random_forest",
    "train_gradient_boosting",
    "train_svm",
    "train_knn",
    "train_kmeans",
    "train_mlp",
    "evaluate",
    "predict",
    "export_onnx",
    "register_model",
];

/// The spec of component `name`.
pub fn spec(name: &str) -> Option<ComponentSpec> {
    use Kind::*;
    let s = |name, description, inputs, outputs| Some(ComponentSpec { name, description, inputs, outputs });
    match name {
        "ingest" => s(
            "ingest",
            "Read a CSV or Parquet file (a local path or an input artifact) into a Dataset, inferring column types.",
            vec![
                optional("source", String, "Path of a CSV (with a header row) or Parquet file."),
                optional("data", Dataset, "A Dataset artifact to read instead of `source`."),
                default("format", String, json!("csv"), "Format of the output Dataset: csv or parquet."),
            ],
            vec![output("dataset", Dataset, "The ingested table.")],
        ),
        "statistics" => s(
            "statistics",
            "Per-column statistics (count, missing, min/max/mean/std, distinct, top values, histogram) as JSON and a report.",
            vec![
                required("data", Dataset, "Table to describe."),
                default("bins", Integer, json!(10), "Histogram bins per numeric column."),
            ],
            vec![
                output("statistics", Artifact, "Statistics as JSON."),
                output("report", Markdown, "Statistics as Markdown."),
                output("html_report", Html, "Statistics as HTML."),
            ],
        ),
        "infer_schema" => s(
            "infer_schema",
            "Infer a schema (types, observed ranges, categories, missing ratios) to validate later data against.",
            vec![
                required("data", Dataset, "Reference table."),
                default("max_categories", Integer, json!(50), "String columns with at most this many distinct values get an allowed-category list."),
            ],
            vec![output("schema", Artifact, "Schema as JSON.")],
        ),
        "validate" => s(
            "validate",
            "Validate a Dataset against a schema (types, ranges, allowed categories, max missing ratio) and report anomalies.",
            vec![
                required("data", Dataset, "Table to validate."),
                optional("schema", Artifact, "Schema JSON artifact (from infer_schema or written by hand)."),
                optional("schema_json", String, "Schema as an inline JSON string, instead of the artifact."),
                default("fail_on_anomalies", Boolean, json!(true), "Fail the step (non-zero exit, no outputs) when anomalies are found."),
            ],
            vec![
                output("anomalies", Artifact, "Anomalies as JSON."),
                output("report", Markdown, "Anomalies as Markdown."),
            ],
        ),
        "transform" => s(
            "transform",
            "Fit feature transforms (impute, standardize, min_max, one_hot, ordinal, drop, select) and apply them; or apply a fitted transformer.",
            vec![
                required("data", Dataset, "Table to transform."),
                optional("spec", String, "Transform spec JSON: {\"steps\": [{\"op\": \"impute\", \"strategy\": \"median\"}, ...]}."),
                optional("fitted", Artifact, "A transformer fitted earlier: apply it instead of fitting `spec`."),
                optional("label", String, "Label column, passed through untouched."),
            ],
            vec![
                output("output", Dataset, "The transformed table."),
                output("transformer", Artifact, "Fitted transformer JSON (pass it to a train component)."),
            ],
        ),
        "split" => s(
            "split",
            "Split a Dataset into train and test parts (seeded; optionally stratified by a column).",
            vec![
                required("data", Dataset, "Table to split."),
                default("test_fraction", Float, json!(0.2), "Fraction of rows in the test part."),
                default("seed", Integer, json!(0), "Random seed."),
                default("shuffle", Boolean, json!(true), "Shuffle before splitting; false puts the last rows in the test part."),
                optional("stratify", String, "Column whose class proportions both parts keep."),
            ],
            vec![output("train", Dataset, "Train part."), output("test", Dataset, "Test part.")],
        ),
        "evaluate" => s(
            "evaluate",
            "Evaluate a model on a labelled Dataset: classification or regression metrics and a report.",
            vec![required("data", Dataset, "Labelled test table (raw: the model applies its transformer)."), required("model", Model, "A secondrow model.")],
            vec![
                output("metrics", Metrics, "Scalar metrics (accuracy, precision, recall, f1, roc_auc, log_loss or rmse, mae, r2)."),
                output("classification_metrics", ClassificationMetrics, "Confusion matrix and ROC curve (empty for regression)."),
                output("report", Markdown, "Evaluation report as Markdown."),
                output("html_report", Html, "Evaluation report as HTML."),
            ],
        ),
        "predict" => s(
            "predict",
            "Batch prediction: add `prediction` (and `probability_<class>`) columns to a Dataset.",
            vec![required("data", Dataset, "Raw table to predict."), required("model", Model, "A secondrow model.")],
            vec![output("predictions", Dataset, "The input table with prediction columns.")],
        ),
        "export_onnx" => s(
            "export_onnx",
            "Export a model with its numeric transforms to ONNX (linear, ridge and logistic regression, MLP, k-means, decision tree, random forest, gradient boosting; not SVM or k-NN).",
            vec![required("model", Model, "A secondrow model.")],
            vec![output("onnx_model", Model, "ONNX model (opset 13, trees in ai.onnx.ml) reading the raw input columns; outputs label and probabilities, or variable.")],
        ),
        "register_model" => s(
            "register_model",
            "Register the model in SecondRow's model registry as a version of `model_name`, with lineage (run, task, artifact, metrics); the engine records it when the task succeeds.",
            vec![
                required("model", Model, "The model to register (a secondrow model or an ONNX file)."),
                required("model_name", String, "Registered model name (created when missing)."),
                default("version", String, json!(""), "Version name; empty: `run-` and the run id's first 8 characters."),
                default("description", String, json!(""), "The version's description."),
            ],
            vec![output("registration", Artifact, "The registration request (the registry's ids are in the run's JSON).")],
        ),
        other => {
            let algorithm = other.strip_prefix("train_")?;
            let (description, mut hyper): (&'static str, Vec<Port>) = match algorithm {
                "linear_regression" => ("Train an ordinary least squares linear regression.", vec![]),
                "ridge" => ("Train a ridge (L2-penalised) linear regression.", vec![default("alpha", Float, json!(1.0), "L2 penalty strength.")]),
                "logistic_regression" => (
                    "Train a logistic regression (binary or multinomial; L2, L-BFGS).",
                    vec![
                        default("c", Float, json!(1.0), "Inverse regularisation strength."),
                        default("max_iter", Integer, json!(200), "Most L-BFGS iterations."),
                        default("tol", Float, json!(1e-4), "Stop when the largest gradient entry is below this."),
                    ],
                ),
                "decision_tree" => (
                    "Train a decision tree (CART on binned features; Gini or squared error).",
                    vec![
                        default("task", String, json!("classification"), "classification or regression."),
                        default("max_depth", Integer, json!(10), "Maximum depth (0 = unlimited)."),
                        default("min_samples_split", Integer, json!(2), "Fewest rows a node needs to split."),
                        default("min_samples_leaf", Integer, json!(1), "Fewest rows in a leaf."),
                        default("max_features", String, json!("all"), "Features tried per split: all, sqrt, log2, an integer or a fraction."),
                        default("max_bins", Integer, json!(256), "Bins per feature."),
                        default("seed", Integer, json!(0), "Random seed."),
                    ],
                ),
                "random_forest" => (
                    "Train a random forest (bootstrap, random feature subsets, trees in parallel).",
                    vec![
                        default("task", String, json!("classification"), "classification or regression."),
                        default("n_estimators", Integer, json!(100), "Number of trees."),
                        default("max_depth", Integer, json!(10), "Maximum depth (0 = unlimited)."),
                        default("min_samples_split", Integer, json!(2), "Fewest rows a node needs to split."),
                        default("min_samples_leaf", Integer, json!(1), "Fewest rows in a leaf."),
                        default("max_features", String, json!("auto"), "Features tried per split: auto (sqrt for classification, all for regression), sqrt, log2, all, an integer or a fraction."),
                        default("bootstrap", Boolean, json!(true), "Train each tree on a bootstrap sample."),
                        default("max_bins", Integer, json!(256), "Bins per feature."),
                        default("seed", Integer, json!(0), "Random seed."),
                    ],
                ),
                "gradient_boosting" => (
                    "Train histogram-based gradient-boosted trees (leaf-wise, like HistGradientBoosting).",
                    vec![
                        default("task", String, json!("classification"), "classification or regression."),
                        default("max_iter", Integer, json!(100), "Boosting iterations."),
                        default("learning_rate", Float, json!(0.1), "Shrinkage."),
                        default("max_leaf_nodes", Integer, json!(31), "Leaves per tree."),
                        default("max_depth", Integer, json!(0), "Maximum depth (0 = unlimited)."),
                        default("min_samples_leaf", Integer, json!(20), "Fewest rows in a leaf."),
                        default("l2_regularization", Float, json!(0.0), "L2 penalty on leaf values."),
                        default("max_bins", Integer, json!(255), "Bins per feature."),
                        default("early_stopping", String, json!("auto"), "auto (on above 10,000 rows), true or false."),
                        default("validation_fraction", Float, json!(0.1), "Rows held out for early stopping."),
                        default("n_iter_no_change", Integer, json!(10), "Stop after this many iterations without improvement."),
                        default("seed", Integer, json!(0), "Random seed."),
                    ],
                ),
                "svm" => (
                    "Train a support vector classifier (SMO; RBF or linear kernel; one-vs-one for several classes).",
                    vec![
                        default("c", Float, json!(1.0), "Penalty of margin violations."),
                        default("kernel", String, json!("rbf"), "rbf or linear."),
                        default("gamma", String, json!("scale"), "RBF width: scale, auto or a number."),
                        default("tol", Float, json!(1e-3), "KKT violation tolerance."),
                    ],
                ),
                "knn" => (
                    "Train (store) a k-nearest-neighbours model (exact Euclidean search).",
                    vec![
                        default("task", String, json!("classification"), "classification or regression."),
                        default("k", Integer, json!(5), "Neighbours."),
                        default("weights", String, json!("uniform"), "uniform or distance."),
                    ],
                ),
                "kmeans" => (
                    "Fit k-means clustering (k-means++ initialisation, Lloyd iterations).",
                    vec![
                        default("k", Integer, json!(8), "Clusters."),
                        default("max_iter", Integer, json!(300), "Most Lloyd iterations."),
                        default("tol", Float, json!(1e-4), "Convergence tolerance (relative to feature variance)."),
                        default("n_init", Integer, json!(1), "Initialisations; the best is kept."),
                        default("seed", Integer, json!(0), "Random seed."),
                    ],
                ),
                "mlp" => (
                    "Train a multi-layer perceptron (ReLU, Adam, mini-batches).",
                    vec![
                        default("task", String, json!("classification"), "classification or regression."),
                        default("hidden", String, json!("64"), "Hidden layer sizes, comma-separated."),
                        default("learning_rate", Float, json!(0.001), "Adam step size."),
                        default("alpha", Float, json!(1e-4), "L2 penalty."),
                        default("batch_size", Integer, json!(200), "Mini-batch size."),
                        default("epochs", Integer, json!(20), "Passes over the data."),
                        default("seed", Integer, json!(0), "Random seed."),
                    ],
                ),
                _ => return None,
            };
            let name = COMPONENT_NAMES.iter().copied().find(|n| *n == other)?;
            let label = if algorithm == "kmeans" {
                optional("label", String, "Label column to leave out of the features, if any.")
            } else {
                required("label", String, "Label column.")
            };
            let mut inputs = vec![
                required("train_data", Dataset, "Training table (raw when a transformer is given)."),
                label,
                optional("features", String, "Feature columns, comma-separated (default: every column but the label)."),
                optional("transformer", Artifact, "Fitted transformer to apply first and store in the model."),
            ];
            inputs.append(&mut hyper);
            s(name, description, inputs, vec![output("model", Model, "The trained model (secondrow-model JSON).")])
        }
    }
}

/// All component specs.
pub fn specs() -> Vec<ComponentSpec> {
    COMPONENT_NAMES.iter().filter_map(|n| spec(n)).collect()
}

/// The component as a kfp IR YAML document (what `kfp.compiler` writes for a single component); its
/// container runs `secondrow component NAME --executor-input {{$}}`.
pub fn component_yaml(spec: &ComponentSpec) -> String {
    let definitions = |ports: &[Port], is_input: bool| -> Value {
        let mut parameters = serde_json::Map::new();
        let mut artifacts = serde_json::Map::new();
        for port in ports {
            if port.kind.is_artifact() {
                let mut a = serde_json::Map::new();
                a.insert("artifactType".into(), json!({"schemaTitle": port.kind.ir_type(), "schemaVersion": "0.0.1"}));
                a.insert("description".into(), json!(port.help));
                if is_input && port.optional {
                    a.insert("isOptional".into(), json!(true));
                }
                artifacts.insert(port.name.into(), Value::Object(a));
            } else {
                let mut p = serde_json::Map::new();
                if let Some(d) = &port.default {
                    p.insert("defaultValue".into(), d.clone());
                }
                p.insert("description".into(), json!(port.help));
                if port.optional {
                    p.insert("isOptional".into(), json!(true));
                }
                p.insert("parameterType".into(), json!(port.kind.ir_type()));
                parameters.insert(port.name.into(), Value::Object(p));
            }
        }
        let mut out = serde_json::Map::new();
        if !artifacts.is_empty() {
            out.insert("artifacts".into(), Value::Object(artifacts));
        }
        if !parameters.is_empty() {
            out.insert("parameters".into(), Value::Object(parameters));
        }
        Value::Object(out)
    };
    let comp_name = format!("comp-{}", spec.name.replace('_', "-"));
    let exec_name = format!("exec-{}", spec.name.replace('_', "-"));
    let task_name = spec.name.replace('_', "-");
    let inputs = definitions(&spec.inputs, true);
    let outputs = definitions(&spec.outputs, false);
    let mut task_inputs = serde_json::Map::new();
    let (mut tp, mut ta) = (serde_json::Map::new(), serde_json::Map::new());
    for port in &spec.inputs {
        if port.kind.is_artifact() {
            ta.insert(port.name.into(), json!({"componentInputArtifact": port.name}));
        } else {
            tp.insert(port.name.into(), json!({"componentInputParameter": port.name}));
        }
    }
    if !ta.is_empty() {
        task_inputs.insert("artifacts".into(), Value::Object(ta));
    }
    if !tp.is_empty() {
        task_inputs.insert("parameters".into(), Value::Object(tp));
    }
    let mut dag_outputs = serde_json::Map::new();
    for port in &spec.outputs {
        dag_outputs.insert(
            port.name.into(),
            json!({"artifactSelectors": [{"outputArtifactKey": port.name, "producerSubtask": task_name}]}),
        );
    }
    let document = json!({
        "components": {
            comp_name.clone(): {"executorLabel": exec_name, "inputDefinitions": inputs, "outputDefinitions": outputs}
        },
        "deploymentSpec": {"executors": {exec_name: {"container": {
            "args": ["--executor-input", "{{$}}"],
            "command": ["secondrow", "component", spec.name],
            "image": "secondrow"
        }}}},
        "pipelineInfo": {"description": spec.description, "name": task_name},
        "root": {
            "dag": {
                "outputs": {"artifacts": dag_outputs},
                "tasks": {task_name.clone(): {
                    "cachingOptions": {"enableCache": true},
                    "componentRef": {"name": comp_name},
                    "inputs": task_inputs,
                    "taskInfo": {"name": task_name}
                }}
            },
            "inputDefinitions": inputs,
            "outputDefinitions": outputs
        },
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.6"
    });
    let body = serde_yaml_ng::to_string(&document).unwrap_or_default();
    let mut header = format!("# PIPELINE DEFINITION\n# Name: {task_name}\n# Description: {}\n", spec.description);
    header.push_str("# Generated by secondrow-ml from its component catalogue; do not edit by hand.\n");
    header + &body
}

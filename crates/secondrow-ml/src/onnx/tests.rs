//! Every exported graph is loaded by tract (TreeEnsembleRegressor, which tract lacks, by a small
//! evaluator over the decoded attributes) and compared with native predictions on raw rows that have
//! missing values, through impute, standardize and min-max steps.

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::*;
use crate::component::run::train_model;
use crate::params::Params;
use crate::rng::Rng;
use crate::table::{Column, Table};
use crate::transform::{TransformSpec, Transformer};

const ROWS: usize = 400;

#[derive(Clone, Copy, PartialEq)]
enum Label {
    Binary,
    Three,
    Value,
    None,
}

/// Columns `a` and `b` with missing values, `c` complete, and a label that depends on all three.
fn table(label: Label, seed: u64) -> Table {
    let mut rng = Rng::new(seed);
    let (mut a, mut b, mut c, mut y) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROWS {
        let (x0, x1, x2) = (10.0 + 3.0 * rng.normal(), rng.normal(), 0.5 * rng.normal());
        let z = (x0 - 10.0) / 3.0 + x1 - x2 + 0.3 * rng.normal();
        y.push(match label {
            Label::Binary | Label::None => (z > 0.0) as u8 as f64,
            Label::Three => (z > -0.7) as u8 as f64 + (z > 0.7) as u8 as f64,
            Label::Value => 2.0 * x0 - x1 + 4.0 * x2,
        });
        a.push(if i % 13 == 3 { f64::NAN } else { x0 });
        b.push(if i % 7 == 5 { f64::NAN } else { x1 });
        c.push(x2);
    }
    let mut columns = vec![Column::number("a", a), Column::number("b", b), Column::number("c", c)];
    if label != Label::None {
        columns.push(Column::number("label", y));
    }
    Table::new(columns)
}

fn transformer(table: &Table, label: Option<&str>) -> Transformer {
    let spec = TransformSpec::parse(
        r#"[{"op": "impute", "strategy": "mean", "columns": ["a"]},
            {"op": "standardize", "columns": ["a", "b"]},
            {"op": "impute", "strategy": "median", "columns": ["b"]},
            {"op": "min_max", "columns": ["c"]}]"#,
    )
    .unwrap();
    Transformer::fit(&spec, table, label).unwrap().0
}

fn fit(algorithm: &str, label: Label, params: Params) -> (Model, Table) {
    let train = table(label, 1);
    let name = (label != Label::None).then_some("label");
    let t = transformer(&train, name);
    let features = ["a", "b", "c"].map(String::from);
    let model = train_model(algorithm, &train, name, &features, Some(t), &params).unwrap();
    (model, table(label, 2))
}

/// The raw input rows as the graph's `input` tensor.
fn input(model: &Model, table: &Table) -> Tensor {
    let names = model.input_columns();
    let columns: Vec<Vec<f64>> = names.iter().map(|n| table.column(n).unwrap().to_numbers().unwrap()).collect();
    let data: Vec<f32> = (0..table.n_rows()).flat_map(|i| columns.iter().map(move |c| c[i] as f32)).collect();
    tract_ndarray::Array2::from_shape_vec((table.n_rows(), names.len()), data).unwrap().into_tensor()
}

fn run_tract(bytes: &[u8], x: Tensor) -> TVec<TValue> {
    let model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    let model = model.with_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), x.shape().to_vec())).unwrap();
    model.into_optimized().unwrap().into_runnable().unwrap().run(tvec!(x.into())).unwrap()
}

/// Checks `probabilities` within 1e-5 and `label` equal to the native argmax (where the native top
/// two are not within 1e-5 of each other, which f32 arithmetic may order either way).
fn check_classifier(model: &Model, test: &Table, label: &[i64], proba: &[f32]) {
    let native = model.predict(test).unwrap();
    let p = native.proba.unwrap();
    let k = p.n_cols;
    assert_eq!(proba.len(), test.n_rows() * k, "{}: probabilities shape", model.kind);
    let mut decided = 0;
    for i in 0..test.n_rows() {
        for c in 0..k {
            let diff = (proba[i * k + c] as f64 - p.row(i)[c]).abs();
            assert!(diff < 1e-5, "{}: row {i} class {c}: onnx {} native {}", model.kind, proba[i * k + c], p.row(i)[c]);
        }
        let mut sorted = p.row(i).to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 1e-5 {
            assert_eq!(label[i], native.values[i] as i64, "{}: row {i} label", model.kind);
            decided += 1;
        }
    }
    assert!(decided > test.n_rows() / 2, "{}: too few rows with a clear label", model.kind);
}

fn values<T: Datum + Copy>(t: &Tensor) -> Vec<T> {
    t.cast_to::<T>().unwrap().to_plain_array_view::<T>().unwrap().iter().copied().collect()
}

fn check_values(model: &Model, test: &Table, values: &[f32]) {
    let native = model.predict(test).unwrap();
    assert_eq!(values.len(), test.n_rows());
    for (i, (&o, &n)) in values.iter().zip(&native.values).enumerate() {
        assert!((o as f64 - n).abs() <= 1e-5 * n.abs().max(1.0), "{}: row {i}: onnx {o} native {n}", model.kind);
    }
}

fn classify_with_tract(model: &Model, test: &Table) {
    let bytes = export(model).unwrap();
    let out = run_tract(&bytes, input(model, test));
    check_classifier(model, test, &values::<i64>(&out[0]), &values::<f32>(&out[1]));
}

#[test]
fn classifiers_match_native_predictions_in_tract() {
    let cases: Vec<(&str, Params)> = vec![
        ("logistic_regression", Params::new()),
        ("decision_tree", Params::new().with("max_depth", 6)),
        ("random_forest", Params::new().with("n_estimators", 15).with("max_depth", 6)),
        ("gradient_boosting", Params::new().with("max_iter", 20)),
        ("mlp", Params::new().with("hidden", "8,4").with("epochs", 30)),
    ];
    for (algorithm, params) in cases {
        for label in [Label::Binary, Label::Three] {
            let (model, test) = fit(algorithm, label, params.clone());
            classify_with_tract(&model, &test);
        }
    }
}

#[test]
fn regressors_and_kmeans_match_native_predictions() {
    for algorithm in ["linear_regression", "ridge"] {
        let (model, test) = fit(algorithm, Label::Value, Params::new());
        let out = run_tract(&export(&model).unwrap(), input(&model, &test));
        check_values(&model, &test, &values::<f32>(&out[0]));
    }
    let (model, test) =
        fit("mlp", Label::Value, Params::new().with("task", "regression").with("hidden", "8").with("epochs", 20));
    let out = run_tract(&export(&model).unwrap(), input(&model, &test));
    check_values(&model, &test, &values::<f32>(&out[0]));

    let (model, test) = fit("kmeans", Label::None, Params::new().with("k", 4));
    let out = run_tract(&export(&model).unwrap(), input(&model, &test));
    let native = model.predict(&test).unwrap();
    for (i, (&o, &n)) in values::<i64>(&out[0]).iter().zip(&native.values).enumerate() {
        assert_eq!(o, n as i64, "kmeans row {i}");
    }

    let regression = Params::new().with("task", "regression");
    for (algorithm, params) in [
        ("decision_tree", regression.clone().with("max_depth", 6)),
        ("random_forest", regression.clone().with("n_estimators", 10).with("max_depth", 6)),
        ("gradient_boosting", regression.clone().with("max_iter", 20)),
    ] {
        let (model, test) = fit(algorithm, Label::Value, params);
        let proto = tract_onnx::onnx().proto_model_for_read(&mut &export(&model).unwrap()[..]).unwrap();
        let graph = proto.graph.unwrap();
        assert_eq!(graph.node.len(), 1);
        assert_eq!(graph.output[0].name, "variable");
        let x = input(&model, &test);
        check_values(&model, &test, &tree_ensemble_regressor(&graph.node[0], &values::<f32>(&x), 3));
    }
}

/// SVM and k-NN labels come from exact vote counts (or signs), so every label must equal the native
/// one, ties included; the data have no decision value or k-th neighbour distance near a tie.
#[test]
fn svm_and_knn_match_native_predictions_in_tract() {
    let cases: Vec<(&str, Params)> = vec![
        ("svm", Params::new()),
        ("svm", Params::new().with("kernel", "rbf").with("gamma", 2.0).with("c", 10.0)),
        ("svm", Params::new().with("kernel", "linear")),
        ("knn", Params::new()),
        // An even k: tied votes, which both sides give to the first class.
        ("knn", Params::new().with("k", 4)),
        ("knn", Params::new().with("k", 7).with("weights", "distance")),
    ];
    for (algorithm, params) in cases {
        for label in [Label::Binary, Label::Three] {
            let (model, test) = fit(algorithm, label, params.clone());
            let out = run_tract(&export(&model).unwrap(), input(&model, &test));
            let (labels, proba) = (values::<i64>(&out[0]), values::<f32>(&out[1]));
            check_classifier(&model, &test, &labels, &proba);
            let native = model.predict(&test).unwrap();
            for (i, (&o, &n)) in labels.iter().zip(&native.values).enumerate() {
                assert_eq!(o, n as i64, "{algorithm} {params:?}: row {i} label");
            }
        }
    }
    let regression = Params::new().with("task", "regression");
    for params in [regression.clone(), regression.with("k", 3).with("weights", "distance")] {
        let (model, test) = fit("knn", Label::Value, params);
        let out = run_tract(&export(&model).unwrap(), input(&model, &test));
        check_values(&model, &test, &values::<f32>(&out[0]));
    }
}

#[test]
fn unsupported_transforms_are_named() {
    // A column encoded twice (ordinal codes, then one-hot of the codes) has no graph.
    let train = with_categories(table(Label::Binary, 1), 1);
    let spec =
        TransformSpec::parse(r#"[{"op": "ordinal", "columns": ["city"]}, {"op": "one_hot", "columns": ["city"]}]"#)
            .unwrap();
    let (t, transformed) = Transformer::fit(&spec, &train, Some("label")).unwrap();
    let features: Vec<String> = transformed.column_names().into_iter().filter(|c| c.starts_with("city=")).collect();
    let model = train_model("decision_tree", &train, Some("label"), &features, Some(t), &Params::new()).unwrap();
    let err = export(&model).unwrap_err().to_string();
    assert!(err.contains("encodes `city` once only"), "{err}");
}

/// Adds text columns to `table`: `job` (x, y, z; missing every 11th row; in test tables also an unseen
/// `w`) which shifts the label, and `city` (p, q; missing every 9th row).
fn with_categories(mut table: Table, seed: u64) -> Table {
    let mut rng = Rng::new(seed + 100);
    let n = table.n_rows();
    let job: Vec<Option<String>> = (0..n)
        .map(|i| match (i % 11, rng.below(if seed > 1 { 4 } else { 3 })) {
            (4, _) => None,
            (_, k) => Some(["x", "y", "z", "w"][k].to_string()),
        })
        .collect();
    let city: Vec<Option<String>> =
        (0..n).map(|i| (i % 9 != 2).then(|| ["p", "q"][rng.below(2)].to_string())).collect();
    if let Ok(label) = table.column("label").and_then(|c| c.to_numbers()) {
        // The label leans on job: z is mostly 1, x mostly 0.
        let flipped: Vec<f64> = label
            .iter()
            .zip(&job)
            .map(|(&y, j)| match j.as_deref() {
                Some("z") if rng.below(3) > 0 => 1.0,
                Some("x") if rng.below(3) > 0 => 0.0,
                _ => y,
            })
            .collect();
        table.set_column(Column::number("label", flipped));
    }
    table.set_column(Column::text("job", job));
    table.set_column(Column::text("city", city));
    table
}

#[test]
fn categorical_inputs_are_encoded_in_the_graph() {
    let spec = TransformSpec::parse(
        r#"[{"op": "impute", "strategy": "mean", "columns": ["a"]},
            {"op": "standardize", "columns": ["a", "b"]},
            {"op": "impute", "strategy": "median", "columns": ["b"]},
            {"op": "impute", "strategy": "most_frequent", "columns": ["job"]},
            {"op": "one_hot", "columns": ["job"]},
            {"op": "ordinal", "columns": ["city"]},
            {"op": "min_max", "columns": ["city"]}]"#,
    )
    .unwrap();
    let train = with_categories(table(Label::Binary, 1), 1);
    let test = with_categories(table(Label::Binary, 2), 2);
    let (t, transformed) = Transformer::fit(&spec, &train, Some("label")).unwrap();
    let features: Vec<String> = transformed.column_names().into_iter().filter(|c| c != "label").collect();
    assert!(features.iter().any(|f| f == "job=z") && features.iter().any(|f| f == "city"), "{features:?}");
    for (algorithm, params) in [
        ("logistic_regression", Params::new()),
        ("random_forest", Params::new().with("n_estimators", 10).with("max_depth", 6)),
        ("gradient_boosting", Params::new().with("max_iter", 15)),
        ("svm", Params::new()),
        ("knn", Params::new()),
    ] {
        let model = train_model(algorithm, &train, Some("label"), &features, Some(t.clone()), &params).unwrap();
        let (numeric, text) = input_layout(&model).unwrap();
        assert_eq!(text, ["job", "city"], "{algorithm}: text inputs");
        assert!(!numeric.iter().any(|n| n == "job" || n == "city"), "{algorithm}: numeric inputs {numeric:?}");
        let out = run_tract_inputs(&export(&model).unwrap(), tvec![numbers(&numeric, &test), texts(&text, &test)]);
        check_classifier(&model, &test, &values::<i64>(&out[0]), &values::<f32>(&out[1]));
    }
}

/// `columns` of `table` as a float tensor [rows, columns] (missing values NaN).
fn numbers(columns: &[String], table: &Table) -> Tensor {
    let values: Vec<Vec<f64>> = columns.iter().map(|n| table.column(n).unwrap().to_numbers().unwrap()).collect();
    let data: Vec<f32> = (0..table.n_rows()).flat_map(|i| values.iter().map(move |c| c[i] as f32)).collect();
    tract_ndarray::Array2::from_shape_vec((table.n_rows(), columns.len()), data).unwrap().into_tensor()
}

/// `columns` of `table` as a string tensor [rows, columns] (missing values empty).
fn texts(columns: &[String], table: &Table) -> Tensor {
    let mut data = Vec::new();
    for i in 0..table.n_rows() {
        for name in columns {
            data.push(table.column(name).unwrap().cell_text(i).unwrap_or_default());
        }
    }
    tract_ndarray::Array2::from_shape_vec((table.n_rows(), columns.len()), data).unwrap().into_tensor()
}

fn run_tract_inputs(bytes: &[u8], inputs: TVec<Tensor>) -> TVec<TValue> {
    let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..]).unwrap();
    for (i, x) in inputs.iter().enumerate() {
        model = model.with_input_fact(i, InferenceFact::dt_shape(x.datum_type(), x.shape().to_vec())).unwrap();
    }
    let runnable = model.into_optimized().unwrap().into_runnable().unwrap();
    runnable.run(inputs.into_iter().map(TValue::from).collect()).unwrap()
}

fn ints(node: &pb::NodeProto, name: &str) -> Vec<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone()).unwrap_or_default()
}

fn floats(node: &pb::NodeProto, name: &str) -> Vec<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.floats.clone()).unwrap_or_default()
}

/// TreeEnsembleRegressor as the ONNX spec defines it (BRANCH_LEQ and LEAF modes, SUM, one target).
fn tree_ensemble_regressor(node: &pb::NodeProto, x: &[f32], d: usize) -> Vec<f32> {
    assert_eq!(node.op_type, "TreeEnsembleRegressor");
    assert_eq!(node.domain, "ai.onnx.ml");
    let modes: Vec<String> = node
        .attribute
        .iter()
        .find(|a| a.name == "nodes_modes")
        .unwrap()
        .strings
        .iter()
        .map(|s| String::from_utf8(s.clone()).unwrap())
        .collect();
    let (trees, ids, features) =
        (ints(node, "nodes_treeids"), ints(node, "nodes_nodeids"), ints(node, "nodes_featureids"));
    let (values, yes, no, missing) = (
        floats(node, "nodes_values"),
        ints(node, "nodes_truenodeids"),
        ints(node, "nodes_falsenodeids"),
        ints(node, "nodes_missing_value_tracks_true"),
    );
    let (leaf_trees, leaf_ids, weights) =
        (ints(node, "target_treeids"), ints(node, "target_nodeids"), floats(node, "target_weights"));
    let base = floats(node, "base_values");
    let find = |tree: i64, id: i64| (0..trees.len()).find(|&n| trees[n] == tree && ids[n] == id).unwrap();
    let n_trees = trees.iter().max().unwrap() + 1;
    x.chunks(d)
        .map(|row| {
            let mut sum = base[0];
            for tree in 0..n_trees {
                let mut n = find(tree, 0);
                while modes[n] != "LEAF" {
                    let v = row[features[n] as usize];
                    let go_true = if v.is_nan() { missing[n] == 1 } else { v <= values[n] };
                    n = find(tree, if go_true { yes[n] } else { no[n] });
                }
                sum += (0..leaf_trees.len())
                    .filter(|&l| leaf_trees[l] == tree && leaf_ids[l] == ids[n])
                    .map(|l| weights[l])
                    .sum::<f32>();
            }
            sum
        })
        .collect()
}

use tract_onnx::pb;

use super::*;

fn attr_ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}
fn attr_floats(name: &str, v: &[f32]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 6, floats: v.to_vec(), ..Default::default() }
}
fn attr_int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}
fn attr_str(name: &str, v: &str) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 3, s: v.as_bytes().to_vec(), ..Default::default() }
}
fn attr_strs(name: &str, v: &[&str]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 8,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn value_info(name: &str, elem: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => dimension::Value::DimValue(*v),
                None => dimension::Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(nodes: Vec<pb::NodeProto>, n_features: i64, outputs: Vec<pb::ValueInfoProto>) -> pb::ModelProto {
    pb::ModelProto {
        graph: Some(pb::GraphProto {
            node: nodes,
            input: vec![value_info("x", ONNX_FLOAT, &[None, Some(n_features)])],
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn input(rows: &[[f32; 2]]) -> Tensor {
    Tensor {
        name: "x".into(),
        shape: vec![rows.len(), 2],
        data: TensorData::Fp32(rows.iter().flatten().copied().collect()),
    }
}

fn floats(t: &Tensor) -> Vec<f32> {
    match &t.data {
        TensorData::Fp32(v) => v.clone(),
        other => panic!("not FP32: {other:?}"),
    }
}

/// One tree: node 0 tests x0 with `mode` against 1.0 (NaN goes to the true side), node 1 (true) is a
/// leaf of class 1, node 2 (false) a leaf of class 0.
fn one_split(mode: &str, post: &str) -> pb::ModelProto {
    let tree = vec![
        attr_ints("nodes_treeids", &[0, 0, 0]),
        attr_ints("nodes_nodeids", &[0, 1, 2]),
        attr_ints("nodes_featureids", &[0, 0, 0]),
        attr_floats("nodes_values", &[1.0, 0.0, 0.0]),
        attr_strs("nodes_modes", &[mode, "LEAF", "LEAF"]),
        attr_ints("nodes_truenodeids", &[1, 0, 0]),
        attr_ints("nodes_falsenodeids", &[2, 0, 0]),
        attr_ints("nodes_missing_value_tracks_true", &[1, 0, 0]),
        attr_ints("class_treeids", &[0, 0]),
        attr_ints("class_nodeids", &[1, 2]),
        attr_ints("class_ids", &[1, 0]),
        attr_floats("class_weights", &[1.0, 1.0]),
        attr_strs("classlabels_strings", &["no", "yes"]),
        attr_str("post_transform", post),
    ];
    model(
        vec![node("TreeEnsembleClassifier", ML_DOMAIN, &["x"], &["label", "probabilities"], tree)],
        2,
        vec![value_info("label", ONNX_STRING, &[None]), value_info("probabilities", ONNX_FLOAT, &[None, Some(2)])],
    )
}

#[test]
fn every_branch_mode_and_missing_values_follow_the_reference() {
    let rows = [[0.5, 0.0], [1.0, 0.0], [2.0, 0.0], [f32::NAN, 0.0]];
    for (mode, expect_true) in [
        ("BRANCH_LEQ", [true, true, false, true]),
        ("BRANCH_LT", [true, false, false, true]),
        ("BRANCH_GTE", [false, true, true, true]),
        ("BRANCH_GT", [false, false, true, true]),
        ("BRANCH_EQ", [false, true, false, true]),
        ("BRANCH_NEQ", [true, false, true, true]),
    ] {
        let graph = NativeGraph::from_proto(&one_split(mode, "NONE")).unwrap().expect("native");
        let out = graph.predict(input(&rows)).unwrap();
        let TensorData::Bytes(labels) = &out[0].data else { panic!("labels are strings") };
        let got: Vec<bool> = labels.iter().map(|l| l == b"yes").collect();
        assert_eq!(got, expect_true, "{mode}");
        let p = floats(&out[1]);
        assert_eq!(out[1].shape, vec![4, 2]);
        for (i, t) in expect_true.iter().enumerate() {
            assert_eq!(p[2 * i + 1], if *t { 1.0 } else { 0.0 }, "{mode} row {i}");
        }
    }
    let spec = &NativeGraph::from_proto(&one_split("BRANCH_LEQ", "NONE")).unwrap().unwrap();
    assert_eq!(spec.outputs()[0].datatype, Datatype::Bytes);
    assert_eq!(spec.outputs()[1].shape, vec![-1, 2]);
    assert_eq!(spec.inputs()[0].shape, vec![-1, 2]);
}

#[test]
fn softmax_applies_to_the_class_scores() {
    let graph = NativeGraph::from_proto(&one_split("BRANCH_LEQ", "SOFTMAX")).unwrap().unwrap();
    let p = floats(&graph.predict(input(&[[0.0, 0.0]])).unwrap()[1]);
    let e = std::f64::consts::E;
    assert!((f64::from(p[1]) - e / (1.0 + e)).abs() < 1e-6, "{p:?}");
}

/// Gradient-boosting style: every weight on class 0, LOGISTIC, one base value.
#[test]
fn binary_single_class_scores_become_complementary_probabilities() {
    let tree = vec![
        attr_ints("nodes_treeids", &[0, 0, 0, 1]),
        attr_ints("nodes_nodeids", &[0, 1, 2, 0]),
        attr_ints("nodes_featureids", &[1, 0, 0, 0]),
        attr_floats("nodes_values", &[0.0, 0.0, 0.0, 0.0]),
        attr_strs("nodes_modes", &["BRANCH_LEQ", "LEAF", "LEAF", "LEAF"]),
        attr_ints("nodes_truenodeids", &[1, 0, 0, 0]),
        attr_ints("nodes_falsenodeids", &[2, 0, 0, 0]),
        attr_ints("class_treeids", &[0, 0, 1]),
        attr_ints("class_nodeids", &[1, 2, 0]),
        attr_ints("class_ids", &[0, 0, 0]),
        attr_floats("class_weights", &[-0.5, 0.75, 0.25]),
        attr_floats("base_values", &[0.1]),
        attr_ints("classlabels_int64s", &[3, 7]),
        attr_str("post_transform", "LOGISTIC"),
    ];
    let proto = model(
        vec![
            node("TreeEnsembleClassifier", ML_DOMAIN, &["x"], &["label", "scores"], tree),
            node("Identity", "", &["scores"], &["probabilities"], vec![]),
        ],
        2,
        vec![value_info("label", ONNX_INT64, &[None]), value_info("probabilities", ONNX_FLOAT, &[None, Some(2)])],
    );
    let graph = NativeGraph::from_proto(&proto).unwrap().unwrap();
    let out = graph.predict(input(&[[0.0, -1.0], [0.0, 1.0]])).unwrap();
    assert_eq!(out[0].data, TensorData::Int64(vec![3, 7]));
    let p = floats(&out[1]);
    for (row, s) in [(0usize, 0.1f64 - 0.5 + 0.25), (1, 0.1 + 0.75 + 0.25)] {
        let positive = 1.0 / (1.0 + (-s).exp());
        assert!((f64::from(p[2 * row + 1]) - positive).abs() < 1e-6, "row {row}: {p:?}");
        assert!((f64::from(p[2 * row]) - (1.0 - positive)).abs() < 1e-6, "row {row}: {p:?}");
    }
}

fn regressor(aggregate: &str, extra: Vec<pb::AttributeProto>) -> pb::ModelProto {
    let mut attrs = vec![
        attr_ints("nodes_treeids", &[0, 0, 0, 1]),
        attr_ints("nodes_nodeids", &[0, 1, 2, 0]),
        attr_ints("nodes_featureids", &[0, 0, 0, 0]),
        attr_floats("nodes_values", &[0.5, 0.0, 0.0, 0.0]),
        attr_strs("nodes_modes", &["BRANCH_LT", "LEAF", "LEAF", "LEAF"]),
        attr_ints("nodes_truenodeids", &[1, 0, 0, 0]),
        attr_ints("nodes_falsenodeids", &[2, 0, 0, 0]),
        attr_ints("target_treeids", &[0, 0, 0, 1, 1]),
        attr_ints("target_nodeids", &[1, 2, 2, 0, 0]),
        attr_ints("target_ids", &[0, 0, 1, 0, 1]),
        attr_floats("target_weights", &[1.0, 3.0, 10.0, 5.0, 20.0]),
        attr_int("n_targets", 2),
        attr_str("aggregate_function", aggregate),
    ];
    attrs.extend(extra);
    model(
        vec![node("TreeEnsembleRegressor", ML_DOMAIN, &["x"], &["y"], attrs)],
        2,
        vec![value_info("y", ONNX_FLOAT, &[None, Some(2)])],
    )
}

#[test]
fn regressor_aggregates_sum_average_min_max_and_adds_base_values() {
    let rows = [[0.0, 0.0], [1.0, 0.0]];
    let base = || vec![attr_floats("base_values", &[100.0, 200.0])];
    for (aggregate, expected) in [
        ("SUM", [106.0, 220.0, 108.0, 230.0]),
        ("AVERAGE", [103.0, 210.0, 104.0, 215.0]),
        ("MIN", [101.0, 220.0, 103.0, 210.0]),
        ("MAX", [105.0, 220.0, 105.0, 220.0]),
    ] {
        let graph = NativeGraph::from_proto(&regressor(aggregate, base())).unwrap().unwrap();
        let y = floats(&graph.predict(input(&rows)).unwrap()[0]);
        assert_eq!(y, expected.to_vec(), "{aggregate}");
    }
}

#[test]
fn as_tensor_attributes_take_precedence() {
    let tensor = pb::TensorProto {
        data_type: ONNX_DOUBLE,
        dims: vec![2],
        double_data: vec![1000.0, 2000.0],
        ..Default::default()
    };
    let extra = vec![pb::AttributeProto {
        name: "base_values_as_tensor".into(),
        r#type: 4,
        t: Some(tensor),
        ..Default::default()
    }];
    let graph = NativeGraph::from_proto(&regressor("SUM", extra)).unwrap().unwrap();
    let y = floats(&graph.predict(input(&[[0.0, 0.0]])).unwrap()[0]);
    assert_eq!(y, vec![1006.0, 2020.0]);
}

#[test]
fn broken_trees_are_refused_with_the_reason() {
    let mut proto = one_split("BRANCH_LEQ", "NONE");
    let attrs = &mut proto.graph.as_mut().unwrap().node[0].attribute;
    let trues = attrs.iter_mut().find(|a| a.name == "nodes_truenodeids").unwrap();
    trues.ints = vec![0, 0, 0];
    let err = NativeGraph::from_proto(&proto).err().expect("a cycle is an error").0;
    assert!(err.contains("cycle"), "{err}");

    let mut proto = one_split("BRANCH_LEQ", "NONE");
    let attrs = &mut proto.graph.as_mut().unwrap().node[0].attribute;
    attrs.iter_mut().find(|a| a.name == "nodes_falsenodeids").unwrap().ints = vec![9, 0, 0];
    let err = NativeGraph::from_proto(&proto).err().expect("a missing child is an error").0;
    assert!(err.contains("missing node 9"), "{err}");

    let mut proto = one_split("BRANCH_LEQ", "NONE");
    let attrs = &mut proto.graph.as_mut().unwrap().node[0].attribute;
    attrs.iter_mut().find(|a| a.name == "nodes_featureids").unwrap().ints = vec![5, 0, 0];
    let err = NativeGraph::from_proto(&proto).err().expect("an out-of-range feature is an error").0;
    assert!(err.contains("feature 5 of 2"), "{err}");
}

#[test]
fn graphs_with_other_ops_are_left_to_tract() {
    let proto =
        model(vec![node("Relu", "", &["x"], &["y"], vec![])], 2, vec![value_info("y", ONNX_FLOAT, &[None, Some(2)])]);
    assert!(NativeGraph::from_proto(&proto).unwrap().is_none());
}

#[test]
fn linear_classifier_with_one_score_row_and_normalizer() {
    let attrs = vec![
        attr_floats("coefficients", &[1.0, -2.0]),
        attr_floats("intercepts", &[0.5]),
        attr_ints("classlabels_ints", &[0, 1]),
        attr_str("post_transform", "LOGISTIC"),
    ];
    let proto = model(
        vec![
            node("LinearClassifier", ML_DOMAIN, &["x"], &["label", "p"], attrs),
            node("Normalizer", ML_DOMAIN, &["p"], &["probabilities"], vec![attr_str("norm", "L1")]),
        ],
        2,
        vec![value_info("label", ONNX_INT64, &[None]), value_info("probabilities", ONNX_FLOAT, &[None, Some(2)])],
    );
    let graph = NativeGraph::from_proto(&proto).unwrap().unwrap();
    let out = graph.predict(input(&[[1.0, 1.0], [2.0, 0.0]])).unwrap();
    assert_eq!(out[0].data, TensorData::Int64(vec![0, 1]));
    let p = floats(&out[1]);
    let s0 = 1.0 / (1.0 + (0.5f64).exp()); // z = -0.5
    assert!((f64::from(p[1]) - s0).abs() < 1e-6 && (f64::from(p[0]) - (1.0 - s0)).abs() < 1e-6, "{p:?}");
}

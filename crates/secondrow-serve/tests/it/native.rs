//! The native ONNX-ML evaluator against scikit-learn's own predictions (saved by make_models.py for
//! 300 rows) and against tract on the same graphs.

use secondrow_serve::runtime::{OnnxMlRuntime, Runtime, TractRuntime};
use secondrow_serve::tensor::{Tensor, TensorData};
use serde_json::Value;

use crate::support::model;

const TOLERANCE: f64 = 1e-5;

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(model("expected.json")).expect("reading expected.json"))
        .expect("expected.json is JSON")
}

fn rows_tensor(rows: &Value) -> Tensor {
    let rows = rows.as_array().unwrap();
    let data: Vec<f32> =
        rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32)).collect();
    Tensor { name: "input-0".into(), shape: vec![rows.len(), data.len() / rows.len()], data: TensorData::Fp32(data) }
}

fn as_f64(t: &Tensor) -> Vec<f64> {
    t.data.to_f64().unwrap_or_else(|| panic!("output `{}` is not numeric", t.name))
}

fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= TOLERANCE, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn native_runtime_matches_scikit_learn_and_tract() {
    let expected = expected();
    let models = expected["models"].as_object().unwrap();
    for file in ["lr.onnx", "forest.onnx", "gb.onnx", "gb3.onnx", "forest_reg.onnx"] {
        let runtime =
            OnnxMlRuntime::load(&model(file)).unwrap().unwrap_or_else(|| panic!("{file} is evaluated natively"));
        let rows = if file == "gb3.onnx" { &expected["rows3"] } else { &expected["rows"] };
        let n_rows = rows.as_array().unwrap().len();
        let outputs = runtime.predict(vec![rows_tensor(rows)]).unwrap();
        let names: Vec<&str> = runtime.outputs().iter().map(|s| s.name.as_str()).collect();
        for (name, want) in models[file].as_object().unwrap() {
            let index = names
                .iter()
                .position(|n| n == name)
                .unwrap_or_else(|| panic!("{file}: no output `{name}` in {names:?}"));
            let got = &outputs[index];
            assert_eq!(got.shape[0], n_rows, "{file} {name}");
            let want: Vec<f64> = match want.as_array().unwrap().first() {
                Some(Value::Array(_)) => want
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
                    .collect(),
                _ => want.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect(),
            };
            if name == "label" {
                assert_eq!(as_f64(got), want, "{file}: labels");
            } else {
                assert_close(&format!("{file} {name}"), &as_f64(got), &want);
            }
        }
        // tract on the same graph: same specs, same scores. Labels are checked against scikit-learn
        // above only: tract breaks exact 0.5/0.5 forest ties the other way.
        let tract = match TractRuntime::load(&model(file)) {
            Ok(tract) => tract,
            Err(e) => {
                eprintln!("{file}: tract cannot load it ({e}); compared with scikit-learn only");
                continue;
            }
        };
        assert_eq!(tract.inputs(), runtime.inputs(), "{file}: input specs");
        assert_eq!(tract.outputs(), runtime.outputs(), "{file}: output specs");
        let theirs = tract.predict(vec![rows_tensor(rows)]).unwrap();
        for ((ours, theirs), spec) in outputs.iter().zip(&theirs).zip(runtime.outputs()) {
            assert_eq!(ours.shape, theirs.shape, "{file} {}", spec.name);
            if spec.name == "label" {
                continue;
            }
            assert_close(&format!("{file} {} vs tract", spec.name), &as_f64(ours), &as_f64(theirs));
        }
    }
}

#[test]
fn other_graphs_stay_on_tract() {
    for file in ["mlp.onnx", "torch_mlp.onnx", "all_types.onnx"] {
        assert!(OnnxMlRuntime::load(&model(file)).unwrap().is_none(), "{file} is left to tract");
    }
}

use serde_json::json;

use super::*;

fn check_json(datatype: Datatype, shape: &[usize], data: Value, expect: TensorData) {
    assert_eq!(decode_json("x", datatype, shape, &data).unwrap(), expect);
}

#[test]
fn json_flat_and_nested() {
    check_json(Datatype::Fp32, &[2, 2], json!([1, 2, 3, 4]), TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0]));
    check_json(Datatype::Int64, &[2, 2], json!([[1, 2], [3, 4]]), TensorData::Int64(vec![1, 2, 3, 4]));
    check_json(Datatype::Bool, &[2], json!([true, false]), TensorData::Bool(vec![true, false]));
    check_json(Datatype::Bytes, &[1], json!(["ab"]), TensorData::Bytes(vec![b"ab".to_vec()]));
    check_json(Datatype::Uint8, &[1], json!([255]), TensorData::Uint8(vec![255]));
}

#[test]
fn json_errors_name_the_problem() {
    let err = decode_json("x", Datatype::Fp32, &[2, 3], &json!([1, 2])).unwrap_err();
    assert!(err.to_string().contains("needs 6 elements, data has 2"), "{err}");
    let err = decode_json("x", Datatype::Uint8, &[1], &json!([256])).unwrap_err();
    assert!(err.to_string().contains("not a valid UINT8"), "{err}");
    let err = decode_json("x", Datatype::Int32, &[1], &json!(["a"])).unwrap_err();
    assert!(err.to_string().contains("not a valid INT32"), "{err}");
}

#[test]
fn binary_round_trip_every_datatype() {
    let cases = vec![
        TensorData::Bool(vec![true, false]),
        TensorData::Uint8(vec![1, 2]),
        TensorData::Uint16(vec![1, 65535]),
        TensorData::Uint32(vec![1, 7]),
        TensorData::Uint64(vec![1, u64::MAX]),
        TensorData::Int8(vec![-1, 2]),
        TensorData::Int16(vec![-1, 2]),
        TensorData::Int32(vec![-1, 2]),
        TensorData::Int64(vec![-1, i64::MIN]),
        TensorData::Fp16(vec![f16::from_f32(1.5), f16::from_f32(-2.0)]),
        TensorData::Fp32(vec![1.5, -2.0]),
        TensorData::Fp64(vec![1.5, -2.0]),
        TensorData::Bytes(vec![b"a".to_vec(), b"xyz".to_vec()]),
    ];
    for data in cases {
        let tensor = Tensor { name: "x".into(), shape: vec![2], data: data.clone() };
        let bytes = tensor.to_binary();
        assert_eq!(decode_binary("x", data.datatype(), &[2], &bytes).unwrap(), data);
        // JSON round trip too (FP16 goes through f64).
        assert_eq!(decode_json("x", data.datatype(), &[2], &tensor.data_json()).unwrap(), data);
    }
}

#[test]
fn binary_size_mismatch_is_an_error() {
    let err = decode_binary("x", Datatype::Fp32, &[2], &[0; 7]).unwrap_err();
    assert!(err.to_string().contains("needs 8 bytes"), "{err}");
}

//! Property-based fuzzing of the V2 tensor decoders that read request bodies: JSON `data` of any shape and
//! the binary tensor extension's bytes. Whatever arrives, a tensor or an error comes back, never a panic, and
//! a well-sized binary tensor always decodes to exactly the shape's element count.
//!
//! The test command runs a bounded number of cases; a longer run is
//! `PROPTEST_CASES=20000 cargo test -p secondrow-serve --test fuzz`.

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{json, Value};

use secondrow_serve::tensor::{decode_binary, decode_json, element_count, Datatype};

const DEFAULT_CASES: u32 = 512;

#[rustfmt::skip]
const DATATYPES: &[&str] = &[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES",
];

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CASES);
    Config { cases, failure_persistence: None, ..Config::default() }
}

fn datatype() -> impl Strategy<Value = Datatype> {
    (0..DATATYPES.len()).prop_map(|i| Datatype::parse(DATATYPES[i]).expect("a protocol datatype"))
}

/// Mostly small dimensions, sometimes zero or enormous (overflowing products included).
fn shape() -> impl Strategy<Value = Vec<usize>> {
    let dim = prop_oneof![8 => 0usize..5, 1 => Just(usize::MAX), 1 => Just(1usize << 40)];
    prop::collection::vec(dim, 0..4)
}

fn element() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![Just("NaN"), Just("inf"), Just("-Infinity"), Just("x"), Just("")].prop_map(|s| json!(s)),
        Just(Value::Null),
        Just(json!({"a": 1})),
    ]
}

fn data() -> impl Strategy<Value = Value> {
    element().prop_recursive(4, 64, 8, |inner| prop::collection::vec(inner, 0..8).prop_map(Value::Array))
}

#[test]
fn json_data_never_panics() {
    proptest!(config(), |(dt in datatype(), shape in shape(), data in data())| {
        if let Ok(t) = decode_json("x", dt, &shape, &data) {
            prop_assert_eq!(Some(t.len()), element_count(&shape));
        }
    });
}

#[test]
fn binary_data_never_panics_and_fixed_sizes_decode_whole() {
    proptest!(config(), |(dt in datatype(), shape in shape(), bytes in prop::collection::vec(any::<u8>(), 0..256))| {
        let _ = decode_binary("x", dt, &shape, &bytes);
        if let (Some(size), Some(count)) = (dt.element_size(), element_count(&shape)) {
            if count <= 64 {
                let exact: Vec<u8> = bytes.iter().copied().cycle().take(count * size).collect();
                if exact.len() == count * size {
                    let t = decode_binary("x", dt, &shape, &exact);
                    prop_assert!(t.is_ok(), "{:?}", t.err());
                    prop_assert_eq!(t.map(|t| t.len()).ok(), Some(count));
                }
            }
        }
    });
}

//! Time one-row predictions of an ONNX file on the native evaluator and on tract.
//!
//! `cargo run --release -p secondrow-serve --example predict_timing -- MODEL.onnx [ROWS]`

use std::time::Instant;

use secondrow_serve::runtime::{OnnxMlRuntime, Runtime, TractRuntime};
use secondrow_serve::tensor::{Tensor, TensorData};

fn time(label: &str, runtime: &dyn Runtime, rows: usize) {
    let spec = &runtime.inputs()[0];
    let width = spec.shape.get(1).copied().unwrap_or(1).max(1) as usize;
    let row = |i: usize| Tensor {
        name: spec.name.clone(),
        shape: vec![1, width],
        data: TensorData::Fp32((0..width).map(|j| ((i * 31 + j * 7) % 13) as f32 * 0.4 - 2.4).collect()),
    };
    let started = Instant::now();
    for i in 0..rows {
        if let Err(e) = runtime.predict(vec![row(i)]) {
            eprintln!("{label}: {e}");
            return;
        }
    }
    let per_row = started.elapsed().as_secs_f64() / rows as f64;
    println!("{label}: {:.2} µs per one-row prediction ({rows} rows)", per_row * 1e6);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: predict_timing MODEL.onnx [ROWS]");
        std::process::exit(2);
    };
    let rows: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(10_000);
    let path = std::path::Path::new(&path);
    match OnnxMlRuntime::load(path) {
        Ok(Some(native)) => time("native", &native, rows),
        Ok(None) => println!("native: not applicable to this graph"),
        Err(e) => println!("native: {e}"),
    }
    match TractRuntime::load(path) {
        Ok(tract) => time("tract", &tract, (rows / 100).max(10)),
        Err(e) => println!("tract: {e}"),
    }
}

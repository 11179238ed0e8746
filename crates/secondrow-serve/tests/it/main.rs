//! Integration tests of the model server: real models made by skl2onnx/onnx and secondrow-ml, a real
//! server on 127.0.0.1:0, and KServe's official client through testdata/serving/client_check.py.

// Tests start servers, interpreters and the binary itself as child processes.
#![allow(clippy::disallowed_methods)]

mod native;
mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secondrow_serve::{HttpOptions, ModelOptions};
use serde_json::{json, Value};
use support::*;

fn run_client_check(server: &Server, model: &str) {
    let script = serving_testdata().join("client_check.py");
    let out = Command::new(venv_python())
        .arg(&script)
        .arg(server.url(""))
        .arg(model)
        .output()
        .expect("running client_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().rev().find(|l| l.contains("passed,")).unwrap_or("").to_string();
    assert!(
        out.status.success() && summary.ends_with(" 0 failed"),
        "client_check.py against `{model}`: {summary}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("client_check {model}: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_check_passes_for_onnx_and_builtin_models() {
    let repo = repo_with(
        &[
            ("lr", "1", "lr.onnx"),
            ("forest", "1", "forest.onnx"),
            ("mlp", "1", "mlp.onnx"),
            ("torch-mlp", "1", "torch_mlp.onnx"),
            ("builtin", "1", "builtin_lr.json"),
        ],
        ModelOptions::default(),
    )
    .await;
    let server = start(repo, HttpOptions::default()).await;
    for model in ["lr", "forest", "mlp", "torch-mlp", "builtin"] {
        tokio::task::block_in_place(|| run_client_check(&server, model));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v2_datatype_round_trips_as_json_and_binary() {
    let repo = repo_with(&[("types", "1", "all_types.onnx")], ModelOptions::default()).await;
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let cases: Vec<(&str, Value)> = vec![
        ("BOOL", json!([true, false, false, true])),
        ("UINT8", json!([0, 1, 254, 255])),
        ("UINT16", json!([0, 1, 2, 65535])),
        ("UINT32", json!([0, 1, 2, 4294967295u64])),
        ("UINT64", json!([0, 1, 2, 18446744073709551615u64])),
        ("INT8", json!([-128, -1, 0, 127])),
        ("INT16", json!([-32768, -1, 0, 32767])),
        ("INT32", json!([-2147483648i64, -1, 0, 2147483647])),
        ("INT64", json!([-9223372036854775808i64, -1, 0, 9223372036854775807i64])),
        ("FP16", json!([0.5, -1.0, 2.0, 1024.0])),
        ("FP32", json!([0.5, -1.25, 3.0, 1e10])),
        ("FP64", json!([0.1, -1.25, 3.0, 1e300])),
        ("BYTES", json!(["a", "", "héllo", "xyz"])),
    ];
    let inputs: Vec<Value> = cases
        .iter()
        .map(|(dt, data)| json!({"name": format!("x_{}", dt.to_lowercase()), "shape": [2, 2], "datatype": dt, "data": data}))
        .collect();
    // JSON in, JSON out.
    let res = client
        .post(server.url("/v2/models/types/infer"))
        .json(&json!({"id": "all", "inputs": inputs}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], "all");
    let outputs: HashMap<String, Value> = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o.clone()))
        .collect();
    for (dt, data) in &cases {
        let out = &outputs[&format!("y_{}", dt.to_lowercase())];
        assert_eq!(out["datatype"], *dt);
        assert_eq!(out["shape"], json!([2, 2]));
        assert_eq!(out["data"], *data, "{dt}");
    }
    // Binary out for all (binary_data_output), JSON in: the binary tail must decode to the same values.
    let res = client
        .post(server.url("/v2/models/types/infer"))
        .json(&json!({"inputs": inputs, "parameters": {"binary_data_output": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let header_len: usize = res.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let bytes = res.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..header_len]).unwrap();
    let mut offset = header_len;
    let mut binary_inputs = Vec::new();
    let mut tail = Vec::new();
    for out in head["outputs"].as_array().unwrap() {
        let size = out["parameters"]["binary_data_size"].as_u64().unwrap() as usize;
        assert!(out.get("data").is_none());
        let name = out["name"].as_str().unwrap().replacen("y_", "x_", 1);
        binary_inputs.push(json!({"name": name, "shape": out["shape"], "datatype": out["datatype"], "parameters": {"binary_data_size": size}}));
        tail.extend_from_slice(&bytes[offset..offset + size]);
        offset += size;
    }
    assert_eq!(offset, bytes.len());
    // Binary in (what the official client sends), JSON out: same values as the first request.
    let head = serde_json::to_vec(&json!({"inputs": binary_inputs})).unwrap();
    let mut body = head.clone();
    body.extend_from_slice(&tail);
    let res = client
        .post(server.url("/v2/models/types/infer"))
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", head.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    for out in body["outputs"].as_array().unwrap() {
        let name = out["name"].as_str().unwrap();
        assert_eq!(out["data"], outputs[name]["data"], "{name} after a binary round trip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_400_unknown_404_and_oversized_413() {
    let repo = repo_with(&[("lr", "1", "lr.onnx")], ModelOptions::default()).await;
    let server = start(repo, HttpOptions { body_limit: 64 * 1024, ..HttpOptions::default() }).await;
    let client = client();
    let infer = server.url("/v2/models/lr/infer");
    let row: Vec<f32> = vec![0.5; 20];
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "wrong element count",
            json!({"inputs": [{"name": "input-0", "shape": [1, 21], "datatype": "FP32", "data": row}]}),
            400,
            "needs 21 elements",
        ),
        (
            "wrong shape",
            json!({"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP32", "data": row}]}),
            400,
            "the model expects [-1, 20]",
        ),
        (
            "wrong datatype",
            json!({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": row}]}),
            400,
            "datatype FP64",
        ),
        (
            "unknown datatype",
            json!({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "BF16", "data": row}]}),
            400,
            "unknown datatype",
        ),
        (
            "wrong name",
            json!({"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": row}]}),
            400,
            "unknown input `x`",
        ),
        ("no inputs", json!({"inputs": []}), 400, "`inputs` is empty"),
        (
            "non-string id",
            json!({"id": 5, "inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP32", "data": row}]}),
            400,
            "`id` must be a string",
        ),
        (
            "unknown output",
            json!({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP32", "data": row}], "outputs": [{"name": "nope"}]}),
            400,
            "no output `nope`",
        ),
        (
            "text in FP32",
            json!({"inputs": [{"name": "input-0", "shape": [1, 1], "datatype": "FP32", "data": ["a"]}]}),
            400,
            "not a valid FP32",
        ),
    ];
    for (label, body, status, needle) in cases {
        let res = client.post(&infer).json(&body).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{label}");
        assert_eq!(res.headers()["content-type"], "application/json", "{label}");
        let body: Value = res.json().await.unwrap();
        let message = body["error"].as_str().unwrap_or_else(|| panic!("{label}: no error string in {body}"));
        assert!(message.contains(needle), "{label}: {message}");
    }
    let res = client.post(&infer).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(res.status(), 400);
    for (path, label) in
        [("/v2/models/nope/infer", "unknown model"), ("/v2/models/lr/versions/9/infer", "unknown version")]
    {
        let res = client.post(server.url(path)).json(&v2_body(1)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{label}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{label}");
    }
    for path in ["/v2/models/nope", "/v2/models/nope/ready", "/v1/models/nope", "/v2/models/lr/versions/9/ready"] {
        assert_eq!(client.get(server.url(path)).send().await.unwrap().status(), 404, "{path}");
    }
    let res =
        client.post(server.url("/v1/models/nope:predict")).json(&json!({"instances": [row]})).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res =
        client.post(server.url("/v1/models/lr:predict")).json(&json!({"instances": [[1, 2]]})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    // Body over the limit: 413 with the error JSON, both with and without a content-length.
    let big = vec![b' '; 100 * 1024];
    let res = client.post(&infer).header("content-type", "application/json").body(big).send().await.unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("limit"));
    let stream = futures_stream(100 * 1024);
    let res = client.post(&infer).header("content-type", "application/json").body(stream).send().await.unwrap();
    assert_eq!(res.status(), 413);
    // The server still answers.
    let res = client.post(&infer).json(&v2_body(2)).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

fn futures_stream(n: usize) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..n / 1024).map(|_| Ok(vec![b' '; 1024])).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_and_rolling_in_versions_under_load_fails_no_request() {
    let repo = repo_with(&[("lr", "1", "lr.onnx"), ("lr", "2", "lr_v2.onnx")], ModelOptions::default()).await;
    let server = Arc::new(start(repo.clone(), HttpOptions::default()).await);
    let client = client();
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, server, failures, done, seen) =
            (client.clone(), server.clone(), failures.clone(), done.clone(), seen.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..400 {
                match client.post(server.url("/v2/models/lr/infer")).json(&v2_body(1)).send().await {
                    Ok(res) if res.status() == 200 => {
                        let body: Value = res.json().await.unwrap_or(Value::Null);
                        let version = body["model_version"].as_str().unwrap_or("?").to_string();
                        *seen.lock().unwrap().entry(version).or_default() += 1;
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Switch the default back and forth, roll in version 3 over HTTP, then unload version 1.
    let admin = client.clone();
    let mut switches = 0;
    while done.load(Ordering::Relaxed) < 8 * 400 {
        let target = if switches % 2 == 0 { "2" } else { "1" };
        let res = admin
            .post(server.url("/v2/repository/models/lr/traffic"))
            .json(&json!({"default": target}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        switches += 1;
        if switches == 20 {
            let path = model("lr_v2.onnx");
            let res = admin
                .post(server.url("/v2/repository/models/lr/load"))
                .json(&json!({"parameters": {"path": path, "version": "3", "default": true}}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
        // Next switch once every worker could have sent a request on this routing (polled, with a deadline).
        let (before, deadline) = (done.load(Ordering::Relaxed), Instant::now() + Duration::from_secs(30));
        while done.load(Ordering::Relaxed) < (before + 8).min(8 * 400) {
            assert!(Instant::now() < deadline, "the load stalled after {switches} switches");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(failures.load(Ordering::Relaxed), 0, "failed requests during the swaps; versions seen {seen:?}");
    assert!(switches >= 10, "only {switches} switches happened during the load");
    assert!(seen.len() >= 2, "requests should have reached several versions: {seen:?}");
    eprintln!("{switches} switches, versions seen {seen:?}");
    // Unloading the default version moves the default to the highest remaining one.
    repo.set_traffic("lr", Some("1"), None).unwrap();
    let res = admin
        .post(server.url("/v2/repository/models/lr/unload"))
        .json(&json!({"parameters": {"version": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = admin.post(server.url("/v2/models/lr/infer")).json(&v2_body(1)).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["model_version"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_split_is_within_five_percent_over_2000_requests() {
    let repo = repo_with(&[("lr", "1", "lr.onnx"), ("lr", "2", "lr_v2.onnx")], ModelOptions::default()).await;
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let res = client
        .post(server.url("/v2/repository/models/lr/traffic"))
        .json(&json!({"default": "1", "canary": {"version": "2", "percent": 20}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..2000 {
        let res = client.post(server.url("/v2/models/lr/infer")).json(&v2_body(1)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        *counts.entry(body["model_version"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let share = counts.get("2").copied().unwrap_or(0) as f64 / 2000.0;
    eprintln!("canary 20%: observed {:.1}% ({counts:?})", share * 100.0);
    assert!((share - 0.20).abs() <= 0.05, "canary share {share} not within 0.20 ± 0.05 ({counts:?})");
    // A pinned version ignores the split.
    for _ in 0..20 {
        let res = client.post(server.url("/v2/models/lr/versions/1/infer")).json(&v2_body(1)).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["model_version"], "1");
    }
    // Removing the canary sends everything to the default.
    client.post(server.url("/v2/repository/models/lr/traffic")).json(&json!({"canary": null})).send().await.unwrap();
    for _ in 0..50 {
        let body: Value = client
            .post(server.url("/v2/models/lr/infer"))
            .json(&v2_body(1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["model_version"], "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_file_that_fails_to_load_leaves_the_previous_version_serving() {
    let repo = repo_with(&[("lr", "1", "lr.onnx")], ModelOptions::default()).await;
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let mut messages = Vec::new();
    for (file, needle) in [("broken.onnx", "cannot load"), ("missing.onnx", "cannot load")] {
        let res = client
            .post(server.url("/v2/repository/models/lr/load"))
            .json(&json!({"parameters": {"path": model(file), "version": "2"}}))
            .send()
            .await
            .unwrap();
        // The caller's path: a 400, worded alike for a broken and a missing file (no probing of paths).
        assert_eq!(res.status(), 400, "{file}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
        messages.push(body["error"].as_str().unwrap().replace(model(file).to_str().unwrap(), "PATH"));
        let res = client.post(server.url("/v2/models/lr/infer")).json(&v2_body(3)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["model_version"], "1");
        assert_eq!(body["outputs"][0]["shape"], json!([3]));
    }
    assert_eq!(messages[0], messages[1]);
    let index: Value = client.post(server.url("/v2/repository/index")).send().await.unwrap().json().await.unwrap();
    assert_eq!(index.as_array().unwrap().len(), 1, "{index}");
    assert_eq!(index[0]["version"], "1");
    assert_eq!(index[0]["state"], "READY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_metadata_v1_and_metrics() {
    let repo = repo_with(&[("lr", "1", "lr.onnx"), ("builtin", "1", "builtin_lr.json")], ModelOptions::default()).await;
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let meta: Value = client.get(server.url("/v2/models/lr")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["platform"], "onnx");
    assert_eq!(meta["inputs"], json!([{"name": "input-0", "datatype": "FP32", "shape": [-1, 20]}]));
    assert_eq!(meta["outputs"][0]["name"], "label");
    assert_eq!(meta["outputs"][0]["datatype"], "INT64");
    assert_eq!(meta["versions"], json!(["1"]));
    let meta: Value = client.get(server.url("/v2/models/builtin")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["platform"], "secondrow");
    // V1 predictions: ONNX label ints, built-in class names as numbers.
    let rows: Vec<Vec<f64>> = (0..3).map(|i| vec![i as f64 * 0.1; 20]).collect();
    for name in ["lr", "builtin"] {
        let res = client
            .post(server.url(&format!("/v1/models/{name}:predict")))
            .json(&json!({"instances": rows}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let preds = body["predictions"].as_array().unwrap();
        assert_eq!(preds.len(), 3);
        assert!(preds.iter().all(|p| p == 0 || p == 1), "{name}: {body}");
    }
    // Requested outputs, in the requested order, one of them binary.
    let mut body = v2_body(2);
    body["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": true}}, {"name": "label"}]);
    let res = client.post(server.url("/v2/models/lr/infer")).json(&body).send().await.unwrap();
    let header_len: usize = res.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let bytes = res.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..header_len]).unwrap();
    assert_eq!(head["outputs"][0]["name"], "probabilities");
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 16);
    assert_eq!(head["outputs"][1]["name"], "label");
    assert_eq!(bytes.len(), header_len + 16);
    // Unload, then the model is gone; load it back by path.
    let res = client.post(server.url("/v2/repository/models/builtin/unload")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(client.get(server.url("/v2/models/builtin/ready")).send().await.unwrap().status(), 404);
    assert_eq!(client.post(server.url("/v2/repository/models/builtin/unload")).send().await.unwrap().status(), 404);
    let res = client
        .post(server.url("/v2/repository/models/builtin/load"))
        .json(&json!({"parameters": {"path": model("builtin_lr.json")}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(client.get(server.url("/v2/models/builtin/ready")).send().await.unwrap().status(), 200);
    // One failing request for the metrics.
    client
        .post(server.url("/v2/models/lr/infer"))
        .json(&json!({"inputs": [{"name": "zz", "shape": [1], "datatype": "FP32", "data": [1]}]}))
        .send()
        .await
        .unwrap();
    let text = client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("secondrow_serve_requests_total{model=\"lr\",version=\"1\"} 3"), "{text}");
    assert!(text.contains("secondrow_serve_request_errors_total{model=\"lr\",version=\"1\"} 1"), "{text}");
    assert!(
        text.contains("secondrow_serve_request_duration_seconds_bucket{model=\"lr\",version=\"1\",le=\"+Inf\"} 3"),
        "{text}"
    );
    assert!(text.contains("secondrow_serve_requests_total{model=\"builtin\",version=\"1\"} 1"), "{text}");
    // Health and server metadata.
    let meta: Value = client.get(server.url("/v2")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["name"], "secondrow");
    assert_eq!(client.get(server.url("/no/such/route")).send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_batching_and_concurrency_limit_give_the_unbatched_answers() {
    let plain = repo_with(&[("lr", "1", "lr.onnx")], ModelOptions::default()).await;
    let batched = repo_with(
        &[("lr", "1", "lr.onnx")],
        ModelOptions { max_batch_size: 16, max_queue_delay: Duration::from_millis(20), max_concurrency: 2 },
    )
    .await;
    let plain = start(plain, HttpOptions::default()).await;
    let batched = Arc::new(start(batched, HttpOptions::default()).await);
    let client = client();
    let body_for = |i: usize| {
        let data: Vec<f32> = (0..20).map(|j| ((i * 31 + j * 7) % 13) as f32 * 0.4 - 2.4).collect();
        json!({"inputs": [{"name": "input-0", "shape": [1, 20], "datatype": "FP32", "data": data}]})
    };
    let mut expected = Vec::new();
    for i in 0..48 {
        let body: Value = client
            .post(plain.url("/v2/models/lr/infer"))
            .json(&body_for(i))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        expected.push(body["outputs"].clone());
    }
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..48 {
        let (client, server, body) = (client.clone(), batched.clone(), body_for(i));
        tasks.push(tokio::spawn(async move {
            let res = client.post(server.url("/v2/models/lr/infer")).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["outputs"].clone()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), expected[i], "request {i}");
    }
    // 48 requests in batches of at most 16 rows with a 20 ms queue delay: a few batches, not 48 waits.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_takes_object_and_string_instances_and_names_what_is_wrong() {
    let repo = repo_with(
        &[("lr", "1", "lr.onnx"), ("builtin", "1", "builtin_lr.json"), ("echo", "1", "echo_text.onnx")],
        ModelOptions::default(),
    )
    .await;
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let predict = |model: &str, body: Value| {
        let (client, url) = (client.clone(), server.url(&format!("/v1/models/{model}:predict")));
        async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let rows: Vec<Vec<f64>> = (0..4).map(|i| (0..20).map(|j| ((i * 5 + j) % 9) as f64 * 0.5 - 2.0).collect()).collect();
    let (status, by_list) = predict("builtin", json!({"instances": rows})).await;
    assert_eq!(status, 200, "{by_list}");
    // A DataFrame row per instance, keyed by the model's columns (in any order).
    let objects: Vec<Value> = rows
        .iter()
        .map(|r| Value::Object(r.iter().enumerate().rev().map(|(j, v)| (format!("f{j}"), json!(v))).collect()))
        .collect();
    let (status, by_column) = predict("builtin", json!({"instances": objects})).await;
    assert_eq!((status, &by_column), (200, &by_list));
    // TensorFlow Serving's row format: keyed by input name.
    let (_, lr_by_list) = predict("lr", json!({"instances": rows})).await;
    let named: Vec<Value> = rows.iter().map(|r| json!({"input-0": r})).collect();
    let (status, lr_named) = predict("lr", json!({"instances": named})).await;
    assert_eq!((status, &lr_named), (200, &lr_by_list));
    // Strings for a BYTES input.
    let (status, echoed) = predict("echo", json!({"instances": ["a", "b c"]})).await;
    assert_eq!((status, echoed), (200, json!({"predictions": ["a", "b c"]})));
    // What is wrong is named.
    let mut missing = objects[0].clone();
    missing.as_object_mut().unwrap().remove("f3");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("builtin", json!({"instances": [missing]}), "missing column `f3`"),
        ("builtin", json!({"instances": [{"f0": 1, "zz": 2}]}), "unknown column `zz`"),
        ("builtin", json!({"instances": [{"f0": "x"}]}), "column `f0` must be a number"),
        ("lr", json!({"instances": [{"input-0": rows[0], "extra": 1}]}), "unknown input `extra`"),
        ("lr", json!({"instances": ["text"]}), "takes FP32"),
        ("lr", json!({"instances": [rows[0], {"input-0": rows[0]}]}), "same form"),
        ("echo", json!({"instances": [1.5]}), "datatype FP64, the model expects BYTES"),
        ("lr", json!({"predictions": []}), "expected `instances` or `inputs`"),
    ];
    for (model, body, needle) in cases {
        let (status, answer) = predict(model, body.clone()).await;
        assert_eq!(status, 400, "{model} {body}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{model} {body}: `{message}` should mention `{needle}`");
    }
}

/// A model whose transformer one-hot encodes a text column (with missing values imputed) and its ONNX
/// export both take `input-0` (numbers) and `text_input` (strings); V2 and V1 DataFrame rows give the
/// native predictions, and a wrong cell is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_columns_reach_builtin_and_onnx_models() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("age,hours,job,label\n");
    for i in 0..300u32 {
        let (age, hours, job) = (20 + (i * 7) % 50, 20 + (i * 11) % 40, ["tech", "sales", "craft"][(i % 3) as usize]);
        let score = (age as f64 - 45.0) / 10.0 + (hours as f64 - 40.0) / 8.0 + if job == "tech" { 1.5 } else { 0.0 };
        let job = if i % 17 == 3 { "" } else { job };
        csv.push_str(&format!("{age},{hours},{job},{}\n", u8::from(score > 0.3 + ((i * 13) % 10) as f64 / 10.0)));
    }
    let path = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    std::fs::write(path("raw.csv"), csv).unwrap();
    let spec = r#"[{"op":"standardize","columns":["age","hours"]},{"op":"impute","columns":["job"],"strategy":"most_frequent"},{"op":"one_hot","columns":["job"]}]"#;
    for argv in [
        vec![
            "transform",
            "--data",
            &path("raw.csv"),
            "--spec",
            spec,
            "--label",
            "label",
            "--output",
            &path("t.csv"),
            "--transformer",
            &path("tr.json"),
        ],
        vec![
            "train_logistic_regression",
            "--train-data",
            &path("raw.csv"),
            "--label",
            "label",
            "--transformer",
            &path("tr.json"),
            "--model",
            &path("m.json"),
        ],
        vec!["export_onnx", "--model", &path("m.json"), "--onnx-model", &path("m.onnx")],
    ] {
        secondrow_ml::run_component(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    }
    let repo = Arc::new(secondrow_serve::Repository::new(ModelOptions::default()));
    for (name, file) in [("builtin", "m.json"), ("onnx", "m.onnx")] {
        repo.load(name, Some("1"), &dir.path().join(file), true).unwrap();
    }
    let server = start(repo, HttpOptions::default()).await;
    let client = client();
    let post = |url: String, body: Value| {
        let client = client.clone();
        async move {
            let res = client.post(url).json(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    // Native predictions on the same rows (an empty job is missing).
    let rows =
        [(30.0, 40.0, "tech"), (60.0, 55.0, "sales"), (45.0, 40.0, ""), (52.0, 33.0, "craft"), (25.0, 60.0, "unseen")];
    let model = secondrow_ml::load_model(&dir.path().join("m.json")).unwrap();
    let table = secondrow_ml::Table::new(vec![
        secondrow_ml::Column::number("age", rows.iter().map(|r| r.0).collect()),
        secondrow_ml::Column::number("hours", rows.iter().map(|r| r.1).collect()),
        secondrow_ml::Column::text("job", rows.iter().map(|r| (!r.2.is_empty()).then(|| r.2.to_string())).collect()),
    ]);
    let native = model.predict(&table).unwrap();
    let proba = native.proba.unwrap().data;
    // The numeric input is `input-0` on the built-in runtime (as KServe's sklearn server names it) and
    // `input` in the ONNX graph (as skl2onnx names it).
    for (name, numeric) in [("builtin", "input-0"), ("onnx", "input")] {
        let v2 = json!({"inputs": [
            {"name": numeric, "datatype": "FP32", "shape": [rows.len(), 2], "data": rows.iter().flat_map(|r| [r.0, r.1]).collect::<Vec<_>>()},
            {"name": "text_input", "datatype": "BYTES", "shape": [rows.len(), 1], "data": rows.iter().map(|r| r.2).collect::<Vec<_>>()},
        ]});
        let (status, meta) = post(server.url(&format!("/v2/models/{name}/infer")), v2).await;
        assert_eq!(status, 200, "{name}: {meta}");
        let outputs = meta["outputs"].as_array().unwrap();
        let got = outputs.iter().find(|o| o["name"] == "probabilities").unwrap()["data"].as_array().unwrap().clone();
        assert_eq!(got.len(), proba.len(), "{name}");
        for (g, p) in got.iter().zip(&proba) {
            assert!((g.as_f64().unwrap() - p).abs() < 1e-5, "{name}: {g} vs native {p}");
        }
    }
    // V1 DataFrame rows by column name, text as strings (null = missing).
    let objects: Vec<Value> = rows
        .iter()
        .map(|r| json!({"job": if r.2.is_empty() { Value::Null } else { json!(r.2) }, "age": r.0, "hours": r.1}))
        .collect();
    let (status, answer) = post(server.url("/v1/models/builtin:predict"), json!({"instances": objects})).await;
    assert_eq!(status, 200, "{answer}");
    let expected: Vec<Value> = native.labels.iter().map(|l| json!(l.parse::<i64>().unwrap())).collect();
    assert_eq!(answer["predictions"], Value::Array(expected));
    let (status, answer) =
        post(server.url("/v1/models/builtin:predict"), json!({"instances": [{"age": 30, "hours": 40, "job": [1]}]}))
            .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("column `job` must be a string"), "{answer}");
}

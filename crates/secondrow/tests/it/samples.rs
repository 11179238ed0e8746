//! Every pipeline of testdata/kfp/samples, compiled with the real kfp SDK, runs to the state and outputs
//! its README states.

use serde_json::json;

use crate::support::*;

#[test]
fn params_types() {
    let h = Home::new();
    let yaml = h.compile_sample("params_types");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("describe", "Output"), "hello|6|5.0|False|3|v2|None");
    assert_eq!(r.task_output("describe-2", "Output"), "const|20|0.5|True|2|z9|n");
    assert_eq!(r.task_output("produce", "o_str"), "x");
    assert_eq!(r.task_output("produce", "o_int"), 42);
    assert_eq!(r.task_output("produce", "o_float"), 0.5);
    assert_eq!(r.task_output("produce", "o_bool"), false);
    assert_eq!(r.task_output("produce", "o_list"), &json!([1, 2, 3]));
    assert_eq!(r.task_output("produce", "o_dict"), &json!({"a": 1, "b": 2}));
    assert_eq!(r.task_output("consume", "Output"), "x:43:1.5:False:6:3");
    assert_eq!(r.output("summary"), "hello|6|5.0|False|3|v2|None");
    assert_eq!(r.output("constants"), "const|20|0.5|True|2|z9|n");
    assert_eq!(r.output("typed"), "x:43:1.5:False:6:3");

    let (code, r) = h.run(&yaml, &["-p", "s=x", "-p", "i=10", "-p", "note=hey"]);
    assert_eq!(code, 0);
    assert_eq!(r.task_output("describe", "Output"), "x|20|5.0|False|3|v2|hey");
}

#[test]
fn artifacts() {
    let h = Home::new();
    let yaml = h.compile_sample("artifacts");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    let data = r.task_artifact("make-data", "data");
    assert_eq!(read_uri(data), "1\n2\n3\n4\n5\n");
    assert_eq!(data["metadata"]["rows"], 5);
    assert_eq!(read_uri(r.task_artifact("copy-data", "dst")), "1\n2\n3\n4\n5\n");
    let model = r.task_artifact("train", "model");
    assert_eq!(read_uri(model), "15");
    assert_eq!(model["metadata"], json!({"framework": "sum", "rows": 5}));
    assert_eq!(model["type"]["schemaTitle"], "system.Model");
    assert_eq!(r.task_output("evaluate", "Output"), 15);
    let metrics = r.task_artifact("evaluate", "metrics");
    assert_eq!(metrics["metadata"]["total"], 15);
    assert_eq!(metrics["metadata"]["rows"], 5);
    assert_eq!(metrics["metadata"]["mean"].as_f64(), Some(3.0));
    assert!(!std::path::Path::new(metrics["uri"].as_str().unwrap()).exists(), "Metrics write no file");
    let cm = &r.task_artifact("evaluate", "cm")["metadata"];
    assert_eq!(
        cm["confusionMatrix"],
        json!({"annotationSpecs": [{"displayName": "neg"}, {"displayName": "pos"}], "rows": [{"row": [3, 1]}, {"row": [0, 4]}]})
    );
    let points = cm["confidenceMetrics"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let recall: Vec<f64> = points.iter().map(|p| p["recall"].as_f64().unwrap()).collect();
    assert_eq!(recall, [0.0, 0.75, 1.0]);
    assert_eq!(read_uri(r.task_artifact("evaluate", "html")), "<h1>total 15</h1>");
    assert_eq!(read_uri(r.task_artifact("evaluate", "md")), "# total 15\n");
    assert_eq!(r.output("total"), 15);
    let out_model = r.output_artifact("model");
    assert_eq!(out_model["uri"], model["uri"]);
    assert_eq!(out_model["metadata"], model["metadata"]);

    // Lineage: train consumed make-data's dataset, which make-data produced.
    let doc = h.get_json(&r.id());
    let data_id = data["id"].as_str().unwrap();
    let events = doc["events"].as_array().unwrap();
    let producer = r.task("make-data")["id"].clone();
    let consumer = r.task("train")["id"].clone();
    assert!(events.iter().any(|e| e["artifact_id"] == data_id && e["kind"] == "OUTPUT" && e["task_id"] == producer));
    assert!(events.iter().any(|e| e["artifact_id"] == data_id && e["kind"] == "INPUT" && e["task_id"] == consumer));

    let (_, r) = h.run(&yaml, &["-p", "n=3"]);
    assert_eq!(r.output("total"), 6);
    let m = &r.task_artifact("evaluate", "metrics")["metadata"];
    assert_eq!((m["rows"].as_f64(), m["mean"].as_f64()), (Some(3.0), Some(2.0)));
}

const TAGS_RUN: [&str; 7] = [
    "condition-branches-1/condition-2/tag",
    "condition-5/tag-4",
    "condition-branches-7/condition-9/tag-6",
    "condition-branches-7/condition-9/condition-8/tag-7",
    "condition-11/tag-9",
    "condition-13/tag-11",
    "condition-14/tag-12",
];

fn executed(r: &RunDoc, tag: &str) -> bool {
    r.tasks_under("").iter().any(|t| {
        let path = t["path"].as_str().unwrap();
        (path == tag || path.ends_with(&format!("/{tag}"))) && (t["state"] == "SUCCEEDED" || t["state"] == "CACHED")
    })
}

#[test]
fn conditions() {
    let h = Home::new();
    let yaml = h.compile_sample("conditions");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    for path in TAGS_RUN {
        assert_eq!(r.task_state(path), "SUCCEEDED", "{path}");
    }
    assert_eq!(r.task_output("condition-branches-1/condition-2/tag", "Output"), "big");
    for tag in ["tag-2", "tag-3", "tag-5", "tag-8", "tag-10", "tag-13"] {
        assert!(!executed(&r, tag), "{tag} must not run");
    }
    assert_eq!(r.output("Output"), "big");

    let (_, r) = h.run(&yaml, &["-p", "n=5"]);
    assert_eq!(r.output("Output"), "five");
    assert!(executed(&r, "tag-2") && !executed(&r, "tag") && !executed(&r, "tag-3"));
    let (_, r) = h.run(&yaml, &["-p", "n=1"]);
    assert_eq!(r.output("Output"), "small");
    let (_, r) = h.run(&yaml, &["-p", "mode=slow"]);
    assert!(!executed(&r, "tag-7") && !executed(&r, "tag-12") && executed(&r, "tag-6"));
    let (_, r) = h.run(&yaml, &["-p", "threshold=0.9"]);
    assert!(!executed(&r, "tag-4") && executed(&r, "tag-9"));
    let (_, r) = h.run(&yaml, &["-p", "flag=false"]);
    assert!(!executed(&r, "tag-11"));
    let (_, r) = h.run(&yaml, &["-p", "n=3"]);
    assert_eq!(r.output("Output"), "small");
    assert!(!executed(&r, "tag-13"));
}

/// The largest number of tasks under `prefix` whose [started_at, finished_at] intervals overlap.
fn max_overlap(r: &RunDoc, prefix: &str, leaf: &str) -> usize {
    let mut edges = Vec::new();
    for t in r.tasks_under(prefix) {
        if t["task_key"] == leaf {
            edges.push((t["started_at"].as_i64().unwrap(), 1i32));
            edges.push((t["finished_at"].as_i64().unwrap(), -1i32));
        }
    }
    edges.sort();
    let (mut cur, mut best) = (0, 0);
    for (_, d) in edges {
        cur += d;
        best = best.max(cur);
    }
    best as usize
}

#[test]
fn loops() {
    let h = Home::new();
    let yaml = h.compile_sample("loops");
    // Plenty of global slots, so the loops' own parallelism limits are what bind.
    let (code, r) = h.run(&yaml, &["--parallelism", "8"]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.tasks_under("for-loop-2/").iter().filter(|t| t["task_key"] == "square").count(), 5);
    assert_eq!(r.task_output("add-all", "Output"), 55);
    assert_eq!(r.task_output("add-all-2", "Output"), 15);
    assert_eq!(r.task_output("read-all", "Output"), "1,2,3,4,5");
    assert_eq!(r.task_output("add-all-3", "Output"), 33);
    assert_eq!(r.task_output("join", "Output"), "X,Y,Z");
    for (k, v) in [
        ("squares", json!(55)),
        ("dynamic", json!(15)),
        ("files", json!("1,2,3,4,5")),
        ("records", json!(33)),
        ("words", json!("X,Y,Z")),
    ] {
        assert_eq!(r.output(k), &v, "{k}");
    }
    assert!(max_overlap(&r, "for-loop-2/", "square") <= 2);
    assert!(max_overlap(&r, "for-loop-3/", "identity") <= 3);

    let (_, r) = h.run(&yaml, &["-p", "n=3", "-p", "words=[\"q\"]"]);
    assert_eq!(r.output("dynamic"), 6);
    assert_eq!(r.output("files"), "1,2,3");
    assert_eq!(r.output("words"), "Q");
}

#[test]
fn exit_handler() {
    let h = Home::new();
    let yaml = h.compile_sample("exit_handler");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("exit-handler-1/step", "Output"), 2);
    assert_eq!(r.task_output("exit-handler-1/step-2", "Output"), 3);
    assert_eq!(r.task_output("report", "Output"), "done:COMPLETE");
    assert!(r.task("report")["started_at"].as_i64() >= r.task("exit-handler-1")["finished_at"].as_i64());
}

#[test]
fn retry() {
    let h = Home::new();
    let yaml = h.compile_sample("retry");
    for _ in 0..2 {
        // Twice: a unique job uuid per run means the second run fails first again.
        let (code, r) = h.run(&yaml, &[]);
        assert_eq!((code, r.state()), (0, "SUCCEEDED"));
        let once = r.task("flaky");
        assert_eq!((once["attempts"].as_i64(), &once["outputs"]["parameters"]["Output"]), (Some(2), &json!(2)));
        let twice = r.task("flaky-2");
        assert_eq!((twice["attempts"].as_i64(), &twice["outputs"]["parameters"]["Output"]), (Some(3), &json!(3)));
        let gap = twice["started_at"].as_i64().unwrap() - twice["created_at"].as_i64().unwrap();
        assert!(gap >= 3000, "first and last attempts of flaky-2 only {gap} ms apart");
        assert_eq!(r.task_output("add", "Output"), 5);
        assert_eq!(r.output("Output"), 5);
    }
}

#[test]
fn caching() {
    let h = Home::new();
    let yaml = h.compile_sample("caching");
    let (_, r1) = h.run(&yaml, &[]);
    assert_eq!(r1.state(), "SUCCEEDED");
    let stamp1 = r1.task_output("stamp", "Output").as_str().unwrap().to_owned();
    assert!(stamp1.starts_with("1-") && stamp1.len() == 34, "{stamp1}");
    let fresh1 = r1.task_output("fresh-stamp", "Output").as_str().unwrap().to_owned();
    assert!(fresh1.starts_with("fresh1-"));
    assert_eq!(r1.task_output("pair", "Output"), &json!(format!("{stamp1}/{fresh1}")));

    let (_, r2) = h.run(&yaml, &[]);
    assert_eq!(r2.task_state("stamp"), "CACHED");
    assert_eq!(r2.task("stamp")["cached"], true);
    assert_eq!(r2.task_output("stamp", "Output"), &json!(stamp1));
    assert_eq!(r2.task_state("fresh-stamp"), "SUCCEEDED");
    assert_ne!(r2.task_output("fresh-stamp", "Output"), &json!(fresh1));
    assert_eq!(r2.task_state("pair"), "SUCCEEDED");
    assert_eq!(r2.output("cached"), &json!(stamp1));
    assert_ne!(r2.output("fresh"), r1.output("fresh"));
    assert_ne!(r2.output("pair"), r1.output("pair"));

    let (_, r3) = h.run(&yaml, &["-p", "seed=2"]);
    assert_eq!(r3.task_state("stamp"), "SUCCEEDED");
    assert!(r3.task_output("stamp", "Output").as_str().unwrap().starts_with("2-"));

    let (_, r4) = h.run(&yaml, &["--no-cache"]);
    assert_eq!(r4.task_state("stamp"), "SUCCEEDED");
    assert_ne!(r4.task_output("stamp", "Output"), &json!(stamp1));
}

#[test]
fn container_shell() {
    let h = Home::new();
    let yaml = h.compile_sample("container_shell");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("repeat", "text"), "ababab");
    let data = r.task_artifact("write-lines", "data");
    assert_eq!(read_uri(data), "ababab\nababab\nababab\n");
    assert_eq!(r.task_output("write-lines", "where"), &data["uri"]);
    assert_eq!(r.task_output("count-lines", "n"), 3);
    assert_eq!(r.task_output("flags", "out"), "hello-x --suffix S");
    assert_eq!(r.task_output("flags-2", "out"), "hello-x --none");
    assert_eq!(r.task_output("env-echo", "out"), "hola");
    let dump = r.task_output("dump-input", "out").as_str().unwrap();
    let (first, rest) = dump.split_once('\n').unwrap();
    assert_eq!(first, "dump-input");
    let input: serde_json::Value = serde_json::from_str(rest).unwrap();
    assert_eq!(input["inputs"]["parameterValues"]["x"], json!(7));
    assert!(input["inputs"]["parameterValues"]["x"].is_i64());
    assert!(input["outputs"]["parameters"]["out"]["outputFile"].is_string());
    for (k, v) in [
        ("text", json!("ababab")),
        ("lines", json!(3)),
        ("with_suffix", json!("hello-x --suffix S")),
        ("without_suffix", json!("hello-x --none")),
        ("env", json!("hola")),
    ] {
        assert_eq!(r.output(k), &v, "{k}");
    }
    let (_, r) = h.run(&yaml, &["-p", "word=z", "-p", "times=1"]);
    assert_eq!((r.output("text"), r.output("lines")), (&json!("z"), &json!(3)));
}

#[test]
fn nested() {
    let h = Home::new();
    let yaml = h.compile_sample("nested");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (0, "SUCCEEDED"));
    assert_eq!(r.task_output("middle/inner", "Output"), 6);
    assert_eq!(r.task_output("middle/inner-2", "Output"), 9);
    assert_eq!(r.task_output("middle/add-2", "Output"), 15);
    let saved = r.task_artifact("middle/save", "data");
    assert_eq!(read_uri(saved), "15");
    assert_eq!(saved["metadata"]["value"], 15);
    assert_eq!(r.task_output("reader/load", "Output"), 15);
    assert_eq!(r.task_output("reader/add", "Output"), 115);
    assert_eq!((r.output("value"), r.output("read_back")), (&json!(15), &json!(115)));
    assert_eq!(r.output_artifact("data")["uri"], saved["uri"]);
    let (_, r) = h.run(&yaml, &["-p", "x=0"]);
    assert_eq!((r.output("value"), r.output("read_back")), (&json!(3), &json!(103)));
}

#[test]
fn failure() {
    let h = Home::new();
    let yaml = h.compile_sample("failure");
    let (code, r) = h.run(&yaml, &[]);
    assert_eq!((code, r.state()), (1, "FAILED"));
    assert_eq!(r.task_output("ok", "Output"), 2);
    assert_eq!(r.task_state("boom"), "FAILED");
    assert_eq!(r.task("boom")["attempts"], 2);
    assert_ne!(r.task_state("ok-2"), "SUCCEEDED");
    assert_eq!(r.task_output("ok-3", "Output"), 101);
    assert_eq!(r.task_output("cleanup", "Output"), "cleaned up");
    let logs = h.output(&["logs", &r.id(), "boom"]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("boom got 2; exiting with status 3"));
    assert!(r.0["run"]["error"].as_str().unwrap().contains("boom"));
}

//! Hostile specs against `secondrow server`: documents nested tens of thousands of levels deep, components
//! that contain each other and runaway CEL conditions are refused with a 400 and a JSON error that says why,
//! and the server keeps answering.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use crate::api::Server;
use crate::support::*;

/// One HTTP/1.1 request over a fresh connection: (status, body parsed as JSON or Null).
fn request(server: &Server, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the server");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn upload(server: &Server, yaml: &str) -> (u16, Value) {
    let boundary = "secondrow-hostile-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"uploadfile\"; filename=\"p.yaml\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(yaml.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    request(server, "POST", "/apis/v2beta1/pipelines/upload?name=hostile", &content_type, &body)
}

fn create_run(server: &Server, spec: &Value) -> (u16, Value) {
    let body = serde_json::json!({"display_name": "hostile", "pipeline_spec": spec});
    request(server, "POST", "/apis/v2beta1/runs", "application/json", body.to_string().as_bytes())
}

fn message(body: &Value) -> String {
    body["error"].as_str().or_else(|| body["message"].as_str()).unwrap_or_default().to_string()
}

fn healthy(server: &Server) {
    let (status, _) = request(server, "GET", "/apis/v2beta1/healthz", "application/json", b"");
    assert_eq!(status, 200, "healthz after a hostile request");
}

#[test]
fn hostile_specs_are_refused_with_a_reason() {
    let h = Home::new();
    let server = Server::start(&h, &[]);

    // 50,000 nested lists: refused by the nesting check before the YAML parser walks it.
    let n = 50_000;
    let deep = format!("pipelineInfo: {{name: deep}}\nroot: {}{}\n", "[".repeat(n), "]".repeat(n));
    let (status, body) = upload(&server, &deep);
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("line 2: collections nested deeper than 128 levels"), "{body}");
    healthy(&server);

    // The same depth as JSON in a run body.
    let json_deep = format!("{{\"display_name\": \"x\", \"pipeline_spec\": {}{}}}", "[".repeat(n), "]".repeat(n));
    let (status, body) = request(&server, "POST", "/apis/v2beta1/runs", "application/json", json_deep.as_bytes());
    assert_eq!(status, 400, "{body}");
    assert!(!message(&body).is_empty(), "a JSON error body: {body}");
    healthy(&server);

    // Components that contain each other.
    let recursive: Value = serde_json::json!({
        "pipelineInfo": {"name": "loop"}, "schemaVersion": "2.1.0",
        "root": {"dag": {"tasks": {"start": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": "start"}}}}},
        "components": {
            "comp-a": {"dag": {"tasks": {"inner": {"componentRef": {"name": "comp-b"}, "taskInfo": {"name": "inner"}}}}},
            "comp-b": {"dag": {"tasks": {"again": {"componentRef": {"name": "comp-a"}, "taskInfo": {"name": "again"}}}}}
        }
    });
    let (status, body) = create_run(&server, &recursive);
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("contains itself"), "{body}");

    // A trigger condition of 1,000 nested parentheses.
    let mut spec = yaml_as_json(&samples_dir().join("conditions.yaml"));
    let condition = format!("{}true{}", "(".repeat(1000), ")".repeat(1000));
    assert!(set_first_condition(&mut spec, &condition), "conditions.yaml has a trigger condition");
    let (status, body) = create_run(&server, &spec);
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("nests deeper than 64"), "{body}");
    healthy(&server);
}

/// A YAML file as JSON (read by PyYAML from the test venv, which the kfp SDK brings).
fn yaml_as_json(path: &std::path::Path) -> Value {
    let out = std::process::Command::new(python())
        .args(["-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Replaces the first `triggerPolicy.condition` found anywhere in the spec.
fn set_first_condition(v: &mut Value, condition: &str) -> bool {
    match v {
        Value::Object(map) => {
            if let Some(Value::Object(policy)) = map.get_mut("triggerPolicy") {
                if policy.contains_key("condition") {
                    policy.insert("condition".into(), Value::String(condition.into()));
                    return true;
                }
            }
            map.values_mut().any(|child| set_first_condition(child, condition))
        }
        Value::Array(items) => items.iter_mut().any(|child| set_first_condition(child, condition)),
        _ => false,
    }
}

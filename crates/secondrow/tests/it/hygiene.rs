//! HTTP hygiene and serving robustness against hostile clients, with the real binary over loopback: the
//! serving port's tokens (`secondrow server` and `secondrow serve` with a token), load errors that do not
//! tell whether a path exists, slow clients (header-read timeout, connection cap), 413 bodies, checked
//! arithmetic and parameter types in the API, non-finite inputs, the memory bound of large inference
//! requests, a refused request's connection, and control characters kept off the terminal.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::Server;
use crate::support::*;

const ADMIN: &str = "admin-token-0123456789";
const SERVE_TOKEN: &str = "serve-token-0123456789";

/// An HTTP answer: status, head (lower-cased) and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) head: String,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one HTTP/1.1 response (with a content-length, or chunked) from `stream`.
/// A V2 infer request of model `m` in the binary tensor extension (`json_part` then the tensors' bytes).
fn infer_binary(addr: &str, json_part: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v2/models/m/infer HTTP/1.1\r\nhost: t\r\ninference-header-content-length: {}\r\ncontent-length: {}\r\n\r\n",
        json_part.len(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_answer(&mut stream)
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if head.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|e| panic!("chunk size {size:?}: {e}"));
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                return Answer { status, head, body };
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap_or_else(|e| panic!("reading a {length}-byte body: {e}; head {head:?}"));
    Answer { status, head, body }
}

/// Writes one request (keeping the connection open).
fn send(stream: &mut TcpStream, method: &str, path: &str, token: Option<&str>, body: &[u8]) {
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
}

/// One request over a fresh connection.
pub(crate) fn call(addr: &str, method: &str, path: &str, token: Option<&str>, body: &Value) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    send(&mut stream, method, path, token, &body);
    read_answer(&mut stream)
}

pub(crate) fn infer_body(rows: &[[f64; 2]]) -> Value {
    json!({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows.len(), 2], "data": rows}]})
}

/// `secondrow serve` on a free port, killed when dropped.
pub(crate) struct Serve {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Serve {
    pub(crate) fn start(h: &Home, model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let log = h.path().join(format!("serve-{}.log", SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let mut cmd = h.cmd();
        cmd.args(["serve", "-m", &format!("m={}", model.display()), "--port", "0"]).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        let addr = wait_for(Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let line = text.lines().find(|l| l.contains(" on http://"))?;
            Some(line.split("http://").nth(1)?.split_whitespace().next()?.to_owned())
        });
        Serve { child, addr }
    }

    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Item 4: with access control on, the serving port of `secondrow server` needs a valid token to infer
/// (a namespace's or the admin's) and the admin token to manage the repository; health stays open.
/// Before: every call worked without a token, and anyone could load a file by path.
#[test]
fn server_serving_port_needs_tokens() {
    let h = Home::new();
    let model = trained_model(&h);
    let out = h.output(&["tokens", "create", "--namespace", "team-a", "--name", "t"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let team_a = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let admin_file = h.path().join("admin-token");
    std::fs::write(&admin_file, ADMIN).unwrap();
    let server = Server::start(&h, &["--auth-token-file", admin_file.to_str().unwrap()]);
    let models = server.models.as_str();
    let load = json!({"parameters": {"path": model.to_str().unwrap()}});

    assert_eq!(call(models, "GET", "/v2/health/ready", None, &Value::Null).status, 200);
    let anonymous = call(models, "POST", "/v2/repository/models/m/load", None, &load);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert!(anonymous.head.contains("www-authenticate: bearer"), "{}", anonymous.head);
    let by_team = call(models, "POST", "/v2/repository/models/m/load", Some(&team_a), &load);
    assert_eq!(by_team.status, 403, "a namespace token cannot manage the repository: {}", by_team.text());
    let by_admin = call(models, "POST", "/v2/repository/models/m/load", Some(ADMIN), &load);
    assert_eq!(by_admin.status, 200, "{}", by_admin.text());

    // A model loaded through the repository, outside deployments, is the admin's: a namespace token may list
    // but not use it (namespaces' own deployments: `sec_more.rs`).
    let rows = infer_body(&[[0.5, 3.5], [3.5, 0.5]]);
    for (token, infer_want, list_want) in [
        (None, 401, 401),
        (Some("not-a-token-at-all"), 401, 401),
        (Some(team_a.as_str()), 403, 200),
        (Some(ADMIN), 200, 200),
    ] {
        let answer = call(models, "POST", "/v2/models/m/infer", token, &rows);
        assert_eq!(answer.status, infer_want, "infer with {token:?}: {}", answer.text());
        let listed = call(models, "GET", "/v2/models", token, &Value::Null);
        assert_eq!(listed.status, list_want, "list with {token:?}: {}", listed.text());
    }
    let unload = call(models, "POST", "/v2/repository/models/m/unload", Some(&team_a), &Value::Null);
    assert_eq!(unload.status, 403, "{}", unload.text());
    assert_eq!(call(models, "POST", "/v2/models/m/infer", Some(ADMIN), &rows).status, 200, "still served");
}

/// Item 4: `secondrow serve` with a token (here from its environment variable) guards every call but the
/// health probes, and a load error reads the same whether the path is missing, unreadable or not a model.
/// Before: no token option, and the error quoted the OS ("No such file or directory") or the parser.
#[test]
fn serve_auth_token_and_load_errors_that_do_not_probe_paths() {
    let h = Home::new();
    let model = trained_model(&h);
    let serve = Serve::start(&h, &model, &[], &[("SECONDROW_SERVE_AUTH_TOKEN", SERVE_TOKEN)]);
    let rows = infer_body(&[[0.5, 3.5]]);
    assert_eq!(call(&serve.addr, "GET", "/v2/health/live", None, &Value::Null).status, 200);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", None, &rows).status, 401);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", Some("wrong-token-0123456789"), &rows).status, 401);
    assert_eq!(call(&serve.addr, "POST", "/v1/models/m:predict", None, &json!({"instances": [[1, 2]]})).status, 401);
    assert_eq!(call(&serve.addr, "POST", "/v2/models/m/infer", Some(SERVE_TOKEN), &rows).status, 200);

    let not_a_model = h.path().join("notes.txt");
    std::fs::write(&not_a_model, "hello").unwrap();
    let unreadable_dir = h.path().join("a-folder");
    std::fs::create_dir(&unreadable_dir).unwrap();
    let mut answers = Vec::new();
    for path in [h.path().join("missing.onnx"), not_a_model, unreadable_dir, PathBuf::from("/etc/hostname")] {
        let body = json!({"parameters": {"path": path.to_str().unwrap()}});
        let answer = call(&serve.addr, "POST", "/v2/repository/models/x/load", Some(SERVE_TOKEN), &body);
        let message = answer.json()["error"].as_str().unwrap_or_default().replace(path.to_str().unwrap(), "PATH");
        answers.push((answer.status, message));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "load errors differ by path: {answers:?}");
    assert_eq!(answers[0].0, 400, "{answers:?}");
    let short = h.cmd().args(["serve", "-m", "m=x", "--auth-token", "short"]).output().unwrap();
    assert_eq!(short.status.code(), Some(2), "{}", String::from_utf8_lossy(&short.stderr));
}

/// Item 8: 300 connections that send half a request line and stall do not stop healthz on the API port
/// nor readiness on the serving port, and the server closes such connections after the header-read
/// timeout. Before: no timeout (the stalled connections stayed open for good).
#[test]
fn slow_clients_neither_block_nor_stay() {
    let h = Home::new();
    let server = Server::start(&h, &["--header-read-timeout-ms", "1500"]);
    let api = server.url.trim_start_matches("http://").to_owned();
    for (addr, probe) in [(api.as_str(), "/apis/v2beta1/healthz"), (server.models.as_str(), "/v2/health/ready")] {
        let mut stalled: Vec<TcpStream> = (0..300)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /apis/v2beta1/hea").unwrap();
                s
            })
            .collect();
        let started = Instant::now();
        let answer = call(addr, "GET", probe, None, &Value::Null);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(started.elapsed() < Duration::from_secs(2), "the probe took {:?}", started.elapsed());
        // The server hangs up on the stalled ones (read sees the end, or a reset).
        let first = &mut stalled[0];
        first.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let ended = first.read_to_end(&mut buf);
        assert!(started.elapsed() < Duration::from_secs(9), "a stalled connection stayed open {:?}", started.elapsed());
        assert!(ended.is_ok() || ended.as_ref().is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock));
        drop(stalled);
    }
    let limited = h.output(&["server", "--max-connections", "0"]);
    assert_eq!(limited.status.code(), Some(2), "{}", String::from_utf8_lossy(&limited.stderr));
}

/// Item 8: an API body over the limit is a 413 with a message in KFP's error shape (before: a 400
/// "reading the body: ..."); the body is refused from its declared length, unread.
#[test]
fn api_body_over_the_limit_is_413() {
    let h = Home::new();
    let server = Server::start(&h, &[]);
    let api = server.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let length = 65 << 20;
    let head = format!(
        "POST /apis/v2beta1/experiments HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    );
    // Only the head: the answer comes from the declared length (bytes sent after it would be unread, and
    // the kernel would reset the connection before the client read the answer).
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 413, "{}", answer.text());
    let body = answer.json();
    assert!(body["message"].as_str().unwrap_or_default().contains("larger than the limit of 64 MiB"), "{body}");
    assert_eq!(body["code"], 8, "gRPC RESOURCE_EXHAUSTED: {body}");
}

/// The pipeline spec of a kfp sample as JSON (the test venv's PyYAML reads the YAML).
fn sample_spec_json(h: &Home, name: &str) -> Value {
    let yaml = repo_root().join(format!("testdata/kfp/samples/{name}.yaml"));
    let out = std::process::Command::new(python())
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&yaml)
        .current_dir(h.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Item 8: a STRING parameter given a number, list or object is a 400 naming it (before: the JSON text
/// became the value), `null` takes the default; a periodic interval of i64::MAX seconds is a 400
/// (before: its milliseconds overflowed); a page token past any offset is a 400.
#[test]
fn api_parameter_types_intervals_and_page_tokens() {
    let h = Home::new();
    let server = Server::start(&h, &[]);
    let api = server.url.trim_start_matches("http://").to_owned();
    let spec = sample_spec_json(&h, "container_shell");
    for (given, what) in [(json!(3), "a number"), (json!({"a": 1}), "an object"), (json!(["x"]), "a list")] {
        let body =
            json!({"display_name": "typed", "pipeline_spec": spec, "runtime_config": {"parameters": {"word": given}}});
        let answer = call(&api, "POST", "/apis/v2beta1/runs", None, &body);
        assert_eq!(answer.status, 400, "{given}: {}", answer.text());
        let message = answer.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(&format!("parameter `word` is a STRING, got {what}")), "{message}");
    }
    let body =
        json!({"display_name": "null word", "pipeline_spec": spec, "runtime_config": {"parameters": {"word": null}}});
    let answer = call(&api, "POST", "/apis/v2beta1/runs", None, &body);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["runtime_config"]["parameters"]["word"], "ab", "the default: {}", answer.text());

    for interval in [json!(i64::MAX.to_string()), json!(i64::MAX / 1000 + 1)] {
        let body = json!({"display_name": "every eon", "pipeline_spec": spec,
                          "trigger": {"periodic_schedule": {"interval_second": interval}}});
        let answer = call(&api, "POST", "/apis/v2beta1/recurringruns", None, &body);
        assert_eq!(answer.status, 400, "{interval}: {}", answer.text());
        assert!(answer.text().contains("interval_second must be between 1 and"), "{}", answer.text());
    }
    // "secondrow-page:" + usize::MAX, hex-encoded as the server encodes its tokens.
    let token: String = format!("{}{}", "secondrow-page:", usize::MAX).bytes().map(|b| format!("{b:02x}")).collect();
    for list in ["runs", "experiments", "pipelines"] {
        let answer = call(&api, "GET", &format!("/apis/v2beta1/{list}?page_token={token}"), None, &Value::Null);
        assert_eq!(answer.status, 400, "{list}: {}", answer.text());
    }
}

/// Item 9: NaN and infinite inputs are a 400 naming the input (before: a 500 from the model, or a 200
/// with made-up probabilities for a number too large for FP32); a 404 on infer that left the body unread
/// says `Connection: close` (before: the server hung up without saying so, and the next request on the
/// connection failed).
#[test]
fn non_finite_inputs_and_refused_connections() {
    let h = Home::new();
    let model = trained_model(&h);
    let serve = Serve::start(&h, &model, &[], &[]);
    let fp32 = json!({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 2], "data": [1e39, 1.0]}]});
    let answer = call(&serve.addr, "POST", "/v2/models/m/infer", None, &fp32);
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("input `input-0`: element 0 is inf"), "{}", answer.text());
    // A binary tensor holding a NaN.
    let json_part = json!({"inputs": [{"name": "input-0", "datatype": "FP32", "shape": [1, 2],
                                        "parameters": {"binary_data_size": 8}}]})
    .to_string();
    let mut body = json_part.clone().into_bytes();
    body.extend(f32::NAN.to_le_bytes());
    body.extend(1f32.to_le_bytes());
    let answer = infer_binary(&serve.addr, &json_part, &body);
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("input `input-0`: element 0 is NaN"), "{}", answer.text());

    // A model whose transformer imputes column `a` takes NaN there as a missing value, and only there.
    let csv = h.path().join("train.csv");
    let spec = r#"[{"op":"impute","columns":["a"],"strategy":"median"}]"#;
    let (tr, imputing) = (h.path().join("tr.json"), h.path().join("imputing.json"));
    for argv in [
        vec!["component", "transform", "--data", csv.to_str().unwrap(), "--spec", spec, "--label", "label"]
            .into_iter()
            .chain(["--output", h.path().join("t.csv").to_str().unwrap(), "--transformer", tr.to_str().unwrap()])
            .collect::<Vec<_>>(),
        vec!["component", "train_logistic_regression", "--train-data", csv.to_str().unwrap(), "--label", "label"]
            .into_iter()
            .chain(["--transformer", tr.to_str().unwrap(), "--model", imputing.to_str().unwrap()])
            .collect(),
    ] {
        let out = h.output(&argv);
        assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let with_imputer = Serve::start(&h, &imputing, &[], &[]);
    for (row, want) in [([f32::NAN, 1.0], 200), ([1.0, f32::NAN], 400)] {
        let mut body = json_part.clone().into_bytes();
        body.extend(row[0].to_le_bytes());
        body.extend(row[1].to_le_bytes());
        let answer = infer_binary(&with_imputer.addr, &json_part, &body);
        assert_eq!(answer.status, want, "{row:?}: {}", answer.text());
    }

    // An unknown model is refused before its (large) body is read: the answer closes the connection.
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let big = infer_body(&vec![[1.0, 2.0]; 50_000]).to_string().into_bytes();
    send(&mut stream, "POST", "/v2/models/nope/infer", None, &big);
    let answer = read_answer(&mut stream);
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert!(answer.head.contains("connection: close"), "{}", answer.head);
    // A 400 after the body was read keeps the connection: the next request on it is answered.
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    send(&mut stream, "POST", "/v2/models/m/infer", None, fp32.to_string().as_bytes());
    assert_eq!(read_answer(&mut stream).status, 400);
    send(&mut stream, "GET", "/v2/models/m/ready", None, b"");
    assert_eq!(read_answer(&mut stream).status, 200);
}

/// Item 9: three concurrent ~58 MB inference requests (nested row lists, what clients send) stay well
/// under 1 GB of peak memory. Before: 2.3 GB (every request decoded at once, each through a JSON tree).
#[test]
fn large_inference_requests_are_memory_bounded() {
    let h = Home::new();
    let model = trained_model(&h);
    let serve = Serve::start(&h, &model, &[], &[]);
    let rows = 2_200_000;
    let mut body =
        format!("{{\"inputs\":[{{\"name\":\"input-0\",\"datatype\":\"FP32\",\"shape\":[{rows},2],\"data\":[");
    for i in 0..rows {
        body.push_str(if i == 0 { "[0.123456789,3.87654321]" } else { ",[0.123456789,3.87654321]" });
    }
    body.push_str("]}]}");
    assert!(body.len() > 55_000_000, "{}", body.len());
    let body = std::sync::Arc::new(body.into_bytes());
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (addr, body) = (serve.addr.clone(), body.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
                send(&mut stream, "POST", "/v2/models/m/infer", None, &body);
                let answer = read_answer(&mut stream);
                (answer.status, answer.body.len())
            })
        })
        .collect();
    for t in threads {
        let (status, len) = t.join().unwrap();
        assert!(status == 200 || status == 503, "status {status}");
        assert!(status != 200 || len > 1_000_000);
    }
    let peak_mib = serve.peak_rss_kib() / 1024;
    eprintln!("peak RSS of the model server: {peak_mib} MiB");
    assert!(peak_mib < 1024, "peak RSS {peak_mib} MiB for three 58 MB requests");
}

/// Item 10: a run name and a parameter holding escape sequences are printed with the controls escaped
/// by `run`, `runs list` and `runs get` (before: raw, so they could clear the screen or retitle it).
#[test]
fn cli_output_escapes_control_characters() {
    let h = Home::new();
    let yaml = repo_root().join("testdata/kfp/samples/container_shell.yaml");
    let name = "\x1b[2J\x1b]0;pwned\x07evil\u{202e}name";
    let out = h.output(&["run", yaml.to_str().unwrap(), "--name", name, "-p", "word=\x1b[31mred"]);
    let all = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    assert!(out.status.success(), "{}", all(&out));
    let list = h.output(&["runs", "list"]);
    let runs = h.runs_json();
    let id = runs[0]["id"].as_str().unwrap().to_owned();
    let get = h.output(&["runs", "get", &id]);
    for (what, o) in [("run", &out), ("runs list", &list), ("runs get", &get)] {
        let text = all(o);
        assert!(!text.contains(['\x1b', '\x07', '\u{202e}']), "{what} printed a control character: {text:?}");
    }
    assert!(all(&list).contains("\\u{1b}[2J\\u{1b}]0;pwned\\u{7}evil\\u{202e}name"), "{}", all(&list));
    assert!(all(&get).contains("red"), "{}", all(&get));
}

/// Memory of a process in KiB: (peak, current).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Item 8: the logs endpoint streams: a 200 MB log goes out without the server's memory growing by more
/// than a few MiB (before: the whole log was read into one string, then sent), and `tail`, `offset`
/// and `limit_bytes` cut it.
#[test]
fn logs_stream_in_constant_memory_with_tail_and_range() {
    let h = Home::new();
    let yaml = repo_root().join("testdata/kfp/samples/container_shell.yaml");
    let out = h.output(&["run", yaml.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = h.runs_json()[0]["id"].as_str().unwrap().to_owned();
    let log = h.path().join("home/logs").join(&id).join("repeat/stdout.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    let line =
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrs\n";
    let block = line.repeat(10_000);
    for _ in 0..200 {
        file.write_all(block.as_bytes()).unwrap();
    }
    file.write_all(b"second to last\nthe end\n").unwrap();
    drop(file);
    let server = Server::start(&h, &[]);
    let api = server.url.trim_start_matches("http://").to_owned();
    let path = format!("/apis/v2beta1/runs/{id}/logs?task=repeat");

    let (_, before) = rss_kib(server.pid());
    let mut stream = TcpStream::connect(&api).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut tail = Vec::new();
    loop {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 4096);
        }
    }
    assert!(total > 200_000_000, "{total} bytes");
    assert!(String::from_utf8_lossy(&tail).contains("second to last\nthe end\n"), "chunked framing around it");
    let (peak, _) = rss_kib(server.pid());
    eprintln!("server RSS {before} KiB before, peak {peak} KiB after streaming {total} bytes");
    assert!(peak.saturating_sub(before) < 64 * 1024, "the server grew from {before} KiB to a peak of {peak} KiB");

    let last = call(&api, "GET", &format!("{path}&tail=2"), None, &Value::Null);
    assert_eq!(last.text(), "==> repeat [stdout] <==\nsecond to last\nthe end\n");
    let cut = call(&api, "GET", &format!("{path}&tail=2&offset=4&limit_bytes=10"), None, &Value::Null);
    assert_eq!(cut.text(), "repeat [st");
}

//! The model registry through the official Kubeflow Model Registry client (`model-registry`, from
//! `.venv-registry`): registering with metadata, lookups, updates, archiving, paging, bad input; and namespace
//! tokens seeing only their namespace's models.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::api::{last_json, Server};
use crate::support::*;

/// The Python with the model-registry client: `.venv-registry` at the repo root (made by scripts/test).
fn registry_python() -> PathBuf {
    let p = repo_root().join(".venv-registry/bin/python");
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the registry venv)", p.display());
    p
}

fn client(h: &Home, args: &[&str]) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/registry_client/client.py");
    Command::new(registry_python())
        .arg(script)
        .args(args)
        .current_dir(h.path())
        .env("HOME", h.path())
        .env_remove("KF_PIPELINES_SA_TOKEN_PATH")
        .output()
        .unwrap()
}

fn check(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "client.py failed:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    last_json(out)
}

per_backend!(registry_official_client_registers_lists_updates_and_refuses_bad_input);

fn registry_official_client_registers_lists_updates_and_refuses_bad_input(h: &Home) {
    let server = Server::start(h, &[]);
    let summary = check(&client(h, &[&server.url]));
    assert_eq!(summary["versions"], serde_json::json!(["v1", "v2"]), "{summary}");
    assert_eq!(summary["models"].as_array().unwrap().len(), 7, "{summary}");
}

#[test]
fn registry_namespace_tokens_see_their_own_models() {
    let h = Home::new();
    let token = |ns: &str| {
        let out = h.output(&["tokens", "create", "--namespace", ns, "--name", "t"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).split_whitespace().find(|w| w.starts_with("sr_")).unwrap().to_owned()
    };
    let (a, b) = (token("team-a"), token("team-b"));
    let server = Server::start(&h, &[]);
    // Each namespace registers `churn` of its own; the full client run passes in each, unaffected by the other.
    let first = check(&client(&h, &[&server.url, &a]));
    let second = check(&client(&h, &[&server.url, &b]));
    assert_ne!(first["churn_id"], second["churn_id"]);
    // Without a token: 401 in the registry's error shape.
    let out = client(&h, &[&server.url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

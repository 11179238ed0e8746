//! kfp-kubernetes pipelines, compiled with the real `kfp-kubernetes` package, run locally: PVCs as volume
//! folders mounted in the task's own mount namespace, secrets and config maps from the local store (as env
//! and as files, redacted from logs, per namespace), `set_timeout`, and the Kubernetes-only settings accepted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::{per_backend, Home};

fn fixture(name: &str) -> PathBuf {
    crate::support::repo_root().join("testdata/kfp/kubernetes").join(name)
}

fn ok(home: &Home, args: &[&str]) -> String {
    let out = home.output(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn short_sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

fn volumes(home: &Home) -> PathBuf {
    home.path().join("home").join("work").join("volumes").join("default")
}

/// Mounts need root (a private mount namespace); the tests run as root here and in CI.
fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn pvc_is_created_mounted_shared_and_deleted() {
    let home = Home::new();
    let yaml = home.compile(&fixture("pvc.py"));
    let (code, doc) = home.run(&yaml, &["-p", "text=written through the volume"]);
    if !is_root() {
        // Without root the task fails, and says why.
        assert_eq!(code, 1);
        let err = doc.task("writer")["error"].as_str().unwrap_or_default().to_owned();
        assert!(err.contains("needs root"), "{err}");
        return;
    }
    assert_eq!(code, 0, "{:#}", doc.0);
    assert_eq!(doc.state(), "SUCCEEDED");
    // The reader saw what the writer wrote at /data: the same volume, mounted in both tasks.
    assert_eq!(doc.output("Output"), "written through the volume\n");
    let name = doc.task_output("createpvc", "name").as_str().unwrap().to_owned();
    assert_eq!(name, format!("{}-scratch", doc.id()));
    assert_eq!(doc.task_state("deletepvc"), "SUCCEEDED");
    assert!(!volumes(&home).join(&name).exists(), "DeletePVC removed the folder");
    // The mount was private to the tasks: nothing was written to the host's /data.
    assert!(!Path::new("/data/note.txt").exists());
}

#[test]
fn pvc_of_the_root_is_mounted_inside_conditions_and_loops() {
    if !is_root() {
        return; // pvc_is_created_mounted_shared_and_deleted checks the message without root.
    }
    let home = Home::new();
    let yaml = home.compile(&fixture("pvc_nested.py"));
    let (code, doc) = home.run(&yaml, &[]);
    assert_eq!(code, 0, "{:#}", doc.0);
    // Every task wrote into the one folder: by the root's task output (inside the condition) and by the
    // pipeline parameter (inside the loop).
    let dir = volumes(&home).join("shared-vol");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "cond", "root"]);
}

#[test]
fn mounting_a_volume_that_does_not_exist_fails_the_task_clearly() {
    let home = Home::new();
    // Written beside the home (compile copies it in).
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("pvc_missing.py");
    let text = std::fs::read_to_string(fixture("pvc.py")).unwrap();
    // Mount a constant, never-created PVC name and drop the CreatePVC step.
    let text = text
        .replace(
            "pvc_name=pvc.outputs[\"name\"], mount_path=\"/data\")\n    r = reader()",
            "pvc_name=\"nope\", mount_path=\"/data\")\n    r = reader()",
        )
        .replace("    kubernetes.DeletePVC(pvc_name=pvc.outputs[\"name\"]).after(r)\n", "");
    std::fs::write(&src, text).unwrap();
    let yaml = home.compile(&src);
    let (code, doc) = home.run(&yaml, &[]);
    assert_eq!(code, 1);
    let err = doc.task("writer")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("volume `nope` does not exist"), "{err}");
}

per_backend!(secrets_and_config_maps_reach_the_task_and_never_its_logs);

fn secrets_and_config_maps_reach_the_task_and_never_its_logs(home: &Home) {
    let yaml = home.compile(&fixture("settings.py"));
    let password = "pa55-w0rd-zebra";
    ok(home, &["secrets", "create", "db-creds", "--from-literal", &format!("password={password}")]);
    let mode_file = home.path().join("mode.txt");
    std::fs::write(&mode_file, "fast").unwrap();
    ok(home, &["configmaps", "create", "app-conf", "--from-file", &format!("mode={}", mode_file.display())]);
    // Another namespace's secret of the same name is invisible to local runs (default namespace).
    ok(home, &["secrets", "create", "db-creds", "--namespace", "team-b", "--from-literal", "password=other"]);
    let listed = ok(home, &["secrets", "list", "-A", "--json"]);
    assert!(listed.contains("\"password\"") && !listed.contains(password) && !listed.contains("other"), "{listed}");

    let (code, doc) = home.run(&yaml, &[]);
    assert_eq!(code, 0, "{:#}", doc.0);
    let h = short_sha(password);
    // Env and file carry the secret; config map likewise; the secret file is 0600; the field path and the
    // empty-dir mount work.
    assert_eq!(doc.output("Output"), &format!("{h}|{h}|fast|fast|600|default|probe"));
    assert_eq!(doc.task_output("py-check", "Output"), &h);

    // SecondRow prints the secret nowhere: not in the logs (the task echoed it), not in `runs get`.
    let logs = ok(home, &["logs", &doc.id()]);
    assert!(logs.contains("the password is ***"), "{logs}");
    // Settings only Kubernetes applies are accepted and recorded in the task's log.
    assert!(logs.contains("kubernetes only, not applied locally:"), "{logs}");
    assert!(logs.contains(r#"nodeSelector={"labels":{"disktype":"ssd"}}"#), "{logs}");
    let got = ok(home, &["runs", "get", &doc.id(), "--json"]);
    for text in [&logs, &got, &doc.0.to_string()] {
        assert!(!text.contains(password), "secret printed: {text}");
    }
    // The private folder of secret files is gone with the task.
    let files = home.path().join("home").join("work").join("task-files");
    let left: Vec<_> = std::fs::read_dir(&files).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    ok(home, &["secrets", "delete", "db-creds"]);
    let (code, doc) = home.run(&yaml, &["--no-cache"]);
    assert_eq!(code, 1);
    let err = doc.task("show")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("secret `db-creds` not found in namespace `default`"), "{err}");
}

per_backend!(server_runs_see_only_their_namespace_secrets);

fn server_runs_see_only_their_namespace_secrets(home: &Home) {
    let yaml = home.compile(&fixture("settings.py"));
    for kind in ["secrets", "configmaps"] {
        let literal = if kind == "secrets" { "password=team-a-pass" } else { "mode=slow" };
        let name = if kind == "secrets" { "db-creds" } else { "app-conf" };
        ok(home, &[kind, "create", name, "--namespace", "team-a", "--from-literal", literal]);
    }
    let server = crate::api::Server::start(home, &[]);
    let out = crate::api::kfp_script(home, "platform_namespaces.py", &[&server.url, yaml.to_str().unwrap()]);
    let states = crate::api::last_json(&out);
    // The run in team-a's experiment read team-a's secret; the default namespace has none.
    assert_eq!(states["team-a"], "SUCCEEDED", "{states}");
    assert_eq!(states["default"], "FAILED", "{states}");
    let team_a = home.get_json(states["team-a_id"].as_str().unwrap());
    let h = short_sha("team-a-pass");
    let show = team_a["tasks"].as_array().unwrap().iter().find(|t| t["path"] == "show").unwrap();
    assert_eq!(show["outputs"]["parameters"]["out"], format!("{h}|{h}|slow|slow|600|team-a|probe"), "{show}");
    let default = home.get_json(states["default_id"].as_str().unwrap()).to_string();
    assert!(default.contains("secret `db-creds` not found in namespace `default`"), "{default}");
    assert!(!default.contains("team-a-pass") && !team_a.to_string().contains("team-a-pass"));
}

#[test]
fn set_timeout_kills_the_task() {
    let home = Home::new();
    home.compile(&fixture("settings.py"));
    let yaml = home.path().join("timeout.yaml");
    let started = Instant::now();
    let (code, doc) = home.run(&yaml, &[]);
    assert_eq!(code, 1);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let err = doc.task("sleeper")["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("timed out after 1s"), "{err}");
}

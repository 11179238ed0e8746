//! `secondrow job`: Training Operator v1 jobs run as real multi-process jobs. JAX (from `.venv-jobs`, made by
//! `scripts/test`) gathers over gloo CPU collectives; OpenMPI and mpi4py (Debian's `openmpi-bin` and
//! `python3-mpi4py`, installed by `.ci/run`) allreduce; plain shell replicas show failure, kills, restarts and
//! `job delete`. PyTorch DDP is opt-in (`--ignored`): PyPI's torch pulls about 3 GB of CUDA wheels.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{per_backend, repo_root, wait_for, Home};

/// The Python of `.venv-jobs` (JAX on CPU), at the repository root.
fn jobs_python() -> PathBuf {
    let p = repo_root().join(".venv-jobs/bin/python");
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the jobs venv with JAX)", p.display());
    std::path::absolute(p).unwrap()
}

fn script(name: &str) -> String {
    repo_root().join("testdata/jobs").join(name).display().to_string()
}

fn write(h: &Home, name: &str, yaml: &str) -> PathBuf {
    let p = h.path().join(name);
    std::fs::write(&p, yaml).unwrap();
    p
}

/// `job submit --follow`: (exit code, stderr).
fn submit_follow(h: &Home, file: &Path, extra: &[&str]) -> (i32, String) {
    let out = h.cmd().args(["job", "submit", "--follow"]).arg(file).args(extra).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn get_json(h: &Home, name: &str, ns: &str) -> Value {
    let out = h.cmd().args(["job", "get", name, "-o", "json", "--namespace", ns]).output().unwrap();
    assert!(out.status.success(), "job get: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The stored record (with replicas) of job `name`.
fn record(h: &Home, name: &str) -> Value {
    let out = h.cmd().args(["job", "list", "-A", "--json"]).output().unwrap();
    assert!(out.status.success());
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    all.into_iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("no job {name}"))
}

fn last_condition(doc: &Value) -> Value {
    doc["status"]["conditions"].as_array().unwrap().last().unwrap().clone()
}

fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn jax_job_gathers_over_gloo_and_each_worker_sees_its_environment() {
    let h = Home::new();
    let out = h.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {{name: jx}}\nspec:\n  runPolicy: {{activeDeadlineSeconds: 120}}\n  jaxReplicaSpecs:\n    Worker:\n      replicas: 2\n      template:\n        spec:\n          containers:\n            - name: jax\n              image: ignored\n              command: [{py}, {s}, {out}]\n",
        py = jobs_python().display(),
        s = script("jax_allgather.py"),
        out = out.display()
    );
    let file = write(&h, "jx.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &["--namespace", "team-a"]);
    assert_eq!(code, 0, "{err}");
    let mut ports = Vec::new();
    for rank in 0..2 {
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("rank-{rank}.json"))).unwrap()).unwrap();
        assert_eq!(seen["process_count"], 2);
        assert_eq!(seen["gathered"], serde_json::json!([1.0, 2.0]), "the all-gather saw both processes");
        assert_eq!(seen["sum"], 3.0);
        assert_eq!(seen["env"]["PROCESS_ID"], rank.to_string());
        assert_eq!(seen["env"]["NUM_PROCESSES"], "2");
        assert_eq!(seen["env"]["COORDINATOR_ADDRESS"], "127.0.0.1");
        assert_eq!(seen["env"]["PYTHONUNBUFFERED"], "1");
        ports.push(seen["env"]["COORDINATOR_PORT"].as_str().unwrap().to_owned());
    }
    assert_eq!(ports[0], ports[1], "one coordinator");
    let doc = get_json(&h, "jx", "team-a");
    assert_eq!(doc["kind"], "JAXJob");
    assert_eq!(doc["metadata"]["namespace"], "team-a");
    let last = last_condition(&doc);
    assert_eq!((last["type"].as_str(), last["reason"].as_str()), (Some("Succeeded"), Some("JAXJobSucceeded")));
    assert_eq!(doc["status"]["replicaStatuses"]["Worker"]["succeeded"], 2);
    let rec = record(&h, "jx");
    let port0 = rec["replicas"][0]["port"].as_i64().unwrap().to_string();
    assert_eq!(port0, ports[0], "worker-0's own port is the coordinator's");
    let logs = h.cmd().args(["job", "logs", "jx", "--replica", "worker-1", "--namespace", "team-a"]).output().unwrap();
    assert!(String::from_utf8_lossy(&logs.stdout).contains("\"process_id\": 1"));
    // Another namespace does not see it; a second job of the same name there is its own.
    let other = h.cmd().args(["job", "get", "jx"]).output().unwrap();
    assert_eq!(other.status.code(), Some(2), "not found in the default namespace");
}

#[test]
fn mpi_job_allreduces_with_openmpi_on_the_hostfile() {
    let mpirun = Path::new("/usr/bin/mpirun");
    assert!(mpirun.exists(), "OpenMPI is missing: .ci/run installs Debian's openmpi-bin and python3-mpi4py");
    let h = Home::new();
    let out = h.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Two workers with one slot each: the hostfile offers 2 slots, so `mpirun -n 3` could not start.
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: MPIJob\nmetadata: {{name: pi}}\nspec:\n  slotsPerWorker: 1\n  mpiReplicaSpecs:\n    Launcher:\n      replicas: 1\n      template:\n        spec:\n          containers:\n            - name: mpi\n              image: ignored\n              command: [mpirun, -n, \"2\", /usr/bin/python3, {s}, {out}]\n              env: [{{name: OMPI_ALLOW_RUN_AS_ROOT, value: \"1\"}}, {{name: OMPI_ALLOW_RUN_AS_ROOT_CONFIRM, value: \"1\"}}]\n    Worker:\n      replicas: 2\n      template: {{spec: {{containers: [{{name: mpi, image: ignored}}]}}}}\n",
        s = script("mpi_allreduce.py"),
        out = out.display()
    );
    let file = write(&h, "pi.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 0, "{err}");
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(out.join("mpi.json")).unwrap()).unwrap();
    assert_eq!((seen["size"].as_i64(), seen["sum"].as_i64()), (Some(2), Some(3)), "allreduce of 1 + 2");
    let hostfile = seen["ranks"][0]["hostfile"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(hostfile).unwrap(), "localhost slots=2\n");
    let doc = get_json(&h, "pi", "");
    assert_eq!(last_condition(&doc)["reason"], "MPIJobSucceeded");
    let rec = record(&h, "pi");
    let states: Vec<&str> = rec["replicas"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["Succeeded", "Succeeded", "Succeeded"]);

    // More ranks than the hostfile's slots: mpirun refuses, the launcher fails, so does the job.
    let file = write(&h, "pi3.yaml", &yaml.replace("name: pi}", "name: pi3}").replace("-n, \"2\"", "-n, \"3\""));
    let (code, _) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 1);
    assert_eq!(last_condition(&get_json(&h, "pi3", ""))["reason"], "MPIJobFailed");
}

#[test]
fn a_failing_rank_fails_the_job_kills_the_others_and_policies_restart() {
    let h = Home::new();
    let pids = h.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let sh = |name: &str, extra: &str, replicas: u32, policy: &str, cmd: &str| {
        format!(
            "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: {name}}}\nspec:\n{extra}  pytorchReplicaSpecs:\n    Worker:\n      replicas: {replicas}\n      restartPolicy: {policy}\n      template: {{spec: {{containers: [{{name: pytorch, image: i, command: [sh, -c, '{cmd}']}}]}}}}\n"
        )
    };
    // The Worker (RANK 1) fails for good (Never); the Master (RANK 0) and the child it waits on are killed.
    let cmd = format!(
        "echo $$ > {p}/$RANK; if [ $RANK = 1 ]; then while [ ! -e {p}/child ]; do sleep 0.05; done; exit 3; fi; sleep 60 & echo $! > {p}/child; wait",
        p = pids.display()
    );
    let c =
        format!("{{template: {{spec: {{containers: [{{name: pytorch, image: i, command: [sh, -c, '{cmd}']}}]}}}}}}");
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: fail}}\nspec:\n  pytorchReplicaSpecs:\n    Master: {{replicas: 1, restartPolicy: Never, {m}\n    Worker: {{replicas: 1, restartPolicy: Never, {w}\n",
        m = &c[1..],
        w = &c[1..]
    );
    let file = write(&h, "fail.yaml", &yaml);
    let started = std::time::Instant::now();
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the others were killed, not waited for");
    let doc = get_json(&h, "fail", "");
    let last = last_condition(&doc);
    assert_eq!(last["reason"], "PyTorchJobFailed");
    assert!(last["message"].as_str().unwrap().contains("1 Worker replica(s) failed"), "{last}");
    let rec = record(&h, "fail");
    assert_eq!(rec["replicas"][0]["replica_type"], "Master");
    assert_eq!(rec["replicas"][0]["state"], "Killed");
    assert_eq!(rec["replicas"][1]["state"], "Failed");
    assert_eq!(rec["replicas"][1]["exit_code"], 3);
    for f in ["0", "child"] {
        let pid: i64 = std::fs::read_to_string(pids.join(f)).unwrap().trim().parse().unwrap();
        assert!(!alive(pid), "{f} ({pid}) is gone");
    }

    // ExitCode: 137 (killed) is retried, then the job succeeds; the Restarting condition gave way to Running.
    let marker = h.path().join("once");
    let cmd = format!("if [ -e {m} ]; then exit 0; fi; touch {m}; exit 137", m = marker.display());
    let file = write(&h, "retry.yaml", &sh("retry", "  runPolicy: {backoffLimit: 3}\n", 1, "ExitCode", &cmd));
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Restarting"), "{err}");
    assert_eq!(record(&h, "retry")["replicas"][0]["restarts"], 1);
    // OnFailure retries any code until backoffLimit.
    let file = write(&h, "flaky.yaml", &sh("flaky", "  runPolicy: {backoffLimit: 2}\n", 1, "OnFailure", "exit 1"));
    assert_eq!(submit_follow(&h, &file, &[]).0, 1);
    let rec = record(&h, "flaky");
    assert_eq!(rec["replicas"][0]["restarts"], 2);
    assert!(last_condition(&get_json(&h, "flaky", ""))["message"].as_str().unwrap().contains("backoff limit"));

    // In the background: submit returns, the supervisor runs the replicas, delete stops them.
    let file = write(&h, "bg.yaml", &sh("bg", "", 2, "OnFailure", "sleep 60"));
    let out = h.cmd().args(["job", "submit"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pytorchjob.kubeflow.org/bg created");
    let pids: Vec<i64> = wait_for(Duration::from_secs(30), || {
        let rec = record(&h, "bg");
        (rec["state"] == "Running")
            .then(|| rec["replicas"].as_array().unwrap().iter().filter_map(|r| r["pid"].as_i64()).collect())
    });
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| alive(*p)));
    let del = h.cmd().args(["job", "delete", "bg"]).output().unwrap();
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    wait_for(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)).then_some(()));
    assert_eq!(h.cmd().args(["job", "get", "bg"]).output().unwrap().status.code(), Some(2));

    // Bad input: an unknown replica type is refused naming the field, exit 2.
    let file = write(&h, "bad.yaml", &sh("bad", "", 1, "Never", "true").replace("Worker:", "Boss:"));
    let out = h.cmd().args(["job", "submit"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.pytorchReplicaSpecs.Boss"));
}

/// PyTorch DDP over gloo: opt-in (`cargo test -p secondrow --test it -- --ignored pytorch`), since PyPI's torch
/// pulls about 3 GB of CUDA wheels. Needs `SECONDROW_TEST_TORCH_PYTHON`, a Python with torch.
#[test]
#[ignore = "needs torch (about 3 GB): set SECONDROW_TEST_TORCH_PYTHON"]
fn pytorch_ddp_job_allreduces_over_gloo() {
    let py =
        std::env::var("SECONDROW_TEST_TORCH_PYTHON").expect("SECONDROW_TEST_TORCH_PYTHON names a Python with torch");
    let h = Home::new();
    let out = h.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let c = format!(
        "{{name: pytorch, image: i, command: [{py}, {s}, {o}]}}",
        s = script("torch_ddp.py"),
        o = out.display()
    );
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {{name: ddp}}\nspec:\n  pytorchReplicaSpecs:\n    Master: {{replicas: 1, template: {{spec: {{containers: [{c}]}}}}}}\n    Worker: {{replicas: 1, template: {{spec: {{containers: [{c}]}}}}}}\n"
    );
    let file = write(&h, "ddp.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 0, "{err}");
    for rank in 0..2 {
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("rank-{rank}.json"))).unwrap()).unwrap();
        assert_eq!(seen["sum"], 3.0);
        assert_eq!(seen["env"]["WORLD_SIZE"], "2");
    }
}

/// One request with a YAML body and an optional bearer token: (status, body text).
fn http(url: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    crate::support::raw_http(url, method, path, token, "application/yaml", body)
}

// The API's job tests run on both metadata backends: `NAME::sqlite` and `NAME::postgres`.
per_backend!(
    jobs_api_runs_a_job_in_the_tokens_namespace_only,
    a_server_stopped_by_sigterm_records_its_jobs_and_resumes_them
);

fn jobs_api_runs_a_job_in_the_tokens_namespace_only(h: &Home) {
    let out = h.output(&["tokens", "create", "--namespace", "team-a", "--name", "t"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let server = crate::api::Server::start(h, &[]);
    let base = "/apis/kubeflow.org/v1/namespaces";
    let yaml = "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {name: jx}\nspec:\n  jaxReplicaSpecs:\n    Worker:\n      replicas: 2\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'echo rank=$PROCESS_ID of $NUM_PROCESSES']}]}}\n";
    assert_eq!(http(&server.url, "POST", &format!("{base}/team-a/jaxjobs"), None, yaml).0, 401);
    assert_eq!(http(&server.url, "POST", &format!("{base}/team-b/jaxjobs"), Some(&token), yaml).0, 403);
    assert_eq!(http(&server.url, "POST", &format!("{base}/team-a/pytorchjobs"), Some(&token), yaml).0, 400);
    let (status, body) = http(&server.url, "POST", &format!("{base}/team-a/jaxjobs"), Some(&token), yaml);
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["metadata"]["namespace"], "team-a");
    assert_eq!(http(&server.url, "POST", &format!("{base}/team-a/jaxjobs"), Some(&token), yaml).0, 409);
    let log = h.path().join("server.log");
    let doc: Value = wait_for(Duration::from_secs(30), || {
        let (status, body) = http(&server.url, "GET", &format!("{base}/team-a/jaxjobs/jx"), Some(&token), "");
        assert!(!std::fs::read_to_string(&log).unwrap_or_default().contains("supervisor stopped"), "{body}");
        assert_eq!(status, 200, "{body}");
        let doc: Value = serde_json::from_str(&body).unwrap();
        (last_condition(&doc)["type"] == "Succeeded").then_some(doc)
    });
    assert_eq!(doc["status"]["replicaStatuses"]["Worker"]["succeeded"], 2);
    let (status, log) =
        http(&server.url, "GET", &format!("{base}/team-a/jaxjobs/jx/log?replica=worker-1"), Some(&token), "");
    assert_eq!((status, log.trim()), (200, "rank=1 of 2"));
    let (status, list) = http(&server.url, "GET", &format!("{base}/team-a/jaxjobs"), Some(&token), "");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!((list["kind"].as_str(), list["items"].as_array().unwrap().len()), (Some("JAXJobList"), 1));
    assert_eq!(http(&server.url, "GET", &format!("{base}/team-a/pytorchjobs/jx"), Some(&token), "").0, 404);
    assert_eq!(http(&server.url, "GET", &format!("{base}/team-b/jaxjobs"), Some(&token), "").0, 403);
    assert_eq!(http(&server.url, "DELETE", &format!("{base}/team-a/jaxjobs/jx"), Some(&token), "").0, 200);
    assert_eq!(http(&server.url, "GET", &format!("{base}/team-a/jaxjobs/jx"), Some(&token), "").0, 404);
}

/// A graceful stop (SIGTERM) kills every replica's process group (the replicas' own children too) and records
/// it: the OnFailure job is Restarting with its replicas Pending and one restart each, the Never job Failed.
/// The next start runs the first again (no replica is lost any more, so no further restart is counted).
fn a_server_stopped_by_sigterm_records_its_jobs_and_resumes_them(h: &Home) {
    let kids = h.path().join("kids");
    std::fs::create_dir_all(&kids).unwrap();
    let server = crate::api::Server::start(h, &[]);
    let job = |name: &str, policy: &str| {
        format!(
            "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {{name: {name}}}\nspec:\n  jaxReplicaSpecs:\n    Worker:\n      replicas: 2\n      restartPolicy: {policy}\n      template: {{spec: {{containers: [{{name: jax, image: i, command: [sh, -c, 'sleep 300 & echo $! > {k}/{name}-$PROCESS_ID; wait']}}]}}}}\n",
            k = kids.display()
        )
    };
    let base = "/apis/kubeflow.org/v1/namespaces/default/jaxjobs";
    for (name, policy) in [("again", "OnFailure"), ("lost", "Never")] {
        let (status, body) = http(&server.url, "POST", base, None, &job(name, policy));
        assert_eq!(status, 201, "{body}");
    }
    let mut pids = Vec::new();
    for name in ["again", "lost"] {
        let rec = wait_for(Duration::from_secs(30), || {
            let rec = record(h, name);
            let running = rec["replicas"].as_array().unwrap().iter().all(|r| r["pid"].is_i64());
            let kids = (0..2).all(|i| kids.join(format!("{name}-{i}")).exists());
            (rec["state"] == "Running" && running && kids).then_some(rec)
        });
        pids.extend(rec["replicas"].as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap()));
        for i in 0..2 {
            let kid = std::fs::read_to_string(kids.join(format!("{name}-{i}"))).unwrap();
            pids.push(kid.trim().parse().unwrap());
        }
    }
    assert!(pids.iter().all(|p| alive(*p)));
    let server_pid = i64::from(server.pid());
    let term = std::process::Command::new("kill").args(["-TERM", &server_pid.to_string()]).status().unwrap();
    assert!(term.success());
    wait_for(Duration::from_secs(60), || (!alive(server_pid)).then_some(()));
    let orphans: Vec<i64> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(orphans.is_empty(), "left running after the server stopped: {orphans:?}");
    let again = record(h, "again");
    assert_eq!(again["state"], "Restarting", "{again}");
    for r in again["replicas"].as_array().unwrap() {
        assert_eq!((r["state"].as_str(), r["restarts"].as_i64(), r["pid"].as_i64()), (Some("Pending"), Some(1), None));
    }
    let cond = last_condition(&serde_json::json!({"status": again["status"]}));
    assert!(cond["message"].as_str().unwrap().contains("supervisor stopped"), "{cond}");
    let lost = record(h, "lost");
    assert_eq!(lost["state"], "Failed", "{lost}");
    assert!(lost["replicas"].as_array().unwrap().iter().all(|r| r["state"] == "Killed"), "{lost}");
    let log = std::fs::read_to_string(h.path().join("server.log")).unwrap();
    assert!(!log.contains("did not stop in time"), "{log}");
    drop(server);

    // The next start runs the OnFailure job again; the failed one stays failed.
    let _server = crate::api::Server::start(h, &[]);
    let again = wait_for(Duration::from_secs(30), || {
        let rec = record(h, "again");
        let pids: Vec<i64> = rec["replicas"].as_array().unwrap().iter().filter_map(|r| r["pid"].as_i64()).collect();
        (rec["state"] == "Running" && pids.len() == 2).then_some(rec)
    });
    assert!(again["replicas"].as_array().unwrap().iter().all(|r| r["restarts"] == 1), "{again}");
    assert_eq!(record(h, "lost")["state"], "Failed");
    let pids: Vec<i64> = again["replicas"].as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    assert!(h.cmd().args(["job", "delete", "again"]).output().unwrap().status.success());
    wait_for(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)).then_some(()));
}

#[test]
fn the_training_job_component_runs_a_job_between_pipeline_steps() {
    let h = Home::new();
    let job = "apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {name: comp}\nspec:\n  jaxReplicaSpecs:\n    Worker:\n      replicas: 2\n      template: {spec: {containers: [{name: jax, image: i, command: [sh, -c, 'echo rank $PROCESS_ID > $SECONDROW_OUTPUT_DIR/out.txt']}]}}\n";
    let component = repo_root().join("components/training/training_job.yaml");
    let param = format!("job={job}");
    let (code, run) = h.run(&component, &["-p", &param]);
    assert_eq!(code, 0, "{:?}", run.0);
    let status: Value = serde_json::from_str(run.task_output("training-job", "status").as_str().unwrap()).unwrap();
    assert_eq!(last_condition(&serde_json::json!({ "status": status }))["reason"], "JAXJobSucceeded");
    let uri = run.task_artifact("training-job", "output")["uri"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(Path::new(&uri).join("out.txt")).unwrap(), "rank 0\n", "rank 0's output");
    // The job is recorded in the home the pipeline ran in, under a generated name.
    let out = h.cmd().args(["job", "list", "-A", "--json"]).output().unwrap();
    let jobs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs.len(), 1);
    let name = jobs[0]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("comp-"));
    // The web UI lists it and shows its replicas, conditions and logs.
    let server = crate::api::Server::start(&h, &[]);
    let (status, page) = http(&server.url, "GET", "/jobs", None, "");
    assert_eq!(status, 200);
    assert!(page.contains(&format!("href=\"/jobs/default/{name}\"")), "{page}");
    let (status, page) = http(&server.url, "GET", &format!("/jobs/default/{name}"), None, "");
    assert_eq!(status, 200);
    assert!(page.contains("data-replica=\"worker-1\"") && page.contains("JAXJobSucceeded"), "{page}");
    assert_eq!(http(&server.url, "GET", "/jobs/default/nope", None, "").0, 404);
}

#[test]
fn a_server_restarts_or_fails_the_jobs_of_a_supervisor_that_died() {
    let h = Home::new();
    let job = |name: &str, policy: &str| {
        format!("apiVersion: kubeflow.org/v1\nkind: JAXJob\nmetadata: {{name: {name}}}\nspec:\n  jaxReplicaSpecs:\n    Worker:\n      replicas: 2\n      restartPolicy: {policy}\n      template: {{spec: {{containers: [{{name: jax, image: i, command: [sleep, '60']}}]}}}}\n")
    };
    let mut old = Vec::new();
    for (name, policy) in [("again", "OnFailure"), ("lost", "Never")] {
        let file = write(&h, &format!("{name}.yaml"), &job(name, policy));
        assert!(h.cmd().args(["job", "submit"]).arg(&file).output().unwrap().status.success());
        let rec = wait_for(Duration::from_secs(30), || {
            let rec = record(&h, name);
            let running = rec["replicas"].as_array().unwrap().iter().all(|r| r["pid"].is_i64());
            (running && rec["supervisor_pid"].is_i64()).then_some(rec)
        });
        // The background supervisor dies as a crash would; its replicas are left running.
        let supervisor = rec["supervisor_pid"].as_i64().unwrap();
        let killed = std::process::Command::new("kill").args(["-9", &supervisor.to_string()]).status().unwrap();
        assert!(killed.success());
        wait_for(Duration::from_secs(10), || (!alive(supervisor)).then_some(()));
        old.extend(rec["replicas"].as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap()));
        assert!(old.iter().all(|p| alive(*p)));
    }
    let _server = crate::api::Server::start(&h, &[]);
    // The orphans are killed; OnFailure starts the job again under the server, Never fails it.
    wait_for(Duration::from_secs(10), || old.iter().all(|p| !alive(*p)).then_some(()));
    let again = wait_for(Duration::from_secs(30), || {
        let rec = record(&h, "again");
        let pids: Vec<i64> = rec["replicas"].as_array().unwrap().iter().filter_map(|r| r["pid"].as_i64()).collect();
        (rec["state"] == "Running" && pids.len() == 2).then_some(rec)
    });
    assert_eq!(again["replicas"][0]["restarts"], 1);
    let lost = record(&h, "lost");
    assert_eq!(lost["state"], "Failed");
    assert!(last_condition(&serde_json::json!({"status": lost["status"]}))["message"]
        .as_str()
        .unwrap()
        .contains("supervisor stopped"));
    let pids: Vec<i64> = again["replicas"].as_array().unwrap().iter().map(|r| r["pid"].as_i64().unwrap()).collect();
    assert!(h.cmd().args(["job", "delete", "again"]).output().unwrap().status.success());
    wait_for(Duration::from_secs(10), || pids.iter().all(|p| !alive(*p)).then_some(()));
}

#[test]
fn tf_and_xgboost_replicas_see_the_operators_variables() {
    let h = Home::new();
    let out = h.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.display();
    // TFJob: the Chief finishes the job; the PS is not awaited and is stopped when the job succeeds.
    let c = |t: &str, n: u32, cmd: &str| {
        format!("    {t}: {{replicas: {n}, template: {{spec: {{containers: [{{name: tensorflow, image: i, command: [sh, -c, '{cmd}']}}]}}}}}}\n")
    };
    let save = format!("printf %s \"$TF_CONFIG\" > {o}/t-$$ && mv {o}/t-$$ {o}/tf-$(echo \"$TF_CONFIG\" | sed -e s/.*type.:.// -e s/.,.index.:/-/ -e s/}}.*//)");
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {{name: mnist}}\nspec:\n  tfReplicaSpecs:\n{}{}{}",
        c("Chief", 1, &format!("{save}; while [ ! -e {o}/tf-worker-1 ]; do sleep 0.05; done")),
        c("Worker", 2, &format!("{save}; sleep 60")),
        c("PS", 1, &format!("{save}; sleep 60")),
    );
    let file = write(&h, "tf.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 0, "{err}");
    let rec = record(&h, "mnist");
    let port = |i: usize| rec["replicas"][i]["port"].as_i64().unwrap();
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(out.join("tf-worker-1")).unwrap()).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "cluster": {
                "chief": [format!("127.0.0.1:{}", port(0))],
                "ps": [format!("127.0.0.1:{}", port(3))],
                "worker": [format!("127.0.0.1:{}", port(1)), format!("127.0.0.1:{}", port(2))],
            },
            "task": {"type": "worker", "index": 1},
            "environment": "cloud",
        })
    );
    let states: Vec<&str> = rec["replicas"].as_array().unwrap().iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states[0], "Succeeded");
    assert_eq!(states[3], "Killed", "the PS is stopped when the job ends");
    assert_eq!(last_condition(&get_json(&h, "mnist", ""))["reason"], "TFJobSucceeded");

    // XGBoostJob: RANK and WORLD_SIZE, the master's address and the workers'. The Master's success ends the job,
    // so it waits for worker-1 (RANK 2) to have written what it saw.
    let x = |t: &str, n: u32| {
        format!("    {t}: {{replicas: {n}, template: {{spec: {{containers: [{{name: xgboost, image: i, command: [sh, -c, 'env | grep -E \"^(MASTER_ADDR|MASTER_PORT|WORLD_SIZE|RANK|WORKER_ADDRS)=\" | sort > {o}/x-$RANK && mv {o}/x-$RANK {o}/xgb-$RANK; if [ $RANK = 0 ]; then while [ ! -e {o}/xgb-2 ]; do sleep 0.05; done; fi']}}]}}}}}}\n")
    };
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: XGBoostJob\nmetadata: {{name: xgb}}\nspec:\n  xgbReplicaSpecs:\n{}{}",
        x("Master", 1),
        x("Worker", 2)
    );
    let file = write(&h, "xgb.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &[]);
    assert_eq!(code, 0, "{err}");
    let master_port = record(&h, "xgb")["replicas"][0]["port"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("xgb-2")).unwrap(),
        format!("MASTER_ADDR=127.0.0.1\nMASTER_PORT={master_port}\nRANK=2\nWORKER_ADDRS=127.0.0.1,127.0.0.1\nWORLD_SIZE=3\n")
    );
}

/// A Katib Experiment whose trials are training jobs (a 2-worker JAXJob of shell replicas): each trial is a run
/// of one `job submit --follow` task and a job named after the trial; StdOut metrics come from rank 0 only
/// (worker-1 prints a worse loss that must not count), File metrics from the collector's path, rewritten per
/// trial in every replica's command.
#[test]
fn tuning_trials_run_as_training_jobs_with_rank_0_metrics() {
    let h = Home::new();
    let experiment = |name: &str, collector: &str, cmd: &str| {
        format!(
            r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
  maxTrialCount: 3
{collector}  parameters:
    - {{name: x, parameterType: int, feasibleSpace: {{min: "0", max: "2"}}}}
  trialTemplate:
    primaryContainerName: jax
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: kubeflow.org/v1
      kind: JAXJob
      spec:
        jaxReplicaSpecs:
          Worker:
            replicas: 2
            restartPolicy: Never
            template:
              spec:
                containers:
                  - name: jax
                    image: ignored
                    command: [sh, -c, '{cmd}']
"#
        )
    };
    let stdout = "if [ $PROCESS_ID = 0 ]; then echo loss=$(( (${trialParameters.x} - 1) * (${trialParameters.x} - 1) )); else echo loss=100; fi; echo rank $PROCESS_ID of $NUM_PROCESSES";
    let file =
        "if [ $PROCESS_ID = 0 ]; then echo loss=$(( ${trialParameters.x} + 5 )) > /var/log/katib/metrics.log; fi";
    let collector = "  metricsCollectorSpec:\n    source: {fileSystemPath: {path: /var/log/katib/metrics.log, kind: File}}\n    collector: {kind: File}\n";
    for (name, collector, cmd, best) in [("jobtrials", "", stdout, 0.0), ("jobfiles", collector, file, 5.0)] {
        let path = write(&h, &format!("{name}.yaml"), &experiment(name, collector, cmd));
        let out = h.cmd().arg("tune").arg(&path).arg("--json").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["experiment"]["state"], "Succeeded", "{doc}");
        let trials = doc["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 3, "{doc}");
        let mut objectives: Vec<f64> = trials.iter().map(|t| t["objective"].as_f64().unwrap()).collect();
        objectives.sort_by(f64::total_cmp);
        assert_eq!(objectives[0], best, "{doc}");
        let optimal = trials.iter().find(|t| t["name"] == doc["experiment"]["optimalTrial"]).unwrap();
        assert_eq!(
            optimal["assignments"],
            serde_json::json!([{"name": "x", "value": if best == 0.0 { "1" } else { "0" }}])
        );
        for t in trials {
            assert_eq!(t["state"], "Succeeded", "{t}");
            assert!(t["runId"].is_string(), "every trial is a run: {t}");
            // The trial's job, named after it, ran both workers.
            let job = record(&h, t["name"].as_str().unwrap());
            assert_eq!((job["kind"].as_str(), job["state"].as_str()), (Some("JAXJob"), Some("Succeeded")));
            assert!(job["replicas"].as_array().unwrap().iter().all(|r| r["state"] == "Succeeded"), "{job}");
        }
    }
    // The trial's job log is reachable the usual way.
    let first = record(&h, &{
        let out = h.cmd().args(["job", "list", "-A", "--json"]).output().unwrap();
        let all: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        all.iter().find(|j| j["name"].as_str().unwrap().starts_with("jobtrials-")).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let (name, ns) = (first["name"].as_str().unwrap(), first["namespace"].as_str().unwrap());
    let logs = h.cmd().args(["job", "logs", name, "--replica", "worker-1", "--namespace", ns]).output().unwrap();
    let text = String::from_utf8_lossy(&logs.stdout);
    assert!(text.contains("rank 1 of 2"), "{text}{}", String::from_utf8_lossy(&logs.stderr));
}

/// A TFJob of 2 workers with real TensorFlow: MultiWorkerMirroredStrategy finds its peers through the
/// `TF_CONFIG` the job sets, all-reduces and gathers. Opt-in (`SECONDROW_TEST_TENSORFLOW=1 ./scripts/test`, which
/// makes `.venv-tf` from `scripts/requirements-tf.txt`): CPU-only TensorFlow is still a few hundred MB.
#[test]
fn tensorflow_job_allreduces_with_multi_worker_mirrored_strategy() {
    if std::env::var("SECONDROW_TEST_TENSORFLOW").as_deref() != Ok("1") {
        eprintln!("note: SECONDROW_TEST_TENSORFLOW is not 1; the TensorFlow job test is skipped (opt-in)");
        return;
    }
    let py = repo_root().join(".venv-tf/bin/python");
    assert!(py.exists(), "{} is missing: SECONDROW_TEST_TENSORFLOW=1 ./scripts/test creates it", py.display());
    let h = Home::new();
    let out = h.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let yaml = format!(
        "apiVersion: kubeflow.org/v1\nkind: TFJob\nmetadata: {{name: mwms}}\nspec:\n  successPolicy: AllWorkers\n  runPolicy: {{activeDeadlineSeconds: 300}}\n  tfReplicaSpecs:\n    Worker:\n      replicas: 2\n      restartPolicy: Never\n      template: {{spec: {{containers: [{{name: tensorflow, image: i, command: [{py}, {s}, {o}]}}]}}}}\n",
        py = std::path::absolute(py).unwrap().display(),
        s = script("tf_mwms.py"),
        o = out.display()
    );
    let file = write(&h, "mwms.yaml", &yaml);
    let (code, err) = submit_follow(&h, &file, &[]);
    let logs = h.cmd().args(["job", "logs", "mwms"]).output().unwrap();
    assert_eq!(code, 0, "{err}\n{}", String::from_utf8_lossy(&logs.stdout));
    let rec = record(&h, "mwms");
    let workers: Vec<String> = (0..2).map(|i| format!("127.0.0.1:{}", rec["replicas"][i]["port"])).collect();
    for index in 0..2 {
        let seen: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(format!("tf-{index}.json"))).unwrap()).unwrap();
        assert_eq!(seen["workers"], 2, "{seen}");
        assert_eq!(seen["sum"], 3.0, "the all-reduce saw both workers: {seen}");
        assert_eq!(seen["gathered"], serde_json::json!([1.0, 2.0]), "{seen}");
        assert_eq!(seen["task"], serde_json::json!({"type": "worker", "index": index}));
        assert_eq!(seen["cluster"], serde_json::json!({"worker": workers}));
    }
    assert_eq!(last_condition(&get_json(&h, "mwms", ""))["reason"], "TFJobSucceeded");
}

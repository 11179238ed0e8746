//! `--server URL`: `run`, `runs list|get|resume`, `logs` and `artifacts` against a running
//! `secondrow server` instead of the local home, with the output and exit codes of local mode.
//!
//! Runs are submitted through KFP's `POST /runs` (spec inline) and followed by polling SecondRow's record
//! view (`/secondrow/runs/ID`), whose task states become the same progress lines as a local run. Pipelines
//! and parameters are validated here first (exit 2 before anything is sent); a 4xx from the server is
//! exit 2 with its message too.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use secondrow_engine::Progress;
use secondrow_error::ErrorKind;
use secondrow_store::{ArtifactRecord, RunRecord, RunState, TaskRecord, TaskState};

use crate::client::{Client, ClientError};
use crate::error::{Context as _, Failure, Result};
use crate::{load_pipeline, progress, shutdown, Command, RunArgs, RunsCommand};

/// How often a submitted run is polled.
const POLL: Duration = Duration::from_millis(300);

/// Runs `command` against the server; `None` for commands that only work locally (they run locally).
pub async fn dispatch(server: &str, token: Option<String>, command: &Command) -> Result<Option<ExitCode>> {
    let remote = || Client::new(server, token.clone());
    let code = match command {
        Command::Run(args) => run(&remote()?, args).await?,
        Command::Runs(RunsCommand::List { limit, json }) => list(&remote()?, *limit, *json).await?,
        Command::Runs(RunsCommand::Get { run_id, json }) => get(&remote()?, run_id, *json).await?,
        Command::Runs(RunsCommand::Resume { run_id, exec }) => {
            let client = remote()?;
            let run_id = run_document(&client, run_id).await?.run.id;
            client.post_json(&format!("/runs/{run_id}:retry"), &json!({})).await.map_err(api_error)?;
            eprintln!("resuming run {run_id}");
            follow(&client, &run_id, exec.json).await?
        }
        Command::Logs { run_id, task } => logs(&remote()?, run_id, task.as_deref()).await?,
        Command::Artifacts { run_id, download, json } => {
            artifacts(&remote()?, run_id, download.as_deref(), *json).await?
        }
        _ => return Ok(None),
    };
    Ok(Some(code))
}

/// The error's kind decides the exit code (a 4xx is the user's mistake); a 4xx prints the server's
/// message as is.
pub(crate) fn api_error(e: ClientError) -> Failure {
    match (&e, e.status()) {
        (ClientError::Api { message, .. }, Some(400..=499)) => {
            Failure::new(e.kind(), anyhow::Error::msg(message.clone()))
        }
        _ => e.into(),
    }
}

async fn run(client: &Client, args: &RunArgs) -> Result<ExitCode> {
    // Validate everything before contacting the server, as local mode does before touching the store.
    let pipeline = load_pipeline(&args.pipeline)?;
    let params = pipeline.bind_cli_parameters(&args.params)?;
    let mut spec = secondrow_api::pipelines::spec_document(&pipeline);
    if args.no_cache {
        disable_cache(&mut spec);
    }
    let mut body = json!({"pipeline_spec": spec, "runtime_config": {"parameters": params}});
    if let Some(name) = &args.name {
        body["display_name"] = json!(name);
    }
    if let Some(experiment) = &args.experiment {
        body["experiment_id"] = json!(experiment_id(client, experiment).await?);
    }
    let created = client.post_json("/runs", &body).await.map_err(api_error)?;
    let run_id = created["run_id"]
        .as_str()
        .ok_or_else(|| Failure::internal("the server's answer to POST /runs has no run_id"))?
        .to_owned();
    eprintln!("run {run_id} ({}) started", crate::term::Safe(created["display_name"].as_str().unwrap_or("")));
    follow(client, &run_id, args.exec.json).await
}

/// Turns caching off in every task of the spec, as kfp's `enable_caching=False` does.
pub(crate) fn disable_cache(doc: &mut Value) {
    let spec = if doc.get("pipeline_spec").is_some() { &mut doc["pipeline_spec"] } else { doc };
    for pointer in dag_task_pointers(spec) {
        if let Some(Value::Object(tasks)) = spec.pointer_mut(&pointer) {
            for task in tasks.values_mut() {
                if task.is_object() {
                    task["cachingOptions"]["enableCache"] = json!(false);
                }
            }
        }
    }
}

/// JSON pointers of every `tasks` map: the root DAG's and each DAG component's.
fn dag_task_pointers(spec: &Value) -> Vec<String> {
    const TASKS: &str = "/dag/tasks";
    let mut out = vec![format!("/root{TASKS}")];
    if let Some(components) = spec.get("components").and_then(Value::as_object) {
        for (name, c) in components {
            if c.pointer(TASKS).is_some() {
                out.push(format!("/components/{}{TASKS}", name.replace('~', "~0").replace('/', "~1")));
            }
        }
    }
    out
}

/// The id of the experiment named `name`, created when missing (what kfp's `create_experiment` does).
pub(crate) async fn experiment_id(client: &Client, name: &str) -> Result<String> {
    let filter = json!({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": name}]});
    let found = client
        .get_json_query("/experiments", &[("filter", filter.to_string()), ("namespace", String::new())])
        .await
        .map_err(api_error)?;
    if let Some(id) = found["experiments"].get(0).and_then(|e| e["experiment_id"].as_str()) {
        return Ok(id.to_owned());
    }
    let created =
        client.post_json("/experiments", &json!({"display_name": name, "namespace": ""})).await.map_err(api_error)?;
    created["experiment_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Failure::internal("the server's answer to POST /experiments has no experiment_id"))
}

/// Polls a run until it ends, showing progress; Ctrl-C terminates it on the server. The summary and the
/// exit code are local mode's.
async fn follow(client: &Client, run_id: &str, json_out: bool) -> Result<ExitCode> {
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let display = tokio::spawn(progress::render(progress_rx, false));
    let mut seen: HashMap<String, TaskState> = HashMap::new();
    let mut terminate_sent = false;
    let stop = shutdown::requested();
    tokio::pin!(stop);
    let doc = loop {
        let doc = run_document(client, run_id).await?;
        report_progress(&doc.tasks, &mut seen, &progress_tx);
        if doc.run.state.is_terminal() {
            break doc;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut stop, if !terminate_sent => {
                terminate_sent = true;
                eprintln!("\ncanceling the run (killing its tasks)…");
                client.post_json(&format!("/runs/{run_id}:terminate"), &json!({})).await.map_err(api_error)?;
            }
        }
    };
    drop(progress_tx);
    let _ = display.await;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&json!({"run": doc.raw["run"], "tasks": doc.raw["tasks"]}))?);
    } else {
        crate::summarize(&doc.run, &doc.tasks, &format!("secondrow --server {} logs {}", client.server(), doc.run.id));
    }
    Ok(match doc.run.state {
        RunState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// Progress events for what changed since the last poll (executable tasks only, as the engine reports).
fn report_progress(tasks: &[TaskRecord], seen: &mut HashMap<String, TaskState>, tx: &mpsc::UnboundedSender<Progress>) {
    for t in tasks.iter().filter(|t| matches!(t.kind.as_str(), "container" | "importer")) {
        let before = seen.insert(t.id.clone(), t.state);
        if before.is_none() {
            let _ = tx.send(Progress::Planned { count: 1 });
        }
        if before == Some(t.state) {
            continue;
        }
        if t.state == TaskState::Running || (t.state.is_terminal() && before.is_none() && t.started_at.is_some()) {
            let _ = tx.send(Progress::Started {
                path: t.path.clone(),
                display_name: t.display_name.clone(),
                attempt: t.attempts,
            });
        }
        if t.state.is_terminal() {
            let duration_ms = match (t.started_at, t.finished_at) {
                (Some(s), Some(e)) => u64::try_from(e - s).unwrap_or(0),
                _ => 0,
            };
            let _ = tx.send(Progress::Finished {
                path: t.path.clone(),
                display_name: t.display_name.clone(),
                state: t.state,
                duration_ms,
                error: t.error.clone(),
            });
        }
    }
}

async fn list(client: &Client, limit: i64, json_out: bool) -> Result<ExitCode> {
    let raw = client.get_json_query("/secondrow/runs", &[("limit", limit.to_string())]).await.map_err(api_error)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&raw)?);
    } else {
        let runs: Vec<RunRecord> = serde_json::from_value(raw).context("reading the server's run list")?;
        crate::print_runs(&runs);
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(client: &Client, run_id: &str, json_out: bool) -> Result<ExitCode> {
    let doc = run_document(client, run_id).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&doc.raw)?);
    } else {
        crate::print_run(&doc.run, &doc.tasks);
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(client: &Client, run_id: &str, task: Option<&str>) -> Result<ExitCode> {
    let run_id = run_document(client, run_id).await?.run.id;
    let query: Vec<(&str, String)> = task.map(|t| ("task", t.to_owned())).into_iter().collect();
    let text = client.get_bytes(&format!("/runs/{run_id}/logs"), &query).await.map_err(api_error)?;
    print!("{}", String::from_utf8_lossy(&text));
    Ok(ExitCode::SUCCESS)
}

async fn artifacts(client: &Client, run_id: &str, download: Option<&Path>, json_out: bool) -> Result<ExitCode> {
    let doc = run_document(client, run_id).await?;
    let path_of = |task_id: &Option<String>| {
        doc.tasks.iter().find(|t| Some(&t.id) == task_id.as_ref()).map(|t| t.path.clone()).unwrap_or_default()
    };
    if let Some(dest) = download {
        let mut n = 0;
        for a in &doc.artifacts {
            let target = dest.join(path_of(&a.task_id)).join(&a.name);
            n += download_one(client, a, &target).await?;
            crate::write_artifact_metadata(&target, a)?;
        }
        eprintln!("downloaded {n} files of {} artifacts into {}", doc.artifacts.len(), dest.display());
    } else if json_out {
        println!("{}", serde_json::to_string_pretty(&doc.raw["artifacts"])?);
    } else {
        crate::print_artifacts(&doc.artifacts, &doc.tasks);
    }
    Ok(ExitCode::SUCCESS)
}

/// Downloads one artifact to `target` (a directory arrives as .tar.gz and is unpacked there); returns the
/// number of files written. Metadata-only artifacts (404) write nothing.
async fn download_one(client: &Client, a: &ArtifactRecord, target: &Path) -> Result<usize> {
    let partial = target.with_file_name(format!(".{}.download", a.name));
    let (content_type, _) = match client.download(&format!("/artifacts/{}:download", a.id), &partial).await {
        Ok(got) => got,
        Err(e) if e.status() == Some(404) => return Ok(0),
        Err(e) => return Err(api_error(e)).context(format!("downloading {}", a.uri)),
    };
    if content_type != "application/gzip" {
        std::fs::rename(&partial, target).with_context(|| format!("writing {}", target.display()))?;
        return Ok(1);
    }
    let (archive, dir) = (partial.clone(), target.to_path_buf());
    let unpacked = tokio::task::spawn_blocking(move || unpack(&archive, &dir)).await?;
    let _ = std::fs::remove_file(&partial);
    unpacked.with_context(|| format!("unpacking {} into {}", a.uri, target.display()))
}

/// Unpacks a .tar.gz of plain files and folders into `dir`; entries that would leave `dir` are refused.
fn unpack(archive: &Path, dir: &Path) -> Result<usize> {
    let file = std::fs::File::open(archive)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    std::fs::create_dir_all(dir)?;
    let mut files = 0;
    for entry in tar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(Failure::internal(format!("unexpected entry type {kind:?} in the archive")));
        }
        // `unpack_in` refuses `..` and absolute paths.
        if !entry.unpack_in(dir)? {
            return Err(Failure::internal(format!(
                "archive entry `{}` leaves the target folder",
                entry.path()?.display()
            )));
        }
        if kind.is_file() {
            files += 1;
        }
    }
    Ok(files)
}

/// `runs get --json` as the server returns it, with the records the printers take.
struct RunDocument {
    raw: Value,
    run: RunRecord,
    tasks: Vec<TaskRecord>,
    artifacts: Vec<ArtifactRecord>,
}

/// Fetches the record view of a run (`run_id` may be a unique prefix).
async fn run_document(client: &Client, run_id: &str) -> Result<RunDocument> {
    if run_id.is_empty() || run_id.contains(['/', '?', '#', '%']) {
        return Err(Failure::new(ErrorKind::NotFound, anyhow::anyhow!("run `{run_id}` not found")));
    }
    let raw = client.get_json(&format!("/secondrow/runs/{run_id}")).await.map_err(api_error)?;
    let parsed: DocJson = serde_json::from_value(raw.clone()).context("reading the server's run document")?;
    Ok(RunDocument { run: parsed.run, tasks: parsed.tasks, artifacts: parsed.artifacts, raw })
}

/// The server's `runs get --json` document: the store's records, as they serialize.
#[derive(Deserialize)]
struct DocJson {
    run: RunRecord,
    #[serde(default)]
    tasks: Vec<TaskRecord>,
    #[serde(default)]
    artifacts: Vec<ArtifactRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cache_reaches_every_dag() {
        let mut doc = json!({
            "root": {"dag": {"tasks": {"a": {"componentRef": {"name": "comp-a"}}}}},
            "components": {"comp-a": {"executorLabel": "exec-a"}, "comp-sub/x": {"dag": {"tasks": {"b": {}}}}},
        });
        disable_cache(&mut doc);
        assert_eq!(doc["root"]["dag"]["tasks"]["a"]["cachingOptions"]["enableCache"], json!(false));
        assert_eq!(doc["components"]["comp-sub/x"]["dag"]["tasks"]["b"]["cachingOptions"]["enableCache"], json!(false));
        let mut wrapped = json!({"pipeline_spec": {"root": {"dag": {"tasks": {"t": {}}}}}, "platform_spec": {}});
        disable_cache(&mut wrapped);
        assert_eq!(
            wrapped["pipeline_spec"]["root"]["dag"]["tasks"]["t"]["cachingOptions"]["enableCache"],
            json!(false)
        );
    }

    #[test]
    fn unpack_refuses_escaping_entries() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&archive).unwrap(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        let data = b"x";
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`; write the raw name to build a hostile archive.
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
        b.into_inner().unwrap().finish().unwrap();
        let out = dir.path().join("out");
        assert!(unpack(&archive, &out).is_err());
        assert!(!dir.path().join("escape").exists());
    }
}

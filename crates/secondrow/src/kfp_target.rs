//! `--target kfp://HOST[:PORT]`: `run`, `runs list` and `runs get` against an existing Kubeflow Pipelines
//! installation, with only calls of the standard KFP v2beta1 REST API (docs/kfp-contract.md): `POST /runs`
//! with the pipeline spec inline, `GET /runs/ID` polled until the run ends (its
//! `run_details.task_details` shown as they change), `GET /runs` for the list, `POST /runs/ID:terminate`
//! on Ctrl-C, and `GET/POST /experiments` for `--experiment`. Nothing SecondRow-specific (`/secondrow/...`)
//! is called, so any KFP 2.x API server takes the same IR a local `secondrow run` takes.
//!
//! `kfp://` is plain HTTP (an in-cluster address or a port-forward); `kfps://` is HTTPS (an ingress or gateway,
//! trusted through the system's roots or `SSL_CERT_FILE`). `--token` is sent as a bearer token, as for
//! `--server`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Client;
use crate::error::{Failure, Result};
use crate::{load_pipeline, shutdown, term, Command, RunArgs, RunsCommand};

/// How often a submitted run is polled.
const POLL: Duration = Duration::from_millis(500);

/// KFP's run states that end a run.
const TERMINAL: [&str; 4] = ["SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"];

/// The base URL of a `kfp://HOST[:PORT][/PREFIX]` (HTTP) or `kfps://…` (HTTPS) target.
pub fn server_url(target: &str) -> Result<String> {
    let (scheme, rest) = if let Some(rest) = target.strip_prefix("kfp://") {
        ("http", rest)
    } else if let Some(rest) = target.strip_prefix("kfps://") {
        ("https", rest)
    } else {
        return Err(Failure::usage(format!(
            "--target `{target}`: expected kfp://HOST[:PORT] (HTTP) or kfps://HOST[:PORT] (HTTPS)"
        )));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(Failure::usage(format!("--target `{target}`: no host")));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Runs `command` against the Kubeflow Pipelines API at `target`.
pub async fn dispatch(target: &str, token: Option<String>, command: &Command) -> Result<ExitCode> {
    let client = Client::new(&server_url(target)?, token)?;
    match command {
        Command::Run(args) => run(&client, target, args).await,
        Command::Runs(RunsCommand::List { limit, json }) => list(&client, *limit, *json).await,
        Command::Runs(RunsCommand::Get { run_id, json }) => get(&client, run_id, *json).await,
        _ => Err(Failure::usage(
            "--target kfp://… supports `run`, `runs list` and `runs get`; use the Kubeflow UI or API for the rest",
        )),
    }
}

async fn run(client: &Client, target: &str, args: &RunArgs) -> Result<ExitCode> {
    // Everything is validated here first: a bad file or parameter never reaches the cluster.
    let pipeline = load_pipeline(&args.pipeline)?;
    let params = pipeline.bind_cli_parameters(&args.params)?;
    let mut spec = secondrow_api::pipelines::spec_document(&pipeline);
    if args.no_cache {
        crate::remote::disable_cache(&mut spec);
    }
    let display_name = args.name.clone().unwrap_or_else(|| pipeline.spec.pipeline_info.name.clone());
    let mut body = json!({
        "display_name": display_name,
        "pipeline_spec": spec,
        "runtime_config": {"parameters": params},
    });
    if let Some(experiment) = &args.experiment {
        body["experiment_id"] = json!(crate::remote::experiment_id(client, experiment).await?);
    }
    let created = client.post_json("/runs", &body).await.map_err(crate::remote::api_error)?;
    let run_id = created["run_id"]
        .as_str()
        .ok_or_else(|| Failure::internal("the answer to POST /runs has no run_id"))?
        .to_owned();
    eprintln!("run {run_id} ({}) submitted to {target}", term::Safe(&display_name));
    follow(client, &run_id, args.exec.json).await
}

/// Polls `GET /runs/ID` until the run ends, printing each task's state changes; Ctrl-C terminates it.
async fn follow(client: &Client, run_id: &str, json_out: bool) -> Result<ExitCode> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut terminate_sent = false;
    let stop = shutdown::requested();
    tokio::pin!(stop);
    let run = loop {
        let run = client.get_json(&format!("/runs/{run_id}")).await.map_err(crate::remote::api_error)?;
        for (name, state) in task_states(&run) {
            if seen.get(&name) != Some(&state) {
                eprintln!("  {:<10} {}", state, term::Safe(&name));
                seen.insert(name, state);
            }
        }
        if TERMINAL.contains(&state_of(&run)) {
            break run;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut stop, if !terminate_sent => {
                terminate_sent = true;
                eprintln!("\nterminating the run…");
                client
                    .post_json(&format!("/runs/{run_id}:terminate"), &json!({}))
                    .await
                    .map_err(crate::remote::api_error)?;
            }
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_run(&run);
    }
    Ok(if state_of(&run) == "SUCCEEDED" { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn state_of(run: &Value) -> &str {
    run["state"].as_str().unwrap_or("RUNTIME_STATE_UNSPECIFIED")
}

/// (display name, state) of every task in `run_details.task_details`, in the server's order.
fn task_states(run: &Value) -> Vec<(String, String)> {
    let Some(tasks) = run.pointer("/run_details/task_details").and_then(Value::as_array) else { return vec![] };
    tasks
        .iter()
        .filter_map(|t| {
            let name = t["display_name"].as_str().or_else(|| t["task_id"].as_str())?;
            Some((name.to_owned(), t["state"].as_str().unwrap_or("PENDING").to_owned()))
        })
        .collect()
}

fn print_run(run: &Value) {
    println!(
        "run {} ({}): {}",
        term::Safe(run["run_id"].as_str().unwrap_or("")),
        term::Safe(run["display_name"].as_str().unwrap_or("")),
        state_of(run)
    );
    if let Some(message) = run.pointer("/error/message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
        println!("  error: {}", term::Safe(message));
    }
    for (name, state) in task_states(run) {
        println!("  {:<10} {}", state, term::Safe(&name));
    }
}

async fn list(client: &Client, limit: i64, json_out: bool) -> Result<ExitCode> {
    let query = [("page_size", limit.to_string()), ("sort_by", "created_at desc".to_owned())];
    let page = client.get_json_query("/runs", &query).await.map_err(crate::remote::api_error)?;
    let runs = page["runs"].as_array().cloned().unwrap_or_default();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&json!({"runs": runs}))?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &runs {
        println!(
            "{}  {:<10} {}  {}",
            term::Safe(r["run_id"].as_str().unwrap_or("")),
            state_of(r),
            term::Safe(r["created_at"].as_str().unwrap_or("")),
            term::Safe(r["display_name"].as_str().unwrap_or(""))
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(client: &Client, run_id: &str, json_out: bool) -> Result<ExitCode> {
    if run_id.is_empty() || run_id.contains(['/', '?', '#']) {
        return Err(Failure::usage(format!("run id `{run_id}` is not an id")));
    }
    let run = client.get_json(&format!("/runs/{run_id}")).await.map_err(crate::remote::api_error)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_run(&run);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_http_and_https_urls() {
        assert_eq!(server_url("kfp://ml-pipeline.kubeflow:8888").unwrap(), "http://ml-pipeline.kubeflow:8888");
        assert_eq!(server_url("kfp://kfp.example.org/").unwrap(), "http://kfp.example.org");
        assert_eq!(server_url("kfp://127.0.0.1:3000/pipeline").unwrap(), "http://127.0.0.1:3000/pipeline");
        assert_eq!(
            server_url("kfps://kubeflow.example.org/pipeline").unwrap(),
            "https://kubeflow.example.org/pipeline"
        );
        for bad in ["http://x", "https://x", "kfp://", "kfps://", "kfp:///x", "x"] {
            assert!(server_url(bad).is_err(), "{bad}");
        }
    }
}

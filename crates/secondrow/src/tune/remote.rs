//! `secondrow --server URL tune …`: the same commands against a running `secondrow server`, through its
//! tuning API (`/apis/kubeflow.org/v1beta1/namespaces/NS/experiments`, `secondrow_api::tuning`). The
//! experiment is validated here first (exit 2 before anything is sent); `tune FILE` and `tune resume` follow
//! the experiment by polling until it ends, with the exit codes of local mode.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use secondrow_store::tuning::TuningTrial;

use crate::client::{Client, ClientError};
use crate::error::{Failure, Result};
use crate::term::{Safe, SafeText};

use super::TuneCommand;

/// The tuning API's root, relative to the client's `/apis/v2beta1` base (URLs resolve the `..`).
const ROOT: &str = "/../kubeflow.org/v1beta1/namespaces";
const POLL: Duration = Duration::from_millis(400);

fn api_error(e: ClientError) -> Failure {
    match (&e, e.status()) {
        (ClientError::Api { message, .. }, Some(400..=499)) => {
            Failure::new(e.kind(), anyhow::Error::msg(message.clone()))
        }
        _ => e.into(),
    }
}

fn path(ns: &str, rest: &str) -> String {
    format!("{ROOT}/{ns}/experiments{rest}")
}

/// Sends a validated experiment document (YAML text) and follows it.
pub async fn create(client: &Client, namespace: &str, text: &str, json_out: bool) -> Result<ExitCode> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| Failure::usage(format!("experiment: {e}")))?;
    let created = client.post_json(&path(namespace, ""), &doc).await.map_err(api_error)?;
    let name = created["experiment"]["name"].as_str().unwrap_or_default().to_owned();
    eprintln!("experiment {} (namespace {namespace}) created on {}", Safe(&name), Safe(client.server()));
    follow(client, namespace, &name, json_out).await
}

pub async fn command(client: &Client, cmd: TuneCommand) -> Result<ExitCode> {
    match cmd {
        TuneCommand::List { namespace, json } => {
            let ns = namespace.unwrap_or_else(|| "default".into());
            let doc = client.get_json(&path(&ns, "")).await.map_err(api_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc["experiments"])?);
            } else {
                println!("{:<16}  {:<32}  {:<10}  BEST TRIAL", "NAMESPACE", "NAME", "STATE");
                for e in doc["experiments"].as_array().into_iter().flatten() {
                    let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
                    println!(
                        "{:<16}  {:<32}  {:<10}  {}",
                        Safe(&s("namespace")),
                        Safe(&s("name")),
                        Safe(&s("state")),
                        Safe(&s("optimalTrial"))
                    );
                }
            }
        }
        TuneCommand::Get { name, namespace, json } => {
            let doc = client.get_json(&path(&namespace, &format!("/{name}"))).await.map_err(api_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                let e = &doc["experiment"];
                println!("Experiment: {} (namespace {})", Safe(&name), Safe(&namespace));
                println!("State:      {}", Safe(e["state"].as_str().unwrap_or("")));
                if let Some(r) = e["reason"].as_str() {
                    println!("Reason:     {} {}", Safe(r), SafeText(e["message"].as_str().unwrap_or("")));
                }
                println!("Best trial: {}", Safe(e["optimalTrial"].as_str().unwrap_or("-")));
            }
        }
        TuneCommand::Trials { name, namespace, json } => {
            let doc = client.get_json(&path(&namespace, &format!("/{name}/trials"))).await.map_err(api_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc["trials"])?);
            } else {
                super::print_trials(&trials_of(&doc["trials"])?);
            }
        }
        TuneCommand::Stop { name, namespace } => {
            client.post_json(&path(&namespace, &format!("/{name}/stop")), &json!({})).await.map_err(api_error)?;
            eprintln!("experiment {} stopped", Safe(&name));
        }
        TuneCommand::Resume { name, namespace, exec, .. } => {
            client.post_json(&path(&namespace, &format!("/{name}/resume")), &json!({})).await.map_err(api_error)?;
            eprintln!("resuming experiment {}", Safe(&name));
            return follow(client, &namespace, &name, exec.json).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn trials_of(v: &Value) -> Result<Vec<TuningTrial>> {
    // The wire form is the store's record (camelCase); the state and assignments are what we print.
    let list = v.as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for t in list {
        let s = |k: &str| t[k].as_str().map(str::to_owned);
        out.push(TuningTrial {
            id: s("id").unwrap_or_default(),
            experiment_id: s("experimentId").unwrap_or_default(),
            seq: t["seq"].as_i64().unwrap_or_default(),
            name: s("name").unwrap_or_default(),
            assignments: serde_json::from_value(t["assignments"].clone()).unwrap_or_default(),
            state: serde_json::from_value(t["state"].clone())
                .map_err(|e| Failure::internal(format!("trial state from the server: {e}")))?,
            run_id: s("runId"),
            observations: Vec::new(),
            objective: t["objective"].as_f64(),
            reason: s("reason"),
            message: s("message"),
            created_at: t["createdAt"].as_i64().unwrap_or_default(),
            started_at: t["startedAt"].as_i64(),
            finished_at: t["finishedAt"].as_i64(),
        });
    }
    Ok(out)
}

/// Polls the experiment until it leaves Created/Running, printing each trial's end and the best so far.
async fn follow(client: &Client, namespace: &str, name: &str, json_out: bool) -> Result<ExitCode> {
    let stop = crate::shutdown::requested();
    tokio::pin!(stop);
    let mut reported = std::collections::HashSet::new();
    loop {
        let doc = client.get_json(&path(namespace, &format!("/{name}"))).await.map_err(api_error)?;
        for t in doc["trials"].as_array().into_iter().flatten() {
            let state = t["state"].as_str().unwrap_or("");
            let tname = t["name"].as_str().unwrap_or("").to_owned();
            if !matches!(state, "Created" | "Running") && reported.insert(tname.clone()) {
                let mut line = format!("  {state:<9} {}", Safe(&tname));
                if let Some(v) = t["objective"].as_f64() {
                    line.push_str(&format!("  objective {v}"));
                }
                if let (Some(m), false) = (t["message"].as_str(), state == "Succeeded") {
                    line.push_str(&format!(": {}", SafeText(m)));
                }
                eprintln!("{line}");
            }
        }
        let e = &doc["experiment"];
        let state = e["state"].as_str().unwrap_or("").to_owned();
        if !matches!(state.as_str(), "Created" | "Running") {
            if json_out {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
            eprintln!(
                "experiment {} {state}: {}",
                Safe(name),
                SafeText(e["message"].as_str().or(e["reason"].as_str()).unwrap_or(""))
            );
            if let Some(best) = e["optimalTrial"].as_str() {
                eprintln!("best trial {}", Safe(best));
            }
            return Ok(if state == "Succeeded" { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        tokio::select! {
            _ = &mut stop => {
                eprintln!("\nstopped following; the experiment keeps running on the server (`secondrow tune stop {name}` stops it)");
                return Ok(ExitCode::from(1));
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

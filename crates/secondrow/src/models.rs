//! `secondrow models`: the model registry — registered models, their versions (with lineage back to
//! the run that trained them, and the deployments serving them), registering and archiving.
//!
//! Without `--server` the commands use the local store (namespace `--namespace`, default `""`, the admin's); with `--server`
//! they go through the server's SecondRow endpoints (`/apis/v2beta1/secondrow/models…`), under the
//! token's namespace. Both print the same records.

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use secondrow_api::registry::{archive, model_document, model_named, register, RegisterRequest, RegisterSource};
use secondrow_store::registry::Page;
use secondrow_store::{ArtifactStore, Store};

use super::client::Client;
use super::error::{Failure, Result};
use super::term::Safe;
use super::{fmt_time, Home, Settings};

#[derive(Args)]
pub struct ModelsArgs {
    /// The namespace of the models (local store only; through `--server` the token decides). Default `""`,
    /// the admin's.
    #[arg(long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every registered model.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One registered model with its versions.
    Get {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// A registered model's versions: state, metrics, lineage and deployments.
    Versions {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Register a version of NAME (the model is created when missing) from a run's model artifact (lineage
    /// recorded: run, task, artifact and the task's metrics) or from a URI.
    Register(Box<RegisterArgs>),
    /// Archive a version (or, without --version, the model and all its versions). A deployed version is refused.
    Archive {
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["artifact_id", "run", "uri"])))]
pub struct RegisterArgs {
    pub name: String,
    /// The version's name (unique within the model).
    #[arg(long)]
    pub version: String,
    /// A `system.Model` artifact id.
    #[arg(long)]
    pub artifact_id: Option<String>,
    /// A run id (or unique prefix); with --task and --output.
    #[arg(long, requires_all = ["task", "output"])]
    pub run: Option<String>,
    /// The task (path, key or display name) of --run.
    #[arg(long, requires = "run")]
    pub task: Option<String>,
    /// The task's output artifact name (for example `model`).
    #[arg(long, requires = "run")]
    pub output: Option<String>,
    /// Any model URI (`s3://…`, or a file under the artifact root); no lineage.
    #[arg(long)]
    pub uri: Option<String>,
    /// Model format (default: `onnx` for `.onnx` files, else `secondrow`).
    #[arg(long)]
    pub format: Option<String>,
    #[arg(long)]
    pub format_version: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub author: Option<String>,
    #[arg(long)]
    pub json: bool,
}

enum Target {
    Local(Store, ArtifactStore),
    Remote(Client),
}

pub async fn run(settings: &Settings, args: ModelsArgs) -> Result<ExitCode> {
    let ModelsArgs { namespace, command } = args;
    let target = match settings.server.as_deref() {
        Some(_) if namespace.is_some() => {
            return Err(Failure::usage(
                "--namespace is for the local store; through --server the token's namespace is used",
            ))
        }
        Some(server) => Target::Remote(Client::new(server, settings.token.clone())?),
        None => {
            let home = Home::resolve(settings)?;
            Target::Local(home.store().await?, home.artifacts().await?)
        }
    };
    let ns = namespace.as_deref().unwrap_or("");
    match command {
        ModelsCommand::List { json } => {
            let models = match &target {
                Target::Remote(c) => c.get_json("/secondrow/models").await?,
                Target::Local(store, _) => {
                    let all = Page { limit: i64::MAX, ..Page::default() };
                    json!(store.list_registered_models(namespace.as_deref(), &all).await?)
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else {
                println!("{:<6}  {:<28}  {:<9}  {:<12}  CREATED", "ID", "NAME", "STATE", "NAMESPACE");
                for m in models.as_array().map(Vec::as_slice).unwrap_or_default() {
                    println!(
                        "{:<6}  {:<28}  {:<9}  {:<12}  {}",
                        m["id"],
                        text(&m["name"]),
                        text(&m["state"]),
                        text(&m["namespace"]),
                        fmt_time(m["created_at"].as_i64().unwrap_or(0))
                    );
                }
            }
        }
        ModelsCommand::Get { name, json } | ModelsCommand::Versions { name, json } => {
            let doc = document(&target, ns, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_model(&doc);
            }
        }
        ModelsCommand::Register(args) => {
            let RegisterArgs {
                name,
                version,
                artifact_id,
                run,
                task,
                output,
                uri,
                format,
                format_version,
                description,
                author,
                json,
            } = *args;
            let source = match (artifact_id, run, task, output, uri) {
                (Some(artifact_id), ..) => RegisterSource::Artifact { artifact_id },
                (None, Some(run_id), Some(task), Some(output), _) => {
                    RegisterSource::TaskOutput { run_id, task, output }
                }
                (.., Some(uri)) => RegisterSource::Uri { uri },
                _ => return Err(Failure::usage("give --artifact-id, --run with --task and --output, or --uri")),
            };
            let req = RegisterRequest {
                version,
                source,
                model_format_name: format,
                model_format_version: format_version,
                description,
                author,
            };
            let reg = match &target {
                Target::Remote(c) => {
                    c.post_json(&format!("/secondrow/models/{}/versions", encode(&name)), &serde_json::to_value(&req)?)
                        .await?
                }
                Target::Local(store, artifacts) => {
                    json!(register(store, artifacts, ns, &name, &req, |_, _| Ok(())).await?)
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&reg)?);
            } else {
                eprintln!(
                    "registered {} version {} (id {})",
                    text(&reg["model"]["name"]),
                    text(&reg["version"]["name"]),
                    reg["version"]["id"]
                );
            }
        }
        ModelsCommand::Archive { name, version } => {
            match &target {
                Target::Remote(c) => {
                    c.post_json(&format!("/secondrow/models/{}/archive", encode(&name)), &json!({"version": version}))
                        .await?;
                }
                Target::Local(store, _) => {
                    archive(store, ns, &name, version.as_deref()).await?;
                }
            }
            match version {
                Some(v) => eprintln!("archived {} version {}", Safe(&name), Safe(&v)),
                None => eprintln!("archived {} and its versions", Safe(&name)),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn document(target: &Target, namespace: &str, name: &str) -> Result<Value> {
    Ok(match target {
        Target::Remote(c) => c.get_json(&format!("/secondrow/models/{}", encode(name))).await?,
        Target::Local(store, _) => model_document(store, &model_named(store, namespace, name).await?).await?,
    })
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn text(v: &Value) -> String {
    v.as_str().map(|s| Safe(s).to_string()).unwrap_or_else(|| "-".to_owned())
}

fn print_model(doc: &Value) {
    let m = &doc["model"];
    println!("Model:       {} (id {})", text(&m["name"]), m["id"]);
    println!("State:       {}", text(&m["state"]));
    if let Some(d) = m["description"].as_str() {
        println!("Description: {}", Safe(d));
    }
    println!();
    println!("{:<6}  {:<12}  {:<9}  {:<30}  {:<24}  DEPLOYED AS", "ID", "VERSION", "STATE", "METRICS", "FROM RUN/TASK");
    for v in doc["versions"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let metrics = v["lineage"]["metrics"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{}={v}", Safe(k))).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        let from = match (v["lineage"]["run_id"].as_str(), v["lineage"]["task"].as_str()) {
            (Some(run), task) => format!("{}/{}", Safe(&run[..run.len().min(8)]), Safe(task.unwrap_or("-"))),
            _ => "-".to_owned(),
        };
        let deployed: Vec<String> = v["deployments"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|d| format!("{}:{}", text(&d["deployment"]), text(&d["version"])))
            .collect();
        println!(
            "{:<6}  {:<12}  {:<9}  {:<30}  {:<24}  {}",
            v["id"],
            text(&v["name"]),
            text(&v["state"]),
            if metrics.is_empty() { "-".to_owned() } else { metrics },
            from,
            if deployed.is_empty() { "-".to_owned() } else { deployed.join(",") }
        );
        for a in v["artifacts"].as_array().map(Vec::as_slice).unwrap_or_default() {
            println!("{:<6}  artifact {}: {}", "", text(&a["model_format_name"]), text(&a["uri"]));
        }
    }
}

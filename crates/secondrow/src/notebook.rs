//! `secondrow notebook`: managed JupyterLab servers, run by `secondrow server` (the supervisor and the proxy
//! live in `secondrow_api::notebooks`); this command talks to the server's `/apis/v2beta1/notebooks`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::Client;
use secondrow_error::ErrorKind;

use crate::error::{Context as _, Failure, Result};

use super::Settings;

/// The server a notebook command talks to without `--server`.
const DEFAULT_SERVER: &str = "http://127.0.0.1:8888";

/// `secondrow server`'s notebook settings.
#[derive(Args)]
pub struct NotebookServerArgs {
    /// Stop (cull) a notebook whose kernels were idle this many seconds, as Kubeflow's culler does; the
    /// notebook is kept, in state Culled, and `notebook start` brings it back. Default: never.
    #[arg(long, env = "SECONDROW_NOTEBOOK_CULL_IDLE_SECS", value_name = "SECS")]
    notebook_cull_idle: Option<u64>,
    /// How often the culler looks at the notebooks' kernels.
    #[arg(long, env = "SECONDROW_NOTEBOOK_CULL_CHECK_SECS", value_name = "SECS", default_value_t = 60)]
    notebook_cull_check: u64,
}

/// Sets the notebooks up on a bound API listener, restarts those the previous server left running and
/// starts the culler. Returns a line for the server's log.
pub async fn start_notebooks(
    state: &secondrow_api::AppState,
    home: &Path,
    addr: SocketAddr,
    args: &NotebookServerArgs,
) -> Result<String> {
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    state.notebooks.configure(secondrow_api::notebooks::NotebookSettings {
        root: home.join("notebooks"),
        api_url: format!("http://{host}:{}", addr.port()),
        inference_url: state.deployments.url().map(str::to_owned),
        cull_after: args.notebook_cull_idle.map(Duration::from_secs),
        check_every: Duration::from_secs(args.notebook_cull_check.max(1)),
    });
    let restarted = secondrow_api::notebooks::recover(state).await.context("restarting notebooks")?;
    tokio::spawn(secondrow_api::notebooks::culler(state.clone()));
    Ok(format!(
        "notebooks: restarted {restarted}; culling {}",
        args.notebook_cull_idle.map(|s| format!("after {s} s idle")).unwrap_or_else(|| "off".to_owned())
    ))
}

#[derive(Subcommand)]
pub enum NotebookCommand {
    /// Create a notebook (a JupyterLab server at /notebook/NS/NAME/ on the server) and start it.
    Create {
        name: String,
        /// Default: the token's namespace (`default` for the admin and an open server).
        #[arg(long)]
        namespace: Option<String>,
        /// Packages installed with jupyterlab into a cached environment: "pandas scikit-learn".
        #[arg(long)]
        packages: Option<String>,
        /// An interpreter that already has jupyterlab (nothing is installed).
        #[arg(long, conflicts_with = "packages")]
        python: Option<String>,
        /// Return at once instead of waiting until the notebook answers.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every notebook (the token's namespace's, with a namespace token).
    List {
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One notebook: state, reason, URL, environment.
    Get {
        name: String,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Stop a notebook (its workspace stays).
    Stop {
        name: String,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Start a stopped, culled or failed notebook.
    Start {
        name: String,
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Delete a notebook and (without --keep-workspace) its workspace.
    Delete {
        name: String,
        #[arg(long)]
        namespace: Option<String>,
        #[arg(long)]
        keep_workspace: bool,
    },
    /// The Jupyter server's log.
    Logs {
        name: String,
        #[arg(long)]
        namespace: Option<String>,
    },
}

pub async fn run(settings: &Settings, cmd: NotebookCommand) -> Result<ExitCode> {
    let client = Client::new(settings.server.as_deref().unwrap_or(DEFAULT_SERVER), settings.token.clone())?;
    // A notebook command without --namespace names the token's own namespace, which only the server knows:
    // find the notebook by name in what the caller may list.
    let path = |ns: &str, name: &str| format!("/notebooks/{ns}/{name}");
    match cmd {
        NotebookCommand::Create { name, namespace, packages, python, no_wait, json } => {
            let mut body = json!({ "name": name });
            if let Some(ns) = namespace {
                body["namespace"] = json!(ns);
            }
            if let Some(p) = packages {
                body["packages"] = json!(p);
            }
            if let Some(p) = python {
                body["python"] = json!(p);
            }
            let mut nb = client.post_json("/notebooks", &body).await?;
            if !no_wait {
                nb = wait_running(&client, &nb).await?;
            }
            print_one(&nb, json);
        }
        NotebookCommand::List { namespace, json } => {
            let query: Vec<(&str, String)> = namespace.map(|n| ("namespace", n)).into_iter().collect();
            let all = client.get_json_query("/notebooks", &query).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all["notebooks"]).unwrap_or_default());
            } else {
                println!("{:<20} {:<24} {:<9} URL", "NAMESPACE", "NAME", "STATE");
                for nb in all["notebooks"].as_array().into_iter().flatten() {
                    println!(
                        "{:<20} {:<24} {:<9} {}",
                        shown(nb, "namespace"),
                        shown(nb, "name"),
                        shown(nb, "state"),
                        shown(nb, "url")
                    );
                }
            }
        }
        NotebookCommand::Get { name, namespace } => {
            let ns = resolve_ns(&client, &name, namespace).await?;
            print_one(&client.get_json(&path(&ns, &name)).await?, true);
        }
        NotebookCommand::Stop { name, namespace } => {
            let ns = resolve_ns(&client, &name, namespace).await?;
            print_one(&client.post_json(&format!("{}/stop", path(&ns, &name)), &json!({})).await?, false);
        }
        NotebookCommand::Start { name, namespace } => {
            let ns = resolve_ns(&client, &name, namespace).await?;
            let nb = client.post_json(&format!("{}/start", path(&ns, &name)), &json!({})).await?;
            print_one(&wait_running(&client, &nb).await?, false);
        }
        NotebookCommand::Delete { name, namespace, keep_workspace } => {
            let ns = resolve_ns(&client, &name, namespace).await?;
            let q = if keep_workspace { "?keep_workspace=true" } else { "" };
            client.delete(&format!("{}{q}", path(&ns, &name))).await?;
            let kept = if keep_workspace { " (workspace kept)" } else { "" };
            println!("deleted notebook {}/{}{kept}", crate::term::Safe(&ns), crate::term::Safe(&name));
        }
        NotebookCommand::Logs { name, namespace } => {
            let ns = resolve_ns(&client, &name, namespace).await?;
            let bytes = client.get_bytes(&format!("{}/logs", path(&ns, &name)), &[]).await?;
            print!("{}", String::from_utf8_lossy(&bytes));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// A field of the server's answer, safe for the terminal (one line, control characters escaped).
fn shown(v: &Value, k: &str) -> String {
    crate::term::Safe(s(v, k)).to_string()
}

/// The namespace of notebook `name`: as given, else the one notebook of that name the caller can list.
async fn resolve_ns(client: &Client, name: &str, namespace: Option<String>) -> Result<String> {
    if let Some(ns) = namespace {
        return Ok(ns);
    }
    let all = client.get_json("/notebooks").await?;
    let found: Vec<&str> = all["notebooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|nb| s(nb, "name") == name)
        .map(|nb| s(nb, "namespace"))
        .collect();
    match found.as_slice() {
        [ns] => Ok((*ns).to_owned()),
        [] => Err(Failure::new(ErrorKind::NotFound, anyhow::Error::msg(format!("no notebook `{name}`")))),
        _ => Err(Failure::usage(format!(
            "notebook `{name}` exists in several namespaces ({}): pass --namespace",
            found.join(", ")
        ))),
    }
}

/// Polls until the notebook is Running (or ended in another state, which is an error with its reason).
async fn wait_running(client: &Client, nb: &Value) -> Result<Value> {
    let p = format!("/notebooks/{}/{}", s(nb, "namespace"), s(nb, "name"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let nb = client.get_json(&p).await?;
        match s(&nb, "state") {
            "Running" => return Ok(nb),
            "Starting" if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await
            }
            "Starting" => {
                return Err(Failure::new(
                    ErrorKind::Unavailable,
                    anyhow::Error::msg(format!("notebook {p} is still starting after 300 s")),
                ))
            }
            other => {
                return Err(Failure::new(
                    ErrorKind::FailedPrecondition,
                    anyhow::Error::msg(format!(
                        "notebook {} is {other}: {}",
                        shown(&nb, "name"),
                        crate::term::SafeText(nb["reason"].as_str().unwrap_or("no reason recorded"))
                    )),
                ))
            }
        }
    }
}

fn print_one(nb: &Value, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(nb).unwrap_or_default());
    } else {
        println!(
            "notebook {}/{}: {} at {}",
            shown(nb, "namespace"),
            shown(nb, "name"),
            shown(nb, "state"),
            shown(nb, "url")
        );
    }
}

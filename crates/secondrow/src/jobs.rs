//! `secondrow job`: distributed training jobs written as Kubeflow Training Operator v1 YAML (`PyTorchJob`,
//! `TFJob`, `MPIJob`, `JAXJob`, `XGBoostJob`), run on this machine as one process per replica
//! (`secondrow_engine::training`). `submit` records the job and leaves a supervisor running it in the
//! background (or, with `--follow`, supervises it in the foreground and exits 0 when it succeeds, 1 when it
//! fails); `get` prints it as `kubectl get <kind> -o yaml` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use secondrow_engine::training::{self, Stopped};
use secondrow_store::{TrainingJobRecord, TrainingJobState};

use crate::error::{Context as _, Failure, Result};

use super::{Home, Settings};

#[derive(Subcommand)]
pub enum JobCommand {
    /// Submit a job (kubeflow.org/v1 YAML); a supervisor runs its replicas in the background.
    Submit {
        /// The job's YAML file (or `--yaml`).
        #[arg(required_unless_present = "yaml")]
        file: Option<PathBuf>,
        /// The job's YAML as text (the `training_job` pipeline component passes it so).
        #[arg(long, conflicts_with = "file")]
        yaml: Option<String>,
        /// Append `-` and 8 random hex digits to `metadata.name` (a pipeline that runs the same job each time).
        #[arg(long)]
        generate_name: bool,
        /// With `--follow`: write the job's final `status` (JSON) here.
        #[arg(long, requires = "follow")]
        status_file: Option<PathBuf>,
        /// With `--follow`: rank 0's `SECONDROW_OUTPUT_DIR` (the other replicas get folders of their own).
        #[arg(long, requires = "follow")]
        output_dir: Option<PathBuf>,
        /// Run the job in the foreground, printing its progress; exit 0 when it succeeds, 1 when it fails.
        #[arg(long)]
        follow: bool,
        /// The namespace (default: the document's `metadata.namespace`, else the default namespace).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Jobs in a namespace (or, with `--all-namespaces`, every one): name, kind, state, age; `--json`: the
    /// records with every replica's state, pid, restarts, exit code and log file.
    List {
        #[arg(long, default_value = "")]
        namespace: String,
        #[arg(long, short = 'A')]
        all_namespaces: bool,
        #[arg(long)]
        json: bool,
    },
    /// A job as `kubectl get <kind> NAME -o yaml` shows it (spec and status: conditions, replicaStatuses).
    Get {
        name: String,
        #[arg(long, default_value = "")]
        namespace: String,
        /// `yaml` or `json`.
        #[arg(long, short = 'o', default_value = "yaml")]
        output: String,
    },
    /// A job's logs: every replica's, or one's (`--replica worker-1`).
    Logs {
        name: String,
        #[arg(long)]
        replica: Option<String>,
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Stop a job's processes and delete it.
    Delete {
        name: String,
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Run a submitted job's supervisor (what `submit` starts in the background).
    #[command(hide = true)]
    Supervise { id: String },
}

fn jobs_dir(home: &Home) -> PathBuf {
    home.root.join("jobs")
}

/// `pytorchjob.kubeflow.org/NAME`.
fn object_name(rec: &TrainingJobRecord) -> String {
    format!("{}.kubeflow.org/{}", rec.kind.to_ascii_lowercase(), rec.name)
}

pub async fn run(settings: &Settings, cmd: JobCommand) -> Result<ExitCode> {
    let home = Home::resolve(settings)?;
    let store = home.store().await?;
    match cmd {
        JobCommand::Submit { file, yaml, generate_name, status_file, output_dir, follow, namespace } => {
            let mut yaml = match (file, yaml) {
                (_, Some(text)) => text,
                (Some(file), None) => {
                    std::fs::read_to_string(&file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?
                }
                (None, None) => return Err(Failure::usage("give the job's YAML file or --yaml")),
            };
            if generate_name {
                yaml = with_generated_name(&yaml)?;
            }
            let rec = training::submit(&store, &jobs_dir(&home), &yaml, namespace.as_deref())
                .await
                .map_err(|e| Failure::new(e.kind(), e))?;
            println!("{} created", object_name(&rec));
            if !follow {
                let exe = std::env::current_exe()?;
                let argv = vec![exe.display().to_string(), "job".into(), "supervise".into(), rec.id.clone()];
                let env = vec![
                    ("SECONDROW_HOME".to_owned(), home.root.display().to_string()),
                    ("SECONDROW_DATABASE_URL".to_owned(), home.database_url.clone()),
                ];
                let log = job_folder(&rec).join("supervisor.log");
                secondrow_engine::process::spawn_detached(&argv, &env, &log)?;
                return Ok(ExitCode::SUCCESS);
            }
            let (cancel, _signals) = crate::shutdown::cancel_on_signal(None);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            let name = rec.name.clone();
            let printer = tokio::spawn(async move {
                while let Some(line) = rx.recv().await {
                    eprintln!("{name}: {line}");
                }
            });
            let end = training::supervise_with_output(&store, &rec.id, cancel, Some(tx), output_dir, true).await;
            let _ = printer.await;
            if let Some(path) = status_file {
                let rec = store.training_job_by_id(&rec.id).await?;
                std::fs::write(&path, serde_json::to_string(&rec.status)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            match end.map_err(|e| Failure::new(e.kind(), e))? {
                Stopped::Finished(TrainingJobState::Succeeded) => Ok(ExitCode::SUCCESS),
                Stopped::Elsewhere => {
                    eprintln!("{}: a server claimed the job first and runs it", crate::term::Safe(&rec.name));
                    Ok(ExitCode::from(1))
                }
                Stopped::Finished(_) | Stopped::Deleted | Stopped::Cancelled => Ok(ExitCode::from(1)),
            }
        }
        JobCommand::Supervise { id } => {
            let (cancel, _signals) = crate::shutdown::cancel_on_signal(None);
            training::supervise(&store, &id, cancel, None).await.map_err(|e| Failure::new(e.kind(), e))?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List { namespace, all_namespaces, json } => {
            let jobs = store.list_training_jobs(if all_namespaces { None } else { Some(&namespace) }).await?;
            if json {
                // The records as stored: with each replica's state, process, restarts, exit code and log file.
                println!("{}", serde_json::to_string_pretty(&jobs)?);
                return Ok(ExitCode::SUCCESS);
            }
            let now = secondrow_store::now_ms();
            if all_namespaces {
                println!("{:<16} {:<24} {:<12} {:<12} AGE", "NAMESPACE", "NAME", "KIND", "STATE");
            } else {
                println!("{:<24} {:<12} {:<12} AGE", "NAME", "KIND", "STATE");
            }
            for j in &jobs {
                let age = format!("{}s", (now - j.created_at).max(0) / 1000);
                let ns = if j.namespace.is_empty() { "default" } else { &j.namespace };
                if all_namespaces {
                    println!("{ns:<16} {:<24} {:<12} {:<12} {age}", j.name, j.kind, j.state.as_str());
                } else {
                    println!("{:<24} {:<12} {:<12} {age}", j.name, j.kind, j.state.as_str());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Get { name, namespace, output } => {
            let rec = store.get_training_job(&namespace, &name).await?;
            let doc = training::document(&rec);
            match output.as_str() {
                "json" => println!("{}", serde_json::to_string_pretty(&doc)?),
                "yaml" => print!("{}", serde_yaml_ng::to_string(&doc).map_err(Failure::internal)?),
                other => return Err(Failure::usage(format!("--output {other}: expected yaml or json"))),
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Logs { name, replica, namespace } => {
            let rec = store.get_training_job(&namespace, &name).await?;
            print!("{}", training::render_logs(&rec, replica.as_deref()).map_err(|e| Failure::new(e.kind(), e))?);
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Delete { name, namespace } => {
            let rec = store.get_training_job(&namespace, &name).await?;
            training::delete(&store, &rec).await.map_err(|e| Failure::new(e.kind(), e))?;
            println!("{} deleted", object_name(&rec));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `yaml` with `-` and 8 random hex digits appended to `metadata.name`.
fn with_generated_name(yaml: &str) -> Result<String> {
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(yaml).map_err(|e| Failure::usage(format!("job is not a valid document: {e}")))?;
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .ok_or_else(|| Failure::usage("metadata.name: is required"))?
        .to_owned();
    let suffix: String = format!("{:08x}", rand_u32());
    doc["metadata"]["name"] = serde_yaml_ng::Value::String(format!("{name}-{suffix}"));
    serde_yaml_ng::to_string(&doc).map_err(Failure::internal)
}

/// Random enough for a name suffix: the clock's nanoseconds mixed with the process id.
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}

/// The folder of a job's logs (its replicas' log files are in it).
fn job_folder(rec: &TrainingJobRecord) -> PathBuf {
    rec.replicas
        .first()
        .and_then(|r| Path::new(&r.log_path).parent().map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
}

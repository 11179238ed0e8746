//! `secondrow`: run kfp pipelines locally and inspect what they did.
//!
//! This binary owns configuration (flags > environment > defaults), tracing set-up, progress display
//! and exit codes: 0 success, 1 the run failed or was canceled (or something failed on this side), 2 invalid
//! input (bad YAML, unknown parameters, unknown ids, usage errors) — the table is `error::exit_code`.

mod client;
mod data;
mod deploy;
mod error;
mod jobs;
mod k8s;
mod kfp_target;
mod models;
mod monitor;
mod notebook;
mod progress;
mod remote;
mod secrets;
mod serve;
mod serve_apply;
mod serve_manifest;
mod server;
mod shutdown;
mod term;
mod tokens;
mod tune;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::{Context as _, Failure, Result};

use secondrow_engine::envs::EnvManager;
use secondrow_engine::{Engine, EngineConfig, PythonMode, RunControl, RunOptions, Submission};
use secondrow_spec::Pipeline;
use secondrow_store::{ArtifactRecord, ArtifactStore, RunRecord, RunState, Store, StoreError, TaskRecord};

#[derive(Parser)]
#[command(name = "secondrow", version, about = "Run Kubeflow (kfp) pipelines on one machine, and inspect their runs.")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

/// Where state lives; every setting has a SECONDROW_* variable.
#[derive(Args, Debug, Clone)]
struct Settings {
    /// Home folder: metadata database, artifacts, logs. Default: the user's data dir + /secondrow.
    #[arg(long, env = "SECONDROW_HOME", global = true)]
    home: Option<PathBuf>,
    /// Metadata database URL (sqlite://… or postgres://…). Default: sqlite file in the home folder.
    #[arg(long, env = "SECONDROW_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// A running `secondrow server` (http://host:port) for `run`, `runs`, `logs` and `artifacts`.
    #[arg(long, env = "SECONDROW_SERVER", global = true)]
    server: Option<String>,
    /// Bearer token sent to `--server`.
    #[arg(long, env = "SECONDROW_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Where artifact bytes live: a local folder, or `s3://bucket/prefix` (credentials and region from the
    /// usual AWS_* variables). Default: `artifacts/` in the home folder.
    #[arg(long, env = "SECONDROW_ARTIFACT_ROOT", global = true)]
    artifact_root: Option<String>,
    /// The S3 endpoint for an `s3://` artifact root (default: AWS_ENDPOINT_URL, else AWS itself).
    #[arg(long, env = "SECONDROW_S3_ENDPOINT", global = true)]
    s3_endpoint: Option<String>,
    /// An existing Kubeflow Pipelines installation (`kfp://HOST[:PORT]` over HTTP, `kfps://HOST[:PORT]` over
    /// HTTPS) for `run` and `runs list|get`, through the standard KFP REST API; `--token` is its bearer token.
    #[arg(long = "target", global = true)]
    kfp_target: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a compiled pipeline (kfp IR YAML) to completion.
    Run(RunArgs),
    /// Check a pipeline file (and parameters) without running anything.
    Validate {
        pipeline: PathBuf,
        #[arg(long = "param", short = 'p', value_parser = parse_param)]
        params: Vec<(String, String)>,
    },
    /// List, inspect and resume runs.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Serve model files over KServe V1 and the Open Inference Protocol V2 (ONNX and SecondRow models).
    Serve(serve::ServeArgs),
    /// Model deployments served by `secondrow server`: create from a run's model, list, update traffic, delete.
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Model monitoring of a deployment: drift of its logged requests against the training data,
    /// performance against posted labels, and a drift report.
    Monitor(monitor::MonitorArgs),
    /// The model registry: registered models and versions, with lineage to runs and deployments.
    Models(models::ModelsArgs),
    /// Versioned data repositories (Git for data): put, log, ls, get, diff, branch, revert.
    Data(data::DataArgs),
    /// Managed JupyterLab servers run by `secondrow server` (at /notebook/NS/NAME/): create, list, get, stop,
    /// start, delete, logs.
    #[command(subcommand)]
    Notebook(notebook::NotebookCommand),
    /// Serve the Kubeflow Pipelines v2beta1 REST API (kfp.Client works against it); runs execute here.
    Server(server::ServerArgs),
    /// API tokens for `secondrow server`, each confined to one namespace.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Distributed training jobs (Training Operator v1 YAML: PyTorchJob, TFJob, MPIJob, JAXJob, XGBoostJob).
    #[command(subcommand)]
    Job(jobs::JobCommand),
    /// Secrets that kfp-kubernetes pipelines read (`use_secret_as_env`/`as_volume`), per namespace; values are never shown.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Config maps that kfp-kubernetes pipelines read (`use_config_map_as_env`/`as_volume`), per namespace.
    #[command(subcommand, name = "configmaps")]
    ConfigMaps(secrets::SecretsCommand),
    /// Hyperparameter tuning with Katib Experiment YAML: `tune EXPERIMENT.yaml`, `tune list|get|trials|resume|stop`.
    Tune(tune::TuneArgs),
    /// Print the captured stdout/stderr of a run's tasks.
    Logs {
        run_id: String,
        /// A task path (`for-loop-2/0/square`), key or display name; all tasks when omitted.
        task: Option<String>,
    },
    /// Run one built-in ML component (what `components/NAME.yaml` calls): `secondrow component NAME --in value …`.
    #[command(disable_help_flag = true)]
    Component {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The launcher inside a Kubernetes task Pod (`--executor kubernetes --launcher-image`).
    #[command(subcommand)]
    Launch(k8s::LaunchCommand),
    /// Cached Python environments of components with `packages_to_install`.
    #[command(subcommand)]
    Envs(EnvsCommand),
    /// List a run's artifacts, or download them.
    Artifacts {
        run_id: String,
        /// Copy every artifact into this folder (`<task path>/<output name>`).
        #[arg(long)]
        download: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ExecArgs {
    /// Maximum number of task processes at once (default: number of cores; 100 Pods with `--executor kubernetes`).
    #[arg(long, env = "SECONDROW_PARALLELISM")]
    parallelism: Option<usize>,
    /// Python (with kfp installed) for lightweight components; default `python3` on PATH.
    #[arg(long, env = "SECONDROW_PYTHON")]
    python: Option<PathBuf>,
    /// `warm`: lightweight components fork from a worker that has kfp loaded; `cold`: one interpreter per task.
    #[arg(long, env = "SECONDROW_PYTHON_MODE", value_enum, default_value_t = ModeArg::Warm)]
    python_mode: ModeArg,
    /// The most items one ParallelFor may iterate over; a loop with more fails with a clear error.
    #[arg(long, env = "SECONDROW_MAX_LOOP_ITEMS", default_value_t = secondrow_engine::DEFAULT_MAX_LOOP_ITEMS)]
    max_loop_items: usize,
    /// Tail task output live.
    #[arg(short, long)]
    verbose: bool,
    /// Print the final run as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    kube: Box<k8s::KubeArgs>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ModeArg {
    Warm,
    Cold,
}

#[derive(Args)]
struct RunArgs {
    pipeline: PathBuf,
    /// A pipeline parameter, `name=value` (values of non-string parameters are JSON).
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// Run display name.
    #[arg(long)]
    name: Option<String>,
    /// Disable the cache for this run.
    #[arg(long)]
    no_cache: bool,
    /// Experiment (by name, created if missing) of a run sent to `--server`; default `Default`.
    #[arg(long)]
    experiment: Option<String>,
    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One run: state, timing, parameters, outputs and tasks.
    Get {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Continue a run after a crash or Ctrl-C (or re-run the failed part of a failed run).
    Resume {
        run_id: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
}

#[derive(Subcommand)]
enum EnvsCommand {
    /// Every environment: key, packages, Python, last use.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete environments (all, or those unused for DAYS days).
    Prune {
        #[arg(long)]
        older_than_days: Option<u64>,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        secondrow_engine::process::end_quietly_on_closed_stdout();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SECONDROW_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", term::SafeText(&e.to_string()));
            e.exit_code()
        }
    }
}

impl Command {
    /// Commands that read and print, and start no child process or connection of their own that a closed
    /// pipe could end (see `end_quietly_on_closed_stdout`).
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Runs(RunsCommand::List { .. } | RunsCommand::Get { .. })
                | Command::Logs { .. }
                | Command::Artifacts { .. }
                | Command::Validate { .. }
        )
    }
}

struct Home {
    root: PathBuf,
    database_url: String,
    artifact_root: Option<String>,
    s3_endpoint: Option<String>,
}

impl Home {
    fn resolve(s: &Settings) -> Result<Home> {
        let root = match &s.home {
            Some(h) => h.clone(),
            None => dirs::data_dir()
                .ok_or_else(|| Failure::usage("no user data directory; set SECONDROW_HOME"))?
                .join("secondrow"),
        };
        std::fs::create_dir_all(&root).with_context(|| format!("creating home folder {}", root.display()))?;
        let root = root.canonicalize().with_context(|| format!("resolving {}", root.display()))?;
        let database_url = match &s.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", root.join("secondrow.db").display()),
        };
        Ok(Home {
            root,
            database_url,
            artifact_root: s.artifact_root.clone().filter(|r| !r.is_empty()),
            s3_endpoint: s.s3_endpoint.clone(),
        })
    }

    async fn store(&self) -> Result<Store> {
        Store::open(&self.database_url)
            .await
            .with_context(|| format!("opening the metadata store {}", self.database_url))
    }

    async fn artifacts(&self) -> Result<ArtifactStore> {
        let Some(root) = &self.artifact_root else {
            return Ok(ArtifactStore::open_local(&self.root.join("artifacts"))?);
        };
        // An S3 root is mirrored locally (kfp's `/s3/<bucket>/<key>` layout) under `artifacts-mirror/`.
        let s3 = secondrow_store::S3Options { endpoint: self.s3_endpoint.clone(), ..Default::default() };
        ArtifactStore::open(root, &self.root.join("artifacts-mirror"), &s3)
            .await
            .context("opening the artifact store (--artifact-root)")
    }

    fn logs_root(&self) -> PathBuf {
        self.root.join("logs")
    }

    fn envs_dir(&self) -> PathBuf {
        self.root.join("envs")
    }

    async fn engine(&self, exec: &ExecArgs) -> Result<Engine> {
        self.engine_with(exec, Default::default()).await
    }

    /// The engine with a task sandbox (`secondrow server`).
    async fn engine_with(&self, exec: &ExecArgs, sandbox: secondrow_engine::sandbox::SandboxConfig) -> Result<Engine> {
        let parallelism = exec.parallelism.unwrap_or_else(|| match exec.kube.executor {
            k8s::ExecutorArg::Kubernetes => k8s::DEFAULT_POD_PARALLELISM,
            k8s::ExecutorArg::Local => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        });
        let config = EngineConfig {
            logs_root: self.logs_root(),
            work_dir: self.root.join("work"),
            parallelism,
            python: exec.python.clone(),
            python_mode: match exec.python_mode {
                ModeArg::Warm => PythonMode::Warm,
                ModeArg::Cold => PythonMode::Cold,
            },
            envs_dir: self.envs_dir(),
            sandbox,
            max_loop_items: exec.max_loop_items,
        };
        let artifacts = self.artifacts().await?;
        let kube = exec.kube.executor(&artifacts).await?;
        Ok(Engine::with_executor(self.store().await?, artifacts, config, kube))
    }
}

async fn dispatch(cli: Cli) -> Result<ExitCode> {
    if let Some(target) = &cli.settings.kfp_target {
        return kfp_target::dispatch(target, cli.settings.token.clone(), &cli.command).await;
    }
    if let Some(server) = &cli.settings.server {
        if let Some(code) = remote::dispatch(server, cli.settings.token.clone(), &cli.command).await? {
            return Ok(code);
        }
    }
    match cli.command {
        Command::Validate { pipeline, params } => {
            let p = load_pipeline(&pipeline)?;
            p.bind_cli_parameters(&params)?;
            println!(
                "{}: valid ({} components, {} executors)",
                pipeline.display(),
                p.spec.components.len(),
                p.executors.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            // Validate everything before touching the home folder or the store.
            let pipeline = load_pipeline(&args.pipeline)?;
            let params = pipeline.bind_cli_parameters(&args.params)?;
            let home = Home::resolve(&cli.settings)?;
            let engine = home.engine(&args.exec).await?;
            let submission = Submission {
                display_name: args.name.clone(),
                options: RunOptions {
                    no_cache: args.no_cache,
                    parallelism: args.exec.parallelism,
                    ..RunOptions::default()
                },
                ..Submission::default()
            };
            let run = engine.submit(&pipeline, params, submission).await?;
            eprintln!("run {} ({}) started", run.id, term::Safe(&run.display_name));
            execute(&engine, &home, &run.id, &args.exec, false).await
        }
        Command::Runs(RunsCommand::Resume { run_id, exec }) => {
            let home = Home::resolve(&cli.settings)?;
            let engine = home.engine(&exec).await?;
            let run_id = engine.store().resolve_run_id(&run_id).await?;
            eprintln!("resuming run {run_id}");
            execute(&engine, &home, &run_id, &exec, true).await
        }
        Command::Runs(RunsCommand::List { limit, json }) => {
            let home = Home::resolve(&cli.settings)?;
            let runs = home.store().await?.list_runs(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print_runs(&runs);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs(RunsCommand::Get { run_id, json }) => {
            let home = Home::resolve(&cli.settings)?;
            let store = home.store().await?;
            let run_id = store.resolve_run_id(&run_id).await?;
            if json {
                let doc = secondrow_api::records::run_document(&store, &run_id).await?;
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_run(&store.get_run(&run_id).await?, &store.list_tasks(&run_id).await?);
                data::print_run_data(&store, &run_id).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve::run(&cli.settings, args).await,
        Command::Launch(command) => k8s::launch(command).await,
        Command::Server(args) => server::run(&cli.settings, args).await,
        Command::Deploy(cmd) => {
            deploy::run(&cli.settings, cli.settings.server.as_deref().map(|s| (s, cli.settings.token.clone())), cmd)
                .await
        }
        Command::Models(cmd) => models::run(&cli.settings, cmd).await,
        Command::Monitor(args) => {
            monitor::run(&cli.settings, cli.settings.server.as_deref().map(|s| (s, cli.settings.token.clone())), args)
                .await
        }
        Command::Data(cmd) => data::run(&cli.settings, cmd).await,
        Command::Notebook(cmd) => notebook::run(&cli.settings, cmd).await,
        Command::Tokens(cmd) => tokens::run(&cli.settings, cmd).await,
        Command::Tune(args) => tune::run(&cli.settings, args).await,
        Command::Job(cmd) => jobs::run(&cli.settings, cmd).await,
        Command::Secrets(cmd) => secrets::run(&cli.settings, secondrow_store::SecretKind::Secret, cmd).await,
        Command::ConfigMaps(cmd) => secrets::run(&cli.settings, secondrow_store::SecretKind::ConfigMap, cmd).await,
        Command::Logs { run_id, task } => {
            let home = Home::resolve(&cli.settings)?;
            let store = home.store().await?;
            let run_id = store.resolve_run_id(&run_id).await?;
            let tasks = store.list_tasks(&run_id).await?;
            let text = secondrow_api::logs::render(&home.logs_root(), &run_id, &tasks, task.as_deref())?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Component { args } => {
            if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
                print!("{}", secondrow_ml::usage());
                return Ok(ExitCode::SUCCESS);
            }
            // CPU-bound and synchronous: off the async workers.
            let result = tokio::task::spawn_blocking(move || secondrow_ml::run_component(&args)).await?;
            result.context("component")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Envs(cmd) => {
            let home = Home::resolve(&cli.settings)?;
            let envs = EnvManager::new(home.envs_dir());
            match cmd {
                EnvsCommand::List { json } => {
                    let list = envs.list();
                    if json {
                        println!("{}", serde_json::to_string_pretty(&list)?);
                    } else {
                        println!("{:<24}  {:<8}  {:<19}  PACKAGES", "KEY", "PYTHON", "LAST USED");
                        for e in &list {
                            println!(
                                "{:<24}  {:<8}  {:<19}  {}",
                                e.key,
                                e.python_version,
                                fmt_time(e.last_used_ms),
                                e.packages.join(" ")
                            );
                        }
                    }
                }
                EnvsCommand::Prune { older_than_days } => {
                    let removed = envs
                        .prune(older_than_days.map(|d| std::time::Duration::from_secs(d * 86_400)))
                        .map_err(Failure::internal)?;
                    eprintln!("removed {} environments", removed.len());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Artifacts { run_id, download, json } => {
            let home = Home::resolve(&cli.settings)?;
            let store = home.store().await?;
            let run_id = store.resolve_run_id(&run_id).await?;
            let artifacts = store.list_artifacts(&run_id).await?;
            let tasks = store.list_tasks(&run_id).await?;
            let path_of = |task_id: &Option<String>| {
                tasks.iter().find(|t| Some(&t.id) == task_id.as_ref()).map(|t| t.path.clone()).unwrap_or_default()
            };
            if let Some(dest) = download {
                let store = home.artifacts().await?;
                let mut n = 0;
                for a in &artifacts {
                    let target = dest.join(path_of(&a.task_id)).join(&a.name);
                    match store.download(&a.uri, &target).await {
                        Ok(files) => n += files.len(),
                        // Metrics artifacts carry only metadata: there is no file to copy.
                        Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(Failure::from(e)).context(format!("downloading {}", a.uri)),
                    }
                    write_artifact_metadata(&target, a)?;
                }
                eprintln!("downloaded {n} files of {} artifacts into {}", artifacts.len(), dest.display());
            } else if json {
                println!("{}", serde_json::to_string_pretty(&artifacts)?);
            } else {
                print_artifacts(&artifacts, &tasks);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_pipeline(path: &Path) -> Result<Pipeline> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::new(secondrow_error::ErrorKind::of_io(&e), e))
        .with_context(|| format!("reading {}", path.display()))?;
    Pipeline::from_yaml(&text).with_context(|| format!("{}", path.display()))
}

/// Executes a run with Ctrl-C handling and progress output; the exit code reflects the final state.
async fn execute(engine: &Engine, home: &Home, run_id: &str, exec: &ExecArgs, resume: bool) -> Result<ExitCode> {
    let (progress_tx, progress_rx) = mpsc::unbounded_channel();
    let display = tokio::spawn(progress::render(progress_rx, exec.verbose));
    let (cancel, signals) = shutdown::cancel_on_signal(Some("\ncanceling the run (killing its tasks)…"));
    let control = RunControl { cancel, progress: Some(progress_tx), tail_logs: exec.verbose };
    let result =
        if resume { engine.resume(run_id, control, true).await } else { engine.execute(run_id, control).await };
    signals.abort();
    let _ = display.await;
    let run = result?;
    let tasks = engine.store().list_tasks(run_id).await?;
    if exec.json {
        println!("{}", serde_json::to_string_pretty(&json!({"run": run, "tasks": tasks}))?);
    } else {
        let logs = home.logs_root().join(&run.id);
        summarize(&run, &tasks, &format!("secondrow logs {}  (files under {})", run.id, logs.display()));
    }
    Ok(match run.state {
        RunState::Succeeded => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}

/// The end-of-run lines; `logs_hint` is the command (and place) to read the logs of a failed run.
fn summarize(run: &RunRecord, tasks: &[TaskRecord], logs_hint: &str) {
    let count = |s: &str| tasks.iter().filter(|t| t.kind.as_str() == "container" && t.state.as_str() == s).count();
    eprintln!(
        "run {} {} in {} — {} succeeded, {} cached, {} failed, {} skipped",
        run.id,
        run.state,
        fmt_duration(run.started_at, run.finished_at),
        count("SUCCEEDED"),
        count("CACHED"),
        count("FAILED"),
        count("SKIPPED"),
    );
    if let Some(e) = &run.error {
        eprintln!("error: {}", term::SafeText(e));
        eprintln!("logs: {}", term::Safe(logs_hint));
    }
    if let Some(outputs) = run.outputs.as_ref().and_then(|o| o.get("parameters")).and_then(|p| p.as_object()) {
        for (k, v) in outputs {
            println!("{} = {}", term::Safe(k), term::Safe(&v.to_string()));
        }
    }
}

fn print_runs(runs: &[RunRecord]) {
    println!("{:<36}  {:<10}  {:<20}  {:>9}  NAME", "RUN ID", "STATE", "CREATED", "DURATION");
    for r in runs {
        println!(
            "{:<36}  {:<10}  {:<20}  {:>9}  {}",
            r.id,
            r.state,
            fmt_time(r.created_at),
            fmt_duration(r.started_at, r.finished_at),
            term::Safe(&r.display_name)
        );
    }
}

fn print_artifacts(artifacts: &[ArtifactRecord], tasks: &[TaskRecord]) {
    let path_of = |task_id: &Option<String>| {
        tasks.iter().find(|t| Some(&t.id) == task_id.as_ref()).map(|t| t.path.clone()).unwrap_or_default()
    };
    println!("{:<30}  {:<18}  {:<28}  URI / METADATA", "TASK", "NAME", "TYPE");
    for a in artifacts {
        println!(
            "{:<30}  {:<18}  {:<28}  {}",
            term::Safe(&path_of(&a.task_id)),
            term::Safe(&a.name),
            term::Safe(&a.schema_title),
            term::Safe(&a.uri)
        );
        if a.metadata.as_object().is_some_and(|m| !m.is_empty()) {
            println!("{:<80}  {}", "", term::Safe(&metadata_summary(&a.metadata)));
        }
    }
}

/// The longest metadata shown whole in the artifacts table; longer metadata (a confusion matrix, an ROC
/// curve) is shown as its keys, the short values whole and the rest counted (`--json` or `--download`
/// give everything).
const METADATA_SHOWN: usize = 200;

fn metadata_summary(metadata: &serde_json::Value) -> String {
    use serde_json::Value;
    let whole = metadata.to_string();
    let Some(map) = metadata.as_object().filter(|_| whole.chars().count() > METADATA_SHOWN) else {
        return whole;
    };
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let text = v.to_string();
            let shown = match v {
                _ if text.chars().count() <= 40 => text,
                Value::Array(items) => format!("[{} items]", items.len()),
                Value::Object(fields) => format!("{{{} keys}}", fields.len()),
                _ => format!("{}…", text.chars().take(40).collect::<String>()),
            };
            format!("{k}: {shown}")
        })
        .collect();
    format!("{} (whole: --json or --download)", parts.join(", "))
}

/// `NAME.metadata.json` beside a downloaded artifact.
fn write_artifact_metadata(target: &Path, a: &ArtifactRecord) -> Result<()> {
    let meta = target.with_file_name(format!("{}.metadata.json", a.name));
    if let Some(parent) = meta.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&meta, serde_json::to_string_pretty(&a.metadata)?)
        .with_context(|| format!("writing {}", meta.display()))
}

fn print_run(run: &RunRecord, tasks: &[TaskRecord]) {
    println!("Run:        {} ({})", term::Safe(&run.id), term::Safe(&run.display_name));
    println!("Pipeline:   {}", term::Safe(&run.pipeline_name));
    println!("State:      {}", run.state);
    if let Some(e) = &run.error {
        println!("Error:      {}", term::SafeText(e));
    }
    println!("Created:    {}", fmt_time(run.created_at));
    println!("Duration:   {}", fmt_duration(run.started_at, run.finished_at));
    // JSON text escapes control characters inside strings, but not keys' bidi overrides: through Safe too.
    println!("Parameters: {}", term::Safe(&run.parameters.to_string()));
    if let Some(o) = &run.outputs {
        println!("Outputs:    {}", term::Safe(&o.to_string()));
    }
    println!();
    println!("{:<44}  {:<10}  {:<9}  {:>8}  {:>9}  OUTPUTS", "TASK", "KIND", "STATE", "ATTEMPTS", "DURATION");
    for t in tasks {
        let outputs = t.outputs.as_ref().and_then(|o| o.get("parameters")).map(|p| p.to_string()).unwrap_or_default();
        println!(
            "{:<44}  {:<10}  {:<9}  {:>8}  {:>9}  {}",
            term::Safe(&t.path),
            t.kind.as_str(),
            t.state,
            t.attempts,
            fmt_duration(t.started_at, t.finished_at),
            term::Safe(&outputs)
        );
    }
}

fn fmt_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn fmt_duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.2}s", (e - s) as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_metadata_is_summarised_and_short_metadata_kept_whole() {
        let short = serde_json::json!({"accuracy": 0.78, "f1": 0.81});
        assert_eq!(metadata_summary(&short), short.to_string());
        let points: Vec<_> = (0..100).map(|i| serde_json::json!({"threshold": i, "recall": 0.5})).collect();
        let long = serde_json::json!({
            "confidenceMetrics": points,
            "confusionMatrix": {"annotationSpecs": [{"displayName": "0"}, {"displayName": "1"}], "rows": [[47, 20], [12, 71]]},
            "name": "x".repeat(60),
            "total": 15,
        });
        assert_eq!(
            metadata_summary(&long),
            format!(
                "confidenceMetrics: [100 items], confusionMatrix: {{2 keys}}, name: \"{}…, total: 15 (whole: --json or --download)",
                "x".repeat(39)
            )
        );
    }
}

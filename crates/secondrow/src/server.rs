//! `secondrow server`: the Kubeflow Pipelines v2beta1 API (kfp.Client works against it), with runs
//! executing in this process, recurring runs scheduled, and unfinished runs resumed on start.

use std::path::PathBuf;
use std::process::ExitCode;

use secondrow_engine::sandbox::{SandboxConfig, TaskUser};

use crate::error::{Context as _, Failure, Result};
use clap::Args;

use super::{ExecArgs, Home, Settings};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 8888)]
    port: u16,
    /// A file holding the admin bearer token (every namespace); the token itself can also come from the
    /// `SECONDROW_AUTH_TOKEN` variable, never from the command line (where every local user sees it). When
    /// set, or once `secondrow tokens create` made a token, every API call but healthz, openapi.json and
    /// /metrics needs `Authorization: Bearer <token>`.
    #[arg(long, env = "SECONDROW_AUTH_TOKEN_FILE")]
    auth_token_file: Option<PathBuf>,
    /// Refused: a token on the command line is visible to every process (`/proc/PID/cmdline`).
    #[arg(long, hide = true)]
    auth_token: Option<String>,
    /// The user tasks run as when the server runs as root (a name, `uid` or `uid:gid`). Without it a root
    /// server runs tasks as the dedicated user `secondrow-task` (created when missing); `root` keeps tasks
    /// running as root (still confined by the task sandbox), with a warning at start.
    #[arg(long, env = "SECONDROW_TASK_USER")]
    task_user: Option<String>,
    /// A folder importers may bring local files in from (repeatable); besides it, only artifacts of the
    /// importing namespace's own runs.
    #[arg(long = "import-root", value_name = "DIR")]
    import_roots: Vec<PathBuf>,
    /// Refuse importers of non-local URIs (`gs://`, `s3://`, `https://` …); by default they pass through to
    /// the tasks, which fetch them with their own credentials.
    #[arg(long)]
    no_remote_imports: bool,
    /// Run tasks without the task sandbox (the environment allow list, Landlock and the task user): only for
    /// a server whose every token holder is trusted with the server's own files and secrets.
    #[arg(long)]
    no_task_sandbox: bool,
    #[command(flatten)]
    notebooks: super::notebook::NotebookServerArgs,
    #[command(flatten)]
    exec: ExecArgs,
    #[command(flatten)]
    serving: super::deploy::ServingArgs,
    #[command(flatten)]
    listener: super::serve::ListenerArgs,
}

/// The admin token: from `--auth-token-file`, else from `SECONDROW_AUTH_TOKEN` (never from argv).
fn admin_token(args: &ServerArgs) -> Result<Option<String>> {
    token_from(args.auth_token.is_some(), args.auth_token_file.as_deref(), "SECONDROW_AUTH_TOKEN")
}

/// A bearer token from `--auth-token-file`, else from the variable `var`; `on_argv` (a literal
/// `--auth-token VALUE`) is refused, because every local user can read a process's arguments. At least 16
/// characters. Shared by `secondrow server` and `secondrow serve`.
pub(crate) fn token_from(on_argv: bool, file: Option<&std::path::Path>, var: &str) -> Result<Option<String>> {
    if on_argv {
        return Err(Failure::usage(format!(
            "--auth-token takes no value on the command line (every local user can read it there): put the token \
             in a file and pass --auth-token-file FILE, or set {var}"
        )));
    }
    let token = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token from {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => std::env::var(var).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
    };
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        return Err(Failure::usage(format!("the token (--auth-token-file, {var}) must be at least 16 characters")));
    }
    Ok(token)
}

/// The task sandbox settings from the flags; warns when the kernel or the identity weakens it. A root
/// server without `--task-user` runs tasks as the dedicated user (made when missing), and refuses to start
/// when that user cannot reach the home folder or the Python interpreter.
async fn sandbox_config(args: &ServerArgs, home: &Home) -> Result<SandboxConfig> {
    use secondrow_engine::sandbox::{check_reachable, dedicated_task_user, DEDICATED_TASK_USER};
    if args.no_task_sandbox {
        eprintln!("secondrow server: WARNING: --no-task-sandbox: tasks see the server's environment and files");
        return Ok(SandboxConfig::default());
    }
    let root = secondrow_engine::sandbox::running_as_root();
    let task_user = match args.task_user.as_deref() {
        Some(name) => Some(TaskUser::lookup(name).map_err(Failure::usage)?).filter(|u| u.uid != 0),
        None if root => {
            let user = dedicated_task_user().await.map_err(|e| {
                Failure::usage(format!(
                    "{e}\nA root server runs tasks as the unprivileged user `{DEDICATED_TASK_USER}`: create it, name \
                     another with --task-user USER, or keep tasks running as root with --task-user root"
                ))
            })?;
            let mut needed = vec![home.root.clone()];
            // The interpreter lightweight components run on: the configured one, else `python3` on PATH.
            let python = args.exec.python.clone().or_else(|| {
                std::env::var_os("PATH")
                    .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join("python3")).find(|p| p.is_file()))
            });
            needed.extend(python);
            check_reachable(user, &needed).map_err(|e| {
                Failure::usage(format!(
                    "{e}.\nA root server runs tasks as the unprivileged user `{DEDICATED_TASK_USER}`, which must reach \
                     the home folder and the Python interpreter: make them searchable by others (or use --home \
                     elsewhere), name another user with --task-user USER, or keep tasks running as root with \
                     --task-user root"
                ))
            })?;
            Some(user)
        }
        None => None,
    };
    if root && task_user.is_none() {
        eprintln!(
            "secondrow server: WARNING: --task-user root: tasks run as root (confined by the environment allow \
             list and Landlock only)"
        );
    }
    if !root && task_user.is_some() {
        return Err(Failure::usage("--task-user needs a server running as root"));
    }
    if let Err(warning) = secondrow_engine::sandbox::probe() {
        eprintln!("secondrow server: WARNING: {warning}");
    }
    Ok(SandboxConfig {
        enabled: true,
        task_user,
        import_roots: args.import_roots.clone(),
        remote_imports: !args.no_remote_imports,
    })
}

pub async fn run(settings: &Settings, args: ServerArgs) -> Result<ExitCode> {
    let stop = crate::shutdown::requested();
    let home = Home::resolve(settings)?;
    let admin = admin_token(&args)?;
    let engine = home.engine_with(&args.exec, sandbox_config(&args, &home).await?).await?;
    let state = secondrow_api::AppState::new(engine).with_admin_token(admin.as_deref());
    let auth = match (&admin, state.auth.enforced(state.store()).await) {
        (Some(_), _) => "on (admin token set)",
        (None, Ok(true)) => "on (the store holds API tokens)",
        (None, Ok(false)) => "off (no admin token and no API tokens: anyone reaching this port has full access)",
        (None, Err(e)) => return Err(e).context("reading API tokens"),
    };
    eprintln!("secondrow server: access control {auth}");
    let resumed = secondrow_api::recover(&state).await.context("resuming unfinished runs")?;
    state.deployments.install_model_cache(super::serve::model_cache(&home));
    let models = super::deploy::start_serving(&state, &args.serving, &args.listener).await?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let notebooks = super::notebook::start_notebooks(&state, &home.root, addr, &args.notebooks).await?;
    // Tests and scripts read this line to learn the port.
    println!(
        "secondrow server listening on http://{addr} (resumed {resumed} unfinished runs); deployed models on {models}"
    );
    eprintln!("secondrow server: {notebooks}");
    // The web UI at `/` beside the API (the UI router has no fallback; the API's answers unknown paths).
    let app = secondrow_ui::router(state.clone()).merge(secondrow_api::router(state.clone()));
    let served = secondrow_api::serve_app(listener, state.clone(), app, &args.listener.limits(), stop).await;
    // The notebooks stop with the server; their rows stay up, so the next start brings them back.
    state.notebooks.kill_all().await;
    // Training jobs' replicas are killed and recorded (restarted per policy by the next start).
    state.training_jobs.stop(std::time::Duration::from_secs(30)).await;
    served.context("serving the API")?;
    Ok(ExitCode::SUCCESS)
}

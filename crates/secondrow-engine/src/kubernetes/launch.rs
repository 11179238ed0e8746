//! The launcher: `secondrow launch`, the same binary inside each task Pod (as KFP's launcher is).
//!
//! With `--launcher-image IMAGE` a Pod gets an init container from the SecondRow image that copies the binary
//! into an `emptyDir` at [`BIN_DIR`] ([`install`]); the main container then runs
//! `BIN_DIR/secondrow launch run -- CMD ARGS…` ([`run`]): stage the task's inputs in, run the user command, stage
//! its outputs (output files and `executor_output.json`) out. Built-in components (`secondrow component …`)
//! call the copied binary, so they work in any image.

use std::path::{Path, PathBuf};

/// Where the init container puts the binary, in every container of the Pod.
pub const BIN_DIR: &str = "/secondrow-bin";

/// The binary's path inside the Pod.
pub fn binary_in_pod() -> String {
    format!("{BIN_DIR}/secondrow")
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("copying the launcher to {}: {source}", path.display())]
    Install { path: PathBuf, source: std::io::Error },
    #[error("starting the task's command `{program}`: {source}")]
    Start { program: String, source: std::io::Error },
}

impl LaunchError {
    pub fn kind(&self) -> secondrow_error::ErrorKind {
        match self {
            LaunchError::Install { .. } => secondrow_error::ErrorKind::Internal,
            LaunchError::Start { .. } => secondrow_error::ErrorKind::InvalidInput,
        }
    }
}

/// Copies this binary to `dir/secondrow` (executable); its path.
pub fn install(dir: &Path) -> Result<PathBuf, LaunchError> {
    use std::os::unix::fs::PermissionsExt as _;
    let target = dir.join("secondrow");
    let err = |source| LaunchError::Install { path: target.clone(), source };
    std::fs::create_dir_all(dir).map_err(err)?;
    let me = std::env::current_exe().map_err(err)?;
    // A temporary name first: a half-copied binary is never found under the final name.
    let partial = dir.join(".secondrow.partial");
    std::fs::copy(&me, &partial).map_err(err)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    std::fs::rename(&partial, &target).map_err(err)?;
    Ok(target)
}

/// The launcher's artifact staging (Pods under an S3 artifact root): the one place where a task's files move
/// between the artifact store and the Pod.
///
/// The engine gives the launcher `--mount DIR` (the Pod's `emptyDir`, [`STAGING_MOUNT`]) and
/// `--executor-input JSON` (kfp's executor input, every artifact at its local path under the mount, as in
/// the command line), and the store through the Pod's environment ([`ENV_ROOT`], [`ENV_ENDPOINT`], the
/// `SECONDROW_S3_*` credentials, from values or a Secret). [`staging::stage_inputs`] opens the store (the
/// mount is its local mirror: kfp's `/s3/BUCKET/KEY` layout under DIR), downloads every input artifact and
/// makes the output folders; after a successful command [`staging::stage_outputs`] uploads the output
/// artifacts, `executor_output.json` (its local paths turned back into `s3://` URIs) and the
/// output-parameter files, which the engine then reads from the store. The mount always comes from the
/// argument, never assumed to be `/`: any folder works, as kfp's executor reads the paths written into the
/// executor input. With a local artifact root the Pod mounts the root itself and nothing moves (no
/// `--mount`).
pub mod staging {
    use std::path::{Path, PathBuf};

    use secondrow_store::{ArtifactStore, S3Credentials, S3Options};
    use serde_json::Value;

    use super::*;
    use crate::staging::{self as files, Staged};

    /// Where and how one Pod stages its artifacts (`secondrow launch run --mount … --executor-input …`).
    #[derive(Debug, Clone)]
    pub struct Staging {
        pub mount: PathBuf,
        pub executor_input: String,
    }

    /// A staged task: the store and what to upload after the command.
    pub struct StagedTask {
        store: ArtifactStore,
        mount: PathBuf,
        staged: Staged,
    }

    fn var(name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// The artifact store the Pod's environment names, mirrored under `mount`.
    async fn open_store(mount: &Path) -> Result<ArtifactStore, String> {
        let root = var(ENV_ROOT).ok_or_else(|| format!("{ENV_ROOT} is not set (the S3 artifact root)"))?;
        let credentials = match (var(ENV_ACCESS_KEY), var(ENV_SECRET_KEY)) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Some(S3Credentials { access_key_id, secret_access_key, session_token: var(ENV_SESSION_TOKEN) })
            }
            _ => None,
        };
        let opts = S3Options { endpoint: var(ENV_ENDPOINT), credentials, region: var(ENV_REGION) };
        ArtifactStore::open_s3(&root, mount, &opts).await.map_err(|e| e.to_string())
    }

    /// Opens the store, downloads the inputs and lays out the outputs' folders.
    pub async fn stage_inputs(staging: &Staging) -> Result<StagedTask, String> {
        let mut input: Value = serde_json::from_str(&staging.executor_input)
            .map_err(|e| format!("--executor-input is not valid JSON: {e}"))?;
        let store = open_store(&staging.mount).await?;
        // The engine wrote local paths under the mount; the store is asked for their `s3://` URIs.
        files::remote_executor_input(&staging.mount, &mut input);
        let staged = files::stage_in(&store, &staging.mount, &mut input).await.map_err(|e| e.to_string())?;
        Ok(StagedTask { store, mount: staging.mount.clone(), staged })
    }

    /// Uploads the outputs, `executor_output.json` and the output-parameter files.
    pub async fn stage_outputs(task: &StagedTask) -> Result<(), String> {
        let done = files::stage_out(&task.store, &task.mount, &task.staged).await.map_err(|e| e.to_string())?;
        eprintln!("secondrow launch: uploaded {} files ({} bytes)", done.files, done.bytes);
        Ok(())
    }
}

/// The Pod's `emptyDir` mount for staged artifacts (S3 roots).
pub const STAGING_MOUNT: &str = "/secondrow/staging";

/// [`STAGING_MOUNT`] as a path.
pub fn staging_mount() -> &'static Path {
    Path::new(STAGING_MOUNT)
}
/// The Pod environment naming the artifact store for the launcher (removed from the task's command).
pub const ENV_ROOT: &str = "SECONDROW_ARTIFACT_ROOT";
pub const ENV_ENDPOINT: &str = "SECONDROW_S3_ENDPOINT";
pub const ENV_REGION: &str = "SECONDROW_S3_REGION";
pub const ENV_ACCESS_KEY: &str = "SECONDROW_S3_ACCESS_KEY_ID";
pub const ENV_SECRET_KEY: &str = "SECONDROW_S3_SECRET_ACCESS_KEY";
pub const ENV_SESSION_TOKEN: &str = "SECONDROW_S3_SESSION_TOKEN";
/// Every variable of the launcher's own, none of which the task's command sees.
pub const LAUNCHER_ENV: &[&str] =
    &[ENV_ROOT, ENV_ENDPOINT, ENV_REGION, ENV_ACCESS_KEY, ENV_SECRET_KEY, ENV_SESSION_TOKEN];
/// The keys of `--s3-credentials-secret`'s Secret (the usual AWS names) and the variables they become.
pub const SECRET_KEYS: &[(&str, &str, bool)] = &[
    ("AWS_ACCESS_KEY_ID", ENV_ACCESS_KEY, false),
    ("AWS_SECRET_ACCESS_KEY", ENV_SECRET_KEY, false),
    ("AWS_SESSION_TOKEN", ENV_SESSION_TOKEN, true),
];

/// The launcher's environment in a Pod for `store` (an S3 root): root, endpoint and region as values, and
/// the credentials of this process's `AWS_*` variables as values unless a Secret provides them
/// (`with_secret`: then none are given here).
pub fn pod_env(store: &secondrow_store::ArtifactStore, with_secret: bool) -> Vec<(String, String)> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    let mut env = vec![(ENV_ROOT.to_owned(), store.root_uri())];
    if let Some(e) = store.endpoint() {
        env.push((ENV_ENDPOINT.to_owned(), e.to_owned()));
    }
    if let Some(r) = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")) {
        env.push((ENV_REGION.to_owned(), r));
    }
    if !with_secret {
        for (aws, ours, _) in SECRET_KEYS {
            if let Some(v) = var(aws) {
                env.push(((*ours).to_owned(), v));
            }
        }
    }
    env
}

/// Runs the task's command in the Pod between staging its inputs in and its outputs out (with `staging`;
/// see [`staging`]); the command's exit status. A failed staging step is exit status 1 with the reason,
/// naming the artifact, on stderr (the Pod's log, which becomes the task's log and error).
pub async fn run(argv: &[String], staging: Option<&staging::Staging>) -> Result<i32, LaunchError> {
    let staged = match staging {
        None => None,
        Some(s) => match staging::stage_inputs(s).await {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("secondrow launch: staging the inputs: {e}");
                return Ok(1);
            }
        },
    };
    let program = argv.first().cloned().unwrap_or_default();
    let code = crate::process::run_inherited(argv, LAUNCHER_ENV)
        .await
        .map_err(|source| LaunchError::Start { program, source })?;
    if code == 0 {
        if let Some(task) = &staged {
            if let Err(e) = staging::stage_outputs(task).await {
                eprintln!("secondrow launch: staging the outputs: {e}");
                return Ok(1);
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_copies_an_executable_binary() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = install(&dir.path().join("bin")).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(meta.len(), std::fs::metadata(std::env::current_exe().unwrap()).unwrap().len());
    }

    #[tokio::test]
    async fn run_returns_the_commands_status() {
        let argv = |s: &str| vec!["sh".to_owned(), "-c".to_owned(), s.to_owned()];
        assert_eq!(run(&argv("exit 0"), None).await.unwrap(), 0);
        assert_eq!(run(&argv("exit 7"), None).await.unwrap(), 7);
        assert!(run(&["/no/such/program".to_owned()], None)
            .await
            .unwrap_err()
            .to_string()
            .contains("/no/such/program"));
    }

    #[tokio::test]
    async fn a_staging_failure_is_exit_status_1_before_the_command_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let argv = vec!["touch".to_owned(), marker.to_string_lossy().into_owned()];
        let bad = staging::Staging { mount: dir.path().join("m"), executor_input: "{not json".into() };
        assert_eq!(run(&argv, Some(&bad)).await.unwrap(), 1);
        assert!(!marker.exists(), "the command ran although its inputs were not staged");
    }
}

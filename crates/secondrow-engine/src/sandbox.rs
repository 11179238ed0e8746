//! The task sandbox: what a task process may see of the machine that runs it.
//!
//! With [`SandboxConfig::enabled`] (what `secondrow server` sets), every task attempt — cold process or warm
//! worker child — gets:
//! - an environment built from an allow list ([`task_env`]): the server's own variables (its tokens,
//!   database URL, cloud credentials) never reach a task, only what Python and kfp need plus the task's own
//!   explicit variables;
//! - a Landlock ruleset ([`TaskSandbox`]): read (and execute) the system folders, `PATH`, its Python
//!   environment and its input artifacts; write only its own output folder, its scratch folder and
//!   `/dev/shm` (POSIX shared memory, which multiprocessing needs). The
//!   database, the logs root, other runs' and namespaces' artifacts stay out of reach, and so does `/proc`
//!   but for a few machine-wide files (so no `/proc/<server>/environ` or `cmdline`). Where the kernel lacks
//!   Landlock the engine warns once at start and runs tasks without it;
//! - when the server runs as root, the unprivileged `--task-user` identity.
//!
//! Imports and output artifact URIs go through [`ImportPolicy::authorize`]: a local path must lie in an
//! artifact folder of a run of the same namespace, or under an admin-configured import root.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use landlock::{
    path_beneath_rules, Access as _, AccessFs, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetError, RulesetStatus, ABI,
};

/// The Landlock ABI whose file-system rights the sandbox handles (older kernels: best effort).
const LANDLOCK_ABI: ABI = ABI::V5;

/// Server-wide sandbox settings (off for local `secondrow run`, where the user owns everything).
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Allow-listed environment, Landlock, task user, authorized imports.
    pub enabled: bool,
    /// The identity tasks run as (set when the server runs as root).
    pub task_user: Option<TaskUser>,
    /// Folders an importer may bring local files in from, besides the namespace's own runs.
    pub import_roots: Vec<PathBuf>,
    /// Whether importers may name non-local URIs (`gs://`, `s3://`, `https://` …).
    pub remote_imports: bool,
}

/// A numeric identity for task processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskUser {
    pub uid: u32,
    pub gid: u32,
}

impl TaskUser {
    /// Looks a user up by name (or `uid[:gid]` numbers).
    pub fn lookup(name: &str) -> Result<TaskUser, String> {
        if let Some((u, g)) = name.split_once(':') {
            if let (Ok(uid), Ok(gid)) = (u.parse(), g.parse()) {
                return Ok(TaskUser { uid, gid });
            }
        }
        if let Ok(uid) = name.parse::<u32>() {
            return Ok(TaskUser { uid, gid: uid });
        }
        match nix::unistd::User::from_name(name) {
            Ok(Some(u)) => Ok(TaskUser { uid: u.uid.as_raw(), gid: u.gid.as_raw() }),
            Ok(None) => Err(format!("no user `{name}` on this machine")),
            Err(e) => Err(format!("looking up user `{name}`: {e}")),
        }
    }
}

/// Gives `path` and everything beneath it (links themselves, not their targets) to `user`, or back to this
/// process's own user with `None`.
pub(crate) fn chown_tree(path: &Path, user: Option<TaskUser>) -> std::io::Result<()> {
    use nix::unistd::{fchownat, Gid, Uid};
    let (uid, gid) = match user {
        Some(u) => (Uid::from_raw(u.uid), Gid::from_raw(u.gid)),
        None => (nix::unistd::geteuid(), nix::unistd::getegid()),
    };
    fchownat(None, path, Some(uid), Some(gid), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map_err(std::io::Error::from)?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

/// The dedicated user a root server runs tasks as when no `--task-user` is given.
pub const DEDICATED_TASK_USER: &str = "secondrow-task";

/// The dedicated task user, created (a system user without a home or a login shell, through the system's
/// `useradd`) when the machine has none yet.
pub async fn dedicated_task_user() -> Result<TaskUser, String> {
    if let Ok(u) = TaskUser::lookup(DEDICATED_TASK_USER) {
        return Ok(u);
    }
    let out = crate::process::command("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
        .arg(DEDICATED_TASK_USER)
        .output()
        .await
        .map_err(|e| format!("creating the task user `{DEDICATED_TASK_USER}`: cannot run useradd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "creating the task user `{DEDICATED_TASK_USER}`: useradd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    TaskUser::lookup(DEDICATED_TASK_USER)
}

/// Checks that `user` can reach each of `paths`: every folder above it searchable by the user (by owner,
/// group or others' bits), and the path itself readable; a message naming the first that is not.
pub fn check_reachable(user: TaskUser, paths: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let allows = |meta: &std::fs::Metadata, bits: u32| {
        let mode = meta.mode();
        let shift = if meta.uid() == user.uid {
            6
        } else if meta.gid() == user.gid {
            3
        } else {
            0
        };
        (mode >> shift) & bits == bits
    };
    for path in paths {
        // A folder still to be made: the nearest existing one above it.
        let Some(real) = path.ancestors().find_map(|p| p.canonicalize().ok()) else { continue };
        for dir in real.ancestors().skip(1) {
            let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if !allows(&meta, 0o1) {
                return Err(format!(
                    "the task user (uid {}) cannot enter {} on the way to {}",
                    user.uid,
                    dir.display(),
                    path.display()
                ));
            }
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
        let need = if meta.is_dir() { 0o5 } else { 0o4 };
        if !allows(&meta, need) {
            return Err(format!("the task user (uid {}) cannot read {}", user.uid, path.display()));
        }
    }
    Ok(())
}

/// Whether this process runs as root (then `--task-user` matters).
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Variables a task inherits from the engine's environment (exact names, or prefixes ending in `*`).
const ALLOWED_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TZ",
    "TERM",
    "NO_COLOR",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONWARNINGS",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
];

fn allowed(name: &str) -> bool {
    ALLOWED_ENV.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *a,
    })
}

/// The environment of a sandboxed task: the allow-listed part of `inherited`, then `scratch` as HOME and
/// TMPDIR, then the task's explicit variables (the component's `env`, platform settings), which win.
pub fn task_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    scratch: &Path,
    explicit: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = inherited.into_iter().filter(|(k, _)| allowed(k)).collect();
    let scratch = scratch.to_string_lossy().into_owned();
    for k in ["HOME", "TMPDIR"] {
        env.push((k.to_owned(), scratch.clone()));
    }
    env.retain(|(k, _)| !explicit.iter().any(|(e, _)| e == k));
    env.extend(explicit.iter().cloned());
    env
}

/// The allow-listed part of this process's environment (helpers that run user-chosen code, like pip
/// building an sdist for `packages_to_install`).
pub fn allowed_env() -> Vec<(String, String)> {
    inherited_env().filter(|(k, _)| allowed(k)).collect()
}

/// This process's environment, skipping variables that are not UTF-8 (`std::env::vars` would panic).
pub fn inherited_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// What one task may touch.
#[derive(Debug, Clone, Default)]
pub struct TaskSandbox {
    /// Read and execute (folders: everything beneath).
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove beneath.
    pub write: Vec<PathBuf>,
    /// The identity to switch to before exec.
    pub user: Option<TaskUser>,
}

impl TaskSandbox {
    /// The system folders and `PATH` every task reads, plus the few devices it may use.
    ///
    /// Not `/proc` as a whole: a task must not open `/proc/<server>/environ` (this kernel's Landlock does not
    /// stop that by itself when the task runs as the server's user), nor `/dev` and `/sys` as a whole (a
    /// root task could read raw disks). Only the machine-wide `/proc` files libraries read for sizing.
    pub fn base(user: Option<TaskUser>) -> TaskSandbox {
        let mut read: Vec<PathBuf> = [
            "/usr",
            "/bin",
            "/sbin",
            "/lib",
            "/lib32",
            "/lib64",
            "/etc",
            "/opt",
            "/proc/cpuinfo",
            "/proc/meminfo",
            "/proc/stat",
            "/proc/loadavg",
            "/proc/version",
            "/proc/filesystems",
            "/proc/sys/kernel",
            "/proc/sys/vm",
            "/sys/devices/system/cpu",
            "/sys/fs/cgroup",
            "/dev/zero",
            "/dev/random",
            "/dev/urandom",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        if let Some(path) = std::env::var_os("PATH") {
            read.extend(std::env::split_paths(&path).filter(|p| p.is_absolute() && p != Path::new("/")));
        }
        // `/dev/shm`: POSIX semaphores and shared memory (Python's multiprocessing queues, locks and
        // `shared_memory`, data loaders) live there; glibc knows no other place. It is shared by every task.
        let write = ["/dev/null", "/dev/full", "/dev/shm"].into_iter().map(PathBuf::from).collect();
        TaskSandbox { read, write, user }
    }

    /// Adds a Python interpreter's environment: the folder above its `bin/` (the venv or prefix), for the
    /// path as given and as resolved (a venv's `python` links to the base interpreter).
    pub fn add_python(&mut self, python: &Path) {
        let mut candidates = vec![python.to_path_buf()];
        if let Ok(real) = python.canonicalize() {
            candidates.push(real);
        }
        for exe in candidates {
            if let Some(prefix) = exe.parent().and_then(Path::parent).filter(|p| *p != Path::new("/")) {
                self.read.push(prefix.to_path_buf());
            }
            // A venv made by `envs` links the base site-packages through a `.pth` file.
            if let Some(prefix) = exe.parent().and_then(Path::parent) {
                for pth in pth_targets(prefix) {
                    self.read.push(pth);
                }
            }
        }
    }

    /// Builds the Landlock ruleset (in the parent, before fork): the child only has to enforce it.
    pub fn ruleset(&self) -> Result<RulesetCreated, RulesetError> {
        let all = AccessFs::from_all(LANDLOCK_ABI);
        let read = AccessFs::from_read(LANDLOCK_ABI);
        Ruleset::default()
            .handle_access(all)?
            .create()?
            .add_rules(path_beneath_rules(&self.read, read))?
            .add_rules(path_beneath_rules(&self.write, all))
    }
}

/// Folders named by `.pth` files in a prefix's site-packages (the base environment an `envs` venv reuses).
fn pth_targets(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(libs) = std::fs::read_dir(prefix.join("lib")) else { return out };
    for lib in libs.flatten() {
        let Ok(entries) = std::fs::read_dir(lib.path().join("site-packages")) else { continue };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "pth") {
                if let Ok(text) = std::fs::read_to_string(e.path()) {
                    out.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| l.starts_with('/'))
                            .map(PathBuf::from)
                            .filter(|p| p.is_dir()),
                    );
                }
            }
        }
    }
    out
}

/// A ruleset handed to the child: taken and enforced once in `pre_exec`.
pub(crate) struct PendingRestriction(Mutex<Option<RulesetCreated>>);

impl PendingRestriction {
    pub(crate) fn new(r: RulesetCreated) -> PendingRestriction {
        PendingRestriction(Mutex::new(Some(r)))
    }

    /// Runs in the forked child: no allocation on the success path.
    pub(crate) fn enforce(&self) -> std::io::Result<()> {
        let taken = match self.0.lock() {
            Ok(mut g) => g.take(),
            Err(_) => None,
        };
        match taken.map(RulesetCreated::restrict_self) {
            Some(Err(_)) => Err(std::io::Error::from_raw_os_error(nix::libc::EPERM)),
            _ => Ok(()),
        }
    }
}

/// Whether this kernel enforces Landlock; checked once (in a throwaway thread, since a restriction cannot
/// be lifted). `Err` carries the warning to print.
pub fn probe() -> Result<(), String> {
    let status = std::thread::spawn(|| -> Result<RestrictionStatus, RulesetError> {
        Ruleset::default().handle_access(AccessFs::from_all(LANDLOCK_ABI))?.create()?.restrict_self()
    })
    .join();
    match status {
        Ok(Ok(s)) if s.ruleset == RulesetStatus::FullyEnforced => Ok(()),
        Ok(Ok(s)) if s.ruleset == RulesetStatus::PartiallyEnforced => {
            Err("this kernel's Landlock is older than ABI 5: task file-system rules are partly enforced".into())
        }
        Ok(Ok(_)) => Err("this kernel has no Landlock: tasks run WITHOUT file-system restrictions \
                          (they can read whatever the task user can)"
            .into()),
        Ok(Err(e)) => Err(format!("Landlock is unavailable ({e}): tasks run WITHOUT file-system restrictions")),
        Err(_) => Err("probing Landlock failed: tasks run WITHOUT file-system restrictions".into()),
    }
}

/// Why a URI may not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("`{0}` is not allowed: remote imports are disabled on this server")]
    Remote(String),
    #[error(
        "`{0}` is outside this namespace's artifacts and the configured import roots: imports of local files \
         are limited to runs of the same namespace and the admin's import roots"
    )]
    Outside(String),
    #[error("`{uri}` cannot be resolved: {error}")]
    Unresolvable { uri: String, error: std::io::Error },
}

/// Decides which URIs a run may bring in.
pub struct ImportPolicy<'a> {
    pub config: &'a SandboxConfig,
    /// The artifact root (`<root>/<run id>/…`).
    pub artifact_root: &'a Path,
}

impl ImportPolicy<'_> {
    /// The local path of `uri` if it is local (`/abs` or `file://`), `None` for a remote URI.
    pub fn local_path(uri: &str) -> Option<PathBuf> {
        if let Some(rest) = uri.strip_prefix("file://") {
            return Some(PathBuf::from(rest));
        }
        if uri.starts_with('/') {
            return Some(PathBuf::from(uri));
        }
        if uri.contains("://") {
            return None;
        }
        // A relative path is local too (and resolved against the server's folder, so it is refused below
        // unless it happens to lie in an allowed place).
        Some(PathBuf::from(uri))
    }

    /// Whether `uri` may enter a run: allowed outright, refused, or allowed only if the run folder it lies in
    /// ([`Access::IfRunInNamespace`]) belongs to the importing namespace — the caller asks the store.
    pub fn authorize(&self, uri: &str) -> Result<Access, ImportError> {
        if !self.config.enabled {
            return Ok(Access::Allowed);
        }
        let Some(path) = Self::local_path(uri) else {
            return if self.config.remote_imports {
                Ok(Access::Allowed)
            } else {
                Err(ImportError::Remote(uri.to_owned()))
            };
        };
        // Resolve symlinks and `..` of what exists; a missing path can only be judged by its lexical form.
        let real = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => lexical(&path),
            Err(error) => return Err(ImportError::Unresolvable { uri: uri.to_owned(), error }),
        };
        for root in &self.config.import_roots {
            let root = root.canonicalize().unwrap_or_else(|_| root.clone());
            if real.starts_with(&root) {
                return Ok(Access::Allowed);
            }
        }
        if let Ok(rest) = real.strip_prefix(self.artifact_root) {
            let mut parts = rest.components();
            if let Some(std::path::Component::Normal(first)) = parts.next() {
                if first == NAMESPACE_FILES {
                    if let Some(std::path::Component::Normal(folder)) = parts.next() {
                        if let Some(namespace) = folder.to_str().and_then(|f| f.strip_prefix(NAMESPACE_PREFIX)) {
                            return Ok(Access::IfNamespace(namespace.to_owned()));
                        }
                    }
                    return Err(ImportError::Outside(uri.to_owned()));
                }
                if let Some(run) = first.to_str() {
                    return Ok(Access::IfRunInNamespace(run.to_owned()));
                }
            }
        }
        Err(ImportError::Outside(uri.to_owned()))
    }
}

/// The folder under the artifact root holding files of a namespace that are not a run's (a monitor rule's
/// logged window): `<root>/_namespaces/ns-<namespace>/…` may be imported by that namespace's runs only.
pub const NAMESPACE_FILES: &str = "_namespaces";
/// The prefix of a namespace's folder in [`NAMESPACE_FILES`] (the default namespace, `""`, is `ns-`).
pub const NAMESPACE_PREFIX: &str = "ns-";

/// The folder of `namespace`'s own files under `artifact_root` ([`NAMESPACE_FILES`]); `None` for a name
/// that is not a plain folder name.
pub fn namespace_files(artifact_root: &Path, namespace: &str) -> Option<PathBuf> {
    let plain = namespace.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !namespace.starts_with('.');
    plain.then(|| artifact_root.join(NAMESPACE_FILES).join(format!("{NAMESPACE_PREFIX}{namespace}")))
}

/// The verdict of [`ImportPolicy::authorize`].
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// Allowed when the importing run is in this namespace (its folder of [`NAMESPACE_FILES`]).
    IfNamespace(String),
    /// Allowed when this run (the first folder under the artifact root) is in the importing namespace.
    IfRunInNamespace(String),
}

/// `path` made absolute with `.` and `..` removed, without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let base = if path.is_absolute() { PathBuf::new() } else { std::env::current_dir().unwrap_or_default() };
    for c in base.components().chain(path.components()) {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// Used by the warm worker: the sandbox as JSON its child applies through raw syscalls.
pub(crate) fn to_json(sb: &TaskSandbox) -> serde_json::Value {
    let paths = |v: &[PathBuf]| -> Vec<serde_json::Value> {
        v.iter().map(|p| serde_json::Value::String(p.to_string_lossy().into_owned())).collect()
    };
    serde_json::json!({
        "read": paths(&sb.read),
        "write": paths(&sb.write),
        "read_access": AccessFs::from_read(LANDLOCK_ABI).bits(),
        "all_access": AccessFs::from_all(LANDLOCK_ABI).bits(),
        "uid": sb.user.map(|u| u.uid),
        "gid": sb.user.map(|u| u.gid),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_an_allow_list_and_explicit_variables_win() {
        let inherited = vec![
            ("PATH".to_owned(), "/usr/bin".to_owned()),
            ("SECONDROW_AUTH_TOKEN".to_owned(), "secret".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "secret".to_owned()),
            ("LC_ALL".to_owned(), "C".to_owned()),
        ];
        let env = task_env(inherited, Path::new("/s"), &[("AWS_SECRET_ACCESS_KEY".into(), "mine".into())]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/usr/bin"));
        assert_eq!(get("LC_ALL"), Some("C"));
        assert_eq!(get("SECONDROW_AUTH_TOKEN"), None);
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some("mine"));
        assert_eq!(get("HOME"), Some("/s"));
    }

    #[test]
    fn imports_stay_in_the_namespace_or_the_import_roots() {
        let root = tempfile::tempdir().unwrap();
        let roots = tempfile::tempdir().unwrap();
        let art = root.path().canonicalize().unwrap();
        std::fs::create_dir_all(art.join("mine/t")).unwrap();
        std::fs::create_dir_all(art.join("theirs/t")).unwrap();
        let config =
            SandboxConfig { enabled: true, import_roots: vec![roots.path().to_path_buf()], ..Default::default() };
        let policy = ImportPolicy { config: &config, artifact_root: &art };
        let uri = |p: &str| art.join(p).to_string_lossy().into_owned();
        let run = |r: &str| Ok::<_, ()>(Access::IfRunInNamespace(r.to_owned()));
        assert_eq!(policy.authorize(&uri("mine/t")).map_err(drop), run("mine"));
        assert_eq!(policy.authorize(&format!("file://{}", uri("mine/t"))).map_err(drop), run("mine"));
        assert_eq!(policy.authorize(&uri("mine/../theirs/t")).map_err(drop), run("theirs"));
        assert!(matches!(policy.authorize("/etc/passwd"), Err(ImportError::Outside(_))));
        assert!(matches!(policy.authorize(&art.to_string_lossy()), Err(ImportError::Outside(_))));
        assert_eq!(
            policy.authorize(&roots.path().join("data.csv").to_string_lossy()).map_err(drop),
            Ok(Access::Allowed)
        );
        // A namespace's own files: that namespace only; anything else in their folder is refused.
        let files = namespace_files(&art, "team-a").unwrap();
        std::fs::create_dir_all(&files).unwrap();
        assert_eq!(
            policy.authorize(&files.join("w.csv").to_string_lossy()).map_err(drop),
            Ok(Access::IfNamespace("team-a".into()))
        );
        let default = namespace_files(&art, "").unwrap().join("w.csv");
        assert_eq!(policy.authorize(&default.to_string_lossy()).map_err(drop), Ok(Access::IfNamespace("".into())));
        assert!(matches!(policy.authorize(&uri("_namespaces/other/w.csv")), Err(ImportError::Outside(_))));
        assert!(matches!(policy.authorize(&uri("_namespaces")), Err(ImportError::Outside(_))));
        assert_eq!(namespace_files(&art, "../x"), None);
        assert_eq!(namespace_files(&art, ".."), None);
        assert!(matches!(policy.authorize("gs://bucket/x"), Err(ImportError::Remote(_))));
        let open = SandboxConfig { remote_imports: true, ..config.clone() };
        assert_eq!(
            ImportPolicy { config: &open, artifact_root: &art }.authorize("gs://bucket/x").map_err(drop),
            Ok(Access::Allowed)
        );
        let off = SandboxConfig::default();
        assert_eq!(
            ImportPolicy { config: &off, artifact_root: &art }.authorize("/etc/passwd").map_err(drop),
            Ok(Access::Allowed)
        );
    }
}

//! Versioned data repositories (`secondrow data`, the Pachyderm role): repositories of files with immutable
//! commits, branches and history. Migration `0012`.
//!
//! A commit names a tree manifest (repository path → object id and size, a JSON object stored as a
//! content-addressed object itself) and its parent; its id is the SHA-256 of those fields with the message,
//! author and time. File bytes are content-addressed objects in the [`ArtifactStore`], so a file that did
//! not change between commits (or appears in two repositories) is stored once.
//!
//! A put writes every object first and then, in one transaction, inserts the commit and moves the branch
//! head by compare-and-swap from the head it started from: a commit is visible only once all its bytes are
//! stored, a crash before that leaves nothing visible (only unreferenced objects), and of two writers that
//! started from the same head the second gets [`DataError::Conflict`].
//!
//! Refs name commits: a branch, a full commit id or a unique prefix of one (4+ hex digits), each optionally
//! followed by `~N` (the N-th ancestor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::artifact_store::hash_file;
use crate::{now_ms, ArtifactStore, ErrorKind, Store, StoreError};

/// A data-repository failure.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} `{id}` already exists")]
    AlreadyExists { kind: &'static str, id: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "conflict: branch `{branch}` of data repo `{repo}` moved to {actual} while this change was made from {expected}; nothing was committed, try again"
    )]
    Conflict { repo: String, branch: String, expected: String, actual: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DataError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DataError::NotFound { .. } => ErrorKind::NotFound,
            DataError::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            DataError::Invalid(_) => ErrorKind::InvalidInput,
            DataError::Conflict { .. } => ErrorKind::FailedPrecondition,
            DataError::Io { .. } => ErrorKind::Internal,
            DataError::Store(e) => e.kind(),
        }
    }
}

impl From<sqlx::Error> for DataError {
    fn from(e: sqlx::Error) -> DataError {
        DataError::Store(StoreError::Database(e))
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// The key of an artifact's metadata under which a pipeline importer records the data version it
/// resolved (`{"repo", "ref", "commit", "path"}`).
pub const ARTIFACT_METADATA_KEY: &str = "secondrow.data";

/// A data version an artifact was derived from: the artifact that imported it, how many task steps back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub artifact_id: String,
    pub run_id: String,
    pub depth: usize,
    /// `{"repo", "ref", "commit", "path"}` as the importer recorded it.
    pub data: serde_json::Value,
}

/// The branch a repository's first commit goes to when none is named.
pub const DEFAULT_BRANCH: &str = "main";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRepo {
    pub namespace: String,
    pub name: String,
    pub created_at: i64,
}

impl DataRepo {
    fn from_row(r: &AnyRow) -> Result<DataRepo> {
        Ok(DataRepo {
            namespace: r.try_get("namespace")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBranch {
    pub name: String,
    pub head: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataCommit {
    pub id: String,
    pub namespace: String,
    pub repo: String,
    pub parent: Option<String>,
    pub branch: String,
    /// Object id of the tree manifest.
    pub manifest: String,
    pub files: i64,
    pub bytes: i64,
    pub message: String,
    pub author: String,
    pub created_at: i64,
}

impl DataCommit {
    fn from_row(r: &AnyRow) -> Result<DataCommit> {
        Ok(DataCommit {
            id: r.try_get("id")?,
            namespace: r.try_get("namespace")?,
            repo: r.try_get("repo")?,
            parent: r.try_get("parent")?,
            branch: r.try_get("branch")?,
            manifest: r.try_get("manifest")?,
            files: r.try_get("files")?,
            bytes: r.try_get("bytes")?,
            message: r.try_get("message")?,
            author: r.try_get("author")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// The first 12 digits of the id, as shown.
    pub fn short(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }
}

/// One file of a tree: its object and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub object: String,
    pub size: u64,
}

/// A commit's files by repository path (`a/b.csv`), sorted.
pub type Tree = BTreeMap<String, FileEntry>;

/// How a file differs between two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    pub path: String,
    pub change: Change,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

/// `NAME[@REF][:PATH]` taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub repo: String,
    pub reference: Option<String>,
    pub path: Option<String>,
}

impl Target {
    /// Parses `NAME[@REF][:PATH]`, checking the repository name.
    pub fn parse(s: &str) -> Result<Target> {
        let (repo, rest) = match s.find(['@', ':']) {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        };
        validate_repo_name(repo)?;
        let (reference, path) = match rest.strip_prefix('@') {
            Some(r) => match r.split_once(':') {
                Some((r, p)) => (Some(r), Some(p)),
                None => (Some(r), None),
            },
            None => (None, rest.strip_prefix(':')),
        };
        if reference == Some("") {
            return Err(DataError::Invalid(format!("`{s}`: empty ref after `@`")));
        }
        Ok(Target { repo: repo.to_owned(), reference: reference.map(str::to_owned), path: path.map(str::to_owned) })
    }

    /// The ref, or the default branch.
    pub fn reference(&self) -> &str {
        self.reference.as_deref().unwrap_or(DEFAULT_BRANCH)
    }
}

/// A repository name: 1-100 of letters, digits, `-`, `_`, `.`, starting with a letter or digit.
pub fn validate_repo_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "`{}` is not a valid data repo name (1-100 letters, digits, `-`, `_`, `.`, starting with a letter or digit)",
            name.escape_debug()
        )))
    }
}

/// A branch name, by git's ref rules: letters, digits, `-`, `_`, `.`, `/`; no `..`, no leading `-`, `.`
/// or `/`, no trailing `/`, `.` or `.lock`, no empty component; not `HEAD`; at most 200 characters.
pub fn validate_branch_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "HEAD"
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !name.starts_with(['-', '.', '/'])
        && !name.ends_with(['/', '.'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && !name.contains("//")
        && !name.split('/').any(|part| part.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "`{}` is not a valid branch name (letters, digits, `-`, `_`, `.`, `/`; no `..`, no leading `-` or `.`)",
            name.escape_debug()
        )))
    }
}

/// A path inside a repository, normalized (`./a//b/` → `a/b`; the root is ``); `..` is refused.
pub fn normalize_path(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(DataError::Invalid(format!("path `{}` is outside the repository", path.escape_debug())))
            }
            p if p.chars().any(|c| c.is_control() || c == '\\') => {
                return Err(DataError::Invalid(format!("path `{}` has a character not allowed", path.escape_debug())))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// What a put should do besides adding the files.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// The repository folder the inputs go under (the root when empty).
    pub prefix: String,
    /// Make the tree exactly the inputs (files of the parent not among them are removed), instead of
    /// adding them over the parent's tree.
    pub replace: bool,
    pub message: String,
    pub author: String,
    /// A file (this machine's) remembering each put file's size, modification time and inode with its
    /// object id: a file whose stat is unchanged since an earlier put is not read again (as `git` and `dvc`
    /// do). Files modified within 2 s before the cache was written are always re-read ("racy" entries).
    pub stat_cache: Option<PathBuf>,
}

/// See [`PutOptions::stat_cache`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct StatCache {
    written_at_ns: i128,
    entries: BTreeMap<String, StatEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StatEntry {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    object: String,
}

/// New files at least this large are hashed before they are stored, so a put run again after an
/// interruption skips the ones it stored already (one more read of each; smaller files are simply stored).
const HASH_FIRST_FROM: u64 = 64 << 20;

/// Entries modified this close before the cache was written are not trusted.
const RACY_NS: i128 = 2_000_000_000;

impl StatCache {
    fn load(path: &Path) -> StatCache {
        std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// Best effort: a cache that cannot be written only costs re-reading next time.
    fn save(mut self, path: &Path, found: Vec<(String, StatEntry)>) {
        self.entries.extend(found);
        self.written_at_ns = now_ns();
        let Ok(bytes) = serde_json::to_vec(&self) else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// The object of `key` when its stat still matches and is not racy.
    fn lookup(&self, key: &str, stat: &StatEntry) -> Option<&str> {
        let e = self.entries.get(key)?;
        let same = e.size == stat.size && e.mtime_ns == stat.mtime_ns && e.ino == stat.ino;
        (same && e.mtime_ns < self.written_at_ns - RACY_NS).then_some(e.object.as_str())
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// The stat of a local file (object left empty), and its cache key (the absolute path).
fn stat_of(path: &Path) -> Option<(String, StatEntry)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let key = std::path::absolute(path).ok()?.to_str()?.to_owned();
    let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    Some((key, StatEntry { size: m.len(), mtime_ns, ino: m.ino(), object: String::new() }))
}

/// The outcome of a put: the new commit, or `None` when the tree did not change (no commit is made).
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub commit: Option<DataCommit>,
    pub files: usize,
    /// Objects that were not stored before, and their bytes.
    pub new_objects: usize,
    pub new_bytes: u64,
}

/// The files of the inputs: repository path, local path and size.
type Inputs = Vec<(String, PathBuf, u64)>;

fn io_error(path: &Path, e: std::io::Error) -> DataError {
    if e.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound { kind: "file", id: path.display().to_string() }
    } else {
        DataError::Io { path: path.display().to_string(), source: e }
    }
}

fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| DataError::Invalid(format!("{}: file names must be UTF-8", path.display())))
}

/// Lists the files of `inputs` (a file goes to `prefix/NAME`, a folder's contents under `prefix/`), before
/// anything is stored: a missing input or two inputs landing on one path fail here.
fn collect_inputs(inputs: &[PathBuf], prefix: &str) -> Result<Inputs> {
    let join = |rel: &str| if prefix.is_empty() { rel.to_owned() } else { format!("{prefix}/{rel}") };
    let mut out: BTreeMap<String, (PathBuf, u64)> = BTreeMap::new();
    let mut add = |repo_path: String, local: PathBuf, size: u64| -> Result<()> {
        let repo_path = normalize_path(&repo_path)?;
        if let Some((other, _)) = out.get(&repo_path) {
            return Err(DataError::Invalid(format!(
                "{} and {} would both be stored as `{repo_path}`",
                other.display(),
                local.display()
            )));
        }
        out.insert(repo_path, (local, size));
        Ok(())
    };
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| io_error(input, e))?;
        if !meta.is_dir() {
            let name =
                input.file_name().ok_or_else(|| DataError::Invalid(format!("{}: not a file name", input.display())))?;
            add(join(&utf8_name(input, name)?), input.clone(), meta.len())?;
            continue;
        }
        let mut stack = vec![(input.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
                let entry = entry.map_err(|e| io_error(&dir, e))?;
                let path = entry.path();
                let name = utf8_name(&path, &entry.file_name())?;
                let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
                let kind = entry.file_type().map_err(|e| io_error(&path, e))?;
                let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
                if meta.is_dir() {
                    if kind.is_symlink() {
                        return Err(DataError::Invalid(format!(
                            "{} is a link to a folder; links to folders are not followed",
                            path.display()
                        )));
                    }
                    stack.push((path, rel));
                } else {
                    add(join(&rel), path, meta.len())?;
                }
            }
        }
    }
    Ok(out.into_iter().map(|(k, (p, s))| (k, p, s)).collect())
}

fn commit_id(c: &DataCommit) -> String {
    let canonical = serde_json::json!({
        "namespace": c.namespace, "repo": c.repo, "parent": c.parent, "branch": c.branch,
        "manifest": c.manifest, "files": c.files, "bytes": c.bytes, "message": c.message,
        "author": c.author, "created_at": c.created_at,
    });
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

fn unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE") || d.message().contains("duplicate key")
        }
        _ => false,
    }
}

const COMMIT_COLUMNS: &str = "id, namespace, repo, parent, branch, manifest, files, bytes, message, author, created_at";

impl Store {
    pub async fn create_data_repo(&self, namespace: &str, name: &str) -> Result<DataRepo> {
        validate_repo_name(name)?;
        let repo = DataRepo { namespace: namespace.to_owned(), name: name.to_owned(), created_at: now_ms() };
        sqlx::query("INSERT INTO data_repos (namespace, name, created_at) VALUES ($1, $2, $3)")
            .bind(&repo.namespace)
            .bind(&repo.name)
            .bind(repo.created_at)
            .execute(self.pool())
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    DataError::AlreadyExists { kind: "data repo", id: name.to_owned() }
                } else {
                    e.into()
                }
            })?;
        Ok(repo)
    }

    pub async fn list_data_repos(&self, namespace: &str) -> Result<Vec<DataRepo>> {
        let rows = sqlx::query("SELECT namespace, name, created_at FROM data_repos WHERE namespace = $1 ORDER BY name")
            .bind(namespace)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(DataRepo::from_row).collect()
    }

    /// The repositories of every namespace, by namespace and name.
    pub async fn list_all_data_repos(&self) -> Result<Vec<DataRepo>> {
        let rows = sqlx::query("SELECT namespace, name, created_at FROM data_repos ORDER BY namespace, name")
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(DataRepo::from_row).collect()
    }

    pub async fn get_data_repo(&self, namespace: &str, name: &str) -> Result<DataRepo> {
        validate_repo_name(name)?;
        let row = sqlx::query("SELECT namespace, name, created_at FROM data_repos WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| DataError::NotFound { kind: "data repo", id: name.to_owned() })?;
        DataRepo::from_row(&row)
    }

    /// Deletes a repository with its commits and branches (its objects stay; others may share them).
    pub async fn delete_data_repo(&self, namespace: &str, name: &str) -> Result<()> {
        self.get_data_repo(namespace, name).await?;
        let mut tx = self.pool().begin().await?;
        for table in ["data_branches", "data_commits"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE namespace = $1 AND repo = $2"))
                .bind(namespace)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM data_repos WHERE namespace = $1 AND name = $2")
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn data_branches(&self, namespace: &str, repo: &str) -> Result<Vec<DataBranch>> {
        let rows = sqlx::query(
            "SELECT name, head, updated_at FROM data_branches WHERE namespace = $1 AND repo = $2 ORDER BY name",
        )
        .bind(namespace)
        .bind(repo)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DataBranch {
                    name: r.try_get("name")?,
                    head: r.try_get("head")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub async fn data_branch(&self, namespace: &str, repo: &str, branch: &str) -> Result<Option<DataBranch>> {
        Ok(self.data_branches(namespace, repo).await?.into_iter().find(|b| b.name == branch))
    }

    pub async fn data_commit(&self, namespace: &str, repo: &str, id: &str) -> Result<DataCommit> {
        let row = sqlx::query(&format!(
            "SELECT {COMMIT_COLUMNS} FROM data_commits WHERE namespace = $1 AND repo = $2 AND id = $3"
        ))
        .bind(namespace)
        .bind(repo)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| DataError::NotFound { kind: "data commit", id: format!("{repo}@{id}") })?;
        DataCommit::from_row(&row)
    }

    /// The commit `reference` names in a repository (see the module docs for the forms).
    pub async fn resolve_data_ref(&self, namespace: &str, repo: &str, reference: &str) -> Result<DataCommit> {
        self.get_data_repo(namespace, repo).await?;
        let (base, back) = match reference.split_once('~') {
            Some((b, "")) => (b, 1),
            Some((b, n)) => (
                b,
                n.parse::<usize>()
                    .map_err(|_| DataError::Invalid(format!("ref `{reference}`: expected REF~N with a number N")))?,
            ),
            None => (reference, 0),
        };
        let not_found = || DataError::NotFound { kind: "ref", id: format!("{repo}@{reference}") };
        let mut commit = if let Some(b) = self.data_branch(namespace, repo, base).await? {
            self.data_commit(namespace, repo, &b.head).await?
        } else if base.len() >= 4 && base.len() <= 64 && base.bytes().all(|c| c.is_ascii_hexdigit()) {
            let rows = sqlx::query(&format!(
                "SELECT {COMMIT_COLUMNS} FROM data_commits WHERE namespace = $1 AND repo = $2 AND id LIKE $3 LIMIT 2"
            ))
            .bind(namespace)
            .bind(repo)
            .bind(format!("{}%", base.to_ascii_lowercase()))
            .fetch_all(self.pool())
            .await?;
            match rows.as_slice() {
                [one] => DataCommit::from_row(one)?,
                [] => return Err(not_found()),
                _ => {
                    return Err(DataError::Invalid(format!(
                        "ref `{base}` is an ambiguous commit prefix in data repo `{repo}`; give more digits"
                    )))
                }
            }
        } else if self.data_branches(namespace, repo).await?.is_empty() {
            return Err(DataError::NotFound {
                kind: "ref",
                id: format!("{repo}@{reference} (the repo has no commits yet)"),
            });
        } else {
            return Err(not_found());
        };
        for i in 0..back {
            let Some(parent) = commit.parent.clone() else {
                return Err(DataError::NotFound {
                    kind: "ref",
                    id: format!("{repo}@{reference} (the history has {i} commit(s) before {base})"),
                });
            };
            commit = self.data_commit(namespace, repo, &parent).await?;
        }
        Ok(commit)
    }

    /// The history from `from` back, newest first, at most `limit` commits.
    pub async fn data_log(&self, from: &DataCommit, limit: usize) -> Result<Vec<DataCommit>> {
        let mut out = vec![from.clone()];
        while out.len() < limit {
            let Some(parent) = out.last().and_then(|c| c.parent.clone()) else { break };
            out.push(self.data_commit(&from.namespace, &from.repo, &parent).await?);
        }
        Ok(out)
    }

    /// Creates branch `branch` at commit `head`.
    pub async fn create_data_branch(
        &self,
        namespace: &str,
        repo: &str,
        branch: &str,
        head: &str,
    ) -> Result<DataBranch> {
        validate_branch_name(branch)?;
        let b = DataBranch { name: branch.to_owned(), head: head.to_owned(), updated_at: now_ms() };
        sqlx::query("INSERT INTO data_branches (namespace, repo, name, head, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(namespace)
            .bind(repo)
            .bind(branch)
            .bind(head)
            .bind(b.updated_at)
            .execute(self.pool())
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    DataError::AlreadyExists { kind: "branch", id: format!("{repo}@{branch}") }
                } else {
                    e.into()
                }
            })?;
        Ok(b)
    }

    /// Records a commit whose objects are all stored and moves its branch to it, in one transaction, if
    /// the branch still points at the commit's parent (compare-and-swap; a branch with no row yet must
    /// still have none). Fills in the id.
    pub async fn record_data_commit(&self, mut c: DataCommit) -> Result<DataCommit> {
        c.id = commit_id(&c);
        let mut tx = self.pool().begin().await?;
        sqlx::query(&format!(
            "INSERT INTO data_commits ({COMMIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&c.id)
        .bind(&c.namespace)
        .bind(&c.repo)
        .bind(c.parent.clone())
        .bind(&c.branch)
        .bind(&c.manifest)
        .bind(c.files)
        .bind(c.bytes)
        .bind(&c.message)
        .bind(&c.author)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        let moved = match &c.parent {
            Some(parent) => {
                sqlx::query(
                    "UPDATE data_branches SET head = $1, updated_at = $2
                     WHERE namespace = $3 AND repo = $4 AND name = $5 AND head = $6",
                )
                .bind(&c.id)
                .bind(c.created_at)
                .bind(&c.namespace)
                .bind(&c.repo)
                .bind(&c.branch)
                .bind(parent)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
            }
            None => match sqlx::query(
                "INSERT INTO data_branches (namespace, repo, name, head, updated_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&c.namespace)
            .bind(&c.repo)
            .bind(&c.branch)
            .bind(&c.id)
            .bind(c.created_at)
            .execute(&mut *tx)
            .await
            {
                Ok(_) => true,
                Err(e) if unique_violation(&e) => false,
                Err(e) => return Err(e.into()),
            },
        };
        if !moved {
            tx.rollback().await?;
            let actual = self.data_branch(&c.namespace, &c.repo, &c.branch).await?;
            return Err(DataError::Conflict {
                repo: c.repo.clone(),
                branch: c.branch.clone(),
                expected: c.parent.as_deref().map_or("no commit".to_owned(), |p| p[..12.min(p.len())].to_owned()),
                actual: actual.map_or("nothing".to_owned(), |b| b.head[..12.min(b.head.len())].to_owned()),
            });
        }
        tx.commit().await?;
        Ok(c)
    }
}

impl Store {
    /// Walks lineage back from artifact `artifact_id` (producing task → its input artifacts → …) and returns
    /// every imported data version found, nearest first.
    pub async fn data_provenance(&self, artifact_id: &str) -> Result<Vec<Provenance>> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut queue = std::collections::VecDeque::from([(artifact_id.to_owned(), 0usize)]);
        while let Some((id, depth)) = queue.pop_front() {
            if !seen.insert(id.clone()) || seen.len() > 10_000 {
                continue;
            }
            let a = self.get_artifact(&id).await?;
            if let Some(data) = a.metadata.get(ARTIFACT_METADATA_KEY) {
                out.push(Provenance { artifact_id: a.id.clone(), run_id: a.run_id.clone(), depth, data: data.clone() });
                continue;
            }
            let Some(task) = a.task_id.as_deref() else { continue };
            for e in self.list_events(&a.run_id).await? {
                if e.task_id == task && e.kind == "INPUT" {
                    queue.push_back((e.artifact_id, depth + 1));
                }
            }
        }
        Ok(out)
    }
}

/// Data operations that need both the metadata store and the object store.
#[derive(Clone)]
pub struct DataRepos {
    pub store: Store,
    pub objects: ArtifactStore,
}

impl DataRepos {
    pub fn new(store: Store, objects: ArtifactStore) -> DataRepos {
        DataRepos { store, objects }
    }

    /// The files of a commit.
    pub async fn tree(&self, commit: &DataCommit) -> Result<Tree> {
        let bytes = self.objects.read_object(&commit.manifest).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("manifest of commit {}: {e}", commit.short())).into())
    }

    /// The branch head a change to `branch` starts from: `None` for the first commit of an empty
    /// repository; an unknown branch of a repository with commits is an error (create it first).
    async fn branch_head(&self, namespace: &str, repo: &str, branch: &str) -> Result<Option<DataCommit>> {
        validate_branch_name(branch)?;
        self.store.get_data_repo(namespace, repo).await?;
        match self.store.data_branch(namespace, repo, branch).await? {
            Some(b) => Ok(Some(self.store.data_commit(namespace, repo, &b.head).await?)),
            None if self.store.data_branches(namespace, repo).await?.is_empty() => Ok(None),
            None => Err(DataError::NotFound {
                kind: "branch",
                id: format!("{repo}@{branch} (create it with `secondrow data branch {repo} {branch}`)"),
            }),
        }
    }

    /// Stores `inputs` (files and folders) and commits them to `branch` as one commit. `progress(done, total)`
    /// is called with bytes read so far.
    pub async fn put(
        &self,
        namespace: &str,
        repo: &str,
        branch: &str,
        inputs: &[PathBuf],
        opts: &PutOptions,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<PutOutcome> {
        let parent = self.branch_head(namespace, repo, branch).await?;
        // Announced to garbage collection until the put returns: what it stores meanwhile is kept.
        let _open = gc::OpenPut::begin(&self.objects)?;
        let prefix = normalize_path(&opts.prefix)?;
        let inputs = inputs.to_vec();
        let files = tokio::task::spawn_blocking(move || collect_inputs(&inputs, &prefix))
            .await
            .map_err(|e| DataError::Io { path: "inputs".into(), source: std::io::Error::other(e) })??;
        if files.is_empty() {
            return Err(DataError::Invalid("nothing to put: the inputs hold no files".into()));
        }
        let old_tree = match &parent {
            Some(p) => self.tree(p).await?,
            None => Tree::new(),
        };
        let total: u64 = files.iter().map(|f| f.2).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: u64| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(d, total);
        };
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let cache = opts.stat_cache.as_deref().map(StatCache::load);
        let stats = std::sync::Mutex::new(Vec::new());
        let stored: Vec<(String, FileEntry, bool)> = futures::stream::iter(files.clone())
            .map(|(repo_path, local, size)| {
                let old = old_tree.get(&repo_path).cloned();
                let (tick, cache, stats) = (&tick, &cache, &stats);
                async move {
                    // Taken before reading: a change while the file is read shows as a new stat next time.
                    let stat = if cache.is_some() { stat_of(&local) } else { None };
                    let remember = |object: &str| {
                        if let (Some((key, mut st)), Ok(mut all)) = (stat.clone(), stats.lock()) {
                            st.object = object.to_owned();
                            all.push((key, st));
                        }
                    };
                    if let (Some(c), Some((key, st))) = (cache, &stat) {
                        if let Some(object) = c.lookup(key, st) {
                            let known = old.as_ref().is_some_and(|o| o.object == object)
                                || self.objects.claim_object(object).await?;
                            if known {
                                tick(st.size);
                                remember(object);
                                let entry = FileEntry { object: object.to_owned(), size: st.size };
                                return Ok((repo_path, entry, false));
                            }
                        }
                    }
                    // A path whose size matches the parent's entry is probably unchanged, and a large file
                    // may be stored already (a put that was interrupted and is run again): hash these first
                    // and store only what is missing. Anything else is stored while it is hashed (one read).
                    if old.as_ref().is_some_and(|o| o.size == size) || size >= HASH_FIRST_FROM {
                        let path = local.clone();
                        let (id, size) = tokio::task::spawn_blocking(move || hash_file(&path))
                            .await
                            .map_err(|e| DataError::Io {
                                path: local.display().to_string(),
                                source: std::io::Error::other(e),
                            })?
                            .map_err(|e| io_error(&local, e))?;
                        tick(size);
                        remember(&id);
                        if old.as_ref().is_some_and(|o| o.object == id) || self.objects.claim_object(&id).await? {
                            return Ok::<_, DataError>((repo_path, FileEntry { object: id, size }, false));
                        }
                        let (id, size, new) = self.objects.put_object_file(&local, Some(&id), &|_| {}).await?;
                        return Ok((repo_path, FileEntry { object: id, size }, new));
                    }
                    let (id, size, new) = self.objects.put_object_file(&local, None, tick).await?;
                    remember(&id);
                    Ok((repo_path, FileEntry { object: id, size }, new))
                }
            })
            .buffer_unordered(parallel)
            .try_collect()
            .await?;
        let new_objects = stored.iter().filter(|s| s.2).count();
        let new_bytes = stored.iter().filter(|s| s.2).map(|s| s.1.size).sum();
        let mut tree = if opts.replace { Tree::new() } else { old_tree.clone() };
        for (path, entry, _) in stored {
            tree.insert(path, entry);
        }
        let count = files.len();
        let save_stats = |cache: Option<StatCache>| {
            if let (Some(cache), Some(path)) = (cache, &opts.stat_cache) {
                cache.save(path, stats.into_inner().unwrap_or_default());
            }
        };
        if parent.is_some() && tree == old_tree {
            save_stats(cache);
            return Ok(PutOutcome { commit: None, files: count, new_objects, new_bytes });
        }
        let commit =
            self.commit_tree(namespace, repo, branch, parent.as_ref(), &tree, &opts.message, &opts.author).await?;
        save_stats(cache);
        Ok(PutOutcome { commit: Some(commit), files: count, new_objects, new_bytes })
    }

    /// Stores `tree`'s manifest and commits it to `branch` on top of `parent`.
    #[allow(clippy::too_many_arguments)]
    async fn commit_tree(
        &self,
        namespace: &str,
        repo: &str,
        branch: &str,
        parent: Option<&DataCommit>,
        tree: &Tree,
        message: &str,
        author: &str,
    ) -> Result<DataCommit> {
        let manifest = serde_json::to_vec(tree).map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?;
        let manifest = self.objects.put_object_bytes(manifest).await?;
        let commit = DataCommit {
            id: String::new(),
            namespace: namespace.to_owned(),
            repo: repo.to_owned(),
            parent: parent.map(|p| p.id.clone()),
            branch: branch.to_owned(),
            manifest,
            files: tree.len() as i64,
            bytes: tree.values().map(|e| e.size as i64).sum(),
            message: message.to_owned(),
            author: author.to_owned(),
            created_at: now_ms(),
        };
        self.store.record_data_commit(commit).await
    }

    /// Makes the files of `target` the new head of `branch` (a new commit; history is kept).
    pub async fn revert(
        &self,
        namespace: &str,
        repo: &str,
        branch: &str,
        target: &DataCommit,
        author: &str,
    ) -> Result<DataCommit> {
        let parent = self
            .branch_head(namespace, repo, branch)
            .await?
            .ok_or_else(|| DataError::NotFound { kind: "branch", id: format!("{repo}@{branch}") })?;
        let tree = self.tree(target).await?;
        let message = format!("Revert to {}", target.short());
        self.commit_tree(namespace, repo, branch, Some(&parent), &tree, &message, author).await
    }

    /// The files of `tree` under `path` (a file, a folder, or the root when empty), with their path relative
    /// to `path` (a file's own name when `path` is a file).
    pub fn select<'t>(tree: &'t Tree, repo: &str, path: &str) -> Result<Vec<(String, &'t FileEntry)>> {
        let path = normalize_path(path)?;
        if path.is_empty() {
            return Ok(tree.iter().map(|(k, v)| (k.clone(), v)).collect());
        }
        if let Some(e) = tree.get(&path) {
            let name = path.rsplit('/').next().unwrap_or(&path).to_owned();
            return Ok(vec![(name, e)]);
        }
        let dir = format!("{path}/");
        let found: Vec<_> = tree
            .range(dir.clone()..)
            .take_while(|(k, _)| k.starts_with(&dir))
            .map(|(k, v)| (k[dir.len()..].to_owned(), v))
            .collect();
        if found.is_empty() {
            return Err(DataError::NotFound { kind: "path", id: format!("{repo}:{path}") });
        }
        Ok(found)
    }

    /// Writes the files of `commit` under `path` into `dest`: a file to `dest` (or into it, when `dest` is
    /// a folder), a folder's files under `dest`. Returns the files written.
    pub async fn get(
        &self,
        commit: &DataCommit,
        path: &str,
        dest: &Path,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Vec<PathBuf>> {
        let tree = self.tree(commit).await?;
        let selected = DataRepos::select(&tree, &commit.repo, path)?;
        let single_file = tree.contains_key(&normalize_path(path)?);
        let total: u64 = selected.iter().map(|s| s.1.size).sum();
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = |n: u64| {
            let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(d, total);
        };
        let targets: Vec<(PathBuf, &FileEntry)> = selected
            .iter()
            .map(|(rel, e)| {
                let target = if single_file {
                    if dest.is_dir() {
                        dest.join(rel)
                    } else {
                        dest.to_path_buf()
                    }
                } else {
                    rel.split('/').fold(dest.to_path_buf(), |p, s| p.join(s))
                };
                (target, *e)
            })
            .collect();
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        futures::stream::iter(targets.iter().map(|(t, e)| (t.clone(), e.object.clone())).collect::<Vec<_>>())
            .map(|(target, object)| {
                let tick = &tick;
                async move { self.objects.object_to_file(&object, &target, tick).await }
            })
            .buffer_unordered(parallel)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(targets.into_iter().map(|t| t.0).collect())
    }

    /// What changed from `a` to `b`, by path.
    pub async fn diff(&self, a: &DataCommit, b: &DataCommit) -> Result<Vec<DiffEntry>> {
        let (ta, tb) = (self.tree(a).await?, self.tree(b).await?);
        Ok(diff_trees(&ta, &tb))
    }
}

/// Added, removed and changed files from `a` to `b`, sorted by path.
pub fn diff_trees(a: &Tree, b: &Tree) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    for (path, old) in a {
        match b.get(path) {
            None => out.push(DiffEntry {
                path: path.clone(),
                change: Change::Removed,
                old_size: Some(old.size),
                new_size: None,
            }),
            Some(new) if new.object != old.object => out.push(DiffEntry {
                path: path.clone(),
                change: Change::Changed,
                old_size: Some(old.size),
                new_size: Some(new.size),
            }),
            Some(_) => {}
        }
    }
    for (path, new) in b {
        if !a.contains_key(path) {
            out.push(DiffEntry { path: path.clone(), change: Change::Added, old_size: None, new_size: Some(new.size) });
        }
    }
    out.sort_by(|x, y| x.path.cmp(&y.path));
    out
}

pub mod gc;

#[cfg(test)]
mod tests;

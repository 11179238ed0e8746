//! Versioned data repositories over HTTP (`secondrow data` through the server), under
//! `/api/data/v1/namespaces/{ns}/repos`; `{ns}` is a namespace, or `_` for the shared one (`""`, the admin's).
//! Namespaced like runs: a namespace token reaches only its own namespace (403 otherwise).
//!
//! | Method and path (under `/api/data/v1/namespaces/{ns}`) | What |
//! |---|---|
//! | `GET /repos`, `POST /repos` `{"name"}` | list, create |
//! | `DELETE /repos/{repo}` | delete with its commits and branches |
//! | `GET /repos/{repo}/branches`, `POST …/branches` `{"name", "from"}` | list, create (from a ref, default `main`) |
//! | `GET /repos/{repo}/commits?ref=&limit=` | history, newest first |
//! | `GET /repos/{repo}/files?ref=&path=` | the files of a commit (`{"commit", "files": [{path, size, object}]}`) |
//! | `GET /repos/{repo}/file?ref=&path=` | one file's bytes, streamed |
//! | `PUT /repos/{repo}/file?branch=&path=&message=` | the body as the file `path`: one new commit |
//! | `PUT /repos/{repo}/tree?branch=&path=&message=&replace=` | the body, a tar archive (gzip or not), as the files under folder `path`: one new commit (only regular files and folders; links are refused) |
//! | `GET /repos/{repo}/diff?from=&to=` | added, removed, changed files with sizes |
//! | `POST /repos/{repo}/revert` `{"ref", "branch"}` | the files of `ref` as a new commit |
//!
//! And `GET /api/data/v1/artifacts/{id}/provenance`: the data versions a run artifact was derived from.
//!
//! A recurring run (`/apis/v2beta1/recurringruns`) may fire on new commits instead of a time, with the
//! trigger `{"data_commit": {"repo": R, "branch": B, "parameter": P, "path": F}}`: each time branch B of repo R
//! (in the recurring run's namespace) has a commit newer than the last fired one, one run starts, its parameter
//! P (if given) set to `secondrow://data/R@COMMIT[/F]` (the new commit, pinned). Commits made before the recurring run
//! was created do not fire; of several commits between two scheduler ticks the newest fires.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use secondrow_store::data::{normalize_path, DataError, DataRepos, PutOptions, DEFAULT_BRANCH};

use crate::artifacts::check_id;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ts, AppState};

/// Where the routes are nested.
pub const PREFIX: &str = "/api/data/v1";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/namespaces/{ns}/repos", get(list_repos).post(create_repo))
        .route("/namespaces/{ns}/repos/{repo}", delete(delete_repo))
        .route("/namespaces/{ns}/repos/{repo}/branches", get(list_branches).post(create_branch))
        .route("/namespaces/{ns}/repos/{repo}/commits", get(log))
        .route("/namespaces/{ns}/repos/{repo}/files", get(ls))
        .route("/namespaces/{ns}/repos/{repo}/file", get(download).put(upload))
        .route("/namespaces/{ns}/repos/{repo}/tree", axum::routing::put(upload_tree))
        .route("/namespaces/{ns}/repos/{repo}/diff", get(diff))
        .route("/namespaces/{ns}/repos/{repo}/revert", post(revert))
        .route("/artifacts/{id}/provenance", get(provenance))
}

impl From<DataError> for ApiError {
    fn from(e: DataError) -> ApiError {
        ApiError::from_kind(e.kind(), e.to_string())
    }
}

/// The namespace of the path (`_` is the shared one), if the caller may reach it.
fn namespace(caller: &Caller, ns: &str, repo: &str) -> ApiResult<String> {
    let ns = if ns == "_" { String::new() } else { ns.to_owned() };
    if !ns.is_empty() {
        secondrow_store::validate_namespace(&ns)?;
    }
    caller.check("data repo", repo, &ns)?;
    Ok(ns)
}

fn repos(s: &AppState) -> DataRepos {
    DataRepos::new(s.store().clone(), s.engine.artifacts().clone())
}

fn commit_wire(c: &secondrow_store::data::DataCommit) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["created_at"] = json!(ts(Some(c.created_at)));
    v
}

async fn list_repos(State(s): State<AppState>, caller: Caller, ApiPath(ns): ApiPath<String>) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, "*")?;
    let mut out = Vec::new();
    for r in s.store().list_data_repos(&ns).await? {
        let branches = s.store().data_branches(&ns, &r.name).await?;
        out.push(json!({
            "name": r.name,
            "created_at": ts(Some(r.created_at)),
            "branches": branches.iter().map(|b| json!({"name": b.name, "head": b.head})).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"repos": out})))
}

#[derive(Deserialize)]
struct CreateRepo {
    name: String,
}

async fn create_repo(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(ns): ApiPath<String>,
    ApiJson(body): ApiJson<CreateRepo>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &body.name)?;
    let r = s.store().create_data_repo(&ns, &body.name).await?;
    Ok(Json(json!({"name": r.name, "created_at": ts(Some(r.created_at))})))
}

async fn delete_repo(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    s.store().delete_data_repo(&ns, &repo).await?;
    Ok(Json(json!({})))
}

async fn list_branches(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    s.store().get_data_repo(&ns, &repo).await?;
    let branches = s.store().data_branches(&ns, &repo).await?;
    Ok(Json(json!({"branches": branches})))
}

#[derive(Deserialize)]
struct CreateBranch {
    name: String,
    from: Option<String>,
}

async fn create_branch(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<CreateBranch>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    secondrow_store::data::validate_branch_name(&body.name)?;
    let start = s.store().resolve_data_ref(&ns, &repo, body.from.as_deref().unwrap_or(DEFAULT_BRANCH)).await?;
    let b = s.store().create_data_branch(&ns, &repo, &body.name, &start.id).await?;
    Ok(Json(json!(b)))
}

#[derive(Deserialize, Default)]
struct RefQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
    path: Option<String>,
    limit: Option<usize>,
}

async fn log(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RefQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let head = s.store().resolve_data_ref(&ns, &repo, q.reference.as_deref().unwrap_or(DEFAULT_BRANCH)).await?;
    let log = s.store().data_log(&head, q.limit.unwrap_or(50).clamp(1, 1000)).await?;
    Ok(Json(json!({"commits": log.iter().map(commit_wire).collect::<Vec<_>>()})))
}

async fn ls(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RefQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let commit = s.store().resolve_data_ref(&ns, &repo, q.reference.as_deref().unwrap_or(DEFAULT_BRANCH)).await?;
    let tree = repos(&s).tree(&commit).await?;
    let files = DataRepos::select(&tree, &repo, q.path.as_deref().unwrap_or(""))?;
    let files: Vec<_> = files.iter().map(|(p, e)| json!({"path": p, "size": e.size, "object": e.object})).collect();
    Ok(Json(json!({"commit": commit.id, "files": files})))
}

async fn download(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RefQuery>,
) -> ApiResult<Response> {
    let ns = namespace(&caller, &ns, &repo)?;
    let commit = s.store().resolve_data_ref(&ns, &repo, q.reference.as_deref().unwrap_or(DEFAULT_BRANCH)).await?;
    let path = normalize_path(q.path.as_deref().unwrap_or(""))?;
    let tree = repos(&s).tree(&commit).await?;
    let entry = tree
        .get(&path)
        .ok_or_else(|| ApiError::NotFound(format!("file `{path}` not found in {repo}@{}", commit.short())))?;
    let stream = s.engine.artifacts().object_stream(&entry.object).await?;
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = header::HeaderValue::from_str(&commit.id) {
        response.headers_mut().insert("x-secondrow-data-commit", v);
    }
    Ok(response)
}

#[derive(Deserialize, Default)]
struct UploadQuery {
    branch: Option<String>,
    path: Option<String>,
    message: Option<String>,
}

/// The body, streamed to a temporary file, becomes the file `path` of one new commit on `branch`.
async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let path = normalize_path(q.path.as_deref().unwrap_or(""))?;
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (d.to_owned(), n.to_owned()),
        None => (String::new(), path.clone()),
    };
    if name.is_empty() {
        return Err(ApiError::invalid("`path` names no file"));
    }
    check_id("file name", &name)?;
    let branch = q.branch.unwrap_or_else(|| DEFAULT_BRANCH.to_owned());
    secondrow_store::data::validate_branch_name(&branch)?;
    s.store().get_data_repo(&ns, &repo).await?;
    let tmp =
        s.engine.artifacts().root().join("data").join("tmp").join(format!("upload-{}", secondrow_store::new_id()));
    let result = async {
        tokio::fs::create_dir_all(&tmp).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let file_path = tmp.join(&name);
        body_to_file(body, &file_path).await?;
        let author = match caller.confined_to() {
            Some(ns) => format!("token of namespace {ns}"),
            None => "admin".to_owned(),
        };
        let opts = PutOptions {
            prefix: dir,
            replace: false,
            message: q.message.unwrap_or_default(),
            author,
            stat_cache: None,
        };
        let out = repos(&s).put(&ns, &repo, &branch, &[file_path], &opts, &|_, _| {}).await?;
        Ok::<_, ApiError>(json!({
            "commit": out.commit.as_ref().map(commit_wire),
            "new_objects": out.new_objects,
            "new_bytes": out.new_bytes,
        }))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    Ok(Json(result?))
}

#[derive(Deserialize, Default)]
struct TreeQuery {
    branch: Option<String>,
    path: Option<String>,
    message: Option<String>,
    #[serde(default)]
    replace: bool,
}

/// Streams a request body into the file `path`.
async fn body_to_file(body: Body, path: &std::path::Path) -> ApiResult<()> {
    let mut file = tokio::fs::File::create(path).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("reading the body: {e}")))?;
        file.write_all(&chunk).await.map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    file.flush().await.map_err(|e| ApiError::Internal(e.to_string()))
}

/// Unpacks a tar archive (gzip-compressed or not) into `dest`: regular files and folders only, each inside
/// `dest` (the `tar` crate refuses `..` and absolute escapes); a link or device is the caller's error.
fn unpack_tree(archive: &std::path::Path, dest: &std::path::Path) -> ApiResult<()> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(archive).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut magic = [0u8; 2];
    let gz = file.read(&mut magic).map_err(|e| ApiError::Internal(e.to_string()))? == 2 && magic == [0x1f, 0x8b];
    file.rewind().map_err(|e| ApiError::Internal(e.to_string()))?;
    let reader: Box<dyn Read> = if gz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) };
    let mut tar = tar::Archive::new(reader);
    let bad = |e: std::io::Error| ApiError::invalid(format!("the body is not a readable tar archive: {e}"));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(ApiError::invalid(format!(
                "archive entry `{name}` is not a regular file or folder (links are not accepted)"
            )));
        }
        normalize_path(&name)?;
        if !entry.unpack_in(dest).map_err(bad)? {
            return Err(ApiError::invalid(format!("archive entry `{name}` is outside the archive's folder")));
        }
    }
    Ok(())
}

/// The body, a tar archive, becomes the files under folder `path` of one new commit on `branch`.
async fn upload_tree(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TreeQuery>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let prefix = normalize_path(q.path.as_deref().unwrap_or(""))?;
    let branch = q.branch.unwrap_or_else(|| DEFAULT_BRANCH.to_owned());
    secondrow_store::data::validate_branch_name(&branch)?;
    s.store().get_data_repo(&ns, &repo).await?;
    let tmp =
        s.engine.artifacts().root().join("data").join("tmp").join(format!("upload-{}", secondrow_store::new_id()));
    let result = async {
        let tree = tmp.join("tree");
        tokio::fs::create_dir_all(&tree).await.map_err(|e| ApiError::Internal(e.to_string()))?;
        let archive = tmp.join("body.tar");
        body_to_file(body, &archive).await?;
        let (a, t) = (archive.clone(), tree.clone());
        tokio::task::spawn_blocking(move || unpack_tree(&a, &t))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        let author = caller.confined_to().map_or("admin".to_owned(), |ns| format!("token of namespace {ns}"));
        let opts =
            PutOptions { prefix, replace: q.replace, message: q.message.unwrap_or_default(), author, stat_cache: None };
        let out = repos(&s).put(&ns, &repo, &branch, &[tree], &opts, &|_, _| {}).await?;
        Ok::<_, ApiError>(json!({
            "commit": out.commit.as_ref().map(commit_wire),
            "files": out.files,
            "new_objects": out.new_objects,
            "new_bytes": out.new_bytes,
        }))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&tmp).await;
    Ok(Json(result?))
}

#[derive(Deserialize)]
struct DiffQuery {
    from: String,
    to: String,
}

async fn diff(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let a = s.store().resolve_data_ref(&ns, &repo, &q.from).await?;
    let b = s.store().resolve_data_ref(&ns, &repo, &q.to).await?;
    let d = repos(&s).diff(&a, &b).await?;
    Ok(Json(json!({"from": a.id, "to": b.id, "changes": d})))
}

#[derive(Deserialize)]
struct RevertBody {
    #[serde(rename = "ref")]
    reference: String,
    branch: Option<String>,
}

async fn revert(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((ns, repo)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<RevertBody>,
) -> ApiResult<Json<Value>> {
    let ns = namespace(&caller, &ns, &repo)?;
    let old = s.store().resolve_data_ref(&ns, &repo, &body.reference).await?;
    let branch = body.branch.unwrap_or_else(|| old.branch.clone());
    let author = caller.confined_to().map_or("admin".to_owned(), |ns| format!("token of namespace {ns}"));
    let c = repos(&s).revert(&ns, &repo, &branch, &old, &author).await?;
    Ok(Json(commit_wire(&c)))
}

#[derive(Deserialize)]
struct CommitTrigger {
    repo: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    parameter: Option<String>,
    /// A path in the repository the parameter's URI names (the whole tree when absent).
    #[serde(default)]
    path: Option<String>,
}

/// Checks a `data_commit` trigger.
pub fn commit_trigger(v: &Value) -> ApiResult<()> {
    let t: CommitTrigger =
        serde_json::from_value(v.clone()).map_err(|e| ApiError::invalid(format!("trigger.data_commit: {e}")))?;
    secondrow_store::data::validate_repo_name(&t.repo)?;
    secondrow_store::data::validate_branch_name(t.branch.as_deref().unwrap_or(DEFAULT_BRANCH))?;
    normalize_path(t.path.as_deref().unwrap_or(""))?;
    if t.parameter.as_deref() == Some("") {
        return Err(ApiError::invalid("trigger.data_commit.parameter must not be empty"));
    }
    Ok(())
}

/// Whether a `data_commit` recurring run is due: its branch's head is newer than the last fired commit (or
/// than the recurring run, before the first). Returns the head's time (recorded as the fire time) and the
/// parameters to set.
pub async fn commit_due(
    s: &AppState,
    rr: &secondrow_store::RecurringRunRecord,
) -> ApiResult<Option<(i64, serde_json::Map<String, Value>)>> {
    let Some(v) = rr.trigger.get("data_commit") else { return Ok(None) };
    let Ok(t) = serde_json::from_value::<CommitTrigger>(v.clone()) else { return Ok(None) };
    let branch = t.branch.as_deref().unwrap_or(DEFAULT_BRANCH);
    let head = match s.store().resolve_data_ref(&rr.namespace, &t.repo, branch).await {
        Ok(c) => c,
        // No such repo or branch (yet): nothing to fire on.
        Err(DataError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if head.created_at <= rr.last_fire_at.unwrap_or(rr.created_at) {
        return Ok(None);
    }
    let mut extra = serde_json::Map::new();
    if let Some(p) = t.parameter {
        let path = normalize_path(t.path.as_deref().unwrap_or(""))?;
        let suffix = if path.is_empty() { String::new() } else { format!("/{path}") };
        extra.insert(p, json!(format!("secondrow://data/{}@{}{suffix}", t.repo, head.id)));
    }
    Ok(Some((head.created_at, extra)))
}

async fn provenance(State(s): State<AppState>, caller: Caller, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    check_id("artifact id", &id)?;
    let a = s.store().get_artifact(&id).await?;
    caller.run(&s, &a.run_id).await?;
    let found = s.store().data_provenance(&id).await?;
    // Only what the caller's namespace may see (a lineage never crosses namespaces, but be sure).
    let found: Vec<_> = match caller.confined_to() {
        Some(_) => {
            let mut visible = Vec::new();
            for p in found {
                if caller.run(&s, &p.run_id).await.is_ok() {
                    visible.push(p);
                }
            }
            visible
        }
        None => found,
    };
    Ok(Json(json!({"artifact_id": id, "sources": found})))
}

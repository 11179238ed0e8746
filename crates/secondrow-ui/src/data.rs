//! The data pages (versioned data repositories, `secondrow data`): the repositories the caller may see with
//! their branches, a repository's log per branch, one commit's files with sizes, and the diff between two
//! commits. Namespaced like the API's data routes: `_` in a URL is the shared namespace (`""`), a namespace
//! token reaches only its own. Everything is read from the store and the tree manifests; nothing changes
//! here. The run page links each importer's resolved commit here ([`data_reads`]).

use askama::Template;
use axum::extract::{Extension, Path as UrlPath, Query, State};
use axum::response::Response;
use serde::Deserialize;

use secondrow_api::auth::Caller;
use secondrow_api::ApiError;
use secondrow_store::data::{Change, DataCommit, DataError, DataRepos, DEFAULT_BRANCH};
use secondrow_store::{ArtifactRecord, TaskRecord};

use crate::graph::url_part;
use crate::pages::rfc3339;
use crate::{html, Chrome, Csrf, Ui, UiError};

/// The most files a commit page lists (the rest are counted).
const MAX_FILES: usize = 5_000;
/// The most commits a log page lists.
const MAX_LOG: usize = 200;

impl From<DataError> for UiError {
    fn from(e: DataError) -> UiError {
        UiError::Api(ApiError::from(e))
    }
}

/// A namespace as it appears in URLs: `_` for the shared one.
pub fn ns_url(ns: &str) -> &str {
    if ns.is_empty() {
        "_"
    } else {
        ns
    }
}

/// The namespace of a URL segment, if the caller may read repository `repo` in it.
fn namespace(caller: &Caller, ns: &str, repo: &str) -> Result<String, UiError> {
    let ns = if ns == "_" { String::new() } else { ns.to_owned() };
    if !ns.is_empty() {
        secondrow_store::validate_namespace(&ns)?;
    }
    caller.check("data repo", repo, &ns)?;
    Ok(ns)
}

/// The page of repository `repo` in namespace `ns` (`ref`: a branch or commit to start the log from).
pub fn repo_href(ns: &str, repo: &str, reference: Option<&str>) -> String {
    let base = format!("/data/{}/{}", url_part(ns_url(ns), false), url_part(repo, false));
    match reference {
        Some(r) => format!("{base}?ref={}", url_part(r, false)),
        None => base,
    }
}

/// The page of commit `id` of repository `repo`.
pub fn commit_href(ns: &str, repo: &str, id: &str) -> String {
    format!("/data/{}/{}/commits/{}", url_part(ns_url(ns), false), url_part(repo, false), url_part(id, false))
}

fn diff_href(ns: &str, repo: &str, from: &str, to: &str) -> String {
    format!(
        "/data/{}/{}/diff?from={}&to={}",
        url_part(ns_url(ns), false),
        url_part(repo, false),
        url_part(from, false),
        url_part(to, false)
    )
}

/// Bytes as a short human size (`1.5 MiB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub struct BranchLink {
    pub name: String,
    pub head: String,
    pub href: String,
    pub current: bool,
}

pub struct RepoRow {
    pub namespace: String,
    pub name: String,
    pub href: String,
    pub created: String,
    pub branches: Vec<BranchLink>,
}

#[derive(Template)]
#[template(path = "data_repos.html")]
struct ReposPage {
    c: Chrome,
    rows: Vec<RepoRow>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    namespace: Option<String>,
}

fn branch_links(
    ns: &str,
    repo: &str,
    branches: &[secondrow_store::data::DataBranch],
    current: &str,
) -> Vec<BranchLink> {
    branches
        .iter()
        .map(|b| BranchLink {
            name: b.name.clone(),
            head: b.head.get(..12).unwrap_or(&b.head).to_owned(),
            href: repo_href(ns, repo, Some(&b.name)),
            current: b.name == current,
        })
        .collect()
}

/// `/data`: the repositories of every namespace the caller may see (`?namespace=` narrows).
pub async fn repos(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let store = ui.app.store();
    let requested = q.namespace.as_deref().map(|n| if n == "_" { "" } else { n });
    let list = match caller.list_namespace(requested)? {
        Some(ns) if !ns.is_empty() || requested.is_some() => store.list_data_repos(ns).await?,
        _ => store.list_all_data_repos().await?,
    };
    let mut rows = Vec::new();
    for r in list {
        let branches = store.data_branches(&r.namespace, &r.name).await?;
        rows.push(RepoRow {
            href: repo_href(&r.namespace, &r.name, None),
            branches: branch_links(&r.namespace, &r.name, &branches, ""),
            created: rfc3339(r.created_at),
            namespace: r.namespace,
            name: r.name,
        });
    }
    Ok(html(ReposPage { c: Chrome::new("Data", &csrf, Some(&caller), "data"), rows }.render()))
}

pub struct CommitRow {
    pub id: String,
    pub short: String,
    pub href: String,
    pub branch: String,
    pub message: String,
    pub author: String,
    pub created: String,
    pub files: i64,
    pub size: String,
    /// The diff with the parent (empty for a first commit).
    pub diff_href: String,
}

fn commit_row(c: &DataCommit) -> CommitRow {
    CommitRow {
        id: c.id.clone(),
        short: c.short().to_owned(),
        href: commit_href(&c.namespace, &c.repo, &c.id),
        branch: c.branch.clone(),
        message: c.message.clone(),
        author: c.author.clone(),
        created: rfc3339(c.created_at),
        files: c.files,
        size: human_size(c.bytes.max(0) as u64),
        diff_href: c.parent.as_deref().map(|p| diff_href(&c.namespace, &c.repo, p, &c.id)).unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "data_repo.html")]
struct RepoPage {
    c: Chrome,
    namespace: String,
    repo: String,
    reference: String,
    branches: Vec<BranchLink>,
    commits: Vec<CommitRow>,
    diff_action: String,
}

#[derive(Deserialize, Default)]
pub struct RefQuery {
    #[serde(rename = "ref")]
    reference: Option<String>,
}

/// `/data/{ns}/{repo}?ref=`: the branches and the history from `ref` (default `main`, else the first branch).
pub async fn repo(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Query(q): Query<RefQuery>,
) -> Result<Response, UiError> {
    let ns = namespace(&caller, &ns, &name)?;
    let store = ui.app.store();
    let r = store.get_data_repo(&ns, &name).await?;
    let branches = store.data_branches(&ns, &r.name).await?;
    let reference = q.reference.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        match branches.iter().find(|b| b.name == DEFAULT_BRANCH).or(branches.first()) {
            Some(b) => b.name.clone(),
            None => DEFAULT_BRANCH.to_owned(),
        }
    });
    let commits = if branches.is_empty() {
        Vec::new()
    } else {
        let head = store.resolve_data_ref(&ns, &r.name, &reference).await?;
        store.data_log(&head, MAX_LOG).await?.iter().map(commit_row).collect()
    };
    let page = RepoPage {
        c: Chrome::new(format!("Data repo {}", r.name), &csrf, Some(&caller), "data"),
        branches: branch_links(&ns, &r.name, &branches, &reference),
        diff_action: format!("/data/{}/{}/diff", url_part(ns_url(&ns), false), url_part(&r.name, false)),
        namespace: ns,
        repo: r.name,
        reference,
        commits,
    };
    Ok(html(page.render()))
}

pub struct FileRow {
    pub path: String,
    pub size: u64,
    pub human: String,
}

#[derive(Template)]
#[template(path = "data_commit.html")]
struct CommitPage {
    c: Chrome,
    namespace: String,
    repo: String,
    repo_href: String,
    commit: CommitRow,
    parent_href: String,
    files: Vec<FileRow>,
    more: usize,
}

/// `/data/{ns}/{repo}/commits/{ref}`: one commit (any ref form) and its files with sizes.
pub async fn commit(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((ns, name, reference)): UrlPath<(String, String, String)>,
) -> Result<Response, UiError> {
    let ns = namespace(&caller, &ns, &name)?;
    let store = ui.app.store();
    let c = store.resolve_data_ref(&ns, &name, &reference).await?;
    let repos = DataRepos::new(store.clone(), ui.app.engine.artifacts().clone());
    let tree = repos.tree(&c).await?;
    let more = tree.len().saturating_sub(MAX_FILES);
    let files = tree
        .iter()
        .take(MAX_FILES)
        .map(|(path, e)| FileRow { path: path.clone(), size: e.size, human: human_size(e.size) })
        .collect();
    let page = CommitPage {
        c: Chrome::new(format!("Data commit {}", c.short()), &csrf, Some(&caller), "data"),
        repo_href: repo_href(&ns, &c.repo, Some(&c.branch)),
        parent_href: c.parent.as_deref().map(|p| commit_href(&ns, &c.repo, p)).unwrap_or_default(),
        commit: commit_row(&c),
        namespace: ns,
        repo: c.repo.clone(),
        files,
        more,
    };
    Ok(html(page.render()))
}

pub struct DiffRow {
    pub path: String,
    pub change: &'static str,
    pub old_size: String,
    pub new_size: String,
}

#[derive(Template)]
#[template(path = "data_diff.html")]
struct DiffPage {
    c: Chrome,
    repo: String,
    repo_href: String,
    from: CommitRow,
    to: CommitRow,
    rows: Vec<DiffRow>,
}

#[derive(Deserialize, Default)]
pub struct DiffQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `/data/{ns}/{repo}/diff?from=A&to=B`: files added, removed and changed from A to B, with sizes.
pub async fn diff(
    State(ui): State<Ui>,
    caller: Caller,
    Extension(csrf): Extension<Csrf>,
    UrlPath((ns, name)): UrlPath<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> Result<Response, UiError> {
    let ns = namespace(&caller, &ns, &name)?;
    let (Some(from), Some(to)) = (q.from.filter(|s| !s.is_empty()), q.to.filter(|s| !s.is_empty())) else {
        return Err(UiError::BadRequest("a diff needs two refs: `from` and `to` (commit ids or branches)".into()));
    };
    let store = ui.app.store();
    let a = store.resolve_data_ref(&ns, &name, &from).await?;
    let b = store.resolve_data_ref(&ns, &name, &to).await?;
    let repos = DataRepos::new(store.clone(), ui.app.engine.artifacts().clone());
    let size = |s: Option<u64>| s.map(human_size).unwrap_or_default();
    let rows = repos
        .diff(&a, &b)
        .await?
        .into_iter()
        .map(|d| DiffRow {
            change: match d.change {
                Change::Added => "added",
                Change::Removed => "removed",
                Change::Changed => "changed",
            },
            old_size: size(d.old_size),
            new_size: size(d.new_size),
            path: d.path,
        })
        .collect();
    let page = DiffPage {
        c: Chrome::new(format!("Data diff {}..{}", a.short(), b.short()), &csrf, Some(&caller), "data"),
        repo_href: repo_href(&ns, &name, None),
        repo: name,
        from: commit_row(&a),
        to: commit_row(&b),
        rows,
    };
    Ok(html(page.render()))
}

/// What one importer of a run read: the task, the repository, the ref asked and the commit it resolved to.
pub struct DataRead {
    pub task: String,
    pub task_href: String,
    pub repo: String,
    pub repo_href: String,
    pub reference: String,
    pub path: String,
    pub commit: String,
    pub commit_href: String,
}

/// The data versions the importers of run `run_id` (namespace `ns`) recorded on their artifacts.
pub fn data_reads(run_id: &str, ns: &str, artifacts: &[ArtifactRecord], tasks: &[TaskRecord]) -> Vec<DataRead> {
    let text = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_owned();
    artifacts
        .iter()
        .filter_map(|a| {
            let d = a.metadata.get(secondrow_store::data::ARTIFACT_METADATA_KEY)?;
            let task = a
                .task_id
                .as_ref()
                .and_then(|t| tasks.iter().find(|x| &x.id == t))
                .map(|t| t.path.clone())
                .unwrap_or_default();
            let (repo, commit) = (text(d, "repo"), text(d, "commit"));
            Some(DataRead {
                task_href: format!("/runs/{}/tasks/{}", url_part(run_id, false), url_part(&task, true)),
                task,
                repo_href: repo_href(ns, &repo, None),
                commit_href: commit_href(ns, &repo, &commit),
                reference: text(d, "ref"),
                path: text(d, "path"),
                repo,
                commit,
            })
        })
        .collect()
}

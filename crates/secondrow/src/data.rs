//! `secondrow data`: versioned data repositories (Git for data): put files and folders as commits, list,
//! get, diff, branch and revert, on the local store (namespace `--namespace`, default `""`). The logic is
//! `secondrow_store::data`; this module parses arguments, shows progress and prints.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use secondrow_store::data::{Change, DataCommit, DataRepos, PutOptions, Target};

use super::error::{Failure, Result};
use super::term::Safe;
use super::{fmt_time, Home, Settings};

#[derive(Args)]
pub struct DataArgs {
    /// The namespace of the repositories. Default `""`, the admin's (local runs read it).
    #[arg(long, global = true, default_value = "")]
    namespace: String,
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Create, list and delete repositories.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Store files and folders as one new commit on a branch.
    ///
    /// A file goes in as its name, a folder's contents as they are laid out, under FOLDER when given; the
    /// files are added over the branch's tree (`--replace`: the tree becomes exactly them). Unchanged files
    /// cost no storage; when nothing changed no commit is made.
    Put {
        /// `NAME[@BRANCH][:FOLDER]` (default branch `main`).
        target: String,
        /// Files and folders to store.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The commit message.
        #[arg(long, short = 'm', default_value = "")]
        message: String,
        /// Remove the files of the branch that are not among the inputs.
        #[arg(long)]
        replace: bool,
        /// Recorded as the commit's author. Default: $USER.
        #[arg(long)]
        author: Option<String>,
        /// Print the new commit as JSON (`null` when nothing changed).
        #[arg(long)]
        json: bool,
        /// Report progress on stderr whatever the size: a bar on a terminal, else a line per 10 %. Without
        /// it, a bar is drawn for transfers of 32 MiB or more when stderr is a terminal.
        #[arg(long)]
        progress: bool,
    },
    /// The history of a branch or commit, newest first (`NAME[@REF]`).
    Log {
        target: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The files of a commit (`NAME@REF`), under PATH when given.
    Ls {
        target: String,
        path: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Copy files out of a commit.
    ///
    /// A file goes to DEST (or into DEST when it is a folder); a folder or the whole tree goes under DEST.
    Get {
        /// `NAME@REF[:PATH]`.
        target: String,
        dest: PathBuf,
        /// Report progress on stderr whatever the size (see `put --progress`).
        #[arg(long)]
        progress: bool,
    },
    /// Files added, removed and changed from commit A to commit B (`NAME@A NAME@B`).
    Diff {
        from: String,
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Create branch BRANCH at REF (default: `main`).
    Branch {
        repo: String,
        branch: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// The data commits an artifact (a trained model, say) was derived from.
    ///
    /// Follows lineage back through the tasks that produced it to the importers of `secondrow://data/…` URIs.
    Provenance {
        artifact_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove stored objects that no commit of any repository references.
    ///
    /// Objects left by deleted repositories or by puts that were interrupted, and stale temporary files. Safe
    /// while puts run: objects stored or reused since the oldest running put started, or younger than the
    /// grace period, are kept. Covers every namespace (objects are shared between them).
    Gc {
        /// Only report what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Keep objects modified less than this many seconds ago.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
        #[arg(long)]
        json: bool,
    },
    /// Restore the files of `NAME@REF` as a new commit on a branch (the commit's own branch by default).
    Revert {
        target: String,
        #[arg(long)]
        branch: Option<String>,
        #[arg(long)]
        author: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    Create {
        name: String,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a repository with its commits and branches.
    Delete {
        name: String,
    },
}

/// Bars are drawn for transfers of at least this many bytes (and only on a terminal).
const BAR_FROM_BYTES: u64 = 32 << 20;

/// Progress of a put or get on stderr (never stdout, which `--json` keeps for the result): a bar when
/// stderr is a terminal (for large transfers, or any with `--progress`), lines at each 10 % with
/// `--progress` when it is not, nothing otherwise.
struct Progress {
    label: &'static str,
    forced: bool,
    bar: Option<ProgressBar>,
    /// The last tenth reported as a line.
    tenth: AtomicU64,
}

impl Progress {
    fn new(label: &'static str, forced: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        Progress { label, forced, bar, tenth: AtomicU64::new(0) }
    }

    fn update(&self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) if self.forced || total >= BAR_FROM_BYTES => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Some(_) => {}
            None if self.forced => {
                let tenth = (done.min(total) * 10).checked_div(total).unwrap_or(10);
                let last = self.tenth.load(Ordering::Relaxed);
                if tenth > last
                    && self.tenth.compare_exchange(last, tenth, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                {
                    eprintln!("{}: {}% ({done} of {total} bytes)", self.label, tenth * 10);
                }
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn author(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn commit_json(c: &DataCommit) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or_default()
}

fn print_commit(c: &DataCommit) {
    println!("commit {}  ({})", c.id, Safe(&c.branch));
    println!("  {}  {}  {} files, {} bytes", fmt_time(c.created_at), Safe(&c.author), c.files, c.bytes);
    if !c.message.is_empty() {
        println!("  {}", Safe(&c.message));
    }
}

pub async fn run(settings: &Settings, args: DataArgs) -> Result<ExitCode> {
    let home = Home::resolve(settings)?;
    let store = home.store().await?;
    let repos = DataRepos::new(store.clone(), home.artifacts().await?);
    let ns = args.namespace.as_str();
    match args.command {
        DataCommand::Repo(RepoCommand::Create { name }) => {
            store.create_data_repo(ns, &name).await?;
            println!("created data repo {name}");
        }
        DataCommand::Repo(RepoCommand::List { json }) => {
            let list = store.list_data_repos(ns).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for r in list {
                    let branches = store.data_branches(ns, &r.name).await?;
                    let names: Vec<_> = branches
                        .iter()
                        .map(|b| format!("{}@{}", b.name, b.head.get(..12).unwrap_or(&b.head)))
                        .collect();
                    println!("{:<30} {}  {}", Safe(&r.name), fmt_time(r.created_at), Safe(&names.join(" ")));
                }
            }
        }
        DataCommand::Repo(RepoCommand::Delete { name }) => {
            store.delete_data_repo(ns, &name).await?;
            println!("deleted data repo {name}");
        }
        DataCommand::Put { target, paths, message, replace, author: who, json, progress } => {
            let t = Target::parse(&target)?;
            // Per namespace and repository, on this machine: what earlier puts from here already hashed.
            let ns_dir = if ns.is_empty() { "_" } else { ns };
            let stat_cache = home.root.join("data-stat-cache").join(ns_dir).join(format!("{}.json", t.repo));
            let opts = PutOptions {
                prefix: t.path.clone().unwrap_or_default(),
                replace,
                message,
                author: author(who),
                stat_cache: Some(stat_cache),
            };
            let shown = Progress::new("put", progress);
            let out = repos
                .put(ns, &t.repo, t.reference(), &paths, &opts, &|done: u64, total: u64| shown.update(done, total))
                .await;
            shown.finish();
            let out = out?;
            match (&out.commit, json) {
                (Some(c), true) => println!("{}", serde_json::to_string_pretty(&commit_json(c))?),
                (None, true) => println!("null"),
                (Some(c), false) => println!(
                    "committed {} to {}@{} ({} files put, {} new objects, {} new bytes)",
                    c.short(),
                    t.repo,
                    Safe(&c.branch),
                    out.files,
                    out.new_objects,
                    out.new_bytes
                ),
                (None, false) => {
                    println!("nothing changed: {}@{} already holds these files", t.repo, Safe(t.reference()))
                }
            }
        }
        DataCommand::Log { target, limit, json } => {
            let t = Target::parse(&target)?;
            let head = store.resolve_data_ref(ns, &t.repo, t.reference()).await?;
            let log = store.data_log(&head, limit.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&log)?);
            } else {
                for c in &log {
                    print_commit(c);
                }
            }
        }
        DataCommand::Ls { target, path, json } => {
            let t = Target::parse(&target)?;
            let commit = store.resolve_data_ref(ns, &t.repo, t.reference()).await?;
            let tree = repos.tree(&commit).await?;
            let path = path.or(t.path).unwrap_or_default();
            let files = DataRepos::select(&tree, &t.repo, &path)?;
            if json {
                let list: Vec<_> =
                    files.iter().map(|(p, e)| json!({"path": p, "size": e.size, "object": e.object})).collect();
                println!("{}", serde_json::to_string_pretty(&json!({"commit": commit.id, "files": list}))?);
            } else {
                for (p, e) in files {
                    println!("{:>12}  {}", e.size, Safe(&p));
                }
            }
        }
        DataCommand::Get { target, dest, progress } => {
            let t = Target::parse(&target)?;
            let commit = store.resolve_data_ref(ns, &t.repo, t.reference()).await?;
            let shown = Progress::new("get", progress);
            let written = repos
                .get(&commit, t.path.as_deref().unwrap_or(""), &dest, &|done: u64, total: u64| {
                    shown.update(done, total)
                })
                .await;
            shown.finish();
            let written = written?;
            eprintln!("wrote {} file(s) of {}@{} to {}", written.len(), t.repo, commit.short(), dest.display());
        }
        DataCommand::Diff { from, to, json } => {
            let (a, b) = (Target::parse(&from)?, Target::parse(&to)?);
            let ca = store.resolve_data_ref(ns, &a.repo, a.reference()).await?;
            let cb = store.resolve_data_ref(ns, &b.repo, b.reference()).await?;
            let diff = repos.diff(&ca, &cb).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&diff)?);
            } else {
                let size = |s: Option<u64>| s.map_or("-".to_owned(), |s| s.to_string());
                for d in diff {
                    let mark = match d.change {
                        Change::Added => "added  ",
                        Change::Removed => "removed",
                        Change::Changed => "changed",
                    };
                    println!("{mark}  {:>12} -> {:<12}  {}", size(d.old_size), size(d.new_size), Safe(&d.path));
                }
            }
        }
        DataCommand::Branch { repo, branch, from } => {
            let t = Target::parse(&repo)?;
            if t.reference.is_some() || t.path.is_some() {
                return Err(Failure::usage(format!("`{repo}`: give the repo name alone and the start with --from")));
            }
            let from = from.unwrap_or_else(|| secondrow_store::data::DEFAULT_BRANCH.to_owned());
            secondrow_store::data::validate_branch_name(&branch)?;
            let start = store.resolve_data_ref(ns, &t.repo, &from).await?;
            store.create_data_branch(ns, &t.repo, &branch, &start.id).await?;
            println!("created branch {}@{} at {}", t.repo, Safe(&branch), start.short());
        }
        DataCommand::Provenance { artifact_id, json } => {
            let found = store.data_provenance(&artifact_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("artifact {artifact_id} was derived from no data version");
            } else {
                for p in found {
                    println!(
                        "{}@{} (from ref {}, path `{}`): imported as artifact {} in run {}, {} task step(s) back",
                        Safe(p.data["repo"].as_str().unwrap_or("?")),
                        Safe(p.data["commit"].as_str().unwrap_or("?")),
                        Safe(p.data["ref"].as_str().unwrap_or("?")),
                        Safe(p.data["path"].as_str().unwrap_or("")),
                        p.artifact_id,
                        p.run_id,
                        p.depth
                    );
                }
            }
        }
        DataCommand::Gc { dry_run, grace_secs, json } => {
            let grace = std::time::Duration::from_secs(grace_secs);
            let r = secondrow_store::data::gc::collect_garbage(&store, &repos.objects, grace, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!(
                    "{verb} {} unreferenced object(s), {} bytes, and {} temporary file(s); {} object(s) referenced, {} unreferenced kept as recent",
                    r.removed, r.removed_bytes, r.removed_tmp, r.referenced, r.kept_recent
                );
                if r.open_puts > 0 {
                    println!("{} put(s) running: objects stored since the oldest started are kept", r.open_puts);
                }
            }
        }
        DataCommand::Revert { target, branch, author: who } => {
            let t = Target::parse(&target)?;
            let Some(reference) = t.reference.as_deref() else {
                return Err(Failure::usage(format!("`{target}`: name the state to restore, as NAME@REF")));
            };
            let old = store.resolve_data_ref(ns, &t.repo, reference).await?;
            let branch = branch.unwrap_or_else(|| old.branch.clone());
            let c = repos.revert(ns, &t.repo, &branch, &old, &author(who)).await?;
            println!("committed {} to {}@{}: the files of {}", c.short(), t.repo, Safe(&branch), old.short());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `runs get` lines naming the data commit each importer of the run read.
pub async fn print_run_data(store: &secondrow_store::Store, run_id: &str) -> Result<()> {
    let artifacts = store.list_artifacts(run_id).await?;
    let tasks = store.list_tasks(run_id).await?;
    for a in artifacts {
        let Some(d) = a.metadata.get(secondrow_store::data::ARTIFACT_METADATA_KEY) else { continue };
        let task = tasks.iter().find(|t| Some(&t.id) == a.task_id.as_ref()).map_or("?", |t| t.path.as_str());
        println!(
            "  data  {}: {}@{} = commit {}",
            Safe(task),
            Safe(d["repo"].as_str().unwrap_or("?")),
            Safe(d["ref"].as_str().unwrap_or("?")),
            Safe(d["commit"].as_str().unwrap_or("?"))
        );
    }
    Ok(())
}

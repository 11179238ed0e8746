//! Importers of data versions: an importer whose URI is `secondrow://data/NAME@REF[/PATH]` (or
//! `secondrow://data/NAME@REF:PATH`, needed when the branch name has a `/`) resolves REF in the run's
//! namespace to a commit when the task runs, and imports that commit's files.
//!
//! The files are checked out once per commit and selection under `data/checkouts/<commit>/` in the
//! artifact root (written to a temporary folder, then renamed), so the artifact's URI names the commit, not
//! the branch: a downstream task's cache key (which covers input artifact URIs) changes exactly when the
//! data does. The artifact's metadata records what was resolved under [`METADATA_KEY`]: repo, ref,
//! commit and path.

use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use secondrow_store::data::{normalize_path, DataRepos, Target};
use secondrow_store::{ArtifactStore, Store};

/// The URI prefix of data versions.
pub const SCHEME: &str = "secondrow://data/";
/// The artifact metadata key that records the resolved data version.
pub const METADATA_KEY: &str = secondrow_store::data::ARTIFACT_METADATA_KEY;

/// A data-version URI resolved and checked out: the local URI to import, and what it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub uri: String,
    /// `{"repo", "ref", "commit", "path"}`.
    pub source: Value,
}

/// `NAME@REF[/PATH]` or `NAME@REF:PATH` (the part after the scheme).
fn parse(rest: &str) -> Result<Target, String> {
    let err = |e: secondrow_store::data::DataError| format!("`{SCHEME}{rest}`: {e}");
    if rest.contains(':') {
        return Target::parse(rest).map_err(err);
    }
    let (name, reference, path) = match rest.split_once('@') {
        Some((name, r)) => match r.split_once('/') {
            Some((r, p)) => (name, Some(r), Some(p)),
            None => (name, Some(r), None),
        },
        None => match rest.split_once('/') {
            Some((name, p)) => (name, None, Some(p)),
            None => (rest, None, None),
        },
    };
    let mut t = Target::parse(name).map_err(err)?;
    if reference == Some("") {
        return Err(format!("`{SCHEME}{rest}`: empty ref after `@`"));
    }
    t.reference = reference.map(str::to_owned);
    t.path = path.map(str::to_owned);
    Ok(t)
}

/// Resolves `uri` (which starts with [`SCHEME`]) in `namespace` and checks the files out.
pub async fn resolve(store: &Store, artifacts: &ArtifactStore, namespace: &str, uri: &str) -> Result<Resolved, String> {
    let rest = uri.strip_prefix(SCHEME).ok_or_else(|| format!("`{uri}` is not a {SCHEME} URI"))?;
    let target = parse(rest)?;
    let path = normalize_path(target.path.as_deref().unwrap_or("")).map_err(|e| format!("`{uri}`: {e}"))?;
    let commit = store
        .resolve_data_ref(namespace, &target.repo, target.reference())
        .await
        .map_err(|e| format!("importing `{uri}`: {e}"))?;
    let repos = DataRepos::new(store.clone(), artifacts.clone());
    let tree = repos.tree(&commit).await.map_err(|e| format!("importing `{uri}`: {e}"))?;
    // Fail before writing anything when the path is not in the commit.
    DataRepos::select(&tree, &target.repo, &path).map_err(|e| format!("importing `{uri}`: {e}"))?;
    let selection = if path.is_empty() { "all".to_owned() } else { hex::encode(&Sha256::digest(path.as_bytes())[..8]) };
    let checkouts = artifacts.root().join("data").join("checkouts");
    let dir = checkouts.join(&commit.id).join(selection);
    let leaf = if path.is_empty() { "files" } else { path.rsplit('/').next().unwrap_or("files") };
    let local: PathBuf = dir.join(leaf);
    if !dir.exists() {
        let tmp = checkouts.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = repos.get(&commit, &path, &tmp.join(leaf), &|_, _| {}).await;
        let placed = match written {
            Ok(_) => {
                tokio::fs::create_dir_all(checkouts.join(&commit.id)).await.map_err(|e| e.to_string())?;
                match tokio::fs::rename(&tmp, &dir).await {
                    Ok(()) => Ok(()),
                    // Another task checked the same selection out first: theirs is as good.
                    Err(_) if dir.exists() => Ok(()),
                    Err(e) => Err(format!("checking out `{uri}`: {e}")),
                }
            }
            Err(e) => Err(format!("checking out `{uri}`: {e}")),
        };
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        placed?;
    }
    Ok(Resolved {
        uri: local.to_string_lossy().into_owned(),
        source: json!({
            "repo": target.repo,
            "ref": target.reference(),
            "commit": commit.id,
            "path": path,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_take_ref_and_path() {
        let t = parse("imgs@main/train/a.csv").unwrap();
        assert_eq!((t.repo.as_str(), t.reference(), t.path.as_deref()), ("imgs", "main", Some("train/a.csv")));
        let t = parse("imgs@exp/a:train").unwrap();
        assert_eq!((t.reference(), t.path.as_deref()), ("exp/a", Some("train")));
        let t = parse("imgs").unwrap();
        assert_eq!((t.reference(), t.path.as_deref()), ("main", None));
        let t = parse("imgs/x.csv").unwrap();
        assert_eq!((t.reference(), t.path.as_deref()), ("main", Some("x.csv")));
        assert!(parse("im gs@main").is_err());
        assert!(parse("imgs@/x").is_err());
    }
}

//! Artifact bytes, reached through `object_store`.
//!
//! Artifact URIs are absolute local paths under the artifact root (what kfp's executor expects for a
//! local backend, docs/kfp-contract.md §2.3). Reads go through [`ArtifactStore::relative`], which refuses any
//! URI that escapes the root, so no caller can be tricked into reading `../../etc/passwd`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::{Result, StoreError};

#[derive(Clone)]
pub struct ArtifactStore {
    root: PathBuf,
    objects: Arc<dyn ObjectStore>,
}

impl ArtifactStore {
    /// Opens a local artifact root (created if missing).
    pub fn open_local(root: &Path) -> Result<ArtifactStore> {
        std::fs::create_dir_all(root)
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", root.display())))?;
        let root =
            root.canonicalize().map_err(|e| StoreError::Artifacts(format!("resolving {}: {e}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| StoreError::Artifacts(e.to_string()))?;
        Ok(ArtifactStore { root, objects: Arc::new(fs) })
    }

    /// The absolute local directory artifacts are written under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The URI for a path under the root: the absolute path itself.
    pub fn uri_for(&self, relative: &str) -> String {
        self.root.join(relative).to_string_lossy().into_owned()
    }

    /// The object path of `uri` relative to the root, refusing anything outside it.
    pub fn relative(&self, uri: &str) -> Result<ObjectPath> {
        let path = Path::new(uri);
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| StoreError::InvalidArgument(format!("`{uri}` is outside the artifact root")))?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(StoreError::InvalidArgument(format!("`{uri}` escapes the artifact root"))),
            }
        }
        ObjectPath::parse(parts.join("/")).map_err(|e| StoreError::InvalidArgument(format!("`{uri}`: {e}")))
    }

    /// Reads one artifact file.
    pub async fn read(&self, uri: &str) -> Result<Vec<u8>> {
        let loc = self.relative(uri)?;
        let got = self.objects.get(&loc).await.map_err(|e| map_os(uri, e))?;
        let bytes = got.bytes().await.map_err(|e| map_os(uri, e))?;
        Ok(bytes.to_vec())
    }

    /// Copies the artifact at `uri` (a file, or a directory tree) into `dest`; returns the files written.
    pub async fn download(&self, uri: &str, dest: &Path) -> Result<Vec<PathBuf>> {
        let loc = self.relative(uri)?;
        let mut written = Vec::new();
        match self.objects.head(&loc).await {
            Ok(_) => {
                let bytes = self.read(uri).await?;
                write_file(dest, &bytes).await?;
                written.push(dest.to_path_buf());
            }
            Err(object_store::Error::NotFound { .. }) => {
                let items: Vec<_> = self.objects.list(Some(&loc)).try_collect().await.map_err(|e| map_os(uri, e))?;
                if items.is_empty() {
                    return Err(StoreError::NotFound { kind: "artifact file", id: uri.to_owned() });
                }
                for item in items {
                    let suffix = item
                        .location
                        .prefix_match(&loc)
                        .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>());
                    let Some(suffix) = suffix else { continue };
                    let target = suffix.iter().fold(dest.to_path_buf(), |p, s| p.join(s));
                    let got = self.objects.get(&item.location).await.map_err(|e| map_os(uri, e))?;
                    let bytes = got.bytes().await.map_err(|e| map_os(uri, e))?;
                    write_file(&target, &bytes).await?;
                    written.push(target);
                }
            }
            Err(e) => return Err(map_os(uri, e)),
        }
        Ok(written)
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", parent.display())))?;
    }
    tokio::fs::write(path, bytes).await.map_err(|e| StoreError::Artifacts(format!("writing {}: {e}", path.display())))
}

fn map_os(uri: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound { kind: "artifact file", id: uri.to_owned() },
        other => StoreError::Artifacts(format!("{uri}: {other}")),
    }
}

//! Artifact bytes, reached through `object_store`.
//!
//! Artifact URIs are absolute local paths under the artifact root (what kfp's executor expects for a
//! local backend, docs/kfp-contract.md §2.3). Reads go through [`ArtifactStore::relative`], which refuses any
//! URI that escapes the root, so no caller can be tricked into reading `../../etc/passwd`.
//!
//! Data repositories (`crate::data`) keep file bytes here as content-addressed objects: the object id is
//! the SHA-256 of the bytes (hex), stored at `data/objects/<2 hex>/<62 hex>`. An object is streamed (constant
//! memory) to a temporary name under `data/tmp/` while it is hashed, checked against the id expected, and
//! only then renamed into place, so an object path never holds a partial file; identical bytes are one
//! object however many files, commits or repositories hold them. Everything goes through `object_store`,
//! so the same code serves an S3 root.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

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

    // ------------------------------------------------------------ content-addressed objects

    /// Whether the object `id` is stored.
    pub async fn has_object(&self, id: &str) -> Result<bool> {
        let loc = object_path(id)?;
        match self.objects.head(&loc).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StoreError::Artifacts(format!("object {id}: {e}"))),
        }
    }

    /// Whether the object `id` is stored, *claiming* it when it is: its modification time is set to now, so
    /// a garbage collection running meanwhile keeps it (`crate::data::gc`). Call this, not
    /// [`ArtifactStore::has_object`], before a commit comes to reference an object it did not store itself.
    pub async fn claim_object(&self, id: &str) -> Result<bool> {
        let path = self.root.join(object_path(id)?.as_ref());
        let touched = tokio::task::spawn_blocking(move || {
            let file = match std::fs::File::options().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            };
            file.set_modified(std::time::SystemTime::now()).map(|()| true)
        })
        .await
        .map_err(|e| StoreError::Artifacts(format!("object {id}: {e}")))?;
        touched.map_err(|e| StoreError::Artifacts(format!("object {id}: {e}")))
    }

    /// Streams the file at `path` into the object store; returns its object id, size, and whether the
    /// object is new (identical bytes may be stored already). `on_bytes` is
    /// told of every chunk read (progress). When `expected` is given and the bytes hash otherwise (the file
    /// changed while it was read), nothing is stored and the error says so.
    pub async fn put_object_file(
        &self,
        path: &Path,
        expected: Option<&str>,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(String, u64, bool)> {
        // The root is a local folder: the copy is plain blocking reads and writes on a thread of the blocking
        // pool (object_store's buffered multipart writer cost three times a `cp` of the same bytes), hashed as
        // it goes, into a temporary object renamed into place below. Progress is read from a counter.
        let tmp = ObjectPath::from(format!("{TMP_DIR}/{}", uuid::Uuid::new_v4().simple()));
        let tmp_file = self.root.join(tmp.as_ref());
        let copied_bytes = Arc::new(AtomicU64::new(0));
        let copy = {
            let (source, target, copied_bytes) = (path.to_owned(), tmp_file.clone(), copied_bytes.clone());
            tokio::task::spawn_blocking(move || copy_hashed(&source, &target, &copied_bytes))
        };
        tokio::pin!(copy);
        let mut reported = 0u64;
        let report = |reported: &mut u64| {
            let now = copied_bytes.load(Ordering::Relaxed);
            if now > *reported {
                on_bytes(now - *reported);
                *reported = now;
            }
        };
        let outcome = loop {
            tokio::select! {
                done = &mut copy => break done,
                () = tokio::time::sleep(std::time::Duration::from_millis(100)) => report(&mut reported),
            }
        };
        report(&mut reported);
        let (hasher, size) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err((what, e))) => {
                let _ = std::fs::remove_file(&tmp_file);
                let shown = if what == CopySide::Source { path } else { tmp_file.as_path() };
                return Err(StoreError::Artifacts(format!("storing {}: {e}", shown.display())));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_file);
                return Err(StoreError::Artifacts(format!("storing {}: {e}", path.display())));
            }
        };
        let id = hex::encode(hasher.finalize());
        if let Some(expected) = expected {
            if expected != id {
                let _ = self.objects.delete(&tmp).await;
                return Err(StoreError::InvalidArgument(format!(
                    "{} changed while it was being stored; put it again",
                    path.display()
                )));
            }
        }
        let new = self.place(&tmp, &id).await?;
        Ok((id, size, new))
    }

    /// Stores `bytes` (a small object, such as a tree manifest); returns its object id.
    pub async fn put_object_bytes(&self, bytes: Vec<u8>) -> Result<String> {
        let id = hex::encode(Sha256::digest(&bytes));
        if self.claim_object(&id).await? {
            return Ok(id);
        }
        let tmp = ObjectPath::from(format!("{TMP_DIR}/{}", uuid::Uuid::new_v4().simple()));
        self.objects.put(&tmp, bytes.into()).await.map_err(|e| StoreError::Artifacts(format!("object {id}: {e}")))?;
        self.place(&tmp, &id).await?;
        Ok(id)
    }

    /// Moves a finished temporary object to its id's path (another writer may have put the same bytes
    /// there already: then the temporary one is dropped).
    /// Whether the object is new.
    async fn place(&self, tmp: &ObjectPath, id: &str) -> Result<bool> {
        let loc = object_path(id)?;
        if self.claim_object(id).await? {
            let _ = self.objects.delete(tmp).await;
            return Ok(false);
        }
        self.objects.rename(tmp, &loc).await.map_err(|e| StoreError::Artifacts(format!("object {id}: {e}")))?;
        Ok(true)
    }

    /// Reads a whole (small) object.
    pub async fn read_object(&self, id: &str) -> Result<Vec<u8>> {
        let loc = object_path(id)?;
        let got = self.objects.get(&loc).await.map_err(|e| map_object(id, e))?;
        Ok(got.bytes().await.map_err(|e| map_object(id, e))?.to_vec())
    }

    /// The bytes of object `id` as a stream (for an HTTP response).
    pub async fn object_stream(
        &self,
        id: &str,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        let loc = object_path(id)?;
        let got = self.objects.get(&loc).await.map_err(|e| map_object(id, e))?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Streams the object `id` into the file `dest` (written to a temporary name beside it, checked
    /// against the id, then renamed); returns the bytes written.
    pub async fn object_to_file(&self, id: &str, dest: &Path, on_bytes: &(dyn Fn(u64) + Sync)) -> Result<u64> {
        let loc = object_path(id)?;
        let parent = dest.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", parent.display())))?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
        let result: Result<u64> = async {
            let got = self.objects.get(&loc).await.map_err(|e| map_object(id, e))?;
            let mut stream = got.into_stream();
            let mut out = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| StoreError::Artifacts(format!("writing {}: {e}", tmp.display())))?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| map_object(id, e))?;
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .await
                    .map_err(|e| StoreError::Artifacts(format!("writing {}: {e}", tmp.display())))?;
                size += chunk.len() as u64;
                on_bytes(chunk.len() as u64);
            }
            out.flush().await.map_err(|e| StoreError::Artifacts(format!("writing {}: {e}", tmp.display())))?;
            if hex::encode(hasher.finalize()) != id {
                return Err(StoreError::Corrupt(format!("object {id} does not hash to its id")));
            }
            tokio::fs::rename(&tmp, dest)
                .await
                .map_err(|e| StoreError::Artifacts(format!("writing {}: {e}", dest.display())))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// Where content-addressed objects live under the artifact root, and their temporary names.
const OBJECTS_DIR: &str = "data/objects";
const TMP_DIR: &str = "data/tmp";
/// The read and write buffer of object streams.
const CHUNK: usize = 1 << 20;

/// Whether `id` looks like an object id (64 lowercase hex digits).
pub fn is_object_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn object_path(id: &str) -> Result<ObjectPath> {
    if !is_object_id(id) {
        return Err(StoreError::Corrupt(format!("`{id}` is not an object id")));
    }
    Ok(ObjectPath::from(format!("{OBJECTS_DIR}/{}/{}", &id[..2], &id[2..])))
}

/// Which end of a copy failed.
#[derive(Debug, PartialEq, Eq)]
enum CopySide {
    Source,
    Target,
}

/// Copies `source` to a new file `target` (its folder created), hashing the bytes and adding each chunk's length
/// to `copied` (blocking; call off the runtime).
fn copy_hashed(
    source: &Path,
    target: &Path,
    copied: &AtomicU64,
) -> std::result::Result<(Sha256, u64), (CopySide, std::io::Error)> {
    use std::io::{Read, Write};
    let mut input = std::fs::File::open(source).map_err(|e| (CopySide::Source, e))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| (CopySide::Target, e))?;
    }
    let mut output = std::fs::File::create(target).map_err(|e| (CopySide::Target, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(|e| (CopySide::Source, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n]).map_err(|e| (CopySide::Target, e))?;
        size += n as u64;
        copied.fetch_add(n as u64, Ordering::Relaxed);
    }
    Ok((hasher, size))
}

/// The SHA-256 object id and size of a local file, read in chunks (blocking; call off the runtime).
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn map_object(id: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::Corrupt(format!("object {id} is missing")),
        other => StoreError::Artifacts(format!("object {id}: {other}")),
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

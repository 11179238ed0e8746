//! Artifact bytes, reached through `object_store`: a local folder, or an S3 bucket (`s3://bucket/prefix`).
//!
//! With a local root, artifact URIs are absolute local paths under the root (what kfp's executor expects for
//! a local backend, docs/kfp-contract.md §2.3). With an S3 root they are `s3://bucket/prefix/...`, as kfp
//! records them on Kubeflow, and the store keeps a local folder that mirrors the bucket by kfp's own
//! convention (`s3://b/k` is read and written at `<mount>/s3/b/k`, as kfp's executor maps it to `/s3/b/k`):
//! tasks run as local processes against that folder and [`crate::ArtifactStore::upload`] /
//! [`crate::ArtifactStore::download`] move bytes between it and the bucket (see the engine's `staging`).
//! [`ArtifactStore::root`] is always that local folder.
//!
//! Reads go through [`ArtifactStore::relative`], which refuses any URI that escapes the root (another
//! bucket, another prefix, `..`), so no caller can be tricked into reading `../../etc/passwd`.
//!
//! Data repositories (`crate::data`) keep file bytes here as content-addressed objects: the object id is
//! the SHA-256 of the bytes (hex), stored at `data/objects/<2 hex>/<62 hex>`. An object is streamed (constant
//! memory) to a temporary name under `data/tmp/` while it is hashed, checked against the id expected, and
//! only then renamed into place, so an object path never holds a partial file; identical bytes are one
//! object however many files, commits or repositories hold them. On S3 the temporary object is a multipart
//! upload and the rename is S3's copy and delete.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Result, StoreError};

#[derive(Clone)]
pub struct ArtifactStore {
    /// The local folder artifacts are written under (with an S3 root: the local mirror of the bucket prefix).
    root: PathBuf,
    objects: Arc<dyn ObjectStore>,
    remote: Option<Arc<Remote>>,
}

/// Where an S3 root is.
#[derive(Debug)]
struct Remote {
    bucket: String,
    /// The key prefix, without leading or trailing `/` (empty: the whole bucket).
    prefix: String,
    /// The folder that stands for `/` in kfp's local-path convention (`<mount>/s3/<bucket>/<key>`).
    mount: PathBuf,
    /// The endpoint given (`--s3-endpoint` or `AWS_ENDPOINT_URL`); `None` for AWS itself.
    endpoint: Option<String>,
}

/// How an S3 artifact root is reached; the rest (credentials, region) comes from the usual `AWS_*` variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The S3 endpoint (`--s3-endpoint`), overriding `AWS_ENDPOINT_URL`; an `http://` endpoint is allowed
    /// plain HTTP (a server on loopback).
    pub endpoint: Option<String>,
    /// Credentials given explicitly (the launcher in a Pod reads them from its own variables); otherwise
    /// the `AWS_*` variables.
    pub credentials: Option<S3Credentials>,
    /// The region, overriding `AWS_REGION`.
    pub region: Option<String>,
}

/// An access key for an S3 root.
#[derive(Clone, Default)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// Files of at least this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 << 20;
/// The size of one uploaded part (S3 wants at least 5 MiB for every part but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once per upload.
const PART_CONCURRENCY: usize = 4;

/// What one upload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uploaded {
    pub files: u64,
    pub bytes: u64,
    /// Parts sent by multipart uploads (0 when every file went in one request).
    pub parts: u64,
}

impl std::ops::AddAssign for Uploaded {
    fn add_assign(&mut self, other: Uploaded) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.parts += other.parts;
    }
}

/// The bucket and key prefix of an `s3://bucket/prefix` URI (the prefix without surrounding slashes).
pub fn parse_s3_uri(uri: &str) -> std::result::Result<(String, String), String> {
    let rest = uri.strip_prefix("s3://").ok_or_else(|| format!("`{uri}` is not an s3:// URI"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(format!("`{uri}`: `{bucket}` is not a valid S3 bucket name"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
        return Err(format!("`{uri}`: the key prefix may not hold `.`, `..` or empty segments"));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// A client of `bucket` (credentials and region from `opts`, else the `AWS_*` variables; the endpoint from
/// `opts`, else `AWS_ENDPOINT_URL`), and the endpoint (`None`: AWS itself).
pub(crate) fn s3_client(
    bucket: &str,
    opts: &S3Options,
) -> std::result::Result<(object_store::aws::AmazonS3, Option<String>), object_store::Error> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .or_else(|| std::env::var("AWS_ENDPOINT").ok())
        .filter(|e| !e.is_empty());
    if let Some(e) = &endpoint {
        builder = builder.with_endpoint(e);
        if e.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    if let Some(c) = &opts.credentials {
        builder = builder.with_access_key_id(&c.access_key_id).with_secret_access_key(&c.secret_access_key);
        if let Some(t) = &c.session_token {
            builder = builder.with_token(t);
        }
    }
    if let Some(r) = &opts.region {
        builder = builder.with_region(r);
    }
    Ok((builder.build()?, endpoint))
}

impl ArtifactStore {
    /// Opens a local artifact root (created if missing).
    pub fn open_local(root: &Path) -> Result<ArtifactStore> {
        std::fs::create_dir_all(root)
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", root.display())))?;
        let root =
            root.canonicalize().map_err(|e| StoreError::Artifacts(format!("resolving {}: {e}", root.display())))?;
        let fs = LocalFileSystem::new_with_prefix(&root).map_err(|e| StoreError::Artifacts(e.to_string()))?;
        Ok(ArtifactStore { root, objects: Arc::new(fs), remote: None })
    }

    /// Opens `root`: an `s3://bucket/prefix` URI (mirrored locally under `cache`) or a local folder.
    pub async fn open(root: &str, cache: &Path, s3: &S3Options) -> Result<ArtifactStore> {
        if root.contains("://") {
            ArtifactStore::open_s3(root, cache, s3).await
        } else {
            ArtifactStore::open_local(Path::new(root))
        }
    }

    /// Opens an S3 root, checking that its bucket can be listed (a missing bucket is an error naming it).
    pub async fn open_s3(uri: &str, cache: &Path, opts: &S3Options) -> Result<ArtifactStore> {
        let (bucket, prefix) =
            parse_s3_uri(uri).map_err(|e| StoreError::InvalidArgument(format!("artifact root {e}")))?;
        let (s3, endpoint) =
            s3_client(&bucket, opts).map_err(|e| StoreError::InvalidArgument(format!("artifact root `{uri}`: {e}")))?;
        let shown = endpoint.as_deref().unwrap_or("AWS");
        // Listing one key proves the bucket exists and the credentials may read it.
        let probe = if prefix.is_empty() { None } else { Some(ObjectPath::from(prefix.as_str())) };
        if let Err(e) = s3.list_with_delimiter(probe.as_ref()).await {
            let text = e.to_string();
            return Err(if text.contains("NoSuchBucket") {
                StoreError::InvalidArgument(format!(
                    "artifact root `{uri}`: the S3 bucket `{bucket}` does not exist (endpoint {shown})"
                ))
            } else {
                StoreError::Artifacts(format!(
                    "artifact root `{uri}`: cannot list S3 bucket `{bucket}` at {shown}: {text}"
                ))
            });
        }
        std::fs::create_dir_all(cache)
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", cache.display())))?;
        let mount =
            cache.canonicalize().map_err(|e| StoreError::Artifacts(format!("resolving {}: {e}", cache.display())))?;
        let mut root = mount.join("s3").join(&bucket);
        if !prefix.is_empty() {
            root = root.join(&prefix);
        }
        std::fs::create_dir_all(&root)
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", root.display())))?;
        let objects: Arc<dyn ObjectStore> =
            if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix.as_str())) };
        Ok(ArtifactStore { root, objects, remote: Some(Arc::new(Remote { bucket, prefix, mount, endpoint })) })
    }

    /// The absolute local directory artifacts are written under (for an S3 root, its local mirror).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether artifacts live in an S3 bucket (URIs `s3://…`).
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The folder standing for `/` in kfp's `/s3/<bucket>/<key>` convention (S3 roots only).
    pub fn mount(&self) -> Option<&Path> {
        self.remote.as_ref().map(|r| r.mount.as_path())
    }

    /// The S3 endpoint of an S3 root, when one was given (`None` for AWS itself and for a local root).
    pub fn endpoint(&self) -> Option<&str> {
        self.remote.as_ref().and_then(|r| r.endpoint.as_deref())
    }

    /// The URI of the root itself: its folder, or `s3://bucket/prefix`.
    pub fn root_uri(&self) -> String {
        match &self.remote {
            Some(r) if r.prefix.is_empty() => format!("s3://{}", r.bucket),
            Some(r) => format!("s3://{}/{}", r.bucket, r.prefix),
            None => self.root.to_string_lossy().into_owned(),
        }
    }

    /// The URI for a path under the root: the absolute path itself, or its `s3://` key.
    pub fn uri_for(&self, relative: &str) -> String {
        match &self.remote {
            Some(_) => format!("{}/{}", self.root_uri(), relative.trim_start_matches('/')),
            None => self.root.join(relative).to_string_lossy().into_owned(),
        }
    }

    /// The URI of a local path under the root (an S3 root's mirror maps to `s3://`); `None` outside it.
    pub fn uri_of_local(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        match &self.remote {
            Some(_) => Some(self.uri_for(&rel.to_string_lossy())),
            None => Some(path.to_string_lossy().into_owned()),
        }
    }

    /// Where the artifact at `uri` is (or is put) locally: the path itself for a local root, the mirror's
    /// path of an `s3://` URI under an S3 root; `None` for a URI outside the root.
    pub fn local_path(&self, uri: &str) -> Option<PathBuf> {
        let rel = self.relative(uri).ok()?;
        Some(rel.parts().fold(self.root.clone(), |p, part| p.join(part.as_ref())))
    }

    /// The object path of `uri` relative to the root, refusing anything outside it.
    pub fn relative(&self, uri: &str) -> Result<ObjectPath> {
        let rel: &str = match &self.remote {
            Some(_) => {
                let root = self.root_uri();
                let outside = || StoreError::InvalidArgument(format!("`{uri}` is outside the artifact root {root}"));
                let rest = uri.strip_prefix(root.as_str()).ok_or_else(outside)?;
                rest.strip_prefix('/').ok_or_else(outside)?
            }
            None => {
                let rel = Path::new(uri)
                    .strip_prefix(&self.root)
                    .map_err(|_| StoreError::InvalidArgument(format!("`{uri}` is outside the artifact root")))?;
                return components_to_path(uri, rel);
            }
        };
        components_to_path(uri, Path::new(rel))
    }

    /// Reads one (small) artifact file whole.
    pub async fn read(&self, uri: &str) -> Result<Vec<u8>> {
        let loc = self.relative(uri)?;
        let got = self.objects.get(&loc).await.map_err(|e| map_os(uri, e))?;
        let bytes = got.bytes().await.map_err(|e| map_os(uri, e))?;
        Ok(bytes.to_vec())
    }

    /// The bytes of the single file at `uri` as a stream, with its size (an HTTP download).
    pub async fn stream(
        &self,
        uri: &str,
    ) -> Result<(u64, futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>)> {
        let loc = self.relative(uri)?;
        let got = self.objects.get(&loc).await.map_err(|e| map_os(uri, e))?;
        let size = got.meta.size as u64;
        Ok((size, got.into_stream().map_err(std::io::Error::other).boxed()))
    }

    /// The files of the artifact at `uri`: itself when it is one file, else every file under it as a folder
    /// (paths relative to it, sorted, with sizes). Empty when nothing is there.
    pub async fn list_files(&self, uri: &str) -> Result<Vec<(String, u64)>> {
        let loc = self.relative(uri)?;
        match self.objects.head(&loc).await {
            Ok(meta) => return Ok(vec![(String::new(), meta.size as u64)]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(map_os(uri, e)),
        }
        let items: Vec<_> = self.objects.list(Some(&loc)).try_collect().await.map_err(|e| map_os(uri, e))?;
        let mut out: Vec<(String, u64)> = items
            .into_iter()
            .filter_map(|item| {
                let parts: Vec<String> = item.location.prefix_match(&loc)?.map(|p| p.as_ref().to_owned()).collect();
                Some((parts.join("/"), item.size as u64))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Copies the artifact at `uri` (a file, or a directory tree) into `dest`, streaming each file to a
    /// temporary name beside its target and renaming it into place; returns the files written.
    pub async fn download(&self, uri: &str, dest: &Path) -> Result<Vec<PathBuf>> {
        let loc = self.relative(uri)?;
        let files = self.list_files(uri).await?;
        if files.is_empty() {
            return Err(StoreError::NotFound { kind: "artifact file", id: uri.to_owned() });
        }
        let mut written = Vec::new();
        for (rel, _) in files {
            let (source, target) = if rel.is_empty() {
                (loc.clone(), dest.to_path_buf())
            } else {
                let source = rel.split('/').fold(loc.clone(), |p, part| p.child(part));
                (source, rel.split('/').fold(dest.to_path_buf(), |p, part| p.join(part)))
            };
            self.object_path_to_file(uri, &source, &target).await?;
            written.push(target);
        }
        Ok(written)
    }

    /// Streams one object into `target` (through a temporary file beside it).
    async fn object_path_to_file(&self, uri: &str, loc: &ObjectPath, target: &Path) -> Result<u64> {
        let got = self.objects.get(loc).await.map_err(|e| map_os(uri, e))?;
        let part = PartFile::write(target, got.into_stream(), &mut |_| {}, &|e| map_os(uri, e)).await?;
        part.commit(false).await
    }

    /// Deletes the single file at `uri` (nothing there is no error).
    pub async fn delete(&self, uri: &str) -> Result<()> {
        let loc = self.relative(uri)?;
        match self.objects.delete(&loc).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_os(uri, e)),
        }
    }

    /// Uploads the local file or directory tree `source` to the artifact at `uri` (under the root): small
    /// files in one request, files of [`MULTIPART_THRESHOLD`] or more in parts of [`PART_SIZE`], read
    /// in chunks (constant memory). Symlinks are not followed (a task's output cannot publish files from
    /// elsewhere on this machine). For a local root whose folder `source` already is, nothing moves.
    pub async fn upload(&self, source: &Path, uri: &str) -> Result<Uploaded> {
        let loc = self.relative(uri)?;
        if !self.is_remote() && self.local_path(uri).is_some_and(|p| p == source) {
            return Ok(Uploaded::default());
        }
        let files = {
            let source = source.to_path_buf();
            tokio::task::spawn_blocking(move || walk_files(&source))
                .await
                .map_err(|e| StoreError::Artifacts(e.to_string()))?
                .map_err(|e| StoreError::Artifacts(format!("reading {e}")))?
        };
        let mut done = Uploaded::default();
        for (rel, path) in files {
            let target = rel.iter().fold(loc.clone(), |p, part| p.child(part.as_str()));
            let (bytes, parts) = self.put_file(&path, &target, uri, &|_| {}).await?.1;
            done.files += 1;
            done.bytes += bytes;
            done.parts += parts;
        }
        Ok(done)
    }

    /// Streams one local file to the object `loc`, hashing it; returns the hasher, and its size and the
    /// parts a multipart upload sent (0 for one request).
    async fn put_file(
        &self,
        path: &Path,
        loc: &ObjectPath,
        shown: &str,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<(Sha256, (u64, u64))> {
        let reading = |e: std::io::Error| StoreError::Artifacts(format!("reading {}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(reading)?;
        let len = file.metadata().await.map_err(reading)?.len();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        if len < MULTIPART_THRESHOLD {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).await.map_err(reading)?;
            hasher.update(&bytes);
            on_bytes(bytes.len() as u64);
            let size = bytes.len() as u64;
            self.objects.put(loc, bytes.into()).await.map_err(|e| StoreError::Artifacts(format!("{shown}: {e}")))?;
            return Ok((hasher, (size, 0)));
        }
        let upload =
            self.objects.put_multipart(loc).await.map_err(|e| StoreError::Artifacts(format!("{shown}: {e}")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size = 0u64;
        let outcome: Result<()> = async {
            loop {
                let n = file.read(&mut buf).await.map_err(reading)?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PART_CONCURRENCY)
                    .await
                    .map_err(|e| StoreError::Artifacts(format!("{shown}: {e}")))?;
                hasher.update(&buf[..n]);
                writer.write(&buf[..n]);
                size += n as u64;
                on_bytes(n as u64);
            }
        }
        .await;
        if let Err(e) = outcome {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(|e| StoreError::Artifacts(format!("{shown}: {e}")))?;
        Ok((hasher, (size, size.div_ceil(PART_SIZE as u64))))
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
        if self.is_remote() {
            let tmp = ObjectPath::from(format!("{TMP_DIR}/{}", uuid::Uuid::new_v4().simple()));
            let (hasher, (size, _)) = self.put_file(path, &tmp, &path.display().to_string(), on_bytes).await?;
            let id = hex::encode(hasher.finalize());
            if expected.is_some_and(|e| e != id) {
                let _ = self.objects.delete(&tmp).await;
                return Err(StoreError::InvalidArgument(format!(
                    "{} changed while it was being stored; put it again",
                    path.display()
                )));
            }
            let new = self.place(&tmp, &id).await?;
            return Ok((id, size, new));
        }
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
        let got = self.objects.get(&loc).await.map_err(|e| map_object(id, e))?;
        let mut hasher = Sha256::new();
        let mut each = |chunk: &[u8]| {
            hasher.update(chunk);
            on_bytes(chunk.len() as u64);
        };
        let part = PartFile::write(dest, got.into_stream(), &mut each, &|e| map_object(id, e)).await?;
        if hex::encode(hasher.finalize()) != id {
            return Err(StoreError::Corrupt(format!("object {id} does not hash to its id")));
        }
        part.commit(false).await
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

/// The object path of `rel` (the part of `uri` under the root), refusing `..` and anything but plain names.
fn components_to_path(uri: &str, rel: &Path) -> Result<ObjectPath> {
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

/// Every regular file under `source` (itself when it is a file) with its path relative to it, sorted;
/// symlinks are skipped.
fn walk_files(source: &Path) -> std::io::Result<Vec<(Vec<String>, PathBuf)>> {
    fn walk(dir: &Path, rel: &mut Vec<String>, out: &mut Vec<(Vec<String>, PathBuf)>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let kind = e.file_type()?;
            rel.push(e.file_name().to_string_lossy().into_owned());
            if kind.is_dir() {
                walk(&e.path(), rel, out)?;
            } else if kind.is_file() {
                out.push((rel.clone(), e.path()));
            }
            rel.pop();
        }
        Ok(())
    }
    let meta = std::fs::symlink_metadata(source).map_err(|e| with_path(source, e))?;
    let mut out = Vec::new();
    if meta.is_file() {
        out.push((Vec::new(), source.to_path_buf()));
    } else if meta.is_dir() {
        walk(source, &mut Vec::new(), &mut out).map_err(|e| with_path(source, e))?;
    }
    Ok(out)
}

fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// An object's bytes written to a temporary file beside `target`, renamed into place by [`PartFile::commit`]
/// (a half-written or refused file is never found under the final name; dropped uncommitted, it is removed).
pub(crate) struct PartFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<tokio::fs::File>,
    size: u64,
}

impl PartFile {
    /// Streams `stream` into a new temporary file beside `target` (its folder made), calling `each` with
    /// every chunk; a stream error is `map_err`'s.
    pub(crate) async fn write(
        target: &Path,
        mut stream: futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
        each: &mut (dyn FnMut(&[u8]) + Send),
        map_err: &(dyn Fn(object_store::Error) -> StoreError + Sync),
    ) -> Result<PartFile> {
        let parent = target.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::Artifacts(format!("creating {}: {e}", parent.display())))?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple()));
        let io = |what: &Path, e: std::io::Error| StoreError::Artifacts(format!("writing {}: {e}", what.display()));
        let file = tokio::fs::File::create(&tmp).await.map_err(|e| io(&tmp, e))?;
        // From here on the temporary file is the guard's to remove.
        let mut part = PartFile { tmp, target: target.to_path_buf(), file: Some(file), size: 0 };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(map_err)?;
            each(&chunk);
            if let Some(f) = part.file.as_mut() {
                f.write_all(&chunk).await.map_err(|e| io(&part.tmp, e))?;
            }
            part.size += chunk.len() as u64;
        }
        if let Some(f) = part.file.as_mut() {
            f.flush().await.map_err(|e| io(&part.tmp, e))?;
        }
        Ok(part)
    }

    /// Renames the file into place (after an `fsync` when `durable`); the bytes written.
    pub(crate) async fn commit(mut self, durable: bool) -> Result<u64> {
        let io = |what: &Path, e: std::io::Error| StoreError::Artifacts(format!("writing {}: {e}", what.display()));
        if let Some(f) = self.file.take() {
            if durable {
                f.sync_all().await.map_err(|e| io(&self.tmp, e))?;
            }
        }
        tokio::fs::rename(&self.tmp, &self.target).await.map_err(|e| io(&self.target, e))?;
        self.tmp = PathBuf::new();
        Ok(self.size)
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn map_os(uri: &str, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound { kind: "artifact file", id: uri.to_owned() },
        other => StoreError::Artifacts(format!("{uri}: {other}")),
    }
}

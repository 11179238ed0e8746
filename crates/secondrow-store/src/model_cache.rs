//! Model files served from an object store: `s3://bucket/key` is downloaded (streamed, constant memory)
//! into a local cache folder, keyed by the URI and the object's ETag and size, so a restarted model server
//! finds the file again without downloading it, and a replaced object (new ETag) is fetched anew.
//!
//! Layout: `<cache>/<sha256(uri)[..16]>/<sha256(etag, size)[..16]>/<last key segment>` — the file keeps its
//! name (an `.onnx` model is recognised by it). A download goes to a temporary name in that folder and is
//! renamed into place, so the cached path never holds a partial file; older entries of the same URI are
//! removed once the new one is in place.

use std::path::{Path, PathBuf};

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use sha2::{Digest, Sha256};

use crate::artifact_store::{parse_s3_uri, s3_client, PartFile, S3Options};
use crate::{Result, StoreError};

/// Whether a URI names a model in an object store (rather than a local file).
pub fn is_remote_model(uri: &str) -> bool {
    uri.starts_with("s3://")
}

/// Where models from object stores are kept on this machine.
#[derive(Debug, Clone)]
pub struct ModelCache {
    dir: PathBuf,
    s3: S3Options,
}

/// A model file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    pub path: PathBuf,
    pub size: u64,
    /// Whether this call downloaded it (false: it was in the cache already).
    pub downloaded: bool,
}

impl ModelCache {
    pub fn new(dir: PathBuf, s3: S3Options) -> ModelCache {
        ModelCache { dir, s3 }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The local copy of the model at `uri` (`s3://bucket/key`), downloading it unless the cache holds the
    /// object's current ETag and size. A missing bucket or object is an error naming it.
    pub async fn fetch(&self, uri: &str) -> Result<CachedModel> {
        let (bucket, key) = parse_s3_uri(uri).map_err(|e| StoreError::InvalidArgument(format!("model URI {e}")))?;
        if key.is_empty() {
            return Err(StoreError::InvalidArgument(format!("model URI `{uri}` names a bucket, not a model file")));
        }
        let (client, endpoint) =
            s3_client(&bucket, &self.s3).map_err(|e| StoreError::InvalidArgument(format!("model `{uri}`: {e}")))?;
        let shown = endpoint.as_deref().unwrap_or("AWS");
        let location = ObjectPath::from(key.as_str());
        let meta = match client.head(&location).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(missing(&client, &bucket, &key, uri).await);
            }
            Err(e) => return Err(StoreError::Artifacts(format!("model `{uri}` at {shown}: {e}"))),
        };
        let name = key.rsplit('/').next().unwrap_or("model").to_owned();
        let uri_dir = self.dir.join(short_hash(uri.as_bytes()));
        let entry = |etag: Option<&str>, size: usize| {
            uri_dir.join(short_hash(format!("{}\n{size}", etag.unwrap_or("")).as_bytes())).join(&name)
        };
        let cached = entry(meta.e_tag.as_deref(), meta.size);
        if std::fs::metadata(&cached).is_ok_and(|m| m.is_file() && m.len() == meta.size as u64) {
            return Ok(CachedModel { path: cached, size: meta.size as u64, downloaded: false });
        }
        let got = client.get(&location).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound { kind: "model object", id: uri.to_owned() },
            other => StoreError::Artifacts(format!("model `{uri}` at {shown}: {other}")),
        })?;
        // Named after what this GET returned: the bytes and the key always belong together.
        let target = entry(got.meta.e_tag.as_deref(), got.meta.size);
        let folder = target.parent().unwrap_or(&uri_dir).to_path_buf();
        let stream_error = |e| StoreError::Artifacts(format!("model `{uri}` at {shown}: {e}"));
        let part = PartFile::write(&target, got.into_stream(), &mut |_| {}, &stream_error).await?;
        let size = part.commit(true).await?;
        // Older copies of this URI are stale now.
        if let Ok(mut entries) = tokio::fs::read_dir(&uri_dir).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                if e.path() != folder {
                    let _ = tokio::fs::remove_dir_all(e.path()).await;
                }
            }
        }
        Ok(CachedModel { path: target, size, downloaded: true })
    }
}

/// The error for an object that is not there: its bucket missing, or the key.
async fn missing(client: &object_store::aws::AmazonS3, bucket: &str, key: &str, uri: &str) -> StoreError {
    // A HEAD answers 404 either way; listing tells a missing bucket apart.
    match client.list_with_delimiter(Some(&ObjectPath::from(key))).await {
        Err(e) if e.to_string().contains("NoSuchBucket") => {
            StoreError::NotFound { kind: "S3 bucket", id: bucket.to_owned() }
        }
        Ok(listed) if !listed.objects.is_empty() || !listed.common_prefixes.is_empty() => {
            StoreError::InvalidArgument(format!("model `{uri}` is a folder; name the model file inside it"))
        }
        _ => StoreError::NotFound { kind: "model object", id: uri.to_owned() },
    }
}

fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_uris_are_refused_before_any_request() {
        let cache = ModelCache::new(std::env::temp_dir().join("unused-model-cache"), S3Options::default());
        for (uri, expected) in [
            ("s3://models", "names a bucket"),
            ("s3://Bad_Bucket/m.onnx", "not a valid S3 bucket name"),
            ("s3://models/../etc/m.onnx", "may not hold"),
            ("/var/models/m.onnx", "not an s3:// URI"),
        ] {
            let err = cache.fetch(uri).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{uri}");
            assert!(err.to_string().contains(expected), "{uri}: {err}");
        }
        assert!(is_remote_model("s3://b/k") && !is_remote_model("/b/k"));
    }
}

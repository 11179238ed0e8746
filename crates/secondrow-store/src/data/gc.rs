//! Garbage collection of data objects (`secondrow data gc`): removes the content-addressed objects no commit
//! of any repository references (left by deleted repositories, or by puts that failed or were killed before
//! their commit), and stale temporary files under `data/tmp/`.
//!
//! Safe against puts running at the same time, in three ways:
//! - every put announces itself with a marker file under `data/puts/` (its process, host and start time)
//!   for as long as it runs; objects modified after the oldest running put started are kept, and so is
//!   everything younger than a grace period (default an hour). A marker whose process is gone (same host)
//!   is stale: it is removed and ignored.
//! - a put that finds an object already stored *claims* it ([`ArtifactStore::claim_object`]: its
//!   modification time is set to now), so an old unreferenced object a put is about to reference again is
//!   young once more and kept.
//! - an object is not deleted in place: it is first renamed into `data/trash/`, its modification time read
//!   again (a claim between the listing and the rename shows there), and only then deleted, or moved back.
//!   A claim after the rename finds no object, and the put stores the bytes again.
//!
//! The referenced set is read from every commit's tree manifest; a missing or unreadable manifest stops the
//! collection before anything is removed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{DataError, Result, Tree};
use crate::artifact_store::is_object_id;
use crate::{ArtifactStore, Store, StoreError};

/// The grace period by default: objects and temporary files younger than this are always kept.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

const OBJECTS_DIR: &str = "data/objects";
const TMP_DIR: &str = "data/tmp";
const PUTS_DIR: &str = "data/puts";
const TRASH_DIR: &str = "data/trash";

/// What a collection did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub dry_run: bool,
    /// Objects some commit references.
    pub referenced: usize,
    /// Unreferenced objects kept because they are younger than the cutoff.
    pub kept_recent: usize,
    /// Unreferenced objects removed, and their bytes.
    pub removed: usize,
    pub removed_bytes: u64,
    /// Stale temporary files removed.
    pub removed_tmp: usize,
    /// Puts running now (their markers), which hold back objects newer than the oldest's start.
    pub open_puts: usize,
    /// Markers of puts whose process is gone, removed.
    pub stale_puts: usize,
    /// Objects modified before this time (epoch ms) were candidates.
    pub cutoff_ms: i64,
}

/// The marker of a running put.
#[derive(Debug, Serialize, Deserialize)]
struct PutMarker {
    pid: u32,
    host: String,
    started_ms: i64,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn io(path: &Path, e: std::io::Error) -> DataError {
    DataError::Io { path: path.display().to_string(), source: e }
}

/// A put in progress, announced under `data/puts/` until dropped.
pub(crate) struct OpenPut {
    path: PathBuf,
}

impl OpenPut {
    pub(crate) fn begin(objects: &ArtifactStore) -> Result<OpenPut> {
        let dir = objects.root().join(PUTS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let path = dir.join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        let marker = PutMarker { pid: std::process::id(), host: host(), started_ms: crate::now_ms() };
        let bytes = serde_json::to_vec(&marker).map_err(|e| StoreError::Corrupt(format!("put marker: {e}")))?;
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
        Ok(OpenPut { path })
    }
}

impl Drop for OpenPut {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The start (epoch ms) of the oldest running put, the number running, and the stale markers (removed
/// unless `dry_run`).
fn open_puts(root: &Path, dry_run: bool) -> (Option<i64>, usize, usize) {
    let (mut oldest, mut open, mut stale) = (None::<i64>, 0, 0);
    let me = host();
    for entry in std::fs::read_dir(root.join(PUTS_DIR)).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(marker) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<PutMarker>(&b).ok()) else {
            // Being written, or unreadable: counted as a put that started with the file.
            let since = entry.metadata().ok().and_then(|m| m.modified().ok()).map_or(0, ms);
            oldest = Some(oldest.map_or(since, |o| o.min(since)));
            open += 1;
            continue;
        };
        if marker.host == me && !Path::new(&format!("/proc/{}", marker.pid)).exists() {
            stale += 1;
            if !dry_run {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        oldest = Some(oldest.map_or(marker.started_ms, |o| o.min(marker.started_ms)));
        open += 1;
    }
    (oldest, open, stale)
}

impl Store {
    /// Every object some commit of any repository references: the tree manifests and their files.
    async fn referenced_objects(&self, objects: &ArtifactStore) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT DISTINCT manifest FROM data_commits").fetch_all(self.reader()).await?;
        let mut out = HashSet::new();
        for row in rows {
            let manifest: String = row.try_get("manifest")?;
            let bytes = objects.read_object(&manifest).await?;
            let tree: Tree = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("tree manifest {manifest}: {e}")))?;
            out.extend(tree.into_values().map(|e| e.object));
            out.insert(manifest);
        }
        Ok(out)
    }
}

/// Removes the objects no commit references and stale temporary files (see the module docs).
pub async fn collect_garbage(
    store: &Store,
    objects: &ArtifactStore,
    grace: Duration,
    dry_run: bool,
) -> Result<GcReport> {
    let root = objects.root().to_path_buf();
    // The cutoff is fixed before the referenced set is read: an object stored by a put that commits after
    // the read is younger than it (the put's marker was there, or the object is within the grace period).
    let (oldest_put, open, stale) = open_puts(&root, dry_run);
    let now = SystemTime::now();
    let mut cutoff = ms(now.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH));
    if let Some(oldest) = oldest_put {
        cutoff = cutoff.min(oldest - 1000);
    }
    let referenced = store.referenced_objects(objects).await?;
    let mut report = GcReport {
        dry_run,
        referenced: referenced.len(),
        open_puts: open,
        stale_puts: stale,
        cutoff_ms: cutoff,
        ..GcReport::default()
    };
    tokio::task::spawn_blocking(move || sweep(&root, &referenced, cutoff, dry_run, &mut report).map(|()| report))
        .await
        .map_err(|e| DataError::Io { path: "data/objects".into(), source: std::io::Error::other(e) })?
}

fn modified_ms(path: &Path) -> Option<i64> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok().map(ms)
}

fn sweep(root: &Path, referenced: &HashSet<String>, cutoff: i64, dry_run: bool, r: &mut GcReport) -> Result<()> {
    let objects_dir = root.join(OBJECTS_DIR);
    let trash = root.join(TRASH_DIR);
    for fan in std::fs::read_dir(&objects_dir).into_iter().flatten().flatten() {
        let prefix = fan.file_name().to_string_lossy().into_owned();
        let dir = fan.path();
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let id = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if !is_object_id(&id) || referenced.contains(&id) {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.modified().map_or(true, |t| ms(t) >= cutoff) {
                r.kept_recent += 1;
                continue;
            }
            if dry_run {
                r.removed += 1;
                r.removed_bytes += meta.len();
                continue;
            }
            std::fs::create_dir_all(&trash).map_err(|e| io(&trash, e))?;
            let held = trash.join(format!("{id}.{}", uuid::Uuid::new_v4().simple()));
            match std::fs::rename(&path, &held) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path, e)),
            }
            // Claimed by a put between the listing and the rename: put it back (unless the put stored the
            // bytes again meanwhile, which is the same object).
            if modified_ms(&held).is_none_or(|t| t >= cutoff) {
                if path.exists() {
                    let _ = std::fs::remove_file(&held);
                } else {
                    std::fs::rename(&held, &path).map_err(|e| io(&path, e))?;
                }
                r.kept_recent += 1;
                continue;
            }
            std::fs::remove_file(&held).map_err(|e| io(&held, e))?;
            r.removed += 1;
            r.removed_bytes += meta.len();
        }
    }
    // Temporary files of puts that did not finish (folders, such as uploads being received, are left).
    for entry in std::fs::read_dir(root.join(TMP_DIR)).into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() || meta.modified().map_or(true, |t| ms(t) >= cutoff) {
            continue;
        }
        if dry_run || std::fs::remove_file(&path).is_ok() {
            r.removed_tmp += 1;
        }
    }
    Ok(())
}

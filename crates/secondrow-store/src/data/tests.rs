use std::path::{Path, PathBuf};

use crate::data::*;
use crate::tests::{per_backend, TestDb};
use crate::ArtifactStore;

per_backend!(
    stat_cache_skips_files_whose_stat_is_unchanged,
    put_log_refs_get_diff_revert,
    dedup_stores_a_changed_file_once,
    writers_of_one_branch_conflict,
    bad_input_is_refused_before_anything_is_stored,
    gc_removes_only_unreferenced_objects_and_spares_running_puts
);

fn repos(db: &TestDb) -> DataRepos {
    DataRepos::new(db.store.clone(), ArtifactStore::open_local(&db.dir.path().join("artifacts")).unwrap())
}

fn write(dir: &Path, rel: &str, body: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

fn opts(message: &str) -> PutOptions {
    PutOptions { message: message.into(), author: "tester".into(), ..PutOptions::default() }
}

fn no_progress(_: u64, _: u64) {}

/// Bytes under the object folder of the artifact root.
fn object_bytes(db: &TestDb) -> u64 {
    let mut total = 0;
    let mut stack = vec![db.dir.path().join("artifacts/data/objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

async fn put_log_refs_get_diff_revert(db: &TestDb) {
    let r = repos(db);
    let s = &db.store;
    s.create_data_repo("", "images").await.unwrap();
    assert!(matches!(s.create_data_repo("", "images").await, Err(DataError::AlreadyExists { .. })));
    s.create_data_repo("team-b", "images").await.unwrap();
    assert_eq!(s.list_data_repos("").await.unwrap().len(), 1);

    let src = db.dir.path().join("src");
    write(&src, "train/a.csv", b"x,y\n1,2\n");
    write(&src, "train/b.csv", b"x,y\n3,4\n");
    write(&src, "README", b"v1");
    let first = r.put("", "images", "main", std::slice::from_ref(&src), &opts("first"), &no_progress).await.unwrap();
    let c1 = first.commit.unwrap();
    assert_eq!((c1.files, c1.parent.clone(), c1.branch.as_str()), (3, None, "main"));
    assert_eq!(first.new_objects, 3);

    write(&src, "README", b"v2");
    std::fs::remove_file(src.join("train/b.csv")).unwrap();
    write(&src, "test/c.csv", b"x,y\n5,6\n");
    let mut replace = opts("second");
    replace.replace = true;
    let c2 =
        r.put("", "images", "main", std::slice::from_ref(&src), &replace, &no_progress).await.unwrap().commit.unwrap();
    assert_eq!(c2.parent.as_deref(), Some(c1.id.as_str()));

    // Refs: branch, full id, a prefix, ~N.
    assert_eq!(s.resolve_data_ref("", "images", "main").await.unwrap().id, c2.id);
    assert_eq!(s.resolve_data_ref("", "images", &c1.id).await.unwrap().id, c1.id);
    assert_eq!(s.resolve_data_ref("", "images", &c1.id[..8]).await.unwrap().id, c1.id);
    assert_eq!(s.resolve_data_ref("", "images", "main~1").await.unwrap().id, c1.id);
    assert!(matches!(s.resolve_data_ref("", "images", "main~2").await, Err(DataError::NotFound { .. })));
    assert!(matches!(s.resolve_data_ref("", "images", "nope").await, Err(DataError::NotFound { .. })));
    assert!(matches!(s.resolve_data_ref("team-c", "images", "main").await, Err(DataError::NotFound { .. })));
    let log = s.data_log(&c2, 10).await.unwrap();
    assert_eq!(log.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), vec![c2.id.clone(), c1.id.clone()]);

    let diff = r.diff(&c1, &c2).await.unwrap();
    let summary: Vec<_> = diff.iter().map(|d| (d.path.as_str(), d.change)).collect();
    assert_eq!(
        summary,
        vec![("README", Change::Changed), ("test/c.csv", Change::Added), ("train/b.csv", Change::Removed)]
    );
    assert_eq!((diff[0].old_size, diff[0].new_size), (Some(2), Some(2)));

    // Get: the whole tree, a folder, one file.
    let out = db.dir.path().join("out");
    let written = r.get(&c1, "", &out, &no_progress).await.unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(std::fs::read(out.join("train/b.csv")).unwrap(), b"x,y\n3,4\n");
    let one = db.dir.path().join("one.txt");
    r.get(&c2, "README", &one, &no_progress).await.unwrap();
    assert_eq!(std::fs::read(&one).unwrap(), b"v2");
    assert!(matches!(r.get(&c2, "train/b.csv", &one, &no_progress).await, Err(DataError::NotFound { .. })));
    assert!(matches!(r.get(&c2, "../etc", &one, &no_progress).await, Err(DataError::Invalid(_))));

    // Branch, revert.
    s.create_data_branch("", "images", "exp/1", &c1.id).await.unwrap();
    assert!(matches!(s.create_data_branch("", "images", "exp/1", &c1.id).await, Err(DataError::AlreadyExists { .. })));
    assert!(matches!(s.create_data_branch("", "images", "bad..name", &c1.id).await, Err(DataError::Invalid(_))));
    let c3 = r.revert("", "images", "main", &c1, "tester").await.unwrap();
    assert_eq!(c3.manifest, c1.manifest);
    assert_eq!(c3.parent.as_deref(), Some(c2.id.as_str()));
    assert_eq!(s.resolve_data_ref("", "images", "exp/1").await.unwrap().id, c1.id);

    // The same put again changes nothing and makes no commit.
    let again = r.put("", "images", "main", &[src.join("README")], &opts("same"), &no_progress).await.unwrap();
    assert!(again.commit.is_some(), "README at the root differs from c1's v1");
    let same = r.put("", "images", "main", &[src.join("README")], &opts("same"), &no_progress).await.unwrap();
    assert!(same.commit.is_none());

    s.delete_data_repo("", "images").await.unwrap();
    assert!(matches!(s.resolve_data_ref("", "images", "main").await, Err(DataError::NotFound { .. })));
    assert_eq!(s.resolve_data_ref("team-b", "images", "main").await.ok(), None);
}

async fn dedup_stores_a_changed_file_once(db: &TestDb) {
    let r = repos(db);
    db.store.create_data_repo("", "big").await.unwrap();
    let src = db.dir.path().join("big");
    for i in 0..20 {
        let body: Vec<u8> = (0..50_000u32).map(|j| (j.wrapping_mul(31).wrapping_add(i) % 251) as u8).collect();
        write(&src, &format!("f{i:02}.bin"), &body);
    }
    r.put("", "big", "main", std::slice::from_ref(&src), &opts("all"), &no_progress).await.unwrap();
    let before = object_bytes(db);
    assert!(before >= 20 * 50_000, "{before}");
    write(&src, "f07.bin", &vec![7u8; 50_000]);
    let out = r.put("", "big", "main", std::slice::from_ref(&src), &opts("one changed"), &no_progress).await.unwrap();
    assert_eq!((out.new_objects, out.new_bytes), (1, 50_000));
    let growth = object_bytes(db) - before;
    assert!((50_000..60_000).contains(&growth), "one changed file grew storage by {growth} bytes");
    // The same bytes under new paths, and in another repository, are no new objects.
    db.store.create_data_repo("", "copy").await.unwrap();
    let again = r.put("", "copy", "main", std::slice::from_ref(&src), &opts("copy"), &no_progress).await.unwrap();
    assert_eq!((again.new_objects, again.new_bytes), (0, 0));
}

async fn writers_of_one_branch_conflict(db: &TestDb) {
    let r = repos(db);
    let s = &db.store;
    s.create_data_repo("", "d").await.unwrap();
    let src = db.dir.path().join("d");
    write(&src, "a", b"1");
    let base =
        r.put("", "d", "main", std::slice::from_ref(&src), &opts("base"), &no_progress).await.unwrap().commit.unwrap();
    // Two commits made from the same head: the first moves the branch, the second is refused.
    let mut c = base.clone();
    c.message = "writer 1".into();
    c.parent = Some(base.id.clone());
    let won = s.record_data_commit(c.clone()).await.unwrap();
    c.message = "writer 2".into();
    let lost = s.record_data_commit(c).await;
    assert!(matches!(&lost, Err(DataError::Conflict { .. })), "{lost:?}");
    assert!(lost.unwrap_err().to_string().contains("branch `main` of data repo `d`"));
    assert_eq!(s.resolve_data_ref("", "d", "main").await.unwrap().id, won.id);
    assert_eq!(s.data_log(&won, 10).await.unwrap().len(), 2, "the losing commit is not in the history");
    // Racing puts: every one either commits or gets the conflict error, and the history is a chain.
    let mut handles = Vec::new();
    for i in 0..4 {
        let (r, src) = (r.clone(), src.join(format!("w{i}")));
        write(&src, "f", format!("{i}").as_bytes());
        handles.push(tokio::spawn(async move { r.put("", "d", "main", &[src], &opts("race"), &no_progress).await }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(DataError::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok >= 1);
    let head = s.resolve_data_ref("", "d", "main").await.unwrap();
    assert_eq!(s.data_log(&head, 100).await.unwrap().len(), 2 + ok);
}

async fn bad_input_is_refused_before_anything_is_stored(db: &TestDb) {
    let r = repos(db);
    let s = &db.store;
    assert!(matches!(s.create_data_repo("", "../x").await, Err(DataError::Invalid(_))));
    s.create_data_repo("", "d").await.unwrap();
    let missing: PathBuf = db.dir.path().join("missing.csv");
    let present = db.dir.path().join("present.csv");
    std::fs::write(&present, b"p").unwrap();
    let e = r.put("", "d", "main", &[present.clone(), missing], &opts("m"), &no_progress).await.unwrap_err();
    assert!(matches!(&e, DataError::NotFound { kind: "file", .. }), "{e:?}");
    assert_eq!(object_bytes(db), 0, "nothing was stored");
    assert!(s.data_branches("", "d").await.unwrap().is_empty());
    assert!(matches!(
        r.put("", "nope", "main", std::slice::from_ref(&present), &opts("m"), &no_progress).await,
        Err(DataError::NotFound { kind: "data repo", .. })
    ));
    assert!(matches!(
        r.put("", "d", "-bad", std::slice::from_ref(&present), &opts("m"), &no_progress).await,
        Err(DataError::Invalid(_))
    ));
    let mut outside = opts("m");
    outside.prefix = "../up".into();
    assert!(matches!(
        r.put("", "d", "main", std::slice::from_ref(&present), &outside, &no_progress).await,
        Err(DataError::Invalid(_))
    ));
    r.put("", "d", "main", std::slice::from_ref(&present), &opts("m"), &no_progress).await.unwrap();
    // A branch that does not exist in a repository with commits must be made with `data branch` first.
    assert!(matches!(
        r.put("", "d", "other", &[present], &opts("m"), &no_progress).await,
        Err(DataError::NotFound { kind: "branch", .. })
    ));
    for bad in ["a@", "", "x y", "a:b@c"] {
        let parsed = Target::parse(bad);
        assert!(bad == "a:b@c" || parsed.is_err(), "{bad}: {parsed:?}");
    }
    assert_eq!(
        Target::parse("imgs@v1~2:train/a.csv").unwrap(),
        Target { repo: "imgs".into(), reference: Some("v1~2".into()), path: Some("train/a.csv".into()) }
    );
    assert_eq!(Target::parse("imgs").unwrap().reference(), DEFAULT_BRANCH);
}

async fn stat_cache_skips_files_whose_stat_is_unchanged(db: &TestDb) {
    let r = repos(db);
    db.store.create_data_repo("", "s").await.unwrap();
    let src = db.dir.path().join("s");
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let set_old_mtime = |rel: &str| {
        let f = std::fs::OpenOptions::new().write(true).open(src.join(rel)).unwrap();
        f.set_modified(an_hour_ago).unwrap();
    };
    for name in ["a.bin", "b.bin"] {
        write(&src, name, &[1u8; 1000]);
        set_old_mtime(name);
    }
    let mut o = opts("first");
    o.stat_cache = Some(db.dir.path().join("cache/s.json"));
    r.put("", "s", "main", std::slice::from_ref(&src), &o, &no_progress).await.unwrap();
    assert!(db.dir.path().join("cache/s.json").exists());
    // Same size, same (old) modification time, same inode: trusted without reading, so this content
    // change goes unseen — the trade git and dvc make, and the proof the cache was used.
    std::fs::write(src.join("a.bin"), [2u8; 1000]).unwrap();
    set_old_mtime("a.bin");
    let same = r.put("", "s", "main", std::slice::from_ref(&src), &o, &no_progress).await.unwrap();
    assert!(same.commit.is_none(), "the stat cache was trusted");
    // A new modification time is seen, and so is the change.
    std::fs::write(src.join("a.bin"), [3u8; 1000]).unwrap();
    let changed = r.put("", "s", "main", std::slice::from_ref(&src), &o, &no_progress).await.unwrap();
    assert_eq!(changed.new_objects, 1);
    let c = changed.commit.unwrap();
    let tree = r.tree(&c).await.unwrap();
    assert_eq!(tree["a.bin"].object, crate::artifact_store::hash_file(&src.join("a.bin")).unwrap().0);
}

/// Every object file under the artifact root, with its path.
fn object_files(db: &TestDb) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fan in std::fs::read_dir(db.dir.path().join("artifacts/data/objects")).unwrap().flatten() {
        out.extend(std::fs::read_dir(fan.path()).unwrap().flatten().map(|e| e.path()));
    }
    out.sort();
    out
}

/// Sets the modification time of every object `secs` seconds back.
fn age_objects(db: &TestDb, secs: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    for p in object_files(db) {
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(then).unwrap();
    }
}

fn object_file(db: &TestDb, id: &str) -> PathBuf {
    db.dir.path().join("artifacts/data/objects").join(&id[..2]).join(&id[2..])
}

async fn gc_removes_only_unreferenced_objects_and_spares_running_puts(db: &TestDb) {
    use super::gc::{collect_garbage, OpenPut, DEFAULT_GRACE};
    use std::time::Duration;
    let r = repos(db);
    let s = &db.store;
    let src = db.dir.path().join("src");
    write(&src, "keep/a.csv", b"kept a");
    write(&src, "keep/b.csv", b"kept b");
    write(&src, "gone/z.bin", b"only in a deleted repo");
    s.create_data_repo("", "kept").await.unwrap();
    s.create_data_repo("team-b", "gone").await.unwrap();
    let kept = r.put("", "kept", "main", &[src.join("keep")], &opts("k"), &no_progress).await.unwrap().commit.unwrap();
    let gone = r.put("team-b", "gone", "main", &[src.join("gone")], &opts("g"), &no_progress).await.unwrap();
    let gone = gone.commit.unwrap();
    let z = r.tree(&gone).await.unwrap()["z.bin"].object.clone();
    s.delete_data_repo("team-b", "gone").await.unwrap();
    // kept: 2 files + manifest; gone: 1 file + manifest, now referenced by nothing.
    assert_eq!(object_files(db).len(), 5);

    // Everything is young: nothing goes.
    let report = collect_garbage(s, &r.objects, DEFAULT_GRACE, false).await.unwrap();
    assert_eq!((report.referenced, report.kept_recent, report.removed), (3, 2, 0), "{report:?}");

    // A leftover temporary file of a killed put.
    std::fs::create_dir_all(db.dir.path().join("artifacts/data/tmp")).unwrap();
    let tmp = db.dir.path().join("artifacts/data/tmp/leftover");
    std::fs::write(&tmp, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();

    // Old enough: a dry run counts the two unreferenced objects and removes nothing.
    age_objects(db, 7200);
    let dry = collect_garbage(s, &r.objects, DEFAULT_GRACE, true).await.unwrap();
    assert_eq!((dry.removed, dry.removed_tmp, dry.dry_run), (2, 1, true), "{dry:?}");
    assert_eq!(object_files(db).len(), 5);
    assert!(tmp.exists());

    // An object a put claims again (it found the bytes stored) is young again and kept.
    assert!(r.objects.claim_object(&z).await.unwrap());
    let report = collect_garbage(s, &r.objects, DEFAULT_GRACE, false).await.unwrap();
    assert_eq!((report.removed, report.kept_recent, report.removed_tmp), (1, 1, 1), "{report:?}");
    assert!(object_file(db, &z).exists());
    assert!(!object_file(db, &gone.manifest).exists());
    assert!(!tmp.exists());
    // What commits reference is all there: the kept commit reads back whole.
    let out = db.dir.path().join("out");
    r.get(&kept, "", &out, &no_progress).await.unwrap();
    assert_eq!(std::fs::read(out.join("a.csv")).unwrap(), b"kept a");
    assert_eq!(object_files(db).len(), 4);

    // While a put runs (its marker is there), objects stored after it started are kept even with no grace
    // period; once it is gone they are collected.
    age_objects(db, 7200);
    let running = OpenPut::begin(&r.objects).unwrap();
    let fresh = r.objects.put_object_bytes(b"stored by the running put".to_vec()).await.unwrap();
    let report = collect_garbage(s, &r.objects, Duration::ZERO, false).await.unwrap();
    assert_eq!((report.open_puts, report.removed, report.kept_recent), (1, 1, 1), "{report:?}");
    assert!(object_file(db, &fresh).exists() && !object_file(db, &z).exists());
    drop(running);
    age_objects(db, 10);
    let report = collect_garbage(s, &r.objects, Duration::ZERO, false).await.unwrap();
    assert_eq!((report.open_puts, report.removed), (0, 1), "{report:?}");
    assert!(!object_file(db, &fresh).exists());

    // The marker of a put whose process is gone does not hold anything back, and is removed.
    let puts = db.dir.path().join("artifacts/data/puts");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let marker = serde_json::json!({"pid": 999_999_999u32, "host": host.trim(), "started_ms": 0});
    std::fs::write(puts.join("dead.json"), marker.to_string()).unwrap();
    let report = collect_garbage(s, &r.objects, DEFAULT_GRACE, false).await.unwrap();
    assert_eq!((report.open_puts, report.stale_puts, report.removed), (0, 1, 0), "{report:?}");
    assert!(!puts.join("dead.json").exists());
    assert_eq!(object_files(db).len(), 3);
}

//! `secondrow data`: versioned data repositories through the real binary on a real store — put, log, ls,
//! get, diff, branch, revert, deduplication, bad input, a writer that loses a race on a branch, and a put
//! killed midway.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::api::Server;
use crate::support::{file_tree, fixtures_dir, per_backend, python, wait_for, Home};

per_backend!(
    data_put_log_ls_get_diff_branch_revert,
    data_conflict_and_crash_leave_no_partial_commit,
    pipelines_import_data_versions_by_commit,
    data_api_is_namespaced_like_runs,
    data_progress_lines_and_gc
);

fn ok(h: &Home, args: &[&str]) -> String {
    let out = h.output(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(h: &Home, args: &[&str]) -> Value {
    serde_json::from_str(&ok(h, args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Exit 2 and a message on stderr that holds `needle`.
fn refused(h: &Home, args: &[&str], needle: &str) {
    let out: Output = h.output(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected `{needle}` in: {err}");
}

fn write(dir: &Path, rel: &str, body: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

/// Bytes and count of the content-addressed objects in the home's artifact store.
fn objects(h: &Home) -> (u64, usize) {
    let mut total = (0, 0);
    let mut stack = vec![h.path().join("home/artifacts/data/objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total = (total.0 + m.len(), total.1 + 1);
            }
        }
    }
    total
}

fn data_put_log_ls_get_diff_branch_revert(h: &Home) {
    let src = h.path().join("dataset");
    for i in 0..40 {
        let body: Vec<u8> = (0..20_000u32).map(|j| (j.wrapping_mul(7).wrapping_add(i * 13) % 251) as u8).collect();
        write(&src, &format!("train/part-{i:03}.bin"), &body);
    }
    write(&src, "labels.csv", b"id,label\n1,cat\n");
    let src_s = src.to_str().unwrap();
    ok(h, &["data", "repo", "create", "imgs"]);
    refused(h, &["data", "repo", "create", "imgs"], "data repo `imgs` already exists");
    let first = json(h, &["data", "put", "imgs", src_s, "-m", "first", "--json"]);
    assert_eq!(first["files"], 41);
    let (bytes1, count1) = objects(h);
    assert!(bytes1 >= 40 * 20_000, "{bytes1}");

    // One changed file: storage grows by about that file (and the new tree manifest).
    write(&src, "train/part-007.bin", &vec![1u8; 20_000]);
    let second = json(h, &["data", "put", "imgs@main", src_s, "-m", "one changed", "--json"]);
    assert_eq!(second["parent"], first["id"]);
    let (bytes2, count2) = objects(h);
    assert_eq!(count2, count1 + 2, "one file object and one manifest");
    assert!((20_000..30_000).contains(&(bytes2 - bytes1)), "grew by {}", bytes2 - bytes1);
    // The same put again makes no commit.
    assert!(ok(h, &["data", "put", "imgs", src_s]).contains("nothing changed"));

    let log = json(h, &["data", "log", "imgs", "--json"]);
    let ids: Vec<_> = log.as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, vec![second["id"].clone(), first["id"].clone()]);

    let id1 = first["id"].as_str().unwrap();
    let ls = json(h, &["data", "ls", &format!("imgs@{}", &id1[..10]), "train", "--json"]);
    assert_eq!(ls["commit"], id1);
    assert_eq!(ls["files"].as_array().unwrap().len(), 40);
    assert_eq!(ls["files"][0]["path"], "part-000.bin");

    let diff = json(h, &["data", "diff", "imgs@main~1", "imgs@main", "--json"]);
    assert_eq!(
        diff,
        serde_json::json!([{"path": "train/part-007.bin", "change": "changed", "old_size": 20000, "new_size": 20000}])
    );

    // Get the old state back out: the whole tree and one file.
    let out = h.path().join("out");
    ok(h, &["data", "get", "imgs@main~1", out.to_str().unwrap()]);
    let got = file_tree(&out);
    assert_eq!(got.len(), 41);
    let old_part: Vec<u8> = (0..20_000u32).map(|j| (j.wrapping_mul(7).wrapping_add(7 * 13) % 251) as u8).collect();
    assert!(got.contains(&(PathBuf::from("train/part-007.bin"), old_part.clone())));
    let one = h.path().join("labels.csv");
    ok(h, &["data", "get", "imgs@main:labels.csv", one.to_str().unwrap()]);
    assert_eq!(std::fs::read(&one).unwrap(), b"id,label\n1,cat\n");

    // Branch from the first commit, put there, revert main to it.
    ok(h, &["data", "branch", "imgs", "exp/a", "--from", "main~1"]);
    write(&h.path().join("extra"), "note.txt", b"exp only");
    ok(h, &["data", "put", "imgs@exp/a:notes", h.path().join("extra/note.txt").to_str().unwrap()]);
    let exp = json(h, &["data", "ls", "imgs@exp/a", "notes", "--json"]);
    assert_eq!(exp["files"][0]["path"], "note.txt");
    ok(h, &["data", "revert", &format!("imgs@{id1}")]);
    let log = json(h, &["data", "log", "imgs@main", "--json"]);
    assert_eq!(log.as_array().unwrap().len(), 3);
    assert_eq!(log[0]["manifest"], first["manifest"], "main holds the first commit's files again");
    assert!(json(h, &["data", "diff", &format!("imgs@{id1}"), "imgs@main", "--json"]).as_array().unwrap().is_empty());

    // Bad input: clear errors naming the thing, exit 2, nothing committed.
    refused(h, &["data", "log", "nope"], "data repo `nope` not found");
    refused(h, &["data", "ls", "imgs@nobranch"], "ref `imgs@nobranch` not found");
    refused(h, &["data", "ls", "imgs@0000"], "ref `imgs@0000` not found");
    refused(h, &["data", "ls", "imgs@main~9"], "imgs@main~9");
    refused(h, &["data", "get", "imgs@main:../../etc/passwd", out.to_str().unwrap()], "outside the repository");
    refused(h, &["data", "get", "imgs@main:no/such", out.to_str().unwrap()], "path `imgs:no/such` not found");
    let missing = h.path().join("missing.csv");
    refused(h, &["data", "put", "imgs", src_s, missing.to_str().unwrap()], "missing.csv` not found");
    refused(h, &["data", "branch", "imgs", "bad..name"], "`bad..name` is not a valid branch name");
    refused(h, &["data", "put", "imgs@-x", src_s], "not a valid branch name");
    refused(h, &["data", "put", "imgs@other", src_s], "branch `imgs@other");
    refused(h, &["data", "repo", "create", "../x"], "not a valid data repo name");
    ok(h, &["data", "repo", "create", "empty"]);
    refused(h, &["data", "log", "empty"], "the repo has no commits yet");
    ok(h, &["data", "repo", "delete", "empty"]);
    assert_eq!(json(h, &["data", "log", "imgs", "--json"]).as_array().unwrap().len(), 3);
    assert_eq!(objects(h).1, count2 + 2, "only exp/a's note and its manifest were added");

    ok(h, &["data", "repo", "delete", "imgs"]);
    assert!(json(h, &["data", "repo", "list", "--json"]).as_array().unwrap().is_empty());
}

/// `--progress` reports on stderr without touching the JSON on stdout; `data gc` removes the objects of a
/// deleted repository (a dry run first), keeps what commits reference, and a put after it stores again what
/// it removed.
fn data_progress_lines_and_gc(h: &Home) {
    let src = h.path().join("ds");
    for i in 0..5 {
        write(&src, &format!("f{i}.bin"), &vec![i as u8; 10_000]);
        // Old enough for the stat cache to trust (not "racy").
        let f = std::fs::File::options().write(true).open(src.join(format!("f{i}.bin"))).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600)).unwrap();
    }
    let src_s = src.to_str().unwrap();
    ok(h, &["data", "repo", "create", "keep"]);
    ok(h, &["data", "repo", "create", "drop"]);
    let out = h.output(&["data", "put", "drop", src_s, "--json", "--progress"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let commit: Value = serde_json::from_slice(&out.stdout).expect("stdout stays JSON with --progress");
    assert_eq!(commit["files"], 5);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("put: 100% (50000 of 50000 bytes)"), "{err}");
    let dest = h.path().join("got");
    let out = h.output(&["data", "get", "drop@main", dest.to_str().unwrap(), "--progress"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("get: 100%"), "{out:?}");
    // Without --progress and off a terminal: nothing but the result.
    let out = h.output(&["data", "put", "keep", h.path().join("got/f0.bin").to_str().unwrap(), "--json"]);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    let (_, before) = objects(h);
    assert_eq!(before, 5 + 1 + 1, "five files, two manifests (keep's file is one of drop's)");
    ok(h, &["data", "repo", "delete", "drop"]);
    // Young objects are kept by default; a dry run with no grace period counts, and removes nothing.
    let r = json(h, &["data", "gc", "--json"]);
    assert_eq!((r["removed"].as_u64(), r["kept_recent"].as_u64()), (Some(0), Some(5)), "{r}");
    let r = json(h, &["data", "gc", "--dry-run", "--grace-secs", "0", "--json"]);
    assert_eq!((r["removed"].as_u64(), r["dry_run"].as_bool()), (Some(5), Some(true)), "{r}");
    assert_eq!(objects(h).1, before);
    let text = ok(h, &["data", "gc", "--grace-secs", "0"]);
    assert!(text.contains("removed 5 unreferenced object(s), 40") && text.contains("2 object(s) referenced"), "{text}");
    assert_eq!(objects(h).1, 2);
    ok(h, &["data", "get", "keep@main", h.path().join("kept").to_str().unwrap()]);
    // The stat cache of `drop` remembers the removed objects: a put to a new `drop` stores them again
    // rather than pointing at nothing.
    ok(h, &["data", "repo", "create", "drop"]);
    let again = json(h, &["data", "put", "drop", src_s, "--json"]);
    assert_eq!(again["files"], 5);
    let back = h.path().join("back");
    ok(h, &["data", "get", "drop@main", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(back.join("f3.bin")).unwrap(), vec![3u8; 10_000]);
}

/// Makes a named pipe: a put reading it waits until the test writes, which lets the test act at a known
/// point in the middle of the put.
fn fifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// Opens the pipe's write end once a reader (the put) has opened it.
fn open_writer(path: &Path) -> std::fs::File {
    // O_NONBLOCK (Linux): opening the write end fails with ENXIO until a reader has it open.
    const O_NONBLOCK: i32 = 0o4000;
    let f = wait_for(Duration::from_secs(30), || {
        std::fs::OpenOptions::new().write(true).custom_flags(O_NONBLOCK).open(path).ok()
    });
    // Back to blocking writes.
    let f2 = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    drop(f);
    f2
}

fn data_conflict_and_crash_leave_no_partial_commit(h: &Home) {
    ok(h, &["data", "repo", "create", "d"]);
    let base = h.path().join("base");
    write(&base, "a.txt", b"base");
    let base_commit = json(h, &["data", "put", "d", base.to_str().unwrap(), "--json"]);

    // Writer A starts from the head, then waits on its pipe; writer B commits meanwhile; A then loses.
    let pipe = h.path().join("stream.bin");
    fifo(&pipe);
    let a =
        h.cmd().args(["data", "put", "d", pipe.to_str().unwrap(), "-m", "A"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut w = open_writer(&pipe);
    write(&h.path().join("b"), "b.txt", b"from B");
    let b = json(h, &["data", "put", "d", h.path().join("b/b.txt").to_str().unwrap(), "-m", "B", "--json"]);
    w.write_all(b"from A").unwrap();
    drop(w);
    let a = a.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&a.stderr);
    assert_eq!(a.status.code(), Some(2), "{err}");
    assert!(err.contains("conflict: branch `main` of data repo `d` moved"), "{err}");
    let log = json(h, &["data", "log", "d", "--json"]);
    let ids: Vec<_> = log.as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, vec![b["id"].clone(), base_commit["id"].clone()]);

    // A put killed while it stores its files leaves no commit.
    let big = h.path().join("big");
    write(&big, "x.bin", &vec![9u8; 300_000]);
    std::fs::rename(&pipe, big.join("zz-stream.bin")).unwrap();
    let before = objects(h).1;
    let mut c = h.cmd().args(["data", "put", "d", big.to_str().unwrap(), "-m", "killed"]).spawn().unwrap();
    let w = open_writer(&big.join("zz-stream.bin"));
    wait_for(Duration::from_secs(30), || (objects(h).1 > before).then_some(()));
    c.kill().unwrap();
    c.wait().unwrap();
    drop(w);
    let log = json(h, &["data", "log", "d", "--json"]);
    assert_eq!(log.as_array().unwrap().len(), 2, "no commit from the killed put");
    let ls = json(h, &["data", "ls", "d", "--json"]);
    let paths: Vec<_> =
        ls["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_owned()).collect();
    assert_eq!(paths, vec!["a.txt", "b.txt"]);
}

fn pipelines_import_data_versions_by_commit(h: &Home) {
    ok(h, &["data", "repo", "create", "ds"]);
    let csv = h.path().join("train.csv");
    std::fs::write(&csv, "x,y\n1,2\n3,4\n5,6\n").unwrap();
    let c1 = json(h, &["data", "put", "ds", csv.to_str().unwrap(), "--json"])["id"].as_str().unwrap().to_owned();
    let yaml = h.compile(&fixtures_dir().join("data_train.py"));
    let on_main = "uri=secondrow://data/ds@main/train.csv";

    let (code, r1) = h.run(&yaml, &["-p", on_main]);
    assert_eq!((code, r1.state()), (0, "SUCCEEDED"), "{}", r1.0);
    assert_eq!(r1.task_output("train", "Output"), 3);
    let imported = r1.task_artifact("importer", "artifact");
    assert_eq!(imported["metadata"]["secondrow.data"]["commit"], c1.as_str(), "{imported}");
    assert_eq!(imported["metadata"]["secondrow.data"]["ref"], "main");
    assert!(imported["uri"].as_str().unwrap().contains(&c1), "the URI names the commit: {imported}");
    // `runs get` shows the commit each importer read; the model's provenance reaches it.
    assert!(ok(h, &["runs", "get", &r1.id()]).contains(&format!("ds@main = commit {c1}")));
    let model = r1.task_artifact("train", "model")["id"].as_str().unwrap().to_owned();
    let prov = json(h, &["data", "provenance", &model, "--json"]);
    assert_eq!(prov[0]["data"]["commit"], c1.as_str(), "{prov}");
    assert_eq!(prov[0]["depth"], 1);

    // A new commit on main: the same pipeline and URI read the new data (no stale cache hit) …
    std::fs::write(&csv, "x,y\n1,2\n3,4\n5,6\n7,8\n9,10\n").unwrap();
    let c2 = json(h, &["data", "put", "ds", csv.to_str().unwrap(), "--json"])["id"].as_str().unwrap().to_owned();
    let (_, r2) = h.run(&yaml, &["-p", on_main]);
    assert_eq!((r2.task_state("train"), r2.task_output("train", "Output")), ("SUCCEEDED", &serde_json::json!(5)));
    assert_eq!(r2.task_artifact("importer", "artifact")["metadata"]["secondrow.data"]["commit"], c2.as_str());
    // … and naming the first commit another way (`main~1`) is a cache hit: the key is the commit.
    let (_, r3) = h.run(&yaml, &["-p", "uri=secondrow://data/ds@main~1/train.csv"]);
    assert_eq!((r3.task_state("train"), r3.task_output("train", "Output")), ("CACHED", &serde_json::json!(3)));

    // An unknown ref fails the importer with the ref named.
    let (code, r4) = h.run(&yaml, &["-p", "uri=secondrow://data/ds@nope/train.csv"]);
    assert_ne!(code, 0);
    assert_eq!(r4.state(), "FAILED");
    assert!(r4.task("importer")["error"].as_str().unwrap_or("").contains("ref `ds@nope` not found"), "{}", r4.0);
}

/// One HTTP request through Python's urllib: (status, body text).
fn http(h: &Home, method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (i64, String) {
    const SCRIPT: &str = r#"
import json, sys, urllib.error, urllib.request
method, url, token = sys.argv[1], sys.argv[2], sys.argv[3]
body = sys.stdin.buffer.read()
req = urllib.request.Request(url, data=body if method in ("POST", "PUT") else None, method=method)
if token:
    req.add_header("Authorization", "Bearer " + token)
req.add_header("Content-Type", "application/json" if method == "POST" else "application/octet-stream")
try:
    with urllib.request.urlopen(req) as r:
        status, text = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    status, text = e.code, e.read().decode()
print(json.dumps({"status": status, "body": text}))
"#;
    let mut child = Command::new(python())
        .args(["-c", SCRIPT, method, url, token.unwrap_or("")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .current_dir(h.path())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    (doc["status"].as_i64().unwrap(), doc["body"].as_str().unwrap().to_owned())
}

fn token(h: &Home, namespace: &str) -> String {
    ok(h, &["tokens", "create", "--namespace", namespace, "--name", "data"]).trim().to_owned()
}

fn data_api_is_namespaced_like_runs(h: &Home) {
    let (a, b) = (token(h, "team-a"), token(h, "team-b"));
    let server = Server::start(h, &[]);
    let base = format!("{}/api/data/v1/namespaces", server.url);
    let repos = format!("{base}/team-a/repos");
    let (st, body) = http(h, "POST", &repos, Some(&a), br#"{"name": "ds"}"#);
    assert_eq!(st, 200, "{body}");
    let put = format!("{repos}/ds/file?path=train/data.csv&message=first");
    let (st, body) = http(h, "PUT", &put, Some(&a), b"x,y\n1,2\n");
    assert_eq!(st, 200, "{body}");
    let first: Value = serde_json::from_str(&body).unwrap();
    let c1 = first["commit"]["id"].as_str().unwrap().to_owned();
    let (st, _) = http(h, "PUT", &put, Some(&a), b"x,y\n1,2\n3,4\n");
    assert_eq!(st, 200);

    let (st, body) = http(h, "GET", &format!("{repos}/ds/files?ref=main~1&path=train"), Some(&a), b"");
    assert_eq!(st, 200, "{body}");
    let files: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((files["commit"].as_str(), &files["files"][0]["path"]), (Some(c1.as_str()), &Value::from("data.csv")));
    let (st, body) = http(h, "GET", &format!("{repos}/ds/file?ref={c1}&path=train/data.csv"), Some(&a), b"");
    assert_eq!((st, body.as_str()), (200, "x,y\n1,2\n"));
    let (_, body) = http(h, "GET", &format!("{repos}/ds/diff?from=main~1&to=main"), Some(&a), b"");
    let diff: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(diff["changes"][0]["change"], "changed", "{diff}");
    let (st, body) =
        http(h, "POST", &format!("{repos}/ds/revert"), Some(&a), format!(r#"{{"ref": "{c1}"}}"#).as_bytes());
    assert_eq!(st, 200, "{body}");
    // The same history through the CLI on the same store.
    let log = json(h, &["data", "--namespace", "team-a", "log", "ds", "--json"]);
    assert_eq!(log.as_array().unwrap().len(), 3);

    // A tar.gz body is one commit of many files; a link inside is refused and commits nothing.
    let tar = |link: bool| {
        let script = r#"
import io, sys, tarfile
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, data in [("a/x.csv", b"x\n1\n"), ("b.txt", b"bee")]:
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    if sys.argv[1] == "1":
        info = tarfile.TarInfo("passwd"); info.type = tarfile.SYMTYPE; info.linkname = "/etc/passwd"; t.addfile(info)
sys.stdout.buffer.write(buf.getvalue())
"#;
        Command::new(python()).args(["-c", script, if link { "1" } else { "0" }]).output().unwrap().stdout
    };
    let (st, body) = http(h, "PUT", &format!("{repos}/ds/tree?path=bundle&message=many"), Some(&a), &tar(true));
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("links are not accepted"), "{body}");
    let (st, body) = http(h, "PUT", &format!("{repos}/ds/tree?path=bundle&message=many"), Some(&a), &tar(false));
    assert_eq!(st, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["files"], 2);
    let ls = json(h, &["data", "--namespace", "team-a", "ls", "ds", "bundle", "--json"]);
    let paths: Vec<_> =
        ls["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap().to_owned()).collect();
    assert_eq!(paths, vec!["a/x.csv", "b.txt"]);
    let log = json(h, &["data", "--namespace", "team-a", "log", "ds", "--json"]);
    assert_eq!(log.as_array().unwrap().len(), 4, "one commit for the archive, none for the refused one");

    // Another namespace's token, no token, unknown things, bad input.
    let (st, body) = http(h, "GET", &format!("{repos}/ds/commits"), Some(&b), b"");
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("namespace `team-a`"), "{body}");
    assert_eq!(http(h, "GET", &format!("{repos}/ds/commits"), None, b"").0, 401);
    let (st, body) = http(h, "GET", &format!("{base}/team-b/repos/ds/commits"), Some(&b), b"");
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("data repo `ds` not found"), "{body}");
    let (st, body) = http(h, "GET", &format!("{repos}/ds/files?ref=nope"), Some(&a), b"");
    assert_eq!(st, 404, "{body}");
    let (st, body) = http(h, "PUT", &format!("{repos}/ds/file?path=../x"), Some(&a), b"x");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("outside the repository"), "{body}");
    let (st, body) = http(h, "GET", &format!("{repos}/ds/commits"), Some(&a), b"");
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["commits"].as_array().unwrap().len(), 4);

    // A recurring run that fires on each new commit of ds@main, with the commit as its `uri` parameter.
    let yaml = h.compile(&fixtures_dir().join("data_train.py"));
    let to_json = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let spec = Command::new(python()).args(["-c", to_json]).arg(&yaml).output().unwrap();
    let spec: Value = serde_json::from_slice(&spec.stdout).unwrap();
    let body = serde_json::json!({
        "display_name": "on-commit",
        "pipeline_spec": spec,
        "runtime_config": {"parameters": {"uri": "unset"}},
        "trigger": {"data_commit": {"repo": "ds", "branch": "main", "parameter": "uri", "path": "train.csv"}},
    });
    let rr_url = format!("{}/apis/v2beta1/recurringruns", server.url);
    let (st, text) = http(h, "POST", &rr_url, Some(&a), body.to_string().as_bytes());
    assert_eq!(st, 200, "{text}");
    let bad = serde_json::json!({"display_name": "x", "pipeline_spec": body["pipeline_spec"],
        "runtime_config": body["runtime_config"], "trigger": {"data_commit": {"repo": "ds", "branch": "a..b"}}});
    let (st, text) = http(h, "POST", &rr_url, Some(&a), bad.to_string().as_bytes());
    assert_eq!(st, 400, "{text}");
    // Commits from before the recurring run do not fire it; a new one does.
    let put = format!("{repos}/ds/file?path=train.csv&message=new");
    let (st, text) = http(h, "PUT", &put, Some(&a), b"x,y\n1,2\n3,4\n5,6\n7,8\n");
    assert_eq!(st, 200, "{text}");
    let c4 = serde_json::from_str::<Value>(&text).unwrap()["commit"]["id"].as_str().unwrap().to_owned();
    let run_id = wait_for(Duration::from_secs(60), || {
        let runs = h.runs_json();
        let run =
            runs.as_array()?.iter().find(|r| r["display_name"].as_str().is_some_and(|n| n.starts_with("on-commit")))?;
        matches!(run["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then(|| run["id"].as_str().unwrap().to_owned())
    });
    let doc = h.get_json(&run_id);
    let importer = doc["tasks"].as_array().unwrap().iter().find(|t| t["path"] == "importer").unwrap();
    let meta = &importer["outputs"]["artifacts"]["artifact"][0]["metadata"]["secondrow.data"];
    assert_eq!(meta["commit"], c4.as_str(), "{doc}");
    let train = doc["tasks"].as_array().unwrap().iter().find(|t| t["path"] == "train").unwrap();
    assert_eq!(train["outputs"]["parameters"]["Output"], 4, "{doc}");
    assert_eq!(h.runs_json().as_array().unwrap().len(), 1, "one commit, one run");

    // A run of another namespace cannot import team-a's repository: refs resolve in the run's namespace.
    let run_body = serde_json::json!({
        "display_name": "other-namespace",
        "pipeline_spec": body["pipeline_spec"],
        "runtime_config": {"parameters": {"uri": "secondrow://data/ds@main/train.csv"}},
    });
    let runs_url = format!("{}/apis/v2beta1/runs", server.url);
    let (st, text) = http(h, "POST", &runs_url, Some(&b), run_body.to_string().as_bytes());
    assert_eq!(st, 200, "{text}");
    let other = serde_json::from_str::<Value>(&text).unwrap()["run_id"].as_str().unwrap().to_owned();
    let doc = wait_for(Duration::from_secs(60), || {
        let doc = h.get_json(&other);
        matches!(doc["run"]["state"].as_str(), Some("SUCCEEDED" | "FAILED")).then_some(doc)
    });
    assert_eq!(doc["run"]["state"], "FAILED");
    let importer = doc["tasks"].as_array().unwrap().iter().find(|t| t["path"] == "importer").unwrap();
    assert!(importer["error"].as_str().unwrap_or("").contains("data repo `ds` not found"), "{doc}");
}

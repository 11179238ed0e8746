//! The artifact store on S3 against a real S3-protocol server on loopback: moto's server mode (from
//! `.venv-s3`, made by scripts/test), buckets created and listed with boto3. A kfp pipeline with artifacts of
//! every shape runs with `--artifact-root s3://…` (URIs `s3://…` recorded, bytes in the bucket, caching),
//! a >100 MiB artifact goes up in parts and streams back through the API identically, URIs outside the
//! root are refused, and a missing bucket is a clear error.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::*;

/// The S3 test credentials (moto accepts any).
pub(crate) const AWS_ENV: [(&str, &str); 3] =
    [("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"), ("AWS_REGION", "us-east-1")];

fn venv_bin(name: &str) -> PathBuf {
    let p = repo_root().join(".venv-s3/bin").join(name);
    assert!(p.exists(), "{} is missing: run ./scripts/test (it creates the S3 test venv)", p.display());
    p
}

/// A moto server on a free loopback port, killed on drop.
pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start(dir: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new(venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for(Duration::from_secs(60), || TcpStream::connect(("127.0.0.1", port)).ok());
        Moto { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// boto3 against this server: `create BUCKET`, `list BUCKET PREFIX`.
    pub(crate) fn s3(&self, args: &[&str]) -> Value {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/s3_client/s3.py");
        let out = Command::new(venv_bin("python")).arg(script).arg(&self.endpoint).args(args).envs(AWS_ENV).output();
        let out = out.unwrap();
        assert!(out.status.success(), "s3.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `secondrow ARGS…` with the S3 artifact root and credentials.
fn s3_cmd(h: &Home, moto: &Moto, root: &str) -> Command {
    let mut c = h.cmd();
    c.env("SECONDROW_ARTIFACT_ROOT", root).env("SECONDROW_S3_ENDPOINT", &moto.endpoint).envs(AWS_ENV);
    c
}

fn s3_run(h: &Home, moto: &Moto, root: &str, yaml: &Path, args: &[&str]) -> (Output, Option<RunDoc>) {
    let out = s3_cmd(h, moto, root).arg("run").arg(yaml).arg("--json").args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).ok().map(RunDoc);
    (out, doc)
}

fn must_succeed(out: &Output, doc: Option<RunDoc>) -> RunDoc {
    let doc = doc.unwrap_or_else(|| panic!("no run JSON; stderr:\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(doc.state(), "SUCCEEDED", "{}\n{}", doc.0, String::from_utf8_lossy(&out.stderr));
    doc
}

fn fixture() -> PathBuf {
    repo_root().join("testdata/kfp/artifacts/s3_artifacts.py")
}

/// The objects under `prefix` in `bucket`: key → (size, ETag).
pub(crate) fn objects(moto: &Moto, bucket: &str, prefix: &str) -> Vec<(String, u64, String)> {
    let listed = moto.s3(&["list", bucket, prefix]);
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (o["key"].as_str().unwrap().to_owned(), o["size"].as_u64().unwrap(), o["etag"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn s3_pipeline_artifacts_live_in_the_bucket_with_s3_uris_and_cache() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "artifacts"]);
    let root = "s3://artifacts/team/runs";
    let yaml = h.compile(&fixture());

    let (out, doc) = s3_run(&h, &moto, root, &yaml, &["-p", "size_mb=2"]);
    let r = must_succeed(&out, doc);
    let run_id = r.id();
    let data = r.task_artifact("make-data", "data");
    let uri = data["uri"].as_str().unwrap();
    assert_eq!(uri, format!("{root}/{run_id}/make-data/data"), "{data}");
    let folder_uri = r.task_artifact("make-folder", "folder")["uri"].as_str().unwrap().to_owned();
    assert!(folder_uri.starts_with(&format!("{root}/{run_id}/")), "{folder_uri}");

    // The bytes are in the bucket: the dataset as one object, the folder as one object per file.
    let keys = objects(&moto, "artifacts", &format!("team/runs/{run_id}/"));
    let find = |suffix: &str| keys.iter().find(|(k, _, _)| k.ends_with(suffix)).cloned();
    let (_, size, _) = find("make-data/data").unwrap_or_else(|| panic!("no dataset object in {keys:?}"));
    assert_eq!(size, 2 << 20);
    assert!(find("make-folder/folder/a.txt").is_some() && find("make-folder/folder/sub/b.txt").is_some(), "{keys:?}");

    // Downstream tasks read them through their local paths.
    let expected = {
        let local = h.path().join("home/artifacts-mirror/s3/artifacts/team/runs").join(&run_id).join("make-data/data");
        hex::encode(Sha256::digest(std::fs::read(&local).unwrap()))
    };
    assert_eq!(r.task_output("digest", "Output"), expected.as_str());
    assert_eq!(r.task_output("read-folder", "Output"), "a.txt=alpha,sub/b.txt=beta");

    // The store records `s3://` URIs (runs get reads them back from the store).
    let got = s3_cmd(&h, &moto, root).args(["runs", "get", &run_id, "--json"]).output().unwrap();
    let text = String::from_utf8_lossy(&got.stdout);
    assert!(text.contains(&format!("\"{root}/{run_id}/make-data/data\"")), "{text}");

    // Caching works on S3: the second run takes every task from the cache.
    let (out, doc) = s3_run(&h, &moto, root, &yaml, &["-p", "size_mb=2"]);
    let again = must_succeed(&out, doc);
    for task in ["make-data", "digest", "make-folder", "read-folder"] {
        assert_eq!(again.task_state(task), "CACHED", "{task}: {}", again.0);
    }

    // With the local mirror gone, `artifacts --download` fetches everything from the bucket.
    std::fs::remove_dir_all(h.path().join("home/artifacts-mirror")).unwrap();
    let dest = h.path().join("downloaded");
    let out = s3_cmd(&h, &moto, root).args(["artifacts", &run_id, "--download"]).arg(&dest).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(dest.join("make-data/data")).unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), expected);
    assert_eq!(std::fs::read_to_string(dest.join("make-folder/folder/sub/b.txt")).unwrap(), "beta");
}

/// `secondrow server` with the S3 root, its API URL read from its first line; killed on drop.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) url: String,
}

impl S3Server {
    fn start(h: &Home, moto: &Moto, root: &str) -> S3Server {
        S3Server::start_with(h, moto, root, &[])
    }

    /// With these variables added to the server's environment.
    pub(crate) fn start_with(h: &Home, moto: &Moto, root: &str, env: &[(&str, &str)]) -> S3Server {
        let mut child = s3_cmd(h, moto, root)
            .envs(env.iter().copied())
            .args(["server", "--host", "127.0.0.1", "--port", "0", "--serve-port", "0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(h.path().join("server.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| {
            let log = std::fs::read_to_string(h.path().join("server.log")).unwrap_or_default();
            panic!("server printed no URL: {line:?}; log:\n{log}")
        });
        S3Server { child, url: url.to_owned() }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET through the API: status, and the SHA-256 and length of the body (streamed, not kept).
fn get_hashed(url: &str) -> (u16, String, u64, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut resp = reqwest::get(url).await.unwrap();
        let status = resp.status().as_u16();
        let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        (status, hex::encode(hasher.finalize()), len, kind)
    })
}

#[test]
fn s3_large_artifact_goes_up_in_parts_and_streams_back_through_the_api() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "big"]);
    let root = "s3://big/p";
    let yaml = h.compile(&fixture());
    let (out, doc) = s3_run(&h, &moto, root, &yaml, &["-p", "size_mb=110", "-p", "escape_to_bucket=big"]);
    let r = must_succeed(&out, doc);
    let run_id = r.id();

    // 110 MiB in 8 MiB parts: S3 gives a multipart object the ETag `<md5 of the parts' md5s>-<parts>`.
    let keys = objects(&moto, "big", &format!("p/{run_id}/make-data/"));
    let (_, size, etag) = keys.iter().find(|(k, _, _)| k.ends_with("/data")).cloned().unwrap();
    assert_eq!(size, 110 << 20);
    assert!(etag.ends_with("-14"), "a multipart ETag of 14 parts, got {etag}");
    let digest = r.task_output("digest", "Output").as_str().unwrap().to_owned();

    // The API streams it back from the bucket (the local mirror is gone) byte for byte.
    std::fs::remove_dir_all(h.path().join("home/artifacts-mirror")).unwrap();
    let server = S3Server::start(&h, &moto, root);
    let listed: Value = {
        let (status, body) =
            raw_http(&server.url, "GET", &format!("/apis/v2beta1/runs/{run_id}/artifacts"), None, "", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let id_of = |name: &str| {
        listed["artifacts"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["artifact_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, body) =
        raw_http(&server.url, "GET", &format!("/apis/v2beta1/artifacts/{}", id_of("data")), None, "", "");
    assert_eq!(status, 200, "{body}");
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["storage_provider"], "s3", "{meta}");
    assert_eq!(meta["artifact_size"], (110u64 << 20).to_string(), "{meta}");
    let (status, hash, len, _) =
        get_hashed(&format!("{}/apis/v2beta1/artifacts/{}:download", server.url, id_of("data")));
    assert_eq!((status, len), (200, 110 << 20));
    assert_eq!(hash, digest);

    // A folder comes as a .tar.gz built from its objects.
    let (status, _, len, kind) =
        get_hashed(&format!("{}/apis/v2beta1/artifacts/{}:download", server.url, id_of("folder")));
    assert_eq!((status, kind.as_str()), (200, "application/gzip"));
    assert!(len > 0);

    // An output pointed outside the root (`s3://big/pfx/../../elsewhere`) is recorded but never served.
    let (status, body) =
        raw_http(&server.url, "GET", &format!("/apis/v2beta1/artifacts/{}:download", id_of("out")), None, "", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("outside the artifact root"), "{body}");
}

#[test]
fn s3_missing_bucket_is_a_clear_error_naming_it() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "present"]);
    let yaml = h.compile(&fixture());
    let (out, _) = s3_run(&h, &moto, "s3://no-such-bucket/x", &yaml, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`no-such-bucket` does not exist"), "{stderr}");
    // Nothing was run or recorded.
    let listed = h.output(&["runs", "list", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&listed.stdout).unwrap().as_array().map(Vec::len), Some(0));

    let out = s3_cmd(&h, &moto, "s3://no-such-bucket")
        .args(["server", "--host", "127.0.0.1", "--port", "0", "--serve-port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`no-such-bucket` does not exist"), "{stderr}");

    // A malformed root names the problem too.
    let out = s3_cmd(&h, &moto, "s3://Bad_Bucket/x").args(["run"]).arg(&yaml).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a valid S3 bucket name"), "{stderr}");
}

/// Data repositories on an S3 root: a put stores its objects in the bucket (content-addressed, one changed file
/// costs one object and a manifest more), and a get on a home without any local copy reads them back.
#[test]
fn s3_data_repositories_keep_their_objects_in_the_bucket() {
    let h = Home::new();
    let moto = Moto::start(h.path());
    moto.s3(&["create", "artifacts"]);
    let root = "s3://artifacts/team";
    let run = |args: &[&str]| {
        let out = s3_cmd(&h, &moto, root).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let src = h.path().join("dataset");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("sub/b.txt"), "beta").unwrap();
    let src_s = src.to_str().unwrap();

    run(&["data", "repo", "create", "ds"]);
    let first: Value = serde_json::from_str(&run(&["data", "put", "ds", src_s, "-m", "first", "--json"])).unwrap();
    assert_eq!(first["files"], 2, "{first}");
    let stored = objects(&moto, "artifacts", "team/data/objects/");
    assert!(stored.iter().any(|(_, size, _)| *size == 300_000), "{stored:?}");

    std::fs::write(src.join("sub/b.txt"), "beta, changed").unwrap();
    run(&["data", "put", "ds", src_s, "-m", "second", "--json"]);
    let grown = objects(&moto, "artifacts", "team/data/objects/");
    assert_eq!(grown.len(), stored.len() + 2, "one file object and one manifest more: {grown:?}");

    // Nothing of the objects lives in the home: a get reads the bucket.
    fn files_of_size(dir: &Path, size: u64) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => files_of_size(&e.path(), size),
                Ok(m) => usize::from(m.len() == size),
                Err(_) => 0,
            })
            .sum()
    }
    assert_eq!(files_of_size(&h.path().join("home"), 300_000), 0, "a copy of the object in the home");
    let dest = h.path().join("out");
    run(&["data", "get", "ds@main~1", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(dest.join("big.bin")).unwrap(), big);
    assert_eq!(std::fs::read_to_string(dest.join("sub/b.txt")).unwrap(), "beta");
    let diff: Value = serde_json::from_str(&run(&["data", "diff", "ds@main~1", "ds@main", "--json"])).unwrap();
    assert_eq!(diff.as_array().map(Vec::len), Some(1), "{diff}");
    assert_eq!(diff[0]["path"], "sub/b.txt");
}

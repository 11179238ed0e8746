"""Archive uploads through the real kfp.Client, and the JSON create endpoints over raw HTTP.

usage: uploads.py HOST PIPELINE_YAML WORKDIR
Prints one JSON line with what it checked.
"""
import gzip
import io
import json
import os
import sys
import tarfile
import zipfile

import kfp

import rawhttp
import kfp_server_api
import yaml

host, pipeline_yaml, workdir = sys.argv[1], sys.argv[2], sys.argv[3]
client = kfp.Client(host=host)
text = open(pipeline_yaml).read()


def make_zip(path, files):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def make_tgz(path, files):
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            t.addfile(info, io.BytesIO(raw))
    return path


def expect_400(fn, *fragments):
    try:
        fn()
    except kfp_server_api.ApiException as e:
        assert e.status == 400, (e.status, e.body)
        body = json.loads(e.body)
        for f in fragments:
            assert f in body["message"], (f, body)
        return body["message"]
    raise AssertionError("expected a 400")


def raw(method, path, body=None):
    return rawhttp.raw(host, method, path, body)


def count_pipelines():
    return client.list_pipelines(page_size=1000).total_size or 0


out = {}
# A .zip with the YAML in a folder, under a misleading file name: detected by magic bytes.
z = make_zip(os.path.join(workdir, "from-zip.yaml"), {"pkg/": "", "pkg/pipeline.yaml": text, "README.txt": "hi"})
p = client.upload_pipeline(z, pipeline_name="zipped")
out["zip_pipeline_id"] = p.pipeline_id
v = client.get_pipeline_version(p.pipeline_id, client.list_pipeline_versions(p.pipeline_id).pipeline_versions[0].pipeline_version_id)
assert v.pipeline_spec["pipelineInfo"]["name"] == yaml.safe_load(text)["pipelineInfo"]["name"], v.pipeline_spec

# A .tar.gz as a new version of it.
t = make_tgz(os.path.join(workdir, "v2.tar.gz"), {"./pipeline.yml": text})
v2 = client.upload_pipeline_version(t, pipeline_version_name="v2", pipeline_id=p.pipeline_id)
assert v2.pipeline_id == p.pipeline_id
out["tgz_version_id"] = v2.pipeline_version_id

before = count_pipelines()
out["two_files"] = expect_400(
    lambda: client.upload_pipeline(make_zip(os.path.join(workdir, "two.zip"), {"a.yaml": text, "b.json": "{}"}), pipeline_name="two"),
    "`a.yaml`", "`b.json`")
out["no_file"] = expect_400(
    lambda: client.upload_pipeline(make_tgz(os.path.join(workdir, "none.tar.gz"), {"notes.txt": "x"}), pipeline_name="none"),
    "no .yaml", "`notes.txt`")
# Zip bomb: 40 MiB of spaces compress to ~40 KiB; the pipeline file limit is 32 MiB.
out["zip_bomb"] = expect_400(
    lambda: client.upload_pipeline(make_zip(os.path.join(workdir, "bomb.zip"), {"p.yaml": " " * (40 << 20)}), pipeline_name="bomb"),
    "larger than 32 MiB")
# Gzip bomb: 300 MiB of zeros around a tiny YAML stops at the 256 MiB decompression cap.
bomb = make_tgz(os.path.join(workdir, "bomb.tar.gz"), {"p.yaml": text, "zeros.bin": b"\0" * (300 << 20)})
out["tgz_bomb"] = expect_400(lambda: client.upload_pipeline(bomb, pipeline_name="tbomb"), "256 MiB")
out["broken_zip"] = expect_400(
    lambda: client.upload_pipeline(make_zip(os.path.join(workdir, "bad.zip"), {"p.yaml": "pipelineInfo: [unclosed"}), pipeline_name="bad"))
assert count_pipelines() == before, "a refused upload stored a pipeline"

# POST /pipelines/create: pipeline and version in one body, spec inline.
spec = yaml.safe_load(text)
status, body = raw("POST", "/pipelines/create", {
    "pipeline": {"display_name": "created", "description": "made by JSON"},
    "pipeline_version": {"display_name": "first", "pipeline_spec": spec}})
assert status == 200, (status, body)
created = body["pipeline_id"]
versions = client.list_pipeline_versions(created).pipeline_versions
assert [x.display_name for x in versions] == ["first"], versions

status, body = raw("POST", f"/pipelines/{created}/versions", {"display_name": "second", "pipeline_spec": spec})
assert status == 200 and body["pipeline_version_id"], (status, body)

before = count_pipelines()
broken = dict(spec)
broken["root"] = {"dag": {"tasks": {"t": {"componentRef": {"name": "comp-missing"}, "taskInfo": {"name": "t"}}}}}
for bad, fragment in [
    ({"pipeline": {"display_name": "x"}, "pipeline_version": {"pipeline_spec": broken}}, "pipeline_version.pipeline_spec"),
    ({"pipeline": {"display_name": "x"}}, "pipeline_version is required"),
    ({"pipeline": {}, "pipeline_version": {"pipeline_spec": spec}}, "pipeline.display_name"),
    ({"pipeline": {"display_name": "x"}, "pipeline_version": {"package_url": {"pipeline_url": "http://x/p.yaml"}}}, "package_url"),
    ({"pipeline": {"display_name": "created"}, "pipeline_version": {"pipeline_spec": spec}}, None),
]:
    status, body = raw("POST", "/pipelines/create", bad)
    if fragment is None:
        assert status == 409, (status, body)
    else:
        assert status == 400 and fragment in body["message"], (status, body)
assert count_pipelines() == before, "a refused create stored a pipeline"

# POST /pipelines: a pipeline without versions, which then gets one.
status, body = raw("POST", "/pipelines", {"display_name": "bare", "description": "no versions yet"})
assert status == 200 and body["display_name"] == "bare", (status, body)
bare = body["pipeline_id"]
assert client.list_pipeline_versions(bare).pipeline_versions in (None, []), "a bare pipeline has a version"
status, body = raw("POST", f"/pipelines/{bare}/versions", {"display_name": "v1", "pipeline_spec": spec})
assert status == 200, (status, body)
status, body = raw("POST", "/pipelines", {"display_name": "bare"})
assert status == 409, (status, body)
status, body = raw("POST", "/pipelines", {"description": "nameless"})
assert status == 400 and "pipeline.display_name" in body["message"], (status, body)
print(json.dumps(out))

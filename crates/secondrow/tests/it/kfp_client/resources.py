"""Drives pipelines, runs, listing, terminate and errors through the real kfp.Client.

usage: resources.py HOST WORKDIR
"""
import json
import os
import sys
import time

import kfp

import rawhttp
import kfp_server_api
from kfp import compiler, dsl

host, workdir = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host)


@dsl.container_component
def quick(msg: str):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'echo "$0"'], args=[msg])


@dsl.container_component
def sleeper():
    return dsl.ContainerSpec(image="alpine", command=["sleep", "60"])


@dsl.pipeline(name="quick")
def quick_pipeline(msg: str = "hi"):
    quick(msg=msg)


@dsl.pipeline(name="long")
def long_pipeline():
    sleeper()


quick_yaml = os.path.join(workdir, "quick.yaml")
long_yaml = os.path.join(workdir, "long.yaml")
compiler.Compiler().compile(quick_pipeline, quick_yaml)
compiler.Compiler().compile(long_pipeline, long_yaml)


def raw(method, path, body=None):
    return rawhttp.raw(host, method, path, body)


def expect_error(status, code, resp, fragment):
    got_status, body = resp
    assert got_status == status, (got_status, body)
    assert set(body) >= {"error", "code", "message", "details"}, body
    assert body["code"] == code, body
    assert fragment in body["message"], (fragment, body)


# --- upload_pipeline + run_pipeline by version id
pipeline = client.upload_pipeline(quick_yaml, pipeline_name="quick-uploaded")
assert pipeline.pipeline_id and pipeline.display_name == "quick-uploaded"
versions = client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
assert len(versions) == 1, versions
version_id = versions[0].pipeline_version_id
v2 = client.upload_pipeline_version(quick_yaml, pipeline_version_name="v2", pipeline_name="quick-uploaded")
assert v2.pipeline_version_id != version_id
assert client.get_pipeline_id("quick-uploaded") == pipeline.pipeline_id
exp = client.create_experiment("listing")
assert client.create_experiment("listing").experiment_id == exp.experiment_id  # looked up, not duplicated
run = client.run_pipeline(experiment_id=exp.experiment_id, job_name="from-version",
                          pipeline_id=pipeline.pipeline_id, version_id=version_id, params={"msg": "v"})
done = client.wait_for_run_completion(run.run_id, timeout=120, sleep_duration=1)
assert done.state == "SUCCEEDED", done.state
assert done.pipeline_version_reference.pipeline_version_id == version_id
assert done.runtime_config.parameters == {"msg": "v"}, done.runtime_config

# --- list_runs: paging, sort_by, filter
for i in range(4):
    client.run_pipeline(experiment_id=exp.experiment_id, job_name=f"r{i}", pipeline_package_path=quick_yaml)
ids = [r.run_id for r in client.list_runs(experiment_id=exp.experiment_id, page_size=100).runs]
for rid in ids:
    client.wait_for_run_completion(rid, timeout=120, sleep_duration=1)
seen, token = [], ""
while True:
    page = client.list_runs(experiment_id=exp.experiment_id, page_size=2, page_token=token, sort_by="created_at")
    assert page.total_size == 5, page.total_size
    seen += [r.display_name for r in page.runs]
    token = page.next_page_token
    if not token:
        break
assert seen == ["from-version", "r0", "r1", "r2", "r3"], seen
desc = client.list_runs(experiment_id=exp.experiment_id, sort_by="display_name desc", page_size=3).runs
assert [r.display_name for r in desc] == ["r3", "r2", "r1"], [r.display_name for r in desc]
flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": "r2"}]})
assert [r.display_name for r in client.list_runs(experiment_id=exp.experiment_id, filter=flt).runs] == ["r2"]
flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "state", "string_value": "SUCCEEDED"}]})
assert client.list_runs(experiment_id=exp.experiment_id, filter=flt).total_size == 5
flt = json.dumps({"predicates": [{"operation": 9, "key": "display_name", "stringValue": "r"}]})
assert client.list_runs(experiment_id=exp.experiment_id, filter=flt, page_size=100).total_size == 5
flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "experiment_id", "string_value": exp.experiment_id}]})
assert client.list_runs(namespace="", filter=flt).total_size == 5
other = client.create_experiment("other")
assert client.list_runs(experiment_id=other.experiment_id).total_size == 0
client.archive_run(ids[0])
assert client.get_run(ids[0]).storage_state == "ARCHIVED"
client.unarchive_run(ids[0])
assert client.get_run(ids[0]).storage_state == "AVAILABLE"

# --- terminate a long run within 2 s
long_run = client.create_run_from_pipeline_package(long_yaml, arguments={}, run_name="long", experiment_name="other")
deadline = time.time() + 60
while True:
    r = client.get_run(long_run.run_id)
    if r.state == "RUNNING" and any(t.state == "RUNNING" for t in (r.run_details.task_details or [])):
        break
    assert time.time() < deadline, r.state
    time.sleep(0.1)
t0 = time.time()
client.terminate_run(long_run.run_id)
while client.get_run(long_run.run_id).state != "CANCELED":
    assert time.time() - t0 < 2.0, client.get_run(long_run.run_id).state
    time.sleep(0.05)
terminate_s = time.time() - t0

# --- retry: a canceled run runs again (its sleeper restarts) and can be terminated again
client.runs.run_service_retry_run(run_id=long_run.run_id)
deadline = time.time() + 30
while client.get_run(long_run.run_id).state not in ("RUNNING",):
    assert time.time() < deadline
    time.sleep(0.1)
client.terminate_run(long_run.run_id)

# --- errors: 4xx with KFP's error JSON, nothing half-written
before = client.list_runs(namespace="", page_size=1).total_size
expect_error(400, 3, raw("POST", "/runs", "{not json"), "malformed JSON body")
expect_error(400, 3, raw("POST", "/runs", "[1, 2]"), "malformed JSON body")
expect_error(404, 5, raw("GET", "/runs/no-such-run"), "run `no-such-run` not found")
expect_error(404, 5, raw("POST", "/runs/no-such-run:terminate"), "not found")
expect_error(404, 5, raw("GET", "/experiments/nope"), "experiment `nope` not found")
expect_error(404, 5, raw("GET", "/pipelines/nope/versions/nope"), "not found")
spec = json.loads(json.dumps(__import__("yaml").safe_load(open(quick_yaml))))
broken = json.loads(json.dumps(spec))
broken["root"]["dag"]["tasks"]["quick"]["componentRef"]["name"] = "comp-missing"
expect_error(400, 3, raw("POST", "/runs", json.dumps({"display_name": "bad", "pipeline_spec": broken})), "comp-missing")
expect_error(400, 3, raw("POST", "/runs", json.dumps({"display_name": "bad", "pipeline_spec": spec,
                                                      "runtime_config": {"parameters": {"nope": 1}}})), "nope")
expect_error(400, 3, raw("POST", "/runs", json.dumps({"display_name": "bad"})), "pipeline_spec")
expect_error(400, 3, raw("GET", "/runs?filter=%7Bbad"), "filter")
expect_error(400, 3, raw("GET", "/runs?sort_by=nope"), "sort_by")
expect_error(400, 3, raw("GET", "/runs?page_token=zz"), "page_token")
expect_error(409, 6, raw("POST", "/experiments", json.dumps({"display_name": "listing"})), "already exists")
try:
    client.get_run("no-such-run")
    raise AssertionError("get_run of an unknown id succeeded")
except kfp_server_api.ApiException as e:
    assert e.status == 404 and json.loads(e.body)["code"] == 5
bad_yaml = os.path.join(workdir, "bad.yaml")
with open(bad_yaml, "w") as f:
    f.write("pipelineInfo: {name: x}\nroot: {dag: {tasks: {a: {componentRef: {name: comp-none}}}}}\n")
try:
    client.upload_pipeline(bad_yaml, pipeline_name="bad")
    raise AssertionError("invalid pipeline upload succeeded")
except kfp_server_api.ApiException as e:
    assert e.status == 400 and "comp-none" in json.loads(e.body)["message"], e.body
assert client.list_runs(namespace="", page_size=1).total_size == before, "an invalid request wrote a run"
assert [p.display_name for p in client.list_pipelines(page_size=100).pipelines].count("bad") == 0

status, body = raw("GET", "/healthz")
assert status == 200 and body["multi_user"] is False
print(json.dumps({"terminate_s": terminate_s}))

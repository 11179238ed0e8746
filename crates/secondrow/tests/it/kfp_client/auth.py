"""Access control through the real kfp.Client: bearer tokens, namespaces, 401/403 with KFP's error JSON.

usage: auth.py namespaces HOST WORKDIR ADMIN_TOKEN TOKEN_A TOKEN_B
       auth.py status HOST PATH [TOKEN]    (prints {"status": ..., "body": ...})
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request


def raw(host, method, path, token=None, body=None, auth=None):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if auth is not None:
        headers["Authorization"] = auth
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(host + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            text = r.read()
            return r.status, json.loads(text) if r.headers.get_content_type() == "application/json" else text.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def expect_error(resp, status, code, fragment):
    body = resp[1]
    ok = resp[0] == status and body.get("code") == code and fragment in body.get("message", "")
    assert ok and {"error", "details"} <= set(body), (status, code, fragment, resp)


def denied(call, fragment="namespace `ns-a`"):
    """A kfp.Client call that must fail with 403 naming the namespace."""
    try:
        call()
    except kfp_server_api.ApiException as e:
        body = json.loads(e.body)
        assert e.status == 403 and body["code"] == 7 and fragment in body["message"], (e.status, e.body)
        return
    raise AssertionError("a call across namespaces succeeded")


if sys.argv[1] == "status":
    host, path = sys.argv[2], sys.argv[3]
    token = sys.argv[4] if len(sys.argv) > 4 else None
    status, body = raw(host, "GET", path, token)
    print(json.dumps({"status": status, "body": body}))
    sys.exit(0)

host, workdir, admin_token, token_a, token_b = sys.argv[2:7]

import kfp  # noqa: E402 (not needed by `status`, which stays quick)
import kfp_server_api  # noqa: E402
from kfp import compiler, dsl  # noqa: E402


@dsl.container_component
def nap(seconds: int):
    return dsl.ContainerSpec(image="alpine", command=["sleep"], args=[seconds])


@dsl.pipeline(name="nap")
def nap_pipeline(seconds: int = 0):
    nap(seconds=seconds)


# One spec; runs pass `seconds` (0: done at once, 60: running until terminated).
quick_yaml = os.path.join(workdir, "nap.yaml")
compiler.Compiler().compile(nap_pipeline, quick_yaml)
LONG = {"seconds": 60}


def wait(client, run_id, states=("SUCCEEDED",)):
    deadline = time.time() + 60
    while True:
        r = client.get_run(run_id)
        if r.state in states:
            return r
        assert time.time() < deadline, r.state
        time.sleep(0.1)


# --- no token: the constructor works (healthz is open), every call is a 401
anonymous = kfp.Client(host=host)
try:
    anonymous.list_experiments()
    raise AssertionError("a call without a token succeeded")
except kfp_server_api.ApiException as e:
    assert e.status == 401 and json.loads(e.body)["code"] == 16, (e.status, e.body)

# --- the admin token reaches everything
admin = kfp.Client(host=host, existing_token=admin_token)
run = admin.create_run_from_pipeline_package(quick_yaml, arguments={}, run_name="admin-run")
assert wait(admin, run.run_id).state == "SUCCEEDED"
shared = admin.upload_pipeline(quick_yaml, pipeline_name="shared-quick")
assert admin.get_pipeline(shared.pipeline_id).namespace in ("", None)

# --- namespace a: experiment, run, private pipeline, recurring run
a = kfp.Client(host=host, existing_token=token_a)
exp_a = a.create_experiment("exp-a")
assert exp_a.namespace == "ns-a", exp_a
run_a = a.create_run_from_pipeline_package(quick_yaml, arguments=LONG, run_name="run-a", experiment_id=exp_a.experiment_id)
assert a.get_run(run_a.run_id).experiment_id == exp_a.experiment_id
private = a.upload_pipeline(quick_yaml, pipeline_name="private-a")
assert a.get_pipeline(private.pipeline_id).namespace == "ns-a"
versions_a = a.list_pipeline_versions(private.pipeline_id).pipeline_versions
rr_a = a.create_recurring_run(experiment_id=exp_a.experiment_id, job_name="rr-a", cron_expression="0 0 0 1 1 *",
                              pipeline_package_path=quick_yaml, enabled=False)
# A's own lists: its experiment, its run, its pipeline and the shared one, not admin's run.
assert [e.display_name for e in a.list_experiments().experiments or []] == ["exp-a"]
assert [r.run_id for r in a.list_runs(page_size=100).runs or []] == [run_a.run_id]
# (Runs from a spec also record it as a shared pipeline, so other shared names may be listed.)
assert {"shared-quick", "private-a"} <= {p.display_name for p in a.list_pipelines(page_size=100).pipelines}
assert a.get_pipeline(shared.pipeline_id).pipeline_id == shared.pipeline_id

# --- namespace b: 403 on everything of a, none of a's objects in its lists
b = kfp.Client(host=host, existing_token=token_b)
admin_runs_before = admin.list_runs(namespace="ns-a", page_size=100).total_size
denied(lambda: b.get_run(run_a.run_id))
denied(lambda: b.get_experiment(experiment_id=exp_a.experiment_id))
denied(lambda: b.list_runs(experiment_id=exp_a.experiment_id))
denied(lambda: b.list_recurring_runs(experiment_id=exp_a.experiment_id))
denied(lambda: b.list_experiments(namespace="ns-a"))
denied(lambda: b.list_runs(namespace="ns-a"))
denied(lambda: b.terminate_run(run_a.run_id))
denied(lambda: b.archive_run(run_a.run_id))
denied(lambda: b.delete_run(run_a.run_id))
denied(lambda: b.runs.run_service_retry_run(run_id=run_a.run_id))
denied(lambda: b.archive_experiment(exp_a.experiment_id))
denied(lambda: b.delete_experiment(exp_a.experiment_id))
denied(lambda: b.get_recurring_run(rr_a.recurring_run_id))
denied(lambda: b.enable_recurring_run(rr_a.recurring_run_id))
denied(lambda: b.delete_recurring_run(rr_a.recurring_run_id))
denied(lambda: b.get_pipeline(private.pipeline_id))
denied(lambda: b.list_pipeline_versions(private.pipeline_id))
denied(lambda: b.delete_pipeline(private.pipeline_id))
denied(lambda: b.create_run_from_pipeline_package(quick_yaml, arguments={}, experiment_id=exp_a.experiment_id))
denied(lambda: b.run_pipeline(experiment_id=exp_a.experiment_id, job_name="x", pipeline_package_path=quick_yaml))
denied(lambda: b.create_recurring_run(experiment_id=exp_a.experiment_id, job_name="x", cron_expression="0 0 0 1 1 *",
                                      pipeline_package_path=quick_yaml))
denied(lambda: b.run_pipeline(experiment_id=b.create_experiment("exp-b").experiment_id, job_name="x",
                              pipeline_id=private.pipeline_id, version_id=versions_a[0].pipeline_version_id))
denied(lambda: b.create_experiment("sneaky", namespace="ns-a"))
denied(lambda: b.upload_pipeline(quick_yaml, pipeline_name="sneaky", namespace="ns-a"))
denied(lambda: b.delete_pipeline(shared.pipeline_id), fragment="shared")
assert [e.display_name for e in b.list_experiments().experiments or []] == ["exp-b"]
assert not b.list_runs(page_size=100).runs
assert not b.list_recurring_runs(page_size=100).recurring_runs
names_b = {p.display_name for p in b.list_pipelines(page_size=100).pipelines}
assert "shared-quick" in names_b and "private-a" not in names_b, names_b
assert all(p.namespace in ("", None, "ns-b") for p in b.list_pipelines(page_size=100).pipelines)
# B runs the shared pipeline in its own namespace.
run_b = b.run_pipeline(experiment_id=b.create_experiment("exp-b").experiment_id, job_name="run-b",
                       pipeline_id=shared.pipeline_id, version_id=admin.list_pipeline_versions(shared.pipeline_id)
                       .pipeline_versions[0].pipeline_version_id)
assert wait(b, run_b.run_id).state == "SUCCEEDED"
# Nothing of a's changed, and nothing was written for the refused requests.
assert admin.list_runs(namespace="ns-a", page_size=100).total_size == admin_runs_before
assert a.get_run(run_a.run_id).state in ("PENDING", "RUNNING")
assert a.get_experiment(experiment_id=exp_a.experiment_id).storage_state == "AVAILABLE"
assert not any(e.display_name == "sneaky" for e in admin.list_experiments(namespace="ns-a").experiments)
assert "sneaky" not in [p.display_name for p in admin.list_pipelines(page_size=100).pipelines]
assert [r.display_name for r in b.list_runs(page_size=100).runs] == ["run-b"]
# The admin sees both namespaces.
assert {r.run_id for r in admin.list_runs(namespace="ns-a").runs} == {run_a.run_id}
assert {r.run_id for r in admin.list_runs(namespace="ns-b").runs} == {run_b.run_id}
# A can stop its own run.
a.terminate_run(run_a.run_id)
wait(a, run_a.run_id, states=("CANCELED",))

# --- raw HTTP: status and KFP's error JSON
v = "/apis/v2beta1"
expect_error(raw(host, "GET", v + "/runs"), 401, 16, "authentication required")
expect_error(raw(host, "GET", v + "/runs", token="sr_not-a-token"), 401, 16, "not valid")
expect_error(raw(host, "GET", v + "/runs", auth="Basic YTpi"), 401, 16, "Bearer")
expect_error(raw(host, "GET", v + "/no-such-endpoint"), 401, 16, "authentication required")
expect_error(raw(host, "GET", v + f"/runs/{run_a.run_id}", token=token_b), 403, 7, "namespace `ns-a`")
expect_error(raw(host, "DELETE", v + f"/experiments/{exp_a.experiment_id}", token=token_b), 403, 7, "namespace `ns-a`")
spec = json.loads(json.dumps(__import__("yaml").safe_load(open(quick_yaml))))
expect_error(raw(host, "POST", v + "/runs", token=token_b,
                 body=json.dumps({"experiment_id": exp_a.experiment_id, "display_name": "x", "pipeline_spec": spec})),
             403, 7, "namespace `ns-a`")
expect_error(raw(host, "POST", v + "/experiments", token=token_b,
                 body=json.dumps({"display_name": "x", "namespace": "ns-a"})), 403, 7, "namespace `ns-a`")
for path in [f"/runs/{run_a.run_id}/artifacts", f"/runs/{run_a.run_id}/logs", f"/secondrow/runs/{run_a.run_id}"]:
    expect_error(raw(host, "GET", v + path, token=token_b), 403, 7, "namespace `ns-a`")
# Deployments belong to namespaces (sec_more.rs has the full story): a token lists its own, not another's.
assert raw(host, "GET", v + "/deployments", token=token_b) == (200, {"deployments": [], "total_size": 0})
expect_error(raw(host, "GET", v + "/deployments?namespace=ns-a", token=token_b), 403, 7, "namespace `ns-a`")
assert raw(host, "GET", v + "/deployments", token=admin_token)[0] == 200
status, body = raw(host, "GET", v + "/secondrow/runs", token=token_b)
assert status == 200 and [r["id"] for r in body] == [run_b.run_id], body
status, body = raw(host, "GET", v + f"/runs/{run_a.run_id}/artifacts", token=token_a)
assert status == 200, body
status, body = raw(host, "GET", v + "/healthz")
assert status == 200 and body["multi_user"] is False, (status, body)
status, _ = raw(host, "GET", v + "/openapi.json")
assert status == 200
status, text = raw(host, "GET", "/metrics")
assert status == 200 and "secondrow" in text, (status, text[:200])
status, body = raw(host, "GET", v + f"/runs/{run_a.run_id}", token=admin_token)
assert status == 200 and body["namespace"] == "ns-a", body
print(json.dumps({"run_a": run_a.run_id, "exp_a": exp_a.experiment_id}))

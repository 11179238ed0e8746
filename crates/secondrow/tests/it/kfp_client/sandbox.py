"""Submits a hand-written IR pipeline as one namespace over the raw v2beta1 API and waits for its end.

usage: sandbox.py HOST TOKEN NAMESPACE SPEC.yaml PARAMS_JSON [--no-wait]
prints {"run_id": ..., "state": ...}
"""
import json
import sys
import time
import urllib.error
import urllib.request

import yaml

host, token, namespace, spec_path, params = sys.argv[1:6]
wait = "--no-wait" not in sys.argv[6:]


def call(method, path, body=None):
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(host + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode()}")


with open(spec_path) as f:
    docs = list(yaml.safe_load_all(f))
spec = docs[0]
body_spec = spec if len(docs) == 1 else {"pipeline_spec": docs[0], "platform_spec": docs[1]}
experiment = call("POST", "/apis/v2beta1/experiments", {"display_name": f"sandbox-{time.time_ns()}", "namespace": namespace})
run = call(
    "POST",
    "/apis/v2beta1/runs",
    {
        "display_name": spec["pipelineInfo"]["name"],
        "experiment_id": experiment["experiment_id"],
        "pipeline_spec": body_spec,
        "runtime_config": {"parameters": json.loads(params)},
    },
)
state = run.get("state")
deadline = time.time() + 120
while wait and state not in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED") and time.time() < deadline:
    time.sleep(0.1)
    state = call("GET", f"/apis/v2beta1/runs/{run['run_id']}")["state"]
print(json.dumps({"run_id": run["run_id"], "state": state}))

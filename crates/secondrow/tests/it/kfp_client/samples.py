"""Runs compiled samples through the real kfp.Client: create_run_from_pipeline_package, wait, get_run.

usage: samples.py HOST NAME=YAML:EXPECTED_STATE ...
Prints one JSON object per sample on stdout; exits non-zero on the first mismatch.
"""
import json
import sys

import kfp

host = sys.argv[1]
client = kfp.Client(host=host)
runs = []
for arg in sys.argv[2:]:
    name, rest = arg.split("=", 1)
    path, expected = rest.rsplit(":", 1)
    result = client.create_run_from_pipeline_package(path, arguments={}, run_name=f"sample {name}", experiment_name="samples")
    runs.append((name, result.run_id, expected))

for name, run_id, expected in runs:
    done = client.wait_for_run_completion(run_id, timeout=600, sleep_duration=1)
    assert done.state == expected, f"{name}: state {done.state}, expected {expected}"
    run = client.get_run(run_id)
    assert run.run_id == run_id and run.display_name == f"sample {name}"
    assert run.experiment_id, name
    assert run.finished_at.year >= 2024 and run.created_at <= run.finished_at, name
    tasks = run.run_details.task_details
    assert tasks, f"{name}: no task details"
    for t in tasks:
        assert t.task_id and t.display_name and t.state, f"{name}: incomplete task detail {t}"
        if t.state in ("SUCCEEDED", "CACHED", "FAILED"):
            assert t.end_time >= t.create_time, f"{name}: task times {t}"
    states = [s.state for s in run.state_history]
    assert states[0] == "PENDING" and states[-1] == expected, f"{name}: history {states}"
    print(json.dumps({"sample": name, "run_id": run_id, "state": run.state,
                      "tasks": {t.pod_name: t.state for t in tasks}}), flush=True)

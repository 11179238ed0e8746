"""kfp-kubernetes pipelines through the real kfp.Client: a run sees only its own namespace's secrets.

usage: platform_namespaces.py HOST PIPELINE_YAML   (prints {"team-a": STATE, "default": STATE, ...run ids} as JSON)
"""
import json
import sys

import kfp

host, package = sys.argv[1:3]
client = kfp.Client(host=host)
out = {}
for label, namespace in [("team-a", "team-a"), ("default", None)]:
    exp = client.create_experiment(name=f"k8s-{label}", namespace=namespace)
    run = client.run_pipeline(
        experiment_id=exp.experiment_id,
        job_name=f"k8s-{label}",
        pipeline_package_path=package,
        enable_caching=False,
    )
    done = client.wait_for_run_completion(run.run_id, timeout=180)
    out[label] = done.state
    out[f"{label}_id"] = run.run_id
print(json.dumps(out))

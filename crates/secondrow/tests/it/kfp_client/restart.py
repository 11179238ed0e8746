"""Restart safety helper. `submit HOST WORKDIR N`: N runs of a 3-step chain (each step appends to a marker
file named after the run and step, then sleeps); prints the run ids. `wait HOST IDS_FILE`: waits for all,
prints their final states as JSON.
"""
import json
import os
import sys

import kfp
from kfp import compiler, dsl

mode, host = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host)


@dsl.container_component
def step(marker_dir: str, tag: str):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'echo x >> "$0/$1-$2"; sleep 0.7'],
                             args=[marker_dir, dsl.PIPELINE_JOB_ID_PLACEHOLDER, tag])


@dsl.pipeline(name="chain")
def chain(marker_dir: str):
    a = step(marker_dir=marker_dir, tag="a").set_caching_options(False)
    b = step(marker_dir=marker_dir, tag="b").set_caching_options(False).after(a)
    step(marker_dir=marker_dir, tag="c").set_caching_options(False).after(b)


if mode == "submit":
    workdir, n = sys.argv[3], int(sys.argv[4])
    path = os.path.join(workdir, "chain.yaml")
    compiler.Compiler().compile(chain, path)
    markers = os.path.join(workdir, "markers")
    os.makedirs(markers, exist_ok=True)
    ids = [client.create_run_from_pipeline_package(path, arguments={"marker_dir": markers}, run_name=f"chain {i}").run_id
           for i in range(n)]
    print(json.dumps(ids))
else:
    ids = json.load(open(sys.argv[3]))
    states = {i: client.wait_for_run_completion(i, timeout=300, sleep_duration=1).state for i in ids}
    total = client.list_runs(namespace="", page_size=1).total_size
    print(json.dumps({"states": states, "total": total}))

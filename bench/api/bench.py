"""API load benchmark: 100 runs of a 10-task pipeline submitted concurrently through kfp.Client, while
list_runs and get_run latencies are sampled over one keep-alive connection from a separate process.

usage: python bench.py HOST [RUNS]
Prints a JSON summary (total time, p50/p99 of list_runs and get_run in ms).
"""
import concurrent.futures
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import urllib.parse

import kfp
from kfp import compiler, dsl

host = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 100
client = kfp.Client(host=host)


@dsl.container_component
def step(i: int):
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", 'echo "$0"'], args=[i])


@dsl.pipeline(name="ten-tasks")
def ten():
    prev = None
    for i in range(10):
        t = step(i=i).set_caching_options(False)
        if prev is not None and i % 2 == 1:
            t.after(prev)
        prev = t


path = os.path.join(tempfile.mkdtemp(), "ten.yaml")
compiler.Compiler().compile(ten, path)
exp = client.create_experiment("bench")

def sampler(exp_id, stop, out):
    """Samples list_runs and get_run (the newest run) over one keep-alive connection until `stop` is set.

    It runs in a process of its own: in the submitting process, the GIL held by 16 client threads would add
    Python's scheduling delays to the measured latencies.
    """
    u = urllib.parse.urlparse(host)
    conn = http.client.HTTPConnection(u.hostname, u.port)
    q = urllib.parse.urlencode({"experiment_id": exp_id, "page_size": 20, "sort_by": "created_at desc",
                                "page_token": "", "filter": ""})
    lat = {"list_runs": [], "get_run": []}
    newest = None
    while not stop.is_set():
        for name in ("list_runs", "get_run"):
            if name == "get_run" and newest is None:
                continue
            p = f"/apis/v2beta1/runs?{q}" if name == "list_runs" else f"/apis/v2beta1/runs/{newest}"
            t = time.perf_counter()
            conn.request("GET", p, headers={"Accept": "application/json"})
            r = conn.getresponse()
            body = r.read()
            lat[name].append((time.perf_counter() - t) * 1000)
            assert r.status == 200, (r.status, body[:200])
            if name == "list_runs":
                listed = json.loads(body).get("runs") or []
                if listed:
                    newest = listed[0]["run_id"]
        time.sleep(0.005)
    out.put(lat)


ids = []
stop = multiprocessing.Event()
out = multiprocessing.Queue()
th = multiprocessing.Process(target=sampler, args=(exp.experiment_id, stop, out), daemon=True)
t0 = time.time()
th.start()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    futures = [pool.submit(client.run_pipeline, experiment_id=exp.experiment_id, job_name=f"b{i}",
                           pipeline_package_path=path) for i in range(runs)]
    for f in futures:
        ids.append(f.result().run_id)
submitted = time.time() - t0
states = {}
for i in ids:
    while True:
        r = client.get_run(i)
        if r.state in ("SUCCEEDED", "FAILED", "CANCELED"):
            states[i] = r.state
            break
        time.sleep(0.5)
total = time.time() - t0
stop.set()
latencies = out.get(timeout=60)
th.join()


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2) if xs else None


print(json.dumps({
    "runs": runs, "tasks_per_run": 10, "submit_s": round(submitted, 2), "total_s": round(total, 2),
    "succeeded": sum(1 for s in states.values() if s == "SUCCEEDED"),
    "list_runs_ms": {"n": len(latencies["list_runs"]), "p50": pct(latencies["list_runs"], 0.5),
                     "p99": pct(latencies["list_runs"], 0.99)},
    "get_run_ms": {"n": len(latencies["get_run"]), "p50": pct(latencies["get_run"], 0.5),
                   "p99": pct(latencies["get_run"], 0.99)},
}, indent=2))

"""Seeds a SecondRow SQLite database for the UI benchmark: N runs over 20 experiments (every state), and one
run of a ParallelFor with 1,000 iterations (3,001 task rows) whose id is printed.

usage: python seed.py DB N
"""
import json
import sqlite3
import sys
import uuid

db, n = sys.argv[1], int(sys.argv[2])
con = sqlite3.connect(db)
states = ["SUCCEEDED", "FAILED", "RUNNING", "CANCELED", "PENDING"]
exps = [(str(uuid.uuid4()), f"exp-{i}") for i in range(20)]
con.executemany("INSERT INTO experiments (id, display_name, namespace, created_at) VALUES (?, ?, '', 0)", exps)
spec = {
    "pipelineInfo": {"name": "fan-out"},
    "root": {"dag": {"tasks": {
        "make": {"taskInfo": {"name": "make"}, "componentRef": {"name": "comp-make"}},
        "for-loop-1": {"taskInfo": {"name": "for-loop-1"}, "componentRef": {"name": "comp-loop"},
                       "dependentTasks": ["make"],
                       "parameterIterator": {"itemInput": "x", "items": {"inputParameter": "items"}}},
        "sum": {"taskInfo": {"name": "sum"}, "componentRef": {"name": "comp-make"}, "dependentTasks": ["for-loop-1"]},
    }}},
    "components": {
        "comp-make": {"executorLabel": "exec-make"},
        "comp-loop": {"dag": {"tasks": {
            "square": {"taskInfo": {"name": "square"}, "componentRef": {"name": "comp-make"}},
            "log": {"taskInfo": {"name": "log"}, "componentRef": {"name": "comp-make"}, "dependentTasks": ["square"]},
        }}},
    },
    "deploymentSpec": {"executors": {}},
}
small = json.dumps({"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {}}}})
rows = []
for i in range(n):
    e = exps[i % len(exps)]
    st = states[i % len(states)]
    t = 1_700_000_000_000 + i * 1000
    rows.append((str(uuid.uuid4()), f"run {i}", e[0], "p", small, "{}", "{}", st, t, t, t + 5000 if st in ("SUCCEEDED", "FAILED", "CANCELED") else None))
con.executemany(
    "INSERT INTO runs (id, display_name, namespace, experiment_id, pipeline_name, spec, parameters, options, state, created_at, started_at, finished_at)"
    " VALUES (?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
big = str(uuid.uuid4())
t = 1_800_000_000_000
con.execute(
    "INSERT INTO runs (id, display_name, namespace, pipeline_name, spec, parameters, options, state, created_at, started_at)"
    " VALUES (?, 'fan-out 1000', '', 'fan-out', ?, '{}', '{}', 'RUNNING', ?, ?)", (big, json.dumps(spec), t, t))
tasks = []
def task(path, parent, kind, state):
    tid = str(uuid.uuid4())
    tasks.append((tid, big, parent, path, path.rsplit("/", 1)[-1], path, kind, state, t, t, t + 10 if state != "RUNNING" else None))
    return tid
task("make", None, "container", "SUCCEEDED")
loop = task("for-loop-1", None, "loop", "RUNNING")
for i in range(1000):
    st = "SUCCEEDED" if i < 990 else ("FAILED" if i < 998 else "RUNNING")
    it = task(f"for-loop-1/{i}", loop, "iteration", st)
    task(f"for-loop-1/{i}/square", it, "container", st)
    task(f"for-loop-1/{i}/log", it, "container", st)
con.executemany(
    "INSERT INTO tasks (id, run_id, parent_id, path, task_key, display_name, kind, state, attempts, cached, created_at, started_at, finished_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0, ?, ?, ?)", tasks)
con.commit()
with open(db + ".bigrun", "w") as f:
    f.write(big)
print(f"seeded {n} runs and run {big} with {len(tasks)} tasks", flush=True)

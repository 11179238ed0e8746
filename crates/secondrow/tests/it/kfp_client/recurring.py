"""Recurring runs through the real kfp.Client: a seconds-level cron creates runs on schedule,
max_concurrency holds, disable stops scheduling, enable resumes it.

usage: recurring.py HOST WORKDIR
"""
import json
import os
import sys
import time

import kfp
from kfp import compiler, dsl

host, workdir = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host)


@dsl.container_component
def quick():
    return dsl.ContainerSpec(image="alpine", command=["sh", "-c", "echo tick"])


@dsl.container_component
def sleeper():
    return dsl.ContainerSpec(image="alpine", command=["sleep", "60"])


@dsl.pipeline(name="tick")
def tick_pipeline():
    quick()


@dsl.pipeline(name="slow")
def slow_pipeline():
    sleeper()


tick_yaml = os.path.join(workdir, "tick.yaml")
slow_yaml = os.path.join(workdir, "slow.yaml")
compiler.Compiler().compile(tick_pipeline, tick_yaml)
compiler.Compiler().compile(slow_pipeline, slow_yaml)

exp = client.create_experiment("recurring")
tick = client.create_recurring_run(experiment_id=exp.experiment_id, job_name="tick", cron_expression="*/2 * * * * *",
                                   pipeline_package_path=tick_yaml, max_concurrency=1, no_catchup=True)
slow = client.create_recurring_run(experiment_id=exp.experiment_id, job_name="slow", cron_expression="* * * * * ?",
                                   pipeline_package_path=slow_yaml, max_concurrency=1)
got = client.get_recurring_run(tick.recurring_run_id)
assert got.status == "ENABLED" and got.trigger.cron_schedule.cron == "*/2 * * * * *", got
assert len(client.list_recurring_runs(experiment_id=exp.experiment_id).recurring_runs) == 2


def runs_of(rr_id):
    runs = client.list_runs(experiment_id=exp.experiment_id, page_size=200).runs or []
    return [r for r in runs if r.recurring_run_id == rr_id]


def wait_until(what, predicate, timeout=60):
    """Polls `predicate` until it holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


wait_until("two runs of cron */2", lambda: len(runs_of(tick.recurring_run_id)) >= 2)
wait_until("the first slow run", lambda: len(runs_of(slow.recurring_run_id)) >= 1)
# Two */2 fires mean the scheduler ticked for 2 s or more: the every-second `slow` fired at least twice.
slows = runs_of(slow.recurring_run_id)
assert len(slows) == 1, f"max_concurrency=1 but {len(slows)} slow runs exist"

client.disable_recurring_run(tick.recurring_run_id)
assert client.get_recurring_run(tick.recurring_run_id).status == "DISABLED"
# A fire recorded just before the disable may still submit its run; after that the count must stay put.
# Stable for 4 s (two */2 fire times) within 30 s: a scheduler that ignored the disable never gets there.
n, since, deadline = len(runs_of(tick.recurring_run_id)), time.monotonic(), time.monotonic() + 30
while time.monotonic() - since < 4:
    assert time.monotonic() < deadline, "a disabled recurring run kept starting runs"
    time.sleep(0.2)
    now = len(runs_of(tick.recurring_run_id))
    if now != n:
        n, since = now, time.monotonic()
for r in runs_of(tick.recurring_run_id):
    assert client.wait_for_run_completion(r.run_id, timeout=60, sleep_duration=1).state == "SUCCEEDED"

client.enable_recurring_run(tick.recurring_run_id)
wait_until("a run after enabling", lambda: len(runs_of(tick.recurring_run_id)) > n)

client.delete_recurring_run(slow.recurring_run_id)
client.delete_recurring_run(tick.recurring_run_id)
for r in runs_of(slow.recurring_run_id):
    client.terminate_run(r.run_id)
print(json.dumps({"ticks": len(runs_of(tick.recurring_run_id))}))

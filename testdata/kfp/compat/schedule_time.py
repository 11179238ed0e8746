"""A recurring run's `{{$.pipeline_job_schedule_time_utc}}` is the time its schedule fired.

Through the real kfp.Client: a two-second cron starts runs whose container writes the job name (SecondRow
names a scheduled run `<recurring run>-<fire time as YYYYmmddHHMMSS>`), the schedule-time and the
create-time placeholders. The schedule starts an hour ago with catch-up, so the runs are created now for fire
times long past: the schedule time must be the fire time (an even second), not the creation time.

usage: schedule_time.py HOST WORKDIR
"""
import datetime
import os
import sys
import time

import kfp
from kfp import compiler, dsl

host, workdir = sys.argv[1], sys.argv[2]
client = kfp.Client(host=host)


@dsl.container_component
def stamp(job_name: str, scheduled: str, created: str, folder: str):
    return dsl.ContainerSpec(image="alpine",
                             command=["sh", "-c", 'printf "%s %s %s" "$0" "$1" "$2" > "$3/stamp.tmp" && mv "$3/stamp.tmp" "$3/stamp"'],
                             args=[job_name, scheduled, created, folder])


@dsl.pipeline(name="stamped")
def stamped(folder: str):
    stamp(job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, scheduled=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER,
          created=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER, folder=folder).set_caching_options(False)


yaml_path = os.path.join(workdir, "stamped.yaml")
compiler.Compiler().compile(stamped, yaml_path)
exp = client.create_experiment("scheduled")
start = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
rr = client.create_recurring_run(experiment_id=exp.experiment_id, job_name="stamped", cron_expression="*/2 * * * * *",
                                 pipeline_package_path=yaml_path, params={"folder": workdir}, max_concurrency=1,
                                 start_time=start, no_catchup=False)
path = os.path.join(workdir, "stamp")
deadline = time.monotonic() + 60
while not os.path.exists(path):
    assert time.monotonic() < deadline, "no scheduled run wrote its stamp within 60 s"
    time.sleep(0.1)
client.disable_recurring_run(rr.recurring_run_id)

job_name, scheduled, created = open(path).read().split(" ")
fired = datetime.datetime.strptime(job_name.rsplit("-", 1)[1], "%Y%m%d%H%M%S")
assert scheduled == fired.strftime("%Y-%m-%dT%H:%M:%SZ"), (job_name, scheduled)
assert fired.second % 2 == 0, scheduled
late = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ") - fired
assert late > datetime.timedelta(minutes=30), (job_name, scheduled, created)
print(job_name, scheduled, created)

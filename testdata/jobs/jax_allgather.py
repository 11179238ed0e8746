"""One JAX process of a JAXJob: joins the others through jax.distributed (coordinator from the variables the
job sets), gathers every process's value over gloo CPU collectives, and writes what it saw as JSON."""

import json
import os
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_platforms", "cpu")

pid = int(os.environ["PROCESS_ID"])
n = int(os.environ["NUM_PROCESSES"])
jax.distributed.initialize(
    coordinator_address=f"{os.environ['COORDINATOR_ADDRESS']}:{os.environ['COORDINATOR_PORT']}",
    num_processes=n,
    process_id=pid,
)

import jax.numpy as jnp  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

gathered = multihost_utils.process_allgather(jnp.array([float(pid + 1)]))
values = [float(v) for v in gathered.reshape(-1)]
env = {k: os.environ.get(k) for k in ("COORDINATOR_ADDRESS", "COORDINATOR_PORT", "NUM_PROCESSES", "PROCESS_ID", "PYTHONUNBUFFERED")}
out = {"process_id": pid, "process_count": jax.process_count(), "gathered": values, "sum": sum(values), "env": env}
with open(os.path.join(sys.argv[1], f"rank-{pid}.json"), "w") as f:
    json.dump(out, f)
print(json.dumps(out), flush=True)
jax.distributed.shutdown()

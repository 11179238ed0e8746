"""One TensorFlow worker of a TFJob: MultiWorkerMirroredStrategy reads the cluster and this task from TF_CONFIG
(set by the job), all-reduces every worker's value over its collective ops (gRPC on loopback), gathers
them, and writes what it saw as JSON."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

config = json.loads(os.environ["TF_CONFIG"])
index = config["task"]["index"]
strategy = tf.distribute.MultiWorkerMirroredStrategy()

# Each worker contributes index + 1: the sum over 2 workers is 3.
per_replica = strategy.run(lambda: tf.constant(float(index + 1)))
total = float(strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None))

# Every worker's value, gathered in task order.
gathered = [float(v) for v in strategy.gather(strategy.run(lambda: tf.constant([float(index + 1)])), axis=0).numpy()]
out = {
    "index": index,
    "workers": strategy.num_replicas_in_sync,
    "sum": total,
    "gathered": gathered,
    "task": config["task"],
    "cluster": config["cluster"],
}
with open(os.path.join(sys.argv[1], f"tf-{index}.json"), "w") as f:
    json.dump(out, f)
print(json.dumps(out), flush=True)

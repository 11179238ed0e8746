"""A trial for the tuning tests: a known function of the trial parameters, reported the way Katib's StdOut
collector reads it (`name=value` lines), one value per step.

    python3 objective.py --x 1.5 --y -2 [--steps 3] [--sleep 0.0] [--metrics-file PATH] [--silent]

loss = (x - 1)^2 + (y + 2)^2 at the last step; earlier steps report larger values (the loss decreases to
it). `--metrics-file` also writes the lines to a file (Katib's File collector), `--silent` prints nothing.
"""

import argparse
import time

p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
p.add_argument("--y", type=float, default=-2.0)
p.add_argument("--steps", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--metrics-file")
p.add_argument("--silent", action="store_true")
a = p.parse_args()

final = (a.x - 1.0) ** 2 + (a.y + 2.0) ** 2
out = open(a.metrics_file, "a") if a.metrics_file else None
for step in range(1, a.steps + 1):
    loss = final + (a.steps - step)
    line = f"epoch={step} loss={loss:.6f} accuracy={1.0 / (1.0 + loss):.6f}"
    if not a.silent:
        print(line, flush=True)
    if out:
        out.write(line + "\n")
        out.flush()
    time.sleep(a.sleep)

"""Writes reference.csv (training-like) and current.csv (drifted) with ROWS rows each into DIR: four numeric
features (one shifted, one scaled, two unchanged) and two categorical ones (one re-weighted).

Usage: make_data.py DIR [ROWS]
"""
import os
import sys

import numpy as np

out, rows = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
rng = np.random.default_rng(7)
os.makedirs(out, exist_ok=True)


def write(path, cols):
    names = list(cols)
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for i in range(rows):
            f.write(",".join(str(cols[n][i]) for n in names) + "\n")


plans = np.array(["basic", "standard", "premium"])
regions = np.array(["north", "south", "east", "west"])
reference = {
    "tenure": rng.normal(30, 10, rows).round(3),
    "charges": rng.gamma(4, 15, rows).round(3),
    "calls": rng.poisson(2, rows).astype(float),
    "score": rng.uniform(0, 1, rows).round(5),
    "plan": plans[rng.choice(3, rows, p=[0.5, 0.3, 0.2])],
    "region": regions[rng.choice(4, rows)],
}
current = {
    "tenure": rng.normal(36, 10, rows).round(3),  # shifted
    "charges": (rng.gamma(4, 15, rows) * 1.3).round(3),  # scaled
    "calls": rng.poisson(2, rows).astype(float),
    "score": rng.uniform(0, 1, rows).round(5),
    "plan": plans[rng.choice(3, rows, p=[0.3, 0.3, 0.4])],  # re-weighted
    "region": regions[rng.choice(4, rows)],
}
write(os.path.join(out, "reference.csv"), reference)
write(os.path.join(out, "current.csv"), current)

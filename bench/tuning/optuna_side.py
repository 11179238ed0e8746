#!/usr/bin/env python3
"""The Optuna side of the tuning benchmark. Usage: optuna_side.py [--seeds 20] [--samplers tpe,random,...]

Two test functions are minimised, each once per seed 0..N-1, one trial after another (ask, evaluate, tell):
Branin on [-5, 10] x [0, 15] with 50 trials (global minimum 0.397887) and Hartmann-6 on [0, 1]^6 with 100
trials (global minimum -3.32237). For each (function, sampler) one JSON line reports the mean, median,
standard deviation, best and worst of the per-seed best values, and the time the sampler itself needs per
suggestion (ask plus the suggest_float calls; the function is not timed), over all trials and over the last
ten of each study. A short study per sampler runs first and is not counted, so imports and caches are warm.
The fields match what `cargo run --release -p secondrow-tune --example tuning_bench` prints.
Needs optuna and numpy; scipy for sobol; the cmaes package for cmaes.
"""
import argparse
import json
import math
import statistics
import time
import warnings

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")


def branin(x1, x2):
    a = 5.1 / (4 * math.pi ** 2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - a * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = np.array([[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
              [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]])


def hartmann6(*x):
    d = ((np.asarray(x) - P) ** 2 * A).sum(axis=1)
    return float(-(ALPHA * np.exp(-d)).sum())


FUNCTIONS = [
    ("branin", branin, [(-5.0, 10.0), (0.0, 15.0)], 50, 0.397887),
    ("hartmann6", hartmann6, [(0.0, 1.0)] * 6, 100, -3.32237),
]

SAMPLERS = {
    "random": lambda s: optuna.samplers.RandomSampler(seed=s),
    "tpe": lambda s: optuna.samplers.TPESampler(seed=s),
    "tpe_independent": lambda s: optuna.samplers.TPESampler(seed=s, multivariate=False),
    "sobol": lambda s: optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=s),
    "cmaes": lambda s: optuna.samplers.CmaEsSampler(seed=s),
}


def study(sampler, fn, bounds, trials):
    s = optuna.create_study(direction="minimize", sampler=sampler)
    times = []
    for _ in range(trials):
        start = time.perf_counter()
        trial = s.ask()
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        times.append(time.perf_counter() - start)
        s.tell(trial, fn(*x))
    return s.best_value, times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--samplers", default="random,tpe,tpe_independent,sobol,cmaes")
    args = ap.parse_args()
    for name, fn, bounds, trials, optimum in FUNCTIONS:
        for sampler in args.samplers.split(","):
            study(SAMPLERS[sampler](12345), fn, bounds, 12)
            bests, all_t, last_t = [], [], []
            for seed in range(args.seeds):
                best, times = study(SAMPLERS[sampler](seed), fn, bounds, trials)
                bests.append(best)
                all_t += times
                last_t += times[-10:]
            print(json.dumps({
                "function": name, "dims": len(bounds), "trials": trials, "optimum": optimum,
                "sampler": f"optuna:{sampler}", "optuna": optuna.__version__, "seeds": args.seeds,
                "mean_best": round(statistics.mean(bests), 5), "median_best": round(statistics.median(bests), 5),
                "stdev_best": round(statistics.stdev(bests), 5) if len(bests) > 1 else 0.0,
                "best": round(min(bests), 5), "worst": round(max(bests), 5),
                "seconds_per_suggest": round(statistics.mean(all_t), 6),
                "seconds_per_suggest_last10": round(statistics.mean(last_t), 6)}), flush=True)


if __name__ == "__main__":
    main()

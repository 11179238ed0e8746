#!/usr/bin/env python3
"""Side-by-side table of the tuning benchmark. Usage: compare.py OPTUNA.jsonl SECONDROW.jsonl

Prints every row of both files per function, then the goal checks: SecondRow's best algorithm's mean best
≤ Optuna TPE's (lower is better) on each function, and SecondRow TPE ≤ 1 ms per suggestion at 100 trials.
"""
import json
import sys


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(optuna_path, ours_path):
    allrows = rows(optuna_path) + rows(ours_path)
    ok = True
    for fn in sorted({r["function"] for r in allrows}):
        print(f"\n{fn}")
        print(f"  {'sampler':34} {'mean best':>10} {'median':>10} {'stdev':>8} {'ms/suggest':>10} {'ms last10':>10}")
        for r in sorted((r for r in allrows if r["function"] == fn), key=lambda r: r["mean_best"]):
            print(f"  {r['sampler']:34} {r['mean_best']:10.4f} {r['median_best']:10.4f} {r['stdev_best']:8.4f}"
                  f" {1000 * r['seconds_per_suggest']:10.3f} {1000 * r['seconds_per_suggest_last10']:10.3f}")
        anchor = next((r for r in allrows if r["function"] == fn and r["sampler"] == "optuna:tpe"), None)
        ours = [r for r in allrows if r["function"] == fn and r["sampler"].startswith("secondrow:")]
        if anchor and ours:
            best = min(ours, key=lambda r: r["mean_best"])
            met = best["mean_best"] <= anchor["mean_best"]
            ok &= met
            print(f"  goal: {best['sampler']} {best['mean_best']:.4f} <= optuna:tpe {anchor['mean_best']:.4f}: {'met' if met else 'NOT met'}")
        tpe = [r for r in ours if r["sampler"] in ("secondrow:tpe", "secondrow:multivariate-tpe") and r["trials"] >= 100]
        for r in tpe:
            met = r["seconds_per_suggest_last10"] <= 0.001
            ok &= met
            print(f"  goal: {r['sampler']} {1000 * r['seconds_per_suggest_last10']:.3f} ms per suggestion at 100 trials <= 1 ms: {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))

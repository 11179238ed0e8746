"""Compares SecondRow's drift figures (the JSON of `drift_bench`) with scipy's KS statistic and chi-square on
the same data, and times Evidently's data drift report (PSI for every column) when Evidently is installed.

Usage: compare.py DIR SECONDROW.json [BINS]   (DIR holds reference.csv and current.csv)
"""
import json
import os
import sys
import time

import numpy as np
import pandas as pd
from scipy import stats

data, ours_path = sys.argv[1], sys.argv[2]
bins = int(sys.argv[3]) if len(sys.argv) > 3 else 10
ref = pd.read_csv(os.path.join(data, "reference.csv"))
cur = pd.read_csv(os.path.join(data, "current.csv"))
ours = json.load(open(ours_path))
by_feature = {f["feature"]: f for f in ours["drift"]}


def psi(expected, actual):
    e = np.maximum(expected / expected.sum(), 1e-4)
    a = np.maximum(actual / actual.sum(), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


print(f"{'feature':<10} {'KS secondrow':>14} {'KS scipy':>14} {'PSI secondrow':>14} {'PSI numpy':>14}")
worst_ks = 0.0
worst_psi = 0.0
started = time.perf_counter()
for col in ref.columns:
    f = by_feature[col]
    if ref[col].dtype.kind in "if":
        ks = stats.ks_2samp(ref[col].dropna(), cur[col].dropna()).statistic
        lo = min(ref[col].min(), cur[col].min())
        hi = max(ref[col].max(), cur[col].max())
        edges = np.linspace(lo, hi, bins + 1)
        p = psi(np.histogram(ref[col], edges)[0].astype(float), np.histogram(cur[col], edges)[0].astype(float))
        worst_ks = max(worst_ks, abs(ks - f["ks"]))
        print(f"{col:<10} {f['ks']:>14.6f} {ks:>14.6f} {f['psi']:>14.6f} {p:>14.6f}")
    else:
        cats = sorted(ref[col].dropna().unique())
        e = ref[col].value_counts().reindex(cats, fill_value=0).to_numpy(float)
        a = cur[col].value_counts().reindex(cats, fill_value=0).to_numpy(float)
        p = psi(e, a)
        chi = stats.chisquare(a, e / e.sum() * a.sum()).statistic
        print(f"{col:<10} {'chi2 ' + format(f['chi_square'], '.3f'):>14} {'chi2 ' + format(chi, '.3f'):>14} {f['psi']:>14.6f} {p:>14.6f}")
    worst_psi = max(worst_psi, abs(p - f["psi"]))
scipy_ms = (time.perf_counter() - started) * 1000
print(f"largest difference: KS {worst_ks:.2e}, PSI {worst_psi:.2e}")
print(f"secondrow drift over {ours['rows']} rows x {ours['features']} features: "
      f"best {ours['drift_ms_best']:.1f} ms, median {ours['drift_ms_median']:.1f} ms (goal <= 100 ms)")
if "timeline_10_ms_best" in ours:
    print(f"secondrow timeline (10 time spans, the monitoring page's series): "
          f"best {ours['timeline_10_ms_best']:.1f} ms, median {ours['timeline_10_ms_median']:.1f} ms")
print(f"scipy/numpy for the same figures: {scipy_ms:.1f} ms")

try:
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report
except ImportError:
    print("evidently is not installed here: run with .venv-monitor (see run.sh)")
    sys.exit(0)
times = []
for _ in range(3):
    started = time.perf_counter()
    report = Report(metrics=[DataDriftPreset(stattest="psi")])
    report.run(reference_data=ref, current_data=cur)
    result = report.as_dict()
    times.append((time.perf_counter() - started) * 1000)
evidently_ms = min(times)
drift_by_column = result["metrics"][1]["result"]["drift_by_columns"]
print(f"{'feature':<10} {'PSI evidently':>14} {'PSI secondrow':>14}")
for col, r in drift_by_column.items():
    print(f"{col:<10} {r['drift_score']:>14.6f} {by_feature[col]['psi']:>14.6f}")
print("(Evidently bins numbers over the joint range into its own bin count, so its PSI differs by binning)")
print(f"Evidently data drift report: {evidently_ms:.0f} ms; secondrow {ours['drift_ms_best']:.1f} ms: "
      f"{evidently_ms / ours['drift_ms_best']:.0f}x (goal >= 10x)")

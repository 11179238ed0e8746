#!/usr/bin/env python3
"""Prints ours vs scikit-learn side by side. Usage: compare.py SKLEARN.jsonl SECONDROW.jsonl"""
import json
import sys


def load(path):
    with open(path) as f:
        return {r["model"]: r for r in map(json.loads, f) if r}


def main(sk_path, ours_path):
    sk, ours = load(sk_path), load(ours_path)
    header = f"{'model':40} {'fit ours':>9} {'fit sk':>9} {'ratio':>6} {'pred ours':>9} {'pred sk':>9}  metric (ours vs sklearn, delta)  goal"
    print(header)
    print("-" * len(header))
    for name, s in sk.items():
        o = ours.get(name)
        if o is None:
            print(f"{name:40} (not run by ours)")
            continue
        ratio = o["fit_seconds"] / s["fit_seconds"] if s["fit_seconds"] else float("inf")
        notes = []
        ok = ratio <= 1.0
        for key, sv in s["metric"].items():
            ov = o["metric"].get(key)
            if ov is None:
                continue
            if key == "accuracy":
                delta = (ov - sv) * 100
                notes.append(f"acc {ov:.4f} vs {sv:.4f} ({delta:+.2f} pt)")
                ok = ok and delta >= -1.0
            elif key == "rmse":
                rel = (ov - sv) / sv * 100
                notes.append(f"rmse {ov:.4f} vs {sv:.4f} ({rel:+.2f}%)")
                ok = ok and rel <= 2.0
            else:
                notes.append(f"{key} {ov:.4f} vs {sv:.4f}")
        print(f"{name:40} {o['fit_seconds']:9.4f} {s['fit_seconds']:9.4f} {ratio:6.2f} {o['predict_seconds']:9.4f} {s['predict_seconds']:9.4f}  "
              f"{'; '.join(notes)}  {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Turns a run's summary.txt into the Markdown results table of its README.

Usage: summarize.py summary.txt

Lines come in passes, one per model kind: kserve V1 and V2, the ceiling, then SecondRow (V2 JSON, V1,
V2 binary). Runs of one case are averaged (req/s) and their worst p99 is kept. Ratios are taken
within the pass: against kserve V2 (kserve V1 for V1) and against the ceiling of the same pass.
"""

import re
import sys

LINE = re.compile(r"^(?P<label>.+?)\s+(?:run \d+\s+)?req/s\s+(?P<rps>[\d.]+)\s+p50\s+(?P<p50>\S+)\s+p99\s+(?P<p99>\S+)")


def millis(text):
    value = float(re.sub(r"[a-z]+$", "", text))
    if text.endswith("us"):
        return value / 1000
    if text.endswith("ms"):
        return value
    if text.endswith("s"):
        return value * 1000
    return value


def main():
    cases = {}
    order = []
    kind = None
    for line in open(sys.argv[1]):
        m = LINE.match(line.strip())
        if not m:
            continue
        label = m["label"].strip()
        found = re.search(r"\b(logreg|forest)\b", label)
        if found:
            kind = found[1]
        key = (kind, label)
        if key not in cases:
            cases[key] = {"rps": [], "p99": []}
            order.append(key)
        cases[key]["rps"].append(float(m["rps"]))
        cases[key]["p99"].append(millis(m["p99"]))

    def stat(kind, predicate):
        for (k, label), v in cases.items():
            if k == kind and predicate(label):
                return sum(v["rps"]) / len(v["rps"]), max(v["p99"])
        return None

    print("| case | req/s | p99 | vs kserve (same model, same protocol) | % of ceiling req/s | p99 / ceiling p99 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for kind, label in order:
        v = cases[(kind, label)]
        rps, p99 = sum(v["rps"]) / len(v["rps"]), max(v["p99"])
        ceiling = stat(kind, lambda l: l.startswith("ceiling"))
        is_v1 = label.endswith(" V1")
        kserve = stat(kind, lambda l: l.startswith("kserve") and l.endswith(" V1" if is_v1 else " V2"))
        vs_kserve = f"{rps / kserve[0]:.1f}×" if kserve and label.startswith("secondrow") else ""
        vs_ceiling = f"{100 * rps / ceiling[0]:.0f}%" if ceiling and label.startswith("secondrow") else ""
        p99_ratio = f"{p99 / ceiling[1]:.2f}" if ceiling and label.startswith("secondrow") else ""
        name = label if label.startswith(("secondrow", "kserve")) else f"{label} [{kind} pass]"
        print(f"| {name} | {rps:,.0f} | {p99:.2f} ms | {vs_kserve} | {vs_ceiling} | {p99_ratio} |")


if __name__ == "__main__":
    main()

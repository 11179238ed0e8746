#!/usr/bin/env bash
# Benchmark of the built-in training components against the scikit-learn anchor (not a test).
#
# Usage: bench/ml/run.sh [OUTDIR]   (run from anywhere; default OUTDIR: bench/ml/runs/<date>-<host>)
# Needs: python3 with venv, cargo. Creates .venv-bench (numpy, scikit-learn, threadpoolctl) at the repo root,
# generates the data with bench/ml/make_data.py, runs bench/ml/sklearn_baseline.py and our
# `bench` example (release build) one after the other on the same data and split (first 80% of rows train),
# and prints fit seconds (ours / sklearn), predict seconds and the metric delta per model.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/bench/ml"
out="${1:-$repo/bench/ml/runs/$(date -u +%Y-%m-%d)-$(hostname -s)}"
data="${BENCH_DATA:-$repo/target/bench-data}"
repeat="${REPEAT:-3}"
mkdir -p "$out" "$data"

if [ ! -x "$repo/.venv-bench/bin/python" ]; then
  python3 -m venv "$repo/.venv-bench"
  "$repo/.venv-bench/bin/pip" install --quiet numpy scikit-learn threadpoolctl
fi
py="$repo/.venv-bench/bin/python"
[ -f "$data/clf_100k.csv" ] || "$py" "$here/make_data.py" "$data"

CARGO_TARGET_DIR="$repo/target/ml-release" cargo build --quiet --release -p secondrow-ml --example bench
ours="$repo/target/ml-release/release/examples/bench"

# OpenBLAS hints (set on some machines for old numpy builds) slow a current numpy: unset for the anchor only.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$py" "$here/sklearn_baseline.py" "$data" --repeat "$repeat" > "$out/sklearn.jsonl"
"$ours" "$data" --repeat "$repeat" > "$out/secondrow.jsonl"

{
  echo "command: bench/ml/run.sh (REPEAT=$repeat)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "rustc: $(rustc --version)"
  echo "python: $("$py" --version 2>&1)"
  "$py" -c 'import numpy, sklearn, threadpoolctl; print("numpy:", numpy.__version__); print("scikit-learn:", sklearn.__version__); print("blas:", [(p["internal_api"], p.get("architecture"), p["num_threads"]) for p in threadpoolctl.threadpool_info()])'
} > "$out/versions.txt"

"$py" "$repo/bench/ml/compare.py" "$out/sklearn.jsonl" "$out/secondrow.jsonl" | tee "$out/summary.txt"
echo "results in $out"

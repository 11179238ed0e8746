#!/usr/bin/env bash
# End-to-end tuning benchmark (not a test): the 20-trial, 2-parallel random-forest experiment of
# examples/tuning (4 parameters, each trial a pipeline run) against the 20 forest fits alone.
#
# Usage: bench/tuning/e2e.sh [OUTDIR]   (default OUTDIR: bench/tuning/runs/<date>-<host>-e2e)
# Needs cargo and the test venv's kfp (.venv-test, made by scripts/test) to compile the example pipeline.
# Prints the experiment's wall time, the summed wall time of the same 20 fits run one by one with
# `secondrow component train_random_forest` on the same train split, and their ratio (the goal: ≤ 2).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$repo/bench/tuning/runs/$(date -u +%Y-%m-%d)-$(hostname -s)-e2e}"
mkdir -p "$out"
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT

cargo build --quiet --release -p secondrow
bin="$repo/target/release/secondrow"
"$repo/.venv-test/bin/python" "$repo/examples/tuning/pipeline.py"
export SECONDROW_HOME="$home/home"
unset SECONDROW_DATABASE_URL SECONDROW_SERVER

now() { python3 -c 'import time; print(time.monotonic())'; }

start=$(now)
"$bin" tune "$repo/examples/tuning/experiment.yaml" --parallel 2 \
  -p source="$repo/examples/quickstart/data/customers.csv" > /dev/null 2> "$out/tune.log"
tune_s=$(python3 -c "print($(now) - $start)")
"$bin" tune trials forest-tuning --json > "$out/trials.json"

# The train split and fitted transformer every trial trained on (made once by the first trial's run; the
# later trials hit the cache for ingest/split/transform).
first_run=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0]['runId'])" "$out/trials.json")
"$bin" artifacts "$first_run" --download "$home/inputs" > /dev/null 2>&1

# The same 20 fits, one at a time, with each trial's parameters.
fits_s=0
while IFS=' ' read -r n depth leaf features; do
  t0=$(now)
  "$bin" component train_random_forest --train-data "$home/inputs/split/train" --label churned \
    --transformer "$home/inputs/transform/transformer" --n-estimators "$n" --max-depth "$depth" \
    --min-samples-leaf "$leaf" --max-features "$features" --model "$home/model" > /dev/null
  fits_s=$(python3 -c "print($fits_s + $(now) - $t0)")
done < <(python3 - "$out/trials.json" <<'PY'
import json, sys
for t in json.load(open(sys.argv[1])):
    a = {p["name"]: p["value"] for p in t["assignments"]}
    print(a["n_estimators"], a["max_depth"], a["min_samples_leaf"], a["max_features"])
PY
)

python3 - "$tune_s" "$fits_s" "$out/trials.json" <<'PY' | tee "$out/summary.txt"
import json, sys
tune, fits = float(sys.argv[1]), float(sys.argv[2])
trials = json.load(open(sys.argv[3]))
best = max((t for t in trials if t["objective"] is not None), key=lambda t: t["objective"])
print(f"trials: {len(trials)}  best accuracy: {best['objective']:.4f}  ({best['name']})")
print(f"experiment wall time: {tune:.2f} s")
print(f"20 fits alone (sequential): {fits:.2f} s")
print(f"ratio experiment / fits: {tune / fits:.2f}  (goal <= 2)")
PY

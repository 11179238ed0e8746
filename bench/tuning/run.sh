#!/usr/bin/env bash
# Tuning benchmark (not a test): SecondRow's algorithms and Optuna's samplers side by side on Branin
# (50 trials) and Hartmann-6 (100 trials), seeds 0..SEEDS-1, one trial at a time.
#
# Usage: bench/tuning/run.sh [OUTDIR]   (default OUTDIR: bench/tuning/runs/<date>-<host>; SEEDS=20)
# Needs python3 with venv and cargo. Creates .venv-tuning (optuna, numpy, scipy, cmaes) at the repo root
# on first use. Run it on a quiet machine: the timings are per suggestion.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/bench/tuning"
out="${1:-$here/runs/$(date -u +%Y-%m-%d)-$(hostname -s)}"
seeds="${SEEDS:-20}"
mkdir -p "$out"

if [ ! -x "$repo/.venv-tuning/bin/python" ]; then
  python3 -m venv "$repo/.venv-tuning"
  "$repo/.venv-tuning/bin/pip" install --quiet optuna numpy scipy cmaes
fi

cargo build --quiet --release -p secondrow-tune --example tuning_bench
"$repo/target/release/examples/tuning_bench" --seeds "$seeds" > "$out/secondrow.jsonl"
"$repo/.venv-tuning/bin/python" "$here/optuna_side.py" --seeds "$seeds" > "$out/optuna.jsonl"
python3 "$here/compare.py" "$out/optuna.jsonl" "$out/secondrow.jsonl" | tee "$out/summary.txt"

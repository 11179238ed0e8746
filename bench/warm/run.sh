#!/usr/bin/env bash
# P2 (issue "Warm Python executor"), side by side in one run:
#   - a 10-step chain of trivial `inc(x) -> x + 1` lightweight components:
#     kfp.local.SubprocessRunner(use_venv=False) vs `secondrow run` warm vs `secondrow run --python-mode cold`;
#   - a 200-task fan-out of the same component at parallelism 2: warm and cold wall time and time per task.
# Every SecondRow run is a fresh CLI process (worker start-up included). Needs .venv-test (./scripts/test).
# Usage: bench/warm/run.sh [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/../.."
repeat="${1:-3}"
py="$PWD/.venv-test/bin/python"
cargo build --release --locked --bin secondrow >/dev/null 2>&1
bin="$PWD/target/release/secondrow"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
"$py" bench/warm/chain.py "$work" 200
cp bench/warm/chain.py "$work/chainmod.py"
echo "machine: $(nproc) cores, $(uname -sr); secondrow $(git rev-parse --short HEAD)"
echo
echo "10-step chain, wall seconds"
printf '%-5s %12s %12s %12s %10s\n' run kfp_local secondrow_warm secondrow_cold kfp/warm
for i in $(seq "$repeat"); do
    kfp_s=$(cd "$work" && "$py" "$OLDPWD/bench/core/kfp_local.py" chainmod.py chain10 2>/dev/null | tail -1)
    export SECONDROW_HOME="$work/h-$i"
    t0=$(now); "$bin" run "$work/chain10.yaml" --python "$py" --no-cache >/dev/null 2>&1; t1=$(now); warm=$(elapsed "$t0" "$t1")
    t0=$(now); "$bin" run "$work/chain10.yaml" --python "$py" --no-cache --python-mode cold >/dev/null 2>&1; t1=$(now); cold=$(elapsed "$t0" "$t1")
    printf '%-5s %12s %12s %12s %9sx\n' "$i" "$kfp_s" "$warm" "$cold" "$(calc "$kfp_s / $warm")"
done
echo
echo "200-task fan-out, parallelism 2"
printf '%-5s %10s %14s %10s %14s\n' run warm_s warm_ms/task cold_s cold_ms/task
for i in $(seq "$repeat"); do
    export SECONDROW_HOME="$work/f-$i"
    t0=$(now); "$bin" run "$work/fanout.yaml" --python "$py" --parallelism 2 >/dev/null 2>&1; t1=$(now); warm=$(elapsed "$t0" "$t1")
    t0=$(now); "$bin" run "$work/fanout.yaml" --python "$py" --parallelism 2 --python-mode cold >/dev/null 2>&1; t1=$(now); cold=$(elapsed "$t0" "$t1")
    printf '%-5s %10s %14s %10s %14s\n' "$i" "$warm" "$(calc "$warm * 1000 / 200")" "$cold" "$(calc "$cold * 1000 / 200")"
done
"$bin" runs list --json | "$py" -c 'import json,sys; r=json.load(sys.stdin); print("check: states", sorted({x["state"] for x in r}))'

#!/usr/bin/env bash
# Core engine benchmarks (issue "Core"), side by side with their anchors:
#   P1: a 1,000-task DAG (100 parallel chains of 10 `true` tasks) at parallelism 2, against the same
#       1,000 processes spawned by a plain shell loop (sequential, and 2-way parallel with xargs);
#       overhead per task = (SecondRow wall - loop wall) / 1000.
#   P-local: the `nested` sample (9 Python tasks, the largest sample kfp's local runner can execute:
#       it rejects ParallelFor, conditions and exit handlers) with kfp.local.SubprocessRunner(use_venv=False)
#       vs `secondrow run`; plus SecondRow alone on the largest samples.
# Usage: bench/core/run.sh [REPEAT]   (needs .venv-test: ./scripts/test creates it)
set -euo pipefail
cd "$(dirname "$0")/../.."
repeat="${1:-3}"
py="$PWD/.venv-test/bin/python"
cargo build --release --locked --bin secondrow >/dev/null 2>&1
bin="$PWD/target/release/secondrow"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

echo "machine: $(nproc) cores, $(uname -sr); secondrow $(git rev-parse --short HEAD)"
"$py" bench/core/make_chains.py "$work/chains.yaml" 100 10
echo
echo "P1: 1,000 tasks (100 chains x 10), parallelism 2"
printf '%-8s %12s %14s %14s %16s\n' run secondrow_s loop_seq_s loop_par2_s overhead_ms/task
for i in $(seq "$repeat"); do
    export SECONDROW_HOME="$work/home-$i"
    t0=$(now); "$bin" run "$work/chains.yaml" --parallelism 2 --no-cache >/dev/null 2>&1; t1=$(now)
    ours=$(elapsed "$t0" "$t1")
    t0=$(now); for _ in $(seq 1000); do /bin/true; done; t1=$(now)
    seq_loop=$(elapsed "$t0" "$t1")
    t0=$(now); seq 1000 | xargs -P 2 -n 1 /bin/true; t1=$(now)
    par_loop=$(elapsed "$t0" "$t1")
    over=$(calc "($ours - $par_loop) * 1000 / 1000")
    printf '%-8s %12.3f %14.3f %14.3f %16.3f\n' "$i" "$ours" "$seq_loop" "$par_loop" "$over"
done
"$bin" runs get "$("$bin" runs list --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" --json \
    | "$py" -c 'import json,sys; d=json.load(sys.stdin); ts=[t for t in d["tasks"] if t["kind"]=="container"]; print("check:", d["run"]["state"], len(ts), "container tasks,", sum(t["state"]=="SUCCEEDED" for t in ts), "succeeded")'

echo
echo "P-local: nested sample (x=2), wall seconds"
cp testdata/kfp/samples/nested.py "$work/nested.py"
(cd "$work" && "$py" nested.py)
printf '%-8s %14s %14s %8s\n' run kfp_local_s secondrow_s ratio
for i in $(seq "$repeat"); do
    kfp_s=$(cd "$work" && "$py" "$OLDPWD/bench/core/kfp_local.py" nested.py nested x=2 2>/dev/null | tail -1)
    export SECONDROW_HOME="$work/local-$i"
    t0=$(now); "$bin" run "$work/nested.yaml" --python "$py" --no-cache >/dev/null 2>&1; t1=$(now)
    ours=$(elapsed "$t0" "$t1")
    printf '%-8s %14.3f %14.3f %7.1fx\n' "$i" "$kfp_s" "$ours" "$(calc "$kfp_s / $ours")"
done

echo
echo "SecondRow alone on the largest samples (kfp's local runner cannot run them), wall seconds"
for s in loops conditions; do
    export SECONDROW_HOME="$work/big-$s"
    t0=$(now); "$bin" run "testdata/kfp/samples/$s.yaml" --python "$py" --no-cache >/dev/null 2>&1; t1=$(now)
    n=$("$bin" runs list --json | "$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')
    printf '%-12s %8.3f  %s\n' "$s" "$(elapsed "$t0" "$t1")" "$n"
done

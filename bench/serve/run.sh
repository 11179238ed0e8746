#!/usr/bin/env bash
# Serving benchmark: bench/serve/harness/bench.sh (wrk, 2 threads, 32 connections, single-row requests)
# against KServe's Python server, the axum "ceiling" server and SecondRow's `secondrow serve`, all on
# 127.0.0.1, for the 20-feature logistic regression and the 100-tree random forest
# (both exported from scikit-learn with skl2onnx by crates/secondrow-serve/tests/fixtures/make_models.py).
# SecondRow is measured on V2 JSON, V1, and V2 with a binary tensor (wrk/v2_binary.lua beside this file).
#
# Needs: wrk (`apt-get install -y wrk`; run once, as root), .venv-serve (scripts/test creates it), cargo.
# Writes bench/serve/runs/<date>-<label>/: summary.txt (the summary lines), raw/<kind>/ (wrk output), README.md.
# Env: RUNS=2 DURATION=20s KINDS="logreg forest" (passed on to bench.sh), PORT=18100,
#      LABEL=<host name> (the run folder's suffix), CARGO_TARGET_DIR (release builds; default target/rel),
#      SECONDROW_BIN=path (a release `secondrow` already built; skips the build), CEILING=path (likewise).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/serve"
harness="$here/harness"
py="$root/.venv-serve/bin/python"
PORT="${PORT:-18100}"
KINDS="${KINDS:-logreg forest}"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[[ -x "$py" ]] || { echo "$py is missing: run scripts/test once (it creates .venv-serve)" >&2; exit 1; }

echo "== building secondrow (release) and the ceiling server"
target="${CARGO_TARGET_DIR:-$root/target/rel}"
bin="${SECONDROW_BIN:-}"
if [[ -z "$bin" ]]; then
  CARGO_TARGET_DIR="$target" cargo build --release -p secondrow --manifest-path "$root/Cargo.toml"
  bin="$target/release/secondrow"
fi
ceiling="${CEILING:-}"
if [[ -z "$ceiling" ]]; then
  CARGO_TARGET_DIR="$target" cargo build --release --manifest-path "$harness/ceiling/Cargo.toml"
  ceiling="$target/release/serving-ceiling"
fi

out="$here/runs/$(date -u +%Y-%m-%d)-${LABEL:-$(hostname -s)}"
mkdir -p "$out/raw"
models="$(mktemp -d -t secondrow-bench-models.XXXXXX)"
"$py" "$root/crates/secondrow-serve/tests/fixtures/make_models.py" "$models" --forest-trees 100 >/dev/null 2>&1

server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=""
}
trap stop_server EXIT

for kind in $KINDS; do
  file=lr.onnx; [[ "$kind" == forest ]] && file=forest.onnx
  mkdir -p "$out/raw/$kind"
  "$bin" serve --model "lr=$models/$file" --host 127.0.0.1 --port "$PORT" >"$out/raw/$kind/secondrow.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/models/lr/ready" && break; sleep 0.1; done
  echo "== $kind"
  PY="$py" CEILING="$ceiling" MODEL_KIND="$kind" QUIET=1 LOGDIR="$out/raw/$kind" \
    EXTRA_V2_URL="http://127.0.0.1:$PORT/v2/models/lr/infer" EXTRA_V1_URL="http://127.0.0.1:$PORT/v1/models/lr:predict" \
    EXTRA_PID="$server_pid" bash "$harness/bench.sh" | sed "s/^extra/secondrow $kind/" | tee -a "$out/summary.txt"
  # The binary tensor extension (what the official client sends by default), same row.
  wrk -t2 -c32 -d"${DURATION:-20s}" --latency -s "$here/v2_binary.lua" "http://127.0.0.1:$PORT/v2/models/lr/infer" \
    >"$out/raw/$kind/secondrow-v2-binary.txt"
  awk -v label="secondrow $kind V2 binary" '/^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^Requests\/sec:/ {rps = $2}
    END {printf "%-28s        req/s %9s  p50 %8s  p99 %8s\n", label, rps, p50, p99}' \
    "$out/raw/$kind/secondrow-v2-binary.txt" | tee -a "$out/summary.txt"
  stop_server
done

cat >"$out/README.md" <<README
# Serving benchmark, $(date -u +%FT%TZ)

Command: \`bench/serve/run.sh\` (RUNS=${RUNS:-2} DURATION=${DURATION:-20s} KINDS="$KINDS"), which runs
\`bench/serve/harness/bench.sh\` with EXTRA_V2_URL/EXTRA_V1_URL pointing at \`secondrow serve\` (release build).
Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); load generator on the same machine.
Versions: secondrow $(git -C "$root" rev-parse --short HEAD), $("$py" -c 'from importlib import metadata as m; print("kserve", m.version("kserve"), "scikit-learn", m.version("scikit-learn"), "skl2onnx", m.version("skl2onnx"))'), $(wrk --version 2>&1 | head -1).
Models: 20 features, LogisticRegression and a 100-tree RandomForestClassifier exported with skl2onnx.
summary.txt has one line per wrk run; raw/<kind>/ has wrk's full output and the server logs.

## Results (req/s averaged over the runs, worst p99; ratios within the same pass)

README
python3 "$here/summarize.py" "$out/summary.txt" >>"$out/README.md"
echo "results in $out"

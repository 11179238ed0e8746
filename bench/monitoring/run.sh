#!/usr/bin/env bash
# Monitoring benchmark (issue 21), two parts:
#  1. Drift over a ROWS-row window (default 100k rows, 6 features): secondrow-monitor's `drift_bench` example
#     against scipy's KS statistic / numpy's PSI on the same data (the numbers must agree) and Evidently's data
#     drift report with PSI (the goals: <= 100 ms, >= 10x faster than Evidently).
#  2. Serving throughput with prediction logging at 10% against the same model without logging, on one
#     `secondrow server` (two deployments of one ONNX logistic regression), wrk with single-row V2 requests,
#     alternating RUNS times (the goal: logged / plain >= 0.9).
#
# Needs: .venv-serve (scripts/test creates it: scipy, the model fixtures), wrk for part 2
# (`apt-get install -y wrk`), and .venv-monitor for Evidently (made here from scripts/requirements-monitor.txt;
# bench only, not part of the test command). Run it on a quiet machine.
# Env: ROWS=100000 RUNS=3 DURATION=10s PORT=18200 SERVE_PORT=18201 PARTS="drift serve"
#      CARGO_TARGET_DIR (release builds; default target/rel), SECONDROW_BIN=path (skip building secondrow).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/monitoring"
serve_py="$root/.venv-serve/bin/python"
venv="$root/.venv-monitor"
ROWS="${ROWS:-100000}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-10s}"
PORT="${PORT:-18200}"
SERVE_PORT="${SERVE_PORT:-18201}"
PARTS="${PARTS:-drift serve}"
target="${CARGO_TARGET_DIR:-$root/target/rel}"
work="$(mktemp -d -t secondrow-bench-monitor.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ " $PARTS " == *" drift "* ]]; then
  py="$serve_py"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "== creating .venv-monitor (Evidently, for comparison only)"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q -r "$root/scripts/requirements-monitor.txt" || true
  fi
  [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import evidently' 2>/dev/null && py="$venv/bin/python"
  echo "== drift over $ROWS rows"
  "$py" "$here/make_data.py" "$work/data" "$ROWS"
  CARGO_TARGET_DIR="$target" cargo build --release -q -p secondrow-monitor --example drift_bench \
    --manifest-path "$root/Cargo.toml"
  "$target/release/examples/drift_bench" "$work/data/reference.csv" "$work/data/current.csv" 10 10 >"$work/secondrow.json"
  "$py" "$here/compare.py" "$work/data" "$work/secondrow.json" 10
fi

if [[ " $PARTS " == *" serve "* ]]; then
  command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
  bin="${SECONDROW_BIN:-}"
  if [[ -z "$bin" ]]; then
    CARGO_TARGET_DIR="$target" cargo build --release -q -p secondrow --manifest-path "$root/Cargo.toml"
    bin="$target/release/secondrow"
  fi
  "$serve_py" "$root/crates/secondrow-serve/tests/fixtures/make_models.py" "$work/models" >/dev/null 2>&1
  export SECONDROW_HOME="$work/home"
  "$bin" deploy create plain --path "$work/models/lr.onnx" >/dev/null
  "$bin" deploy create logged --path "$work/models/lr.onnx" --log-sample 0.1 >/dev/null
  "$bin" server --host 127.0.0.1 --port "$PORT" --serve-port "$SERVE_PORT" --task-user root >"$work/server.out" 2>"$work/server.log" &
  server_pid=$!
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$SERVE_PORT/v2/models/logged/ready" && break; sleep 0.1; done
  # One row of the model's 20 features.
  body='{"inputs":[{"name":"input","datatype":"FP32","shape":[1,20],"data":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5,1.6,1.7,1.8,1.9,2.0]}]}'
  input_name="$(curl -fs "http://127.0.0.1:$SERVE_PORT/v2/models/plain" | "$serve_py" -c 'import json,sys; print(json.load(sys.stdin)["inputs"][0]["name"])')"
  body="${body/\"input\"/\"$input_name\"}"
  lua="$work/post.lua"
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' "$("$serve_py" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$body")" >"$lua"
  rps() { wrk -t2 -c32 -d"$DURATION" -s "$lua" "http://127.0.0.1:$SERVE_PORT/v2/models/$1/infer" | awk '/Requests\/sec/ {print $2}'; }
  echo "== serving throughput, $RUNS alternating runs of $DURATION (requests/s)"
  plain_all=(); logged_all=()
  for i in $(seq "$RUNS"); do
    p="$(rps plain)"; l="$(rps logged)"
    plain_all+=("$p"); logged_all+=("$l")
    echo "run $i: plain $p, logged 10% $l"
  done
  curl -fs "http://127.0.0.1:$SERVE_PORT/metrics" | grep -E '^secondrow_monitor_(logged_requests|log_dropped|logged_rows)_total\{model="logged"\}' || true
  "$serve_py" - "${plain_all[*]}" "${logged_all[*]}" <<'PY'
import statistics, sys
plain = [float(x) for x in sys.argv[1].split()]
logged = [float(x) for x in sys.argv[2].split()]
p, l = statistics.median(plain), statistics.median(logged)
print(f"median requests/s: plain {p:.0f}, logged 10% {l:.0f}: ratio {l / p:.3f} (goal >= 0.9)")
PY
fi

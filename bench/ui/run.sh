#!/usr/bin/env bash
# The UI's speed targets, measured (not a test): seeds 100,000 runs and one 1,000-iteration ParallelFor run
# into a fresh home, starts `secondrow server` on it and times the runs page (also filtered), the API's
# list_runs (and list_experiments) and the big run's page (server time, over one keep-alive connection), how
# long a task's state change takes to reach an open run page's event stream, then the 200-node graph layout.
# usage: bench/ui/run.sh [SECONDROW_BINARY] [RUNS] [REQUESTS]   (binary default: target/release/secondrow)
# A quick smoke of the script itself: bench/ui/run.sh target/debug/secondrow 500 20 with
# UI_BENCH_PROFILE=dev (the layout bench then runs unoptimised; its number means nothing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/secondrow}
runs=${2:-100000}
requests=${3:-200}
profile=${UI_BENCH_PROFILE:-release}
py=${SECONDROW_TEST_PYTHON:-python3}
home=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$home"' EXIT
# The schema: let the binary create the database once.
SECONDROW_HOME=$home/home "$bin" runs list >/dev/null
"$py" "$root/bench/ui/seed.py" "$home/home/secondrow.db" "$runs"
# Tasks as the benchmark's own user, as measured before (a root server's default is a dedicated user).
SECONDROW_HOME=$home/home "$bin" server --port 0 --serve-port 0 --task-user root > "$home/server.out" 2> "$home/server.err" &
pid=$!
for _ in $(seq 300); do grep -q listening "$home/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o "listening on http://[0-9.:]*" "$home/server.out" | grep -o "http://.*")
"$py" "$root/bench/ui/bench.py" "$url" "$(cat "$home/home/secondrow.db.bigrun")" "$home/home/secondrow.db" "$requests"
cargo run --profile "$profile" --quiet -p secondrow-ui --example layout_bench

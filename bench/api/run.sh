#!/usr/bin/env bash
# Starts `secondrow server` on a free port with a fresh home and runs bench.py against it.
# usage: bench/api/run.sh [SECONDROW_BINARY] [RUNS]   (binary default: target/release/secondrow)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/secondrow}
runs=${2:-100}
py=${SECONDROW_TEST_PYTHON:-$root/.venv-test/bin/python}
home=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$home"' EXIT
# Tasks as the benchmark's own user, as measured before (a root server's default is a dedicated user).
SECONDROW_HOME=$home/home SECONDROW_PYTHON=$py "$bin" server --port 0 --serve-port 0 --task-user root --parallelism "${SECONDROW_PARALLELISM:-4}" > "$home/server.out" &
pid=$!
for _ in $(seq 100); do grep -q listening "$home/server.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o "listening on http://[0-9.:]*" "$home/server.out" | grep -o "http://.*")
HOME=$home "$py" "$root/bench/api/bench.py" "$url" "$runs"

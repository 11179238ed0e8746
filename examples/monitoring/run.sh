#!/usr/bin/env bash
# Model monitoring end to end on this machine: train the quickstart model, serve it with every request
# logged, replay the quickstart customers (as recorded, then shifted), watch the drift rise, and see a
# monitor rule start the retraining pipeline. State goes to a fresh temporary home.
#
# Needs: .venv-test (scripts/test creates it; the kfp SDK compiles retrain.py), cargo.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/examples/monitoring"
py="$root/.venv-test/bin/python"
cargo build --release --locked --bin secondrow --manifest-path "$root/Cargo.toml"
bin="$root/target/release/secondrow"
export SECONDROW_HOME="$(mktemp -d -t secondrow-monitoring.XXXXXX)"
api_port="${API_PORT:-18300}"
serve_port="${SERVE_PORT:-18301}"
server="http://127.0.0.1:$api_port"

echo "== training the quickstart model"
"$bin" run "$root/examples/quickstart/pipeline.yaml" -p "source=$root/examples/quickstart/data/customers.csv" >/dev/null
run_id=$("$bin" runs list --json | sed -n 's/^ *"id": "\([^"]*\)".*/\1/p' | head -n 1)

# Logged predictions go to the `monitoring` folder of the engine's work folder; a firing rule writes the
# logged window into its namespace's own files under the artifact root, which that namespace's runs import.
# A root server runs tasks as a dedicated unprivileged user, which must reach this checkout and its Python; the
# example keeps them as root instead (see README, "task user").
as_root=()
[ "$(id -u)" = 0 ] && as_root=(--task-user root)
"$bin" server --host 127.0.0.1 --port "$api_port" --serve-port "$serve_port" "${as_root[@]}" \
  >"$SECONDROW_HOME/server.out" 2>"$SECONDROW_HOME/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "$server/apis/v2beta1/healthz" && break; sleep 0.2; done
curl -fs -o /dev/null "$server/apis/v2beta1/healthz" || { echo "the server did not start:" >&2; cat "$SECONDROW_HOME/server.log" >&2; exit 1; }

echo "== deploying it with every request logged"
"$bin" deploy create churn --run "$run_id" --task train-random-forest --output model --log-sample 1 --server "$server"

echo "== a rule: drift in monthly charges or support calls starts the retraining pipeline"
"$py" "$here/retrain.py"
version_id=$(curl -fs -F "uploadfile=@$here/retrain.yaml" "$server/apis/v2beta1/pipelines/upload?name=churn-retrain" \
  | "$py" -c 'import json,sys; print(json.load(sys.stdin)["pipeline_id"])' \
  | xargs -I{} curl -fs "$server/apis/v2beta1/pipelines/{}/versions" \
  | "$py" -c 'import json,sys; print(json.load(sys.stdin)["pipeline_versions"][0]["pipeline_version_id"])')
"$bin" monitor rule create --deployment churn --when 'psi(monthly_charges) > 0.2 or psi(support_calls) > 0.2' \
  --run "$version_id" --cooldown 1h --server "$server"

echo "== traffic as recorded"
"$py" "$here/replay.py" "http://127.0.0.1:$serve_port" churn "$root/examples/quickstart/data/customers.csv" recorded
sleep 3
"$bin" monitor churn --window 600 --server "$server"

echo "== shifted traffic"
"$py" "$here/replay.py" "http://127.0.0.1:$serve_port" churn "$root/examples/quickstart/data/customers.csv" shifted
for _ in $(seq 60); do
  "$bin" monitor rule list --deployment churn --server "$server" | grep -q "Runs started by rules" && break
  sleep 1
done
"$bin" monitor churn --window 600 --server "$server" --report "$SECONDROW_HOME/reports"
"$bin" monitor rule list --deployment churn --server "$server"
retrain_run=$("$bin" monitor rule list --deployment churn --server "$server" | sed -n 's/^\([0-9a-f-]\{36\}\)  rule .*/\1/p' | head -n 1)
for _ in $(seq 120); do
  state=$("$bin" runs get "$retrain_run" --json --server "$server" | "$py" -c 'import json,sys; d=json.load(sys.stdin); print((d.get("run") or d)["state"])')
  case "$state" in SUCCEEDED|FAILED|CANCELED) break ;; esac
  sleep 1
done
echo "retraining run $retrain_run: $state"
curl -fs "http://127.0.0.1:$serve_port/metrics" | grep '^secondrow_monitor_feature_psi'
echo "monitoring page (drift and performance over time, triggered runs): $server/deployments/churn/monitoring"
echo "drift reports: $SECONDROW_HOME/reports"

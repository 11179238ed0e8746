#!/usr/bin/env bash
# Kubernetes executor overhead: the 1,000-task DAG (100 chains x 10 `true` tasks, bench/core/make_chains.py)
# with --executor kubernetes against a real kube-apiserver + etcd on loopback and the repository's test
# kubelet (testdata/k8s/test_kubelet.py), so only SecondRow's side is measured: create Pod -> observe
# Succeeded through the watch -> copy the log -> delete -> next task.
#
# Printed per run: wall seconds, SecondRow's own CPU seconds (user+sys of the `secondrow` process: the work
# SecondRow does per task, goal <= 20 ms), the same DAG on the local executor, and per-task figures beside
# Argo's (and so KFP-on-Argo's) published per-step overhead, which is seconds: its controller re-checks a
# step every 10 s by default (DEFAULT_REQUEUE_TIME; argo-workflows issue 12381), and a user's 14-step
# workflow spent 148 s of 281 s between steps, about 10 s per step (argo-workflows issue 6262).
#
# Usage: bench/k8s/run.sh [REPEAT] [CHAINS] [LENGTH]   (needs .venv-test and scripts/kube-apiserver's binary;
#        SECONDROW_BIN=PATH uses that binary instead of building the release one)
# Numbers are only meaningful on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
repeat="${1:-1}"; chains="${2:-100}"; length="${3:-10}"
tasks=$((chains * length))
py="$PWD/.venv-test/bin/python"
apiserver="${SECONDROW_TEST_KUBE_APISERVER:-$(./scripts/kube-apiserver)}"
# SECONDROW_BIN: a binary built already (a quick check of this script with a debug build).
if [ -z "${SECONDROW_BIN:-}" ]; then
    cargo build --release --locked --bin secondrow >/dev/null 2>&1
fi
bin="${SECONDROW_BIN:-$PWD/target/release/secondrow}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The cluster: etcd, kube-apiserver (token auth, RBAC), the test kubelet.
token="bench-admin-token-0123456789abcdef"
echo "$token,admin,admin,system:masters" > "$work/tokens.csv"
openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -pubout -in "$work/sa.key" -out "$work/sa.pub" 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=fake-node -keyout "$work/kubelet.key" \
    -out "$work/kubelet.crt" 2>/dev/null
ec=$(free_port); ep=$(free_port); port=$(free_port); kport=$(free_port)
etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$ec" --advertise-client-urls "http://127.0.0.1:$ec" \
    --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
    --initial-cluster "default=http://127.0.0.1:$ep" >/dev/null 2>"$work/etcd.log" &
pids+=($!)
"$apiserver" --etcd-servers "http://127.0.0.1:$ec" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --insecure-port 0 --secure-port "$port" --cert-dir "$work/certs" --token-auth-file "$work/tokens.csv" \
    --authorization-mode RBAC --service-account-key-file "$work/sa.pub" \
    --service-account-signing-key-file "$work/sa.key" --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/24 --disable-admission-plugins ServiceAccount \
    --enable-priority-and-fairness=false --kubelet-preferred-address-types InternalIP \
    >/dev/null 2>"$work/apiserver.log" &
pids+=($!)
cat > "$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: b, cluster: {server: "https://127.0.0.1:$port", insecure-skip-tls-verify: true}}]
users: [{name: b, user: {token: $token}}]
contexts: [{name: b, context: {cluster: b, user: b, namespace: default}}]
current-context: b
KC
for _ in $(seq 120); do kubectl --kubeconfig "$work/kubeconfig" get --raw /readyz >/dev/null 2>&1 && break; sleep 0.5; done
python3 testdata/k8s/test_kubelet.py --server "https://127.0.0.1:$port" --token "$token" --node fake-node \
    --port "$kport" --cert "$work/kubelet.crt" --key "$work/kubelet.key" --root "$work/kubelet" \
    >/dev/null 2>"$work/kubelet.log" &
pids+=($!)
for _ in $(seq 60); do kubectl --kubeconfig "$work/kubeconfig" get node fake-node >/dev/null 2>&1 && break; sleep 0.5; done

echo "machine: $(nproc) cores, $(uname -sr); secondrow $(git rev-parse --short HEAD); $tasks tasks ($chains x $length)"
"$py" bench/core/make_chains.py "$work/chains.yaml" "$chains" "$length"
# Runs secondrow, prints "wall_s cpu_s state".
measure() {
    "$py" - "$@" <<'PY'
import json, resource, subprocess, sys, time
t0 = time.monotonic()
out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
try:
    state = json.loads(out.stdout)["run"]["state"]
except Exception:
    state = "NO-JSON:" + out.stderr.strip().splitlines()[-1][:200] if out.stderr.strip() else "NO-JSON"
print(f"{wall:.3f} {ru.ru_utime + ru.ru_stime:.3f} {state}")
PY
}
kube_flags=(--executor kubernetes --kubeconfig "$work/kubeconfig" --kube-node-name fake-node --pod-deletion always)
printf '%-4s %-11s %9s %9s %15s %15s %s\n' run executor wall_s cpu_s wall_ms/task cpu_ms/task state
for i in $(seq "$repeat"); do
    for executor in local kubernetes; do
        export SECONDROW_HOME="$work/home-$executor-$i"
        flags=(); [ "$executor" = kubernetes ] && flags=("${kube_flags[@]}")
        read -r wall cpu state < <(measure "$bin" run "$work/chains.yaml" --parallelism 2 --no-cache --json "${flags[@]}")
        printf '%-4s %-11s %9.3f %9.3f %15.2f %15.2f %s\n' "$i" "$executor" "$wall" "$cpu" \
            "$(awk -v w="$wall" -v n="$tasks" 'BEGIN{print w*1000/n}')" \
            "$(awk -v c="$cpu" -v n="$tasks" 'BEGIN{print c*1000/n}')" "$state"
    done
done
echo
echo "anchor: Argo Workflows / KFP on Argo, per step: ~10 s between steps (argo-workflows issue 6262), up to"
echo "        10 s to notice a finished Pod at the default DEFAULT_REQUEUE_TIME (issue 12381)."
echo "goal:   <= 20 ms of SecondRow-side work per task (the cpu_ms/task column of the kubernetes row)."

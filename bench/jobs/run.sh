#!/usr/bin/env bash
# Time from `secondrow job submit` to every replica of a 4-replica PyTorchJob (Master + 3 Workers) running:
# each replica's first act is to write the clock (ns) to a file, then it sleeps until the job is deleted. The
# time is the latest replica's clock minus the clock just before `job submit` ran, so it holds the CLI's start,
# validation, port choice, the store's writes, the background supervisor's start and the gang start — all of
# SecondRow's overhead (the Training Operator's comparable path is pod scheduling and image pulls: seconds to
# minutes). Goal: at most 100 ms.
# usage: bench/jobs/run.sh [SECONDROW_BINARY] [RUNS]   (binary default: target/release/secondrow, runs 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/secondrow}
runs=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SECONDROW_HOME=$work/home
replica="{name: pytorch, image: none, command: [sh, -c, 'date +%s%N > $work/up-\$RANK; exec sleep 600']}"
times=()
for i in $(seq "$runs"); do
    rm -f "$work"/up-*
    cat > "$work/job.yaml" <<YAML
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: bench-$i}
spec:
  pytorchReplicaSpecs:
    Master: {replicas: 1, restartPolicy: Never, template: {spec: {containers: [$replica]}}}
    Worker: {replicas: 3, restartPolicy: Never, template: {spec: {containers: [$replica]}}}
YAML
    t0=$(date +%s%N)
    "$bin" job submit "$work/job.yaml" > /dev/null
    for _ in $(seq 1000); do [ "$(ls "$work"/up-* 2>/dev/null | wc -l)" -eq 4 ] && break; sleep 0.01; done
    last=$(cat "$work"/up-* | sort -n | tail -1)
    ms=$(( (last - t0) / 1000000 ))
    times+=("$ms")
    echo "run $i: ${ms} ms from submit to 4 replicas running"
    "$bin" job delete "bench-$i" > /dev/null
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
echo "median: $(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p") ms, min: $(echo "$sorted" | head -1) ms, max: $(echo "$sorted" | tail -1) ms ($runs runs, $(basename "$bin"))"

#!/usr/bin/env bash
# `secondrow data put` against DVC (`dvc add` + `dvc commit`, local cache) on the same folder: a first put
# of FILES files totalling SIZE_MB MiB, then a re-put after one file changed. Reports wall time and storage
# growth of each step for both tools as JSON (and a line per step on stderr).
#
# usage: bench/data/run.sh [SECONDROW_BINARY] [SIZE_MB] [FILES]   (SKIP_DVC=1: secondrow only, a smoke test)
#   binary default target/release/secondrow; SIZE_MB default 1024; FILES default 1000.
# DVC is installed into a venv of its own, .venv-dvc at the repository root, on first use (from the Python package
# index; DVC_VERSION pins it). Run on a quiet machine: the data lives in a temporary folder (needs about
# 4 × SIZE_MB of free disk) removed at the end; drop the page cache between steps yourself if you want cold
# reads (the default measures warm reads, the same for both tools).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/secondrow}
size_mb=${2:-1024}
files=${3:-1000}
py=${PYTHON:-python3}
venv=$root/.venv-dvc
if [ -z "${SKIP_DVC:-}" ] && [ ! -x "$venv/bin/dvc" ]; then
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet "dvc${DVC_VERSION:+==$DVC_VERSION}"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The dataset: FILES files of random bytes, SIZE_MB MiB in all, in 10 subfolders.
per_file=$(( size_mb * 1024 * 1024 / files ))
"$py" - "$work/dataset" "$files" "$per_file" <<'PY'
import os, sys
root, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(root, f"part-{i % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY

du_bytes() { du -sb "$1" 2>/dev/null | cut -f1; }
now() { date +%s.%N; }
elapsed() { "$py" -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$2"; }
ratio() { "$py" -c "import sys; print(round(float(sys.argv[1]) / max(float(sys.argv[2]), 1e-9), 3))" "$1" "$2"; }
change_one() { head -c "$per_file" /dev/urandom > "$work/dataset/part-3/f00003.bin"; }

# --- secondrow: its own home; storage is the artifact store's object folder.
export SECONDROW_HOME=$work/sr-home
"$bin" data repo create bench >/dev/null
objects=$SECONDROW_HOME/artifacts/data/objects
t0=$(now); "$bin" data put bench "$work/dataset" -m first >/dev/null; t1=$(now)
sr_first=$(elapsed "$t0" "$t1"); sr_first_bytes=$(du_bytes "$objects")
change_one
t0=$(now); "$bin" data put bench "$work/dataset" -m "one changed" >/dev/null; t1=$(now)
sr_second=$(elapsed "$t0" "$t1"); sr_second_bytes=$(( $(du_bytes "$objects") - sr_first_bytes ))
echo "secondrow: first put ${sr_first}s (${sr_first_bytes} bytes stored), one-changed re-put ${sr_second}s (+${sr_second_bytes} bytes)" >&2

if [ -n "${SKIP_DVC:-}" ]; then
    echo "{\"size_mb\": $size_mb, \"files\": $files, \"secondrow\": {\"first_s\": $sr_first, \"first_bytes\": $sr_first_bytes, \"one_changed_s\": $sr_second, \"one_changed_bytes\": $sr_second_bytes}}"
    exit 0
fi

# --- DVC on a fresh copy of the first version (the same bytes), local cache, no SCM.
git_free=$work/dvc
mkdir -p "$git_free"
# DVC starts from the first version of the data, as secondrow did (restored from secondrow itself).
rm -rf "$work/dataset" && "$bin" data get bench@main~1 "$work/dataset" >/dev/null
mv "$work/dataset" "$git_free/dataset"
cd "$git_free"
"$venv/bin/dvc" init --no-scm -q
cache=$git_free/.dvc/cache
t0=$(now); "$venv/bin/dvc" add -q dataset; "$venv/bin/dvc" commit -q -f dataset.dvc; t1=$(now)
dvc_first=$(elapsed "$t0" "$t1"); dvc_first_bytes=$(du_bytes "$cache")
head -c "$per_file" /dev/urandom > "$git_free/dataset/part-3/f00003.bin"
t0=$(now); "$venv/bin/dvc" add -q dataset; "$venv/bin/dvc" commit -q -f dataset.dvc; t1=$(now)
dvc_second=$(elapsed "$t0" "$t1"); dvc_second_bytes=$(( $(du_bytes "$cache") - dvc_first_bytes ))
echo "dvc:       first add+commit ${dvc_first}s (${dvc_first_bytes} bytes cached), one-changed ${dvc_second}s (+${dvc_second_bytes} bytes)" >&2

cat <<JSON
{"size_mb": $size_mb, "files": $files,
 "secondrow": {"first_s": $sr_first, "first_bytes": $sr_first_bytes, "one_changed_s": $sr_second, "one_changed_bytes": $sr_second_bytes},
 "dvc": {"first_s": $dvc_first, "first_bytes": $dvc_first_bytes, "one_changed_s": $dvc_second, "one_changed_bytes": $dvc_second_bytes},
 "ratio_first": $(ratio "$sr_first" "$dvc_first"), "ratio_one_changed": $(ratio "$sr_second" "$dvc_second")}
JSON

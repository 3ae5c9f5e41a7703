#!/usr/bin/env bash
# The prepared GPU run (benchmarks/gpu/README.md). Runs THERE, on the GPU machine, from the repository root after
# benchmarks/gpu/prepare.sh ran here: installs the carried wheels into /tmp/dip-site, puts a `dip` command on PATH
# (the project is imported from the working tree), then runs benchmarks/gpu/run.py OUTDIR [its options] under a hard
# time limit ($LIMIT seconds, default 470). With --smoke it runs anywhere (a venv with the workflow extra will do).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: benchmarks/gpu/run.sh OUTDIR [--smoke] [--budget S] ...}
shift
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
if ! "$PYTHON" -c "import snakemake, bm3d, pooch, jsonschema" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dip-site \
        "$REPO"/.gpu-carry/wheels/*.whl || exit
    export PYTHONPATH=/tmp/dip-site${PYTHONPATH:+:$PYTHONPATH}
fi
BIN=$(mktemp -d)
printf '#!/bin/sh\nexec "%s" -m dip "$@"\n' "$(command -v "$PYTHON")" > "$BIN/dip"
chmod +x "$BIN/dip"
export PATH=$BIN:$PATH PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
timeout -k 10 "${LIMIT:-470}" "$PYTHON" "$REPO/benchmarks/gpu/run.py" "$OUT" "$@"
status=$?
rm -rf "$BIN"
exit $status

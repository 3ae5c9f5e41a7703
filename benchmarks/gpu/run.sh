#!/usr/bin/env bash
# The prepared GPU run (benchmarks/gpu/README.md). Runs THERE, on the GPU machine, from the repository root after
# benchmarks/gpu/prepare.sh ran here: installs the carried wheels into /tmp/dip-site and checks their versions against
# what the machine has (check_carry.py: one line per unmet requirement, exit 2, before any GPU work), puts the run's
# `dip` command on PATH (dip_command.py: the project from the working tree), then runs benchmarks/gpu/run.py OUTDIR
# [its options] in what is left of $LIMIT seconds (default 380), which bounds everything from here on. With --smoke it
# runs anywhere (a venv with the workflow extra will do).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: benchmarks/gpu/run.sh OUTDIR [--smoke] [run.py options]}
shift
PYTHON=${PYTHON:-python3}
LIMIT=${LIMIT:-380}
mkdir -p "$OUT"
if ! "$PYTHON" -c "import snakemake, bm3d, pooch, jsonschema" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dip-site \
        "$REPO"/.gpu-carry/wheels/*.whl || exit 2
    export PYTHONPATH=/tmp/dip-site${PYTHONPATH:+:$PYTHONPATH}
    "$PYTHON" "$REPO/benchmarks/gpu/check_carry.py" "$REPO/.gpu-carry/wheels" --installed || exit 2
fi
BIN=$(mktemp -d)
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$(command -v "$PYTHON")" "$REPO/benchmarks/gpu/dip_command.py" > "$BIN/dip"
chmod +x "$BIN/dip"
export PATH=$BIN:$PATH PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
# run.py's budget ends 15 s before the limit (it then writes its four files); the hard stop 10 s before, KILL at 2 s.
left=$((LIMIT - SECONDS))
echo "run.sh: set-up took ${SECONDS} s; run.py gets $((left - 15)) s of LIMIT=${LIMIT}"
timeout -k 8 $((left - 10)) "$PYTHON" "$REPO/benchmarks/gpu/run.py" "$OUT" --budget $((left - 15)) "$@"
status=$?
rm -rf "$BIN"
exit $status

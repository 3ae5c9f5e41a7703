#!/usr/bin/env bash
# Runs HERE, before the GPU call: fills the ignored folder .gpu-carry/ with what the GPU machine lacks (it gets the
# working tree, not ../shared, and has no network): the images (as the dataset cache $DIP_DATA_DIR, so the workflow
# finds Set5 and the authors' images offline, checked by their SHA-256), the authors' code (models/, utils/) and
# their benchmark driver, and the wheels of what its python3 lacks (snakemake and its dependencies, bm3d, pooch,
# jsonschema, ...) for CPython 3.12 on manylinux x86_64. Prints the carried size (the device's limit: 64 MiB).
#   benchmarks/gpu/prepare.sh            # SHARED=../shared, PYTHON=.venv/bin/python by default
#   CARRY=/tmp/carry WHEELS=0 benchmarks/gpu/prepare.sh   # data and code only, elsewhere (the smoke test's)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$REPO/../shared}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CARRY=${CARRY:-$REPO/.gpu-carry}
cd "$REPO"
if [ "$CARRY" = "$REPO/.gpu-carry" ] && ! git check-ignore -q .gpu-carry/; then
    echo ".gpu-carry/ is not ignored by git: add it to .gitignore" >&2
    exit 2
fi
rm -rf "$CARRY"
mkdir -p "$CARRY/cache/dip-paper" "$CARRY/cbm3d-color9" "$CARRY/authors" "$CARRY/wheels"

# Images: the dataset cache layout of dip/datasets.py (<dataset>/<file> as its manifests name them).
cp -r "$SHARED/data/set5" "$CARRY/cache/set5"
for folder in denoising inpainting restoration sr; do
    cp -r "$SHARED/data/dip-paper/$folder" "$CARRY/cache/dip-paper/"
done
# F16 for denoising: the authors' F16_GT.png under the name config/paper.yaml's CBM3D folder gives it.
cp "$SHARED/data/dip-paper/denoising/F16_GT.png" "$CARRY/cbm3d-color9/image_F16_512rgb.png"

# The authors' code and the driver that runs their notebook loops; centre crops of F16 for their 256² timing (and 64²
# for the smoke run).
cp -r "$SHARED/reference/deep-image-prior/models" "$SHARED/reference/deep-image-prior/utils" "$CARRY/authors/"
cp "$SHARED/bench/orig_dip_bench.py" "$CARRY/authors/"
"$PYTHON" - "$SHARED/data/dip-paper/denoising/F16_GT.png" "$CARRY/authors" <<'PY'
import sys
from pathlib import Path
from PIL import Image
image = Image.open(sys.argv[1])
for side in (256, 64):
    out = Path(sys.argv[2]) / f"data-{side}" / "denoising" / "F16_GT.png"
    out.parent.mkdir(parents=True)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image.crop((left, top, left + side, top + side)).save(out)
PY

if [ "${WHEELS:-1}" = 0 ]; then du -sh "$CARRY"; exit 0; fi

# Wheels: what dip-bench[bm3d,workflow] needs beyond the GPU image's packages (gpu-image.txt), one version each;
# with packaging and typing-extensions, which the image has in versions not known here while snakemake needs
# packaging<26 and pydantic typing-extensions>=4.16 (they shadow the image's: the carry comes first on PYTHONPATH).
WHEELS=(
    packaging==25.0 typing-extensions==4.16.0
    snakemake==9.27.1 snakemake-interface-common==1.23.0 snakemake-interface-executor-plugins==9.4.0
    snakemake-interface-logger-plugins==2.1.0 snakemake-interface-report-plugins==1.3.0
    snakemake-interface-scheduler-plugins==2.0.2 snakemake-interface-storage-plugins==4.4.1
    argparse-dataclass==2.0.0 conda-inject==1.3.2 configargparse==1.9.0 docutils==0.22.4
    dpath==2.2.0 fastjsonschema==2.22.3 gitdb==4.0.12 gitpython==3.2.1 humanfriendly==10.0 immutables==0.21
    jupyter-core==5.9.1 nbformat==5.11.1 platformdirs==4.14.9 pulp==3.3.2 pydantic==2.14.4 pydantic-core==2.50.5
    annotated-types==0.8.0 typing-inspection==0.4.5 smart-open==7.7.1 smmap==5.0.3 tenacity==9.2.1 throttler==1.2.3
    traitlets==5.16.1 yte==1.9.4 sqlmodel==0.0.37 sqlalchemy==2.0.58 greenlet==3.5.6 tzdata==2026.6
    jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
    pooch==1.9.0 bm3d==4.0.3 bm4d==4.2.5 pywavelets==1.9.0
)
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64 \
    -d "$CARRY/wheels" "${WHEELS[@]}" 2> >(grep -v "^WARNING: Location" >&2)
# Published as a source archive only (pure Python): built into a wheel here.
"$PYTHON" -m pip wheel --quiet --no-deps -w "$CARRY/wheels" connection-pool==0.0.3 2> >(grep -v "^WARNING: Location" >&2)

# Versions: every requirement of the carry met by the carry or by the machine's list (run.sh checks the rest there),
# and every wheel installable by the machine's CPython 3.12 on manylinux x86_64 (an offline dry run of its install).
"$PYTHON" "$REPO/benchmarks/gpu/check_carry.py" "$CARRY/wheels" --image "$REPO/benchmarks/gpu/gpu-image.txt"
site=$(mktemp -d)
"$PYTHON" -m pip install --dry-run --quiet --no-index --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --target "$site" "$CARRY"/wheels/*.whl
rm -rf "$site"

du -sh "$CARRY"/*
size=$(du -sm "$CARRY" | cut -f1)
if [ "$size" -gt 48 ]; then echo "the carry is ${size} MiB: keep it under 48 (the device takes 64 MiB in all)" >&2; exit 1; fi
echo "ready: carry .gpu-carry (${size} MiB); see benchmarks/gpu/README.md for the device call"

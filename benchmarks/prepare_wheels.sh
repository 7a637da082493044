#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels that benchmarks/gpu_check.sh installs on a GPU
# machine that has its own Python and PyTorch but no package index. Only the project's
# dependencies that such a machine may lack or hold in an older version: never torch, numpy or
# other compiled packages that PyTorch's image brings (a second numpy would break its torch).
#
#   bash benchmarks/prepare_wheels.sh            # -> .whl/ (git-ignored), about 5 MiB
#   PYTHON_VERSION=3.11 bash benchmarks/prepare_wheels.sh   # for another Python on the GPU machine
#
# Versions are the ones the project is developed and tested with; keep one version of each (two
# versions of a wheel in .whl/ stop the install there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PYVER=${PYTHON_VERSION:-3.12}
DEST=.whl
WHEELS=(
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0
    typer==0.29.2 annotated-doc==0.0.7 shellingham==1.5.4 rich==15.0.0
    markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0
    textual==8.2.8 textual-plotext==1.0.1 plotext==5.3.2 platformdirs==4.14.9 mdit-py-plugins==0.7.0
    pytest-timeout==2.4.0 # not a project dependency: gpu_check.sh's per-test timeout, used when importable
)
rm -rf "$DEST"
mkdir -p "$DEST"
# --no-deps: the list above is the whole closure; --only-binary and the platforms: wheels for the
# GPU machine's Python on x86-64 Linux, whatever this machine runs.
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "${WHEELS[@]}"
count=$(ls "$DEST"/*.whl | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
    echo "expected ${#WHEELS[@]} wheels in $DEST, got $count" >&2
    exit 1
fi
echo "$count wheels in $DEST ($(du -sh "$DEST" | cut -f1)) for CPython $PYVER on x86-64 Linux"

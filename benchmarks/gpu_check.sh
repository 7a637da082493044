#!/usr/bin/env bash
# The one prepared GPU check (issue 12): run it once, unattended, on a machine with one GPU.
#
#   bash benchmarks/prepare_wheels.sh     # here, where PyPI is reachable: .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh          # there, in the repository root: about 8 minutes at most
#
# It uses the machine's own Python and PyTorch (it never installs torch) and installs the
# project's other dependencies from .whl/ into a private directory (no package index needed).
# Steps, each with a time limit inside one overall budget (GPU_CHECK_BUDGET_S, 470 s):
#   env       Python, torch, the GPU, the carried packages
#   pytest    pytest tests/gpu (the CPU twins deselected: they run in the normal suite)
#   bench     benchmarks/engine_bench.py --device cuda --quick
#   conv      resnet18 and vgg16 graphed vs eager, B = 32
#   spectral  the GPU spectral route (Gram + eigvalsh) against the CPU one
#   sweep     `rankbias run ... --devices cuda --headless`: the synthetic-smoke sweep of experiments.toml
# and writes summary.txt, summary.json and gpu_check.log (every step's output) to $OUT when set,
# else to bench-out/. Without CUDA it is a dry run: the same flow, on the CPU where that is cheap
# (the bench and conv steps are skipped, the sweep is a tiny one on digits).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEST=${OUT:-$ROOT/bench-out}
WORK=$(mktemp -d /tmp/rankbias-gpu-check.XXXXXX)
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-470}
START=$(date +%s)
LOG=$DEST/gpu_check.log
mkdir -p "$DEST"
: >"$LOG"
: >"$WORK/steps.jsonl"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
export RANKBIAS_DATA_DIR=${RANKBIAS_DATA_DIR:-$WORK/data}

# The project's dependencies from wheels; the repository itself on PYTHONPATH (spawned workers and
# the scheduler inherit it).
export PYTHONPATH=$ROOT
if compgen -G ".whl/*.whl" >/dev/null; then
    SITE=$WORK/site
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl >>"$LOG" 2>&1; then
        export PYTHONPATH=$ROOT:$SITE
    else
        echo "gpu_check: installing .whl/ failed; going on with what the machine has" | tee -a "$LOG"
    fi
else
    echo "gpu_check: no .whl/ (run benchmarks/prepare_wheels.sh first); using what the machine has" | tee -a "$LOG"
fi
RANKBIAS=("$PY" -c "import sys; from rankbias_tui.cli import main; sys.argv[0] = 'rankbias'; main()")

# step NAME LIMIT_S COMMAND...: run with a time limit (never past the budget), output to the log
# (and to WORK/NAME.out for the summary), one line of JSON per step.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START) - 15))
    ((left < limit)) && limit=$left
    local t0 rc ms note=""
    t0=$(date +%s%N)
    if ((limit < 5)); then
        rc=124 note="skipped: the budget is spent"
    else
        echo "===== $name (limit ${limit}s): $*" >>"$LOG"
        timeout --kill-after=10 "$limit" "$@" >"$WORK/$name.out" 2>&1
        rc=$?
        cat "$WORK/$name.out" >>"$LOG"
        ((rc == 124 || rc == 137)) && note="timed out after ${limit}s"
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '{"step": "%s", "rc": %d, "seconds": %d.%03d, "limit": %d, "note": "%s"}\n' "$name" "$rc" \
        $((ms / 1000)) $((ms % 1000)) "$limit" "$note" >>"$WORK/steps.jsonl"
    echo "gpu_check: $name rc=$rc $note"
}
skip() {
    printf '{"step": "%s", "rc": 0, "seconds": 0, "limit": 0, "note": "skipped: %s"}\n' "$1" "$2" >>"$WORK/steps.jsonl"
    echo "gpu_check: $1 skipped: $2"
}

step env 60 "$PY" benchmarks/gpu_check.py env "$WORK"
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$LOG"; then
    CUDA=1
    DEVICES=cuda
else
    CUDA=0
    DEVICES=cpu
    echo "gpu_check: no CUDA device: a dry run of the flow on the CPU" | tee -a "$LOG"
fi

step pytest 200 "$PY" -m pytest tests/gpu -q -rs -p no:cacheprovider -m "not cpu_twin"
if ((CUDA)); then
    step bench 110 "$PY" benchmarks/engine_bench.py --device cuda --quick
    step conv 45 "$PY" benchmarks/gpu_check.py conv "$WORK"
else
    skip bench "no CUDA"
    skip conv "no CUDA"
fi
step spectral 30 "$PY" benchmarks/gpu_check.py spectral "$WORK"

# A real sweep through the CLI: experiments.toml's synthetic-smoke on the GPU; a tiny digits one on a CPU.
if ((CUDA)); then
    SPEC=experiments.toml SWEEP=synthetic-smoke
else
    SPEC=$WORK/tiny.toml SWEEP=tiny
    printf '[sweeps.tiny]\nmodel = "mlp-bn"\ndepth = 2\nwidth = 16\ndataset = "digits"\nepochs = 2\n%s\n' \
        'train_size = 256
lr_milestones = []
measure_every = 1
grid.lr = [0.05, 0.1]' >"$SPEC"
fi
step sweep 75 "${RANKBIAS[@]}" run "$SPEC" --sweep "$SWEEP" --devices "$DEVICES" --headless --store "$WORK/store"
"$PY" benchmarks/gpu_check.py sweep "$WORK" "$WORK/store" >>"$LOG" 2>&1

"$PY" benchmarks/gpu_check.py summary "$WORK" "$DEST" 2>>"$LOG" || echo "gpu_check: the summary failed (see $LOG)"
echo "gpu_check: $(($(date +%s) - START)) s; summary in $DEST/summary.txt"
rm -rf "$WORK"

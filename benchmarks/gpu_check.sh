#!/usr/bin/env bash
# The one prepared GPU check (issues 12 and 17): run it once, unattended, on a machine with one GPU.
#
#   bash benchmarks/prepare_wheels.sh     # here, where PyPI is reachable: .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh          # there, in the repository root: about 8 minutes at most
#
# It uses the machine's own Python and PyTorch (it never installs torch) and installs the
# project's other dependencies from .whl/ into a private directory (no package index needed).
# Steps, each with a time limit; the limits add up to less than the overall budget
# (GPU_CHECK_BUDGET_S, 470 s), so one hung step costs its own limit and no other step's figures:
#   probe       torch.cuda.is_available(), under a timeout (a hung driver makes it a CPU dry run)
#   env         Python, torch, the GPU, the carried packages
#   pytest      pytest tests/gpu -v, neither slow (the sweep step covers the CLI) nor the CPU twins
#               (they run in the normal suite); a per-test timeout when pytest-timeout is importable
#   bench       benchmarks/engine_bench.py --device cuda --quick
#   conv        resnet18 and vgg16 graphed vs eager, B = 32 (the result file written after each model)
#   spectral    the GPU spectral route (Gram + eigvalsh) against the CPU one
#   grid        the projected wall time of the paper's 180-run MLP-BN grid (mlp-bn-grid) on this card,
#               engine packs against the plain PyTorch loop
#   sweep       `rankbias run ... --devices cuda --headless`: the synthetic-smoke sweep of experiments.toml
#   sweep-check its runs all done, with spectra, and trained graphed (on a GPU)
# Everything goes to $OUT when set, else to bench-out/, as it is produced, so a machine taken away
# mid-check still leaves what was done: STEP.out (each step's output, written as the step runs),
# gpu_check.log (all of it), results/ (each step's JSON result and steps.jsonl), and at the end
# summary.txt and summary.json. Without CUDA it is a dry run: the same flow, on the CPU where that
# is cheap (the bench and conv steps are skipped, the grid takes a few steps per batch size, the
# sweep is a tiny one on digits).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEST=${OUT:-$ROOT/bench-out}
WORK=$(mktemp -d /tmp/rankbias-gpu-check.XXXXXX)
# The first Python that imports torch: $PYTHON if set, else python3, python, the project's .venv
# (a machine whose python3 lacks torch would otherwise spend its one check on import errors).
PY=${PYTHON:-}
if [[ -z $PY ]]; then
    for candidate in python3 python "$ROOT/.venv/bin/python"; do
        if command -v "$candidate" >/dev/null && timeout 60 "$candidate" -c "import torch" 2>/dev/null; then
            PY=$candidate
            break
        fi
    done
    PY=${PY:-python3}
fi
BUDGET=${GPU_CHECK_BUDGET_S:-470}
RESERVE=15 # seconds each step leaves for the summary
START=$(date +%s)
STEPS=(probe env pytest bench conv spectral grid sweep sweep-check)
declare -A LIMIT=([probe]=20 [env]=20 [pytest]=130 [bench]=60 [conv]=40 [spectral]=20 [grid]=45
    [sweep]=60 [sweep-check]=15)
SUMMARY_LIMIT=15
RES=$DEST/results
LOG=$DEST/gpu_check.log
mkdir -p "$DEST"
rm -rf "$RES"
mkdir -p "$RES"
for name in "${STEPS[@]}"; do rm -f "$DEST/$name.out"; done
rm -f "$DEST/summary.txt" "$DEST/summary.json"
: >"$LOG"
: >"$RES/steps.jsonl"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 MPLBACKEND=Agg
export RANKBIAS_DATA_DIR=${RANKBIAS_DATA_DIR:-$WORK/data}

total=$SUMMARY_LIMIT
for name in "${STEPS[@]}"; do total=$((total + LIMIT[$name])); done
echo "gpu_check: step limits add up to ${total} s (summary included) of a ${BUDGET} s budget" | tee -a "$LOG"
((total > BUDGET - RESERVE)) && echo "gpu_check: WARNING: the limits exceed the budget; late steps get less" | tee -a "$LOG"

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

# step NAME COMMAND...: run with the step's limit (never past the budget); its output goes straight
# to DEST/NAME.out as it runs, then to the log; one line of JSON per step; STEP_RC its exit status.
STEP_RC=0
step() {
    local name=$1 limit=${LIMIT[$1]}
    shift
    local left=$((BUDGET - ($(date +%s) - START) - RESERVE))
    ((left < limit)) && limit=$left
    local t0 rc ms note=""
    t0=$(date +%s%N)
    if ((limit < 5)); then
        rc=124 note="skipped: the budget is spent"
    else
        echo "===== $name (limit ${limit}s): $*" >>"$LOG"
        timeout --kill-after=10 "$limit" "$@" >"$DEST/$name.out" 2>&1
        rc=$?
        cat "$DEST/$name.out" >>"$LOG"
        ((rc == 124 || rc == 137)) && note="timed out after ${limit}s"
    fi
    ms=$((($(date +%s%N) - t0) / 1000000))
    printf '{"step": "%s", "rc": %d, "seconds": %d.%03d, "limit": %d, "note": "%s"}\n' "$name" "$rc" \
        $((ms / 1000)) $((ms % 1000)) "$limit" "$note" >>"$RES/steps.jsonl"
    echo "gpu_check: $name rc=$rc $note"
    STEP_RC=$rc
}
skip() {
    printf '{"step": "%s", "rc": 0, "seconds": 0, "limit": 0, "note": "skipped: %s"}\n' "$1" "$2" >>"$RES/steps.jsonl"
    echo "gpu_check: $1 skipped: $2"
}

# The first CUDA call, under a timeout: a driver that hangs here would hang every later step.
step probe "$PY" -c "import torch; print('cuda', torch.cuda.is_available())"
if ((STEP_RC == 0)) && grep -qx "cuda True" "$DEST/probe.out"; then
    CUDA=1
    DEVICES=cuda
else
    CUDA=0
    DEVICES=cpu
    if ((STEP_RC != 0)); then
        export CUDA_VISIBLE_DEVICES="" # hung or failed: the rest runs on the CPU rather than hanging
        echo "gpu_check: the CUDA probe failed (rc $STEP_RC, see probe.out): a dry run of the flow on the CPU" |
            tee -a "$LOG"
    else
        echo "gpu_check: no CUDA device: a dry run of the flow on the CPU" | tee -a "$LOG"
    fi
fi
step env "$PY" benchmarks/gpu_check.py env "$RES"

# -v: each test's outcome on its own line as it finishes (counted even if the step is killed).
PYTEST=("$PY" -m pytest tests/gpu -v -rs -p no:cacheprovider -m "not slow and not cpu_twin")
if "$PY" -c "import pytest_timeout" 2>/dev/null; then
    PYTEST+=(-p timeout --timeout=60)
else
    echo "gpu_check: pytest-timeout is not importable: no per-test timeout (only the step's)" | tee -a "$LOG"
fi
step pytest "${PYTEST[@]}"
if ((CUDA)); then
    step bench "$PY" benchmarks/engine_bench.py --device cuda --quick
    step conv "$PY" benchmarks/gpu_check.py conv "$RES"
else
    skip bench "no CUDA"
    skip conv "no CUDA"
fi
step spectral "$PY" benchmarks/gpu_check.py spectral "$RES"
step grid "$PY" benchmarks/gpu_check.py grid "$RES"

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
step sweep "${RANKBIAS[@]}" run "$SPEC" --sweep "$SWEEP" --devices "$DEVICES" --headless --store "$WORK/store"
step sweep-check "$PY" benchmarks/gpu_check.py sweep "$RES" "$WORK/store" "$DEVICES"

timeout --kill-after=5 "$SUMMARY_LIMIT" "$PY" benchmarks/gpu_check.py summary "$RES" "$DEST" 2>>"$LOG" ||
    echo "gpu_check: the summary failed (see $LOG)"
echo "gpu_check: $(($(date +%s) - START)) s; summary in $DEST/summary.txt"
rm -rf "$WORK"

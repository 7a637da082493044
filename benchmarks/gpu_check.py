"""The Python steps of benchmarks/gpu_check.sh, each writing one JSON result to a results directory.

    python benchmarks/gpu_check.py env      RES   # Python, torch, the GPU, the carried packages
    python benchmarks/gpu_check.py spectral RES   # the GPU spectral route (Gram + eigvalsh) vs the CPU one
    python benchmarks/gpu_check.py conv     RES   # conv nets: graphed vs eager steps/s at B = 32
    python benchmarks/gpu_check.py grid     RES   # the paper's MLP-BN grid: projected wall time here
    python benchmarks/gpu_check.py sweep    RES STORE DEVICES  # the CLI sweep's runs: done, graphed
    python benchmarks/gpu_check.py summary  RES OUT    # summary.txt and summary.json from all steps

Each step works without CUDA too (it says so and measures what the CPU allows), so a dry run on a
machine without a GPU exercises the whole check. Every figure is taken with the project's own
precision setting (``engine.train.set_precision``: fp32 with TF32 off), as a worker trains.
"""

from __future__ import annotations

import json
import math
import platform
import re
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONV_MODELS = ("resnet18", "vgg16")
# What the check should reach on one H100 (issues 12 and 17): (">=", x) a speed-up at least x,
# ("<=", h) a wall time of at most h hours.
TARGETS = {
    "graphed_single_b32_x_plain": (">=", 5.0),
    "fused_k64_b32_x_plain": (">=", 150.0),
    **{f"conv_graphed_x_eager[{m}]": (">=", 3.0) for m in CONV_MODELS},
    "mlp_bn_grid_hours": ("<=", 2.0),
}
PACKAGES = ("torch", "numpy", "pydantic", "typer", "rich", "textual", "pytest", "scikit-learn", "matplotlib")
GRID_SWEEP = "mlp-bn-grid"  # experiments.toml: the paper's MLP-BN-10-100 grid on CIFAR-10
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000


def write(res: Path, name: str, result: dict) -> None:
    """The step's result, replaced whole (a step writes it again as it gets further)."""
    tmp = res / f"{name}.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(res / f"{name}.json")


def env(res: Path) -> None:
    import torch

    cuda = torch.cuda.is_available()
    result = {
        "python": platform.python_version(),
        "cuda": cuda,
        "packages": {name: _version(name) for name in PACKAGES},
        "torch_cuda": torch.version.cuda,
        "pydantic_from": str(Path(__import__("pydantic").__file__).parent.parent),  # the carried wheels?
    }
    if cuda:
        from rankbias_tui.engine.devices import free_memory, pci_bus_id

        props = torch.cuda.get_device_properties(0)
        result |= {
            "gpu": props.name,
            "gpus": torch.cuda.device_count(),
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "free_gib": round((free_memory("cuda:0") or 0) / 2**30, 1),
            "pci_bus_id": pci_bus_id(0),
        }
    write(res, "env", result)
    print(json.dumps(result, indent=1))


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def spectral_check(res: Path) -> None:
    """A pack's worth of matrices (64 members x 9 layers of 100x100, plus 64 of 100x3072) through
    ``spectral.singular_values`` on the GPU (Gram + eigvalsh) against the CPU's float64 SVD."""
    import torch

    from rankbias_tui.engine import spectral

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    members = 64 if dev == "cuda" else 4  # a dry run on the CPU: a taste, in seconds
    if dev == "cpu":
        torch.set_num_threads(1)  # on a busy CPU, OpenMP threads waiting on each other take 5x longer
    gen = torch.Generator().manual_seed(0)
    mats = [torch.randn(100, 100, generator=gen) for _ in range(members * 9)]
    mats += [torch.randn(100, 3072, generator=gen) for _ in range(members)]
    mats = [m @ torch.diag(torch.logspace(0, -6, m.shape[1])) for m in mats]  # ranks that depend on eps
    start = time.perf_counter()
    cpu = spectral.singular_values(mats)
    cpu_s = time.perf_counter() - start
    on_dev = [m.to(dev) for m in mats]
    spectral.singular_values(on_dev[:8])  # warm-up (cuSOLVER handles)
    start = time.perf_counter()
    got = spectral.singular_values(on_dev)
    dev_s = time.perf_counter() - start
    worst, rank_diffs = 0.0, 0
    for a, b in zip(cpu, got, strict=True):  # singular values of W / ||W||_F, float64
        worst = max(worst, (a - b).abs().max().item())
        rank_diffs += int((a > 1e-3).sum() != (b > 1e-3).sum())
    result = {
        "device": dev,
        "matrices": len(mats),
        "cpu_s": round(cpu_s, 3),
        "device_s": round(dev_s, 3),
        "max_abs_diff": worst,
        "rank_disagreements_eps_1e-3": rank_diffs,
        "ok": worst < 1e-6 and rank_diffs == 0,
    }
    write(res, "spectral", result)
    print(json.dumps(result, indent=1))


def conv(res: Path) -> None:
    """Steps/s of resnet18 and vgg16 (fp32 with TF32 off, B = 32, CIFAR-shaped synthetic data),
    eager vs graphed; the result is written after each model, so a step killed during vgg16 still
    reports resnet18, and a model that fails is recorded and the next one measured."""
    import torch

    if not torch.cuda.is_available():
        write(res, "conv", {"skipped": "no CUDA"})
        print("conv: skipped (no CUDA)")
        return
    from rankbias_tui.engine.data import load_dataset
    from rankbias_tui.engine.graphs import GraphedStep
    from rankbias_tui.engine.loop import Loop
    from rankbias_tui.engine.train import EagerStep, Run, set_precision
    from rankbias_tui.spec import RunConfig

    data = load_dataset("synthetic", device="cuda", train_size=1024)
    result: dict[str, dict] = {}
    for model in CONV_MODELS:
        cfg = RunConfig(model=model, dataset="synthetic", train_size=1024, batch_size=32, lr=0.01, epochs=100)
        set_precision(cfg.precision)  # what a worker sets for this run
        rates = {}
        try:
            for name, make in (("eager", EagerStep), ("graphed", GraphedStep)):
                run = Run(cfg, "cuda", data)
                loop = Loop(run, make(run), lambda event: None)
                rates[name] = _epochs_per_s(loop, budget=3.0) * run.steps_per_epoch
                del loop, run
            result[model] = {
                "eager_steps_s": round(rates["eager"]),
                "graphed_steps_s": round(rates["graphed"]),
                "graphed_x_eager": round(rates["graphed"] / rates["eager"], 2),
            }
        except Exception as err:  # noqa: BLE001 - one model's failure must not lose the other's figure
            result[model] = {"error": f"{type(err).__name__}: {str(err)[:300]}"} | {
                f"{k}_steps_s": round(v) for k, v in rates.items()
            }
        torch.cuda.empty_cache()
        print(model, result[model], flush=True)
        write(res, "conv", result)


def _epochs_per_s(loop, budget: float) -> float:
    import torch

    loop.epoch()  # warm-up (cuDNN autotuning, allocator)
    torch.cuda.synchronize()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        loop.epoch()
        done += 1
    torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


# ----- the grid projection ------------------------------------------------------------------------
def grid(res: Path) -> None:
    """The projected wall time of the paper's MLP-BN grid (``mlp-bn-grid``: 180 runs, 6 batch sizes,
    500 epochs of CIFAR-10) on this device, next to the plain PyTorch loop's.

    For each batch size: a fused pack of that batch size's runs (as many as the scheduler would put
    in one: its automatic size from the free memory, or all of them if fewer), with the grid's own
    hyperparameters, trained for a fixed number of steps on CIFAR-shaped synthetic data (graphed on
    CUDA); the plain loop (``engine_bench.plain_rate``: DataLoader, ``.item()`` every step) for one
    run at that batch size. Packs run one after another (one worker per GPU); an epoch is
    ceil(50,000 / B) steps; the engine's figure adds an evaluation of 60,000 images each epoch and
    the spectra of each measurement point, both timed here. Without CUDA: a dry run of a few steps
    on one CPU thread, which exercises the flow and projects nothing about a GPU."""
    import engine_bench  # this script's directory: the benchmark's plain loop is the baseline
    import torch

    from rankbias_tui.engine.data import load_dataset
    from rankbias_tui.engine.devices import free_memory
    from rankbias_tui.engine.loop import Member, epoch_batches, is_eval_epoch, is_measure_epoch
    from rankbias_tui.engine.pack import Pack
    from rankbias_tui.engine.train import set_precision
    from rankbias_tui.scheduler.packing import auto_pack_size
    from rankbias_tui.spec import load_spec
    from rankbias_tui.sweep import expand_sweep

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    warm, steps, plain_budget = (20, 300, 1.0) if cuda else (1, 3, 0.0)
    if not cuda:
        torch.set_num_threads(1)  # as the scheduler gives a CPU worker; the dry run stays light
    runs = expand_sweep(load_spec(ROOT / "experiments.toml"), GRID_SWEEP)
    by_b: dict[int, list] = {}
    for planned in runs:
        by_b.setdefault(planned.config.batch_size, []).append(planned)
    data = load_dataset("synthetic", device=device)
    first = runs[0].config
    result = {
        "sweep": GRID_SWEEP,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu (1 thread)",
        "dry_run": not cuda,
        "runs": len(runs),
        "epochs": first.epochs,
        "train_images": CIFAR_TRAIN,
        "timed_steps": steps,
        "batch_sizes": sorted(by_b),
        "per_b": {},
        "complete": False,
    }
    eval_cost: dict[
        int, tuple[float, float]
    ] = {}  # pack size -> (s per CIFAR-sized evaluation, s per measurement)
    for b, planned in sorted(by_b.items()):
        real = planned[0].config
        assert real.precision == "fp32" and all(p.config.epochs == real.epochs for p in planned)
        set_precision(real.precision)
        k = min(len(planned), auto_pack_size(real, free_memory(device) if cuda else None))
        members = [
            Member(p.run_id, p.config.model_copy(update={"dataset": "synthetic"})) for p in planned[:k]
        ]
        start = time.perf_counter()
        pack = Pack(members, device, data, graphs=cuda)
        build_s = time.perf_counter() - start
        pack_steps_s = _pack_steps_per_s(pack, warm, steps, device)
        if k not in eval_cost:
            eval_cost[k] = _eval_and_measure_s(pack, device)
        eval_s, measure_s = eval_cost[k]
        mode = pack.mode()
        del pack
        if cuda:
            torch.cuda.empty_cache()
        synthetic = real.model_copy(update={"dataset": "synthetic"})
        plain = engine_bench.plain_rate(b, data, device, plain_budget, synthetic)
        per_epoch = epoch_batches(CIFAR_TRAIN, real).steps
        packs = math.ceil(len(planned) / k)
        epochs = real.epochs
        evals = 1 + sum(is_eval_epoch(real, e) for e in range(1, epochs + 1))  # and at initialisation
        measures = sum(is_measure_epoch(real, e) for e in range(epochs + 1))
        train_h = packs * epochs * per_epoch / pack_steps_s / 3600
        eval_h = packs * evals * eval_s / 3600
        measure_h = packs * measures * measure_s / 3600
        result["per_b"][str(b)] = {
            "runs": len(planned),
            "k": k,
            "packs": packs,
            "mode": mode,
            "build_s": round(build_s, 2),
            "pack_steps_s": round(pack_steps_s, 1),
            "model_steps_s": round(pack_steps_s * k),
            "plain_steps_s": round(plain, 1),
            "steps_per_epoch": per_epoch,
            "engine_train_h": train_h,
            "engine_eval_h": eval_h,
            "engine_measure_h": measure_h,
            "engine_h": train_h + eval_h + measure_h,
            "plain_h": len(planned) * epochs * per_epoch / plain / 3600,
        }
        print(f"B={b}", json.dumps(result["per_b"][str(b)]), flush=True)
        write(res, "grid", result)  # after each batch size: a killed step keeps what it measured
    rows = result["per_b"].values()
    model_steps = sum(
        len(by_b[b]) * first.epochs * epoch_batches(CIFAR_TRAIN, by_b[b][0].config).steps for b in by_b
    )
    result |= {
        "complete": True,
        "eval_s_per_cifar_epoch": {str(k): v[0] for k, v in eval_cost.items()},
        "measure_s": {str(k): v[1] for k, v in eval_cost.items()},
        "model_steps": model_steps,
        **{key: sum(r[key] for r in rows) for key in ("engine_train_h", "engine_eval_h", "engine_measure_h")},
        "engine_h": sum(r["engine_h"] for r in rows),
        "plain_h": sum(r["plain_h"] for r in rows),
        "goal_h": TARGETS["mlp_bn_grid_hours"][1],
        "goal_model_steps_s": round(model_steps / (TARGETS["mlp_bn_grid_hours"][1] * 3600)),
    }
    write(res, "grid", result)
    print(json.dumps({k: v for k, v in result.items() if k != "per_b"}, indent=1))


def _pack_steps_per_s(pack, warm: int, steps: int, device: str) -> float:
    """Pack-steps per second over ``steps`` steps after ``warm`` (each epoch begun as the loop
    begins it: its learning rates and every member's permutation)."""
    import torch

    done = 0

    def one() -> None:
        nonlocal done
        if done % pack.steps_per_epoch == 0:
            pack.begin_epoch()
        pack()
        done += 1

    for _ in range(warm):
        one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def _eval_and_measure_s(pack, device: str) -> tuple[float, float]:
    """Seconds of one evaluation of every member over CIFAR-10's 60,000 images (timed on the
    synthetic set, scaled by the number of images) and of one spectral measurement."""
    import torch

    def seconds(fn) -> float:
        fn()  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    images = len(pack.data.y_train) + len(pack.data.y_test)
    return seconds(pack.eval_metrics) * (CIFAR_TRAIN + CIFAR_TEST) / images, seconds(pack.measure)


# ----- the CLI sweep ------------------------------------------------------------------------------
def sweep(res: Path, store_dir: Path, devices: str) -> None:
    """The sweep's runs all done, each with spectra, and (on a GPU) trained graphed in every segment:
    a failed capture falls back to eager with only a note, so statuses alone would not show it. On
    the CPU (the dry run) eager is what is expected, and said so. Exit status 1 if not ok."""
    from rankbias_tui.store import Store, StoreError

    try:
        with Store(store_dir, create=False) as store:
            rows = store.runs()
            statuses = {r.run_id: r.status for r in rows}
            spectra = sum(bool(store.spectrum_steps(r.run_id)) for r in rows)
            run_devices = sorted({r.device for r in rows if r.device})
            segments = {r.run_id: store.segments(r.run_id) for r in rows}
    except StoreError as err:
        result = {"ok": False, "error": str(err)}
        write(res, "sweep", result)
        print(json.dumps(result, indent=1))
        raise SystemExit(1) from None
    modes = sorted({s.mode for segs in segments.values() for s in segs})
    if devices.startswith("cuda"):
        not_graphed = sorted(
            rid for rid, segs in segments.items() if not segs or not all(map(_graphed, segs))
        )
        graphed = {"expected": True, "ok": not not_graphed, "not_graphed": not_graphed}
    else:
        graphed = {"expected": False, "ok": None, "note": "eager expected: a CPU dry run has no CUDA graphs"}
    result = {
        "runs": len(rows),
        "statuses": statuses,
        "with_spectra": spectra,
        "devices": run_devices,
        "modes": modes,
        "graphed": graphed,
        "ok": bool(rows)
        and set(statuses.values()) == {"done"}
        and spectra == len(rows)
        and graphed["ok"] is not False,
    }
    write(res, "sweep", result)
    print(json.dumps(result, indent=1))
    if not result["ok"]:
        raise SystemExit(1)


def _graphed(segment) -> bool:
    """A segment trained by a captured graph: "graphed" or "pack of K, graphed" (engine.train,
    engine.pack), on a GPU."""
    return str(segment.device).startswith("cuda") and (
        segment.mode == "graphed" or segment.mode.endswith(", graphed")
    )


# ----- the summary ------------------------------------------------------------------------------
def summary(res: Path, out: Path) -> None:
    """summary.json and summary.txt in ``out`` from the results in ``res`` and the steps' outputs
    (``out``/STEP.out)."""
    steps = [json.loads(line) for line in (res / "steps.jsonl").read_text().splitlines() if line.strip()]
    results = {p.stem: json.loads(p.read_text()) for p in sorted(res.glob("*.json"))}
    bench = _bench_figures(out / "bench.out")
    conv_ = results.get("conv", {})
    grid_ = results.get("grid", {})
    figures = {
        "graphed_single_b32_x_plain": bench.get(("graphed", 32)),
        "fused_k64_b32_x_plain": bench.get(("pack 64", 32)),
        **{f"conv_graphed_x_eager[{m}]": conv_.get(m, {}).get("graphed_x_eager") for m in CONV_MODELS},
        "mlp_bn_grid_hours": grid_.get("engine_h")
        if grid_.get("complete") and not grid_.get("dry_run")
        else None,
    }
    targets = {}
    for key, (op, target) in TARGETS.items():
        got = figures[key]
        met = None if got is None else (got >= target if op == ">=" else got <= target)
        targets[key] = {"op": op, "target": target, "measured": got, "met": met}
    doc = {
        "steps": steps,
        "results": results,
        "pytest": _pytest_counts(out / "pytest.out"),
        "bench": {f"{k[0]} B={k[1]}": v for k, v in bench.items()},
        "targets": targets,
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=1, default=str))
    text = _summary_text(doc)
    (out / "summary.txt").write_text(text)
    print(text)


def _bench_figures(path: Path) -> dict[tuple[str, int], float]:
    """'x plain' ratios from engine_bench's table: (loop, B) -> ratio."""
    out: dict[tuple[str, int], float] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        m = re.match(r"(.+?)\s+(\d+)\s+[\d,]+\s+([\d.]+)x", line)
        if not m:
            continue
        label, b, ratio = m.group(1), int(m.group(2)), float(m.group(3))
        key = "graphed" if label.startswith("graphed") else "engine" if label.startswith("standard") else None
        pack = re.match(r"fused pack K=(\d+)", label)
        key = f"pack {pack.group(1)}" if pack else key
        if key:
            out[(key, b)] = ratio
    return out


OUTCOME = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def _pytest_counts(path: Path) -> dict[str, int | bool | str]:
    """pytest's closing counts; if it never got there (killed), each test's outcome from the -v
    lines, marked partial, with the test that was running when it was killed."""
    if not path.exists():
        return {}
    lines = path.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if re.match(r"=+ .* in [\d.]+s", line):
            return {word: int(n) for n, word in OUTCOME.findall(line)}
    counts: dict[str, int | bool | str] = {"partial": True}
    for line in lines:
        m = re.match(r"(\S+::\S+)(?: (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b)?", line)
        if m and m.group(2):
            word = m.group(2).lower()
            counts[word] = int(counts.get(word, 0)) + 1
            counts.pop("unfinished", None)
        elif m:
            counts["unfinished"] = m.group(1)
    return counts


def _summary_text(doc: dict) -> str:
    env_ = doc["results"].get("env", {})
    gpu = env_.get("gpu") or "no CUDA device (dry run)"
    lines = [
        f"rankbias GPU check on {gpu}; torch {env_.get('packages', {}).get('torch')}, Python {env_.get('python')}",
        "",
    ]
    lines.append(f"{'step':<12}{'rc':>5}{'seconds':>9}{'limit':>7}  note")
    for s in doc["steps"]:
        lines.append(
            f"{s['step']:<12}{s['rc']:>5}{s['seconds']:>9.1f}{s.get('limit', 0):>7}  {s.get('note', '')}"
        )
    lines += ["", f"pytest tests/gpu: {doc['pytest'] or 'no result'}"]
    for name in ("spectral", "sweep"):
        r = doc["results"].get(name)
        if r:
            shown = {k: v for k, v in r.items() if k not in ("statuses", "ok")}
            lines.append(f"{name}: {'ok' if r.get('ok') else 'NOT OK'} " + json.dumps(shown))
    conv_ = doc["results"].get("conv", {})
    if "skipped" in conv_:
        lines.append(f"conv: skipped ({conv_['skipped']})")
    for model in CONV_MODELS:
        if model in conv_:
            lines.append(f"conv {model}: " + json.dumps(conv_[model]))
    lines += _grid_text(doc["results"].get("grid"))
    lines.append("")
    why = "" if env_.get("cuda") else " (no CUDA: dry run)"
    for key, t in doc["targets"].items():
        unit = "h" if t["op"] == "<=" else "x"
        got = f"not measured{why}" if t["measured"] is None else f"{t['measured']:.1f}{unit}"
        verdict = "" if t["met"] is None else ("  met" if t["met"] else "  NOT met")
        lines.append(f"{key:<32} target {t['op']} {t['target']:g}{unit}: {got}{verdict}")
    return "\n".join(lines) + "\n"


def _grid_text(g: dict | None) -> list[str]:
    if not g:
        return ["", "grid projection: no result"]
    dry = (
        " -- DRY RUN on the CPU, a few steps per B: exercises the flow, projects nothing"
        if g["dry_run"]
        else ""
    )
    head = (
        f"grid projection: {g['sweep']}, {g['runs']} runs x {g['epochs']} epochs of "
        f"{g['train_images']:,} images, on {g['device']} ({g['timed_steps']} timed steps per B){dry}"
    )
    lines = [
        "",
        head,
        f"  {'B':>4}{'K':>5}{'packs':>7}{'model-steps/s':>15}{'plain steps/s':>15}{'engine h':>10}{'plain h':>10}",
    ]
    for b, r in g["per_b"].items():
        lines.append(
            f"  {b:>4}{r['k']:>5}{r['packs']:>7}{r['model_steps_s']:>15,}{r['plain_steps_s']:>15,.0f}"
            f"{r['engine_h']:>10.1f}{r['plain_h']:>10.1f}"
        )
    if not g.get("complete"):
        lines.append(f"  incomplete: measured B = {', '.join(g['per_b']) or 'none'} of {g['batch_sizes']}")
        return lines
    lines += [
        f"  engine, packs one after another: {g['engine_h']:,.1f} h (training {g['engine_train_h']:,.1f} h, "
        f"evaluation every epoch {g['engine_eval_h']:,.1f} h, spectra {g['engine_measure_h']:,.2f} h)",
        f"  plain PyTorch loop, one run at a time (training steps only): {g['plain_h']:,.1f} h",
        f"  goal: the whole grid in < {g['goal_h']:g} h, about {g['goal_model_steps_s']:,} model-steps/s "
        f"over {g['model_steps']:,} model-steps",
    ]
    return lines


def main(argv: list[str]) -> None:
    command, res = argv[0], Path(argv[1])
    res.mkdir(parents=True, exist_ok=True)
    if command == "env":
        env(res)
    elif command == "spectral":
        spectral_check(res)
    elif command == "conv":
        conv(res)
    elif command == "grid":
        grid(res)
    elif command == "sweep":
        sweep(res, Path(argv[2]), argv[3] if len(argv) > 3 else "cpu")
    elif command == "summary":
        summary(res, Path(argv[2]))
    else:
        raise SystemExit(f"unknown step {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

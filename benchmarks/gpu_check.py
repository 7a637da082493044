"""The Python steps of benchmarks/gpu_check.sh, each writing one JSON result to a work directory.

    python benchmarks/gpu_check.py env      WORK   # Python, torch, the GPU, the carried packages
    python benchmarks/gpu_check.py spectral WORK   # the GPU spectral route (Gram + eigvalsh) vs the CPU one
    python benchmarks/gpu_check.py conv     WORK   # conv nets: graphed vs eager steps/s at B = 32
    python benchmarks/gpu_check.py sweep    WORK STORE  # statuses of the CLI sweep's runs
    python benchmarks/gpu_check.py summary  WORK OUT    # summary.txt and summary.json from all steps

Each step works without CUDA too (it says so and measures what the CPU allows), so a dry run on a
machine without a GPU exercises the whole check.
"""

from __future__ import annotations

import json
import platform
import re
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TARGETS = {  # issue 12: what the speed-ups should reach on one H100
    "graphed_single_b32_x_plain": 5.0,
    "fused_k64_b32_x_plain": 150.0,
    "conv_graphed_x_eager": 3.0,
}
PACKAGES = ("torch", "numpy", "pydantic", "typer", "rich", "textual", "pytest", "scikit-learn", "matplotlib")


def write(work: Path, name: str, result: dict) -> None:
    (work / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


def env(work: Path) -> None:
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
            "gpu": props.name, "gpus": torch.cuda.device_count(), "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1), "free_gib": round((free_memory("cuda:0") or 0) / 2**30, 1),
            "pci_bus_id": pci_bus_id(0),
        }  # fmt: skip
    write(work, "env", result)
    print(json.dumps(result, indent=1))


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


def spectral_check(work: Path) -> None:
    """A pack's worth of matrices (64 members x 9 layers of 100x100, plus 64 of 100x3072) through
    ``spectral.singular_values`` on the GPU (Gram + eigvalsh) against the CPU's float64 SVD."""
    import torch

    from rankbias_tui.engine import spectral

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    members = 64 if dev == "cuda" else 4  # a dry run on the CPU: a taste, in seconds
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
        "device": dev, "matrices": len(mats), "cpu_s": round(cpu_s, 3), "device_s": round(dev_s, 3),
        "max_abs_diff": worst, "rank_disagreements_eps_1e-3": rank_diffs,
        "ok": worst < 1e-6 and rank_diffs == 0,
    }  # fmt: skip
    write(work, "spectral", result)
    print(json.dumps(result, indent=1))


def conv(work: Path) -> None:
    """Steps/s of resnet18 and vgg16 (fp32, B = 32, CIFAR-shaped synthetic data), eager vs graphed."""
    import torch

    if not torch.cuda.is_available():
        write(work, "conv", {"skipped": "no CUDA"})
        print("conv: skipped (no CUDA)")
        return
    from rankbias_tui.engine.data import load_dataset
    from rankbias_tui.engine.graphs import GraphedStep
    from rankbias_tui.engine.loop import Loop
    from rankbias_tui.engine.train import EagerStep, Run
    from rankbias_tui.spec import RunConfig

    data = load_dataset("synthetic", device="cuda", train_size=1024)
    result = {}
    for model in ("resnet18", "vgg16"):
        cfg = RunConfig(model=model, dataset="synthetic", train_size=1024, batch_size=32, lr=0.01, epochs=100)
        rates = {}
        for name, make in (("eager", EagerStep), ("graphed", GraphedStep)):
            run = Run(cfg, "cuda", data)
            loop = Loop(run, make(run), lambda event: None)
            rates[name] = _epochs_per_s(loop, budget=4.0) * run.steps_per_epoch
        result[model] = {"eager_steps_s": round(rates["eager"]), "graphed_steps_s": round(rates["graphed"]),
                         "graphed_x_eager": round(rates["graphed"] / rates["eager"], 2)}  # fmt: skip
        print(model, result[model], flush=True)
    write(work, "conv", result)


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


def sweep(work: Path, store_dir: Path) -> None:
    from rankbias_tui.store import Store

    with Store(store_dir, create=False) as store:
        rows = store.runs()
        statuses = {r.run_id: r.status for r in rows}
        spectra = sum(bool(store.spectrum_steps(r.run_id)) for r in rows)
        devices = sorted({r.device for r in rows if r.device})
    result = {"runs": len(rows), "statuses": statuses, "with_spectra": spectra, "devices": devices,
              "ok": bool(rows) and set(statuses.values()) == {"done"} and spectra == len(rows)}  # fmt: skip
    write(work, "sweep", result)
    print(json.dumps(result, indent=1))


# ----- the summary ------------------------------------------------------------------------------
def summary(work: Path, out: Path) -> None:
    steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines() if line.strip()]
    results = {p.stem: json.loads(p.read_text()) for p in sorted(work.glob("*.json")) if p.stem != "summary"}
    bench = _bench_figures(work / "bench.out")
    conv_ratios = [v["graphed_x_eager"] for v in results.get("conv", {}).values() if isinstance(v, dict)]
    figures = {
        "graphed_single_b32_x_plain": bench.get(("graphed", 32)),
        "fused_k64_b32_x_plain": bench.get(("pack 64", 32)),
        "conv_graphed_x_eager": min(conv_ratios) if conv_ratios else None,
    }
    targets = {k: {"target": t, "measured": figures[k], "met": None if figures[k] is None else figures[k] >= t}
               for k, t in TARGETS.items()}  # fmt: skip
    doc = {"steps": steps, "results": results, "pytest": _pytest_counts(work / "pytest.out"),
           "bench": {f"{k[0]} B={k[1]}": v for k, v in bench.items()}, "targets": targets}  # fmt: skip
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


def _pytest_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    tail = path.read_text().strip().splitlines()[-1:] or [""]
    return {
        word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", tail[0])
    }


def _summary_text(doc: dict) -> str:
    env_ = doc["results"].get("env", {})
    gpu = env_.get("gpu") or "no CUDA device (dry run)"
    lines = [f"rankbias GPU check on {gpu}; torch {env_.get('packages', {}).get('torch')}, "
             f"Python {env_.get('python')}", ""]  # fmt: skip
    lines.append(f"{'step':<10}{'rc':>5}{'seconds':>9}  note")
    for s in doc["steps"]:
        lines.append(f"{s['step']:<10}{s['rc']:>5}{s['seconds']:>9.1f}  {s.get('note', '')}")
    lines += ["", f"pytest tests/gpu: {doc['pytest'] or 'no result'}"]
    for name in ("spectral", "sweep"):
        r = doc["results"].get(name)
        if r:
            lines.append(f"{name}: {'ok' if r.get('ok') else 'NOT OK'} " + json.dumps(
                {k: v for k, v in r.items() if k not in ("statuses", "ok")}))  # fmt: skip
    lines.append("")
    for key, t in doc["targets"].items():
        got = "not measured" if t["measured"] is None else f"{t['measured']:.1f}x"
        verdict = "" if t["met"] is None else ("  met" if t["met"] else "  NOT met")
        lines.append(f"{key:<30} target >= {t['target']:g}x: {got}{verdict}")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    command, work = argv[0], Path(argv[1])
    work.mkdir(parents=True, exist_ok=True)
    if command == "env":
        env(work)
    elif command == "spectral":
        spectral_check(work)
    elif command == "conv":
        conv(work)
    elif command == "sweep":
        sweep(work, Path(argv[2]))
    elif command == "summary":
        summary(work, Path(argv[2]))
    else:
        raise SystemExit(f"unknown step {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

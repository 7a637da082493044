"""What the scheduler and workers ask of CUDA devices (torch lives in engine/, so this is where).

Owns: how many GPUs are visible, how much memory a GPU has free now (packs are sized from it), a
GPU's PCI bus id (the one name of a card that ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER``
do not change: the dashboard finds the card's NVML handle by it), the software a worker computes
with (``software``: torch, CUDA, cuDNN, the GPU's name; recorded with each execution segment), and
the switches of a ``deterministic`` run. Does not own: which devices runs go to
(``scheduler.devices``) or what is shown of them (``tui.usage``).
"""

from __future__ import annotations

import os

import torch

# cuBLAS reuses workspaces across streams unless told their size; this size makes its results
# deterministic (CUDA's reproducibility notes). It must be set before cuBLAS starts.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def cuda_device_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_memory(device: str) -> int | None:
    """Bytes free on a CUDA device now, whoever holds the rest (other processes and tenants, our
    own workers); None for the CPU. Asking creates this process's CUDA context on the device."""
    if not str(device).startswith("cuda"):
        return None
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def pci_bus_id(index: int) -> str | None:
    """The PCI bus id of CUDA device ``index`` as NVML reads it ("0000:65:00.0"); None when this
    torch does not report it. Needs no CUDA context."""
    props = torch.cuda.get_device_properties(index)
    try:
        domain, bus, dev = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except AttributeError:  # older torch
        return None
    return f"{domain:04X}:{bus:02X}:{dev:02X}.0"


def software(device: str) -> dict[str, str | None]:
    """What a worker on ``device`` computes with: torch, the CUDA and cuDNN versions it was built
    with (None in a build without them), and the GPU's name (None on the CPU)."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        # a plain str: torch's own TorchVersion would unpickle only by importing torch (seconds), in
        # the scheduler and in the Ray task relaying the worker's Started event
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cudnn": str(cudnn) if cudnn else None,
        "gpu": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else None,
    }


def make_deterministic() -> None:
    """A ``deterministic`` run: deterministic algorithms, cuDNN without autotuning, cuBLAS with a
    fixed workspace. Call it before CUDA starts in the process (the worker does, first thing).

    ``warn_only``: an op with no deterministic CUDA kernel (the backward of resnet18's adaptive
    average pooling, whose 1x1 output is exact anyway) warns in the scheduler's log instead of
    failing the run."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

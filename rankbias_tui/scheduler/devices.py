"""Which devices runs go to, how many runs each takes at once, and the backend they make."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .launcher import Launcher


class DeviceError(ValueError):
    """A --devices value that names no usable device."""


class BackendError(ValueError):
    """The backend cannot be used as asked (Ray missing, no cluster there, no node that fits)."""


@dataclass(frozen=True)
class Slots:
    """Devices and the number of concurrent workers on each; threads per CPU worker."""

    devices: tuple[str, ...]
    per_device: int
    threads: int

    @property
    def capacity(self) -> int:
        return len(self.devices) * self.per_device


@dataclass(frozen=True)
class Backend:
    """What a scheduler trains on (``scheduler.backends.prepare``): slots, a launcher, and where."""

    slots: Slots
    launcher: Launcher  # starts its workers (``local.ProcessLauncher``, ``ray_backend.RayLauncher``)
    where: str  # one line for people: the devices, or the cluster and what each task asks for


def cuda_count() -> int:
    from ..engine.devices import cuda_device_count  # torch stays out of light imports

    return cuda_device_count()


def pci_bus_ids(devices: tuple[str, ...]) -> dict[str, str]:
    """``cuda:i`` -> its PCI bus id ("0000:65:00.0"), as this process's CUDA numbering sees it;
    empty with no GPU (and then imports no torch)."""
    gpus = [d for d in devices if d.startswith("cuda:")]
    if not gpus:
        return {}
    from ..engine.devices import pci_bus_id  # torch stays out of light imports

    ids = {d: pci_bus_id(int(d.partition(":")[2])) for d in gpus}
    return {d: bus for d, bus in ids.items() if bus is not None}


def plan_slots(spec: str = "auto", per_device: int | None = None, cuda_available: int | None = None) -> Slots:
    """Parse ``auto``, ``cpu`` or ``cuda:0,1`` (also ``cuda`` = all GPUs) into worker slots.

    CPU workers get one thread each and, by default, one slot per core: the paper's small models
    train fastest as many single-threaded runs. Each GPU takes one run at a time by default.
    """
    spec = check_syntax(spec)
    count = cuda_count() if cuda_available is None and spec != "cpu" else (cuda_available or 0)
    if spec == "auto":
        spec = "cuda" if count else "cpu"
    if spec == "cpu":
        cores = os.cpu_count() or 1
        slots = per_device or cores
        return Slots(("cpu",), slots, max(1, cores // slots))
    if count == 0:
        raise DeviceError(f"--devices {spec}: no CUDA device is visible (use --devices cpu)")
    ids = range(count) if spec == "cuda" else _parse_ids(spec.removeprefix("cuda:"))
    bad = [i for i in ids if i >= count]
    if bad:
        raise DeviceError(f"--devices {spec}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})")
    return Slots(tuple(f"cuda:{i}" for i in ids), per_device or 1, 1)


def check_syntax(spec: str) -> str:
    """The normalised --devices value, or DeviceError; needs no torch (the TUI checks with it)."""
    spec = spec.strip().lower()
    if spec in ("auto", "cpu", "cuda"):
        return spec
    if not spec.startswith("cuda:"):
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:0,1")
    _parse_ids(spec.removeprefix("cuda:"))
    return spec


def _parse_ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DeviceError(f"cannot read GPU ids from {text!r}: use e.g. cuda:0,1") from None
    if not ids:
        raise DeviceError("no GPU ids given: use e.g. cuda:0,1")
    return ids

"""Device use for the dashboard header: GPU utilisation and memory through NVML when the optional
``pynvml`` package and a driver are there, the load average for the CPU, and which runs each
device holds. Reads no store and imports no torch; NVML is asked at most every few seconds.

A GPU is found in NVML by the PCI bus id the scheduler recorded for it (``SchedulerStatus``), not
by its CUDA ordinal: ``cuda:0`` of the scheduler is whichever card its ``CUDA_VISIBLE_DEVICES`` and
``CUDA_DEVICE_ORDER`` made first, while NVML counts every card in bus order. Without a bus id the
header shows numbers only when NVML sees a single card (it cannot be the wrong one)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ..measures import Status

SHOWN_IDS = 3  # run ids listed per device; the rest are counted


@dataclass(frozen=True)
class DeviceUse:
    name: str  # "cpu", "cuda:0"
    runs: tuple[str, ...]  # run ids it holds
    util: float | None = None  # percent (GPU) or load average (CPU)
    mem_used: float | None = None  # GiB
    mem_total: float | None = None

    def describe(self) -> str:
        parts = [self.name]
        if self.name == "cpu" and self.util is not None:
            parts.append(f"load {self.util:.1f}")
        elif self.util is not None:
            parts.append(f"{self.util:.0f}%")
        if self.mem_used is not None and self.mem_total:
            parts.append(f"{self.mem_used:.1f}/{self.mem_total:.0f}G")
        shown = [run_id[:6] for run_id in self.runs[:SHOWN_IDS]]
        more = len(self.runs) - len(shown)
        held = " ".join(shown + ([f"+{more}"] if more else [])) or "idle"
        return " ".join(parts) + ": " + held


class UsageProbe(Protocol):
    def __call__(
        self, device: str, pci_bus_id: str | None = None
    ) -> tuple[float | None, float | None, float | None]: ...


class SystemProbe:
    """(utilisation, memory used, memory total) of a device; cached for ``every_s`` seconds."""

    def __init__(self, every_s: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.every_s, self.clock = every_s, clock
        self._cache: dict[str, tuple[float, tuple[float | None, float | None, float | None]]] = {}
        self._nvml: Any = None
        self._nvml_tried = False

    def __call__(
        self, device: str, pci_bus_id: str | None = None
    ) -> tuple[float | None, float | None, float | None]:
        now = self.clock()
        key = f"{device}@{pci_bus_id}"
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.every_s:
            return hit[1]
        value = self._cpu() if device == "cpu" else self._gpu(pci_bus_id)
        self._cache[key] = (now, value)
        return value

    @staticmethod
    def _cpu() -> tuple[float | None, float | None, float | None]:
        try:
            return os.getloadavg()[0], None, None
        except OSError:
            return None, None, None

    def _gpu(self, pci_bus_id: str | None) -> tuple[float | None, float | None, float | None]:
        nvml = self._load_nvml()
        if nvml is None:
            return None, None, None
        try:
            if pci_bus_id is not None:  # bytes: older pynvml takes no str
                handle = nvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id.encode())
            elif nvml.nvmlDeviceGetCount() == 1:
                handle = nvml.nvmlDeviceGetHandleByIndex(0)
            else:
                return None, None, None  # no way to tell which card: no numbers, not wrong ones
            util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            return float(util), mem.used / 2**30, mem.total / 2**30
        except Exception:  # noqa: BLE001 - NVML errors only cost the header its numbers
            return None, None, None

    def _load_nvml(self) -> Any:
        if not self._nvml_tried:
            self._nvml_tried = True
            try:
                import pynvml  # optional (nvidia-ml-py)

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception:  # noqa: BLE001 - no package, no driver: no GPU numbers
                self._nvml = None
        return self._nvml


def device_usage(
    runs: Iterable[Any],
    devices: Iterable[str],
    probe: UsageProbe | None,
    pci_bus_ids: Iterable[tuple[str, str]] = (),
) -> list[DeviceUse]:
    """One entry per scheduler device and per device a running run is on, in name order;
    ``pci_bus_ids``: (device, PCI bus id) pairs the scheduler recorded.

    On a Ray cluster the scheduler's slots (``ray:cpu``) are no device: each node shows instead,
    as the device its runs are on (``cuda:0@10.0.0.7``), without numbers (they are not local)."""
    bus_ids = dict(pci_bus_ids)
    holding: dict[str, list[str]] = {name: [] for name in devices if not name.startswith("ray:")}
    for run in runs:
        if run.status == Status.RUNNING and run.device:
            holding.setdefault(run.device, []).append(run.run_id)
    out = []
    for name in sorted(holding, key=lambda n: (n != "cpu", "@" in n, n)):
        local = probe is not None and "@" not in name
        util, used, total = probe(name, bus_ids.get(name)) if local else (None, None, None)
        out.append(DeviceUse(name, tuple(holding[name]), util, used, total))
    return out

"""The dashboard header's GPU numbers (tui.usage) on a fake NVML: the card is found by the PCI bus id
the scheduler recorded, so ``CUDA_VISIBLE_DEVICES`` reordering cannot show another card's numbers."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.scheduler import SchedulerLock, SchedulerOptions, Slots
from rankbias_tui.store import StorePaths
from rankbias_tui.tui.usage import SystemProbe, device_usage

# NVML counts every card in PCI bus order: (bus id, utilisation %, memory used GiB, total GiB)
CARDS = [("00000000:17:00.0", 10, 1.0, 80.0), ("00000000:65:00.0", 90, 60.0, 80.0)]


def fake_pynvml(cards: list[tuple[str, int, float, float]]) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    by_bus = {_norm(bus): i for i, (bus, *_) in enumerate(cards)}
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(cards)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i

    def by_pci_bus_id(bus: bytes) -> int:
        assert isinstance(bus, bytes)  # what every pynvml version takes
        return by_bus[_norm(bus.decode())]  # KeyError: NVML's "not found"

    nvml.nvmlDeviceGetHandleByPciBusId = by_pci_bus_id
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=cards[h][1])
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        used=cards[h][2] * 2**30, total=cards[h][3] * 2**30
    )
    return nvml


def _norm(bus: str) -> str:
    """NVML accepts a 4- or 8-digit domain, any case."""
    domain, rest = bus.split(":", 1)
    return f"{int(domain, 16):08X}:{rest.upper()}"


@pytest.fixture
def two_cards(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(CARDS))


def test_a_gpu_is_found_by_its_pci_bus_id_not_its_cuda_ordinal(two_cards: None) -> None:
    """The scheduler ran with CUDA_VISIBLE_DEVICES=1: its cuda:0 is NVML's card 1."""
    probe = SystemProbe()
    assert probe("cuda:0", "0000:65:00.0") == (90.0, 60.0, 80.0)
    assert probe("cuda:1", "0000:17:00.0") == (10.0, 1.0, 80.0)


def test_no_numbers_rather_than_a_guess(two_cards: None) -> None:
    probe = SystemProbe()
    assert probe("cuda:0") == (None, None, None)  # two cards, no bus id: cannot tell which
    assert probe("cuda:0", "0000:99:00.0") == (None, None, None)  # a card NVML does not see


def test_one_card_needs_no_bus_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(CARDS[1:]))
    assert SystemProbe()("cuda:0") == (90.0, 60.0, 80.0)


def test_device_usage_passes_each_device_its_bus_id() -> None:
    asked = []

    def probe(device: str, pci_bus_id: str | None = None) -> tuple[None, None, None]:
        asked.append((device, pci_bus_id))
        return None, None, None

    device_usage([], ["cuda:0", "cuda:1"], probe, (("cuda:1", "0000:65:00.0"),))
    assert asked == [("cuda:0", None), ("cuda:1", "0000:65:00.0")]


def test_the_scheduler_records_bus_ids_and_the_client_reads_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import torch

    from rankbias_tui.scheduler import daemon

    props = {0: (0, 0x65, 0), 1: (0, 0x17, 0)}  # cuda:0 is the card on bus 0x65
    monkeypatch.setattr(
        torch.cuda, "get_device_properties",
        lambda i: types.SimpleNamespace(pci_domain_id=props[i][0], pci_bus_id=props[i][1], pci_device_id=props[i][2]),
    )  # fmt: skip
    with SchedulerLock(tmp_path):
        path = StorePaths.of(tmp_path).state
        daemon._write_state(path, SchedulerOptions(), Slots(("cuda:0", "cuda:1"), 1, 1))
        assert json.loads(path.read_text())["pid"] == os.getpid()
        now = scheduler.status(tmp_path)
    assert now.pci_bus_ids == (("cuda:0", "0000:65:00.0"), ("cuda:1", "0000:17:00.0"))
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(CARDS))
    usage = device_usage([], now.devices, SystemProbe(), now.pci_bus_ids)
    assert [(u.name, u.util) for u in usage] == [("cuda:0", 90.0), ("cuda:1", 10.0)]

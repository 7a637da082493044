"""engine.devices without a GPU: PCI bus ids as NVML reads them, and the switches of a
``deterministic`` run (set by the worker before CUDA starts; part of a run's identity when true)."""

from __future__ import annotations

import os
import pickle
import types
from multiprocessing import Pipe

import pytest
import torch

from rankbias_tui.engine import devices, worker
from rankbias_tui.protocol import WorkerEnded
from rankbias_tui.spec import RunConfig
from rankbias_tui.sweep import run_id


def test_pci_bus_id_in_nvml_form(monkeypatch: pytest.MonkeyPatch) -> None:
    props = types.SimpleNamespace(pci_domain_id=1, pci_bus_id=0x65, pci_device_id=0xA)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    assert devices.pci_bus_id(0) == "0001:65:0A.0"
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace())
    assert devices.pci_bus_id(0) is None  # a torch that does not report it


def test_deterministic_is_part_of_the_identity_only_when_true() -> None:
    base = RunConfig(dataset="digits")
    assert run_id(base.model_copy(update={"deterministic": False})) == run_id(base)
    assert run_id(base.model_copy(update={"deterministic": True})) != run_id(base)


@pytest.fixture
def restore_torch_flags(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    flags = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


@pytest.mark.parametrize("wanted", [True, False])
def test_the_worker_sets_deterministic_kernels_before_the_run(
    restore_torch_flags: None, wanted: bool
) -> None:
    seen = {}

    def body(emit: object) -> str:
        seen["algorithms"] = torch.are_deterministic_algorithms_enabled()
        seen["cudnn"] = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        seen["cublas"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        return "done"

    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    config = RunConfig(dataset="digits", deterministic=wanted).model_dump_json()
    parent, child = Pipe(duplex=False)
    worker._guarded(child, "cpu", 1, body, deterministic=worker._deterministic([config]))
    assert parent.recv() == WorkerEnded("done", None)
    if wanted:
        assert seen == {"algorithms": True, "cudnn": (True, False), "cublas": ":4096:8"}
    else:
        assert seen == {
            "algorithms": False,
            "cudnn": (torch.backends.cudnn.deterministic, True),
            "cublas": None,
        }


def test_what_a_worker_records_of_its_software_unpickles_without_torch() -> None:
    """Its values are plain strings: the ``Started`` event carrying them is unpickled by the
    scheduler and by a Ray task, which must not import torch for it (torch's ``TorchVersion``
    made each of them import torch, seconds during which no event was read)."""
    from rankbias_tui.engine.devices import software

    assert all(type(v) is str or v is None for v in software("cpu").values())
    assert b"torch_version" not in pickle.dumps(software("cpu"))

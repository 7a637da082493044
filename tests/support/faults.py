"""Helpers of the fault-injection tests: start the small fault sweep, wait for a checkpoint, read
back what a store holds in a form two stores can be compared with bit for bit.

The sweep (``tests/data/faults/spec.toml``) is two digits MLP-BN runs trained as one fused pack on
one CPU slot (``RUN``), each epoch ending with a measurement and a checkpoint.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rankbias_tui.store import Store, owner
from tests.support import runs
from tests.support.runs import RANKBIAS

SPEC = Path(__file__).resolve().parents[1] / "data" / "faults" / "spec.toml"
RUN = ("run", str(SPEC), "--headless", "--devices", "cpu", "--per-device", "1")
EVAL = ("train_loss", "train_acc", "test_loss", "test_acc")  # running loss/acc/lr follow the wall clock


def can_mount() -> bool:
    """Root with ``unshare -m``: a private mount namespace for a small or read-only file system."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def start(store: Path, *extra: str) -> subprocess.Popen[str]:
    """``rankbias run --headless`` of the fault sweep into ``store``, in the background."""
    return subprocess.Popen(
        [RANKBIAS, *RUN, "--store", str(store), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(store: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RANKBIAS, *RUN, "--store", str(store), *extra], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def wait_for(predicate: Callable[[], bool], timeout: float = 300.0, what: str = "it") -> None:
    runs.wait_for(predicate, timeout, what)


def checkpointed(store: Path, proc: subprocess.Popen[str] | None = None) -> bool:
    """True once every running run acknowledged a checkpoint after training steps (not only the
    initial one): a pack's members acknowledge theirs one after the other."""
    assert proc is None or proc.poll() is None, "the run ended before it could be interrupted"
    if not (store / "rankbias.sqlite").exists():
        return False
    with Store(store, create=False) as s:
        running = [r for r in s.runs() if r.status == "running"]
        return bool(running) and all((r.checkpoint_step or 0) > 0 for r in running)


def gone(pid: int) -> bool:
    """The process ended (a zombie counts as ended)."""
    return owner.start_time(pid) == ""


def results(store: Path) -> dict[str, Any]:
    """Per run: status, the evaluation metrics (step, epoch, name, value) and every spectrum row
    (singular values bit for bit): what must not differ from an uninterrupted run."""
    with Store(store, create=False) as s:
        return {
            r.run_id: (r.status, [m for m in s.metrics(r.run_id) if m[2] in EVAL], s.spectra(r.run_id))
            for r in s.runs()
        }


def records(checkpoint: Path) -> dict[str, int]:
    """The records of a checkpoint (the zip ``torch.save`` writes) and their sizes in bytes: the
    first weight is ``.../data/0``; a CPU batch-order generator's state is the 5,056-byte one."""
    with zipfile.ZipFile(checkpoint) as archive:
        return {info.filename: info.file_size for info in archive.infolist()}


def record_of(checkpoint: Path, what: str) -> str:
    """The record holding the first weight matrix (``weights``) or the CPU batch-order generator's
    state (``generator``: mt19937, 5,056 bytes) of a checkpoint."""
    sizes = records(checkpoint)
    if what == "weights":
        return next(name for name in sizes if name.endswith("/data/0"))
    return next(name for name, size in sizes.items() if size == 5056)


def flip(checkpoint: Path, record: str, count: int = 8, at: int = 0) -> None:
    """Invert ``count`` bytes of ``record``'s data in place, from byte ``at`` of it on: the file
    stays a well-formed archive of the same size that ``torch.load`` reads without a word (it does
    not check the CRCs), with different numbers in it."""
    with zipfile.ZipFile(checkpoint) as archive:
        info = archive.getinfo(record)
    data = bytearray(checkpoint.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + at  # the stored (uncompressed) bytes
    assert info.compress_type == zipfile.ZIP_STORED and at + count <= info.file_size
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    checkpoint.write_bytes(bytes(data))

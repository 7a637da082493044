"""The worker's end of the pipe (engine.worker): heartbeats while the body is busy and silent, the
last word always ``WorkerEnded``, and a CPU allocation failure reported as running out of memory."""

from __future__ import annotations

import signal
import time
from multiprocessing import Pipe

import pytest

from rankbias_tui.engine import worker
from rankbias_tui.protocol import HEARTBEAT_S, Heartbeat, OutOfMemory, Progress, WorkerEnded


@pytest.fixture(autouse=True)
def keep_signals():  # noqa: ANN201 - the worker ignores SIGINT and SIGHUP in its process
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def received(conn) -> list:  # noqa: ANN001
    out = []
    try:
        while conn.poll():
            out.append(conn.recv())
    except EOFError:  # the worker closed its end after its last word
        pass
    return out


def test_a_busy_silent_worker_still_beats_and_ends_with_its_last_word() -> None:
    def body(emit) -> str:  # noqa: ANN001 - a long evaluation: nothing to say for a while
        emit(Progress("r", 1, 0.0))
        time.sleep(3.5 * HEARTBEAT_S)
        emit(Progress("r", 2, 1.0))
        return "done"

    parent, child = Pipe(duplex=False)
    worker._guarded(child, "cpu", 1, body)
    sent = received(parent)
    assert sent[-1] == WorkerEnded("done", None)
    first, second = sent.index(Progress("r", 1, 0.0)), sent.index(Progress("r", 2, 1.0))
    silent = sent[first + 1 : second]  # while the body had nothing to say
    assert len(silent) >= 2 and all(isinstance(m, Heartbeat) for m in silent)
    assert all(isinstance(m, (Heartbeat, Progress)) for m in sent[:-1])  # beats from the start on


def test_running_out_of_cpu_memory_splits_a_pack_like_a_gpu_s() -> None:
    def body(emit) -> str:  # noqa: ANN001
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory")

    parent, child = Pipe(duplex=False)
    worker._guarded(child, "cpu", 1, body, oom_context=" in a pack of 4", report_oom=True)
    sent = [m for m in received(parent) if not isinstance(m, Heartbeat)]
    assert isinstance(sent[0], OutOfMemory) and "out of memory on cpu in a pack of 4" in sent[0].reason
    assert isinstance(sent[-1], WorkerEnded) and sent[-1].status == "failed"

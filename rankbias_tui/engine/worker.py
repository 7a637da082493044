"""Worker process entry points: train one run, or one fused pack, and stream its events.

Each worker owns one end of a pipe; the scheduler owns the other and is the only process that
writes to the store. Events are ``rankbias_tui.protocol`` dataclasses, sent as they are. Whatever
happens inside - an exception, CUDA running out of memory, a missing data set - ends as one
``WorkerEnded`` event carrying a status and a reason; a write that fails for lack of space sends
``DiskFull`` first (the scheduler then stops everything, as every run would hit the same wall). A
thread of the worker sends a ``Heartbeat`` every ``protocol.HEARTBEAT_S`` while it lives, the
training thread and it taking turns on the pipe (``Channel``): a worker the scheduler no longer
hears from is frozen or hung, and is killed. A worker killed from outside sends nothing; the
scheduler notices the dead process and records that instead. A worker dies with its scheduler
(Linux: the parent-death signal), so a scheduler killed with ``kill -9`` leaves no orphan writing
checkpoints that a restarted scheduler also writes. Each ``Started`` it sends carries what it runs
(``provenance`` and ``devices.software``): every attempt of a run records its own.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..measures import Status
from ..protocol import (
    HEARTBEAT_S,
    Cancel,
    DiskFull,
    Event,
    GpuMemory,
    Heartbeat,
    OutOfMemory,
    Started,
    WorkerEnded,
)
from ..provenance import provenance
from ..references import UserCodeError, user_code

FULL = (errno.ENOSPC, errno.EDQUOT)
Emit = Callable[[Any], None]


class Channel:
    """The worker's end of its pipe, shared by the training thread and the heartbeat thread: one
    whole message at a time (``Connection.send`` is not safe from two threads at once)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None

    def send(self, event: object) -> None:
        with self._lock:
            self.conn.send(event)

    def start_heartbeat(self, every: float = HEARTBEAT_S) -> None:
        self._beats = threading.Thread(target=self._beat, args=(every,), name="heartbeat", daemon=True)
        self._beats.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join(2 * HEARTBEAT_S)  # a beat blocked on a full pipe must not hold the end

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.send(Heartbeat())
            except (BrokenPipeError, OSError):
                return  # the scheduler is gone; the training thread finds out at its next message


def worker_main(
    conn: Connection,
    run_id: str,
    config_json: str,
    device: str,
    data_dir: str | None,
    ckpt_dir: str,
    resume_step: int | None,
    threads: int,
    graphs: bool = True,
    digests: dict[int, str] | None = None,
) -> None:
    """Process target (spawn): run ``run_id`` to completion, always ending with ``WorkerEnded``.

    ``graphs``: replay the training step as a CUDA graph on GPUs (engine.graphs); ``digests``: step
    -> the SHA-256 the store acknowledged for each checkpoint (verified before resuming)."""

    def body(emit: Emit) -> str:
        from ..spec import RunConfig
        from .train import train

        return train(
            RunConfig.model_validate_json(config_json),
            device,
            emit,
            run_id=run_id,
            data_dir=Path(data_dir) if data_dir else None,
            ckpt_dir=Path(ckpt_dir),
            resume_step=resume_step,
            graphs=graphs,
            digests=digests,
        )

    code = user_code(json.loads(config_json))
    _guarded(conn, device, threads, body, deterministic=_deterministic([config_json]), code=code)


# (run_id, config JSON, checkpoint dir, resume step, step -> acknowledged SHA-256 of its checkpoint)
Member = tuple[str, str, str, "int | None", "dict[int, str]"]


def pack_worker_main(
    conn: Connection,
    control: Connection,
    members: list[Member],
    device: str,
    data_dir: str | None,
    threads: int,
    graphs: bool = True,
) -> None:
    """Process target (spawn) for a fused pack (engine.pack): train every member to its end.

    Each member's events carry its run id; ``control`` brings ``Cancel`` messages from the
    scheduler. Running out of memory (GPU or CPU) sends ``OutOfMemory`` first, so the scheduler can
    split the pack and retry. The process always ends with ``WorkerEnded``, which stands for every member
    that has not sent its own ``Finished``."""

    def body(emit: Emit) -> str:
        from ..spec import RunConfig
        from .loop import Member as PackMember
        from .pack import train_pack

        pack = [
            PackMember(run_id, RunConfig.model_validate_json(cfg), Path(ckpt), resume, digests)
            for run_id, cfg, ckpt, resume, digests in members
        ]
        train_pack(
            pack,
            device,
            emit,
            data_dir=Path(data_dir) if data_dir else None,
            graphs=graphs,
            poll_cancel=lambda: _cancelled(control),
        )
        return Status.DONE

    _guarded(
        conn,
        device,
        threads,
        body,
        oom_context=f" in a pack of {len(members)}",
        report_oom=True,
        deterministic=_deterministic([member[1] for member in members]),
    )


def _guarded(
    conn: Connection,
    device: str,
    threads: int,
    body: Callable[[Emit], str],
    oom_context: str = "",
    report_oom: bool = False,
    deterministic: bool = False,
    code: dict[str, Any] | None = None,
) -> None:
    """Set up torch, run ``body`` (given the function that sends an event: ``Started`` stamped with
    this process's provenance) with heartbeats, and always end with ``WorkerEnded(status, error)``.

    Out-of-memory, missing data sets and checkpoints that are not there (``CheckpointMissing``:
    the run fails before it trains, naming the path) become a one-line reason; anything else keeps
    the tail of its traceback. ``report_oom`` also sends ``OutOfMemory`` first (packs split on it).
    ``deterministic`` switches torch to deterministic kernels before CUDA starts. ``code``: what
    provenance records of a user's model or data set (``references.user_code``). A user's builder
    or loader that fails (``UserCodeError``) ends the run with the user's own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the scheduler's to handle
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a hang-up too (it reaches the whole group)
    _die_with_parent()
    channel = Channel(conn)
    channel.start_heartbeat()
    status, error = Status.FAILED, None
    try:
        import torch

        from ..checkpoints import CheckpointMissing
        from .data import DatasetUnavailable

        torch.set_num_threads(threads)
        if deterministic:
            from .devices import make_deterministic

            make_deterministic()
        from .devices import free_memory, software

        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
            channel.send(GpuMemory(free_memory(device)))  # before anything of its own is allocated

        stamp = provenance() | software(device) | (code or {})

        def emit(event: Event) -> None:
            if isinstance(event, Started):
                event = replace(event, provenance=stamp | (event.provenance or {}))
            channel.send(event)

        try:
            status = body(emit)
        except (torch.cuda.OutOfMemoryError, MemoryError) as err:
            error = f"out of memory on {device}{oom_context}: {_first_line(err)}"
            if report_oom:
                channel.send(OutOfMemory(error))
        except RuntimeError as err:
            if not _cpu_out_of_memory(err):
                raise
            error = f"out of memory on {device}{oom_context}: {_first_line(err)}"
            if report_oom:
                channel.send(OutOfMemory(error))
        except (DatasetUnavailable, CheckpointMissing, UserCodeError) as err:
            error = str(err)
    except OSError as err:
        error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-6)}"
        if err.errno in FULL:
            error = f"no space left on the device holding {err.filename or 'a file it wrote'}"
            _send(channel, DiskFull(str(err.filename or ""), os.strerror(err.errno)))
    except Exception as err:  # noqa: BLE001 - every failure must reach the store with its reason
        error = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=-6)}"
    channel.stop_heartbeat()
    try:
        channel.send(WorkerEnded(status if error is None else Status.FAILED, error))
        conn.close()
    except (BrokenPipeError, OSError):
        os._exit(1)


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _cpu_out_of_memory(err: RuntimeError) -> bool:
    """torch's CPU allocator failing (a memory limit without the OOM killer: ``ulimit -v``)."""
    return "DefaultCPUAllocator" in str(err) and "memory" in str(err)


def _deterministic(configs_json: list[str]) -> bool:
    """Whether the runs ask for deterministic kernels (a pack's members all agree: it is in the
    pack key), read before torch starts."""
    return any(json.loads(c).get("deterministic", False) for c in configs_json)


def _send(channel: Channel, event: object) -> None:
    try:
        channel.send(event)
    except (BrokenPipeError, OSError):
        pass  # the scheduler is gone; WorkerEnded will find that out too


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its scheduler dies (prctl PR_SET_PDEATHSIG); elsewhere
    the worker ends at its next message, when the pipe is found broken."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the scheduler died before the request took effect
        os._exit(1)


def _cancelled(control: Connection) -> list[str]:
    """Run ids the scheduler asked to cancel since the last look (never blocks)."""
    out = []
    try:
        while control.poll():
            message = control.recv()
            if isinstance(message, Cancel):
                out.append(message.run_id)
    except (EOFError, OSError):
        pass  # the scheduler is gone; it will not ask for anything more
    return out

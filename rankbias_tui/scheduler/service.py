"""The scheduler: runs queued runs in worker processes and is the one writer of their results.

Each worker gets its own pipe, so a worker killed in the middle of a message can corrupt nothing
but its own channel. The loop waits on every pipe and every process sentinel at once, writes what
arrived in one transaction, notices dead workers (recording the signal or exit code on that run),
answers cancel requests found in the store, and fills free device slots from the queue.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..store import SpectrumRow, Store
from ..sweep import PlannedRun
from .devices import Slots

POLL_S = 0.25


@dataclass
class Live:
    """What the scheduler knows about an active run, for progress displays."""

    run_id: str
    device: str
    step: int = 0
    total_steps: int = 0
    epoch: float = 0.0
    values: dict[str, float] = field(default_factory=dict)  # latest of each metric
    avg_rank: float | None = None
    mode: str = ""


@dataclass
class _Worker:
    run: PlannedRun
    proc: Any  # multiprocessing Process
    conn: Connection
    live: Live
    finished: tuple[str, str | None] | None = None
    cancelled: bool = False


class Scheduler:
    """Run ``runs`` on ``slots``; ``on_tick`` is called every loop turn (headless progress)."""

    def __init__(
        self,
        store: Store,
        runs: list[PlannedRun],
        slots: Slots,
        *,
        data_dir: Path | None = None,
        keep_checkpoints: bool = False,
    ):
        self.store, self.slots, self.data_dir = store, slots, data_dir
        self.keep_checkpoints = keep_checkpoints
        self.queue: deque[PlannedRun] = deque(runs)
        self.workers: dict[str, _Worker] = {}
        self.outcomes: dict[str, str] = {}
        self.ctx = mp.get_context("spawn")  # CUDA-safe, and no state leaks from this process

    # ----- public ------------------------------------------------------------------------------
    def run(self, on_tick: Callable[[Scheduler], None] | None = None) -> dict[str, str]:
        """Run until the queue is empty and every worker has ended; return run_id -> status."""
        try:
            while self.queue or self.workers:
                self._handle_requests()
                self._fill_slots()
                self._pump(POLL_S)
                if on_tick:
                    on_tick(self)
        except BaseException:
            self.shutdown("interrupted: the scheduler stopped; run again to resume")
            raise
        return self.outcomes

    def live(self) -> list[Live]:
        return [w.live for w in self.workers.values()]

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run of this scheduler; False if it is not ours."""
        for run in list(self.queue):
            if run.run_id == run_id:
                self.queue.remove(run)
                self.store.set_status(run_id, "cancelled", error="cancelled before it started")
                self.outcomes[run_id] = "cancelled"
                return True
        worker = self.workers.get(run_id)
        if worker is None:
            return False
        worker.cancelled = True
        worker.proc.terminate()
        return True

    def shutdown(self, reason: str) -> None:
        """Stop every worker; their runs go back to the queue, resumable from the last checkpoint."""
        for worker in self.workers.values():
            worker.proc.terminate()
        for run_id, worker in list(self.workers.items()):
            worker.proc.join(10)
            if worker.proc.is_alive():
                worker.proc.kill()
            self._drain(worker)
            self.store.set_status(run_id, "queued", error=reason)
        self.workers.clear()

    # ----- the loop ----------------------------------------------------------------------------
    def _handle_requests(self) -> None:
        for kind, run_id in self.store.take_requests():
            if kind == "cancel" and run_id:
                self.cancel(run_id)

    def _fill_slots(self) -> None:
        for device in self.slots.devices:
            while self.queue and self._busy(device) < self.slots.per_device:
                self._start(self.queue.popleft(), device)

    def _busy(self, device: str) -> int:
        return sum(w.live.device == device for w in self.workers.values())

    def _start(self, run: PlannedRun, device: str) -> None:
        row = self.store.run(run.run_id)
        resume = row.checkpoint_step if row else None
        parent, child = self.ctx.Pipe(duplex=False)
        from ..engine.worker import worker_main  # noqa: PLC0415 - imported in the child, not here

        proc = self.ctx.Process(
            target=worker_main,
            args=(child, run.config.model_dump_json(), device, str(self.data_dir) if self.data_dir else None,
                  str(self._ckpt_dir(run.run_id)), resume, self.slots.threads),
            name=f"rankbias-{run.run_id}",
            daemon=True,
        )  # fmt: skip
        proc.start()
        child.close()
        self.workers[run.run_id] = _Worker(run, proc, parent, Live(run.run_id, device))
        self.store.start_attempt(run.run_id, device, proc.pid)

    def _ckpt_dir(self, run_id: str) -> Path:
        return self.store.checkpoint_dir / run_id

    def _pump(self, timeout: float) -> None:
        """Wait for messages or exits, then write everything that arrived in one transaction."""
        if not self.workers:
            return
        handles: list[Any] = [w.conn for w in self.workers.values()]
        handles += [w.proc.sentinel for w in self.workers.values()]
        wait(handles, timeout)
        with self.store.transaction():
            for worker in list(self.workers.values()):
                self._drain(worker)
                if not worker.proc.is_alive():
                    self._reap(worker)

    def _drain(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the worker is gone; _reap decides what that means

    def _handle(self, worker: _Worker, event: tuple[Any, ...]) -> None:
        kind, *payload = event
        run_id, live, store = worker.run.run_id, worker.live, self.store
        if kind == "started":
            info = payload[0]
            live.total_steps, live.mode = info["total_steps"], info["mode"]
            store.truncate_after(run_id, info["resumed_from"])  # -1: a fresh start keeps nothing
            store.set_progress(run_id, max(0, info["resumed_from"]), 0.0, info["total_steps"])
        elif kind == "metrics":
            step, epoch, values = payload
            store.add_metrics(run_id, [(step, epoch, name, value) for name, value in values.items()])
            live.values.update(values)
        elif kind == "spectra":
            step, epoch, rows = payload
            store.add_spectra(SpectrumRow(run_id=run_id, step=step, epoch=epoch, **_decode(r)) for r in rows)
            live.avg_rank = sum(r["rank"] for r in rows) / max(1, len(rows))
        elif kind == "checkpoint":
            store.set_checkpoint(run_id, payload[0])
            self._prune_checkpoints(run_id, keep=payload[0])
        elif kind == "progress":
            live.step, live.epoch = payload
            store.set_progress(run_id, live.step, live.epoch)
        elif kind == "finished":
            worker.finished = (payload[0], payload[1])

    def _reap(self, worker: _Worker) -> None:
        run_id = worker.run.run_id
        worker.proc.join()
        worker.conn.close()
        del self.workers[run_id]
        if worker.cancelled:
            status, error = "cancelled", "cancelled by request"
        elif worker.finished is not None:
            status, error = worker.finished
        else:
            status, error = "failed", _death_reason(worker.proc.exitcode)
        self.store.set_status(run_id, status, error=error)
        self.outcomes[run_id] = status
        if status in ("done", "diverged") and not self.keep_checkpoints:
            shutil.rmtree(self._ckpt_dir(run_id), ignore_errors=True)

    def _prune_checkpoints(self, run_id: str, keep: int) -> None:
        for path in self._ckpt_dir(run_id).glob("step-*.pt"):
            if int(path.stem.removeprefix("step-")) < keep:
                path.unlink(missing_ok=True)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    return row | {"svals": np.frombuffer(row["svals"], dtype="<f8")}


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the system may have run out of memory)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint} before the run finished"
    return f"worker exited with code {exitcode} without reporting a result"

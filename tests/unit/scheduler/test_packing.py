"""Grouping runs into packs (scheduler.packing) and the scheduler's handling of pack workers."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from rankbias_tui.protocol import Metrics, Spectra
from rankbias_tui.scheduler import Scheduler, packing, plan_slots
from rankbias_tui.scheduler.hosts import Host, Live, Worker
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import PlannedRun, run_id
from tests.support import runs

TINY = dict(runs.TINY, epochs=2)


def planned(**fields: object) -> PlannedRun:
    return runs.planned(base=TINY, **fields)


def test_pack_key_ignores_what_members_carry_on_their_own() -> None:
    a = RunConfig(**TINY)
    same = a.model_copy(update=dict(seed=3, lr=0.5, momentum=0.9, weight_decay=0.0, lr_milestones=(1,),
                                    rank_eps=1e-2, pack_size=4))  # fmt: skip
    assert packing.pack_key(a) == packing.pack_key(same) is not None
    for change in (
        dict(batch_size=8),
        dict(epochs=3),
        dict(width=17),
        dict(model="mlp-bn"),
        dict(train_size=9),
    ):
        assert packing.pack_key(a.model_copy(update=change)) != packing.pack_key(a)
    assert packing.pack_key(RunConfig(model="resnet18")) is None
    assert packing.pack_key(a.model_copy(update={"precision": "bf16"})) is None


def test_take_mates_keeps_order_size_and_resume_step() -> None:
    first, *rest = [planned(seed=s) for s in range(5)]
    other = planned(batch_size=8)
    queue = deque([rest[0], other, rest[1], rest[2], rest[3]])
    resume = {rest[1].run_id: 40}
    mates = packing.take_mates(queue, first, 3, lambda r: resume.get(r.run_id))
    assert mates == [rest[0], rest[2]]  # rest[1] resumes from another step
    assert list(queue) == [other, rest[1], rest[3]]
    assert packing.take_mates(queue, other, 1, lambda r: None) == []


def test_pack_sizes() -> None:
    cfg = RunConfig(dataset="cifar10", batch_size=32)  # MLP-BN-10-100
    assert packing.auto_pack_size(cfg, None) == packing.CPU_PACK_SIZE
    assert packing.auto_pack_size(cfg, 80 << 30) == packing.MAX_PACK_SIZE
    assert 1 <= packing.auto_pack_size(cfg, 200 << 20) < 16
    assert packing.pack_limit(cfg, None, lambda: 64, None) == 64
    assert packing.pack_limit(cfg.model_copy(update={"pack_size": 8}), None, lambda: 64, None) == 8
    assert packing.pack_limit(cfg.model_copy(update={"pack_size": 8}), 1, lambda: 64, None) == 1
    assert packing.pack_limit(cfg, None, lambda: 64, 16) == 16  # after an out-of-memory error
    assert [packing.share(16, n, 2) for n in (1, 2, 3, 10, 40)] == [1, 1, 2, 5, 16]


def test_the_tasks_a_queue_becomes() -> None:
    """What an autoscaler is asked to make room for: packs of a key count once per pack."""
    packable = [planned(seed=s) for s in range(20)]  # one key: packs of CPU_PACK_SIZE (16)
    other = [planned(batch_size=8, seed=s) for s in range(3)]  # another key
    single = [runs.planned(base=dict(TINY, model="resnet18"), seed=s) for s in range(2)]  # never packed
    assert packing.tasks_needed(packable + other + single, None) == 2 + 1 + 2
    assert packing.tasks_needed(packable, 1) == 20  # --pack-size 1: every run a task
    assert packing.tasks_needed(packable, 5) == 4
    assert packing.tasks_needed(packable, 1, most=7) == 7  # bounded
    assert packing.tasks_needed([], None) == 0


def test_out_of_memory_requeues_the_pack_at_half_size(tmp_path: Path) -> None:
    runs = [planned(seed=s) for s in range(4)]

    class Gone:  # a worker process that has exited
        pid, exitcode, sentinel = 1, 0, None

        def join(self, timeout=None) -> None: ...

        def is_alive(self) -> bool:
            return False

    class Closed:
        def close(self) -> None: ...

    reader, writer = multiprocessing.Pipe(duplex=False)
    writer.close()  # the worker has exited: nothing more comes
    with Store(tmp_path) as store:
        store.add_runs(runs, {})
        sched = Scheduler(store, [], plan_slots("cpu", 1))
        host = Host(Gone(), reader, "cpu", control=Closed(), size=4, oom=True)  # type: ignore[arg-type]
        for r in runs:
            worker = Worker(
                r, host.proc, host.conn, Live(r.run_id, "cpu"), ("failed", "out of memory"), host=host
            )
            host.members[r.run_id] = sched.workers[r.run_id] = worker
        host.members[runs[3].run_id].cancelled = True
        sched.hosts.append(host)
        sched._reap(host)
        assert list(sched.queue) == runs[:3] and not sched.workers and not sched.hosts
        assert sched.pack_caps[packing.pack_key(runs[0].config)] == 2
        assert store.run(runs[0].run_id).status == "queued"  # type: ignore[union-attr]
        assert sched.outcomes == {runs[3].run_id: "cancelled"}


def run_scheduler(store_dir: Path, runs: list[PlannedRun], **kw) -> tuple[threading.Thread, dict, dict]:
    """A scheduler in a thread on one CPU slot; returns (thread, outcomes, run_id -> mode seen)."""
    outcomes: dict = {}
    modes: dict = {}

    def tick(sched: Scheduler) -> None:
        modes.update({live.run_id: live.mode for live in sched.live() if live.mode})

    def target() -> None:
        with Store(store_dir) as store:
            outcomes.update(Scheduler(store, store.queue(runs, {}), plan_slots("cpu", 1), **kw).run(tick))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcomes, modes


@pytest.mark.slow
def test_scheduler_trains_a_pack_as_ordinary_runs(tmp_path: Path) -> None:
    members = [planned(seed=s, lr=lr) for s, lr in ((0, 0.1), (1, 0.05), (2, 0.2))]
    loner = planned(batch_size=64)
    thread, outcomes, modes = run_scheduler(tmp_path, [*members, loner])
    thread.join(120)
    assert outcomes == {r.run_id: "done" for r in [*members, loner]}
    assert {modes[r.run_id] for r in members} == {"pack of 3, eager"} and modes[loner.run_id] == "eager"
    from rankbias_tui.engine.train import train  # the same run alone, in this process

    with Store(tmp_path) as store:
        for r in members:
            events: list = []
            train(r.config, "cpu", events.append, run_id=r.run_id)
            evals = [e.values for e in events if isinstance(e, Metrics) and "test_acc" in e.values]
            stored = [v for _, _, name, v in store.metrics(r.run_id) if name == "test_acc"]
            assert stored == pytest.approx([e["test_acc"] for e in evals], abs=1e-6)
            ranks = [[s.rank for s in e.rows] for e in events if isinstance(e, Spectra)]
            steps = store.spectrum_steps(r.run_id)
            assert [[s.rank for s in store.spectra(r.run_id, step)] for step in steps] == ranks
            assert store.run(r.run_id).error is None  # type: ignore[union-attr]


@pytest.mark.slow
def test_cancelling_a_pack_member_through_the_store(tmp_path: Path) -> None:
    victim, other = planned(batch_size=4, epochs=12, seed=1), planned(batch_size=4, epochs=12, seed=2)
    thread, outcomes, _ = run_scheduler(tmp_path, [victim, other])
    with Store(tmp_path) as store:
        deadline = time.monotonic() + 60
        while ((row := store.run(victim.run_id)) is None or row.step == 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        store.request(Request("cancel", victim.run_id))
        thread.join(120)
        assert outcomes == {victim.run_id: "cancelled", other.run_id: "done"}
        assert store.run(victim.run_id).status == "cancelled"  # type: ignore[union-attr]
        assert store.run(other.run_id).epoch == 12  # type: ignore[union-attr]


def test_the_memory_estimate_reads_the_data_set_s_catalog_row() -> None:
    """digits (64 inputs) against synthetic (3,072): the same MLP differs by its first layer."""
    small, large = RunConfig(**TINY), RunConfig(**(TINY | dict(dataset="synthetic")))
    first_layer = (3072 - 64) * small.width  # params, each ~6 floats of 4 bytes
    inputs = (3072 - 64) * small.batch_size
    assert packing.member_bytes(large) - packing.member_bytes(small) == 4 * (6 * first_layer + inputs)


def test_packs_are_sized_from_free_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A GPU with 80 GiB of which 1 GiB is free (other tenants) gets a pack that fits in 1 GiB."""
    import torch

    from rankbias_tui.engine import devices

    asked = []

    def mem_get_info(device) -> tuple[int, int]:
        asked.append(str(device))
        return 1 << 30, 80 << 30

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    assert devices.free_memory("cuda:1") == 1 << 30 and asked == ["cuda:1"]
    assert devices.free_memory("cpu") is None
    cfg = RunConfig(dataset="cifar10", batch_size=32)
    small = packing.auto_pack_size(cfg, 1 << 30)
    assert small < packing.auto_pack_size(cfg, 80 << 30)
    assert small * packing.member_bytes(cfg) <= packing.MEMORY_SHARE * (1 << 30)
    with Store(tmp_path) as store:  # the scheduler asks afresh for every pack
        sched = Scheduler(store, [], plan_slots("cpu", 1))
        first = PlannedRun(run_id(cfg), "t", cfg)
        assert sched._auto_pack_size(first, "cuda:0") == small
        monkeypatch.setattr(devices, "free_memory", lambda device: 80 << 30)
        assert sched._auto_pack_size(first, "cuda:0") == packing.MAX_PACK_SIZE

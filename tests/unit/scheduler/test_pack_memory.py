"""CPU packs sized from the memory available (issue 19: a pack of 16 whatever the RAM), and a worker
the kernel's OOM killer ended: its pack retried smaller, naming --pack-size; a single run failed,
naming the memory."""

from __future__ import annotations

import signal
from multiprocessing import Pipe
from pathlib import Path

import pytest

from rankbias_tui.scheduler import Scheduler, SchedulerOptions, memory, packing, plan_slots
from rankbias_tui.scheduler.dryrun import plan_waves
from rankbias_tui.scheduler.hosts import Host, Live, Worker
from rankbias_tui.spec import RunConfig
from rankbias_tui.store import Store
from rankbias_tui.sweep import PlannedRun, run_id
from tests.support import runs

WIDE = dict(model="mlp", depth=3, width=5000, dataset="digits", lr_milestones=())  # issue 19's pack


def wide(seed: int) -> PlannedRun:
    return runs.planned(base=WIDE, seed=seed)


def test_cpu_pack_size_follows_the_available_memory() -> None:
    cfg = wide(0).config
    member = packing.member_bytes(cfg)
    assert 500_000_000 < member < 1_500_000_000  # ~50M parameters: the 1.2 GB of the issue
    assert packing.auto_pack_size(cfg, None, cpu=True) == packing.CPU_PACK_SIZE  # not known
    assert packing.auto_pack_size(cfg, 1_200_000_000, cpu=True) == 1
    assert packing.auto_pack_size(cfg, 64 << 30, cpu=True) == packing.CPU_PACK_SIZE  # never above 16
    four = int(4 * member / packing.CPU_MEMORY_SHARE) + 1
    assert packing.auto_pack_size(cfg, four, cpu=True) == 4
    assert packing.auto_pack_size(cfg, four, sharers=2, cpu=True) == 2  # two packs start together


def test_the_scheduler_asks_for_the_memory_available_for_every_cpu_pack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seeds = [wide(s) for s in range(8)]
    member = packing.member_bytes(seeds[0].config)
    available = [int(3 * member / packing.CPU_MEMORY_SHARE) + 1]
    monkeypatch.setattr(memory, "available_bytes", lambda: available[0])
    with Store(tmp_path) as store:
        sched = Scheduler(store, [], plan_slots("cpu", 1))
        assert sched._auto_pack_size(seeds[0], "cpu") == 3
        available[0] = 1_200_000_000
        assert sched._auto_pack_size(seeds[0], "cpu") == 1
    available[0] = int(4 * member / packing.CPU_MEMORY_SHARE) + 1  # two slots start a pack each: 2 + 2
    waves = plan_waves(seeds[:4], plan_slots("cpu", 2), {}, SchedulerOptions())
    assert [len(p.runs) for p in waves[0]] == [2, 2]
    available[0] = 1_200_000_000  # what issue 19 had: one run at a time
    waves = plan_waves(seeds[:4], plan_slots("cpu", 1), {}, SchedulerOptions())
    assert [[len(p.runs) for p in wave] for wave in waves] == [[1], [1], [1], [1]]
    forced = plan_waves(seeds[:4], plan_slots("cpu", 1), {}, SchedulerOptions(pack_size=4))
    assert [[len(p.runs) for p in wave] for wave in forced] == [[4]]  # --pack-size still decides


class Killed:
    """A worker process that has ended by ``signal``."""

    pid, sentinel = 4343, None

    def __init__(self, signum: int):
        self.exitcode = -signum

    def join(self, timeout: float | None = None) -> None: ...

    def is_alive(self) -> bool:
        return False


class Closed:
    def close(self) -> None: ...


def reap_killed(
    store: Store,
    planned: list[PlannedRun],
    before: int | None,
    after: int | None,
    signum: int = signal.SIGKILL,
) -> Scheduler:
    """A scheduler reaping a worker of ``planned`` killed by ``signum``, the OOM count going from
    ``before`` (when it started) to ``after``."""
    store.add_runs(planned, {})
    sched = Scheduler(store, [], plan_slots("cpu", 1))
    reader, writer = Pipe(duplex=False)
    writer.close()
    pack = len(planned) > 1
    host = Host(Killed(signum), reader, "cpu", control=Closed() if pack else None, size=len(planned))  # type: ignore[arg-type]
    host.available, host.oom_kills = 1_100_000_000, before
    for r in planned:
        worker = Worker(r, host.proc, host.conn, Live(r.run_id, "cpu"), host=host)
        host.members[r.run_id] = sched.workers[r.run_id] = worker
        store.start_attempt(r.run_id, "cpu", host.proc.pid)
    sched.hosts.append(host)
    memory_now = after
    original = memory.oom_kills
    try:
        memory.oom_kills = lambda: memory_now  # type: ignore[assignment]
        sched._reap(host)
    finally:
        memory.oom_kills = original
    return sched


def test_a_pack_the_oom_killer_took_is_retried_in_smaller_packs(tmp_path: Path) -> None:
    pack = [wide(s) for s in range(4)]
    with Store(tmp_path) as store:
        sched = reap_killed(store, pack, before=7, after=8)
        assert list(sched.queue) == pack and sched.outcomes == {}
        assert sched.pack_caps[packing.pack_key(pack[0].config)] == 2
        row = store.run(pack[0].run_id)
        assert row is not None and row.status == "queued"
        said = row.error or ""
        assert "killed by SIGKILL" in said and "ran out of memory (1.1 GB available when it started)" in said
        assert "in a pack of 4; retrying in packs of 2" in said and "--pack-size" in said
        assert row.warnings == (said,)  # kept once the run starts again (which clears its error)


def test_a_kill_9_without_the_oom_killer_still_fails_the_pack(tmp_path: Path) -> None:
    pack = [wide(s) for s in range(2)]
    with Store(tmp_path) as store:
        sched = reap_killed(store, pack, before=7, after=7)
        assert not sched.queue and sched.outcomes == {r.run_id: "failed" for r in pack}
        assert "worker killed by SIGKILL" in (store.run(pack[0].run_id).error or "")  # type: ignore[union-attr]


def test_a_single_run_the_oom_killer_took_fails_naming_the_memory(tmp_path: Path) -> None:
    cfg = RunConfig(**WIDE)
    alone = PlannedRun(run_id(cfg), "t", cfg)
    with Store(tmp_path) as store:
        sched = reap_killed(store, [alone], before=None, after=None)  # no count: any SIGKILL may be it
        assert not sched.queue and sched.outcomes == {alone.run_id: "failed"}
        error = store.run(alone.run_id).error or ""  # type: ignore[union-attr]
        assert "the system ran out of memory (1.1 GB available when it started)" in error
        assert f"it needs about {memory.describe(packing.member_bytes(cfg))}" in error
        assert "--per-device" not in error  # it was alone


def test_a_single_run_killed_beside_others_is_told_about_per_device(tmp_path: Path) -> None:
    cfg = RunConfig(**WIDE)
    alone = PlannedRun(run_id(cfg), "t", cfg)
    with Store(tmp_path) as store:
        store.add_runs([alone], {})
        sched = Scheduler(store, [], plan_slots("cpu", 2))
        sched.hosts.append(Host(Killed(0), None, "cpu"))  # type: ignore[arg-type]  # another worker, running
        reader, writer = Pipe(duplex=False)
        writer.close()
        host = Host(Killed(signal.SIGKILL), reader, "cpu")  # type: ignore[arg-type]
        worker = Worker(alone, host.proc, reader, Live(alone.run_id, "cpu"), host=host)
        host.members[alone.run_id] = sched.workers[alone.run_id] = worker
        sched.hosts.append(host)
        sched._reap(host)
        error = store.run(alone.run_id).error or ""  # type: ignore[union-attr]
        assert "1 other worker(s) shared it: fewer at a time with --per-device" in error

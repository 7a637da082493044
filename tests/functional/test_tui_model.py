"""The terminal UI's read model (plain data, no Textual): varied columns, grouping, caching, ETAs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from rankbias_tui.spec import RunConfig
from rankbias_tui.tui.format import bar, bound, duration
from rankbias_tui.tui.model import RunView, StoreFeed, downsample, group_curves, varied_fields
from rankbias_tui.tui.usage import DeviceUse, device_usage
from rankbias_tui.tui.widgets.status import header_lines
from tests.support.tui_store import NOW, make_store


def view(run_id: str, status: str, progress: float = 0.0, started: float | None = None, **cfg) -> RunView:  # noqa: ANN003
    config = {"epochs": 10, "batch_size": 8, "lr": 0.1, "weight_decay": 0.0} | cfg
    finished = started + 100.0 if status == "done" and started is not None else None
    return RunView(run_id, "s", status, "cpu", RunConfig(**config), int(progress * 100), 100, progress * 10,
                   started_at=started, finished_at=finished)  # fmt: skip


def test_varied_fields_and_grouping() -> None:
    runs = [
        view("a", "done", batch_size=8),
        view("b", "done", batch_size=32),
        view("c", "done", batch_size=8),
    ]
    assert varied_fields(r.config.stored for r in runs) == ("batch_size",)
    curves = {"a": ((0.0, 10.0), (5.0, 6.0)), "b": ((0.0, 10.0), (5.0, 9.0)), "c": ((0.0, 10.0), (5.0, 8.0))}
    grouped = group_curves(runs, curves, "batch_size")
    assert grouped == [("B=8", 2, ((0.0, 10.0), (5.0, 7.0))), ("B=32", 1, ((0.0, 10.0), (5.0, 9.0)))]
    assert [label for label, _, _ in group_curves(runs, curves, None)] == ["a B=8", "b B=32", "c B=8"]


def test_downsample_keeps_the_last_point() -> None:
    xs = list(range(1001))
    dx, dy = downsample(xs, xs, limit=100)
    assert len(dx) <= 101 and dx[0] == 0 and dx[-1] == 1000 and dx == dy


def test_formatting() -> None:
    assert (duration(42), duration(185), duration(7800), duration(None)) == ("42s", "3m05s", "2h10m", "?")
    assert bar(0.5, 4) == "██  " and bar(1.0, 3) == "███"
    assert bound(12.5, 32, 64) == "12.5" and bound(1e4, 32, 64) == "1e+04 vacuous"
    assert bound(float("inf"), 32, 64) == "vacuous (wd=0)"


def test_feed_rereads_only_runs_that_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_store(tmp_path).close()
    feed = StoreFeed(tmp_path, clock=lambda: NOW, probe=None, live_every_s=1e9)
    calls: list[str] = []
    original = feed.store.latest_many

    def latest_many(run_ids: list[str], names: tuple[str, ...]) -> dict:
        calls.extend(run_ids)
        return original(run_ids, names)

    monkeypatch.setattr(feed.store, "latest_many", latest_many)
    first = feed.poll()
    started = [v.run_id for v in first.runs if v.step or v.status != "queued"]
    assert len(first.runs) == 9 and sorted(calls) == sorted(started) and len(started) == 8  # not the new one
    assert (
        header_lines(first)[1] == "5 done, 1 running, 1 queued, 1 failed, 1 cancelled · ETA - · no scheduler"
    )
    calls.clear()
    assert feed.poll().runs == first.runs and calls == []  # nothing changed: nothing re-read
    running = next(r for r in first.runs if r.status == "running")
    feed.store.set_progress(running.run_id, running.step + 10, running.epoch + 1)
    feed.poll()
    assert calls == [running.run_id]
    detail = feed.detail(running.run_id)
    assert detail is feed.detail(running.run_id)  # cached while unchanged
    assert [len(m) for m in detail.measurements] == [3, 3, 3]
    feed.close()


def test_header_lines_and_device_usage() -> None:
    runs = [view("a", "running"), view("b", "queued")]
    usage = device_usage(runs, ["cpu"], lambda d, bus=None: (0.7, None, None))
    assert usage == [DeviceUse("cpu", ("a",), 0.7)] and usage[0].describe() == "cpu load 0.7: a"
    gpu = DeviceUse("cuda:0", ("a1b2c3d4", "b", "c", "d"), 87.0, 12.25, 80.0)
    assert gpu.describe() == "cuda:0 87% 12.2/80G: a1b2c3 b c +1"
    assert DeviceUse("cuda:1", ()).describe() == "cuda:1: idle"


def test_on_a_ray_cluster_the_header_shows_each_node_with_its_runs() -> None:
    runs = [view("a", "running"), view("b", "running"), view("c", "running")]
    runs = [replace(runs[0], device="cuda:0@10.0.0.7"), replace(runs[1], device="cuda:0@10.0.0.8"),
            replace(runs[2], device="cuda:0@10.0.0.7")]  # fmt: skip
    usage = device_usage(runs, ["ray:cuda"], lambda d: pytest.fail(f"probed remote {d}"))
    assert [u.describe() for u in usage] == ["cuda:0@10.0.0.7: a c", "cuda:0@10.0.0.8: b"]


def test_a_scheduler_whose_cluster_has_no_node_left_reads_waiting_for_nodes(tmp_path: Path) -> None:
    """Issue 22, 3: all workers lost shows "waiting for nodes" in the app, not "stopped"; the
    background scheduler rewrites its state file with 0 slots (``Daemon.resized``)."""
    from rankbias_tui.scheduler import SchedulerStatus

    make_store(tmp_path).close()
    feed = StoreFeed(tmp_path, clock=lambda: NOW, probe=None, live_every_s=1e9)
    try:
        snap = feed.poll()
    finally:
        feed.close()
    waiting = replace(snap, scheduler=SchedulerStatus(4242, True, ("ray:cpu",), 0))
    assert header_lines(waiting)[1].endswith("· scheduler 4242: waiting for nodes")
    training = replace(snap, scheduler=SchedulerStatus(4242, True, ("ray:cpu",), 2))
    assert header_lines(training)[1].endswith("· scheduler 4242")
    nothing_queued = replace(waiting, counts=snap.counts | {"queued": 0})
    assert header_lines(nothing_queued)[1].endswith("· scheduler 4242")


def test_the_eta_knows_which_runs_train_in_one_pack(tmp_path: Path) -> None:
    """Issue 21: the ETA counts every member of a pack in its slot; the app passes each run's latest
    pack (``Store.packs``), read again when a pack starts."""
    from rankbias_tui.store import Store
    from tests.support.runs import planned

    runs = [planned("p", seed=s) for s in range(3)]
    with Store(tmp_path, create=True) as store:
        store.add_runs(runs, {})
        pack = [r.run_id for r in runs[:2]]
        for r in runs[:2]:
            store.start_attempt(r.run_id, "cpu", 4242)
            store.add_segment(r.run_id, -1, "cpu", "pack of 2, eager", pack)
    feed = StoreFeed(tmp_path)
    try:
        snap = feed.poll()
        works = {v.run_id: feed._work(v, NOW) for v in snap.runs}
        assert works[runs[0].run_id].pack == tuple(pack) and works[runs[1].run_id].pack == tuple(pack)
        assert works[runs[2].run_id].pack == ()  # queued: never trained yet
    finally:
        feed.close()


@pytest.mark.parametrize("measure", ["rank", "rank:fc2", "rank:fc9", "test_acc", "train_loss"])
def test_compare_curves_read_together_equal_each_runs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, measure: str
) -> None:
    """Comparing a whole sweep reads its runs' curves in a few queries (seconds at 20,000 runs
    when read run by run, with every singular value): the same curves as each run's own read."""
    from rankbias_tui import measures

    make_store(tmp_path).close()
    feed = StoreFeed(tmp_path, clock=lambda: NOW, probe=None)
    runs = feed.poll().runs
    store = feed.store
    expected = {}
    for v in runs:
        if measure.startswith("rank"):
            layer = measure.partition(":")[2] or None
            expected[v.run_id] = tuple(
                zip(*measures.rank_curve(store.spectra(v.run_id), layer=layer), strict=True)
            )
        else:
            rows = store.metrics(v.run_id, measure)
            expected[v.run_id] = tuple((r[1], r[3]) for r in rows)
    monkeypatch.setattr(store, "spectra", None)  # no run's singular values are read
    monkeypatch.setattr(store, "metrics", None)
    curves = feed.rank_curves(runs, measure)
    assert curves == expected and sum(bool(c) for c in curves.values()) >= 5
    feed.close()

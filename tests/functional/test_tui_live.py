"""End to end: a real background scheduler trains a tiny digits sweep while the app attaches,
quits (the runs go on), attaches again and sees them finish; ``stop`` then ends the scheduler."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Store, StorePaths
from rankbias_tui.sweep import expand
from rankbias_tui.tui import create_app
from rankbias_tui.tui.widgets.runs_table import RunsTable
from tests.support.tui_store import TINY_SPEC as SPEC
from tests.support.tui_store import pilot_test

pytestmark = pytest.mark.slow

OPTIONS = scheduler.SchedulerOptions(devices="cpu", per_device=1, idle_exit_s=120, pack_size=1)
TIMEOUT_S = 90.0


def progress(store_dir: Path) -> tuple[int, int]:
    """(runs done, steps reached over all runs): grows while the scheduler works."""
    with Store(store_dir) as store:
        runs = store.runs()
    return sum(r.status == "done" for r in runs), sum(r.step for r in runs)


async def wait_for(pilot, condition, timeout: float = TIMEOUT_S) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not (pilot.app.latest is not None and condition(pilot.app.latest.snapshot)):
        assert time.monotonic() < deadline, "timed out waiting for the store"
        await pilot.pause(0.2)


@pytest.mark.soak  # long; its path is also covered by shorter tests (README: soak)
@pilot_test
async def test_attach_quit_attach_while_a_real_scheduler_runs(tmp_path: Path) -> None:
    spec, store_dir = tmp_path / "spec.toml", tmp_path / "runs"
    spec.write_text(SPEC)
    with Store(store_dir) as store:
        scheduler.launch(store, expand(load_spec(spec), ["tiny"]))
    pid, proc = scheduler.ensure(store_dir, OPTIONS)
    assert pid is None and proc is not None  # none was running: started one
    try:
        app = create_app(store_dir, spec, OPTIONS, spawn=None, interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda s: any(r.status == "running" and r.step > 0 for r in s.runs))
            assert app.latest.snapshot.scheduler.background
            assert "running" in app.screen.query_one(RunsTable).column("status")
        before = progress(store_dir)
        assert scheduler.scheduler_pid(store_dir) == proc.pid  # quitting the app left it running
        deadline = time.monotonic() + TIMEOUT_S
        while progress(store_dir) == before:
            assert time.monotonic() < deadline and proc.poll() is None, "the runs stopped progressing"
            time.sleep(0.2)

        app = create_app(store_dir, spec, OPTIONS, spawn=None, interval=0.2)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda s: s.runs and all(r.status == "done" for r in s.runs))
            await pilot.pause(0.3)
            table = app.screen.query_one(RunsTable)
            assert table.column("status") == ["done", "done"]
            assert "-" not in table.column("rank")
    finally:
        assert scheduler.stop(store_dir, timeout_s=30) == proc.pid
        proc.wait(10)
    assert proc.returncode == 0 and scheduler.scheduler_pid(store_dir) is None
    assert "scheduler stopped" in StorePaths.of(store_dir).log.read_text()

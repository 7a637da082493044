"""The background scheduler's request handling and the CLI around it, without training anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_tui_fixture import make_store, write_spec
from typer.testing import CliRunner

from rankbias_tui.cli import app as cli_app
from rankbias_tui.scheduler import SchedulerLock, Slots
from rankbias_tui.scheduler.daemon import (
    STATE_NAME,
    Daemon,
    DaemonOptions,
    is_daemon,
    request_launch,
    scheduler_pid,
)
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Store
from rankbias_tui.sweep import expand_sweep

CPU = Slots(("cpu",), 1, 1)


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    store = make_store(tmp_path)
    yield store
    store.close()


def test_launch_adds_the_sweep_and_queues_what_is_not_finished(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, idle_exit_s=0)
        request_launch(store, spec, "quick")
        request_launch(store, spec, "quick")  # twice: queued once
        daemon._handle_requests()
        planned = [p.run_id for p in expand_sweep(load_spec(spec), "quick")]
        assert [r.run_id for r in daemon.queue] == planned
        assert {r.run_id: r.status for r in store.runs()} == dict.fromkeys(planned, "queued")


def test_launch_of_an_unknown_sweep_is_logged_not_fatal(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    spec = write_spec(tmp_path)
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, idle_exit_s=0)
        request_launch(store, spec, "quik")
        daemon._handle_requests()
        assert not daemon.queue and "did you mean 'quick'" in caplog.text


def test_launch_skips_finished_runs(store: Store) -> None:
    daemon = Daemon(store, CPU, idle_exit_s=0)
    request_launch(store, store.directory / "experiments.toml", "quick")
    daemon._handle_requests()
    statuses = {r.run_id: r.status for r in store.runs()}
    assert daemon.queue and all(statuses[r.run_id] == "queued" for r in daemon.queue)
    assert not any(statuses[r.run_id] == "done" for r in daemon.queue)
    assert len(daemon.queue) == 3  # the running (stale), queued and failed runs of `quick`


def test_cancel_and_resume_requests(store: Store) -> None:
    daemon = Daemon(store, CPU, idle_exit_s=0)
    runs = {r.status: r.run_id for r in store.runs()}
    store.request("cancel", runs["queued"])  # not in this scheduler's queue: marked at once
    store.request("resume", runs["cancelled"])
    store.request("resume", runs["done"])  # finished: nothing to do
    daemon._handle_requests()
    assert store.run(runs["queued"]).status == "cancelled"
    assert [r.run_id for r in daemon.queue] == [runs["cancelled"]]
    assert store.run(runs["cancelled"]).status == "queued"
    store.request("cancel", runs["cancelled"])  # now queued here: leaves the queue
    daemon._handle_requests()
    assert not daemon.queue and store.run(runs["cancelled"]).status == "cancelled"


def test_stop_request_and_idle_exit_end_serve(store: Store) -> None:
    daemon = Daemon(store, CPU, idle_exit_s=0)
    store.request("stop")
    daemon.serve()
    assert daemon.stopping == "stop requested"
    idle = Daemon(store, CPU, idle_exit_s=0.01)
    idle.serve()
    assert idle.stopping is not None and idle.stopping.startswith("idle")


def test_scheduler_pid_and_daemon_state(tmp_path: Path) -> None:
    assert scheduler_pid(tmp_path) is None
    with SchedulerLock(tmp_path):
        assert scheduler_pid(tmp_path) == os.getpid()
        assert not is_daemon(tmp_path, os.getpid())  # a foreground run writes no scheduler.json
        (tmp_path / STATE_NAME).write_text(f'{{"pid": {os.getpid()}}}')
        assert is_daemon(tmp_path, os.getpid())
    assert scheduler_pid(tmp_path) is None


def test_daemon_options_round_trip_to_argv() -> None:
    options = DaemonOptions("cpu", 2, Path("/data"), True, 30.0, pack_size=1, graphs=False)
    assert options.argv() == [
        "--devices", "cpu", "--idle-exit", "30.0", "--per-device", "2", "--pack-size", "1", "--no-graphs",
        "--data-dir", "/data", "--keep-checkpoints",
    ]  # fmt: skip


def test_cli_stop_without_scheduler_and_attach_without_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["stop", "--store", str(tmp_path)])
    assert result.exit_code == 0 and "no scheduler is running" in result.output
    result = runner.invoke(cli_app, ["attach", "--store", str(tmp_path)])
    assert result.exit_code == 1 and "needs a terminal" in result.output

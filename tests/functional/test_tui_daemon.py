"""The background scheduler's request handling (the service half, ``scheduler.daemon``) and the CLI
around it, without training anything. The client half is tested in ``tests/unit/test_client.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui.cli import app as cli_app
from rankbias_tui.scheduler import SchedulerOptions, Slots, launch
from rankbias_tui.scheduler.daemon import Daemon
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Request, Store
from rankbias_tui.sweep import expand_sweep
from tests.support.tui_store import make_store, write_spec

pytestmark = pytest.mark.slow  # trains real (tiny) runs

CPU = Slots(("cpu",), 1, 1)
NO_IDLE_EXIT = SchedulerOptions(idle_exit_s=0)


@pytest.fixture
def store(tmp_path: Path):  # noqa: ANN201
    store = make_store(tmp_path)
    yield store
    store.close()


def test_launch_adds_the_sweep_and_queues_what_is_not_finished(tmp_path: Path) -> None:
    spec = write_spec(tmp_path)
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, NO_IDLE_EXIT)
        launch(store, spec, "quick")
        launch(store, spec, "quick")  # twice: queued once
        daemon._handle_requests()
        planned = [p.run_id for p in expand_sweep(load_spec(spec), "quick")]
        assert [r.run_id for r in daemon.queue] == planned
        assert {r.run_id: r.status for r in store.runs()} == dict.fromkeys(planned, "queued")


def test_launch_of_an_unknown_sweep_is_logged_not_fatal(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    spec = write_spec(tmp_path)
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, NO_IDLE_EXIT)
        launch(store, spec, "quik")
        daemon._handle_requests()
        assert not daemon.queue and "did you mean 'quick'" in caplog.text


def test_launch_skips_finished_runs(store: Store) -> None:
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    launch(store, store.directory / "experiments.toml", "quick")
    daemon._handle_requests()
    statuses = {r.run_id: r.status for r in store.runs()}
    assert daemon.queue and all(statuses[r.run_id] == "queued" for r in daemon.queue)
    assert not any(statuses[r.run_id] == "done" for r in daemon.queue)
    assert len(daemon.queue) == 3  # the running (stale), queued and failed runs of `quick`


def test_cancel_and_resume_requests(store: Store) -> None:
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    runs = {r.status: r.run_id for r in store.runs()}
    store.request(Request("cancel", runs["queued"]))  # not in this scheduler's queue: marked at once
    store.request(Request("resume", runs["cancelled"]))
    store.request(Request("resume", runs["done"]))  # finished: nothing to do
    daemon._handle_requests()
    assert store.run(runs["queued"]).status == "cancelled"
    assert [r.run_id for r in daemon.queue] == [runs["cancelled"]]
    assert store.run(runs["cancelled"]).status == "queued"
    store.request(Request("cancel", runs["cancelled"]))  # now queued here: leaves the queue
    daemon._handle_requests()
    assert not daemon.queue and store.run(runs["cancelled"]).status == "cancelled"


def test_stop_request_and_idle_exit_end_serve(store: Store) -> None:
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    store.request(Request("stop"))
    daemon.serve()
    assert daemon.stopping == "stop requested"
    idle = Daemon(store, CPU, SchedulerOptions(idle_exit_s=0.01))
    idle.serve()
    assert idle.stopping is not None and idle.stopping.startswith("idle")


def test_a_request_it_cannot_answer_is_logged_not_fatal(store: Store, caplog) -> None:  # noqa: ANN001
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    store.request(Request("launch", spec_path="/nowhere/experiments.toml", sweep="quick"))
    store.request(Request("cancel"))  # no run id
    daemon._handle_requests()
    assert not daemon.queue and daemon.stopping is None
    assert "launch quick of /nowhere/experiments.toml" in caplog.text and "ignoring request" in caplog.text


def test_cli_stop_without_scheduler_and_attach_without_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["stop", "--store", str(tmp_path)])
    assert result.exit_code == 0 and "no scheduler is running" in result.output
    result = runner.invoke(cli_app, ["attach", "--store", str(tmp_path)])
    assert result.exit_code == 1 and "needs a terminal" in result.output

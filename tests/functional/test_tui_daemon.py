"""The background scheduler's request handling (the service half, ``scheduler.daemon``) and the CLI
around it, without training anything. The client half is tested in ``tests/unit/scheduler/test_client.py``."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui import scheduler
from rankbias_tui.cli import app as cli_app
from rankbias_tui.cli import attach
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


def test_launch_adds_the_sweep_and_queues_what_is_not_finished(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, "rankbias.daemon")
    planned = expand_sweep(load_spec(write_spec(tmp_path)), "quick")
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, NO_IDLE_EXIT)
        launch(store, planned)
        launch(store, planned)  # twice: queued once
        daemon._handle_requests()
        ids = [p.run_id for p in planned]
        assert daemon.queue == deque(planned)  # the very runs launched, in their order
        assert {r.run_id: r.status for r in store.runs()} == dict.fromkeys(ids, "queued")
        assert "launch quick: 12 runs, 6 queued" in caplog.text


def test_requests_are_answered_in_the_order_they_were_made(tmp_path: Path) -> None:
    planned = expand_sweep(load_spec(write_spec(tmp_path)), "quick")
    with Store(tmp_path / "runs") as store:
        daemon = Daemon(store, CPU, NO_IDLE_EXIT)
        launch(store, planned)
        store.request(Request("cancel", planned[0].run_id))
        launch(store, planned[:1])  # launched again after the cancel: queued again, at the end
        daemon._handle_requests()
        assert list(daemon.queue) == [*planned[1:], planned[0]]
        assert store.run(planned[0].run_id).status == "queued"  # type: ignore[union-attr]


def test_the_runs_counted_are_the_runs_queued_though_the_spec_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rankbias run`` in a terminal reads the spec once: if the file changes before the scheduler
    takes the launch (here: while the scheduler is being started), the scheduler still queues the
    runs counted on the screen, not those of the new file."""
    spec, store_dir = write_spec(tmp_path), tmp_path / "runs"
    opened: list[Path] = []

    def ensure(directory: Path, options: SchedulerOptions) -> tuple[None, None]:
        spec.write_text(spec.read_text().replace("grid.batch_size = [8, 16, 32]", "grid.batch_size = [8]"))
        return None, None

    monkeypatch.setattr(attach, "terminal_attached", lambda: True)
    monkeypatch.setattr(attach, "_open", lambda store_dir, *rest: opened.append(store_dir))
    monkeypatch.setattr(scheduler, "ensure", ensure)
    result = CliRunner().invoke(cli_app, ["run", str(spec), "--store", str(store_dir)])
    assert result.exit_code == 0, result.output
    assert "6 runs in quick: opening the terminal UI" in result.output and opened == [store_dir]
    assert len(expand_sweep(load_spec(spec), "quick")) == 2  # the file says 2 runs by now
    with Store(store_dir) as store:
        daemon = Daemon(store, CPU, NO_IDLE_EXIT)
        daemon._handle_requests()
        assert len(daemon.queue) == 6


def test_launch_skips_finished_runs(store: Store) -> None:
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    launch(store, expand_sweep(load_spec(store.directory / "experiments.toml"), "quick"))
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
    caplog.set_level(logging.INFO, "rankbias.daemon")
    daemon = Daemon(store, CPU, NO_IDLE_EXIT)
    store.request(Request("launch", spec_path="/nowhere/experiments.toml", sweep="quick"))  # older rankbias
    store.request(Request("launch", "0123456789ab", sweep="quick"))  # no such run in the store
    store.request(Request("cancel"))  # no run id
    daemon._handle_requests()
    assert not daemon.queue and daemon.stopping is None
    assert (
        "ignoring request Request(kind='launch'" in caplog.text
        and "ignoring request Request(kind='cancel'" in caplog.text
    )
    assert "launch quick: 1 runs, 0 queued" in caplog.text


def test_cli_stop_without_scheduler_and_attach_without_terminal(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["stop", "--store", str(tmp_path)])
    assert result.exit_code == 0 and "no scheduler is running" in result.output
    result = runner.invoke(cli_app, ["attach", "--store", str(tmp_path)])
    assert result.exit_code == 1 and "needs a terminal" in result.output


def test_attach_opens_its_store_by_the_commands_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attach, "terminal_attached", lambda: True)
    result = CliRunner().invoke(cli_app, ["attach", "--store", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no rankbias store at" in result.output

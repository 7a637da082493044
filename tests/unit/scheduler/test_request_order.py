"""Requests are ordered by the store's own ids, not by anyone's clock (issue 19 item 7): a stop made
after a scheduler took the store is obeyed whatever the client's clock says, one made before is
not whatever the scheduler's clock says. Nothing trains here."""

from __future__ import annotations

import time

import pytest

from rankbias_tui.scheduler import SchedulerOptions, Slots
from rankbias_tui.scheduler.daemon import Daemon
from rankbias_tui.scheduler.faults import expired
from rankbias_tui.store import Request, Store

CPU = Slots(("cpu",), 1, 1)
REAL = time.time


def skewed(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """This process's clock, ``seconds`` off (every ``time.time`` caller: the store, the client)."""
    monkeypatch.setattr(time, "time", lambda: REAL() + seconds)


def test_the_store_numbers_requests_in_the_order_they_are_made(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    with Store(tmp_path) as store:
        assert store.last_request_id() == 0
        skewed(monkeypatch, +3600)
        store.request(Request("stop"))
        skewed(monkeypatch, -3600)  # made later, on a clock two hours behind the first one's
        store.request(Request("cancel", "0123456789ab"))
        first, second = store.take_requests()
        assert first.created_at > second.created_at  # what the clocks say
        assert (first.id, second.id) == (1, 2) and store.last_request_id() == 2  # what happened


def test_expired_compares_ids_only() -> None:
    assert expired(Request("stop", created_at=REAL() + 3600, id=3), after=3)
    assert not expired(Request("stop", created_at=REAL() - 3600, id=4), after=3)


@pytest.mark.parametrize("daemon_clock", [-3600.0, 0.0, +3600.0])
@pytest.mark.parametrize("client_clock", [-90.0, +3600.0])
def test_a_daemon_obeys_a_later_stop_and_not_an_earlier_one_whatever_the_clocks(
    tmp_path,
    monkeypatch,
    daemon_clock: float,
    client_clock: float,  # noqa: ANN001
) -> None:
    with Store(tmp_path) as store:
        skewed(monkeypatch, client_clock)
        store.request(Request("stop"))  # `rankbias stop` that timed out, before this daemon started
        skewed(monkeypatch, daemon_clock)
        daemon = Daemon(store, CPU, SchedulerOptions(idle_exit_s=0))
        daemon._handle_requests()
        assert daemon.stopping is None  # not meant for it: expired
        skewed(monkeypatch, client_clock)
        store.request(Request("stop"))  # made while it runs, on a clock off by client_clock
        skewed(monkeypatch, daemon_clock)
        daemon._handle_requests()
        assert daemon.stopping == "stop requested"

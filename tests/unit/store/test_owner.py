"""Owner tokens of running runs: a live scheduler, a dead one, a reused pid, a zombie (owner.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from rankbias_tui.store import owner


def test_this_process_is_alive_and_its_token_names_it() -> None:
    token = owner.token()
    assert owner.pid_of(token) == os.getpid() and owner.alive(token)
    assert token == owner.token(os.getpid())


def test_a_process_that_ended_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    token = owner.token(child.pid)
    assert owner.alive(token)
    child.kill()
    deadline = time.monotonic() + 10
    while owner.alive(token) and time.monotonic() < deadline:  # a zombie until reaped: dead already
        time.sleep(0.02)
    assert not owner.alive(token)
    child.wait()
    assert not owner.alive(token)


def test_a_reused_pid_is_not_the_owner() -> None:
    if not os.path.isdir("/proc/self"):
        return  # without /proc, a pid is all there is
    pid, started = owner.token().split(":")
    assert not owner.alive(f"{pid}:{int(started) + 1}")  # same pid, another start time


def test_tokens_that_name_no_process() -> None:
    for bad in ("", "abc", "0:1", "-5:3", "999999999:1"):
        assert not owner.alive(bad)

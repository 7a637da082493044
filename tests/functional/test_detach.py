"""``rankbias run --detach`` (issue 22, "a detached driver"): the runs are queued with a background
scheduler in a session of its own, the command returns, the scheduler outlives the terminal that
started it (its whole session killed, as ``tmux kill-server`` does) and ``rankbias stop`` ends it
with every run resumable."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from rankbias_tui.store import Store
from tests.support.runs import RANKBIAS, rankbias, wait_for

SPEC = """
[sweeps.d]
dataset = "digits"
model = "mlp"
depth = 2
width = 16
batch_size = 4
epochs = 50
lr_milestones = []
measure_every = 1
seeds = [1, 2]
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


def test_a_detached_sweep_outlives_its_terminal_and_stops_on_request(tmp_path: Path) -> None:
    spec, store = tmp_path / "experiments.toml", tmp_path / "store"
    spec.write_text(SPEC)
    args = [
        RANKBIAS,
        "run",
        str(spec),
        "--store",
        str(store),
        "--detach",
        "--devices",
        "cpu",
        "--per-device",
        "1",
    ]
    terminal = subprocess.Popen(
        args, start_new_session=True, stdout=subprocess.PIPE, text=True
    )  # a tmux pane
    out, _ = terminal.communicate(timeout=120)
    assert terminal.returncode == 0, out
    pid = int(re.search(r"background scheduler \(pid (\d+)\)", out).group(1))  # type: ignore[union-attr]
    assert "rankbias attach --store" in out and "rankbias stop --store" in out
    assert os.getsid(pid) != terminal.pid  # a session of its own
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the terminal's session
        os.killpg(terminal.pid, signal.SIGKILL)  # gone, as after tmux kill-server
    wait_for(lambda: Store(store).runs()[0].step > 0, timeout=120, what="training")
    assert alive(pid)
    stopped = rankbias("stop", "--store", str(store))
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not alive(pid), timeout=60, what="the scheduler to end")
    with Store(store) as s:
        assert {r.status for r in s.runs()} <= {"stopped", "done"}  # resumable, nothing lost


def test_detach_and_headless_exclude_each_other(tmp_path: Path) -> None:
    spec = tmp_path / "experiments.toml"
    spec.write_text(SPEC)
    done = rankbias("run", str(spec), "--store", str(tmp_path / "s"), "--detach", "--headless")
    assert done.returncode == 2 and "--detach and --headless exclude each other" in done.stderr

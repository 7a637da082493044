"""A user's own model and data set, from a temporary directory, through the ``rankbias`` command
(issue 23): ``validate`` refuses a reference that does not import, with nothing started; a sweep
trains the user's model on the user's data beside a run whose builder raises (that one fails with
the user's traceback in ``show``, the other goes on); an interrupted sweep resumes to the same
numbers bit for bit as an uninterrupted one; ``claims``, ``plot`` and ``report`` read the runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from rankbias_tui.store import Store
from tests.support.faults import checkpointed, results, wait_for
from tests.support.runs import RANKBIAS, rankbias

pytestmark = pytest.mark.slow

NET = """
import os
import time

from torch import nn


class Slow(nn.Module):  # with OWN_NET_SLOW set, each forward waits: time to interrupt, same numbers
    def forward(self, x):
        time.sleep(float(os.environ.get("OWN_NET_SLOW", "0")))
        return x


def build(input_shape, num_classes, options):
    if options.get("fail"):
        return broken_helper(options)
    (d,) = input_shape  # flat inputs: (32,)
    h = options["hidden"]
    return nn.Sequential(Slow(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, num_classes))


def broken_helper(options):
    raise KeyError("the user's own mistake")
"""

DATA = """
import torch


def load(options):  # Gaussian inputs labelled by a fixed random linear teacher: (N, 32), 4 classes
    gen = torch.Generator().manual_seed(options["seed"])
    x = torch.randn(1500, 32, generator=gen)
    y = (x @ torch.randn(32, 4, generator=gen)).argmax(1)
    n = options["n_test"]
    return x[n:], y[n:], x[:n], y[:n]
"""

# batch 4 over 1,200 examples: 300 steps an epoch, a checkpoint at each epoch's measurement
SPEC = """
default_sweep = "own"

[defaults]
model = "own_net:build"
dataset = "own_data:load"
dataset_options = { n_test = 300, seed = 0 }
train_size = 1200
epochs = 3
batch_size = 4
lr = 0.05
weight_decay = 0.01
lr_milestones = []
measure_every = 1
seeds = [3]

[sweeps.own]
model_options = { hidden = 12 }

[sweeps.broken]
model_options = { fail = true }
"""
# two runs at once, one torch thread each: a tiny model on two threads of a busy CPU is slower
RUN = ("--headless", "--devices", "cpu", "--per-device", "2")


def project(folder: Path, spec: str = SPEC) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"own_net.py": NET, "own_data.py": DATA, "experiments.toml": spec}.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder / "experiments.toml"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep, run once without interruption."""
    folder = tmp_path_factory.mktemp("reference")
    spec = str(project(folder / "project"))
    done = rankbias(
        "run", spec, "--sweep", "own", "--sweep", "broken", "--store", str(folder / "store"), *RUN
    )
    assert done.returncode == 1 and "1 failed" in done.stdout + done.stderr, done.stdout + done.stderr
    return folder / "store"


def test_validate_and_run_refuse_a_reference_that_does_not_import(tmp_path: Path) -> None:
    spec = project(tmp_path, SPEC.replace("own_net:build", "own_nett:build"))
    for args in (("validate", str(spec)), ("run", str(spec), "--store", str(tmp_path / "store"), *RUN)):
        done = rankbias(*args, env={"COLUMNS": "250"})
        assert done.returncode == 2, done.stderr
        assert "defaults.model: cannot import 'own_nett:build' (No module named 'own_nett')" in done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "store" / "rankbias.sqlite").exists()  # nothing started


def test_the_user_s_model_trains_and_a_failing_builder_fails_alone_with_its_traceback(
    reference: Path,
) -> None:
    with Store(reference, create=False) as s:
        runs = {r.config.model_options.get("fail", False): r for r in s.runs()}
        good, bad = runs[False], runs[True]
        assert (good.status, bad.status) == ("done", "failed")
        assert [seg.mode for seg in s.segments(good.run_id)] == ["eager"]  # user models run single
        assert {row.layer for row in s.spectra(good.run_id)} == {"1", "3"}  # not the classifier "5"
    shown = rankbias("show", bad.run_id, "--store", str(reference), env={"COLUMNS": "250"}).stdout
    assert "model builder 'own_net:build' raised KeyError" in shown
    assert 'own_net.py", line' in shown and "in broken_helper" in shown
    good_shown = rankbias("show", good.run_id, "--store", str(reference), env={"COLUMNS": "250"}).stdout
    assert "code model own_net:build (own_net.py, sha256 " in good_shown and '{"hidden": 12}' in good_shown
    assert "dataset own_data:load (own_data.py, sha256 " in good_shown


def test_claims_plot_and_report_read_the_user_s_runs(reference: Path, tmp_path: Path) -> None:
    own = ("--store", str(reference), "--sweep", "own")
    assert rankbias("claims", *own).returncode == 0
    assert rankbias("plot", *own, "-o", str(tmp_path / "curves.svg")).returncode == 0
    done = rankbias("report", *own, "-o", str(tmp_path / "report.md"))
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "report.md").read_text()  # Markdown-escaped: own\_net.py
    assert re.search(r"\| user code \| model own\\_net:build \\\(own\\_net\.py, sha256 [0-9a-f]{12}", report)


def test_an_interrupted_sweep_resumes_to_the_same_numbers(reference: Path, tmp_path: Path) -> None:
    spec, store = project(tmp_path / "project"), tmp_path / "store"
    args = [RANKBIAS, "run", str(spec), "--store", str(store), *RUN]
    slow = os.environ | {"OWN_NET_SLOW": "0.005"}  # 1.5 s an epoch: interrupted before its end
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slow)
    wait_for(lambda: checkpointed(store, proc), 120, "a checkpoint")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 143
    with Store(store, create=False) as s:
        assert [r.status for r in s.runs()] == ["stopped"]
    again = rankbias("run", str(spec), "--store", str(store), *RUN)
    assert again.returncode == 0, again.stderr
    resumed = results(store)
    assert len(resumed) == 1 and resumed.items() <= results(reference).items()
    with Store(store, create=False) as s:
        (run,) = s.runs()
        assert [seg.from_step > 0 for seg in s.segments(run.run_id)] == [False, True]  # resumed, not redone

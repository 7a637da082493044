"""``rankbias run --backend ray`` on the two-node cluster: the golden sweep's exports (fused packs)
are bitwise those the local backend gives on this machine (both made in the test: floats are
bitwise only within one machine), and within the portable tolerance of the recorded ones
(tests/data/golden); a run no node can take is refused at once; ``--dry-run`` names the cluster
and the packs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from rankbias_tui import scheduler
from rankbias_tui.scheduler import SchedulerOptions
from rankbias_tui.spec import load_spec
from rankbias_tui.store import Store, StorePaths
from rankbias_tui.sweep import expand
from tests.support import golden, runs

GOLDEN = golden.GOLDEN


@pytest.fixture(scope="module")
def local_packs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The golden sweep in fused packs on the local backend, on this machine: the reference."""
    return golden.exports(tmp_path_factory.mktemp("local"), "packs")


def test_the_golden_sweep_on_ray_gives_the_local_backend_s_exports(
    ray_cluster, tmp_path: Path, local_packs: dict[str, str]
) -> None:
    mode = "packs"  # single runs: test_ray_scheduler's node-removal test compares them with the local backend
    got = golden.exports(tmp_path, mode, ("--backend", "ray", "--ray-address", ray_cluster.address))
    golden.assert_bitwise(got, local_packs, "Ray against local")
    golden.assert_portable(got, golden.recorded(mode), "Ray against the recorded exports")


def rankbias(*args: str) -> subprocess.CompletedProcess[str]:
    return runs.rankbias(*args, timeout=120)


def test_a_run_no_node_can_take_is_refused_not_left_waiting(ray_cluster, tmp_path: Path) -> None:
    out = rankbias("run", str(GOLDEN / "spec.toml"), "--store", str(tmp_path), "--headless",
                   "--devices", "cuda", "--backend", "ray", "--ray-address", ray_cluster.address)  # fmt: skip
    assert out.returncode == 2
    assert "no node of the Ray cluster has the 1 CPU, 1 GPU that one run asks for" in out.stderr + out.stdout


def test_dry_run_names_the_cluster_and_the_packs(ray_cluster, tmp_path: Path) -> None:
    out = rankbias("run", str(GOLDEN / "spec.toml"), "--store", str(tmp_path), "--dry-run", "--devices", "cpu",
                   "--backend", "ray", "--ray-address", ray_cluster.address)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (
        "Ray cluster: 3 node(s), 2 CPUs" in out.stdout
        and "each task asks for 1 CPU, 2 at a time" in out.stdout
    )
    assert "pack of 2" in out.stdout
    assert not (tmp_path / "rankbias.sqlite").exists()  # nothing written


def test_a_background_scheduler_trains_on_the_cluster_with_the_same_numbers(
    ray_cluster, tmp_path: Path, local_packs: dict[str, str]
) -> None:
    with Store(tmp_path, create=True) as store:
        scheduler.launch(store, expand(load_spec(GOLDEN / "spec.toml"), ["golden"]))
    options = SchedulerOptions("cpu", backend="ray", ray_address=ray_cluster.address, idle_exit_s=0.5)
    proc = scheduler.spawn(tmp_path, options)
    assert proc.wait(180) == 0, StorePaths.of(tmp_path).log.read_text()[-3000:]
    with Store(tmp_path) as store:
        runs = store.runs()
        assert len(runs) == 4 and {r.status for r in runs} == {"done"}
        assert {r.device for r in runs} == {"cpu@127.0.0.1"}
    got = golden.read_exports(str(tmp_path))  # packs of 2, as in the golden sweep
    golden.assert_bitwise(got, local_packs, "background scheduler on Ray against local")


TINY_SPEC = """
[sweeps.t]
dataset = "digits"
model = "mlp"
depth = 2
width = 8
batch_size = 256
epochs = 1
lr_milestones = []
seeds = [1]
"""


def test_no_address_starts_a_private_instance_even_when_another_cluster_is_there(
    ray_cluster, tmp_path: Path
) -> None:
    """Issue 22, 8: Ray's address file names the session's cluster (``RAY_TMPDIR``); a run without
    ``--ray-address`` and without that cluster's token must start its own instance, not join it
    (before: ``Connecting to existing Ray cluster`` and an AuthenticationError)."""
    spec = tmp_path / "experiments.toml"
    spec.write_text(TINY_SPEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    # Its own Ray temp dir (a second instance in the session's would move the session's "latest"
    # link under the cluster the later tests add nodes to), holding an address file that names the
    # session's cluster, as `ray start` leaves one (Ray reads it where its temp dir is: RAY_TMPDIR/ray).
    ray_tmp = Path(tempfile.mkdtemp(prefix="rbpriv-"))  # short: socket paths must fit in 107 bytes
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text(ray_cluster.address)
    env["RAY_TMPDIR"] = str(ray_tmp)
    args = f"run {spec} --store {tmp_path / 'store'} --headless --devices cpu --backend ray".split()
    try:
        out = subprocess.run([runs.RANKBIAS, *args], env=env, capture_output=True, text=True, timeout=180)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Ray cluster: 1 node(s)" in out.stdout and "Finished: 1 done" in out.stdout
    assert "Connecting to existing Ray cluster" not in out.stdout + out.stderr
    assert not (tmp_path / ".ray" / "auth_token").exists()  # the private token lives in no file

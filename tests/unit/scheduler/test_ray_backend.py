"""The Ray backend without a cluster: what a task asks for, how many fit, and its token file kept private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rankbias_tui.scheduler import ray_backend, ray_files
from rankbias_tui.scheduler.devices import DeviceError
from rankbias_tui.scheduler.ray_plan import RayUnfit, Resources, plan

CPU_NODES = [{"CPU": 4.0}, {"CPU": 2.0}]
GPU_NODES = [{"CPU": 8.0, "GPU": 2.0}, {"CPU": 2.0}]


def test_cpu_runs_take_one_cpu_and_one_thread_each() -> None:
    slots, res = plan("cpu", None, GPU_NODES)
    assert res == Resources(1.0, 0.0) and slots.capacity == 10 and slots.threads == 1
    assert slots.devices == ("ray:cpu",)


def test_auto_uses_gpus_when_the_cluster_has_them() -> None:
    assert plan("auto", None, CPU_NODES)[1].num_gpus == 0
    slots, res = plan("auto", None, GPU_NODES)
    assert res == Resources(1.0, 1.0) and slots.capacity == 2 and slots.devices == ("ray:cuda",)


def test_per_device_shares_a_gpu_between_small_tasks() -> None:
    slots, res = plan("cuda", 4, GPU_NODES)
    assert res.num_gpus == 0.25 and slots.capacity == 8


def test_a_request_no_node_can_meet_is_refused_with_the_nodes_it_saw() -> None:
    with pytest.raises(RayUnfit, match=r"1 CPU, 1 GPU.*4 CPU, 0 GPU.*--devices cpu"):
        plan("cuda", None, CPU_NODES)
    with pytest.raises(RayUnfit, match="nodes: none"):
        plan("cpu", None, [])


def test_gpu_ids_are_ray_s_to_assign() -> None:
    with pytest.raises(DeviceError, match="use --devices cuda"):
        plan("cuda:0,1", None, GPU_NODES)


def test_a_task_no_live_node_can_take_fails_its_runs_at_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    from rankbias_tui.protocol import WorkerEnded
    from rankbias_tui.scheduler.launcher import Launch
    from rankbias_tui.spec import RunConfig
    from rankbias_tui.sweep import PlannedRun

    monkeypatch.setattr(ray_backend, "alive_nodes", lambda: [{"CPU": 8.0}])  # the GPU node has left
    launcher = ray_backend.RayLauncher(Resources(1.0, 1.0))
    run = PlannedRun("r1", "t", RunConfig(dataset="digits"))
    host = launcher.start_run(run, None, "ray:cuda", Launch(None, tmp_path, 1, True))
    ended = host.conn.recv()
    assert isinstance(ended, WorkerEnded) and ended.status == "failed"
    assert "no live node of the Ray cluster has the 1 CPU, 1 GPU a run asks for" in ended.error
    host.proc.join(5)
    assert not host.proc.is_alive() and host.proc.exitcode == 1


def test_checkpoint_bytes_travel_with_their_digest_and_are_checked_on_arrival(tmp_path) -> None:
    import hashlib

    from rankbias_tui import checkpoints
    from rankbias_tui.protocol import Checkpoint, RunWarning
    from rankbias_tui.scheduler.launcher import Launch
    from rankbias_tui.scheduler.ray_backend import _job_run
    from rankbias_tui.scheduler.ray_files import store_file as _store_file
    from rankbias_tui.scheduler.ray_task import CheckpointFile
    from rankbias_tui.spec import RunConfig
    from rankbias_tui.sweep import PlannedRun

    rid, data = "0123456789ab", b"PK checkpoint bytes"
    sent = Checkpoint(rid, 40, hashlib.sha256(data).hexdigest())
    (tmp_path / "checkpoints").mkdir()
    root = tmp_path / "checkpoints"
    assert _store_file(root, CheckpointFile(sent, data)) == sent  # stored, then acknowledged
    stored = checkpoints.path(root / rid, 40)
    assert stored.read_bytes() == data
    damaged = _store_file(root, CheckpointFile(Checkpoint(rid, 50, sent.digest), data + b"!"))
    assert isinstance(damaged, RunWarning) and "came back from the node damaged" in damaged.text
    assert checkpoints.steps(root / rid) == [40]  # neither stored nor acknowledged

    checkpoints.path(root / rid, 30).write_bytes(b"earlier")
    launch = Launch(None, root, 1, False, lambda run_id: {40: sent.digest, 30: "c" * 64})
    job = _job_run(launch, PlannedRun(rid, "s", RunConfig(dataset="digits")), 40)
    assert job.resume_step == 40 and job.files == ((40, data), (30, b"earlier"))  # best first
    assert dict(job.digests) == {40: sent.digest, 30: "c" * 64}  # the node verifies against these


def test_a_resume_whose_checkpoints_are_not_there_is_refused_naming_the_path(tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray")
    from rankbias_tui.protocol import WorkerEnded
    from rankbias_tui.scheduler.launcher import Launch
    from rankbias_tui.spec import RunConfig
    from rankbias_tui.sweep import PlannedRun

    monkeypatch.setattr(ray_backend, "alive_nodes", lambda: [{"CPU": 8.0}])
    launcher = ray_backend.RayLauncher(Resources(1.0, 0.0))
    run = PlannedRun("0123456789ab", "t", RunConfig(dataset="digits"))
    root = tmp_path / "checkpoints"  # not mounted yet
    host = launcher.start_run(run, 40, "ray:cpu", Launch(None, root, 1, True))
    ended = host.conn.recv()
    assert isinstance(ended, WorkerEnded) and ended.status == "failed"  # not started afresh on a node
    assert f"{root} does not exist; it needs {root / run.run_id / 'step-000000040.pt'}" in str(ended.error)
    host.proc.join(5)
    assert not root.exists()


def test_a_token_file_others_can_read_is_made_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 row 2: ``ray start`` writes ``~/.ray/auth_token`` 0644; whoever reads it can submit
    jobs as its owner. Before connecting to a cluster, rankbias makes it 0600 (and says so)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    assert ray_files.private_token_file() is None  # no file: nothing to do
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)
    assert ray_files.private_token_file() == token and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert ray_files.private_token_file() is None  # already private
    other = tmp_path / "elsewhere"
    other.write_text("secret")
    other.chmod(0o640)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(other))
    assert ray_files.private_token_file() == other and stat.S_IMODE(other.stat().st_mode) == 0o600


def test_a_ray_client_address_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    """Issue 22, 2: Ray Client cannot stream a task's events (every task failed on its first event);
    ``ray://`` is refused before anything is queued, saying how to run on the cluster instead."""
    from typer.testing import CliRunner

    from rankbias_tui.cli import app

    spec = tmp_path / "experiments.toml"
    spec.write_text('[sweeps.s]\ndataset = "digits"\n')
    args = ["run", str(spec), "--store", str(tmp_path / "store"), "--headless", "--backend", "ray"]
    result = CliRunner().invoke(app, [*args, "--ray-address", "ray://head:10001"])
    assert result.exit_code == 2 and "Ray Client (ray://) cannot stream" in result.output
    assert "--ray-address auto" in result.output and not (tmp_path / "store").exists()


def test_a_checkpoint_the_relay_cannot_store_ends_as_a_local_write_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19 row 8: on Ray, a full disk sends ``DiskFull`` (the scheduler stops cleanly and
    requeues, as locally) and leaves no ``*.tmp``; a deleted store is not recreated by the relay."""
    import errno
    import hashlib
    from types import SimpleNamespace

    from rankbias_tui.protocol import Checkpoint, DiskFull, WorkerEnded, WorkerLost
    from rankbias_tui.scheduler.ray_files import store_file as _store_file
    from rankbias_tui.scheduler.ray_files import write_failed
    from rankbias_tui.scheduler.ray_task import CheckpointFile

    rid, data = "0123456789ab", b"PK checkpoint bytes"
    item = CheckpointFile(Checkpoint(rid, 40, hashlib.sha256(data).hexdigest()), data)
    root = tmp_path / "store" / "checkpoints"
    root.parent.mkdir()

    def full(self: Path, _data: bytes) -> int:
        self.write_text("")  # a partial file, then the error
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError) as info:
        _store_file(root, item)
    assert list(root.rglob("*")) == [root / rid]  # the run's directory, and no *.tmp in it
    sent: list[object] = []
    write_failed(SimpleNamespace(send=sent.append), root, info.value)
    assert isinstance(sent[0], DiskFull) and sent[0].error == "No space left on device"
    assert isinstance(sent[1], WorkerEnded) and "no space left" in (sent[1].error or "")

    (root / rid).rmdir()
    root.rmdir()
    root.parent.rmdir()  # the store deleted while the task trained
    with pytest.raises(FileNotFoundError) as gone:
        _store_file(root, item)
    assert not root.parent.exists()  # not recreated
    sent.clear()
    write_failed(SimpleNamespace(send=sent.append), root, gone.value)
    assert len(sent) == 1 and isinstance(sent[0], WorkerLost) and "is gone" in sent[0].reason

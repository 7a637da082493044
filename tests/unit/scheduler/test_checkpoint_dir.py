"""``--checkpoint-dir``: what it may name, checking it from the driver, and the file operations a
node does there - a plain path, or a URI through pyarrow.fs (``file://`` here: the code path of
``s3://`` and ``gs://``, on this machine's disk)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui import checkpoints
from rankbias_tui.cli import app
from rankbias_tui.scheduler import checkpoint_dir
from rankbias_tui.scheduler.checkpoint_dir import CheckpointDir, CheckpointDirError, parse

RUN = "0123456789ab"


def test_a_path_is_made_absolute_and_a_uri_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse("ckpt").uri == str(tmp_path / "ckpt")  # a relative path would differ on each node
    assert parse(" ~/c ").uri == str(Path.home() / "c")
    assert parse("s3://bucket/sweep").uri == "s3://bucket/sweep"
    assert parse("s3://bucket/sweep").local is None and parse("/shared/c").local == Path("/shared/c")
    with pytest.raises(CheckpointDirError, match="empty"):
        parse("  ")


def test_a_uri_without_pyarrow_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    with pytest.raises(
        CheckpointDirError, match=r"gs:// URI is reached through pyarrow.fs.*pip install pyarrow"
    ):
        parse("gs://bucket/sweep")
    assert parse("/shared/c").uri == "/shared/c"  # a plain path needs no pyarrow


def test_files_are_laid_out_as_the_store_s_and_ids_checked() -> None:
    assert CheckpointDir("/shared/c").file(RUN, 100) == f"/shared/c/{RUN}/step-000000100.pt"
    assert CheckpointDir("s3://b/c/").file(RUN, 7) == f"s3://b/c/{RUN}/step-000000007.pt"
    for place in (CheckpointDir("/shared/c"), CheckpointDir("s3://b/c")):
        with pytest.raises(checkpoints.UnsafeRunId):
            place.run("../../etc")


def test_prepare_makes_the_directory_or_says_why_it_cannot(tmp_path: Path) -> None:
    assert "nodes write there directly" in checkpoint_dir.prepare(CheckpointDir(str(tmp_path / "a" / "b")))
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(CheckpointDirError, match=f"--checkpoint-dir {tmp_path}/file/c cannot be used"):
        checkpoint_dir.prepare(CheckpointDir(str(tmp_path / "file" / "c")))
    assert "pyarrow" in checkpoint_dir.prepare(parse(f"file://{tmp_path}/u"))
    assert (tmp_path / "u").is_dir()


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_store_fetch_prune_and_discard_a_run_s_files(tmp_path: Path, uri: bool) -> None:
    place = parse(f"file://{tmp_path}" if uri else str(tmp_path))
    for step in (0, 10, 20, 30):
        location = place.file(RUN, step)
        if uri:
            checkpoint_dir.upload(location, b"step %d" % step)
        else:
            checkpoints.write_atomic(b"step %d" % step, Path(location))
    assert checkpoint_dir.fetch(place.file(RUN, 10)) == b"step 10"
    assert checkpoint_dir.fetch(place.file(RUN, 40)) is None
    checkpoint_dir.prune(place.run(RUN), keep=20)  # the latest before 20 stays
    assert checkpoints.steps(tmp_path / RUN) == [10, 20, 30]
    (tmp_path / "other").mkdir()
    checkpoint_dir.discard(str(tmp_path / "other"), RUN)  # not the run's directory: left alone
    checkpoint_dir.discard(place.run(RUN), RUN)
    assert not (tmp_path / RUN).exists() and (tmp_path / "other").exists()


def test_the_cli_refuses_a_checkpoint_dir_it_cannot_use(tmp_path: Path) -> None:
    local = CliRunner().invoke(app, ["run", str(tmp_path / "x.toml"), "--checkpoint-dir", str(tmp_path)])
    assert local.exit_code == 2 and "--checkpoint-dir is for --backend ray" in local.output
    empty = CliRunner().invoke(app, ["run", "x.toml", "--backend", "ray", "--checkpoint-dir", ""])
    assert empty.exit_code == 2 and "--checkpoint-dir: empty" in empty.output

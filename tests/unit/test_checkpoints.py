"""Checkpoint file names, atomic writes, keep-two pruning and cleanup (rankbias_tui.checkpoints)."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from rankbias_tui import checkpoints

RID = "0123456789ab"


def test_names(tmp_path: Path) -> None:
    directory = checkpoints.run_directory(tmp_path, RID)
    assert directory == tmp_path / RID
    final = checkpoints.path(directory, 42)
    assert final.name == "step-000000042.pt"
    assert checkpoints.partial(final).name == "step-000000042.tmp"


@pytest.mark.parametrize("bad", ["abc123", "/etc", "../0123456789ab", "0123456789AB", "0123456789ab/..", ""])
def test_only_run_ids_name_directories(tmp_path: Path, bad: str) -> None:
    with pytest.raises(checkpoints.UnsafeRunId):
        checkpoints.run_directory(tmp_path, bad)


def test_a_symlink_out_of_the_store_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "checkpoints", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / RID).symlink_to(outside)
    with pytest.raises(checkpoints.UnsafeRunId, match="outside"):
        checkpoints.run_directory(root, RID)


def test_steps_and_prune_keep_the_previous_acknowledged_one(tmp_path: Path) -> None:
    for step in (30, 0, 10, 20):
        checkpoints.path(tmp_path, step).write_bytes(b"x")
    checkpoints.partial(checkpoints.path(tmp_path, 40)).write_bytes(b"half")  # never counted
    (tmp_path / "notes.txt").write_text("kept")
    assert checkpoints.steps(tmp_path) == [0, 10, 20, 30]
    checkpoints.prune(tmp_path, keep=20)
    assert checkpoints.steps(tmp_path) == [10, 20, 30]  # 10: the one to fall back to; 30: not acked yet
    assert checkpoints.fallbacks(tmp_path, 20) == [20, 10]
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "step-000000040.tmp").exists()
    assert checkpoints.steps(tmp_path / "missing") == []


def test_write_atomic_makes_the_run_directory_but_never_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    final = checkpoints.path(store / "checkpoints" / RID, 5)
    checkpoints.write_atomic(b"payload", final)
    assert final.read_bytes() == b"payload" and not checkpoints.partial(final).exists()
    gone = checkpoints.path(tmp_path / "deleted" / "checkpoints" / RID, 5)
    with pytest.raises(FileNotFoundError):
        checkpoints.write_atomic(b"payload", gone)
    assert not (tmp_path / "deleted").exists()


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final = checkpoints.path(tmp_path / RID, 5)

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as info:
        checkpoints.write_atomic(b"payload", final)
    assert info.value.errno == 28 and info.value.filename == str(checkpoints.partial(final))
    assert list((tmp_path / RID).iterdir()) == []


def test_clean_partial_removes_only_temporary_files(tmp_path: Path) -> None:
    run = tmp_path / RID
    run.mkdir()
    checkpoints.path(run, 1).write_bytes(b"x")
    checkpoints.partial(checkpoints.path(run, 2)).write_bytes(b"half")
    assert checkpoints.clean_partial(tmp_path) == [checkpoints.partial(checkpoints.path(run, 2))]
    assert checkpoints.steps(run) == [1] and len(list(run.iterdir())) == 1


def archive(payload: bytes) -> bytes:
    """A zip of stored records, as ``torch.save`` writes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", b"pickle")
        z.writestr("archive/data/0", payload)
    return buffer.getvalue()


def test_a_flipped_byte_is_damage_by_the_digest_or_else_by_the_archive_crcs(tmp_path: Path) -> None:
    data = archive(bytes(range(256)) * 4)
    final = checkpoints.path(tmp_path / RID, 7)
    sent = checkpoints.write_atomic(data, final)
    assert sent == hashlib.sha256(data).hexdigest() == checkpoints.digest(data)  # what the ack carries
    assert checkpoints.read_verified(final, sent) == data and checkpoints.read_verified(final, None) == data
    flipped = bytearray(data)
    at = data.index(bytes(range(256)))  # inside the stored weights
    flipped[at + 100] ^= 0x01
    final.write_bytes(bytes(flipped))
    with pytest.raises(checkpoints.Damaged, match="SHA-256 is .* the store acknowledged"):
        checkpoints.read_verified(final, sent)
    with pytest.raises(checkpoints.Damaged, match="CRC of archive/data/0"):
        checkpoints.read_verified(final, None)  # acknowledged before digests: the zip's own CRCs
    final.write_bytes(data[:200])
    with pytest.raises(checkpoints.Damaged, match="not a checkpoint archive"):
        checkpoints.read_verified(final, None)
    final.unlink()
    with pytest.raises(FileNotFoundError):
        checkpoints.read_verified(final, sent)


def test_checkpoints_not_there_are_missing_with_the_path_never_none(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    run = root / RID
    needed = str(checkpoints.path(run, 20))
    with pytest.raises(checkpoints.CheckpointMissing, match=f"{root} does not exist; it needs {needed}"):
        checkpoints.available(run, 20)  # an automount not there yet: not "no checkpoint"
    root.mkdir()
    with pytest.raises(checkpoints.CheckpointMissing, match=f"{run} does not exist.*acknowledged at step 20"):
        checkpoints.available(run, 20)  # an empty mount point
    run.mkdir()
    checkpoints.path(run, 30).write_bytes(b"not acknowledged")
    with pytest.raises(checkpoints.CheckpointMissing, match=f"{run} holds none of its checkpoints"):
        checkpoints.available(run, 20)
    checkpoints.path(run, 10).write_bytes(b"x")
    assert checkpoints.available(run, 20) == [10]  # the acknowledged one gone, the one before it here
    checkpoints.path(run, 20).write_bytes(b"x")
    assert checkpoints.available(run, 20) == [20, 10]

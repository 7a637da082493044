"""Issue 22, 6: a store on a network file system (NFS, Lustre, ...) is warned about at ``run``:
SQLite's locks and write-ahead log are not safe there."""

from __future__ import annotations

from pathlib import Path

from rankbias_tui.store.files import file_system, network_warning


def mounts(tmp_path: Path) -> str:
    return (
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {tmp_path}/lab nfs4 rw,relatime 0 0\n"
        f"lustre@o2ib:/fs {tmp_path}/scratch lustre rw 0 0\n"
        f"tmpfs {tmp_path}/lab/local tmpfs rw 0 0\n"
    )


def test_the_deepest_mount_holding_the_store_decides(tmp_path: Path) -> None:
    text = mounts(tmp_path)
    for mount in ("lab/local", "scratch"):
        (tmp_path / mount).mkdir(parents=True)
    assert file_system(tmp_path / "lab" / "runs", text) == "nfs4"  # not there yet: its parent's
    assert file_system(tmp_path / "lab" / "local" / "runs", text) == "tmpfs"
    assert file_system(tmp_path / "elsewhere", text) == "ext4"
    warning = network_warning(tmp_path / "scratch" / "runs", text)
    assert warning is not None and "(lustre)" in warning and "local disk" in warning
    assert network_warning(tmp_path / "lab" / "local" / "runs", text) is None
    assert network_warning(tmp_path, "") is None  # nothing known: no warning

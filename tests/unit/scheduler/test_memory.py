"""The memory the scheduler sizes CPU packs from (scheduler.memory): /proc/meminfo, a cgroup's
limit (v2 and v1), the OOM killer's count; read from stand-in files."""

from __future__ import annotations

from pathlib import Path

from rankbias_tui.scheduler import memory

GIB = 1 << 30


def fake_proc(tmp_path: Path, available_kib: int, cgroup: str, oom_kill: int | None = 3) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal:       33554432 kB\nMemAvailable:   {available_kib} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    vmstat = "pgfault 12\n" + (f"oom_kill {oom_kill}\n" if oom_kill is not None else "")
    (proc / "vmstat").write_text(vmstat)
    return proc


def test_meminfo_without_a_cgroup_limit(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 16 * 1024 * 1024, "0::/user.slice\n")
    root = tmp_path / "cgroup"
    (root / "user.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "user.slice" / "memory.max").write_text("max\n")
    assert memory.available_bytes(proc, root) == 16 * GIB
    assert memory.oom_kills(proc) == 3


def test_a_cgroup_v2_limit_on_an_ancestor_is_what_counts(tmp_path: Path) -> None:
    """``systemd-run -p MemoryMax=1.2G``: 1.2 GB whatever the machine has; cache is reclaimable."""
    proc = fake_proc(tmp_path, 16 * 1024 * 1024, "0::/limited.slice/job.scope\n")
    root = tmp_path / "cgroup"
    job = root / "limited.slice" / "job.scope"
    job.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("memory\n")
    (root / "limited.slice" / "memory.max").write_text(f"{1_200_000_000}\n")
    (root / "limited.slice" / "memory.current").write_text(f"{500_000_000}\n")
    (root / "limited.slice" / "memory.stat").write_text(f"anon 1\ninactive_file {100_000_000}\n")
    (job / "memory.max").write_text("max\n")
    assert memory.available_bytes(proc, root) == 1_200_000_000 - 400_000_000


def test_a_cgroup_v1_limit(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 16 * 1024 * 1024, "4:memory:/docker/abc\n1:cpu:/docker/abc\n", oom_kill=None)
    group = tmp_path / "cgroup" / "memory" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "memory.limit_in_bytes").write_text(f"{2 * GIB}\n")
    (group / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    (tmp_path / "cgroup" / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory.available_bytes(proc, tmp_path / "cgroup") == GIB
    assert memory.oom_kills(proc) is None  # a kernel without the count


def test_nothing_readable_is_unknown_and_sizes_read_as_people_write_them(tmp_path: Path) -> None:
    assert memory.oom_kills(tmp_path) is None
    assert memory.describe(1_200_000_000) == "1.2 GB" and memory.describe(350_000_000) == "350.0 MB"
    assert memory.describe(None) == "an unknown amount"

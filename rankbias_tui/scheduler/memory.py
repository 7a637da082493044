"""How much memory this machine can still give, and whether the kernel killed a process for lack of
it (no torch: the scheduler asks before it starts a CPU pack, and again when a worker dies).

Owns: ``available_bytes`` (the least of ``/proc/meminfo``'s MemAvailable, or ``os.sysconf``'s
available pages where there is no ``/proc``, and the headroom of every memory-limited cgroup this
process is in: a container's or a ``systemd-run -p MemoryMax=`` limit is what the OOM killer
enforces, whatever the machine has), ``oom_kills`` (the kernel's count of processes its OOM killer
ended, ``/proc/vmstat``'s ``oom_kill``: it counts a cgroup's kills too) and ``describe``. Does not
own what is done with them (``scheduler.packing`` sizes packs, ``scheduler.endings`` splits a
pack whose worker the OOM killer took).
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def available_bytes(proc: Path = PROC, cgroup: Path = CGROUP) -> int | None:
    """Bytes that can be allocated now without swapping or meeting a cgroup limit; None if unknown."""
    figures = [x for x in (_meminfo_available(proc), *_cgroup_headroom(proc, cgroup)) if x is not None]
    return max(0, min(figures)) if figures else None


def oom_kills(proc: Path = PROC) -> int | None:
    """How many processes the kernel's OOM killer has ended since boot (None: not known here)."""
    try:
        for line in (proc / "vmstat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def describe(size: int | None) -> str:
    """``1.2 GB`` (decimal units, as ``free -h --si`` and the issue reports say)."""
    if size is None:
        return "an unknown amount"
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 1e3:.0f} kB"


def _meminfo_available(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (macOS): free pages, without the reclaimable cache MemAvailable counts
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_headroom(proc: Path, root: Path) -> list[int | None]:
    """Limit minus usage (reclaimable file cache not counted as used) of this process's memory
    cgroup and each of its ancestors that has a limit (v2, or v1's memory controller)."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    out: list[int | None] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (root / "cgroup.controllers").exists():  # v2, unified
            out += [_headroom(d, "memory.max", "memory.current", "inactive_file") for d in _up(root, path)]
        elif "memory" in controllers.split(","):  # v1
            base = root / "memory"
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            out += [_headroom(d, *names) for d in _up(base, path)]
    return out


def _up(root: Path, path: str) -> list[Path]:
    """The cgroup directory of ``path`` under ``root`` and its ancestors up to ``root``, where seen
    (a container sees its own cgroup as the root of the mount)."""
    parts = [p for p in path.strip("/").split("/") if p]
    dirs = [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]
    return [d for d in dirs if d.is_dir()]


def _headroom(directory: Path, limit_file: str, usage_file: str, cache_key: str) -> int | None:
    try:
        limit_text = (directory / limit_file).read_text().strip()
        if limit_text == "max" or int(limit_text) >= UNLIMITED:
            return None
        usage = int((directory / usage_file).read_text())
    except (OSError, ValueError):
        return None
    cache = 0
    try:
        for line in (directory / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == cache_key:
                cache = int(value)
                break
    except (OSError, ValueError):
        pass
    return int(limit_text) - max(0, usage - cache)

"""Who trains a running run: the scheduler process, named so that a dead one is never mistaken for
a live one (stdlib only; no torch, no textual).

Owns: the owner token a scheduler writes on every run it starts (``token``: ``"PID:START"``, START
being the process's start time in clock ticks since boot, field 22 of ``/proc/PID/stat``), and
``alive``, which tells whether that very process still runs. A pid alone is not enough: after a
``kill -9`` or a reboot the number is soon reused by an unrelated process. Where ``/proc`` is
missing (macOS) START is empty and ``alive`` falls back to "a process with that pid exists".
Does not own: what happens to a run whose owner is gone (``store`` shows it as interrupted,
``scheduler.recovery`` adopts it).
"""

from __future__ import annotations

import os
from functools import lru_cache


def start_time(pid: int) -> str:
    """The start time of process ``pid`` ("" if unknown: no /proc, no such process, or a zombie:
    a killed process its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    # "pid (comm) state ppid ..." where comm may hold spaces and parentheses: split after the last ")".
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] == "Z":
        return ""
    return fields[19]  # field 22 of the whole line


@lru_cache(maxsize=1)
def _own(pid: int) -> str:
    return f"{pid}:{start_time(pid)}"


def token(pid: int | None = None) -> str:
    """The owner token of process ``pid`` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return _own(pid) if pid == os.getpid() else f"{pid}:{start_time(pid)}"


def pid_of(owner: str) -> int | None:
    """The pid part of an owner token (None if it is not one)."""
    head = owner.partition(":")[0]
    return int(head) if head.isdigit() else None


def alive(owner: str) -> bool:
    """True while the process that ``owner`` names runs (the same process, not its pid's heir)."""
    pid = pid_of(owner)
    if pid is None or pid <= 0:
        return False
    started = owner.partition(":")[2]
    if started and os.path.isdir("/proc/self"):
        return start_time(pid) == started  # "" for a zombie or a vanished process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True

"""Which Ray cluster a driver joins, and whether its head still answers (no ray here).

Owns: ``own_cluster_address`` (what ``--ray-address auto`` means: the cluster ``ray start`` last
started on this machine, and only if this user started it: on a shared node another user's cluster
is joined only when named), ``HeadWatch`` (a plain TCP probe of the head's GCS port, in a thread of
its own: when the head is gone every Ray call of the driver blocks until Ray ends the process after
a minute, so the scheduler must learn it without asking Ray) and ``ClusterLost``, the stop it
causes.

Does not own: connecting (``ray_backend.connect``) or stopping the runs (``service.shutdown``).
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import threading
import time
from pathlib import Path

from .devices import BackendError
from .faults import Stopped

HEAD_LOST_S = 10.0  # unanswered this long (Ray itself gives up after 60 s and ends the process)
PROBE_S = 1.0


class ClusterLost(Stopped):
    """The Ray cluster's head stopped answering: the driver cannot go on (nor even cancel tasks)."""

    exit_code = 3
    hard_exit = True  # Ray's own threads would block the exit, then abort the process
    advice = (
        "start the head again (or name another cluster with --ray-address), then run the same "
        "command again: every run resumes from its last checkpoint"
    )

    def __init__(self, address: str, silent_s: float):
        super().__init__(
            f"the Ray cluster's head at {address} has not answered for {silent_s:.0f} s "
            "(stopped, or its machine or network is gone)"
        )


def address_file() -> Path:
    """Where ``ray start`` writes the address of the cluster it started (as Ray looks for it)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def own_cluster_address() -> str:
    """``--ray-address auto``: ``RAY_ADDRESS`` if this user's environment sets it, else the address
    in Ray's address file if this user wrote it. ``BackendError`` (saying what to name instead)
    when there is none, or another user's cluster is all there is."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    path = address_file()
    try:
        info = path.lstat()
    except OSError:
        raise BackendError(
            f"--ray-address auto: no Ray cluster was started on this machine ({path} is not there; "
            "`ray start --head` writes it): start one, or name a cluster with --ray-address HOST:6379"
        ) from None
    address = path.read_text(errors="replace").strip() if stat.S_ISREG(info.st_mode) else ""
    if info.st_uid != os.getuid() or not address:
        owner = _user(info.st_uid)
        named = f"--ray-address {address}" if address else "--ray-address HOST:6379"
        raise BackendError(
            f"--ray-address auto: the Ray cluster on this machine{f' ({address})' if address else ''} "
            f"was started by {owner}, not by you; rankbias joins another user's cluster only when it "
            f"is named: {named}"
        )
    return address


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"user id {uid}"


class HeadWatch:
    """Probes ``address`` (host:port of the head's GCS) every ``PROBE_S`` from a daemon thread."""

    def __init__(self, address: str, lost_after: float = HEAD_LOST_S, probe_s: float = PROBE_S):
        host, _, port = address.rpartition(":")
        self.address, self._target = address, (host.strip("[]"), int(port))
        self.lost_after, self.probe_s = lost_after, probe_s
        self.silent_since: float | None = None  # monotonic time of the first unanswered probe
        self._thread = threading.Thread(target=self._loop, name="ray-head-watch", daemon=True)
        self._thread.start()

    def answering(self) -> bool:
        return self.silent_since is None

    def check(self) -> None:
        """``ClusterLost`` once the head has not answered for ``lost_after`` seconds."""
        since = self.silent_since
        if since is not None and time.monotonic() - since >= self.lost_after:
            raise ClusterLost(self.address, time.monotonic() - since)

    def probe(self) -> bool:
        try:
            with socket.create_connection(self._target, timeout=self.probe_s):
                return True
        except OSError:
            return False

    def _loop(self) -> None:
        while True:
            if self.probe():
                self.silent_since = None
            elif self.silent_since is None:
                self.silent_since = time.monotonic()
            time.sleep(self.probe_s)

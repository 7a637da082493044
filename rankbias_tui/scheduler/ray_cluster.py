"""Which Ray cluster a driver joins, connecting to it, and whether its head still answers.

Owns: ``connect`` (a private local instance, or an existing cluster) and the live nodes' resources
(``alive_nodes``), ``RayMissing`` (Ray not installed: how to get it), ``own_cluster_address`` (what ``--ray-address auto`` means: the cluster ``ray start`` last
started on this machine, and only if this user started it: on a shared node another user's cluster
is joined only when named), ``HeadWatch`` (a plain TCP probe of the head's GCS port, in a thread of
its own: when the head is gone every Ray call of the driver blocks until Ray ends the process after
a minute, so the scheduler must learn it without asking Ray) and ``ClusterLost``, the stop it
causes.

Does not own: what a task asks for or starting tasks (``ray_plan``, ``ray_backend``), or stopping
the runs (``service.shutdown``). Ray is imported only when a function here needs it.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .devices import BackendError
from .faults import Stopped
from .options import RAY_CLIENT
from .ray_files import private_token_file

INSTALL = "pip install 'rankbias-tui[ray]'"

HEAD_LOST_S = 10.0  # unanswered this long (Ray itself gives up after 60 s and ends the process)
PROBE_S = 1.0


class RayMissing(BackendError):
    """``--backend ray`` without Ray installed."""


def require_ray() -> None:
    """RayMissing, saying how to install it, unless Ray can be imported."""
    try:
        found = importlib.util.find_spec("ray") is not None
    except ValueError:  # a module "ray" without a spec (a stub in sys.modules)
        found = False
    if not found:
        raise RayMissing(f"the Ray backend needs Ray, which is not installed: {INSTALL}")


def import_ray() -> Any:
    require_ray()
    try:
        import ray
    except ImportError:
        raise RayMissing(f"the Ray backend needs Ray, which cannot be imported here: {INSTALL}") from None
    return ray


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


def connect(address: str | None, num_cpus: int | None = None) -> str:
    """Connect this process to Ray; return a one-line description of the cluster.

    No address: a new private instance on this machine (``num_cpus``: default all), on 127.0.0.1
    only, with no dashboard, never a cluster that Ray's address file names (``address="local"``: a
    ``ray start`` on this machine, someone else's or long gone, is not joined) and Ray's token
    authentication on with a fresh random token that only this process and the ones Ray starts for
    it hold (in their environment, never in a file others can read). ``auto`` or ``HOST:6379``: an
    existing cluster (``auto``: the one this user started on this machine, never another user's); a
    token file it uses is made owner-only first. ``ray://`` (Ray Client) is
    refused: it cannot stream a task's events back (``RAY_CLIENT``)."""
    if address is not None and address.startswith("ray://"):
        raise BackendError(RAY_CLIENT.format(address=address))
    if address == "auto":
        address = own_cluster_address()  # this user's own cluster only (``ray_cluster``)
    connected = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # this process already is
    if address is None and not connected:
        # before ray starts: Ray reads them then, and passes them on to the processes it starts
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    elif address is not None:
        private_token_file()
    ray = import_ray()
    if not ray.is_initialized():
        if address is None:
            ray.init(
                address="local",
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                num_cpus=num_cpus,
                log_to_driver=False,
            )
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise BackendError(f"cannot connect to the Ray cluster at {address}: {err}") from None
    total = ray.cluster_resources()
    nodes = len(alive_nodes())
    return f"Ray cluster: {nodes} node(s), {total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"


def alive_nodes() -> list[dict[str, float]]:
    """The resources of each live node."""
    return [n["Resources"] for n in import_ray().nodes() if n.get("Alive")]


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

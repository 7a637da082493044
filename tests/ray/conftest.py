"""Fixtures of the Ray backend tests: a real Ray cluster (a head and two worker nodes) on loopback.

These tests run only inside a loopback-only network namespace, where Ray cannot reach any network
but 127.0.0.1: ``tests/functional/test_ray_cluster.py`` re-executes pytest on this folder under
``unshare -n`` with ``RANKBIAS_RAY_NETNS=1``; anywhere else this folder collects nothing. The
fixture refuses to start Ray if any network interface besides ``lo`` is visible.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

INSIDE = os.environ.get("RANKBIAS_RAY_NETNS") == "1"
if not INSIDE:
    collect_ignore_glob = ["test_*.py"]  # run through the namespace runner only

NODE_CPUS = 1  # each worker node takes one single-threaded run (or pack) at a time


def interfaces() -> list[str]:
    """The network interfaces of this process's namespace (``/sys/class/net`` shows the host's)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":")[0].strip() for line in lines)


@pytest.fixture
def network_interfaces() -> list[str]:
    return interfaces()


def _start_cluster(workers: int):  # noqa: ANN202 - ray.cluster_utils.Cluster
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    for _ in range(workers):
        cluster.add_node(num_cpus=NODE_CPUS, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    return cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A head (no CPUs: it trains nothing) and two one-CPU worker nodes, token authentication on;
    this process is connected to it as the scheduler's driver."""
    assert INSIDE and interfaces() == ["lo"], "Ray tests must run in a loopback-only network namespace"
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)  # this cluster's, never written to ~/.ray
    ray_tmp = tempfile.mkdtemp(prefix="rbray-")  # short: Ray's socket paths must fit in 107 bytes
    os.environ["RAY_TMPDIR"] = ray_tmp
    os.environ.setdefault("RANKBIAS_DATA_DIR", str(Path.home() / ".cache" / "rankbias" / "data"))
    import ray

    cluster = _start_cluster(workers=2)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)

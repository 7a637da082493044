"""The harness itself: every Ray process of these tests listens on loopback only."""

from __future__ import annotations

import subprocess


def test_the_namespace_has_only_loopback(network_interfaces: list[str]) -> None:
    assert network_interfaces == ["lo"]


def test_ray_listens_on_loopback_only(ray_cluster) -> None:
    import ray

    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    listening = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
    local = [line.split()[3] for line in listening.splitlines()]
    assert local and all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in local), local

"""Runs the Ray backend tests (``tests/ray``) in a loopback-only network namespace
(``tests/support/ray_namespace.py``). Skipped where Ray is not installed or namespaces cannot be made
(not root)."""

from __future__ import annotations

import pytest

from tests.support import ray_namespace


@pytest.mark.slow
def test_ray_backend_in_a_loopback_namespace() -> None:
    problem = ray_namespace.problem()
    if problem:
        pytest.skip(problem)
    code, output = ray_namespace.result()
    print(output[-8000:])
    assert code == 0, output[-12000:]

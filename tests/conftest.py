"""Fixture stores shared by the test modules (built through the public Store API; no training).

- ``trend_store``: the constructed 18-run ``trend`` sweep of ``tests/support/trend_store.py``, whose
  spectra follow the paper (one per test session; tests must treat it as read-only).
- ``tui_store``: the two small sweeps in every state of ``tests/support/tui_store.py``, fresh for
  each test (the app's tests may change it).
Builders with options (other seeds, a mirrored trend, fewer runs) are imported from tests.support.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.trend_store import build_store
from tests.support.tui_store import make_store


@pytest.fixture(scope="session")
def trend_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trend") / "store"
    build_store(directory).close()
    return directory


@pytest.fixture
def tui_store(tmp_path: Path) -> Path:
    directory = tmp_path / "runs"
    make_store(directory).close()
    return directory


def pytest_sessionfinish(session: pytest.Session) -> None:
    """End the Ray tests' namespace run if the session ended before it did (-x, Ctrl-C)."""
    from tests.support import ray_namespace

    ray_namespace.stop()

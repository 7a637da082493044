"""The quickstart-shaped golden sweep gives bitwise the exports recorded before the issue-8 refactor.

Recorded by ``tests/data/golden/record.py``; both execution modes (fused packs and single runs)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1] / "data" / "golden"
_spec = importlib.util.spec_from_file_location("golden_record", HERE / "record.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(record.MODES))
def test_exports_equal_the_recorded_ones(tmp_path: Path, mode: str) -> None:
    got = record.exports(tmp_path, mode)
    for kind, text in got.items():
        expected = (HERE / f"{mode}-{kind}.csv").read_text()
        assert text.splitlines() == expected.splitlines(), f"{mode} {kind} export changed"

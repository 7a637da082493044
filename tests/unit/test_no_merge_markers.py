"""No merge-conflict markers in the project's text files (one was once committed in the README)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)
PATTERNS = ("*.md", "*.toml", "*.py", "*.tcss", "*.sh")


def test_no_conflict_markers() -> None:
    found = []
    for pattern in PATTERNS:
        for path in ROOT.rglob(pattern):
            if any(
                part.startswith(".") or part in ("build", "node_modules")
                for part in path.relative_to(ROOT).parts
            ):
                continue
            if MARKER.search(path.read_text(errors="replace")):
                found.append(str(path.relative_to(ROOT)))
    assert found == []

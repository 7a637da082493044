"""Run inside a private mount namespace with a small tmpfs at MOUNT (see test_faults_recovery):
the fault sweep is started on it, the file system is filled up once a checkpoint is on disk (as
another program filling the disk would), and what rankbias said and left is written to OUT as
JSON; then the space is freed, the same command is run again, and the store is copied to OUT.

Usage: python disk_full.py MOUNT OUT
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from rankbias_tui.store import Store
from tests.support.faults import checkpointed, run, start, wait_for


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full (it may be already: then the file is
    not even created, and the sweep has met the full disk on its own)."""
    try:
        with open(path, "wb") as fh:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
    except OSError:
        pass


def report(store: Path, done: subprocess.CompletedProcess[str] | subprocess.Popen[str], err: str) -> dict:
    with Store(store, create=False) as s:
        statuses = [r.status for r in s.runs()]
    partial = sorted(str(p) for p in store.rglob("*.tmp"))
    return {"returncode": done.returncode, "stderr": err, "statuses": statuses, "partial_files": partial}


def main(mount: Path, out: Path) -> None:
    store, filler = mount / "store", mount / "filler"
    proc = start(store)
    wait_for(lambda: checkpointed(store, proc), what="a checkpoint")
    fill(filler)
    _, err = proc.communicate(timeout=300)
    filler.unlink(missing_ok=True)  # reading the store back needs a little space too
    (out / "first.json").write_text(json.dumps(report(store, proc, err)))
    again = run(store)
    (out / "second.json").write_text(json.dumps(report(store, again, again.stderr)))
    shutil.copytree(store, out / "store")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

"""Fault injection on the command line (issue 9): an unexpected error, a damaged table mid-command,
Rich markup in user text, and a grid too big to queue without asking."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui.cli import app
from rankbias_tui.cli.common import guarded
from rankbias_tui.spec import parse_spec
from rankbias_tui.store import DB_NAME, Store
from rankbias_tui.sweep import expand_sweep
from tests.support import runs

MARKUP = "[/red]oops [bold]"


def rankbias(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return runs.rankbias(*args, env=env, timeout=300)


def spec_file(tmp_path: Path, **sweep: object) -> Path:
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in sweep.items())
    path = tmp_path / "spec.toml"
    path.write_text(f'default_sweep = "s"\n[sweeps.s]\n{body}\n')
    return path


def small_store(directory: Path, error: str | None = None) -> str:
    spec = parse_spec(
        {"sweeps": {"s": {"dataset": "digits", "description": MARKUP, "seeds": [1]}}}, Path("x.toml")
    )
    (run,) = expand_sweep(spec, "s")
    with Store(directory) as store:
        store.add_runs([run], {})
        if error is not None:
            store.set_status(run.run_id, "failed", error=error)
    return run.run_id


def test_an_unexpected_error_is_one_line_naming_the_log(tmp_path: Path) -> None:
    rid = small_store(tmp_path / "s")
    conn = sqlite3.connect(tmp_path / "s" / DB_NAME)
    conn.execute("UPDATE runs SET config='{not json' WHERE run_id=?", (rid,))  # a damaged row
    conn.commit()
    conn.close()
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = rankbias("list", "--store", str(tmp_path / "s"), env=env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    log = tmp_path / "cache" / "rankbias" / "last-error.log"
    assert "unexpected JSONDecodeError in `rankbias list`" in lines[0] and str(log) in lines[0]
    assert "--debug" in lines[0] and "Traceback" in log.read_text()
    debug = rankbias("list", "--store", str(tmp_path / "s"), "--debug", env=env | {"COLUMNS": "200"})
    assert debug.returncode == 1 and "JSONDecodeError" in debug.stderr and "Traceback" in debug.stderr
    assert "locals" not in debug.stderr and "rid =" not in debug.stderr  # no local variables shown
    again = rankbias("list", "--store", str(tmp_path / "s"), env=env | {"RANKBIAS_DEBUG": "1"})
    assert "Traceback" in again.stderr


def test_a_database_error_mid_command_is_the_stores_one_line(tmp_path: Path) -> None:
    small_store(tmp_path / "s")
    conn = sqlite3.connect(tmp_path / "s" / DB_NAME)
    conn.execute("DROP TABLE metrics")
    conn.commit()
    conn.close()
    done = rankbias("list", "--store", str(tmp_path / "s"))
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path / 's' / DB_NAME}: no such table: metrics"


def test_guarded_passes_exit_codes_and_raises_in_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    def leave(code: int) -> None:
        raise SystemExit(code)

    assert guarded(lambda: leave(3), ["rankbias"]) == 3 and guarded(lambda: None, ["rankbias"]) == 0
    argv = ["rankbias", "show", "--debug"]
    with pytest.raises(RuntimeError):
        guarded(boom, argv)
    assert argv == ["rankbias", "show"]
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")  # no log can be written: still one line
    assert guarded(boom, ["rankbias", "show"]) == 1


@pytest.mark.soak  # long; its path is also covered by shorter tests (README: soak)
@pytest.mark.slow
def test_markup_in_user_text_is_printed_literally(tmp_path: Path) -> None:
    spec = spec_file(tmp_path, description=MARKUP, dataset="digits", model="mlp", depth=2, width=8,
                     batch_size=256, epochs=1, lr_milestones=[], seeds=[1])  # fmt: skip
    store = tmp_path / "[/red]store"
    for args in (("validate", str(spec)), ("run", str(spec), "--store", str(store), "--headless",
                                             "--devices", "cpu")):  # fmt: skip
        done = rankbias(*args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    assert MARKUP in rankbias("validate", str(spec), env={"COLUMNS": "200"}).stdout
    assert str(store) in rankbias(*args).stdout  # the store's path, brackets and all
    with Store(store) as s:
        (run,) = s.runs()
        s.set_status(run.run_id, "failed", error=MARKUP)
    for args in (("list", "--store", str(store)), ("show", run.run_id, "--store", str(store))):
        done = rankbias(*args, env={"COLUMNS": "200"})
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert MARKUP in done.stdout


def test_a_huge_grid_asks_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_file(tmp_path, dataset="digits", seeds=list(range(10_001)))
    store = tmp_path / "store"
    runner = CliRunner()
    done = runner.invoke(app, ["run", str(spec), "--store", str(store), "--headless"])
    assert done.exit_code == 2 and "refusing to queue 10,001 runs" in done.output and "--yes" in done.output
    assert not store.exists()  # nothing queued, no store made
    monkeypatch.setattr("rankbias_tui.cli.launch._interactive", lambda: True)  # as at a terminal
    asked = runner.invoke(app, ["run", str(spec), "--store", str(store), "--headless"], input="n\n")
    assert "Queue 10,001 runs?" in asked.output and asked.exit_code == 1 and not store.exists()

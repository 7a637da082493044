"""cli_output: aligned plain tables with whole values, column dropping by priority, csv/json, and
the quiet end on a closed pipe."""

from __future__ import annotations

import io
import json

import pytest

from rankbias_tui.cli import output as cli_output
from rankbias_tui.cli.output import Column, fit, print_table, run_quietly, table_lines

COLUMNS = (
    Column("id", "run"),
    Column("status", "status"),
    Column("model", "model", drop=2),
    Column("acc", "acc", drop=1, right=True),
)
ROWS = [
    {"id": "a1b2c3d4e5f6", "status": "running", "model": "mlp-bn", "acc": 0.5},
    {"id": "ffffffffffff", "status": "diverged", "model": "vgg", "acc": None},
]


def test_without_a_limit_every_value_is_whole_and_columns_align() -> None:
    lines, dropped = table_lines(ROWS, COLUMNS, None)
    assert dropped == []
    assert lines[0].split() == ["run", "status", "model", "acc"]
    assert lines[1].split() == ["a1b2c3d4e5f6", "running", "mlp-bn", "0.5"]
    assert lines[2].split() == ["ffffffffffff", "diverged", "vgg", "-"]
    assert lines[1].index("running") == lines[2].index("diverged") == lines[0].index("status")
    assert lines[1].endswith("0.5") and len(lines[1]) == len(lines[0])  # right-aligned numbers


def test_a_narrow_limit_drops_the_highest_drop_first_never_ids_or_statuses() -> None:
    widths = {"id": 12, "status": 8, "model": 6, "acc": 3}
    assert [c.key for c in fit(COLUMNS, widths, 30)] == ["id", "status", "acc"]  # model (drop 2) first
    assert [c.key for c in fit(COLUMNS, widths, 10)] == ["id", "status"]  # too narrow: still whole
    lines, dropped = table_lines(ROWS, COLUMNS, 10)
    assert [c.key for c in dropped] == ["model", "acc"]
    assert "a1b2c3d4e5f6" in lines[1] and "diverged" in lines[2]


def test_a_wrapping_column_wraps_under_itself() -> None:
    columns = (Column("id", "run"), Column("why", "reason", drop=1, wrap=True))
    rows = [{"id": "abc", "why": "word " * 20}]
    lines, _ = table_lines(rows, columns, 40)
    assert len(lines) > 2 and all(len(line) <= 40 for line in lines)
    assert all(line.startswith(" " * 5) for line in lines[2:])  # continuation under "reason"


def test_csv_and_json_hold_raw_values() -> None:
    out = io.StringIO()
    print_table(ROWS, COLUMNS, "csv", out=out)
    assert out.getvalue().splitlines() == ["id,status,model,acc", "a1b2c3d4e5f6,running,mlp-bn,0.5",
                                           "ffffffffffff,diverged,vgg,"]  # fmt: skip
    out = io.StringIO()
    print_table([{"id": "x", "acc": float("nan")}], COLUMNS, "json", out=out)
    assert json.loads(out.getvalue()) == [{"id": "x", "status": None, "model": None, "acc": None}]


def test_a_pipe_gets_only_header_and_rows_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(ROWS, COLUMNS, title="a title", footer="2 runs")
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].startswith("run") and len(captured.out.splitlines()) == 3
    assert "a title" in captured.err and "2 runs" in captured.err


def test_run_quietly_turns_a_broken_pipe_into_141(monkeypatch: pytest.MonkeyPatch) -> None:
    silenced = []
    monkeypatch.setattr(cli_output, "_silence_stdout", lambda: silenced.append(True))  # keep pytest's fd 1

    def broken() -> None:
        raise BrokenPipeError

    def fine() -> None:
        raise SystemExit(0)

    def failing() -> None:
        raise SystemExit(2)

    assert run_quietly(fine) == 0 and run_quietly(failing) == 2
    assert silenced == []
    assert run_quietly(broken) == 141 and silenced == [True]


def test_missing_numbers_read_the_same_on_the_command_line_and_in_the_app() -> None:
    from rankbias_tui.cli.output import number, text
    from rankbias_tui.display import shown
    from rankbias_tui.tui.format import num

    for missing in (None, float("nan")):
        assert (
            shown(missing)
            == shown(missing, ".3f")
            == text(missing)
            == number(".1f")(missing)
            == num(missing)
            == "-"
        )
    assert (shown(0.12345, ".3f"), num(0.12345), number(".3f")(0.12345)) == ("0.123",) * 3
    assert shown(0) == text(0) == "0" and shown(0.0, ".1f") == "0.0"  # zero is a number, not nothing
    assert shown("cpu") == "cpu" and shown(float("inf"), ".1f") == "inf"

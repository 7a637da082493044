"""Issue 19, row 10-11: text from a shared spec, a store or a worker never acts on a terminal or a
Markdown viewer. Terminal control sequences (retitle, clear, write the clipboard), bidirectional
overrides and Markdown links or images are shown as text, visibly, wherever they are printed.
"""

from __future__ import annotations

from pathlib import Path

import markdown_it
import pytest
from typer.testing import CliRunner

from rankbias_tui.cli import app
from rankbias_tui.cli.output import Column, print_table
from rankbias_tui.display import printable
from rankbias_tui.report.render import md_escape
from rankbias_tui.store import Store
from tests.support.runs import planned

TITLE = "\x1b]0;owned\x07"  # OSC 0: set the terminal's title
CLEAR = "\x1b[2J\x1b[H"  # erase the screen
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write the clipboard
C1 = "\x9b2J"  # the one-byte CSI of 8-bit terminals
BIDI = "\u202eevil\u202c"  # right-to-left override
HOSTILE = f"grid {TITLE}{CLEAR}{CLIPBOARD}{C1}{BIDI} end"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u202c")


def inert(text: str) -> bool:
    return not any(c in text for c in RAW)


def test_printable_escapes_every_control_but_keeps_newlines_tabs_and_unicode() -> None:
    assert printable("a\tb\nc é λ ✓") == "a\tb\nc é λ ✓"
    shown = printable(HOSTILE)
    assert inert(shown) and "\r" not in printable("x\ry")
    assert "\\x1b]0;owned\\x07" in shown and "\\x9b2J" in shown and "\\u202eevil\\u202c" in shown
    assert all(
        printable(chr(c)) != chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\t"
    )


def test_validate_shows_a_hostile_description_escaped(tmp_path: Path) -> None:
    spec = tmp_path / "experiments.toml"
    escaped = HOSTILE.replace("\x1b", "\\u001b").replace("\x07", "\\u0007").replace("\x9b", "\\u009b")
    spec.write_text(f'[sweeps.s]\ndataset = "digits"\ndescription = "{escaped}"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(spec)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert inert(result.output) and "\\x1b]52;c;" in result.output


def test_a_spec_error_quoting_a_hostile_value_is_escaped(tmp_path: Path) -> None:
    spec = tmp_path / "experiments.toml"
    spec.write_text('[sweeps.s]\n"lr\\u001b[2J" = 0.1\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2 and "sweeps.s.lr" in result.output
    assert inert(result.output) and "\\x1b[2J" in result.output


def test_tables_in_every_format_and_stored_errors_are_escaped(tmp_path: Path) -> None:
    import io

    for fmt in ("table", "csv", "json"):
        out = io.StringIO()
        print_table(
            [{"id": "a", "reason": HOSTILE}], (Column("id", "id"), Column("reason", "reason")), fmt, out=out
        )
        assert inert(out.getvalue()) and "owned" in out.getvalue(), fmt
    run = planned()
    with Store(tmp_path / "store", create=True) as store:
        store.add_runs([run], {})
        store.set_status(run.run_id, "failed", error=f"user code raised: {HOSTILE}")
        (row,) = store.runs()
    assert row.error is not None and inert(row.error) and "\\x1b[2J" in row.error


@pytest.mark.parametrize(
    "hostile",
    [
        "![pixel](https://tracker.example/p.png)",
        "[click](javascript:alert(1))",
        '<img src="https://tracker.example/p.png">',
        "<https://tracker.example>",
        "[ref]\n\n[ref]: https://tracker.example",
        "see www.tracker.example or me@tracker.example",
        f"*bold* `code` | pipe {CLEAR}",
    ],
)
def test_markdown_text_holds_no_live_link_image_or_html(hostile: str) -> None:
    cell = md_escape(hostile)
    rendered = markdown_it.MarkdownIt("gfm-like").render(f"| a |\n|---|\n| {cell} |\n\n{cell}\n")
    assert "<a " not in rendered and "<img" not in rendered and "<em>" not in rendered
    assert "<code>" not in rendered and inert(rendered)
    assert rendered.count("<td>") == 1  # a pipe does not split the cell

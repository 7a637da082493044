"""The reproduction report as one self-contained HTML page or a Markdown file (written by hand).

Owns: ``render_html`` (inline CSS, figures as base64 PNG ``data:`` URIs: it opens with no network),
``render_markdown`` (figures as PNG files beside it, or embedded), ``write`` (by suffix) and the
text of one piece of claim evidence (``slice_text``). Every piece of text from the store or the
spec (descriptions, errors, values) is escaped: ``html.escape`` in HTML; in Markdown ``md_escape``
(no live link, image or markup; control characters visible as escapes).
Does not own: what the report holds (``gather.py``).
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..display import printable
from ..figures import KINDS
from .gather import ReportData

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #ddd; }
.holds { color: #176f2c; font-weight: bold; } .fails { color: #b00020; font-weight: bold; }
.shown { color: #8a6d00; font-weight: bold; } .untested { color: #777; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""
VERDICT_CLASS = {"holds": "holds", "does not hold": "fails", "not shown by this sweep": "shown"}


def _title(kind: str) -> str:
    row = KINDS.get(kind)
    return row.title if row is not None else kind


def fmt(value: Any) -> str:
    """A value as a person reads it: floats to 4 significant digits, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def _setting(item: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in item.get("slice", {}).items())


def _interval(item: dict[str, Any], key: str = "interval", digits: str = "+.2f") -> str:
    lo, hi = item[key]
    return f"[{lo:{digits}}, {hi:{digits}}]"


def slice_text(item: dict[str, Any]) -> str:
    """One slice (or setting) of a claim's evidence in words, with its interval and seeds."""
    seeds = "/".join(str(n) for n in item.get("seeds", [])) + " seeds"
    if "acc_change" in item:  # claim 4
        return (
            f"{_setting(item)}, {item['field']} {fmt(item['from'])} -> {fmt(item['to'])}: rank "
            f"{item['rank_change']:+.2f}, test acc {item['acc_change']:+.4f} {_interval(item, digits='+.4f')}"
            f", {item['acc_per_rank']:+.4f} per rank ({seeds}): {_outcome(item)}"
        )
    if "gap_to_max" in item:  # claim 3
        return (
            f"{_setting(item)}: {item['change']:+.2f} {_interval(item)} ranks from its initial rank "
            f"{fmt(item['initial'])} (tolerance {fmt(item['tolerance'])}; final gap to the maximal rank "
            f"{fmt(item['gap_to_max'])}; {seeds}): {_outcome(item)}"
        )
    if "against" in item:  # claim 1
        basis = "the wd = 0 run(s) of the slice" if item["against"] == "wd = 0" else item["against"]
        return (
            f"{_setting(item)}: {item['change']:+.2f} {_interval(item)} ranks against {basis} "
            f"({seeds}): {_outcome(item)}"
        )
    return (
        f"{_setting(item)}: {fmt(item['from'])} -> {fmt(item['to'])}: {item['change']:+.2f} "
        f"{_interval(item)} ranks ({seeds}): {_outcome(item)}"
    )


def _outcome(item: dict[str, Any]) -> str:
    """A slice's outcome; an untested one (one seed) says so and which way it leans."""
    if "outcome" not in item:
        return item.get("direction", "information only")
    if not item.get("tested", True):
        return f"not tested (one seed), leans {item['leans']}"
    return item["outcome"]


def _spec_lines(data: ReportData) -> list[tuple[str, str]]:
    spec = data.spec
    lines = [
        ("description", spec["description"] or "(not declared in the spec given)"),
        ("runs", f"{spec['runs']} (" + ", ".join(f"{n} {s}" for s, n in spec["statuses"].items()) + ")"),
    ]
    lines += [(k, ", ".join(v)) for k, v in spec["varied"].items()]
    lines += [(k, json.dumps(v) if isinstance(v, (list, dict)) else fmt(v)) for k, v in spec["fixed"].items()]
    return lines


# ----- HTML --------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; ``header`` and cells are plain text, escaped here."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_claims(report: dict[str, Any] | None) -> str:
    if report is None:
        return "<p>No finished run with a measurement: no claim can be checked yet.</p>"
    rows = []
    for c in report["claims"]:
        css = VERDICT_CLASS.get(c["verdict"], "untested")
        details = "".join(f"<li>{html.escape(slice_text(s))}</li>" for s in c["slices"])
        more = (
            f"<details><summary>{len(c['slices'])} slice(s)</summary><ul>{details}</ul></details>"
            if details
            else ""
        )
        rows.append(
            f"<tr><td>{html.escape(c['claim'])}</td><td>{html.escape(c['text'])}</td>"
            f'<td class="{css}">{html.escape(c["verdict"])}'
            f"<br><small>{html.escape(c.get('size', ''))}</small></td>"
            f"<td>{html.escape(c['evidence'])}{more}</td></tr>"
        )
    thresholds = ", ".join(f"{k} = {fmt(v)}" for k, v in report["thresholds"].items())
    return (
        f"<p>{report['runs']} finished runs, {html.escape(report['seeds'])} per setting.</p><table>"
        "<tr><th>claim</th><th>statement (PAPER.md)</th><th>verdict</th><th>evidence</th></tr>"
        f"{''.join(rows)}</table><p>Thresholds: {html.escape(thresholds)}.</p>"
    )


def render_html(data: ReportData) -> str:
    """One self-contained page: no script, no external URL, the figures inlined as PNG."""
    eps = "each run's rank_eps" if data.eps is None else f"eps = {data.eps:g}"
    parts = [
        f"<h1>rankbias report: {html.escape(data.sweep)}</h1>",
        f"<p>Ranks at {html.escape(eps)}.</p>",
        "<h2>Spec</h2>",
        _table(["field", "value"], [[k, v] for k, v in _spec_lines(data)]),
        "<h2>Provenance</h2>",
        _table(["", "values"], [[k, ", ".join(v) or "-"] for k, v in data.provenance.items()]),
        "<h2>Claims</h2>",
        _html_claims(data.claims),
        "<h2>Figures</h2>",
    ]
    for f in data.figures:
        parts.append(f"<h3>{html.escape(_title(f.kind))}</h3><p>{html.escape(f.caption)}</p>")
        if f.png is None:
            parts.append(f"<p><em>Not drawn: {html.escape(f.note)}</em></p>")
        else:
            uri = "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")
            parts.append(f'<img alt="{html.escape(f.kind)}" src="{uri}">')
    parts += [
        "<h2>Runs</h2>",
        _table(list(data.columns), [[fmt(r[c]) for c in data.columns] for r in data.runs]),
    ]
    title = html.escape(f"rankbias report: {data.sweep}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


# ----- Markdown ----------------------------------------------------------------------------------
# Markdown's link, image, emphasis, code and table punctuation: each written backslash-escaped
# (CommonMark: any ASCII punctuation may be), so text from a spec or a store never becomes a link, an
# image (an external request when the report is viewed) or markup. ``<``, ``>`` and ``&`` are HTML
# entities (no raw HTML, no autolink), and a bare URL, ``www.`` or e-mail address is
# broken with escapes so that GFM does not link it either.
_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]()!|#~{}])")
_BARE_LINK = re.compile(r"://|www\.|@", re.IGNORECASE)  # what GFM would turn into a link by itself


def md_escape(text: str) -> str:
    """Text inert in Markdown, in a table cell or a line of its own: control characters escaped
    (``display.printable``), HTML entities, Markdown punctuation backslash-escaped, one line."""
    text = _MD_PUNCTUATION.sub(r"\\\1", html.escape(printable(text).replace("\n", " "), quote=False))
    return _BARE_LINK.sub(
        lambda m: m.group().replace("/", "\\/").replace(".", "\\.").replace("@", "\\@"), text
    )


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows] + [""]


def render_markdown(data: ReportData, image: Callable[[str, bytes], str]) -> str:
    """The report as Markdown; ``image(kind, png)`` returns the link target of each figure (a file
    name beside the report, or a data: URI)."""
    eps = "each run's rank_eps" if data.eps is None else f"eps = {data.eps:g}"
    out = [f"# rankbias report: {md_escape(data.sweep)}", "", f"Ranks at {eps}.", "", "## Spec", ""]
    out += _md_table(["field", "value"], [[k, v] for k, v in _spec_lines(data)])
    out += ["## Provenance", ""] + _md_table(
        ["", "values"], [[k, ", ".join(v) or "-"] for k, v in data.provenance.items()]
    )
    out += ["## Claims", ""]
    if data.claims is None:
        out += ["No finished run with a measurement: no claim can be checked yet.", ""]
    else:
        c_rows = [
            [
                c["claim"],
                c["text"],
                f"{c['verdict']} ({c['size']})" if c.get("size") else c["verdict"],
                c["evidence"],
            ]
            for c in data.claims["claims"]
        ]
        out += [f"{data.claims['runs']} finished runs, {md_escape(data.claims['seeds'])} per setting.", ""]
        out += _md_table(["claim", "statement (PAPER.md)", "verdict", "evidence"], c_rows)
        for c in data.claims["claims"]:
            out += (
                [f"Claim {c['claim']}:", ""] + [f"- {md_escape(slice_text(s))}" for s in c["slices"]] + [""]
            )
    out += ["## Figures", ""]
    for f in data.figures:
        out += [f"### {_title(f.kind)}", "", md_escape(f.caption), ""]
        out += [
            f"_Not drawn: {md_escape(f.note)}_" if f.png is None else f"![{f.kind}]({image(f.kind, f.png)})",
            "",
        ]
    out += ["## Runs", ""] + _md_table(
        list(data.columns), [[fmt(r[c]) for c in data.columns] for r in data.runs]
    )
    return "\n".join(out)


def write(data: ReportData, path: Path, embed: bool = False) -> list[Path]:
    """Write the report by the suffix of ``path`` (.html/.htm or .md); a Markdown report's figures
    go beside it as ``STEM-KIND.png`` unless ``embed``. Return the files written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(render_html(data), encoding="utf-8")
        return [path]
    written: list[Path] = []

    def image(kind: str, png: bytes) -> str:
        if embed:
            return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        target = path.with_name(f"{path.stem}-{kind}.png")
        target.write_bytes(png)
        written.append(target)
        return target.name

    path.write_text(render_markdown(data, image), encoding="utf-8")
    return [path, *written]

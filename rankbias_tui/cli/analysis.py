"""``rankbias plot``, ``claims`` and ``report``: figures, the paper's claims and a reproduction report.

Thin Typer commands: each checks its options, opens the store and hands the work to
``figures.make_figure``, ``claims.report`` or ``report.gather``/``report.write``. Bad options
(unknown sweep, field, layer, run, kind) exit with code 2, as a ``--store`` without a store does; a
store without usable runs, or one that cannot be opened, exits with code 1 (``common.open_store``);
each with one message on stderr and no traceback. Registered on the main app by ``register``
(called by ``app.py``). Matplotlib is imported only when a figure is drawn, so ``rankbias --help``
stays fast.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from .. import claims as claims_mod
from ..display import shown
from ..figures import KINDS
from ..spec import suggest
from ..store import Store
from .common import fail, open_store
from .options import DEFAULT_STORE, StoreDir
from .output import Column, check_format, jsonable, print_table
from .progress import Bars

console = Console()

SWEEP_OPT = typer.Option(None, "--sweep", "-s", help="Sweep to analyse (default: the store's only sweep).")
EPS_OPT = typer.Option(
    None,
    "--eps",
    help="Count singular values of W/||W||_F above this instead of each run's rank_eps "
    "(recomputed from the stored spectra, no retraining).",
)


# --kind's choices: the rows of ``figures.KINDS`` (the first is the default)
Kind = Enum("Kind", {name.replace("-", "_"): name for name in KINDS}, type=str)  # type: ignore[misc]
BY_HELP = (
    "Run field giving "
    + " or ".join(f"{k.by_role} ({k.name}, default {k.default_by})" for k in KINDS.values() if k.by_role)
    + " per value."
)


def _check_eps(eps: Optional[float]) -> None:
    if eps is not None and not 0 < eps < 1:
        raise fail(f"--eps must lie strictly between 0 and 1 (singular values of W/||W||_F), got {eps}", 2)


def resolve_sweep(store: Store, sweep: Optional[str]) -> str:
    """The sweep asked for, checked against the store; the only one when none is asked for."""
    names = list(store.sweeps())
    if sweep is not None:
        if sweep not in names:
            hint = suggest(sweep, names)
            raise fail(
                f"no sweep {sweep!r} in {store.directory}"
                + (f"; {hint}" if hint else "")
                + f" (sweeps: {', '.join(names) or 'none'})",
                2,
            )
        return sweep
    if not names:
        raise fail(f"no runs in {store.directory} yet (run `rankbias run` first)", 1)
    if len(names) > 1:
        raise fail(f"{store.directory} holds several sweeps; choose one with --sweep ({', '.join(names)})", 2)
    return names[0]


def plot(
    store_dir: StoreDir = DEFAULT_STORE,
    sweep: Optional[str] = SWEEP_OPT,
    kind: Kind = typer.Option(next(iter(Kind)), "--kind", "-k", help="Which figure to draw."),
    by: Optional[str] = typer.Option(None, "--by", help=BY_HELP),
    x: Optional[str] = typer.Option(None, "--x", help="contour: field on the x axis (default: auto)."),
    y: Optional[str] = typer.Option(None, "--y", help="contour: field on the y axis (default: auto)."),
    fix: Optional[list[str]] = typer.Option(
        None,
        "--fix",
        help="FIELD=VALUE: keep only runs with this value (repeatable); fields that vary and are "
        "not fixed become one panel per value.",
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", help="One layer's rank (e.g. fc2) instead of the average; spectrum: this layer only."
    ),
    eps: Optional[float] = EPS_OPT,
    run_id: Optional[str] = typer.Option(None, "--run", help="spectrum: the run (id or unique prefix)."),
    epoch: Optional[list[float]] = typer.Option(
        None, "--epoch", help="spectrum: measurement epoch(s) to show (default: first and last)."
    ),
    output: Optional[Path] = typer.Option(
        None,
        "-o",
        "--output",
        help="File to write: .png or .svg; without one of those suffixes both are written "
        "(default: STORE/figures/SWEEP-KIND).",
    ),
) -> None:
    """Draw a figure from the store: rank curves, contour, spectra, accuracy vs rank, scaling.

    rank-curves: rank against epoch, one line per --by value.
    contour: final average rank over two fields (--x, --y), drawn as the paper's Figure 1 (the
    figure1-* sweeps run the authors' grids); diverged cells hatched with their last rank.
    spectrum: singular-value histograms of one run (--run) at chosen epochs.
    accuracy-vs-rank: final test accuracy against final rank of each finished run.
    scaling: every finished wd > 0 run's final rank against B / (lr wd) (times m with --layer),
    the variable of the paper's bound, with the bound's line: runs on one curve if it captures
    the mechanism.
    """
    from .. import figures

    _check_eps(eps)
    with open_store(store_dir) as store:
        try:
            fixed = figures.parse_fixed(fix or [])
            if kind.value == "spectrum":
                if run_id is None:
                    raise fail("--kind spectrum needs --run RUN_ID (see `rankbias list`)", 2)
                options: dict[str, Any] = {
                    "run_id": run_id,
                    "epochs": epoch,
                    "eps": eps,
                    "layers": [layer] if layer else None,
                }
                name = run_id
            else:
                name = resolve_sweep(store, sweep)
                options = {"sweep": name, "layer": layer, "eps": eps, "fixed": fixed}
                if kind.value == "contour":
                    options |= {"x": x, "y": y}
                elif by is not None:  # else the kind's own default (figures.FigureKind.default_by)
                    options["by"] = by
            fig = figures.make_figure(kind.value, store, **options)
        except figures.NoData as e:
            raise fail(str(e), 1) from None
        except figures.FigureError as e:
            raise fail(str(e), 2) from None
    target = output or store_dir / "figures" / f"{name}-{kind.value}"
    try:
        written = figures.save(fig, target)
    except OSError as e:
        raise fail(f"cannot write {target}: {e.strerror or e}") from None
    console.print("wrote " + ", ".join(str(p) for p in written), markup=False)


EFFECT_COLUMNS = (
    Column("field", "hyperparameter"),
    Column("values", "values", drop=2),
    Column("slices", "slices", drop=3, right=True),
    Column("higher", "larger -> higher", right=True),
    Column("lower", "larger -> lower", right=True),
    Column("none", "no effect", right=True),
    Column("moved", "mean change where it moved", drop=1, right=True),
)
CLAIM_COLUMNS = (
    Column("claim", "claim"),
    Column("verdict", "verdict"),
    Column("size", "on", wrap=True),
    Column("text", "statement (PAPER.md)", drop=1),
    Column("evidence", "evidence", wrap=True),
)


def _effect_row(e: dict[str, Any]) -> dict[str, Any]:
    moved, counts = e["mean_change_where_moved"], e["counts"]
    return {
        "field": e["field"],
        "values": ", ".join(f"{v:g}" for v in e["values"]),
        "slices": len(e["slices"]),
        "higher": counts[claims_mod.HIGHER],
        "lower": counts[claims_mod.LOWER],
        "none": counts[claims_mod.NO_EFFECT],
        "moved": shown(moved, "+.1f"),
    }


def _print_report(report: dict[str, Any]) -> None:
    eps = "each run's rank_eps" if report["eps"] is None else f"eps = {report['eps']:g}"
    # The titles say what was measured (eps, seeds): part of the report, so on stdout even piped.
    sys.stdout.write(
        f"{report['sweep']}: effects on the final average rank ({eps}; {report['seeds']} per setting)\n"
    )
    print_table([_effect_row(e) for e in report["effects"]], EFFECT_COLUMNS)
    sys.stdout.write(f"\n{report['sweep']}: the paper's claims, {report['runs']} finished runs\n")
    print_table(report["claims"], CLAIM_COLUMNS)
    if report.get("excluded"):
        sys.stdout.write(f"{len(report['excluded'])} diverged run(s) excluded (listed under claim 4)\n")
    t = report["thresholds"]
    console.print(
        f"An effect: a change of >= {t['min_rank_change']:g} rank whose {t['interval_level']:.0%} t interval "
        "over seeds excludes 0; one seed per setting is not a test. Holds: enough slices agree that noise "
        f"would reach that count in < 2.5% of sweeps (at least 2), and >= {t['agreement']:.0%} of the "
        'effects agree. Rules: README.md, "What `rankbias claims` computes"; '
        "numbers per slice: --format json.",
        markup=False,
        highlight=False,
        soft_wrap=not console.is_terminal,
    )


def claims(
    sweep: Optional[str] = SWEEP_OPT,
    store_dir: StoreDir = DEFAULT_STORE,
    eps: Optional[float] = EPS_OPT,
    fmt: str = typer.Option(
        "table",
        "--format",
        "-f",
        help="table (aligned columns), csv (one row per claim) or json (the whole report, per slice).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
) -> None:
    """Check the paper's claims on a sweep's finished runs, with a verdict per claim.

    Effects of batch size, learning rate and weight decay on the final average rank, per slice (the
    other two fixed), above a noise floor (one rank, and a t interval over seeds that excludes 0;
    one seed per setting is not a test). Whether weight decay lowers the rank against the wd = 0
    runs of the slice, whether wd = 0 runs stay where they started, and how test accuracy moves
    where the rank moved (no run dropped; diverged runs listed as excluded).
    Rules and thresholds: README.md, section "What `rankbias claims` computes".
    """
    fmt = "json" if as_json else check_format(fmt)
    _check_eps(eps)
    with open_store(store_dir) as store:
        name = resolve_sweep(store, sweep)
        records = claims_mod.records_from_store(store, name, eps)
        excluded = claims_mod.excluded_from_store(store, name, eps)
        if not records:
            statuses = sorted({r.status for r in store.runs(name)})
            raise fail(
                f"no finished (done) runs with measurements in sweep {name!r} "
                f"(statuses: {', '.join(statuses) or 'none'})",
                1,
            )
    report = claims_mod.report(records, name, eps, excluded)
    if fmt == "json":
        sys.stdout.write(json.dumps(jsonable(report), indent=2) + "\n")
    elif fmt == "csv":
        print_table(report["claims"], CLAIM_COLUMNS, "csv")
    else:
        _print_report(report)


def _declared(spec_file: Optional[Path], sweep: str) -> Any:
    """The sweep's declaration (for its description): from ``--spec`` (which must declare it), else
    from ./experiments.toml when that file declares it; None otherwise."""
    from ..spec import SpecError, load_spec

    path = spec_file or Path("experiments.toml")
    if spec_file is None and not path.is_file():
        return None
    try:
        declared = load_spec(path).sweeps.get(sweep)
    except SpecError as e:
        if spec_file is None:
            return None
        raise fail(e.report(), 2) from None
    if declared is None and spec_file is not None:
        raise fail(f"{spec_file} declares no sweep {sweep!r}", 2)
    return declared


def report(
    output: Path = typer.Option(
        ..., "-o", "--output", help="File to write: .html (one self-contained page) or .md."
    ),
    store_dir: StoreDir = DEFAULT_STORE,
    sweep: Optional[str] = SWEEP_OPT,
    eps: Optional[float] = EPS_OPT,
    spec_file: Optional[Path] = typer.Option(
        None,
        "--spec",
        help="Spec declaring the sweep, for its description (default: ./experiments.toml if it does).",
    ),
    embed: bool = typer.Option(
        False, "--embed", help=".md: embed the figures instead of writing PNGs beside it."
    ),
) -> None:
    """Write a reproduction report of one sweep: spec, provenance, figures, claims, runs.

    HTML: one page with the figures inlined, which opens with no network. Markdown: the figures as
    STEM-KIND.png beside it (or --embed). Ranks at each run's rank_eps, or recounted at --eps.
    """
    _check_eps(eps)
    if output.suffix.lower() not in (".html", ".htm", ".md"):
        raise fail(f"-o {output}: the report is .html or .md", 2)
    from .. import report as report_mod

    with open_store(store_dir) as store:
        name = resolve_sweep(store, sweep)
        with Bars() as bars:
            data = report_mod.gather(store, name, eps, _declared(spec_file, name), track=bars)
    try:
        written = report_mod.write(data, output, embed=embed)
    except OSError as e:
        raise fail(f"cannot write {output}: {e.strerror or e}") from None
    console.print("wrote " + ", ".join(str(p) for p in written), markup=False)


def register(app: typer.Typer) -> None:
    """Add ``plot``, ``claims`` and ``report`` to the ``rankbias`` app."""
    app.command("plot")(plot)
    app.command("claims")(claims)
    app.command("report")(report)

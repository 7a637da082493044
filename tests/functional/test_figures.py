"""``rankbias plot`` and ``rankbias_tui.figures`` on the fixture store (tests/support/trend_store.py).

Each kind: the gathered data (panels, lines, cells), the drawn figure (``get_lines``, the heat
map's cells) and the files ``rankbias plot`` writes (valid PNG and SVG). ``--eps`` must match ranks
counted directly from the stored singular values. One slow test trains a real 2-epoch digits sweep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from typer.testing import CliRunner

from rankbias_tui import figures
from rankbias_tui.cli import app
from rankbias_tui.measures import rank_at_eps
from rankbias_tui.store import Store
from tests.support import runs
from tests.support.trend_store import EPOCHS, GRID, LAYERS, build_store

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    build_store(directory).close()
    return directory


@pytest.fixture
def store(store_dir: Path):  # noqa: ANN201 - Store
    with Store(store_dir, create=False) as opened:
        yield opened


def data_lines(ax) -> list:  # noqa: ANN001 - a matplotlib Axes
    """Lines that show data (decorations such as the maximal rank have labels starting with _)."""
    return [line for line in ax.get_lines() if not line.get_label().startswith("_")]


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000


def assert_svg(path: Path) -> None:
    assert ET.parse(path).getroot().tag.endswith("svg")


# ----- data and drawing --------------------------------------------------------------------------
def test_rank_curves_one_line_per_value_one_panel_per_other_combination(store: Store) -> None:
    data = figures.rank_curve_data(store, "trend", by="batch_size")
    assert len(data.panels) == len(GRID["lr"]) * len(GRID["weight_decay"])
    assert all(len(p.series) == len(GRID["batch_size"]) for p in data.panels)
    assert all(s.x == tuple(map(float, EPOCHS)) for p in data.panels for s in p.series)
    fig = figures.curves_figure(data)
    assert len(fig.axes) == 6 and all(len(data_lines(ax)) == 3 for ax in fig.axes)

    fixed = figures.rank_curve_data(store, "trend", by="lr", fixed={"batch_size": 8, "weight_decay": 5e-3})
    assert len(fixed.panels) == 1 and [s.label for s in fixed.panels[0].series] == ["0.05", "0.1"]
    lines = data_lines(figures.curves_figure(fixed).axes[0])
    assert [line.get_label() for line in lines] == ["0.05", "0.1"]
    # Paper's trend: the larger learning rate ends lower; wd = 0 (not shown) would stay at 91.
    assert lines[1].get_ydata()[-1] < lines[0].get_ydata()[-1] < 91


def test_one_layer_curves(store: Store) -> None:
    data = figures.rank_curve_data(store, "trend", by="batch_size", layer="fc1", fixed={"lr": 0.1})
    assert len(data.panels) == 3 and data.panels[0].ceiling == 64
    assert all(max(s.y) <= 64 for p in data.panels for s in p.series)
    assert data.ylabel.startswith("rank of fc1")


def test_contour_cells_match_the_grid(store: Store) -> None:
    data = figures.contour_data(store, "trend", x="lr", y="weight_decay")
    assert len(data.panels) == len(GRID["batch_size"])
    assert data.xs == tuple(GRID["lr"]) and data.ys == tuple(GRID["weight_decay"])
    assert all(p.z.shape == (3, 2) and np.isfinite(p.z).all() for p in data.panels)
    assert all((p.z[0] == 91).all() for p in data.panels)  # wd = 0 row stays at the maximum
    fig = figures.contour_figure(data)
    assert len(fig.axes) == 4  # three panels and the colour bar
    meshes = [c for ax in fig.axes[:3] for c in ax.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 3 and all(m.get_array().size == 6 for m in meshes)

    one = figures.contour_data(store, "trend", x="batch_size", y="weight_decay", fixed={"lr": 0.1})
    assert len(one.panels) == 1 and one.panels[0].z.shape == (3, 3)
    mesh = next(c for c in figures.contour_figure(one).axes[0].collections if isinstance(c, QuadMesh))
    assert mesh.get_array().size == 9


def test_diverged_cells_are_hatched_with_their_last_rank_not_blank(tmp_path: Path) -> None:
    from rankbias_tui.measures import Status

    with build_store(tmp_path) as store:
        gone = [r for r in store.runs("trend") if r.config.lr == 0.1 and r.config.weight_decay == 5e-3]
        for r in gone:
            store.set_status(r.run_id, Status.DIVERGED, error="loss became nan")
        data = figures.contour_data(store, "trend", x="lr", y="weight_decay")
    assert f"{len(gone)} diverged run(s) excluded" in data.title
    for panel in data.panels:  # the cell of the diverged run: no mean, its last rank instead
        assert np.isnan(panel.z[2, 1]) and np.isfinite(panel.diverged[2, 1])
    ax = figures.contour_figure(data).axes[0]
    assert any(t.get_text().startswith("div.") for t in ax.texts)


def test_scaling_puts_every_wd_positive_run_at_b_over_lr_wd(store: Store) -> None:
    data = figures.scaling_data(store, "trend")
    points = [s for s in data.panels[0].series if not s.label.startswith("_")]
    wd_positive = [r for r in store.runs("trend") if r.config.weight_decay > 0]
    assert sum(len(s.x) for s in points) == len(wd_positive) == 12
    expected = sorted(r.config.batch_size / (r.config.lr * r.config.weight_decay) for r in wd_positive)
    assert sorted(x for s in points for x in s.x) == pytest.approx(expected)
    bound = next(s for s in data.panels[0].series if s.label == "_bound")
    assert bound.y[0] / bound.x[0] == pytest.approx(np.log(2 / 1e-3))  # rank <= ln(2/eps) B/(lr wd)
    assert "6 wd = 0 run(s) left out" in data.title and data.xlabel == "B / (lr wd) (m = 1)"


def test_contour_axes_default_to_the_varying_hyperparameters(store: Store) -> None:
    data = figures.contour_data(store, "trend", fixed={"batch_size": 32})
    assert (data.x, data.y) == ("lr", "weight_decay") and len(data.panels) == 1


def test_spectrum_histograms(store: Store) -> None:
    run = store.runs("trend")[-1]
    data = figures.spectrum_data(store, run.run_id)
    assert [p.title for p in data.panels] == [f"{n} ({o}x{i})" for n, o, i in LAYERS]
    assert all(len(p.series) == 2 for p in data.panels)  # first and last measurement
    k = min(LAYERS[0][1:])
    assert sum(data.panels[0].series[0].y[:-1]) == k  # every singular value is counted once
    fig = figures.curves_figure(data)
    assert len(fig.axes) == 4 and all(len(data_lines(ax)) == 2 for ax in fig.axes)

    three = figures.spectrum_data(store, run.run_id[:6], epochs=[0, 5, 10], layers=["fc2"], eps=0.01)
    assert len(three.panels) == 1 and len(three.panels[0].series) == 3 and three.panels[0].threshold == 0.01


def test_accuracy_vs_rank_points(store: Store) -> None:
    data = figures.accuracy_data(store, "trend", by="weight_decay")
    series = data.panels[0].series
    assert len(series) == 3 and sum(len(s.x) for s in series) == 18
    assert len(data_lines(figures.curves_figure(data).axes[0])) == 3


# ----- several seeds: mean and interval, and how many seeds --------------------------------------
@pytest.fixture(scope="module")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("seeded")
    build_store(directory, seeds=(0, 1, 2)).close()
    return directory


def test_figures_show_the_mean_and_interval_over_seeds(seeded_dir: Path) -> None:
    with Store(seeded_dir, create=False) as store:
        curves = figures.rank_curve_data(
            store, "trend", by="batch_size", fixed={"lr": 0.1, "weight_decay": 5e-3}
        )
        grid = figures.contour_data(store, "trend", x="lr", y="weight_decay", fixed={"batch_size": 8})
        points = figures.accuracy_data(store, "trend", by="weight_decay")
    assert "3 seeds per line, 95% interval over seeds" in curves.title
    line = curves.panels[0].series[0]
    assert line.lo is not None and line.hi is not None
    assert all(lo <= y <= hi for lo, y, hi in zip(line.lo, line.y, line.hi, strict=True))
    assert line.lo[-1] < line.hi[-1]  # the constructed seeds end 0, 1/4 and 1/2 rank apart
    panel = grid.panels[0]
    assert (panel.seeds == 3).all() and "3 seeds per cell" in grid.title
    assert (panel.lo <= panel.z).all() and (panel.z <= panel.hi).all()
    texts = [t.get_text() for t in figures.contour_figure(grid).axes[0].texts]
    assert len(texts) == 6 and all("\u00b1" in t for t in texts)
    assert sum(len(s.x) for s in points.panels[0].series) == 18  # one point per setting, not per run
    assert "3 seeds per point" in points.title
    ax = figures.curves_figure(points).axes[0]
    assert len(ax.containers) == 3  # one set of error bars per weight decay


# ----- eps recomputed from the stored singular values --------------------------------------------
def direct_avg_rank(store: Store, run_id: str, step: int, eps: float) -> float:
    return float(np.mean([rank_at_eps(s.svals, eps) for s in store.spectra(run_id, step)]))


@pytest.mark.parametrize("eps", [1e-3, 1e-2, 5e-2])
def test_eps_recomputation_matches_direct_ranks(store: Store, eps: float) -> None:
    run = store.runs("trend")[-1]  # B = 128, lr = 0.1, wd = 5e-3
    c = run.config.stored
    fixed = {k: c[k] for k in ("lr", "weight_decay")}
    data = figures.rank_curve_data(store, "trend", by="batch_size", eps=eps, fixed=fixed)
    line = next(s for s in data.panels[0].series if s.label == str(c["batch_size"]))
    steps = store.spectrum_steps(run.run_id)
    assert list(line.y) == [direct_avg_rank(store, run.run_id, step, eps) for step in steps]
    grid = figures.contour_data(
        store, "trend", x="lr", y="weight_decay", eps=eps, fixed={"batch_size": c["batch_size"]}
    )
    z = grid.panels[0].z[grid.ys.index(c["weight_decay"]), grid.xs.index(c["lr"])]
    assert z == direct_avg_rank(store, run.run_id, steps[-1], eps)


def test_a_larger_eps_counts_fewer_singular_values(store: Store) -> None:
    stored = figures.rank_curve_data(store, "trend", by="batch_size")
    coarse = figures.rank_curve_data(store, "trend", by="batch_size", eps=5e-2)
    pairs = [
        (a, b)
        for p, q in zip(stored.panels, coarse.panels, strict=True)
        for a, b in zip(p.series, q.series, strict=True)
    ]
    assert all(np.all(np.array(b.y) < np.array(a.y)) for a, b in pairs)
    assert "eps=0.05" in coarse.ylabel and "eps=0.001" in stored.ylabel


# ----- the command ------------------------------------------------------------------------------
KIND_ARGS = {
    "rank-curves": ["--by", "batch_size", "--fix", "lr=0.1"],
    "contour": ["--x", "lr", "--y", "weight_decay"],
    "spectrum": ["--epoch", "0", "--epoch", "10"],
    "accuracy-vs-rank": ["--eps", "0.01"],
    "scaling": ["--by", "batch_size"],
}


@pytest.mark.parametrize("kind", figures.KINDS)
def test_plot_writes_png_and_svg(store_dir: Path, store: Store, tmp_path: Path, kind: str) -> None:
    args = ["plot", "--store", str(store_dir), "-s", "trend", "--kind", kind, *KIND_ARGS[kind]]
    if kind == "spectrum":
        args += ["--run", store.runs("trend")[0].run_id]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "fig")])
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "fig.png")
    assert_svg(tmp_path / "fig.svg")
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "only.svg")])
    assert result.exit_code == 0 and [p.name for p in tmp_path.iterdir() if p.stem == "only"] == ["only.svg"]


def test_figure_kinds_are_one_table() -> None:
    """``plot --kind``, the drawings, the default ``--by`` and the report's titles all read
    ``figures.KINDS``; a kind's default ``--by`` is its data function's."""
    from rankbias_tui.cli.analysis import BY_HELP, Kind
    from rankbias_tui.report.render import _title

    kinds = ["rank-curves", "contour", "spectrum", "accuracy-vs-rank", "scaling"]
    assert [k.value for k in Kind] == list(figures.KINDS) == kinds
    defaults = {name: kind.default_by for name, kind in figures.KINDS.items()}
    assert defaults == {
        "rank-curves": "batch_size",
        "contour": None,
        "spectrum": None,
        "accuracy-vs-rank": "weight_decay",
        "scaling": "model",
    }
    assert (
        "one line (rank-curves, default batch_size)" in BY_HELP
        and "(accuracy-vs-rank, default weight_decay)" in BY_HELP
    )
    assert {kind.drawing for kind in figures.KINDS.values()} == set(figures.DRAWINGS)
    assert _title("contour") == "Final rank over two hyperparameters" and _title("other") == "other"
    with pytest.raises(
        figures.FigureError, match="choose from rank-curves, contour, spectrum, accuracy-vs-rank, scaling"
    ):
        figures.make_figure("histogram", None)  # type: ignore[arg-type]


def test_plot_default_output_is_under_the_store(tmp_path: Path) -> None:
    build_store(tmp_path).close()
    result = runner.invoke(app, ["plot", "--store", str(tmp_path), "-s", "trend"])
    assert result.exit_code == 0, result.output
    assert_png(tmp_path / "figures" / "trend-rank-curves.png")
    assert_svg(tmp_path / "figures" / "trend-rank-curves.svg")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-s", "trnd"], 2, "did you mean 'trend'"),
        ([], 2, "several sweeps"),
        (["-s", "trend", "--by", "batch_sise"], 2, "did you mean 'batch_size'"),
        (["-s", "trend", "--by", "model"], 2, "does not vary"),
        (["-s", "trend", "--layer", "fc9"], 2, "no measured layer 'fc9'"),
        (["-s", "trend", "--fix", "lr"], 2, "FIELD=VALUE"),
        (["-s", "trend", "--fix", "lr=0.3"], 1, "no runs"),
        (["-s", "trend", "--eps", "0"], 2, "--eps"),
        (["-s", "trend", "--kind", "contour", "--x", "lr", "--y", "lr"], 2, "both"),
        (["-s", "trend", "--kind", "spectrum"], 2, "needs --run"),
        (["--kind", "spectrum", "--run", "zzzz"], 2, "no single run"),
        (["-s", "trend", "--kind", "spectrum", "--run", "", "--epoch", "3"], 2, "no single run"),
        (["-s", "pending", "--kind", "contour"], 1, "no runs with status done"),
        (["-s", "trend", "--kind", "histogram"], 2, "histogram"),
    ],
)
def test_plot_errors_are_one_line_without_traceback(
    store_dir: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(
        app, ["plot", "--store", str(store_dir), *args, "-o", str(tmp_path / "x")], env={"COLUMNS": "200"}
    )
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_spectrum_at_an_unmeasured_epoch(store_dir: Path, store: Store) -> None:
    run_id = store.runs("trend")[0].run_id
    args = ["plot", "--store", str(store_dir), "--kind", "spectrum", "--run", run_id, "--epoch", "3"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2 and "measured at: 0, 5, 10" in result.output


def test_figures_and_claims_do_not_import_torch() -> None:
    # The terminal UI draws with these modules, and the TUI process must never import torch.
    code = "import sys, rankbias_tui.figures, rankbias_tui.claims; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_gathering_figure_data_does_not_import_matplotlib() -> None:
    # Selection and data are plain Python; only drawing (figures.draw) needs matplotlib.
    code = (
        "import sys, rankbias_tui.figures.data as d, rankbias_tui.figures.selection\n"
        "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))\n"
        "import rankbias_tui.figures as f; f.make_figure\n"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["False", "True"], out.stderr


# ----- end to end: a real 2-epoch sweep ---------------------------------------------------------
TINY_SPEC = """
default_sweep = "tiny"
[sweeps.tiny]
model = "mlp-bn"
depth = 2
width = 32
dataset = "digits"
epochs = 2
lr = 0.1
lr_milestones = []
measure_every = 1
weight_decay = 1e-2
grid.batch_size = [16, 128]
"""


def rankbias(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return runs.rankbias(*args, cwd=cwd, timeout=120)


@pytest.mark.slow
def test_plot_and_claims_after_a_real_sweep(tmp_path: Path) -> None:
    (tmp_path / "experiments.toml").write_text(TINY_SPEC)
    result = rankbias("run", "--headless", "--devices", "cpu", "--store", "store", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    result = rankbias("plot", "--store", "store", "--by", "batch_size", "-o", "curves", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "curves.png")
    assert_svg(tmp_path / "curves.svg")
    result = rankbias("claims", "--store", "store", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["runs"] == 2 and [e["field"] for e in report["effects"]] == ["batch_size"]
    verdicts = {c["claim"]: c["verdict"] for c in report["claims"]}
    assert verdicts["2b"] == verdicts["2c"] == verdicts["3"] == "not tested by this sweep"

"""``rankbias report``: one self-contained page (HTML or Markdown) from the fixture store.

The page must open with no network (no external URL, images inlined), escape every piece of user
text (a description holding ``<script>``), and carry the spec, provenance, claims and runs.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias_tui import report
from rankbias_tui.cli import app
from rankbias_tui.spec import SweepSpec
from rankbias_tui.store import Store
from tests.support.trend_store import build_store

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = '<script>alert("x")</script> & | `b`'
SPEC_TOML = f"""
[sweeps.trend]
description = '{EVIL}'
grid.batch_size = [8, 32, 128]
"""


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    build_store(directory, seeds=(0, 1)).close()
    return directory


@pytest.fixture(scope="module")
def data(store_dir: Path) -> report.ReportData:
    declared = SweepSpec("trend", EVIL, {}, {}, (0, 1))
    with Store(store_dir, create=False) as store:
        return report.gather(store, "trend", None, declared)


def test_gathered_report_holds_spec_provenance_figures_claims_runs(data: report.ReportData) -> None:
    assert data.spec["runs"] == 36 and data.spec["varied"]["seed"] == ["0", "1"]
    assert data.spec["fixed"]["model"] == "mlp-bn" and data.spec["description"] == EVIL
    assert data.provenance["rankbias version"] == ["fixture"] and data.provenance["devices"] == ["cpu"]
    assert data.provenance["protocol version"] == ["not recorded"]
    assert [f.kind for f in data.figures] == ["rank-curves", "contour", "spectrum", "accuracy-vs-rank"]
    assert all(f.png is not None and f.png.startswith(PNG_MAGIC) for f in data.figures)
    assert data.claims is not None and data.claims["seeds"] == "2 seeds"
    assert len(data.runs) == 36 and "final_avg_rank" in data.columns and "seed" in data.columns


def test_html_is_self_contained_and_escapes_user_text(data: report.ReportData) -> None:
    page = report.render_html(data)
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not re.search(r"(?:src|href)\s*=\s*[\"'](?!data:)", page)  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page and "@import" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)
    for claim in ("2a", "2b", "2c"):
        assert f"<td>{claim}</td>" in page
    assert page.count("<tr>") >= 36 + 6


def test_protocol_version_hook_reads_a_recorded_version(data: report.ReportData, store_dir: Path) -> None:
    with Store(store_dir, create=False) as store:
        run = store.runs("trend")[0]
    assert report.protocol_version(run) is None
    assert (
        report.protocol_version(run.__class__(**{**run.__dict__, "provenance": {"protocol_version": 2}}))
        == "2"
    )
    assert (
        report.protocol_version(run.__class__(**{**run.__dict__, "protocol_version": 2})) == "2"
    )  # the store's


def test_report_command_html_and_markdown(store_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "spec.toml").write_text(SPEC_TOML)
    args = ["report", "--store", str(store_dir), "-s", "trend", "--spec", str(tmp_path / "spec.toml")]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "&lt;script&gt;" in page and "<script" not in page
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "r.md")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.md").read_text()
    assert "&lt;script&gt;" in text and "<script" not in text and "\\|" in text
    for kind in ("rank-curves", "contour", "spectrum", "accuracy-vs-rank"):
        assert f"](r-{kind}.png)" in text
        assert (tmp_path / f"r-{kind}.png").read_bytes().startswith(PNG_MAGIC)
    result = runner.invoke(app, [*args, "--embed", "-o", str(tmp_path / "e.md")])
    assert result.exit_code == 0 and (tmp_path / "e.md").read_text().count("](data:image/png;base64,") == 4


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-s", "trend", "-o", "r.pdf"], 2, ".html or .md"),
        (["-s", "trnd", "-o", "r.html"], 2, "did you mean 'trend'"),
        (["-s", "trend", "--spec", "missing.toml", "-o", "r.html"], 2, "not found"),
    ],
)
def test_report_command_errors(
    store_dir: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(app, ["report", "--store", str(store_dir), *args], env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_report_of_a_sweep_without_finished_runs(store_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["report", "--store", str(store_dir), "-s", "pending", "-o", str(tmp_path / "p.html")]
    )
    assert result.exit_code == 0, result.output
    page = (tmp_path / "p.html").read_text()
    assert "no claim can be checked yet" in page and "Not drawn" in page and "queued" in page


def test_show_prints_the_training_protocol(tmp_path: Path) -> None:
    build_store(tmp_path, seeds=(0,)).close()
    with Store(tmp_path) as store:
        first, second = (r.run_id for r in store.runs("trend")[:2])
        store.set_protocol(first, 2, None)
    shown = [runner.invoke(app, ["show", rid, "--store", str(tmp_path)]) for rid in (first, second)]
    assert "training protocol: 2" in shown[0].output
    assert "training protocol: not recorded" in shown[1].output


def test_provenance_names_what_each_attempt_ran_with(data: report.ReportData, store_dir: Path) -> None:
    """Issue 20: torch, CUDA, cuDNN, GPU, the dirty flag, execution modes and the data digest come
    from the segments (one per attempt); a store without them says "not recorded", never a guess."""
    from rankbias_tui.report.gather import provenance_of
    from rankbias_tui.store import Segment

    with Store(store_dir, create=False) as store:
        runs = store.runs("trend")[:2]
    assert data.provenance["torch"] == ["not recorded"] and data.provenance["execution modes"] == [
        "not recorded"
    ]
    said = dict(rankbias="0.9", git_sha="ab" * 20, git_dirty=True, python="3.11.7", torch="2.14.1")
    gpu = said | dict(cuda="12.8", cudnn="91000", gpu="NVIDIA H100 80GB HBM3", data_sha256="f" * 64)
    segments = [
        Segment(
            runs[0].run_id, 0.0, -1, "cpu", "eager", (runs[0].run_id,), said | dict(data_sha256="e" * 64)
        ),
        Segment(
            runs[0].run_id, 1.0, 40, "cuda:0", "pack of 2, graphed", (runs[0].run_id, runs[1].run_id), gpu
        ),
    ]
    got = provenance_of(runs, segments)
    assert got["torch"] == ["2.14.1"] and got["CUDA"] == ["12.8"] and got["cuDNN"] == ["91000"]
    assert got["GPU"] == ["NVIDIA H100 80GB HBM3"] and got["git tree"] == ["uncommitted changes"]
    assert got["execution modes"] == ["pack of 2, graphed", "single, eager"]
    assert got["data set SHA-256"] == ["e" * 16, "f" * 16] and got["git SHA"] == ["ab" * 6]
    cpu_only = provenance_of(runs, segments[:1])
    assert cpu_only["GPU"] == ["none"] and cpu_only["CUDA"] == ["none"]

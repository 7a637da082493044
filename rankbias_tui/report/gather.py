"""What a reproduction report holds, gathered from the store (no HTML, no Markdown here).

Owns: ``ReportData`` (the sweep's spec as stored, provenance, the four figures as PNG bytes, the
claims report, the per-run summary) and ``gather``. Does not own: the figures themselves
(``figures/``), the claims (``claims/``), the summary row (``export.summary_row``) or the page
(``render.py``). Imports matplotlib (through ``figures``) but never torch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from .. import claims, export, figures, measures
from ..measures import HPARAMS, Status
from ..provenance import provenance
from ..spec import SweepSpec
from ..store import RunRow, Segment, Store
from ..track import Track, untracked

# Where a run's training protocol version lives: the store's ``runs.protocol_version`` (migration 4;
# the engine reports it when a run starts, ``engine.loop.PROTOCOL_VERSION``); runs that never
# started have none, and the report says "not recorded".
PROTOCOL_KEYS = ("protocol_version", "protocol")


@dataclass(frozen=True)
class FigureImage:
    """One figure of the report: its kind, a caption, and a PNG (None with ``note`` saying why)."""

    kind: str
    caption: str
    png: bytes | None
    note: str = ""


@dataclass(frozen=True)
class ReportData:
    sweep: str
    eps: float | None
    spec: dict[str, Any]  # description, runs, seeds, fixed {field: value}, varied {field: [values]}
    provenance: dict[str, list[str]]  # what made the runs (and this report), distinct values
    figures: tuple[FigureImage, ...]
    claims: dict[str, Any] | None  # claims.report, None without finished measured runs
    columns: tuple[str, ...]
    runs: tuple[dict[str, Any], ...]  # export.summary_row, restricted to ``columns``


def protocol_version(run: RunRow) -> str | None:
    """The hook for the protocol version a run was trained under (None: not recorded)."""
    for key in PROTOCOL_KEYS:
        value = getattr(run, key, None) or run.provenance.get(key) or run.config.value(key)
        if value is not None:
            return str(value)
    return None


def _distinct(values: Any) -> list[str]:
    return sorted({str(v) for v in values if v not in (None, "")})


def _mode(segment: Segment) -> str:
    """How a segment trained, without its pack's ids: ``single, graphed``, ``pack of 16, eager``."""
    return segment.mode if segment.mode.startswith("pack") else f"single, {segment.mode}"


def _dirty(value: Any) -> str | None:
    return None if value is None else "uncommitted changes" if value else "clean checkout"


def provenance_of(runs: list[RunRow], segments: list[Segment] | None = None) -> dict[str, list[str]]:
    """The distinct values of what made ``runs``: from their queueing (package version, git SHA,
    Python, devices, protocol) and, per attempt, from the workers that trained them (``segments``:
    rankbias, git SHA and dirty flag, torch, CUDA, cuDNN, GPU, execution mode, data-set digest, and
    a user's model and data set with their files' digests).
    ``not recorded``: no segment says (runs of an older rankbias); ``none``: the workers said there
    was none (a CPU build of torch has no CUDA)."""
    now = provenance()
    queued = [r.provenance for r in runs]
    worked = [s.provenance for s in segments or [] if s.provenance]

    def said(key: str, of: list[dict[str, Any]], short: int | None = None) -> list[str]:
        values = [str(v)[:short] for v in _distinct(p.get(key) for p in of)]
        return values or (["none"] if worked and of is worked else ["not recorded"])

    codes = _distinct(s.code() for s in segments or [])  # a user's model and data set, with digests
    return {
        "rankbias version": said("rankbias", queued + worked),
        "git SHA": said("git_sha", queued + worked, 12),
        "git tree": _distinct(_dirty(p.get("git_dirty")) for p in queued + worked) or ["not recorded"],
        "Python": said("python", queued + worked),
        "torch": said("torch", worked),
        "CUDA (torch build)": said("cuda", worked),
        "cuDNN (torch build)": said("cudnn", worked),
        "GPU": said("gpu", worked),
        "devices": _distinct(r.device for r in runs),
        "execution modes": _distinct(_mode(s) for s in segments or []) or ["not recorded"],
        "data set SHA-256": said("data_sha256", worked, 16),
        "protocol version": _distinct(protocol_version(r) for r in runs) or ["not recorded"],
        "report made by": [f"rankbias {now['rankbias']} ({now['git_sha'][:12] or 'no git SHA'})"],
    } | ({"user code": codes} if codes else {})


def spec_of(runs: list[RunRow], declared: SweepSpec | None) -> dict[str, Any]:
    """The sweep as its stored configs say (fixed and varied fields), with the declared description."""
    configs = [r.config.stored for r in runs]
    varied = measures.varied_fields(configs)
    fields = list(dict.fromkeys(k for c in configs for k in c))
    return {
        "description": declared.description if declared else "",
        "runs": len(runs),
        "statuses": {s: n for s in measures.STATUSES if (n := sum(r.status == s for r in runs))},
        "fixed": {k: configs[0].get(k) for k in fields if k not in varied} if configs else {},
        "varied": {k: sorted({repr(c.get(k)) for c in configs}, key=_order) for k in varied},
    }


def _order(text: str) -> tuple[int, Any]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _first_varied(runs: list[RunRow], preferred: tuple[str, ...]) -> str:
    varied = measures.varied_fields(r.config.stored for r in runs)
    return next((f for f in preferred if f in varied), preferred[0])


def figure_images(
    store: Store,
    sweep: str,
    eps: float | None,
    records: list[dict[str, Any]],
    track: Track[Any] = untracked,
) -> list[FigureImage]:
    """The four figures: rank curves, the Figure-1 contour, one run's spectra, accuracy vs rank."""
    runs = store.runs(sweep)
    done = [r for r in runs if r.status == Status.DONE]
    lowest = min(records, key=lambda r: r["final_avg_rank"])["run_id"] if records else None
    by_curves = _first_varied(runs, HPARAMS)
    by_points = _first_varied(done or runs, ("weight_decay", "lr", "batch_size"))
    wanted = [
        (
            "rank-curves",
            f"Average rank against epoch, one line per {by_curves}.",
            {"sweep": sweep, "by": by_curves, "eps": eps},
        ),
        (
            "contour",
            "Final average rank over two hyperparameters"
            + (
                " (the paper's Figure 1, on the authors' grid)."
                if (sweep or "").startswith("figure1-")
                else "."
            ),
            {"sweep": sweep, "eps": eps},
        ),
        (
            "spectrum",
            f"Singular values of W/||W||_F of run {lowest}, the lowest final average rank.",
            {"run_id": lowest or "", "eps": eps},
        ),
        (
            "accuracy-vs-rank",
            f"Final test accuracy against final average rank, one colour per {by_points}.",
            {"sweep": sweep, "by": by_points, "eps": eps},
        ),
    ]
    out = []
    for kind, caption, options in track(wanted, "figures"):
        try:
            if kind == "spectrum" and lowest is None:
                raise figures.NoData("no finished run with a measurement")
            out.append(FigureImage(kind, caption, _png(figures.make_figure(kind, store, **options))))
        except figures.FigureError as e:
            out.append(FigureImage(kind, caption, None, str(e)))
    return out


SUMMARY_FIELDS = (
    "run_id",
    "status",
    "final_epoch",
    "final_train_acc",
    "final_test_acc",
    "init_avg_rank",
    "final_avg_rank",
    "device",
    "duration_s",
    "error",
)


def _summary(store: Store, run: RunRow, eps: float | None) -> dict[str, Any]:
    """``export.summary_row`` with the config, and its ranks recounted at ``eps`` when given."""
    row = export.summary_row(store, run) | run.config.stored
    if eps is not None:
        init, final = store.init_and_final_spectra(run.run_id)
        row |= {
            "init_avg_rank": measures.avg_rank(init, eps),
            "final_avg_rank": measures.avg_rank(final, eps),
        }
    return row


def gather(
    store: Store,
    sweep: str,
    eps: float | None = None,
    declared: SweepSpec | None = None,
    track: Track[Any] = untracked,
) -> ReportData:
    """Everything the report shows about ``sweep``; ranks recounted at ``eps`` in claims and figures.
    Its loops over runs and figures go through ``track`` (progress bars)."""
    runs = store.runs(sweep)
    records = claims.records_from_store(store, sweep, eps, track=track)
    varied = measures.varied_fields(r.config.stored for r in runs)
    columns = (*SUMMARY_FIELDS[:2], *varied, *SUMMARY_FIELDS[2:])
    summaries = (_summary(store, r, eps) for r in track(runs, "runs"))
    rows = tuple({k: row.get(k) for k in columns} for row in summaries)
    return ReportData(
        sweep=sweep,
        eps=eps,
        spec=spec_of(runs, declared),
        provenance=provenance_of(runs, [s for r in runs for s in store.segments(r.run_id)]),
        figures=tuple(figure_images(store, sweep, eps, records, track)),
        claims=claims.report(records, sweep, eps) if records else None,
        columns=columns,
        runs=rows,
    )

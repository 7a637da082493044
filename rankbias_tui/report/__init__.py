"""``rankbias report``: one shareable page per sweep (HTML or Markdown) for a review or a lab meeting.

Two modules: ``gather`` (what the report holds: the sweep's spec, provenance, the four figures,
the claims and the per-run summary, from the store) and ``render`` (the page, written by hand,
self-contained, every piece of user text escaped). Does not own: the figures (``figures/``), the
claims (``claims/``) or the command line (``cli/analysis.py``). Never imports torch.
"""

from .gather import PROTOCOL_KEYS, FigureImage, ReportData, gather, protocol_version
from .render import render_html, render_markdown, write

__all__ = [
    "PROTOCOL_KEYS",
    "FigureImage",
    "ReportData",
    "gather",
    "protocol_version",
    "render_html",
    "render_markdown",
    "write",
]

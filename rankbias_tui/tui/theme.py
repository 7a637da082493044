"""The app's colours that carry meaning, and the arithmetic that keeps them readable.

Run statuses are always their word, coloured on top; the colours are picked from the xterm
256-colour cube so that they read the same in truecolor and in 256 colours, and each keeps a WCAG
contrast of at least 4.5:1 on the table's rows of the default theme in truecolor, 256 colours and
the 16 colours of ``TERM=xterm`` (``tests/functional/test_tui_contrast.py`` computes it from the
rendered rows). The cursor row is drawn reversed (the row's text and background swapped, plus
bold): as readable as the text itself, and visible with ``NO_COLOR`` too.
"""

from __future__ import annotations

from rich.color import Color, ColorSystem

from ..measures import Status

STATUS_STYLE = {
    Status.RUNNING: "bold #5fd7ff",
    Status.QUEUED: "",
    Status.STOPPED: "italic #afafaf",
    Status.INTERRUPTED: "bold #ffaf5f",  # its scheduler died: the next one adopts it
    Status.FAILED: "bold #ff8787",
    Status.DIVERGED: "#ffd75f",
    Status.DONE: "#87d787",
    Status.CANCELLED: "#afafaf",
}
# Chart series: a marker each as well as a colour, so that they differ without colour too.
MARKERS = ("●", "+", "x", "o", "*", "#", "@", "%", "&", "=", "~", "$")
MIN_CONTRAST = 4.5
SYSTEMS = {"truecolor": None, "256": ColorSystem.EIGHT_BIT, "16": ColorSystem.STANDARD}


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour (0-255 channels)."""

    def channel(c: int) -> float:
        x = c / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg: str | Color, bg: str | Color, system: ColorSystem | None = None) -> float:
    """WCAG contrast ratio (1-21) of two colours as a terminal with ``system`` shows them
    (None: truecolor; 256 and 16 colours take rich's nearest palette colour)."""

    def rgb(c: str | Color) -> tuple[int, int, int]:
        color = Color.parse(c) if isinstance(c, str) else c
        t = (color.downgrade(system) if system is not None else color).get_truecolor()
        return t.red, t.green, t.blue

    hi, lo = sorted((luminance(rgb(fg)), luminance(rgb(bg))), reverse=True)
    return (hi + 0.05) / (lo + 0.05)

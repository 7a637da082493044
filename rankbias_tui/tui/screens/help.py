"""Every key of every screen (``?`` from anywhere)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
Runs go on in the background scheduler: quitting does not stop them.

Dashboard
  up down pgup pgdn  move            enter  run detail
  /        filter: key=value is exact (B=8, wd=0.01, status=failed);
           other words match a part of the id, sweep, status, reason
           (esc: back to the table, esc again: clear)
  1-9 0    sort by that column (again: reverse; or click a header)
  s  S     list the columns with their numbers / reverse the sort
  space    mark a run    v  compare the marked runs (none: the sweep)
  x        cancel a run  r  resume a cancelled, failed, stopped or interrupted run
  l        launch a sweep            e  export the rows shown to CSV
Run detail
  1 2 3 4  curves / spectrum / config and error / log (warnings, scheduler lines)
  left right  earlier / later measurement (home, end: first, last)
  up down  layer of the histogram (spectrum tab)
  x r e    cancel / resume / export this run's metrics     esc  back
Compare
  g        group: each run, batch size, lr, weight decay
  e        export the compared runs                        esc  back
Launch
  enter    queue the highlighted sweep (finished runs are skipped)
Anywhere
  ?        this help     q  quit (`rankbias stop` ends the scheduler)
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(HELP, id="help-text")

"""Every key of every screen (``?`` from anywhere)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
Runs go on in the background scheduler: quitting does not stop them.
up/down, pgup/pgdn scroll this help; esc closes it.

Dashboard
  up down pgup pgdn home end   move        enter  run detail
  left right   a page of columns sideways (the run id stays)
  /      filter; esc: back to the table, esc again: clear it
         key=value exact: B=8 wd=0.01 status=failed sweep=quick
         key>n key<n key>=n key<=n: acc>0.9 rank<80 loss<0.1 epoch>=10
         prog, eta and config fields too; other words match a part of
         the id, sweep, status or reason. "N of M shown" counts the rows
  s      pick the sort column from a list (any column; enter sorts)
  1-9 0  sort by columns 1-10 (again: reverse); S reverses; or click
  p      next failed, diverged, interrupted or stalled run
  P      problems first (in any sort order)
  space  mark a run    a  mark every row shown (again: unmark)
  v      compare the marked runs; none: the rows shown when filtered,
         else all runs of the cursor's sweep
  x      cancel a run  r  resume a cancelled, failed, stopped or
         interrupted run
  l      launch a sweep          e  export the rows shown to CSV
  tab    to the sweep overview: up/down, enter shows that sweep's runs
         (a filter: esc clears it); o hides or shows the overview
  Overview: ✓ done ▶ running … queued ✗ failed/diverged/interrupted
  ■ cancelled/stopped; progress; rank best/median; acc best/median;
  sparkline: how many runs at each average rank, lowest first
Run detail
  1 2 3 4  curves / spectrum / config and error / log
  left right  earlier / later measurement, home end: first / last
           (spectrum tab)
  up down  layer of the histogram (spectrum tab), or scroll
  x r e    cancel / resume / export this run's metrics   esc  back
Compare
  g      group: each run, batch size, lr, weight decay
  m      measure: average rank, test accuracy, train loss, each
         layer's rank
  e      export the compared runs                        esc  back
Launch
  enter  queue the highlighted sweep (finished runs are skipped)
Anywhere
  ?      this help     q  quit (`rankbias stop` ends the scheduler)
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(HELP, id="help-text", markup=False)

    def on_mount(self) -> None:
        self.query_one("#dialog").focus()  # arrows and pages scroll it

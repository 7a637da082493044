"""``rankbias run --dry-run``: the runs, how they are grouped into packs, and where each would go.

Owns: ``plan_waves``, which plans with the scheduler's own rules (``Scheduler._fill_slots``: the
same pack keys, sizes and slot sharing) on a scheduler that starts nothing and writes nothing,
assuming the tasks of a wave all end before the next one starts; and ``dry_run``, the lines
``rankbias run --dry-run`` prints (the store, if there is one, is only read: finished runs are
left out, interrupted ones resume from their checkpoint). Does not own the rules themselves
(``scheduler.packing``, ``scheduler.service``) nor the backends (``scheduler.backends``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..measures import FINISHED
from ..store import Store, StorePaths
from ..sweep import PlannedRun
from .backends import prepare
from .devices import Slots
from .options import SchedulerOptions
from .service import Scheduler


@dataclass(frozen=True)
class Placement:
    """One task of a wave: its device slot and its runs (more than one: a fused pack)."""

    device: str
    runs: tuple[PlannedRun, ...]


@dataclass(eq=False)
class _Slot:
    """All the scheduler reads of a host while it fills slots."""

    device: str
    starting: bool = True  # the tasks of a wave start together: their memory is not in use yet


class _Planner(Scheduler):
    """A scheduler whose starts only record what would start (the store is not touched)."""

    def __init__(
        self, runs: list[PlannedRun], slots: Slots, resumes: dict[str, int | None], options: SchedulerOptions
    ):
        super().__init__(None, runs, slots, options, requests_after=0)  # type: ignore[arg-type]
        self.resumes: dict[str, int | None] = resumes
        self.wave: list[Placement] = []

    def _resume_step(self, run: PlannedRun) -> int | None:
        return self.resumes.get(run.run_id)

    def _start(self, run: PlannedRun, device: str) -> None:
        self._place([run], device)

    def _start_pack(self, runs: list[PlannedRun], device: str) -> None:
        self._place(runs, device)

    def _place(self, runs: list[PlannedRun], device: str) -> None:
        self.hosts.append(_Slot(device))  # type: ignore[arg-type]
        self.wave.append(Placement(device, tuple(runs)))


def plan_waves(
    runs: list[PlannedRun], slots: Slots, resumes: dict[str, int | None], options: SchedulerOptions
) -> list[list[Placement]]:
    """The tasks the scheduler would start, wave by wave."""
    planner = _Planner(runs, slots, resumes, options)
    waves = []
    while planner.queue:
        planner._fill_slots()
        waves.append(planner.wave)
        planner.wave, planner.hosts = [], []
    return waves


def dry_run(
    planned: list[PlannedRun], store_dir: Path, options: SchedulerOptions, label: Callable[[PlannedRun], str]
) -> list[str]:
    """What ``rankbias run --dry-run`` prints for ``planned`` into ``store_dir`` (``label``: a run's name)."""
    backend = prepare(options, connect=False)
    todo, resumes = _still_to_run(planned, store_dir)
    waves = plan_waves(todo, backend.slots, resumes, options)
    lines = [
        f"{len(planned)} runs: {len(planned) - len(todo)} already finished, {len(todo)} to run on "
        f"{backend.where}; nothing is started (--dry-run)"
    ]
    for number, wave in enumerate(waves, 1):
        lines.append(f"wave {number}: {len(wave)} task(s), {sum(len(p.runs) for p in wave)} run(s)")
        for p in wave:
            kind = f"pack of {len(p.runs)}" if len(p.runs) > 1 else "single run"
            names = ", ".join(label(r) + _resume_note(resumes.get(r.run_id)) for r in p.runs)
            lines.append(f"  {p.device}  {kind}: {names}")
    return lines


def _resume_note(step: int | None) -> str:
    return f" (resumes at step {step})" if step is not None else ""


def _still_to_run(
    planned: list[PlannedRun], store_dir: Path
) -> tuple[list[PlannedRun], dict[str, int | None]]:
    """The runs not finished in the store (all of them if there is none), and their resume steps."""
    if not StorePaths.of(store_dir).database.exists():
        return list(planned), {}
    with Store(store_dir) as store:
        rows = {r.run_id: store.run(r.run_id) for r in planned}
    todo = [r for r in planned if rows[r.run_id] is None or rows[r.run_id].status not in FINISHED]
    return todo, {r.run_id: rows[r.run_id].checkpoint_step for r in todo if rows[r.run_id] is not None}

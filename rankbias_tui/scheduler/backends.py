"""Where runs are trained: one row per backend that ``SchedulerOptions.backend`` may name.

Owns: ``BACKENDS``, the table from a backend's name to how it is checked and prepared (harlequin's
adapter table: a new backend is one more row, and a launcher meeting ``launcher.Launcher``), and
``check_backend`` and ``prepare``, which read it: ``prepare`` gives the ``devices.Backend``
(slots, launcher, where) a scheduler gets for its options, or ``devices.BackendError``. ``local``:
worker processes on this machine (``scheduler.local``); ``ray``: tasks on a Ray cluster
(``scheduler.ray_backend``, imported only then: nothing else imports Ray). Does not own what
either launcher does, nor the loop that uses them (``scheduler.service``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import local
from .devices import Backend, BackendError
from .options import SchedulerOptions


@dataclass(frozen=True)
class BackendRow:
    """One backend: what it is, in a few words (the ``--backend`` help), how it is prepared
    (``connect`` False: plan without connecting, for ``--dry-run``), and what can be checked before
    a background scheduler starts (cheap: no torch, no connection)."""

    summary: str
    prepare: Callable[[SchedulerOptions, bool], Backend]
    check: Callable[[], None] = lambda: None


def _ray(options: SchedulerOptions, connect: bool) -> Backend:
    from .ray_backend import prepare as prepare_ray  # noqa: PLC0415 - Ray only when asked for

    return prepare_ray(options, connect)


def _ray_installed() -> None:
    from .ray_backend import require_ray  # noqa: PLC0415 - Ray only when asked for

    require_ray()


BACKENDS: dict[str, BackendRow] = {
    "local": BackendRow("worker processes on this machine", local.prepare),
    "ray": BackendRow("tasks on a Ray cluster", _ray, _ray_installed),
}


def describe_backends() -> str:
    """Every backend in one line: ``local: worker processes on this machine; ray: ...``."""
    return "; ".join(f"{name}: {row.summary}" for name, row in BACKENDS.items())


def check_backend(options: SchedulerOptions) -> None:
    """What can be checked before a background scheduler starts: the name, and (Ray) installed."""
    row = BACKENDS.get(options.backend)
    if row is None:
        raise BackendError(f"unknown backend {options.backend!r}: use one of {', '.join(BACKENDS)}")
    row.check()


def prepare(options: SchedulerOptions, connect: bool = True) -> Backend:
    """The backend for ``options``; DeviceError or BackendError if unusable.

    ``connect`` False (``--dry-run``): plan without starting Ray on this machine."""
    check_backend(options)
    return BACKENDS[options.backend].prepare(options, connect)

"""Where runs are trained: the backend that ``SchedulerOptions.backend`` names.

Owns: the backend names and ``prepare``: the ``devices.Backend`` (slots, launcher, where) a
scheduler gets for its options, or ``devices.BackendError`` - ``local``: worker
processes on this machine (``devices.plan_slots``, ``hosts.ProcessLauncher``); ``ray``: tasks on a
Ray cluster (``ray_backend``, imported only then: nothing else imports Ray). Does not own what
either launcher does, nor the loop that uses them (``scheduler.service``).
"""

from __future__ import annotations

from typing import Any

from .devices import Backend, BackendError, plan_slots

BACKENDS = ("local", "ray")


def check_backend(options: Any) -> None:
    """What can be checked before a background scheduler starts: the name, and Ray installed."""
    if options.backend not in BACKENDS:
        raise BackendError(f"unknown backend {options.backend!r}: use one of {', '.join(BACKENDS)}")
    if options.backend == "ray":
        from .ray_backend import require_ray  # noqa: PLC0415 - Ray only when asked for

        require_ray()


def prepare(options: Any, connect: bool = True) -> Backend:
    """The backend for ``options`` (a ``SchedulerOptions``); DeviceError or BackendError if unusable.

    ``connect`` False (``--dry-run``): plan without starting Ray on this machine."""
    check_backend(options)
    if options.backend == "ray":
        from .ray_backend import prepare as prepare_ray  # noqa: PLC0415 - Ray only when asked for

        return prepare_ray(options, connect)
    slots = plan_slots(options.devices, options.per_device)
    return Backend(slots, None, f"{', '.join(slots.devices)} ({slots.per_device} at a time per device)")

"""Planning runs onto devices and running them in worker processes (no torch imported here).

What other packages use is exported here and nowhere else: the client API (``client``: status,
spawn/ensure, launch, cancel, resume, stop), the options object carried from the CLI to the
scheduler, and the foreground ``Scheduler`` that ``rankbias run --headless`` drives.
"""

from .client import (
    SchedulerStatus,
    cancel,
    ensure,
    launch,
    resume,
    scheduler_pid,
    spawn,
    status,
    stop,
)
from .devices import DeviceError, Slots, check_syntax, plan_slots
from .hosts import Live
from .lock import SchedulerLock, StoreBusy
from .options import SchedulerOptions
from .service import Scheduler, StopRequested

__all__ = [
    "DeviceError",
    "Live",
    "Scheduler",
    "SchedulerLock",
    "SchedulerOptions",
    "SchedulerStatus",
    "Slots",
    "StopRequested",
    "StoreBusy",
    "cancel",
    "check_syntax",
    "ensure",
    "launch",
    "plan_slots",
    "resume",
    "scheduler_pid",
    "spawn",
    "status",
    "stop",
]

"""Planning runs onto devices and running them in worker processes (no torch imported here)."""

from .devices import DeviceError, Slots, plan_slots
from .lock import SchedulerLock, StoreBusy
from .service import Live, Scheduler, StopRequested

__all__ = [
    "DeviceError",
    "Live",
    "Scheduler",
    "SchedulerLock",
    "Slots",
    "StopRequested",
    "StoreBusy",
    "plan_slots",
]

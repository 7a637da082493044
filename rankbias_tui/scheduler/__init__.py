"""Planning runs onto devices and running them in worker processes (no torch imported here).

What other packages use is exported here and nowhere else: the client API (``client``: status,
spawn/ensure, launch, cancel, resume, stop), the options object carried from the CLI to the
scheduler, the foreground ``Scheduler`` that ``rankbias run --headless`` drives, the backends
(``BACKENDS``, the table from a backend's name to how it is checked and prepared; ``Launcher``,
the protocol its launcher meets), and what a scheduler does about faults (``adopt`` interrupted
runs; ``Stopped`` and ``signals_stop``).
"""

from .backends import BACKENDS, check_backend, describe_backends, prepare
from .checkpoint_dir import parse as parse_checkpoint_dir
from .client import (
    SchedulerStatus,
    Spawner,
    cancel,
    ensure,
    launch,
    resume,
    scheduler_pid,
    spawn,
    status,
    stop,
)
from .devices import Backend, BackendError, DeviceError, Slots, check_syntax, plan_slots
from .dryrun import dry_run
from .faults import Interrupted, Stopped, signals_stop
from .hosts import Live
from .launcher import Launch, Launcher
from .lock import SchedulerLock, StoreBusy
from .options import RAY_CLIENT, SchedulerOptions
from .recovery import adopt, stop_superseded
from .service import Scheduler, StopRequested

__all__ = [
    "RAY_CLIENT",
    "BACKENDS",
    "Backend",
    "BackendError",
    "DeviceError",
    "Interrupted",
    "Launch",
    "Launcher",
    "Live",
    "Scheduler",
    "SchedulerLock",
    "SchedulerOptions",
    "SchedulerStatus",
    "Spawner",
    "Slots",
    "StopRequested",
    "Stopped",
    "StoreBusy",
    "adopt",
    "parse_checkpoint_dir",
    "stop_superseded",
    "cancel",
    "check_backend",
    "check_syntax",
    "describe_backends",
    "dry_run",
    "ensure",
    "launch",
    "plan_slots",
    "prepare",
    "resume",
    "scheduler_pid",
    "signals_stop",
    "spawn",
    "status",
    "stop",
]

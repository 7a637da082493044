"""Which queued runs train together as one fused pack, and how many at most (no torch here).

A pack (engine.pack) trains K runs of the same small MLP as one program: they must agree on
everything that fixes shapes, data and cadence, and may differ in what each member carries on its
own (seed, lr, momentum, weight decay and schedule, rank threshold, divergence guard). The size of
a pack is ``--pack-size``, else the run's ``pack_size``, else sized from the memory free on its
device now (a GPU's, or the machine's available memory for the CPU: ``scheduler.memory``), shared
with the packs starting beside it; a pack that ran out of memory (or whose worker the OOM killer
took) retries at half its size. Packs are also split so that every free worker slot gets work (on
a CPU, two single-threaded packs beat one pack on two cores).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Hashable, Iterable

from ..catalog import DATASETS, model_entry
from ..spec import RunConfig
from ..sweep import PlannedRun

MAX_PACK_SIZE = 256  # beyond this a pack-step no longer gets cheaper per member (bench/README.md)
CPU_PACK_SIZE = 16  # the most on a CPU: more members no longer train faster there
MAX_DEMAND = 256  # the most tasks a cluster's autoscaler is asked to make room for at once
MEMORY_SHARE = 0.4  # of a GPU's free memory that one pack may plan to use
CPU_MEMORY_SHARE = 0.5  # of the machine's available memory (the rest: the workers' own torch, data)
# Fields each member of a pack carries on its own; every other run field must be equal.
PER_MEMBER_FIELDS = frozenset(
    {
        "seed",
        "lr",
        "momentum",
        "weight_decay",
        "lr_milestones",
        "lr_gamma",
        "rank_eps",
        "diverge_after",
        "diverge_acc",
        "pack_size",
    }
)


def pack_key(cfg: RunConfig) -> Hashable | None:
    """Runs with equal keys may share a pack; None: this run never joins one."""
    if not model_entry(cfg.model).packs or cfg.dataset not in DATASETS or cfg.precision != "fp32":
        return None  # a user's data set: its size is known only once loaded
    fields = cfg.model_dump(mode="json")
    return tuple(sorted((k, json.dumps(v)) for k, v in fields.items() if k not in PER_MEMBER_FIELDS))


def member_bytes(cfg: RunConfig) -> int:
    """Estimated device memory of one member while training, in bytes (float32).

    Parameters ~6x (weights, two gradient copies, update temporary, momentum, spectra copies in
    float64), activations ~10 floats per unit and example, the batch's inputs, and eval chunks.
    Input size and classes are the data set's catalog row."""
    data = DATASETS[cfg.dataset]
    d_in, classes = data.input_size, data.classes
    params = (
        d_in * cfg.width + (cfg.depth - 1) * cfg.width**2 + cfg.width * classes + 4 * cfg.depth * cfg.width
    )
    activations = cfg.batch_size * (d_in + 10 * cfg.depth * cfg.width)
    return 4 * (6 * params + activations) + (1 << 20)


def auto_pack_size(cfg: RunConfig, free_memory: int | None, sharers: int = 1, cpu: bool = False) -> int:
    """Pack size for ``cfg`` on a device with ``free_memory`` bytes free now (None: not known, the
    CPU's ``CPU_PACK_SIZE``), to be shared by ``sharers`` packs starting now (this one included);
    ``cpu``: the machine's memory (``CPU_MEMORY_SHARE`` of it, at most ``CPU_PACK_SIZE`` members).

    Free, not total: on a GPU shared with other processes a size from the total runs out of
    memory, then halves, then halves again (engine.devices.free_memory); on a CPU a pack of 16
    whatever the memory was killed by the OOM killer, then again, run after run (issue 19)."""
    if free_memory is None:
        return CPU_PACK_SIZE
    share, most = (CPU_MEMORY_SHARE, CPU_PACK_SIZE) if cpu else (MEMORY_SHARE, MAX_PACK_SIZE)
    budget = int(share * free_memory) // max(1, sharers)
    return max(1, min(most, budget // member_bytes(cfg)))


def pack_limit(cfg: RunConfig, override: int | None, auto: Callable[[], int], cap: int | None) -> int:
    """The most members a pack led by ``cfg`` may have: ``--pack-size``, the run's ``pack_size``,
    else the automatic size (called only then), and never above ``cap`` (set after an OOM)."""
    limit = override or cfg.pack_size or auto()
    return max(1, min(limit, cap or limit))


def share(limit: int, queued: int, free_slots: int) -> int:
    """Pack size that spreads ``queued`` runs over ``free_slots`` slots, at most ``limit``."""
    return max(1, min(limit, math.ceil(queued / max(1, free_slots))))


def tasks_needed(runs: Iterable[PlannedRun], override: int | None, most: int = MAX_DEMAND) -> int:
    """How many tasks (packs or single runs) ``runs`` become, about (``override``: ``--pack-size``;
    packs of CPU_PACK_SIZE unless a run says its size), never more than ``most``: the demand a
    cluster's autoscaler is asked to make room for. Counted as the runs come, so a long queue is
    read only until ``most`` is reached."""
    groups: dict[Hashable, tuple[int, int]] = {}  # pack key -> (runs so far, pack size)
    tasks = 0
    for run in runs:
        key = pack_key(run.config)
        if key is None:
            tasks += 1
        else:
            count, limit = groups.get(key, (0, max(1, override or run.config.pack_size or CPU_PACK_SIZE)))
            groups[key] = (count + 1, limit)
            tasks += count % limit == 0  # this run opens a new pack of its key
        if tasks >= most:
            return most
    return tasks


def take_mates(
    queue: deque[PlannedRun], first: PlannedRun, size: int, resume_of: Callable[[PlannedRun], int | None]
) -> list[PlannedRun]:
    """Remove from ``queue`` (in order) up to ``size - 1`` runs that may share ``first``'s pack:
    the same ``pack_key`` and the same resume step (members train in lockstep)."""
    key = pack_key(first.config)
    if key is None or size <= 1:
        return []
    resume = resume_of(first)
    mates = []
    for run in list(queue):
        if len(mates) == size - 1:
            break
        if pack_key(run.config) == key and resume_of(run) == resume:
            mates.append(run)
            queue.remove(run)
    return mates

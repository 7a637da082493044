"""The Ray backend: each run, or fused pack, is a Ray task on a cluster (with ``ray_cluster`` and
``ray_place``, the only modules that import ray, and only once asked to).

Owns: ``prepare`` (connect through ``ray_cluster``, then plan on the live nodes: the resources one
task asks for and how many such tasks the cluster holds, ``ray_plan``), and ``RayLauncher``, which
starts a task per run or pack and hands the scheduler the same ``Host`` a worker process gives it:
a relay thread reads the task's stream of events (a Ray streaming generator running
``scheduler.ray_task.run_job`` on a node) into a local pipe, writing each checkpoint's bytes (if
they are the ones the worker wrote: the digest it sent) into the store's checkpoint directory
before passing on its acknowledgement (``ray_files``); ``RayTask`` stands in for
the process (cancel, kill, exit code). A task lost with its node or worker ends with
``protocol.WorkerLost``, so the scheduler requeues its runs; they resume from their last
acknowledged checkpoint on whichever node Ray picks. Pack members are cancelled through a small
mailbox actor the pack's task polls. The launcher follows the cluster (``capacity``), asks its
autoscaler for room for the work queued (``want``) and makes no Ray call while the head does not
answer (``ray_cluster.HeadWatch``).

Does not own: the queue, packing or the store (``scheduler.service``, which stays the one writer),
nor training (``engine``, run by ``ray_task`` in a worker process on the node). Nothing imports
this module unless ``--backend ray`` is asked for; without Ray, ``RayMissing`` says how to get it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checkpoints
from ..measures import Status
from ..protocol import GpuMemory, Placed, WorkerEnded, WorkerLost
from ..sweep import PlannedRun
from . import checkpoint_dir
from .devices import Backend, cuda_count
from .hosts import Host
from .launcher import Launch
from .options import SchedulerOptions
from .ray_cluster import HeadWatch, alive_nodes, connect, import_ray, require_ray
from .ray_files import store_file, write_failed
from .ray_place import GpuBundles
from .ray_plan import Resources, plan
from .ray_task import CheckpointFile, Job, JobRun, run_job

log = logging.getLogger(__name__)


def prepare(options: SchedulerOptions, connect_now: bool = True) -> Backend:
    """The Ray backend for ``options`` (``backends.prepare``): connect, then plan on the live nodes.

    ``connect_now`` False and no address (``--dry-run``): plan for a private instance on this
    machine without starting it."""
    require_ray()  # a clear message first, even for a dry run
    if connect_now or options.ray_address is not None:
        cluster, nodes = connect(options.ray_address), alive_nodes()
    else:
        gpus = cuda_count() if options.devices != "cpu" else 0
        nodes = [{"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}]
        cluster = "a private Ray instance on this machine (not started)"
    slots, resources = plan(options.devices, options.per_device, nodes, options.ray_address is not None)
    at_once = f"{slots.capacity} at a time" if slots.capacity else "none fits yet: waiting for nodes"
    where = f"{cluster}; each task asks for {resources.describe()}, {at_once} (follows the nodes)"
    if options.checkpoint_dir is not None and connect_now:  # made (or checked) once, from here
        where += f"; {checkpoint_dir.prepare(checkpoint_dir.parse(options.checkpoint_dir))}"
    ray = import_ray()
    watch = HeadWatch(ray.get_runtime_context().gcs_address) if ray.is_initialized() else None
    return Backend(slots, RayLauncher(resources, watch), where)


class RayTask:
    """The scheduler's handle on one task, in the shape of a ``multiprocessing.Process``."""

    def __init__(
        self,
        stream: Any,
        writer: Any,
        checkpoint_root: Path,
        name: str,
        refused: str | None = None,
        watch: HeadWatch | None = None,
    ):
        """``refused``: why the task was not submitted (it ends at once, failing its runs; lost,
        requeued, when the head is not answering). ``watch``: while the head does not answer, the
        task is not cancelled through Ray (that would block) and is not waited for."""
        self.stream, self.refused, self.watch = stream, refused, watch
        self._abandoned = False
        # readable once the relay has ended, as a process's sentinel is once it has exited
        self.sentinel, self._ended = os.pipe()
        self.pid: int | None = None  # the worker process on the node, once placed
        self.placed: Placed | None = None
        self.gpu_free: int | None = None  # bytes free on its GPU when its worker started (ray_place)
        self.exitcode: int | None = None
        self.submitted = time.monotonic()
        self.wait_s: float | None = None  # from submission to the task's start on a node
        self.event_bytes = self.checkpoint_bytes = 0  # what came back, pickled (benchmarks/ray_bench.py)
        self._thread = threading.Thread(
            target=_relay, args=(self, writer, checkpoint_root), name=f"ray-relay-{name}", daemon=True
        )
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive() and not self._abandoned

    def join(self, timeout: float | None = None) -> None:
        if self._abandoned:
            return
        self._thread.join(timeout)
        if not self._thread.is_alive() and self.sentinel >= 0:
            os.close(self.sentinel)  # the scheduler forgets a host once it has joined it
            self.sentinel = -1

    def terminate(self) -> None:
        if self._head_silent():
            return
        import_ray().cancel(self.stream)  # the task ends its worker process and its stream

    def kill(self) -> None:
        if not self._head_silent():
            import_ray().cancel(self.stream, force=True)

    def _head_silent(self) -> bool:
        """While the head does not answer, a Ray call would block: the task is abandoned instead
        (its relay waits on a cluster that may be gone; the scheduler no longer waits for it)."""
        self._abandoned = self._abandoned or (self.watch is not None and not self.watch.answering())
        return self._abandoned


class RayLauncher:
    """Starts runs and packs as Ray tasks asking for ``resources``: a ``launcher.Launcher``, the
    twin of the local backend's ``local.ProcessLauncher``. A GPU task goes into the bundle of one
    GPU (``ray_place``): spread over the GPUs and nodes, not packed onto few."""

    def __init__(self, resources: Resources, watch: HeadWatch | None = None):
        """``watch``: the head's probe; while it does not answer, no Ray call is made (each would
        block) and after ``ray_cluster.HEAD_LOST_S`` the scheduler stops (``ClusterLost``)."""
        self.resources, self.watch = resources, watch
        self.gpus = GpuBundles(resources.per_gpu) if resources.gpu else None  # each GPU's bundle
        self._remote: Any = None
        self._mailbox: Any = None

    def start_run(self, run: PlannedRun, resume: int | None, device: str, launch: Launch) -> Host:
        return self._start([run], [resume], device, launch, pack=False)

    def start_pack(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch
    ) -> Host:
        return self._start(runs, resumes, device, launch, pack=True)

    def _start(
        self, runs: list[PlannedRun], resumes: list[int | None], device: str, launch: Launch, pack: bool
    ) -> Host:
        reader, writer = mp.get_context("spawn").Pipe(duplex=False)
        refused = self._unfit() if self._answering() else LOST_HEAD
        try:
            job_runs = tuple(_job_run(launch, r, step) for r, step in zip(runs, resumes, strict=True))
        except checkpoints.CheckpointMissing as err:  # never "start again" over files not there now
            refused = refused or str(err)
        bundle, refused = self._bundle(refused)
        if refused:  # a node that fitted has left, or checkpoints are missing: say so at once
            task = RayTask(None, writer, launch.checkpoint_root, runs[0].run_id, refused, self.watch)
            return Host(task, reader, device)
        job = Job(
            job_runs,
            pack,
            self.resources.gpu,
            str(launch.data_dir) if launch.data_dir else None,
            1,
            launch.graphs,
            str(launch.checkpoint_root),
            launch.checkpoint_dir,
        )
        key = uuid.uuid4().hex
        stream = (
            self._task()
            .options(
                num_cpus=self.resources.num_cpus,
                num_gpus=self.resources.num_gpus,
                max_retries=0,
                name=f"rankbias-{runs[0].run_id}" + (f"+{len(runs) - 1}" if pack else ""),
                **(self.gpus.strategy(bundle) if bundle is not None else {}),
            )
            .remote(job, self._mail() if pack else None, key)
        )
        task = RayTask(stream, writer, launch.checkpoint_root, runs[0].run_id, watch=self.watch)
        if bundle is not None:
            self.gpus.add(bundle, task)
        control = _Control(self._mailbox, key) if pack else None
        return Host(task, reader, device, control=control, size=len(runs))

    def capacity(self) -> int:
        """How many tasks asking for ``resources`` the live nodes hold at once now (``Elastic``): 0
        while the head does not answer, ``ClusterLost`` once it has been silent too long."""
        if not self._answering():
            self.watch.check()  # type: ignore[union-attr]
            return 0
        if self.gpus is not None:  # GPU tasks: the GPUs' bundles, made and removed as nodes come and go
            return self.gpus.follow()
        return sum(self.resources.per_node(n) for n in alive_nodes())

    def want(self, tasks: int) -> None:
        """``launcher.Scalable``: ask Ray's autoscaler for room for ``tasks`` tasks of this shape in
        all (a standing request, replaced by the next; 0 withdraws it). Without an autoscaler it is
        only recorded. Nothing is asked while the head does not answer."""
        if not self._answering():
            return
        from ray.autoscaler.sdk import request_resources

        shape = {"CPU": self.resources.num_cpus} | (
            {"GPU": self.resources.num_gpus} if self.resources.gpu else {}
        )
        request_resources(bundles=[shape] * tasks)
        log.info("asked the autoscaler for room for %d task(s) of %s", tasks, self.resources.describe())

    def _answering(self) -> bool:
        return self.watch is None or self.watch.answering()

    def next_gpu_memory(self) -> tuple[int | None, int]:
        """What the GPU the next task goes to had free, as a task measured it (``RemoteGpus``)."""
        return self.gpus.next_memory() if self.gpus is not None else (None, 1)

    def _bundle(self, refused: str | None) -> tuple[Any, str | None]:
        """The bundle of the GPU a GPU task goes into (``ray_place``; None for a CPU task), and why
        the task is refused (``refused``, or: no GPU is reserved yet)."""
        if self.gpus is None or refused:
            return None, refused
        bundle = self.gpus.choose()
        return bundle, None if bundle else "no GPU of the Ray cluster is reserved for rankbias (yet)"

    def _unfit(self) -> str | None:
        """Why no live node can take a task now, or None."""
        nodes = alive_nodes()
        if any(self.resources.fits(n) for n in nodes):
            return None
        return (
            f"no live node of the Ray cluster has the {self.resources.describe()} a run asks for "
            f"({len(nodes)} nodes)"
        )

    def _task(self) -> Any:
        if self._remote is None:
            self._remote = import_ray().remote(num_returns="streaming")(_task_main)
        return self._remote

    def _mail(self) -> Any:
        if self._mailbox is None:
            # on the head node: it outlives any worker node that leaves the cluster
            head = {"node:__internal_head__": 0.001}
            self._mailbox = import_ray().remote(num_cpus=0, resources=head)(_Mailbox).remote()
        return self._mailbox


LOST_HEAD = "the Ray cluster's head is not answering"


def _job_run(launch: Launch, run: PlannedRun, resume: int | None) -> JobRun:
    """The run with the bytes of the checkpoints it may resume from (the acknowledged one and the
    one before it) and their acknowledged digests: the worker on the node verifies and falls back
    as a local one does. ``checkpoints.CheckpointMissing`` if none of them is here (as locally).
    Checkpoints a node stored elsewhere (``--checkpoint-dir``) are read there, on the node."""
    config = run.config.model_dump_json()
    if resume is None:
        return JobRun(run.run_id, config)
    if location := launch.locations(run.run_id).get(resume):
        digests = tuple(launch.acknowledged(run.run_id).items())
        return JobRun(run.run_id, config, resume, digests=digests, source=location.rpartition("/")[0])
    directory = checkpoints.run_directory(launch.checkpoint_root, run.run_id)
    files = tuple(
        (s, checkpoints.path(directory, s).read_bytes()) for s in checkpoints.available(directory, resume)
    )
    return JobRun(run.run_id, config, resume, files, tuple(launch.acknowledged(run.run_id).items()))


def _task_main(job: Job, mailbox: Any, key: str) -> Any:
    """The Ray task (on a node): ``run_job``, with cancels for a pack fetched from ``mailbox``."""
    import ray

    def poll() -> list[str]:
        try:
            return ray.get(mailbox.take.remote(key), timeout=10) if mailbox is not None else []
        except ray.exceptions.RayError:
            return []  # no mailbox now: a cancel may come later, or the task is cancelled whole

    node = (ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id())
    yield from run_job(job, node, poll, ray.get_gpu_ids())  # the GPU's index on its node, for people


class _Mailbox:
    """Pack cancels waiting for their task (a Ray actor: the tasks poll it)."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[str]] = {}

    def post(self, key: str, run_id: str) -> None:
        self.waiting.setdefault(key, []).append(run_id)

    def take(self, key: str) -> list[str]:
        return self.waiting.pop(key, [])


@dataclass(frozen=True)
class _Control:
    """The ``send`` end of a pack's control channel, as a local pack's pipe has."""

    mailbox: Any
    key: str

    def send(self, message: Any) -> None:
        self.mailbox.post.remote(self.key, message.run_id)

    def close(self) -> None:
        pass


def _relay(task: RayTask, writer: Any, checkpoint_root: Path) -> None:
    """Thread: the task's stream into ``writer``; checkpoint files stored before they are acknowledged."""
    if task.refused:  # never submitted: no Ray call (the head may be gone)
        lost = task.refused == LOST_HEAD  # requeued: not the run's fault
        writer.send(WorkerLost(LOST_HEAD) if lost else WorkerEnded(Status.FAILED, task.refused))
        task.exitcode = 1
        writer.close()
        os.close(task._ended)
        return
    ray = import_ray()
    last: Any = None  # the task's last word, if the stream did not end normally
    try:
        for ref in task.stream:
            item = ray.get(ref)
            if isinstance(item, Placed):  # passed on too: the store names the run's node
                task.placed, task.pid = item, item.pid
                task.wait_s = time.monotonic() - task.submitted
            if isinstance(item, GpuMemory):  # the launcher sizes that GPU's later packs from it
                task.gpu_free = item.free
            if isinstance(item, CheckpointFile):
                task.checkpoint_bytes += len(item.data)
                try:
                    item = store_file(checkpoint_root, item)
                except OSError as err:
                    import_ray().cancel(task.stream)
                    task.exitcode = 1
                    write_failed(writer, checkpoint_root, err)
                    return
            data = pickle.dumps(item)  # what Connection.send would send; counted on the way
            writer.send_bytes(data)
            task.event_bytes += len(data)
        task.exitcode = 0
    except ray.exceptions.TaskCancelledError:
        task.exitcode = -signal.SIGTERM
    except (ray.exceptions.RayTaskError, ray.exceptions.RuntimeEnvSetupError) as err:
        last = WorkerEnded(Status.FAILED, f"the Ray task failed: {err}"[:2000])
    except ray.exceptions.RayError as err:  # node died, worker crashed, object lost: not the run's fault
        where = f" on {task.placed.node}" if task.placed else ""
        last = WorkerLost(f"Ray task lost{where}: {type(err).__name__}: {str(err).splitlines()[0][:300]}")
    except Exception as err:  # noqa: BLE001 - e.g. a checkpoint that cannot be written here
        last = WorkerEnded(Status.FAILED, f"relaying the Ray task failed: {type(err).__name__}: {err}")
    finally:
        if last is not None:
            task.exitcode = 1
            with contextlib.suppress(OSError):  # the scheduler may have stopped reading
                writer.send(last)
        writer.close()
        os.close(task._ended)

"""Where a resumed run starts: its latest acknowledged checkpoint, or the one before if that one is
damaged (flipped bytes, a truncated file, a disk error), or a fresh start, each fallback said as a
warning; never a fresh start over checkpoints that are merely not there.

Owns: choosing and reading the checkpoint files a single run or a pack's members resume from
(members of a pack all resume from the latest step all of them have intact); every file is
verified before it is unpickled (``checkpoints.read_verified``: the SHA-256 the store acknowledged)
and every one that is damaged or cannot be read becomes a ``protocol.RunWarning`` naming it; a
checkpoint made under another training protocol is never resumed (``load_checkpoint``: the run
restarts, and its start says why); a checkpoint directory that is not there, or checkpoints none
of which exists, stop the worker before it trains (``checkpoints.CheckpointMissing``, naming the
path): the run's files and rows stay as they are. Does not own: the file names, digests or
which files are kept (``rankbias_tui.checkpoints``), or putting a payload back into a model
(``engine.train``, ``engine.pack``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import checkpoints
from ..measures import Status
from ..protocol import Finished, RunWarning
from .loop import PROTOCOL_VERSION, Emit, Member


@dataclass(frozen=True)
class Resumed:
    """The step the members resume from (-1: a fresh start) and each member's checkpoint there;
    ``notes``: run_id -> why its checkpoint was not resumed (another training protocol)."""

    step: int = -1
    payloads: list[dict[str, Any]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def load_checkpoint(
    path: Path, device: torch.device | str, digest: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """A checkpoint's contents if it was made under this training protocol; else None and why it
    is not resumed (its numbers would mix two protocols): the run restarts from scratch. The bytes
    are verified first (``digest``: the SHA-256 the store acknowledged; else the archive's CRCs):
    ``checkpoints.Damaged`` if they are not the ones written."""
    data = checkpoints.read_verified(path, digest)
    payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    version = payload.get("protocol_version", 1)  # version 1 did not record itself
    if version == PROTOCOL_VERSION:
        return payload, None
    return None, (
        f"checkpoint at step {payload.get('step')} was made under training protocol {version}, this "
        f"is protocol {PROTOCOL_VERSION}: restarted from scratch (the old checkpoint is not used)"
    )


def load_latest(members: Sequence[Member], device: torch.device | str, emit: Emit) -> Resumed:
    """Read every member's checkpoint at the latest step all of them can resume from: the
    acknowledged ``resume_step``, else an earlier checkpoint still on disk (a damaged latest file,
    or pack members stopped between their checkpoints), else none (a fresh start). Each damaged or
    missing file, and each member resumed from before its acknowledged step, gets a ``RunWarning``.
    ``checkpoints.CheckpointMissing`` (nothing emitted that changes the store) if a member's
    checkpoint directory is not there, or none of its checkpoint files is: that is no reason to
    train again from the beginning over files that may come back."""
    if not members or any(m.ckpt_dir is None or m.resume_step is None for m in members):
        return Resumed()
    _require(members, emit)
    kept = [set(checkpoints.fallbacks(m.ckpt_dir, m.resume_step)) for m in members]  # type: ignore[arg-type]
    candidates = sorted(set.intersection(*kept), reverse=True)
    for step in candidates:
        paths = [checkpoints.path(m.ckpt_dir, step) for m in members]  # type: ignore[arg-type]
        read = [_read(member, file, step, device, emit) for member, file in zip(members, paths, strict=True)]
        notes = {m.run_id: note for m, (_, note) in zip(members, read, strict=True) if note}
        if notes:
            return Resumed(notes=notes)  # another protocol: earlier checkpoints are of it too
        payloads = [payload for payload, _ in read]
        if all(p is not None for p in payloads):
            for m in members:
                if step != m.resume_step:
                    emit(RunWarning(m.run_id, f"resumed from the earlier checkpoint at step {step} instead"))
            return Resumed(step, payloads, paths)  # type: ignore[arg-type]
    for m in members:
        emit(RunWarning(m.run_id, "no readable checkpoint left: the run starts again from the beginning"))
    return Resumed()


def _require(members: Sequence[Member], emit: Emit) -> None:
    """``CheckpointMissing`` if any member's checkpoints are not there (``checkpoints.available``);
    the members of a pack first end as failed, each with the path it needs (or the one its pack
    mate needs), so that each run's reason names its own files."""
    missing: dict[str, str] = {}
    for m in members:
        try:
            checkpoints.available(m.ckpt_dir, m.resume_step)  # type: ignore[arg-type]
        except checkpoints.CheckpointMissing as err:
            missing[m.run_id] = str(err)
    if not missing:
        return
    first = next(iter(missing.values()))
    if len(members) > 1:
        for m in members:
            why = missing.get(m.run_id) or f"its pack cannot resume without a member's checkpoints: {first}"
            emit(Finished(m.run_id, Status.FAILED, why))
    raise checkpoints.CheckpointMissing(first)


def _read(
    member: Member, file: Path, step: int, device: torch.device | str, emit: Emit
) -> tuple[dict[str, Any] | None, str | None]:
    """One checkpoint's payload, or None with a warning naming the file if it cannot be read, or
    None and a note if it was made under another training protocol."""
    try:
        payload, note = load_checkpoint(file, device, member.digests.get(step))
        if payload is None:
            return None, note
        if payload.get("step") != step:
            raise ValueError(f"it holds step {payload.get('step')}")
        return payload, None
    except FileNotFoundError:
        reason = "missing"
    except checkpoints.Damaged as err:
        reason = f"damaged ({err})"
    except Exception as err:  # noqa: BLE001 - a damaged file raises anything the unpickler can
        reason = f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    emit(RunWarning(member.run_id, f"checkpoint {file} is {reason}"))
    return None, None

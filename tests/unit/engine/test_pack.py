"""Packs are faithful: a member follows the trajectory of the same run trained alone.

Each test trains a few hundred steps on digits on the CPU, alone (``train.train``) and in a pack
(``pack.train_pack``), and compares metrics, ranks and checkpointed weights to float32 tolerance.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from rankbias_tui import checkpoints
from rankbias_tui.engine import data as data_mod
from rankbias_tui.engine import loop as loop_mod
from rankbias_tui.engine import pack as pack_mod
from rankbias_tui.engine import train as train_mod
from rankbias_tui.engine.data import load_dataset, subset_rows
from rankbias_tui.engine.loop import Member
from rankbias_tui.engine.pack import train_pack
from rankbias_tui.measures import MEASURE_SHARE, METRICS
from rankbias_tui.protocol import Checkpoint, Event, Finished, Metrics, Progress, RunWarning, Spectra, Started
from rankbias_tui.spec import RunConfig
from tests.support.faults import flip, record_of

pytestmark = pytest.mark.slow  # trains real (tiny) runs

BASE = dict(model="mlp-bn", depth=2, width=24, dataset="digits", epochs=3, batch_size=16, measure_every=1)
HYPER = [
    dict(lr=0.1, weight_decay=1e-3, seed=0),
    dict(lr=0.05, momentum=0.9, weight_decay=5e-3, seed=1, lr_milestones=(2,)),
    dict(lr=0.2, weight_decay=0.0, seed=2, rank_eps=1e-2),
]


@pytest.fixture(autouse=True)
def epoch_end_logs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running metrics at epoch ends only, so the logged values do not depend on timing."""
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 1e9)


def configs(**fields) -> list[RunConfig]:
    return [RunConfig(**(BASE | fields | hyper)) for hyper in HYPER]


def alone(cfg: RunConfig, ckpt_dir: Path | None = None, **kw) -> tuple[str, list[Event]]:
    events: list[Event] = []
    status = train_mod.train(cfg, "cpu", events.append, run_id="alone", ckpt_dir=ckpt_dir, **kw)
    return status, events


def packed(cfgs: list[RunConfig], tmp: Path | None = None, **kw) -> tuple[dict, dict[str, list[Event]]]:
    events: dict[str, list[Event]] = {}
    members = [Member(f"r{i}", c, tmp / f"r{i}" if tmp else None) for i, c in enumerate(cfgs)]
    status = train_pack(members, "cpu", lambda e: events.setdefault(e.run_id, []).append(e), **kw)
    return status, events


def step_of(e: Event) -> int:
    return e.rows[0].step if isinstance(e, Spectra) else e.step  # type: ignore[union-attr]


def compare(single: list[Event], member: list[Event]) -> None:
    """Same events in the same order; values equal to float32 tolerance, ranks exactly."""
    member = [e for e in member if not (isinstance(e, Metrics) and MEASURE_SHARE in e.values)]
    a = [e for e in single if isinstance(e, Metrics | Spectra | Checkpoint | Progress)]
    b = [e for e in member if isinstance(e, Metrics | Spectra | Checkpoint | Progress)]
    assert [(type(e), step_of(e)) for e in a] == [(type(e), step_of(e)) for e in b]
    for x, y in zip(a, b, strict=True):
        if isinstance(x, Metrics) and isinstance(y, Metrics):
            assert x.values == pytest.approx(y.values, rel=1e-4, abs=1e-5)
        elif isinstance(x, Spectra) and isinstance(y, Spectra):
            assert [r.rank for r in x.rows] == [r.rank for r in y.rows]
            assert [r.bound for r in x.rows] == pytest.approx([r.bound for r in y.rows])
            assert [r.stable_rank for r in x.rows] == pytest.approx([r.stable_rank for r in y.rows], rel=1e-4)


def same_weights(a: Path, b: Path) -> None:
    pa, pb = (torch.load(p, weights_only=True) for p in (a, b))
    assert (pa["step"], pa["epoch"], list(pa["model"])) == (pb["step"], pb["epoch"], list(pb["model"]))
    for name, value in pa["model"].items():
        torch.testing.assert_close(pb["model"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert pa["train_accs"] == pytest.approx(pb["train_accs"], abs=1e-3)
    assert torch.equal(pa["gen"], pb["gen"])  # the same batches were drawn


@pytest.mark.parametrize(
    ("fields", "steps"),
    [({}, 90), (dict(model="mlp", loss="mse", train_size=600, activation="leaky-relu"), 38)],
    ids=["mlp-bn", "mlp-mse-subset"],
)
def test_member_follows_its_single_run(tmp_path: Path, fields: dict, steps: int) -> None:
    """Every epoch ends with a short batch (1,437 = 89 x 16 + 13; 600 = 37 x 16 + 8): a member's
    tail step is the single run's tail step."""
    cfgs = configs(**fields)
    status, events = packed(cfgs, tmp_path / "pack")
    assert status == {"r0": "done", "r1": "done", "r2": "done"}
    for i, cfg in enumerate(cfgs):
        first, last = events[f"r{i}"][0], events[f"r{i}"][-1]
        assert isinstance(first, Started) and last == Finished(f"r{i}", "done", None)
        assert first.total_steps == steps * cfg.epochs  # ceil(n / B) steps per epoch
        single_status, single = alone(cfg, tmp_path / f"alone{i}")
        assert single_status == "done"
        compare(single, events[f"r{i}"])
        last = sorted((tmp_path / f"alone{i}").glob("step-*.pt"))[-1]
        same_weights(last, tmp_path / "pack" / f"r{i}" / last.name)


def test_a_diverging_member_is_frozen_and_the_others_go_on() -> None:
    cfgs = configs(model="mlp", epochs=2)
    cfgs[1] = cfgs[1].model_copy(update={"lr": 1e12})
    status, events = packed(cfgs)
    assert status == {"r0": "done", "r1": "diverged", "r2": "done"}
    assert events["r1"][-1] == Finished("r1", "diverged", "training loss became nan in steps 1-90 (epoch 1)")
    assert not any(isinstance(e, Spectra) and e.rows[0].epoch == 2.0 for e in events["r1"])  # stopped early
    for i in (0, 2):
        compare(alone(cfgs[i])[1], events[f"r{i}"])


def test_cancelling_one_member_leaves_the_rest_running() -> None:
    cfgs = configs(epochs=2)
    asked = iter([["r2"]])
    status, events = packed(cfgs, poll_cancel=lambda: next(asked, []))
    assert status == {"r0": "done", "r1": "done", "r2": "cancelled"}
    assert events["r2"][-1] == Finished("r2", "cancelled", "cancelled by request")
    for i in (0, 1):
        compare(alone(cfgs[i])[1], events[f"r{i}"])


def test_pack_resumes_and_checkpoints_are_single_run_checkpoints(tmp_path: Path) -> None:
    cfgs = configs()
    packed(cfgs, tmp_path / "full")
    step1 = sorted((tmp_path / "full" / "r0").glob("step-*.pt"))[1]  # after epoch 1
    step = int(step1.stem.removeprefix("step-"))
    for i in range(3):  # an interrupted pack: only checkpoints up to epoch 1 survive
        for path in (tmp_path / "full" / f"r{i}").glob("step-*.pt"):
            if int(path.stem.removeprefix("step-")) <= step:
                (tmp_path / "cut" / f"r{i}").mkdir(parents=True, exist_ok=True)
                path.rename(tmp_path / "cut" / f"r{i}" / path.name)
    events: dict[str, list[Event]] = {}
    members = [Member(f"r{i}", c, tmp_path / "cut" / f"r{i}", step) for i, c in enumerate(cfgs)]
    train_pack(members, "cpu", lambda e: events.setdefault(e.run_id, []).append(e))
    assert events["r0"][0].resumed_from == step  # type: ignore[union-attr]
    assert step_of(events["r0"][1]) > step  # nothing before the checkpoint is sent again
    last = sorted((tmp_path / "full" / "r0").glob("step-*.pt"))[-1].name
    for i in range(3):
        same_weights(tmp_path / "full" / f"r{i}" / last, tmp_path / "cut" / f"r{i}" / last)
    # A pack member's checkpoint resumes as a single run, too.
    status, single = alone(cfgs[1], tmp_path / "cut" / "r1", resume_step=step)
    assert status == "done" and single[0].resumed_from == step  # type: ignore[union-attr]


def test_a_pack_resumes_from_the_latest_step_all_members_have_intact(tmp_path: Path) -> None:
    cfgs = configs()[:2]
    _, full = packed(cfgs, tmp_path)
    sent = {r: {e.step: e.digest for e in events if isinstance(e, Checkpoint)} for r, events in full.items()}
    assert list(sent["r0"]) == [0, 90, 180, 270]  # 90 steps an epoch
    damaged = tmp_path / "r1" / "step-000000180.pt"  # one member's latest: the other's is intact
    flip(damaged, record_of(damaged, "weights"), at=64)
    events: dict[str, list[Event]] = {}
    members = [Member(f"r{i}", c, tmp_path / f"r{i}", 180, sent[f"r{i}"]) for i, c in enumerate(cfgs)]
    train_pack(members, "cpu", lambda e: events.setdefault(e.run_id, []).append(e))
    warned = {r: [e.text for e in evs if isinstance(e, RunWarning)] for r, evs in events.items()}
    assert warned["r0"] == ["resumed from the earlier checkpoint at step 90 instead"]
    assert warned["r1"][0].startswith(f"checkpoint {damaged} is damaged (its SHA-256")
    assert warned["r1"][1:] == warned["r0"]
    exact = (Metrics, Spectra, Checkpoint, Progress)

    def tail(evs: list[Event]) -> list[Event]:  # the measurement's share of wall time aside
        return [
            e
            for e in evs
            if isinstance(e, exact) and step_of(e) > 90 and MEASURE_SHARE not in getattr(e, "values", {})
        ]

    for r in ("r0", "r1"):
        start = next(e for e in events[r] if isinstance(e, Started))
        assert start.resumed_from == 90
        assert tail(events[r]) == tail(full[r])  # bitwise what the uninterrupted pack reported


def test_a_pack_whose_checkpoints_are_not_there_fails_each_member_with_its_own_path(tmp_path: Path) -> None:
    cfgs = configs(model="mlp", epochs=1)[:2]
    (tmp_path / "r0").mkdir()
    checkpoints.path(tmp_path / "r0", 90).write_bytes(b"x")  # r0's files are here, r1's are not
    events: list[Event] = []
    members = [Member(f"r{i}", c, tmp_path / f"r{i}", 90) for i, c in enumerate(cfgs)]
    with pytest.raises(checkpoints.CheckpointMissing, match=f"{tmp_path / 'r1'} does not exist"):
        train_pack(members, "cpu", events.append)
    assert [(type(e), e.run_id, e.status) for e in events] == [
        (Finished, "r0", "failed"),
        (Finished, "r1", "failed"),
    ]  # type: ignore[union-attr]
    own, mate = events[1].error, events[0].error  # type: ignore[union-attr]
    assert f"it needs {tmp_path / 'r1' / 'step-000000090.pt'}" in str(own)
    assert str(mate) == f"its pack cannot resume without a member's checkpoints: {own}"
    assert list((tmp_path / "r0").iterdir()) == [tmp_path / "r0" / "step-000000090.pt"]  # nothing written


def test_subset_rows_are_the_single_runs_subset() -> None:
    full = load_dataset("digits")
    subset = load_dataset("digits", train_size=100, subset_seed=3)
    assert torch.equal(full.x_train[subset_rows(len(full.y_train), 100, 3)], subset.x_train)
    assert torch.equal(subset_rows(10, None, 0), torch.arange(10))


def test_a_failed_capture_falls_back_to_eager_steps() -> None:
    pack = pack_mod.Pack([Member("r0", configs()[0])], "cpu", load_dataset("digits"))
    assert pack.mode() == "pack of 1, eager"
    step, tail = pack._step_fns(capture=True)  # no CUDA here: capture fails
    assert step.graph is None and tail is not None and tail.graph is None
    assert pack.mode().startswith("pack of 1, eager (graph capture failed")


def test_a_pack_never_resumes_a_checkpoint_of_another_protocol(tmp_path: Path) -> None:
    cfgs = configs(model="mlp", epochs=1)[:2]
    packed(cfgs, tmp_path)
    stale = tmp_path / "r1" / "step-000000000.pt"
    payload = torch.load(stale, weights_only=True)
    payload["protocol_version"] = 1
    torch.save(payload, stale)
    events: dict[str, list[Event]] = {}
    members = [Member(f"r{i}", c, tmp_path / f"r{i}", 0) for i, c in enumerate(cfgs)]
    status = train_pack(members, "cpu", lambda e: events.setdefault(e.run_id, []).append(e))
    assert status == {"r0": "done", "r1": "done"}
    starts = [events[f"r{i}"][0] for i in range(2)]
    assert all(isinstance(s, Started) and s.resumed_from == -1 for s in starts)  # both from scratch
    assert starts[0].note is None and "under training protocol 1" in str(starts[1].note)  # type: ignore[union-attr]
    assert events["r1"][-1] == Finished("r1", "done", starts[1].note)  # type: ignore[union-attr]


def test_every_metric_the_engine_emits_is_in_the_one_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """``measures.METRICS`` is the one table of metric names: a single run and a pack, logging every
    step, emit no name it lacks (the pack's ``measure_share`` was missing from it once)."""
    monkeypatch.setattr(loop_mod, "LOG_INTERVAL_S", 0.0)
    cfg = RunConfig(**(BASE | HYPER[0] | {"epochs": 1}))
    _, single = alone(cfg)
    _, members = packed(configs(epochs=1)[:2])
    emitted = {name for e in single + members["r0"] if isinstance(e, Metrics) for name in e.values}
    assert {"loss", "train_loss", "test_acc", MEASURE_SHARE} <= emitted  # both loops were heard
    assert emitted <= set(METRICS), emitted - set(METRICS)


def test_every_segment_records_the_digest_of_the_data_it_trained_on() -> None:
    """Issue 20 (report provenance): ``Started.provenance["data_sha256"]`` is the SHA-256 of the whole
    data set as loaded: the same for a run alone (which keeps a ``train_size`` subset) and in a pack
    (which loads the whole set), and another for other numbers."""
    cfg = RunConfig(**(BASE | dict(epochs=1, train_size=64, measure_every=1)))
    _, single = alone(cfg)
    _, members = packed([cfg, cfg.model_copy(update={"seed": 5})])
    digests = {
        e.provenance["data_sha256"]
        for e in [*single, *members["r0"], *members["r1"]]
        if isinstance(e, Started)
    }
    (digest,) = digests
    data = load_dataset("digits")
    assert digest == data.digest and len(digest) == 64
    flipped = data.x_train.clone()
    flipped[0, 0, 0, 0] += 1.0
    assert data_mod.content_digest(dataclasses.replace(data, x_train=flipped)) != digest

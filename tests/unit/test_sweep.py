"""Sweep expansion: cartesian grids, seeds innermost, stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankbias_tui.spec import RunConfig, SpecError, load_spec, parse_spec
from rankbias_tui.sweep import UnknownSweep, expand, run_id

DATA = {
    "default_sweep": "a",
    "defaults": {"dataset": "digits", "epochs": 2},
    "sweeps": {
        "a": {"grid": {"batch_size": [4, 8], "lr": [0.1, 0.2, 0.5]}, "seeds": [0, 1]},
        "b": {"batch_size": 4, "lr": 0.1, "seeds": [0]},
    },
}


def test_cartesian_order_and_seeds() -> None:
    runs = expand(parse_spec(DATA, Path("x.toml")), ["a"])
    assert len(runs) == 2 * 3 * 2
    combos = [(r.config.batch_size, r.config.lr, r.config.seed) for r in runs]
    assert combos[:3] == [(4, 0.1, 0), (4, 0.1, 1), (4, 0.2, 0)]
    assert combos[-1] == (8, 0.5, 1)
    assert all(r.config.epochs == 2 and r.config.dataset == "digits" for r in runs)
    assert len({r.run_id for r in runs}) == len(runs)


def test_ids_are_stable_and_depend_on_config() -> None:
    a = RunConfig(dataset="digits", lr=0.2)
    assert run_id(a) == run_id(RunConfig(dataset="digits", lr=0.2))
    assert run_id(a) != run_id(RunConfig(dataset="digits", lr=0.2, seed=1))
    # Explicitly writing a default value does not change the identity.
    assert run_id(a) == run_id(RunConfig(dataset="digits", lr=0.2, momentum=0.0))
    assert run_id(RunConfig()) == "44136fa355b3"  # pinned: ids must survive releases


def test_overlapping_sweeps_share_runs_once() -> None:
    spec = parse_spec(DATA, Path("x.toml"))
    both = expand(spec, ["a", "b"])
    assert len(both) == 12  # b's one run equals a's (B=4, lr=0.1, seed 0)
    assert expand(spec) == expand(spec, ["a"])
    (shared,) = [r for r in both if r.also]
    assert shared.sweeps == ("a", "b") and shared.run_id == expand(spec, ["b"])[0].run_id
    assert [r.sweeps for r in expand(spec, ["b", "a"]) if r.also] == [("b", "a")]


def test_a_run_two_sweeps_hold_stays_in_both_when_they_are_launched_together(tmp_path: Path) -> None:
    """Launching ``-s a -s b`` planned the shared run for ``a`` only: ``b`` lost it (superseded
    there as if the spec had dropped it, if ``b`` had been launched alone before)."""
    from rankbias_tui.store import Store

    spec = parse_spec(DATA, Path("x.toml"))
    (alone,) = expand(spec, ["b"])
    with Store(tmp_path, create=True) as store:
        store.add_runs([alone], {})
        store.supersede([alone])
        both = expand(spec, ["a", "b"])
        store.add_runs(both, {})
        assert store.supersede(both) == []
        assert store.sweeps() == {"b": 1, "a": 12}
        assert [r.run_id for r in store.runs(sweep="b")] == [alone.run_id]
        assert store.superseded() == {}


def test_unknown_sweep_suggests() -> None:
    with pytest.raises(UnknownSweep, match="did you mean 'a'"):
        expand(parse_spec(DATA, Path("x.toml")), ["aa"])


def test_fast_expansion_gives_the_ids_and_configs_of_full_validation() -> None:
    """expand_sweep validates each grid value once; every run must equal a fully validated one."""
    from rankbias_tui.spec import RunConfig, load_spec
    from rankbias_tui.sweep import expand_sweep, run_id

    spec = load_spec(Path(__file__).resolve().parents[2] / "experiments.toml")
    for name in spec.sweeps:
        for run in expand_sweep(spec, name):
            full = RunConfig(**run.config.model_dump())
            assert full == run.config
            assert run_id(full) == run.run_id


def test_a_100k_grid_expands_with_distinct_ids() -> None:
    from rankbias_tui.spec import parse_spec
    from rankbias_tui.sweep import expand

    grid = {"lr": [0.01 * (i + 1) for i in range(100)], "weight_decay": [1e-4 * i for i in range(100)],
            "batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]}  # fmt: skip
    runs = expand(parse_spec({"sweeps": {"big": {"dataset": "digits", "grid": grid}}}, Path("x")))
    assert len(runs) == len({r.run_id for r in runs}) == 100_000
    assert runs[-1].config.batch_size == 512 and runs[-1].config.weight_decay == pytest.approx(99e-4)


def test_checkpoint_every_is_an_execution_detail_not_an_identity(tmp_path: Path) -> None:
    """A spec's ``checkpoint_every`` reaches each run's config but never its id (a resume
    continues bitwise from any epoch end, so it changes no number)."""
    base = RunConfig(dataset="digits", lr=0.2)
    assert run_id(base.model_copy(update={"checkpoint_every": 5})) == run_id(base)
    spec = tmp_path / "experiments.toml"
    body = '[sweeps.a]\ndataset = "digits"\nepochs = 3\ngrid.lr = [0.1, 0.2]\n'
    spec.write_text(body)
    plain = expand(load_spec(spec), ["a"])
    spec.write_text(body.replace("epochs = 3", "epochs = 3\ncheckpoint_every = 2"))
    sparse = expand(load_spec(spec), ["a"])
    assert [r.run_id for r in sparse] == [r.run_id for r in plain]
    assert [r.config.checkpoint_every for r in sparse] == [2, 2]
    spec.write_text(body.replace("epochs = 3", "epochs = 3\ncheckpoint_every = 0"))
    with pytest.raises(SpecError, match="checkpoint_every"):
        load_spec(spec)

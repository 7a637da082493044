"""The one declaration of what ``experiments.toml`` may say, and its loader.

Owns: the run fields (``RunConfig``, with the paper's defaults), the sweep tables, and turning
every problem in a spec file into a ``SpecProblem`` with the file, the TOML key path and a
did-you-mean hint. Does not own: which models and data sets exist (``catalog.py``: the spec
accepts its rows), expanding grids into runs (``sweep.py``) or anything torch.
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from . import references
from .catalog import DATASET_NAMES, DATASETS, MODEL_NAMES
from .display import printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SWEEP_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
MAX_INT = 1_000_000  # epochs, widths, batch sizes, ...: far beyond any real run, far below SQLite's
MAX_SEED = 2**32 - 1


class RunConfig(BaseModel):
    """One training run, fully resolved. Defaults follow the paper (PAPER.md)."""

    # Finite numbers only. Values from a spec file are also validated strictly (no "0.1" -> 0.1,
    # true -> 1 or 3.0 -> 3: see ``_field_problems``); stored configs (JSON) are read leniently.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    model: str = "mlp-bn"
    """Architecture: MLP with or without BatchNorm, CIFAR ResNet-18, VGG-16-BN, a small ViT, or your
    own: ``"module:callable"``, called as ``builder(input_shape, num_classes, model_options)``."""
    model_options: dict[str, Any] = Field(default_factory=dict)
    """Passed to your own model's builder as its ``options`` (any TOML values); part of the run's id."""
    depth: int = Field(10, ge=1, le=MAX_INT)
    """Hidden layers of an MLP (L), or transformer blocks of the ViT; ignored by conv nets."""
    width: int = Field(100, ge=1, le=MAX_INT)
    """Hidden width of an MLP (H), or embedding width of the ViT; ignored by conv nets."""
    activation: Literal["relu", "leaky-relu"] = "relu"
    """ReLU, or leaky ReLU with slope 0.01."""
    dataset: str = "cifar10"
    """Training data; ``digits`` and ``synthetic`` need no network. Your own: ``"module:callable"``,
    called as ``loader(dataset_options)`` -> ``(x_train, y_train, x_test, y_test)`` tensors."""
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    """Passed to your own data set's loader as its ``options``; part of the run's id."""
    train_size: int | None = Field(None, ge=1, le=10**9)
    """Use a seeded random subset of this many training examples (None: all)."""
    epochs: int = Field(500, ge=1, le=MAX_INT)
    """Passes over the training set."""
    batch_size: int = Field(32, ge=1, le=MAX_INT)
    """Mini-batch size B (batches are shuffled each epoch; see ``drop_last`` for the last one)."""
    drop_last: bool = False
    """Drop the last, partial batch of each epoch. The authors keep it (an epoch is ceil(n/B)
    steps, the last one's loss the mean over the examples it holds); true: floor(n/B) steps of B.
    An ``mlp-bn`` drops a last batch of one example either way: BatchNorm cannot train on it."""
    lr: float = Field(0.1, gt=0)
    """Initial SGD learning rate mu."""
    momentum: float = Field(0.0, ge=0, lt=1)
    """SGD momentum (the paper: 0)."""
    weight_decay: float = Field(5e-4, ge=0)
    """torch ``weight_decay`` on all parameters (= 2 lambda of the paper's objective)."""
    lr_milestones: tuple[int, ...] = (60, 100, 200)
    """Epochs at which the learning rate is multiplied by ``lr_gamma``; empty = constant LR."""
    lr_gamma: float = Field(0.2, gt=0, le=1)
    """Factor applied to the learning rate at each milestone."""
    loss: Literal["ce", "mse"] = "ce"
    """Cross-entropy, or mean squared error on one-hot targets."""
    rank_eps: float = Field(1e-3, gt=0, lt=1)
    """Threshold on singular values of W/||W||_F that counts towards the rank."""
    measure_every: int = Field(10, ge=1, le=MAX_INT)
    """Epochs between spectral measurements (also measured at initialisation and at the end)."""
    measured_layers: str | tuple[str, ...] = "paper"
    """``paper``: hidden Linears / 3x3 convs as in PAPER.md (your own model: every Linear and Conv*d
    but the final classifier); ``all``: every weight matrix; or a list of module-name patterns
    (``["encoder.*.attn.*", "head"]``, shell-style: ``*`` also matches dots)."""
    eval_every: int = Field(1, ge=1, le=MAX_INT)
    """Epochs between train/test accuracy evaluations in eval mode (the last epoch always)."""
    diverge_after: int = Field(50, ge=0, le=MAX_INT)
    """Divergence guard: from this epoch on, stop when the last 3 train accuracies are low."""
    diverge_acc: float = Field(0.15, ge=0, le=1)
    """Divergence guard threshold on train accuracy."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seeds initial weights and batch order; part of the run's identity."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """``bf16``: bfloat16 autocast with channels-last memory (opt-in, for conv nets on GPUs)."""
    deterministic: bool = False
    """Deterministic kernels on GPUs (deterministic algorithms, cuDNN without autotuning, a fixed
    cuBLAS workspace): the same numbers from the same config on the same GPU and software, at some
    cost in speed. Changes a run's numbers on a GPU, so part of its identity when true."""
    pack_size: int | None = Field(None, ge=1, le=4096)
    """Most runs trained together as one fused pack (mlp/mlp-bn); None: sized from device memory;
    1: never packed. An execution detail, not part of the run's identity."""
    checkpoint_every: int | None = Field(None, ge=1, le=MAX_INT)
    """Epochs between checkpoints (and at initialisation and the end; None: at every measurement).
    Numbers are the same either way; an execution detail, not part of the run's identity."""
    code_dir: str | None = None
    """Set by rankbias, not in a spec: the spec file's directory, where a ``"module:callable"``
    model or data set is imported from first. An execution detail, not part of the run's identity
    (moving a project keeps its ids; the module's digest is in the run's provenance)."""

    @field_validator("model", "dataset")
    @classmethod
    def _catalog_or_reference(cls, value: str, info: Any) -> str:
        names = MODEL_NAMES if info.field_name == "model" else DATASET_NAMES
        if value in names or references.is_reference(value):
            return value
        raise PydanticCustomError(
            "literal_error",
            "Input should be {expected}",
            {"expected": ", ".join(repr(n) for n in names) + " or a 'module:callable' reference"},
        )

    @field_validator("measured_layers")
    @classmethod
    def _layers(cls, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if isinstance(value, str) and value not in ("paper", "all"):
            raise ValueError("must be 'paper', 'all' or a list of module-name patterns")
        if isinstance(value, tuple) and (not value or not all(value)):
            raise ValueError("a list of module-name patterns needs at least one, none empty")
        return value

    @property
    def user_code(self) -> tuple[str, ...]:
        """The ``"module:callable"`` references this run imports (model, data set)."""
        return tuple(v for v in (self.model, self.dataset) if references.is_reference(v))

    @field_validator("lr_milestones")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if list(value) != sorted(set(value)) or (value and (value[0] < 1 or value[-1] > MAX_INT)):
            raise ValueError(f"milestones must be strictly increasing epochs from 1 to {MAX_INT}")
        return value

    @cached_property
    def stored(self) -> dict[str, Any]:
        """The config as the store keeps it (JSON values: lists for tuples), made once per config;
        for code that handles fields by name (columns, facets, what varies). Read-only."""
        return self.model_dump(mode="json")

    def value(self, name: str) -> Any:
        """A field's stored value by name; None for a name that is not a field."""
        return self.stored.get(name)


RUN_FIELDS = tuple(RunConfig.model_fields)
SET_BY_RANKBIAS = ("code_dir",)  # run fields a spec may not set
SPEC_FIELDS = tuple(f for f in RUN_FIELDS if f not in SET_BY_RANKBIAS)
CHOICES: dict[str, tuple[str, ...]] = {"model": MODEL_NAMES, "dataset": DATASET_NAMES}
SWEEP_KEYS = ("description", "grid", "seeds")
TOP_KEYS = ("default_sweep", "defaults", "sweeps")


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a spec file, located by TOML key path."""

    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return printable(f"{self.path}: {self.message}{hint}")


class SpecError(Exception):
    """Every problem found in one spec file; nothing may be started when this is raised."""

    def __init__(self, file: Path, problems: list[SpecProblem]):
        self.file = file
        self.problems = problems
        super().__init__(f"{file}: {len(problems)} problem(s)")

    def report(self) -> str:
        lines = [f"{self.file}: {len(self.problems)} problem(s) in the spec; nothing was started."]
        lines += [f"  {self.file}: {p}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True)
class SweepSpec:
    """One ``[sweeps.NAME]`` table, validated: fixed overrides, grid axes and seeds."""

    name: str
    description: str
    base: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    seeds: tuple[int, ...]

    @property
    def size(self) -> int:
        """How many runs the sweep expands to (grids are crossed, seeds too), without expanding."""
        return math.prod(len(values) for values in self.grid.values()) * len(self.seeds)


@dataclass(frozen=True)
class Spec:
    """A whole validated spec file."""

    file: Path
    default_sweep: str
    defaults: dict[str, Any]
    sweeps: dict[str, SweepSpec]


def suggest(word: str, choices: Any) -> str:
    """A did-you-mean hint for ``word`` among ``choices``, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _join(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _field_problems(values: dict[str, Any], prefix: str) -> list[tuple[str, SpecProblem]]:
    """Validate run-field values; return (field, problem) pairs located under ``prefix.field``."""
    try:
        RunConfig.model_validate(_tuples(values), strict=True)
    except ValidationError as err:
        out = []
        for e in err.errors():
            loc = tuple(e["loc"])
            name = str(loc[0]) if loc else ""
            hint = ""
            if e["type"] == "literal_error" and name:
                allowed = CHOICES.get(name) or RunConfig.model_fields[name].annotation.__args__  # type: ignore[union-attr]
                hint = suggest(e.get("input"), allowed) or "one of " + ", ".join(allowed)
            out.append((name, SpecProblem(_join(prefix, loc), e["msg"], hint)))
        return out
    return []


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """TOML arrays as the tuples ``RunConfig`` declares (strict validation takes no lists)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def _batch_problems(
    prefix: str, merged: dict[str, Any], axes: dict[str, tuple[Any, ...]], base: dict[str, Any]
) -> list[SpecProblem]:
    """Every batch size of a sweep against every training set it meets (grids are crossed, so the
    largest batch meets the smallest set); a batch larger than the data would be one partial step."""
    default = RunConfig.model_fields

    def values(name: str) -> tuple[Any, ...]:
        return axes.get(name, (merged.get(name, default[name].default),))

    # Training-set sizes (before ``train_size``) from the catalog, so a batch larger than the data
    # is refused at load (a test checks them against the loaded data).
    sizes = [
        min(DATASETS[d].train_size, t if type(t) is int else math.inf)
        for d in values("dataset")
        if d in DATASETS
        for t in values("train_size")
    ]
    if not sizes:
        return []
    smallest, out = min(sizes), []
    for i, b in enumerate(values("batch_size")):
        if type(b) is int and b > smallest:
            where = (
                f"{prefix}.grid.batch_size[{i}]"
                if "batch_size" in axes
                else f"{prefix}.batch_size"
                if "batch_size" in base
                else "defaults.batch_size"
            )
            out.append(
                SpecProblem(where, f"batch size {b} is larger than the training set ({smallest} examples)")
            )
    return out


def _unknown_keys(table: dict[str, Any], allowed: tuple[str, ...], prefix: str) -> list[SpecProblem]:
    return [
        SpecProblem(f"{prefix}.{key}".lstrip("."), "unknown key", suggest(key, allowed))
        for key in table
        if key not in allowed
    ]


def _check_sweep(
    name: str, table: Any, defaults: dict[str, Any]
) -> tuple[SweepSpec | None, list[SpecProblem]]:
    prefix = f"sweeps.{name}"
    if not SWEEP_NAME.fullmatch(name):
        return None, [
            SpecProblem(
                prefix,
                "sweep names may hold only letters, digits, '_', '-' and '.', and may not start with '.'",
            )
        ]
    if not isinstance(table, dict):
        return None, [SpecProblem(prefix, "must be a table")]
    problems = _unknown_keys(table, SPEC_FIELDS + SWEEP_KEYS, prefix)
    base = {k: v for k, v in table.items() if k in SPEC_FIELDS}
    grid = table.get("grid", {})
    if not isinstance(grid, dict):
        return None, problems + [SpecProblem(f"{prefix}.grid", "must be a table of lists")]
    seeds = table.get("seeds", defaults.get("seeds", [0]))
    axes: dict[str, tuple[Any, ...]] = {}
    for axis, values in grid.items():
        where = f"{prefix}.grid.{axis}"
        if axis not in SPEC_FIELDS:
            problems.append(SpecProblem(where, "is not a run field", suggest(axis, SPEC_FIELDS)))
        elif not isinstance(values, list) or not values:
            problems.append(SpecProblem(where, "must be a non-empty list"))
        else:
            axes[axis] = tuple(tuple(v) if isinstance(v, list) else v for v in values)
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(type(s) is int and 0 <= s <= MAX_SEED for s in seeds)
    ):
        problems.append(
            SpecProblem(f"{prefix}.seeds", f"must be a non-empty list of integers from 0 to {MAX_SEED}")
        )
        seeds = [0]
    merged = {k: v for k, v in defaults.items() if k in SPEC_FIELDS} | base
    # Errors of values set in this table are reported here; inherited ones under [defaults].
    problems += [p for name, p in _field_problems(merged, prefix) if name in base]
    for axis, values in axes.items():
        for i, value in enumerate(values):
            for name, p in _field_problems(merged | {axis: value}, prefix):
                if name == axis:
                    problems.append(SpecProblem(f"{prefix}.grid.{axis}[{i}]", p.message, p.hint))
    if not problems:
        problems += _batch_problems(prefix, merged, axes, base)
    description = printable(str(table.get("description", "")))
    return SweepSpec(name, description, base, axes, tuple(seeds)), problems


def parse_spec(data: dict[str, Any], file: Path) -> Spec:
    """Validate a parsed TOML document; raise ``SpecError`` with every problem found."""
    problems = _unknown_keys(data, TOP_KEYS, "")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(SpecProblem("defaults", "must be a table"))
        defaults = {}
    problems += _unknown_keys(defaults, SPEC_FIELDS + ("seeds",), "defaults")
    known = {k: v for k, v in defaults.items() if k in SPEC_FIELDS}
    problems += [p for _, p in _field_problems(known, "defaults")]
    sweeps: dict[str, SweepSpec] = {}
    raw_sweeps = data.get("sweeps", {})
    if not isinstance(raw_sweeps, dict) or not raw_sweeps:
        problems.append(SpecProblem("sweeps", "needs at least one [sweeps.NAME] table"))
        raw_sweeps = {}
    for name, table in raw_sweeps.items():
        sweep, found = _check_sweep(name, table, defaults)
        problems += found
        if sweep is not None:
            sweeps[name] = sweep
    # a user's "module:callable", from the spec's directory first: found and read, never run
    problems += [
        SpecProblem(w, m) for w, m in references.spec_problems(defaults, raw_sweeps, file.resolve().parent)
    ]
    default = data.get("default_sweep", next(iter(raw_sweeps), ""))
    if raw_sweeps and default not in raw_sweeps:
        problems.append(
            SpecProblem("default_sweep", f"no sweep named {default!r}", suggest(default, raw_sweeps))
        )
    if problems:
        raise SpecError(file, problems)
    return Spec(file=file, default_sweep=default, defaults=known, sweeps=sweeps)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec file; raise ``SpecError`` (never a bare traceback)."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(file, [SpecProblem("(file)", "not found")]) from None
    except UnicodeDecodeError:
        raise SpecError(file, [SpecProblem("(file)", "is not UTF-8 text (a binary file?)")]) from None
    except IsADirectoryError:
        raise SpecError(file, [SpecProblem("(file)", "is a directory, not a TOML file")]) from None
    except OSError as err:
        raise SpecError(file, [SpecProblem("(file)", f"cannot be read: {err.strerror or err}")]) from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(file, [SpecProblem("(syntax)", f"invalid TOML: {err}")]) from None
    return parse_spec(data, file)

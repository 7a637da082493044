"""A user's own code named in a spec: ``model = "module:callable"``, ``dataset = "module:callable"``.

Owns: telling a reference from a built-in name (``is_reference``: anything with a colon), finding
its module's source file from the spec's directory first and then the environment (``locate``),
checking at spec load that the module exists and defines the name (``problem``, ``spec_problems``),
what a run's provenance records (``user_code``: the reference, its options, the file's digest), importing the callable in the worker (``load``) and calling
it so that a failure carries the user's own traceback (``call``, ``UserCodeError``). Does not own:
what a builder or loader must return (``engine.models``, ``engine.data``) or the catalog's rows.

Why the check at load reads the source instead of importing it: the spec is loaded by the CLI and
by the app, processes that must never import torch (and a user's model module does), and loading
a spec should not run anybody's code. So ``problem`` finds the module file without importing
anything (``importlib.machinery.PathFinder``, one package level at a time) and looks for the name
among the module's top-level definitions (``ast``). That catches a misspelt module or callable and
a syntax error; what only running the code can show (a builder that raises) fails the run
instead, with the user's traceback. Standard library only: no torch, no pydantic.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from typing import Any


def is_reference(name: str) -> bool:
    """``"module:callable"`` (a user's code), not a built-in name like ``"mlp"``."""
    return ":" in name


def split(ref: str) -> tuple[str, str]:
    """``"pkg.mod:build"`` -> ("pkg.mod", "build"); ValueError if either part is missing."""
    module, _, attr = ref.partition(":")
    if not attr.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise ValueError(f"{ref!r} is not 'module:callable'")
    return module, attr


def _search_path(code_dir: str | Path | None) -> list[str]:
    return ([str(code_dir)] if code_dir else []) + [p or "." for p in sys.path]


def _find(module: str, code_dir: str | Path | None) -> ModuleSpec | None:
    """The module's spec, found package level by package level without importing any of them;
    ModuleNotFoundError with Python's own wording when a level is missing; None when a level is a
    plain module (its attribute may be a module made at import, as ``os.path``: only importing
    could tell)."""
    parts, path, spec = module.split("."), _search_path(code_dir), None
    for i, part in enumerate(parts):
        if i and not path:
            return None
        spec = PathFinder.find_spec(part, path)
        if spec is None and i == 0:
            spec = importlib.util.find_spec(part)  # built-in, frozen, editable installs' finders
        if spec is None:
            raise ModuleNotFoundError(f"No module named {'.'.join(parts[: i + 1])!r}")
        path = list(spec.submodule_search_locations or [])
    return spec


def locate(ref: str, code_dir: str | Path | None = None) -> Path | None:
    """The source file of a reference's module (``code_dir`` first, then ``sys.path``); None for a
    module without one (built into Python, a namespace package) or that only importing can find.
    Raises ModuleNotFoundError."""
    spec = _find(split(ref)[0], code_dir)
    origin = spec.origin if spec is not None else None
    return (
        Path(origin) if origin and origin not in ("built-in", "frozen") and Path(origin).is_file() else None
    )


def problem(ref: str, code_dir: str | Path | None = None) -> str | None:
    """Why ``ref`` cannot name a callable, as ``validate`` says it; None when it looks right."""
    try:
        module, attr = split(ref)
    except ValueError as err:
        return f"cannot import {ref!r} ({err})"
    try:
        source = locate(ref, code_dir)
    except (ImportError, ValueError) as err:  # ModuleNotFoundError; ValueError: a name like ".x"
        return f"cannot import {ref!r} ({err})"
    if source is None or source.suffix != ".py":
        return None  # compiled or built in: only importing it could tell
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except SyntaxError as err:
        return f"cannot import {ref!r} (SyntaxError in {source.name}, line {err.lineno}: {err.msg})"
    except (OSError, ValueError) as err:
        return f"cannot import {ref!r} ({type(err).__name__}: {err})"
    found = _binding(tree.body, attr)
    if found is None:
        return f"cannot import {ref!r} (module {module!r} has no attribute {attr!r})"
    if found == "constant":
        return f"cannot import {ref!r} ({module}.{attr} is a constant, not a callable)"
    return None


def _binding(body: list[ast.stmt], attr: str) -> str | None:
    """How a module's top level binds ``attr``: "callable" (def, class), "constant" (a literal),
    "unknown" (any other assignment or import, ``import *``, a module ``__getattr__``), or None."""
    found: str | None = None
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == attr:
                found = "callable"
            elif node.name == "__getattr__":
                found = found or "unknown"
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
                found = "constant" if isinstance(node.value, ast.Constant) else "unknown"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.asname or a.name.split(".")[0] for a in node.names]
            if attr in names or "*" in names:
                found = found or "unknown"
        elif isinstance(node, (ast.If, ast.Try, ast.With)):  # definitions under a guard count too
            inner = [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            inner += [s for h in getattr(node, "handlers", []) for s in h.body]
            found = _binding(inner, attr) or found
    return found


def code_record(ref: str, code_dir: str | Path | None = None) -> dict[str, str]:
    """What provenance keeps of a reference: the file it resolves to and its SHA-256 (so a changed
    model is visible), or why there is none."""
    try:
        source = locate(ref, code_dir)
    except (ImportError, ValueError) as err:
        return {"ref": ref, "file": "", "sha256": "", "note": str(err)}
    if source is None:
        return {"ref": ref, "file": "", "sha256": "", "note": "no source file"}
    return {"ref": ref, "file": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}


def load(ref: str, code_dir: str | Path | None = None) -> Callable[..., Any]:
    """Import the callable ``ref`` names, ``code_dir`` first on the module search path."""
    module, attr = split(ref)
    if code_dir and sys.path[:1] != [str(code_dir)]:  # first, even if the environment holds it too
        sys.path.insert(0, str(code_dir))
    obj = getattr(importlib.import_module(module), attr)
    if not callable(obj):
        raise TypeError(f"{ref!r} names a {type(obj).__name__}, not a callable")
    return obj


class UserCodeError(Exception):
    """A user's builder or loader raised, or returned something unusable: the message carries the
    user's traceback, which is what the run's failure reason shows (it is their code)."""


def call(what: str, ref: str, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``; an exception it raises becomes a ``UserCodeError`` holding its traceback from
    the user's frame down (this wrapper's frame left out)."""
    try:
        return fn(*args)
    except Exception as err:
        tb = err.__traceback__.tb_next if err.__traceback__ else None
        lines = traceback.format_exception(type(err), err, tb)
        raise UserCodeError(f"{what} {ref!r} raised {type(err).__name__}: {err}\n" + "".join(lines)) from err


def user_code(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's provenance records of its user code, from its stored config: ``model_ref``,
    ``model_options``, ``model_file``, ``model_sha256`` (and the same with ``dataset_``) for each of
    its model and data set that is a reference, found as the worker imports it (``code_dir``
    first); {} for built-ins. A changed model file shows as another digest in ``show`` and the report."""
    out: dict[str, Any] = {}
    for kind in ("model", "dataset"):
        ref = config.get(kind)
        if isinstance(ref, str) and is_reference(ref):
            record = code_record(ref, config.get("code_dir"))
            out |= {f"{kind}_ref": ref, f"{kind}_options": config.get(f"{kind}_options") or {}}
            out |= {f"{kind}_{key}": value for key, value in record.items() if key != "ref"}
    return out


def spec_problems(defaults: dict[str, Any], sweeps: dict[str, Any], code_dir: Path) -> list[tuple[str, str]]:
    """(TOML key path, problem) for every ``model`` or ``dataset`` reference of a parsed spec file
    (``[defaults]``, each sweep, its grid) that cannot name a callable (``problem``), each checked once."""
    kinds = ("model", "dataset")
    places = [(f"defaults.{k}", defaults.get(k)) for k in kinds]
    for name, table in sweeps.items():
        if not isinstance(table, dict):
            continue
        places += [(f"sweeps.{name}.{k}", table.get(k)) for k in kinds]
        grid = table.get("grid")
        for k in kinds:
            values = grid.get(k) if isinstance(grid, dict) else None
            if isinstance(values, list):
                places += [(f"sweeps.{name}.grid.{k}[{i}]", v) for i, v in enumerate(values)]
    found: dict[str, str | None] = {}
    out = []
    for where, value in places:
        if isinstance(value, str) and is_reference(value):
            if value not in found:
                found[value] = problem(value, code_dir)
            if found[value]:
                out.append((where, str(found[value])))
    return out

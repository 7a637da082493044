"""A user's ``"module:callable"`` in a spec (``rankbias_tui.references``, issue 23): found from the
spec's directory first, checked without being imported, its errors located by TOML key path; its
options part of the run id, the directory it came from not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rankbias_tui import references
from rankbias_tui.spec import RunConfig, SpecError, load_spec
from rankbias_tui.store import Store
from rankbias_tui.sweep import expand, run_id

MODEL = """
import torch

def build(input_shape, num_classes, options):
    return torch.nn.Linear(input_shape[0], num_classes)

class Net(torch.nn.Module):
    pass

WIDTH = 3
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def spec_file(folder: Path, body: str) -> Path:
    return write(folder, {"experiments.toml": body}) / "experiments.toml"


SWEEP = """
[sweeps.mine]
model = "{model}"
dataset = "{dataset}"
model_options = {{ hidden = 8 }}
grid.batch_size = [4, 8]
"""


def test_a_reference_is_found_in_the_spec_s_directory_first_and_read_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"my_model.py": MODEL, "pkg/__init__.py": "", "pkg/nets.py": MODEL})
    for ref in (
        "my_model:build",
        "my_model:Net",
        "pkg.nets:build",
        "math:prod",
        "json:loads",
        "os.path:join",
    ):
        assert references.problem(ref, tmp_path) is None, ref
    assert references.locate("my_model:build", tmp_path) == tmp_path / "my_model.py"
    elsewhere = write(tmp_path / "env", {"my_model.py": "", "only_there.py": MODEL})
    monkeypatch.syspath_prepend(str(elsewhere))  # the environment has a my_model too: the spec's wins
    assert references.locate("my_model:build", tmp_path) == tmp_path / "my_model.py"
    assert references.problem("only_there:build", tmp_path) is None  # then the environment
    # found and read only: importing it would have imported torch into this (torch-free) check
    code = f"import sys; from rankbias_tui import references as r; r.problem('my_model:build', {str(tmp_path)!r})"
    check = "; assert 'torch' not in sys.modules and 'my_model' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "ref,message",
    [
        ("nomod:build", "cannot import 'nomod:build' (No module named 'nomod')"),
        ("my_model:biuld", "cannot import 'my_model:biuld' (module 'my_model' has no attribute 'biuld')"),
        ("my_model:WIDTH", "cannot import 'my_model:WIDTH' (my_model.WIDTH is a constant, not a callable)"),
        ("pkg.sub:build", "cannot import 'pkg.sub:build' (No module named 'pkg.sub')"),
        ("broken:build", "cannot import 'broken:build' (SyntaxError in broken.py, line 1"),
        ("my_model:", "cannot import 'my_model:' ('my_model:' is not 'module:callable')"),
        (".my_model:build", "cannot import '.my_model:build' ('.my_model:build' is not 'module:callable')"),
        ("my_model..x:build", "cannot import 'my_model..x:build' ('my_model..x:build' is not 'module"),
    ],
)
def test_a_reference_that_names_no_callable_says_why(tmp_path: Path, ref: str, message: str) -> None:
    write(tmp_path, {"my_model.py": MODEL, "broken.py": "def build(:\n", "pkg/__init__.py": ""})
    assert (references.problem(ref, tmp_path) or "").startswith(message)


def test_validate_locates_a_bad_reference_by_its_key_path(tmp_path: Path) -> None:
    write(tmp_path, {"my_model.py": MODEL})
    body = (
        SWEEP.format(model="x:y", dataset="digits")
        + '[sweeps.other]\ngrid.dataset = ["digits", "my_model:nope"]\n'
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec_file(tmp_path, body))
    assert [str(p) for p in err.value.problems] == [
        "sweeps.mine.model: cannot import 'x:y' (No module named 'x')",
        "sweeps.other.grid.dataset[1]: cannot import 'my_model:nope' (module 'my_model' has no attribute 'nope')",
    ]


def test_a_plain_name_stays_a_built_in_one_with_its_hint(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(spec_file(tmp_path, SWEEP.format(model="mlp-bm", dataset="digits")))
    (problem,) = err.value.problems
    assert problem.path == "sweeps.mine.model" and "or a 'module:callable' reference" in problem.message
    assert problem.hint == "did you mean 'mlp-bn'?"


def test_options_are_part_of_the_run_id_and_the_code_directory_is_not(tmp_path: Path) -> None:
    for folder in (tmp_path / "a", tmp_path / "b"):
        write(folder, {"my_model.py": MODEL, "my_data.py": "def load(options):\n    pass\n"})
        spec_file(folder, SWEEP.format(model="my_model:build", dataset="my_data:load"))
    here, moved = (expand(load_spec(tmp_path / f / "experiments.toml")) for f in "ab")
    assert [r.run_id for r in here] == [r.run_id for r in moved]  # a moved project keeps its ids
    assert here[0].config.code_dir == str(tmp_path / "a") and moved[0].config.code_dir == str(tmp_path / "b")
    assert here[0].config.model_options == {"hidden": 8}
    other = here[0].config.model_copy(update={"model_options": {"hidden": 9}})
    assert run_id(other) != here[0].run_id
    assert run_id(RunConfig()) == run_id(
        RunConfig(model_options={}, dataset_options={})
    )  # built-ins keep theirs


def test_code_dir_is_rankbias_s_to_set(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(spec_file(tmp_path, '[sweeps.s]\ncode_dir = "/elsewhere"\n'))
    assert [(p.path, p.message) for p in err.value.problems] == [("sweeps.s.code_dir", "unknown key")]


@pytest.mark.parametrize(
    "value,ok",
    [
        ('"paper"', True),
        ('"all"', True),
        ('["encoder.*.attn.*", "head"]', True),
        ('"head"', False),
        ("[]", False),
    ],
)
def test_measured_layers_is_paper_all_or_a_list_of_patterns(tmp_path: Path, value: str, ok: bool) -> None:
    file = spec_file(tmp_path, f"[sweeps.s]\nmeasured_layers = {value}\n")
    if ok:
        load_spec(file)
    else:
        with pytest.raises(SpecError) as err:
            load_spec(file)
        assert [p.path for p in err.value.problems] == ["sweeps.s.measured_layers"], err.value.report()


def test_provenance_records_the_reference_its_options_and_its_file_s_digest(tmp_path: Path) -> None:
    write(tmp_path, {"my_model.py": MODEL})
    config = {
        "model": "my_model:build",
        "model_options": {"h": 1},
        "dataset": "digits",
        "code_dir": str(tmp_path),
    }
    first = references.user_code(config)
    assert first["model_ref"] == "my_model:build" and first["model_options"] == {"h": 1}
    assert first["model_file"] == str(tmp_path / "my_model.py") and len(first["model_sha256"]) == 64
    assert not any(k.startswith("dataset_") for k in first)  # a built-in data set records nothing
    write(tmp_path, {"my_model.py": MODEL + "\n# changed\n"})
    assert references.user_code(config)["model_sha256"] != first["model_sha256"]
    assert references.user_code({"model": "mlp", "dataset": "digits"}) == {}


def test_a_moved_project_s_runs_import_from_where_it_is_now(tmp_path: Path) -> None:
    for folder in (tmp_path / "a", tmp_path / "b"):
        write(folder, {"my_model.py": MODEL, "my_data.py": "def load(options):\n    pass\n"})
        spec_file(folder, SWEEP.format(model="my_model:build", dataset="my_data:load"))
    with Store(tmp_path / "store") as store:
        assert store.add_runs(expand(load_spec(tmp_path / "a" / "experiments.toml")), {}) == 2
        assert store.add_runs(expand(load_spec(tmp_path / "b" / "experiments.toml")), {}) == 0  # same ids
        assert {r.config.code_dir for r in store.runs()} == {str(tmp_path / "b")}

"""The package's layout rules: dvc.yaml deps equal each stage's imports, no stage imports
another module's command, no import cycle, errors.py is a leaf and config.py reads only it and yaml_file.py."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from image_completion import code, config

REPO = Path(__file__).resolve().parents[1]
SRC = "src/image_completion/"
# Files a stage reads at run time that are not Python imports.
DATA_FILES = {"download": {"data/sources/debian-photos.tsv"}}


PIPELINE_FILES = ("dvc.yaml", "pipelines/ablation/dvc.yaml", "pipelines/fullsize/dvc.yaml")


def _stages() -> dict[str, dict]:
    """The stages of every pipeline file (their names are unique across the files)."""
    stages: dict[str, dict] = {}
    for file in PIPELINE_FILES:
        spec = yaml.safe_load((REPO / file).read_text())["stages"]
        assert not set(spec) & set(stages), f"{file}: stage names {sorted(set(spec) & set(stages))} used twice"
        stages |= spec
    return stages


def test_every_pipeline_file_is_checked():
    found = {str(p.relative_to(REPO)) for p in REPO.glob("**/dvc.yaml") if ".venv" not in p.parts and ".dvc" not in p.parts}
    assert found == set(PIPELINE_FILES)


def _command_module(cmd: str) -> str:
    match = re.search(r"python -m (image_completion\.stages\.\w+)", cmd)
    assert match, f"stage command does not run a module of image_completion.stages: {cmd!r}"
    return match.group(1)


def _relative(path: Path) -> str:
    return str(path.relative_to(code.ROOT))


@pytest.mark.parametrize(
    ("stage", "section", "params_type"), [("compare", "compare", config.CompareParams), ("claims", "claims", config.ClaimsParams)]
)
def test_seeded_stages_list_every_key_of_their_section_but_the_matrix_axes(stage, section, params_type):
    """A stage entry must rerun when any key it reads changes, and only then: adding a seed must not
    rerun the other seeds' entries, so the matrix axes are the only keys left out."""
    spec = _stages()[stage]
    axes = {f"{section}.{axis}s" for axis in spec["matrix"]}
    listed = {p for p in spec["params"] if isinstance(p, str) and p.startswith(f"{section}.")}
    assert section not in spec["params"], f"dvc.yaml stage {stage!r} lists the whole {section!r} section, matrix axes included"
    keys = {f"{section}.{field.name}" for field in dataclasses.fields(params_type)}
    assert listed == keys - axes, (
        f"dvc.yaml stage {stage!r}: missing {sorted(keys - axes - listed)}, extra {sorted(listed - (keys - axes))}"
    )


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_dvc_deps_are_exactly_the_files_the_stage_imports(stage):
    spec = _stages()[stage]
    module = _command_module(spec["cmd"])
    listed = {d.removeprefix(SRC) for d in spec["deps"] if d.startswith(SRC)}
    imported = {_relative(p) for p in code.imported_files(module)} | DATA_FILES.get(stage, set())
    assert not imported - listed, f"dvc.yaml stage {stage!r} misses deps it imports: {sorted(imported - listed)}"
    assert not listed - imported, f"dvc.yaml stage {stage!r} lists deps it does not import: {sorted(listed - imported)}"


def test_imported_files_follows_lazy_imports_and_package_inits(tmp_path):
    files = {_relative(p) for p in code.imported_files("image_completion.stages.train")}
    # runner imports core.models inside a function; every package on the way runs its __init__.
    assert {"core/models.py", "core/__init__.py", "training/runner.py", "config.py"} <= files
    assert "app/fill.py" not in files and "stages/evaluate.py" not in files


def _modules() -> dict[str, Path]:
    out = {}
    for path in code.ROOT.rglob("*.py"):
        parts = path.relative_to(code.ROOT).with_suffix("").parts
        name = ".".join((code.PACKAGE, *parts)).removesuffix(".__init__")
        out[name] = path
    return out


def _direct_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    return {m for m in code.imported_modules(path) if m in modules}  # the same parser as the deps


def test_no_module_imports_a_stage_command():
    modules = _modules()
    for _name, path in modules.items():
        stages = {m for m in _direct_imports(path, modules) if m.startswith("image_completion.stages.")}
        assert not stages, f"{path}: imports stage command(s) {sorted(stages)}; import the library module instead"


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _direct_imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ is imported by its children; edges to packages are not cycles of code.
    packages = {n for n, p in modules.items() if p.name == "__init__.py"}
    graph = {n: {m for m in edges if m not in packages} for n, edges in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_errors_is_a_leaf_and_config_reads_only_errors_and_yaml():
    """Every module may import errors and config without pulling in anything else of the package."""
    modules = _modules()
    assert _direct_imports(code.ROOT / "errors.py", modules) == set()
    assert _direct_imports(code.ROOT / "yaml_file.py", modules) <= {"image_completion.errors"}
    assert _direct_imports(code.ROOT / "config.py", modules) <= {
        "image_completion.errors",
        "image_completion.yaml_file",
    }

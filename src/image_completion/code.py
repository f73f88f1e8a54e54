"""The package's own source files a module runs: the transitive closure of its imports.

One definition serves two consumers that must agree: the checkpoint fingerprint of the training
stages (a code change discards old checkpoints) and the test that keeps each stage's ``deps`` in
``dvc.yaml`` equal to the files its command imports (so a change reruns exactly the stages that
use it). Imports are read with ``ast``, lazy ones inside functions included; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "image_completion"
ROOT = Path(__file__).resolve().parent  # src/image_completion


def module_file(module: str) -> Path | None:
    """``image_completion.a.b`` -> its file (``a/b.py`` or ``a/b/__init__.py``); None if not ours."""
    if module != PACKAGE and not module.startswith(PACKAGE + "."):
        return None
    parts = module.split(".")[1:]
    path = ROOT.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_modules(path: Path) -> set[str]:
    """Module names ``path`` imports (``from x import y`` yields ``x`` and ``x.y``: y may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def imported_files(module: str) -> list[Path]:
    """Every source file of the package that ``module`` imports, directly or not, itself included,
    with the ``__init__.py`` of each package on the way (Python runs them); sorted."""
    start = module_file(module)
    assert start is not None, f"{module} is not a module of {PACKAGE}"
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c runs a/__init__, a/b/__init__ and a/b/c
                found = module_file(".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(seen)

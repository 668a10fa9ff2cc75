"""The package's layering, read from the source: every import (including those inside functions).

Rules (docs/ARCHITECTURE.md, "Layout"):

1. Imports run one way: core -> {train, brian, measure, plotting} -> {pipeline, report, sweep}
   -> cli. Siblings of a floor do not import each other, except where :data:`ALLOWED` says.
2. A heavy library (Brian2, PyTorch, matplotlib, Dask, ...) is imported at the top of its own
   sub-package; an import inside a function is allowed only for a heavy library or a heavy
   sub-package of hcs-neuro imported late by a lighter one (laziness comes from importing the
   sub-package late).
3. No private name (``_x``) is imported from another module.
4. Nothing imports the command line.
5. The core imports no heavy library at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hcs_neuro"

#: Which groups a group may import (groups: the second component of the module name, with the
#: sweep engine, its worker hooks and its targets told apart). Every group may import the package
#: itself (``hcs_neuro.__version__``).
ALLOWED = {
    "root": {"core"},  # hcs_neuro/__init__.py
    "core": {"core"},
    "brian": {"core", "brian"},
    "train": {"core", "train"},
    "measure": {"core", "measure"},
    "plotting": {"core", "plotting"},
    "report": {"core", "measure", "plotting", "report"},
    "pipeline": {"core", "brian", "measure", "report", "pipeline"},
    "sweep": {"core", "sweep", "sweep.worker"},  # the engine: spec, grid, runner (+ worker plugin), results
    "sweep.worker": {"core", "sweep", "brian"},
    "sweep.targets": {"core", "sweep", "sweep.worker", "sweep.targets", "brian", "measure", "pipeline"},
    "cli": {"root", "core", "brian", "train", "measure", "plotting", "report", "pipeline", "sweep", "sweep.worker",
            "sweep.targets", "cli"},
    "main": {"cli"},
}
#: Libraries that only their own sub-package imports at its top (rule 2), and that the core never imports.
HEAVY_LIBRARIES = {"brian2", "torch", "matplotlib", "distributed", "dask", "pandas", "xarray", "h5py", "h5netcdf",
                   "sklearn", "scipy", "ninja"}
#: Sub-packages that import a heavy library at their top, so lighter modules import them late.
HEAVY_SUBPACKAGES = {"brian", "train", "plotting", "report", "sweep", "sweep.worker", "sweep.targets"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group(module: str) -> str | None:
    """The layering group of an hcs_neuro module (None for modules outside the package)."""
    parts = module.split(".")
    if parts[0] != "hcs_neuro":
        return None
    if len(parts) == 1:
        return "root"
    if parts[1] == "__main__":
        return "main"
    if parts[1] == "sweep" and len(parts) > 2 and parts[2] in ("worker", "targets"):
        return f"sweep.{parts[2]}"
    return parts[1]


def imports(path: Path, module: str | None = None):
    """``(imported module, names, inside a function, line)`` for every import of a file (of module
    ``module``, default: the file's place in the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    inside.add(id(sub))
    me = module or module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in inside, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            names = [a.name for a in node.names]
            # "from hcs_neuro.core import io" imports the module hcs_neuro.core.io
            subs = [f"{base}.{n}" for n in names if (PACKAGE.parent / f"{base}.{n}".replace(".", "/")).with_suffix(".py").exists()
                    or (PACKAGE.parent / f"{base}.{n}".replace(".", "/") / "__init__.py").exists()]
            for target in subs or [base]:
                yield target, ([] if subs else names), id(node) in inside, node.lineno


FILES = sorted(PACKAGE.rglob("*.py"))


def _where(path, line):
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_the_package_is_read():
    assert len(FILES) > 40 and any(module_name(p) == "hcs_neuro.core.io" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_run_one_way(path):
    me = module_name(path)
    mine = group(me)
    bad = []
    for target, _, _, line in imports(path):
        theirs = group(target)
        if theirs is None or theirs == mine or theirs == "root":
            continue
        if theirs not in ALLOWED[mine]:
            bad.append(f"{_where(path, line)}: {me} ({mine}) imports {target} ({theirs})")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_name_crosses_a_module(path):
    me = module_name(path)
    bad = [f"{_where(path, line)}: {me} imports {n} from {target}"
           for target, names, _, line in imports(path) if target.startswith("hcs_neuro") and target != me
           for n in names if n.startswith("_") and not n.startswith("__")]
    bad += [f"{_where(path, line)}: {me} imports the private module {target}"
            for target, _, _, line in imports(path)
            if target.startswith("hcs_neuro") and any(part.startswith("_") and part != "__main__"
                                                      for part in target.split(".")[1:])]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_inside_functions_are_only_for_late_heavy_packages(path):
    me = module_name(path)
    mine = group(me)
    bad = []
    for target, _, inside, line in imports(path):
        if not inside:
            continue
        if target.split(".")[0] in HEAVY_LIBRARIES:
            continue
        theirs = group(target)
        if theirs in HEAVY_SUBPACKAGES and theirs != mine:
            continue
        bad.append(f"{_where(path, line)}: {me} imports {target} inside a function (import it at the top)")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_command_line():
    bad = [f"{_where(p, line)}: {module_name(p)} imports {t}" for p in FILES for t, _, _, line in imports(p)
           if group(t) == "cli" and group(module_name(p)) not in ("cli", "main")]
    assert not bad, "\n".join(bad)


def test_the_core_imports_no_heavy_library():
    bad = [f"{_where(p, line)}: {t}" for p in FILES if group(module_name(p)) == "core"
           for t, _, inside, line in imports(p)
           if t.split(".")[0] in HEAVY_LIBRARIES and not (t.startswith("sklearn") and inside)]
    assert not bad, "\n".join(bad)


def test_the_checker_catches_what_it_should(tmp_path):
    """The rules are not vacuous: a core module that breaks each is reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("import brian2\nfrom hcs_neuro.brian.device import WORKER_CACHE\n"
                     "from hcs_neuro.core.io import _mkdirs\ndef f():\n    import json\n")
    found = list(imports(probe, "hcs_neuro.core.probe"))
    assert ("brian2", [], False, 1) in found  # a heavy library in the core
    assert group("hcs_neuro.brian.device") not in ALLOWED[group("hcs_neuro.core.probe")]  # an upward import
    assert any(n == "_mkdirs" for _, names, _, _ in found for n in names)  # a private name
    assert any(t == "json" and inside for t, _, inside, _ in found)  # a light import inside a function

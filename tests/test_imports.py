"""The import graph of kd_lab, read from the source with ``ast`` (imports inside functions count): no cycle,
only the command line and the benchmark import the sweep runner ``kd_lab.compare``, and the modules that read
results stay light."""
import ast
import pkgutil
from pathlib import Path

import pytest

import kd_lab

RUNNER = "kd_lab.compare"
MAY_IMPORT_RUNNER = {"kd_lab.__main__", "kd_lab.bench"}


def module_files(package: str, root: Path) -> dict[str, Path]:
    """``{module name: source file}`` of ``package`` (folder ``root``) and every module under it, subpackages
    included (:func:`pkgutil.walk_packages`)."""
    files = {package: root / "__init__.py"}
    for info in pkgutil.walk_packages([str(root)], prefix=package + "."):
        path = root.joinpath(*info.name.split(".")[1:])
        files[info.name] = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
    return files


def _ancestors(name: str) -> list[str]:
    """``a.b.c`` -> ``["a.b", "a.b.c"]``: what ``import a.b.c`` runs, the top-level package left out."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def _imported_modules(node, package: str, modules) -> set[str]:
    """The modules of ``modules`` that an ``import``/``from ... import`` statement in ``package`` runs.

    Importing ``a.b.c`` runs ``a.b`` and ``a.b.c``, but the importer's own packages are already being
    imported; ``from a.b import name`` needs ``a.b`` itself (even the importer's own package: ``name`` must
    exist there already), ``from a.b import submodule`` the submodule."""
    own = set(_ancestors(package)) | {package}
    if isinstance(node, ast.Import):
        return {m for a in node.names for m in _ancestors(a.name) if m in modules and m not in own}
    anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
    base = ".".join(anchor + ([node.module] if node.module else []))
    found = {m for m in _ancestors(base) if m in modules and m not in own}
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found |= {sub} if sub in modules else {base} if base in modules else set()
    return found


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: {modules of the package it imports}}`` over every import statement of each module's source
    (inside functions too), relative imports resolved."""
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(_imported_modules(node, package, files) for node in ast.walk(tree)
                                    if isinstance(node, (ast.Import, ast.ImportFrom)))) - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search, each as ``[a, b, ..., a]``; none for a DAG."""
    cycles, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


@pytest.fixture(scope="module")
def graph():
    return import_graph(module_files("kd_lab", Path(kd_lab.__file__).parent))


# ------------------------------------------------------------------------------- kd_lab itself
def test_the_walk_finds_every_module_and_subpackage(graph):
    root = Path(kd_lab.__file__).parent
    on_disk = {".".join(("kd_lab", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
               for p in root.rglob("*.py") if "__pycache__" not in p.parts}
    assert set(graph) == on_disk
    assert {"kd_lab.compare", "kd_lab.results", "kd_lab.stats", "kd_lab.__main__"} <= set(graph)


def test_kd_lab_has_no_import_cycle(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles (imports inside functions count):\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_command_line_and_the_benchmark_import_the_sweep_runner(graph):
    importers = {m for m, edges in graph.items() if RUNNER in edges}
    assert importers <= MAY_IMPORT_RUNNER, f"{sorted(importers - MAY_IMPORT_RUNNER)} import {RUNNER}; read " \
                                           f"results with kd_lab.results instead"
    assert "kd_lab.__main__" in importers                   # the check sees function-level imports


def test_reading_results_stays_light(graph):
    assert graph["kd_lab.stats"] == set()
    assert graph["kd_lab.results"] <= {"kd_lab.stats", "kd_lab.methods"}, graph["kd_lab.results"]
    assert RUNNER in graph["kd_lab.__main__"] and "kd_lab.results" in graph[RUNNER]


# ------------------------------------------------------------------------ the checker on a toy package
def write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "toy"


def test_the_checker_resolves_relative_imports_and_finds_a_cycle(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = write_package(tmp_path, {
        "toy/__init__.py": "",
        "toy/a.py": "from .sub import c\nimport toy.b as b\n",
        "toy/b.py": "def f():\n    from . import a          # inside a function: still an edge\n",
        "toy/sub/__init__.py": "from ._base import X\n",
        "toy/sub/_base.py": "from .. import b\nX = 1\n",
        "toy/sub/c.py": "from ._base import X\nfrom . import _base\nfrom ..b import f\n",
    })
    graph = import_graph(module_files("toy", toy))
    assert graph == {"toy": set(), "toy.a": {"toy.sub", "toy.sub.c", "toy.b"}, "toy.b": {"toy.a"},
                     "toy.sub": {"toy.sub._base"}, "toy.sub._base": {"toy.b"},
                     "toy.sub.c": {"toy.sub._base", "toy.b"}}
    assert find_cycles(graph) == [["toy.a", "toy.b", "toy.a"]]
    (toy / "b.py").write_text("from .sub import X\n")                     # through a subpackage
    assert find_cycles(import_graph(module_files("toy", toy))) == [["toy.b", "toy.sub", "toy.sub._base", "toy.b"]]
    (toy / "b.py").write_text("")
    assert find_cycles(import_graph(module_files("toy", toy))) == []


def test_the_checker_sees_a_submodule_that_imports_a_name_of_its_own_package(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = write_package(tmp_path, {"toy/__init__.py": "from .m import Y\nX = 1\n", "toy/m.py": "from . import X\n"})
    assert find_cycles(import_graph(module_files("toy", toy))) == [["toy", "toy.m", "toy"]]

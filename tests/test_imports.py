"""No import cycle in ``bench/`` or ``conformance/``: the subcommands import downward, ``bench.cli.main`` is the top.

The graph is read from the source with :mod:`ast`, so it holds every ``import`` and ``from … import``
wherever it is written: at module level, inside a function (a lazy import) or under
``if TYPE_CHECKING:``. Edges, for modules of ``bench`` and ``conformance`` only:

* ``import a.b`` and ``from a.b import x`` -> ``a.b`` (a package is its ``__init__``); the parent
  packages that Python also initialises are not edges;
* ``from a.b import c`` where ``a.b.c`` is a module -> ``a.b`` and ``a.b.c``;
* relative imports are resolved against the importing module's package.

A cycle is a strongly connected component of more than one module, or a module importing itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "conformance")


def module_files(root: Path = REPO, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every ``.py`` under the packages."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
              known: Mapping[str, Path]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join([*base, *([node.module] if node.module else [])])
    else:
        target = node.module or ""
    return {target} | {f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known}


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ``modules`` it imports (anywhere in its source)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps |= _imported(node, name, is_package, modules)
        graph[name] = {d for d in deps if d in modules}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node, and self-loops; each and the list sorted.

    The components come from the history checker's Tarjan (:func:`bench.verify.cycles.strongly_connected`),
    which leaves single vertices out: a module importing itself is added here."""
    from bench.verify.cycles import strongly_connected

    comps = [sorted(c) for c in strongly_connected(sorted(graph), graph)]
    in_comp = {m for c in comps for m in c}
    return sorted(comps + [[m] for m in graph if m in graph[m] and m not in in_comp])


def _describe(comp: list[str], graph: Mapping[str, Iterable[str]]) -> str:
    members = set(comp)
    edges = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in members]
    return f"{{{', '.join(comp)}}}: " + "; ".join(edges)


def test_no_import_cycle() -> None:
    modules = module_files()
    assert "bench.cli.main" in modules and "conformance.plugin" in modules
    graph = import_graph(modules)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, graph) for c in found)


def test_cli_is_the_top() -> None:
    """Nothing imports ``bench.cli.main`` but ``python -m bench.cli``: it is the entry point that imports
    the subcommands, and nothing outside ``bench.cli`` imports the CLI layer."""
    graph = import_graph(module_files())
    importers = sorted(m for m, deps in graph.items() if "bench.cli.main" in deps and m != "bench.cli.__main__")
    assert importers == [], f"modules importing bench.cli.main: {importers}"
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if not m.startswith("bench.cli")
                    for d in deps if d.startswith("bench.cli."))
    assert upward == [], "imports of the CLI layer from below it:\n" + "\n".join(upward)
    assert importers == [], f"modules importing bench.cli.main: {importers}"


def test_the_graph_reader_sees_lazy_relative_and_self_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\n")
    (pkg / "a.py").write_text("A = 1\ndef f():\n    from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\nfrom ..sub import c\nimport os\n")
    (pkg / "d.py").write_text("import pkg.d\n")
    modules = module_files(tmp_path, ["pkg"])
    graph = import_graph(modules)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg", "pkg.b"}, "pkg.b": {"pkg.sub.c"},
                     "pkg.sub": set(), "pkg.sub.c": {"pkg", "pkg.a", "pkg.sub", "pkg.sub.c"},
                     "pkg.d": {"pkg.d"}}
    assert cycles(graph) == [["pkg", "pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.d"]]

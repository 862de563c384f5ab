"""Imports only point to earlier layers; evaluation never imports a method (only the data registered
with methods); encoders never do.

The order is DESIGN.md's and the README's ("Layout of the code"). Every import counts, the ones inside
functions too (``ast.walk`` sees them all), and ``from skelssl import transforms`` counts as an import
of ``transforms``.
"""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "skelssl"
# Layers on one rank may not import each other either: data and transforms are siblings.
ORDER = [
    ["core"],
    ["data", "transforms"],
    ["models"],
    ["methods"],
    ["evaluation"],
    ["engine"],
    ["viz"],
    ["jobs"],
    ["cli"],
    ["__main__", "__init__"],  # python -m skelssl; skelssl.load_encoder
]
RANK = {name: i for i, names in enumerate(ORDER) for name in names}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _targets(path: Path):
    """``(layer, module, line)`` of every skelssl import in the file, at any depth."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "skelssl":
            parts = node.module.split(".")
            if len(parts) >= 2:
                yield parts[1], node.module, node.lineno
            else:  # from skelssl import transforms
                for alias in node.names:
                    yield alias.name, f"skelssl.{alias.name}", node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path.relative_to(SRC)}:{node.lineno}: relative import (write skelssl.<layer>...)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "skelssl" and len(parts) >= 2:
                    yield parts[1], alias.name, node.lineno


# What evaluation may read of methods: the data registered with them, never a method class.
METHOD_DATA = {"published_numbers", "published_rows"}


def _imported_names(path: Path, line: int) -> set[str]:
    """The names a ``from ... import`` on ``line`` of ``path`` imports."""
    return {alias.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.lineno == line for alias in node.names}


FILES = sorted(p for p in SRC.rglob("*.py") if _layer(p) in RANK)


def test_every_layer_is_ranked():
    tops = {_layer(p) for p in SRC.rglob("*.py")}
    assert tops <= set(RANK), f"layers missing from ORDER: {sorted(tops - set(RANK))}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SRC)) for p in FILES])
def test_imports_point_down(path: Path):
    here = _layer(path)
    for target, module, line in _targets(path):
        if target not in RANK or target == here:
            continue
        where = f"{path.relative_to(SRC)}:{line} imports {module}"
        assert RANK[target] < RANK[here], f"{where} (layer {target} is not below {here})"
        if here == "evaluation" and target == "methods":
            names = _imported_names(path, line)
            assert module == "skelssl.methods" and names and names <= METHOD_DATA, f"{where} {sorted(names)}: evaluation imports a method"
        if here == "models":
            assert target != "methods", f"{where}: an encoder imports a method"


def _module_name(path: Path) -> str:
    parts = ("skelssl",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycles():
    """No two modules import each other, directly or through others (imports in functions count)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "skelssl":
                for alias in node.names:  # from skelssl.data import preprocess: the submodule, else the package
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name.split(".")[0] == "skelssl")
        graph[name] = {m for m in edges if m in modules and m != name}

    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])

"""Imports only point to earlier layers; evaluation never imports a method; encoders never do."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "skelssl"
ORDER = ["core", "data", "transforms", "models", "methods", "evaluation", "viz", "engine", "cli", "__main__"]
RANK = {name: i for i, name in enumerate(ORDER)}


def _layer(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts else ""


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skelssl"):
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("skelssl"):
                    yield alias.name, node.lineno


FILES = sorted(p for p in SRC.rglob("*.py") if _layer(p) in RANK)


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(SRC)) for p in FILES])
def test_imports_point_down(path: Path):
    here = _layer(path)
    for module, line in _imports(path):
        parts = module.split(".")
        if len(parts) < 2:
            continue
        target = parts[1]
        if target not in RANK:
            continue
        assert RANK[target] <= RANK[here], f"{path.relative_to(SRC)}:{line} imports {module} (layer {target} is above {here})"
        if here == "evaluation":
            assert target != "methods", f"{path}:{line}: evaluation imports a method"
        if here == "models":
            assert target != "methods", f"{path}:{line}: an encoder imports a method"

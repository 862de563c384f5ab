"""Every script in benchmarks/ still imports against the current package (a refactor that moves a name
breaks the commands RESULTS.md quotes; they run only by hand). Plug-ins of train_throughput.py have no
main()."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


def test_there_are_scripts():
    assert len(SCRIPTS) > 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_imports(script, monkeypatch):
    monkeypatch.syspath_prepend(str(script.parent))  # as when run as a script: siblings import each other
    spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if '__name__ == "__main__"' in script.read_text():
        assert callable(getattr(module, "main", None)), f"{script.name} has no main()"

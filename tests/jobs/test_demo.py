"""``skelssl demo --quick``: the whole job end to end on a tiny synthetic store."""

from __future__ import annotations

import json

import pytest

from skelssl.jobs.demo import DEFAULT_DEMO, run_demo

pytestmark = pytest.mark.usefixtures("one_thread")


def test_quick_demo_reports_every_result_beside_its_baselines(tmp_path):
    lines: list[str] = []
    report = run_demo(tmp_path / "demo", quick=True, log=lines.append, methods=("isc",))
    text = report.read_text()
    assert "| raw input |" in text and "isc / gru" in text
    results = [json.loads(p.read_text()) for p in (tmp_path / "demo" / "runs" / "isc" / "eval").rglob("results.json")]
    frozen = [r for r in results if r["task"] in ("knn", "linear")]
    assert len(frozen) == 2
    for r in frozen:
        assert {"random_init", "raw_input"} <= set(r["baselines"]) and r["diagnostics"]["effective_rank"] > 0
    assert any("beat both random init and raw input" in ln for ln in lines)
    assert (tmp_path / "demo" / "runs" / "isc" / "loss.png").is_file()
    assert set(DEFAULT_DEMO) >= {"isc", "hitrs", "mamp"}
    # The store is centred as the recipes' real stores are (camera coordinates let contrastive views match by position).
    assert json.loads((tmp_path / "demo" / "store" / "store.json").read_text())["pipeline"] == "ctrgcn"
    # A second demo into the same folder reuses the store and the finished run.
    again: list[str] = []
    run_demo(tmp_path / "demo", quick=True, log=again.append, methods=("isc",))
    assert not any("pre-training isc" in ln for ln in again)

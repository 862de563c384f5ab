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


def test_an_unfinished_demo_run_is_restarted_and_a_look_alike_folder_is_left_alone(tmp_path):
    from skelssl.core.files import OutputError
    from skelssl.jobs.demo import _unfinished_demo_run

    store = tmp_path / "demo" / "store"
    run = tmp_path / "demo" / "runs" / "isc"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data: {{store: {store.resolve()}}}\nmethod: {{name: isc}}\n")
    assert _unfinished_demo_run(run, store, "isc")
    assert not _unfinished_demo_run(run, store, "mamp")  # another method's run
    assert not _unfinished_demo_run(run, tmp_path / "elsewhere", "isc")  # a run on another store
    (run / "config.yaml").write_text("data: {store: /some/where/else}\nmethod: {name: isc}\n")
    (run / "checkpoints" / "mine.txt").write_text("a user's file")
    with pytest.raises(OutputError, match="not an unfinished demo run"):
        run_demo(tmp_path / "demo", quick=True, log=lambda _: None, methods=("isc",))
    assert (run / "checkpoints" / "mine.txt").read_text() == "a user's file"

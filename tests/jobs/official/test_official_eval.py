"""Converted official weights run ``skelssl eval knn`` on a small real store like a run of ours
(issue 18). The file's values are random, so the accuracy means nothing: what is checked is that the
path runs end to end and writes a whole result (the encoders are paper-size, NTU's 25 joints, on
N-UCLA's 20: the joint-dependent position tables are re-initialised, as in any transfer)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _official_files import write_official
from skelssl.cli import main as cli_main
from skelssl.data.prepare import prepare

# A handful of clips: k = 1 only, and the baselines (a second paper-size encoder) left to the
# evaluation tests; the converted encoder's own features are what is under test.
QUICK = ["knn.ks=[1]", "baselines.random_init=false", "baselines.raw_input=false", "probe.cs=[1.0]"]

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.realdata]


@pytest.fixture(scope="module")
def ucla_store(shared_data, tmp_path_factory) -> Path:
    """18 N-UCLA clips (every view, several classes) as a raw-pipeline store."""
    source = shared_data / "nw_ucla" / "all_sqe"
    if not source.is_dir():
        pytest.skip(f"N-UCLA missing under {shared_data}")
    folder = tmp_path_factory.mktemp("ucla")
    clips = folder / "clips"
    clips.mkdir()
    for name in sorted(os.listdir(source))[::82]:
        os.symlink(source / name, clips / name)
    prepare("nucla", clips, folder / "store")
    return folder / "store"


@pytest.mark.parametrize("method, dim, reinit", [("hitrs", 512, ["clip_pe", "frame_pe"]),
                                                  ("mamp", 256, ["pos_embed"])])
def test_converted_weights_run_eval_knn(tmp_path, shared_data, ucla_store, capsys, method, dim, reinit):
    write_official(tmp_path / "official.pth", shared_data, method)
    run = tmp_path / "run"
    assert cli_main(["convert", method, str(tmp_path / "official.pth"), "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli_main(["eval", "knn", str(run), "--store", str(ucla_store), "--protocol", "nucla-xview",
                     "--accelerator", "cpu", *QUICK]) == 0
    out = capsys.readouterr().out
    assert out.startswith("transfer nucla-xview: top1") or out.startswith("knn nucla-xview: top1"), out
    results = json.loads((run / "eval" / "knn-nucla-xview" / "results.json").read_text())
    assert results["feature_dim"] == dim
    assert sorted(results.get("reinitialised") or []) == reinit
    assert results["train_samples"] > 0 and results["test_samples"] > 0
    assert 0.0 <= results["final"] <= 100.0

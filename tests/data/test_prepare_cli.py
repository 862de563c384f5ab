"""``skelssl prepare / synth / info / show / export`` end to end, with bad files mixed in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.prepare import prepare
from skelssl.data.store import Store


def _copy_some(src: Path, dst: Path, pattern: str, n: int) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(src.glob(pattern))[:n]
    for f in files:
        shutil.copy(f, dst / f.name)
    return files


def test_prepare_keeps_every_good_sample_among_bad_files(shared_data, tmp_path):
    src = tmp_path / "mixed"
    good = _copy_some(shared_data / "nw_ucla" / "all_sqe", src, "a0*_v0*.json", 12)
    (src / "a01_s01_e09_v01.json").write_text('{"file_name": "x", "label": 1, "skeletons": [[[0.1, 0.2')  # truncated
    (src / "a01_s01_e08_v01.json").write_text("")  # empty
    (src / "a01_s01_e07_v02.json").write_text('{"file_name": "x", "label": 1, "skeletons": [[[NaN, 1, 2]]]}')
    (src / "a01_s01_e06_v03.json").write_bytes(b"\x00\xff garbage \x13")
    for workers in (1, 2):
        report = prepare("nucla", src, tmp_path / f"store{workers}", workers=workers)
        assert report.samples == len(good)
        assert len(report.skipped) == 4
        skipped = {Path(p).name for p, _ in report.skipped}
        assert skipped == {"a01_s01_e09_v01.json", "a01_s01_e08_v01.json", "a01_s01_e07_v02.json", "a01_s01_e06_v03.json"}
        store = Store(report.store)
        assert len(store.info["skipped"]) == 4
        assert (report.store / "skipped.tsv").read_text().count("\n") == 5
    a, b = Store(tmp_path / "store1"), Store(tmp_path / "store2")
    assert list(a.names) == list(b.names) and np.array_equal(np.asarray(a.frames_array), np.asarray(b.frames_array))


def test_prepare_real_nucla_counts(shared_data, tmp_path, capsys):
    assert cli_main(["prepare", "nucla", str(shared_data / "nw_ucla" / "all_sqe"), "--out", str(tmp_path / "nucla"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "samples    1484" in out
    # This release of N-UCLA holds 95 view-3 sequences equal to their view-2 sequence, frame for frame.
    assert "duplicates 95 group(s)" in out and "a02_s01_e00_v02 = a02_s01_e00_v03" in out
    assert cli_main(["info", str(tmp_path / "nucla"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    for key in ("samples", "classes", "frames", "layout", "pipeline", "skipped", "protocols"):
        assert key in info
    assert info["samples"] == 1484 and info["classes"] == 10 and info["layout"] == "kinect20"
    assert info["protocols"]["nucla-xview"] == {"train": 1020, "test": 464, "test_identical_to_train": 95}
    assert info["duplicate_groups"] == 95
    assert any(k.startswith("nucla-xview/0.01/") for k in info["subsets"])


def test_prepare_ntu_both_pipelines_and_show(shared_data, tmp_path, capsys):
    src = shared_data / "ntu_rgbd_samples"
    for pipeline in ("raw", "agcn"):
        assert cli_main(["prepare", "ntu", str(src), "--out", str(tmp_path / pipeline), "--pipeline", pipeline]) == 0
        store = Store(tmp_path / pipeline)
        assert len(store) == 9 and store.pipeline == pipeline and store.num_classes == 60
        assert store.class_names[0] == "drink water"
    gif = tmp_path / "a050.gif"
    assert cli_main(["show", str(tmp_path / "agcn"), "S001C001P001R001A050", "--out", str(gif)]) == 0
    assert gif.read_bytes()[:6] == b"GIF89a"


def test_prepare_errors_are_one_line(tmp_path, capsys):
    assert cli_main(["prepare", "nope", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "unknown format" in capsys.readouterr().err
    assert cli_main(["prepare", "nucla", str(tmp_path / "missing"), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert cli_main(["prepare", "nucla", str(tmp_path / "empty"), "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


def test_synth_info_show_export(tmp_path, capsys):
    assert cli_main(["synth", "--out", str(tmp_path / "syn"), "--samples", "40", "--layout", "kinect20"]) == 0
    assert cli_main(["info", str(tmp_path / "syn")]) == 0
    out = capsys.readouterr().out
    assert "synthetic-xsub" in out and "synthetic-xview" in out
    store = Store(tmp_path / "syn")
    assert cli_main(["show", str(tmp_path / "syn"), str(store.names[3]), "--out", str(tmp_path / "x.gif")]) == 0
    assert cli_main(["show", str(tmp_path / "syn"), "no-such-sample", "--out", str(tmp_path / "y.gif")]) == 2
    assert cli_main(["export", "pyskl", str(tmp_path / "syn"), "--out", str(tmp_path / "syn.pkl")]) == 0
    assert cli_main(["prepare", "pyskl", str(tmp_path / "syn.pkl"), "--out", str(tmp_path / "back"), "-o", "dataset=synthetic"]) == 0
    back = Store(tmp_path / "back")
    assert len(back) == len(store)
    for i in range(len(store)):
        j = back.index_of(str(store.names[i]))
        assert np.array_equal(back.frames(j), store.frames(i))



_KILL_ON: list[str] = []  # the unit whose worker is killed (read by the forked workers)


def _dies_on_one(unit):
    import os
    import signal

    import skelssl.data.prepare as prep

    if _KILL_ON and str(unit).endswith(_KILL_ON[0]):
        os.kill(os.getpid(), signal.SIGKILL)
    return prep._REAL_PROCESS(unit)


def test_a_killed_worker_fails_the_prepare_instead_of_hanging(shared_data, tmp_path, monkeypatch):
    """A --workers process killed from outside (the OOM killer) ends prepare with one error, nothing published."""
    import skelssl.data.prepare as prep
    from skelssl.core.conventions import StoreError

    src = tmp_path / "few"
    files = _copy_some(shared_data / "nw_ucla" / "all_sqe", src, "a0*_v0*.json", 8)
    _KILL_ON[:] = [files[2].name]
    monkeypatch.setattr(prep, "_REAL_PROCESS", prep._process, raising=False)
    monkeypatch.setattr(prep, "_process", _dies_on_one)
    try:
        with pytest.raises(StoreError, match="a --workers process died"):
            prepare("nucla", src, tmp_path / "store", workers=2)
    finally:
        _KILL_ON.clear()
    assert not (tmp_path / "store").exists()

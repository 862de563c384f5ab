"""``skelssl merge``: the training splits of several stores as one unlabelled pre-training store."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.core.conventions import StoreError
from skelssl.data import synthetic
from skelssl.data.protocols import split
from skelssl.data.store import Store


def test_merge_takes_only_training_samples_and_drops_labels(tmp_path, capsys):
    a = synthetic.write_store(tmp_path / "a", num_samples=30, layout="kinect20", seed=1, num_persons=1)
    b = synthetic.write_store(tmp_path / "b", num_samples=20, layout="kinect20", seed=2, num_persons=2)
    assert cli_main(["merge", f"{a.path}:synthetic-xsub", str(b.path), "--out", str(tmp_path / "u")]) == 0
    assert "unlabelled samples" in capsys.readouterr().out
    u = Store(tmp_path / "u")
    train_a = split(a, "synthetic-xsub")[0]
    assert len(u) == len(train_a) + len(b) and u.num_persons == 2 and u.dataset == "union" and u.verify()
    assert (u.labels == -1).all() and np.bincount(u.meta["part"]).tolist() == [len(train_a), len(b)]
    first = u.frames(0)
    assert np.array_equal(first[:, :1], a.frames(int(train_a[0]))) and not first[:, 1].any()  # padded slot
    test_names = {f"synthetic/{a.names[i]}" for i in split(a, "synthetic-xsub")[1]}
    assert not test_names & set(map(str, u.names))


def test_merge_refuses_mixed_layouts(tmp_path):
    from skelssl.data.merge import merge_stores

    a = synthetic.write_store(tmp_path / "a", num_samples=12, layout="kinect20")
    b = synthetic.write_store(tmp_path / "b", num_samples=12, layout="ntu25")
    with pytest.raises(StoreError, match="layout"):
        merge_stores([(a.path, None), (b.path, None)], tmp_path / "u")
    assert not (tmp_path / "u").exists()


def test_merge_refuses_a_protocol_of_another_dataset_in_one_line(tmp_path, capsys):
    a = synthetic.write_store(tmp_path / "a", num_samples=12, layout="kinect20")
    assert cli_main(["merge", f"{a.path}:ntu60-xsub", "--out", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err.strip()
    assert "ntu60-xsub" in err and len(err.splitlines()) == 1 and not (tmp_path / "u").exists()


def test_prepare_converts_ntu25_to_kinect20_for_a_kinect_v1_union(tmp_path, capsys):
    """NTU (Kinect v2) files prepared with ``--layout kinect20`` keep the 20 Kinect v1 joints, so they
    can join a union with N-UCLA / MSR / UTKinect stores; the store records the conversion."""
    from skelssl.core.layouts import CONVERSIONS
    from skelssl.data.prepare import prepare

    synthetic.write_ntu_skeleton_files(tmp_path / "ntu", 6, seed=3)
    full = prepare("ntu", tmp_path / "ntu", tmp_path / "s25", pipeline="raw")
    part = prepare("ntu", tmp_path / "ntu", tmp_path / "s20", pipeline="raw", layout="kinect20")
    a, b = Store(full.store), Store(part.store)
    assert a.layout.name == "ntu25" and b.layout.name == "kinect20" and len(a) == len(b) == 6
    select = list(CONVERSIONS[("ntu25", "kinect20")])
    for i in range(len(a)):
        assert np.array_equal(b.frames(i), a.frames(i)[:, :, select])
    assert b.info["converted_from"] == {"layout": "ntu25", "joints": select}
    # ... and it merges with another kinect20 store of its pipeline (an N-UCLA store in real use)
    synthetic.write_ntu_skeleton_files(tmp_path / "ntu2", 4, seed=4)
    other = prepare("ntu", tmp_path / "ntu2", tmp_path / "o20", pipeline="raw", layout="kinect20")
    assert cli_main(["merge", str(other.store), str(b.path), "--out", str(tmp_path / "u")]) == 0
    assert len(Store(tmp_path / "u")) == 10 and Store(tmp_path / "u").layout.name == "kinect20"


def test_prepare_refuses_an_unknown_layout_conversion_in_one_line(tmp_path, capsys):
    synthetic.write_ntu_skeleton_files(tmp_path / "ntu", 2, seed=3)
    code = cli_main(["prepare", "ntu", str(tmp_path / "ntu"), "--out", str(tmp_path / "s"), "--layout", "coco17"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "ntu25 -> kinect20" in err[0] and "coco17" in err[0]
    assert not (tmp_path / "s").exists()


def test_cut_windows_names_slices_and_leaves_out_empty_windows():
    from skelssl.data.prepare import cut_windows
    from skelssl.data.sample import RawSample

    bodies = np.random.default_rng(0).normal(size=(100, 1, 20, 3)).astype(np.float32)
    bodies[40:80] = 0  # nobody in view for 40 frames
    labels = np.arange(100, dtype=np.int32)
    raw = RawSample("rec", bodies, label=-1, subject=3, frame_labels=labels)
    pieces = cut_windows(raw, 20, 20)
    assert [p.name for p in pieces] == ["rec@0", "rec@20", "rec@80"]  # 40 and 60 hold no body
    assert all(p.subject == 3 and p.num_frames == 20 for p in pieces)
    assert np.array_equal(pieces[2].bodies, bodies[80:100]) and np.array_equal(pieces[2].frame_labels, labels[80:100])
    assert [p.name for p in cut_windows(raw, 30, 35)] == ["rec@0", "rec@35", "rec@70"]  # 105 would be short
    short = cut_windows(RawSample("s", bodies[:5]), 20, 10)
    assert len(short) == 1 and short[0].num_frames == 5  # a short sequence stays whole


def test_prepare_windows_from_the_command_line(tmp_path, capsys):
    synthetic.write_ntu_skeleton_files(tmp_path / "ntu", 3, seed=5)
    assert cli_main(["prepare", "ntu", str(tmp_path / "ntu"), "--out", str(tmp_path / "w"), "--windows", "16:8"]) == 0
    whole = cli_main(["prepare", "ntu", str(tmp_path / "ntu"), "--out", str(tmp_path / "s")])
    a, w = Store(tmp_path / "s"), Store(tmp_path / "w")
    assert whole == 0 and w.info["windows"] == {"length": 16, "stride": 8}
    expected = sum(max(1, (int(n) - 16) // 8 + 1) for n in a.lengths)
    assert len(w) == expected and all("@" in str(n) for n in w.names) and int(w.lengths.max()) <= 16
    capsys.readouterr()
    assert cli_main(["prepare", "ntu", str(tmp_path / "ntu"), "--out", str(tmp_path / "x"), "--windows", "16:x"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--windows" in err[0] and not (tmp_path / "x").exists()

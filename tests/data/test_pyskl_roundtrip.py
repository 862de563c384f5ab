"""``skelssl export pyskl`` then ``skelssl prepare pyskl``, with no flags, gives the same store: frames
bit for bit, labels, class names and count, persons, pipeline, layout, channels, metadata, every
protocol's splits (under PYSKL's names in the pickle) and, for untrimmed stores, frame labels; for
stores of the NTU reader (synthetic files, agcn pipeline), a synthetic kinect20 store, a user layout,
a PYSKL 2D + score pickle, and the real N-UCLA and PKU-MMD subsets (skipped when absent)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from skelssl.cli import main as cli_main
from skelssl.data.protocols import available_protocols, sequence_split, split
from skelssl.data.store import Store
from conftest import random_store

pytestmark = pytest.mark.usefixtures("one_thread")


def roundtrip(store: Store, tmp_path, name: str = "rt") -> tuple[Store, dict]:
    pkl = tmp_path / f"{name}.pkl"
    assert cli_main(["export", "pyskl", str(store.path), "--out", str(pkl)]) == 0
    assert cli_main(["prepare", "pyskl", str(pkl), "--out", str(tmp_path / f"{name}-store")]) == 0
    return Store(tmp_path / f"{name}-store"), pickle.loads(pkl.read_bytes())


def assert_same(a: Store, b: Store) -> None:
    assert [str(n) for n in b.names] == [str(n) for n in a.names]
    for key in ("layout", "pipeline", "num_persons", "channels", "classes", "class_names", "dataset", "frames", "samples"):
        assert b.info.get(key) == a.info.get(key), key
    assert b.layout == a.layout and b.channel_names == a.channel_names
    np.testing.assert_array_equal(b.index, a.index)
    assert np.array_equal(np.asarray(b.frames_array), np.asarray(a.frames_array))  # bit for bit
    for col in a.meta:
        if col != "source":
            np.testing.assert_array_equal(b.meta[col], a.meta[col], err_msg=col)
    assert b.has_frame_labels == a.has_frame_labels
    for i in range(len(a) if a.has_frame_labels else 0):
        np.testing.assert_array_equal(b.frame_labels(i), a.frame_labels(i))
    assert set(available_protocols(a)) <= set(available_protocols(b))
    for p in available_protocols(a):
        for x, y in zip(split(a, p), split(b, p)):
            np.testing.assert_array_equal(x, y, err_msg=p)
    assert b.duplicate_groups is not None


def write_ntu_files(folder, n: int = 12, seed: int = 0):
    from skelssl.data.formats import ntu

    rng = np.random.default_rng(seed)
    for i in range(n):
        subject, view, action = (1, 2, 3, 6)[i % 4], 1 + i % 3, 1 + i % 3
        bodies = rng.normal(size=(int(rng.integers(20, 40)), 1 + i % 2, 25, 3)).astype(np.float32) * 0.3
        bodies[..., 2] += 3.0
        ntu.write_skeleton_file(folder / f"S001C{view:03d}P{subject:03d}R001A{action:03d}.skeleton", bodies)


@pytest.mark.parametrize("pipeline", ["raw", "agcn"])
def test_ntu_reader_store_round_trips_with_pyskl_split_names(pipeline, tmp_path):
    write_ntu_files(tmp_path / "skel")
    assert cli_main(["prepare", "ntu", str(tmp_path / "skel"), "--out", str(tmp_path / "ntu"), "--pipeline", pipeline]) == 0
    a = Store(tmp_path / "ntu")
    assert a.pipeline == pipeline and "ntu60-xsub" in available_protocols(a)
    b, obj = roundtrip(a, tmp_path)
    assert_same(a, b)
    assert {"xsub_train", "xsub_val", "xview_train", "xview_val"} <= set(obj["split"])  # PYSKL's names
    assert obj["skelssl"]["pipeline"] == pipeline and obj["annotations"][0]["keypoint"].shape[-1] == 3


def test_kinect20_store_with_class_names_and_an_unused_class_round_trips(tmp_path):
    from skelssl.data.store import write_store

    src = random_store(tmp_path / "src", n=10, layout="kinect20", classes=3)
    # Five named classes, the last two never used: the class count is not max(label) + 1.
    samples = ((str(src.names[i]), src.frames(i), {k: int(src.meta[k][i]) for k in ("label", "subject", "view")})
               for i in range(len(src)))
    a = write_store(tmp_path / "named", samples, "kinect20", 1,
                    info={"dataset": "nucla", "class_names": ["walk", "sit", "wave", "jump", "run"]})
    assert a.num_classes == 5 and a.num_persons == 1
    b, _ = roundtrip(a, tmp_path)
    assert_same(a, b)
    assert b.class_names == ["walk", "sit", "wave", "jump", "run"] and b.num_persons == 1


def test_user_layout_store_round_trips(tmp_path):
    from skelssl.data.store import write_store

    layout = tmp_path / "stick.yaml"
    layout.write_text("name: stick5\njoints: [hip, chest, head, lhand, rhand]\nparents: [hip, hip, chest, chest, chest]\n"
                      "center: hip\nleft_right: [[lhand, rhand]]\n")
    rng = np.random.default_rng(1)
    samples = ((f"c{i}", rng.normal(size=(8 + i, 2, 5, 3)).astype(np.float32), {"label": i % 2}) for i in range(6))
    from skelssl.core.layouts import get_layout

    a = write_store(tmp_path / "stick", samples, get_layout(str(layout)), 2, info={"dataset": "mine"})
    b, obj = roundtrip(a, tmp_path)
    assert_same(a, b)
    assert obj["skelssl"]["layout_def"]["name"] == "stick5"


def test_pyskl_2d_score_store_round_trips(tmp_path):
    rng = np.random.default_rng(2)
    anns = []
    for i in range(9):
        t = int(rng.integers(5, 12))
        anns.append({"frame_dir": f"v{i}", "label": i % 3, "img_shape": (480, 640), "total_frames": t,
                     "keypoint": rng.uniform(0, 480, size=(2, t, 17, 2)).astype(np.float16),
                     "keypoint_score": rng.uniform(0, 1, size=(2, t, 17)).astype(np.float16)})
    names = [a["frame_dir"] for a in anns]
    (tmp_path / "in.pkl").write_bytes(pickle.dumps({"split": {"xsub_train": names[:6], "xsub_val": names[6:]},
                                                    "annotations": anns}))
    assert cli_main(["prepare", "pyskl", str(tmp_path / "in.pkl"), "--out", str(tmp_path / "a")]) == 0
    a = Store(tmp_path / "a")
    assert a.channel_names == ["x", "y", "score"] and available_protocols(a) == ["xsub"]
    b, obj = roundtrip(a, tmp_path)
    assert_same(a, b)
    ann = obj["annotations"][0]
    assert ann["keypoint"].shape[-1] == 2 and ann["keypoint_score"].shape == ann["keypoint"].shape[:3]
    # pixels again, with the image size (tests/data/test_pyskl_2d_export.py checks the values)
    assert tuple(ann["img_shape"]) == (480, 640) and set(obj["split"]) == {"xsub_train", "xsub_val"}
    # once more: the exported file of the re-imported store is the same file
    c, obj2 = roundtrip(b, tmp_path, "rt2")
    assert_same(a, c)


@pytest.mark.realdata
def test_real_nucla_subset_round_trips(shared_data, tmp_path):
    src = shared_data / "nw_ucla"
    if not src.is_dir():
        pytest.skip(f"no N-UCLA data at {src}")
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".json", ".txt"))
    if not files:
        pytest.skip("N-UCLA files not found")
    part = tmp_path / "nucla"
    for f in files[:: max(1, len(files) // 24)][:24]:
        dest = part / f.relative_to(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(f, dest)
    assert cli_main(["prepare", "nucla", str(part), "--out", str(tmp_path / "a")]) == 0
    a = Store(tmp_path / "a")
    assert len(a) > 5 and a.num_persons == 1
    b, _ = roundtrip(a, tmp_path)
    assert_same(a, b)


@pytest.mark.realdata
@pytest.mark.parametrize("fmt, folder", [("msr", "msr_action3d"), ("utkinect", "utkinect_action3d")])
def test_real_msr_and_utkinect_round_trip(fmt, folder, shared_data, tmp_path):
    if not (shared_data / folder).is_dir():
        pytest.skip(f"no {folder} in {shared_data}")
    assert cli_main(["prepare", fmt, str(shared_data / folder), "--out", str(tmp_path / "a")]) == 0
    a = Store(tmp_path / "a")
    assert len(a) > 100 and available_protocols(a)
    b, _ = roundtrip(a, tmp_path)
    assert_same(a, b)


def test_export_never_replaces_a_file_silently_and_a_processed_pickle_is_not_processed_twice(tmp_path, capsys):
    write_ntu_files(tmp_path / "skel", n=6)
    assert cli_main(["prepare", "ntu", str(tmp_path / "skel"), "--out", str(tmp_path / "ntu"), "--pipeline", "agcn"]) == 0
    out = tmp_path / "x.pkl"
    out.write_text("mine")
    capsys.readouterr()
    assert cli_main(["export", "pyskl", str(tmp_path / "ntu"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists; pass --overwrite" in err and "\n" not in err and out.read_text() == "mine"
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d", tmp_path / "link.pkl")
    assert cli_main(["export", "pyskl", str(tmp_path / "ntu"), "--out", str(tmp_path / "link.pkl"), "--overwrite"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert cli_main(["export", "pyskl", str(tmp_path / "ntu"), "--out", str(out), "--overwrite"]) == 0
    assert pickle.loads(out.read_bytes())["skelssl"]["pipeline"] == "agcn"
    capsys.readouterr()
    rc = cli_main(["prepare", "pyskl", str(out), "--out", str(tmp_path / "again"), "--pipeline", "ctrgcn"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "exported from a store of pipeline agcn" in err and "\n" not in err


@pytest.mark.realdata
@pytest.mark.parametrize("untrimmed", [False, True])
def test_real_pku_mmd_round_trips_with_its_protocols_and_frame_labels(pku_part, untrimmed, tmp_path):
    extra = ["--untrimmed"] if untrimmed else []
    assert cli_main(["prepare", "pku_mmd", str(pku_part), "--out", str(tmp_path / "a"), *extra]) == 0
    a = Store(tmp_path / "a")
    assert a.has_frame_labels == untrimmed
    b, obj = roundtrip(a, tmp_path)
    assert_same(a, b)
    assert b.num_classes == 51 and b.dataset == ("pku1_untrimmed" if untrimmed else "pku1")
    for p in ("pku1-xsub", "pku1-xview"):  # the named protocols, read from the pku_*_train columns
        pick = sequence_split if untrimmed else split
        for x, y in zip(pick(a, p), pick(b, p)):
            assert len(x) and np.array_equal(x, y), p
    assert {"xsub_train", "xsub_val", "xview_train", "xview_val"} == set(obj["split"])

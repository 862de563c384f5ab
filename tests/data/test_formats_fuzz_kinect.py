"""Malformed input for the N-UCLA, MSR, UTKinect and PKU-MMD readers (synthetic files in tmp_path).

Every bad file must give a ``SkeletonFormatError`` whose message names the file, never a bare
``IndexError``/``ValueError``/``KeyError``/``JSONDecodeError``, and never hang (per-test timeout).
A seeded mutation fuzz then checks that whatever the bytes, a reader either returns finite float32
bodies or raises ``SkeletonFormatError``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.data.formats import msr, nucla, pku_mmd, utkinect

pytestmark = pytest.mark.timeout(30)

MUTATIONS = ("truncated", "garbled", "binary", "empty", "nan")
# What each kind of damage must be reported as, for the text readers and for N-UCLA's JSON.
TEXT_PROBLEM = {"truncated": "values, got", "garbled": "is not a number", "binary": "not a text file",
                "empty": "empty file", "nan": "non-finite"}
JSON_PROBLEM = {"truncated": "not valid JSON", "garbled": "not valid JSON", "binary": "not valid JSON",
                "empty": "not valid JSON", "nan": "non-finite"}


def _mutate(text: str, how: str) -> bytes:
    """The four kinds of damage every reader is tested against (plus raw binary garbage)."""
    if how == "truncated":  # cut mid-line, as an interrupted copy would
        return text[: len(text) // 2 + 3].encode()
    if how == "garbled":
        return text.replace("0.5", "0.x5", 1).replace("1.25", "1,2,5", 1).encode()
    if how == "binary":
        return bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)) + b"\xff\xfe"
    if how == "empty":
        return b""
    if how == "nan":
        return text.replace("0.5", "NaN", 1).encode()
    raise AssertionError(how)


def _expect_error(fn, path: Path, match: str | None = None) -> SkeletonFormatError:
    with pytest.raises(SkeletonFormatError) as info:
        fn()
    assert path.name in str(info.value), str(info.value)
    if match is not None:
        assert match in str(info.value), str(info.value)
    return info.value


def _frames(t: int, v: int, seed: int = 0) -> np.ndarray:
    """Synthetic joints with 0.5 and 1.25 in them (targets of the 'garbled'/'nan' mutations)."""
    x = np.random.default_rng(seed).uniform(-1, 1, size=(t, v, 3)).round(3)
    x[0, 0, 0], x[0, 0, 1] = 0.5, 1.25
    return x


# -- N-UCLA ------------------------------------------------------------------------------------------
def _nucla_text(t: int = 4, label: int = 1) -> str:
    return json.dumps({"file_name": "a01_s01_e00_v01", "label": label, "skeletons": _frames(t, 20).tolist()})


def test_nucla_valid_and_one_frame(tmp_path):
    (tmp_path / "a01_s03_e02_v03.json").write_text(_nucla_text(t=1))
    (tmp_path / "notes.json").write_text("{}")
    disc = nucla.discover(tmp_path)
    assert [p.name for p in disc.units] == ["a01_s03_e02_v03.json"] and len(disc.excluded) == 1
    (s,) = nucla.read(disc.units[0])
    assert s.bodies.shape == (1, 1, 20, 3) and s.bodies.dtype == np.float32
    assert (s.label, s.subject, s.repetition, s.view) == (0, 3, 2, 3)


@pytest.mark.parametrize("how", MUTATIONS)
def test_nucla_damaged(tmp_path, how):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_bytes(_mutate(_nucla_text(), how))
    _expect_error(lambda: nucla.read(path), path, JSON_PROBLEM[how])


@pytest.mark.parametrize(
    "doc, match",
    [
        ([1, 2], "JSON object"),
        ({"label": 1}, "skeletons"),
        ({"label": 1, "skeletons": []}, "non-empty"),
        ({"label": 1, "skeletons": [[[0.1, 0.2, 0.3]] * 19]}, "shape"),
        ({"label": 1, "skeletons": [[[0.1, 0.2]] * 20]}, "shape"),
        ({"label": 1, "skeletons": [[[0.1, 0.2, 0.3]] * 20, [[0.1, 0.2, 0.3]] * 19]}, "T x 20 x 3"),
        ({"label": 1, "skeletons": [[["a", "b", "c"]] * 20]}, "numbers"),
        ({"label": 1, "skeletons": [[[None, 0.2, 0.3]] * 20]}, "numbers"),
        ({"label": 0, "skeletons": [[[0.1, 0.2, 0.3]] * 20]}, "label"),
        ({"label": "1", "skeletons": [[[0.1, 0.2, 0.3]] * 20]}, "label"),
        ({"label": 2, "skeletons": [[[0.1, 0.2, 0.3]] * 20]}, "file name says a01"),
        ({"label": 1, "skeletons": [[[0.0, 0.0, 0.0]] * 20]}, "all joints are zero"),
        ({"label": 1, "skeletons": [[[1e300, 0.2, 0.3]] * 20]}, "non-finite"),
    ],
)
def test_nucla_bad_content(tmp_path, doc, match):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(json.dumps(doc))
    _expect_error(lambda: nucla.read(path), path, match)


def test_nucla_bad_names_and_folders(tmp_path):
    path = tmp_path / "a07_s01_e00_v01.json"  # a07 is not one of the 10 classes
    path.write_text(_nucla_text())
    _expect_error(lambda: nucla.read(path), path, "a07")
    other = tmp_path / "clip.json"
    other.write_text(_nucla_text())
    _expect_error(lambda: nucla.read(other), other)
    _expect_error(lambda: nucla.discover(tmp_path / "missing"), tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    _expect_error(lambda: nucla.discover(tmp_path / "empty"), tmp_path / "empty")


# -- MSR Action3D ------------------------------------------------------------------------------------
def _msr_text(t: int = 3) -> str:
    rows = np.concatenate([_frames(t, 20).reshape(-1, 3), np.ones((t * 20, 1))], axis=1)
    return "\n".join(" ".join(f"{v:.6f}" if v not in (0.5, 1.25) else str(v) for v in r) for r in rows) + "\n"


def test_msr_valid_and_protocol_list(tmp_path):
    for name in ("a01_s01_e01", "a02_s02_e01"):
        (tmp_path / f"{name}_skeleton3D.txt").write_text(_msr_text())
    (tmp_path / msr.PROTOCOL_LIST).write_text("a01_s01_e01\n")
    disc = msr.discover(tmp_path)
    assert [p.name for p in disc.units] == ["a01_s01_e01_skeleton3D.txt"]
    assert disc.excluded and "a02_s02_e01" in disc.excluded[0][0]
    assert len(msr.discover(tmp_path, protocol_list=False).units) == 2
    (s,) = msr.read(disc.units[0])
    assert s.bodies.shape == (3, 1, 20, 3) and s.label == 0 and s.subject == 1 and s.repetition == 1
    raw = _frames(3, 20)  # file rows -> kinect20: head (kinect20 3) is file row 20
    np.testing.assert_allclose(s.bodies[:, 0, 3], raw[:, 19], atol=1e-6)
    (tmp_path / msr.PROTOCOL_LIST).write_text("a01_s01_e01\nnot-a-name\n")
    _expect_error(lambda: msr.discover(tmp_path), tmp_path / msr.PROTOCOL_LIST)
    (tmp_path / msr.PROTOCOL_LIST).unlink()
    _expect_error(lambda: msr.discover(tmp_path), tmp_path / msr.PROTOCOL_LIST, "protocol_list=False")


@pytest.mark.parametrize("how", MUTATIONS)
def test_msr_damaged(tmp_path, how):
    path = tmp_path / "a01_s01_e01_skeleton3D.txt"
    path.write_bytes(_mutate(_msr_text(), how))
    _expect_error(lambda: msr.read(path), path, TEXT_PROBLEM[how])


def test_msr_structure_errors(tmp_path):
    path = tmp_path / "a05_s02_e01_skeleton3D.txt"
    lines = _msr_text().splitlines()
    path.write_text("\n".join(lines[:-7]) + "\n")  # whole rows missing
    _expect_error(lambda: msr.read(path), path, "not a multiple of 20")
    path.write_text("\n".join(lines[:5] + [lines[5] + " 0.1"] + lines[6:]) + "\n")  # 5 columns
    _expect_error(lambda: msr.read(path), path, "line 6: expected 4 values, got 5")
    path.write_text("0 0 0 0\n" * 40)
    _expect_error(lambda: msr.read(path), path, "all joints are zero")
    path.write_text("\n\n  \n")
    _expect_error(lambda: msr.read(path), path, "empty")
    bad = tmp_path / "a21_s01_e01_skeleton3D.txt"
    bad.write_text(_msr_text())
    _expect_error(lambda: msr.read(bad), bad, "a21")


# -- UTKinect ----------------------------------------------------------------------------------------
def _utk_joints(ids) -> str:
    x = _frames(len(ids), 20).reshape(len(ids), 60)
    return "\n".join(f"{i}  " + "  ".join(str(v) for v in row) for i, row in zip(ids, x)) + "\n"


def _utk_folder(tmp_path: Path, joints: str | None = None, labels: str | None = None, name: str = "utk") -> Path:
    # A fresh folder per variant: readers cache parsed files by (path, mtime, size), and a rewrite
    # within the same clock tick that keeps the size would look unchanged.
    folder = tmp_path / name / "joints"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [10, 11, 11, 12, 14, 15, 17, 18, 19, 20]
    (folder / "joints_s01_e01.txt").write_text(joints if joints is not None else _utk_joints(ids))
    (folder / "actionLabel.txt").write_text(labels if labels is not None else "s01_e01\nwalk: 10 12\nsitDown: 14 19 \n")
    return folder


def test_utkinect_valid(tmp_path):
    folder = _utk_folder(tmp_path)
    (folder / "joints_s02_e01.txt").write_text(_utk_joints([1, 2]))  # no labels: excluded
    disc = utkinect.discover(folder.parent)  # the folder holding joints/ works too
    assert [u.name for u in disc.units] == ["s01_e01_walk", "s01_e01_sitDown"]
    assert len(disc.excluded) == 1 and "joints_s02_e01.txt" in disc.excluded[0][0]
    walk, sit = (utkinect.read(u)[0] for u in disc.units)
    assert walk.bodies.shape == (4, 1, 20, 3)  # ids 10, 11, 11, 12: the repeated id is kept
    assert sit.bodies.shape == (5, 1, 20, 3) and sit.label == 1 and sit.subject == 1 and sit.repetition == 1
    np.testing.assert_allclose(walk.bodies[0, 0], _frames(10, 20)[0], atol=1e-6)


@pytest.mark.parametrize("how", MUTATIONS)
def test_utkinect_damaged_recording(tmp_path, how):
    folder = _utk_folder(tmp_path)
    path = folder / "joints_s01_e01.txt"
    path.write_bytes(_mutate(path.read_text(), how))
    for unit in utkinect.discover(folder).units:  # every segment of the recording reports it
        _expect_error(lambda: utkinect.read(unit), path, TEXT_PROBLEM[how])


@pytest.mark.parametrize(
    "labels, match",
    [
        ("s01_e01\nwalk: NaN NaN\nsitDown: 14 19\n", "NaN NaN"),
        ("s01_e01\nwalk: 12\nsitDown: 14 19\n", "not two integer"),
        ("s01_e01\nwalk: 12 10\nsitDown: 14 19\n", "ends before it starts"),
        ("s01_e01\nwalk: 100 200\nsitDown: 14 19\n", "no frame id"),
        ("s01_e01\nwander: 10 12\nsitDown: 14 19\n", "unknown action"),
    ],
)
def test_utkinect_bad_segment_keeps_the_others(tmp_path, labels, match):
    folder = _utk_folder(tmp_path, labels=labels)
    first, second = utkinect.discover(folder).units
    _expect_error(lambda: utkinect.read(first), folder / "joints_s01_e01.txt", match)
    assert utkinect.read(second)[0].num_frames == 5


def test_utkinect_bad_label_file_and_folders(tmp_path):
    folder = _utk_folder(tmp_path, labels="walk: 1 2\n", name="a")  # no recording header
    _expect_error(lambda: utkinect.discover(folder), folder / "actionLabel.txt", "line 1")
    folder = _utk_folder(tmp_path, labels="s01_e01\nwalk 1 2\n", name="b")
    _expect_error(lambda: utkinect.discover(folder), folder / "actionLabel.txt")
    for how in MUTATIONS:
        (folder / "actionLabel.txt").write_bytes(_mutate("s01_e01\nwalk: 10 12\nsitDown: 14 19\n", how))
        try:
            units = utkinect.discover(folder).units
        except SkeletonFormatError as e:
            assert "actionLabel.txt" in str(e)
            continue
        for unit in units:
            try:
                utkinect.read(unit)
            except SkeletonFormatError as e:
                assert "joints_s01_e01.txt" in str(e)
    folder = _utk_folder(tmp_path, joints="10 " + " ".join(["0"] * 60) + "\n", labels="s01_e01\nwalk: 10 10\n", name="c")
    _expect_error(lambda: utkinect.read(utkinect.discover(folder).units[0]), folder / "joints_s01_e01.txt", "all joints are zero")
    folder = _utk_folder(tmp_path, joints="10.5 " + " ".join(["0.1"] * 60) + "\n", name="d")
    _expect_error(lambda: utkinect.read(utkinect.discover(folder).units[0]), folder / "joints_s01_e01.txt", "not an integer")
    (folder / "actionLabel.txt").unlink()
    _expect_error(lambda: utkinect.discover(folder), folder / "actionLabel.txt", "not found")
    _expect_error(lambda: utkinect.discover(tmp_path / "nothing"), tmp_path / "nothing")


# -- PKU-MMD -----------------------------------------------------------------------------------------
def _pku_skeleton(t: int, second_body: bool = True, seed: int = 0) -> str:
    x = np.random.default_rng(seed).uniform(-1, 1, size=(t, 150)).round(4)
    x[0, 0], x[0, 1] = 0.5, 1.25
    if not second_body:
        x[:, 75:] = 0
    return "\n".join(" ".join(str(v) for v in row) for row in x) + "\n"


def _pku_folder(tmp_path: Path, skeleton: str | None = None, labels: str = "3,0,4,2\n7,4,10,1\n", name: str = "pku") -> Path:
    root = tmp_path / name  # a fresh folder per variant (see _utk_folder)
    for d in ("PKU_Skeleton_Renew", "Train_Label_PKU_final", "Split"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "PKU_Skeleton_Renew" / "0002-M.txt").write_text(skeleton if skeleton is not None else _pku_skeleton(12))
    (root / "Train_Label_PKU_final" / "0002-M.txt").write_text(labels)
    (root / "Train_Label_PKU_final" / "0003-L.txt").write_text("1,0,5,2\n")  # no skeleton: ignored
    # The official files' exact shape: header line, ids line (trailing comma), "Validataion" (sic).
    xsub = "Training videos: \n0002-L, 0002-M, 0002-R,\nValidataion videos: \n0003-L, 0003-M,\n"
    xview = "Training videos: \n0002-L, 0002-R,\nValidataion videos: \n0002-M, 0003-M,\n"
    (root / "Split" / "cross-subject.txt").write_text(xsub)
    (root / "Split" / "cross-view.txt").write_text(xview)
    return root


def test_pku_valid_modes(tmp_path):
    root = _pku_folder(tmp_path)
    disc = pku_mmd.discover(root)
    assert [u.name for u in disc.units] == ["0002-M_00", "0002-M_01"]
    a, b = (pku_mmd.read(u)[0] for u in disc.units)
    assert a.bodies.shape == (4, 2, 25, 3) and b.bodies.shape == (6, 2, 25, 3)
    assert (a.label, b.label, a.view) == (2, 6, 2)
    assert a.extra == {"pku_xsub_train": 1, "pku_xview_train": 0}
    (video,) = pku_mmd.read(pku_mmd.discover(root, untrimmed=True).units[0])
    assert video.bodies.shape == (12, 2, 25, 3) and video.label == -1
    assert video.frame_labels.tolist() == [2] * 4 + [6] * 6 + [-1] * 2
    np.testing.assert_allclose(video.bodies[4:10], b.bodies)


@pytest.mark.parametrize("how", MUTATIONS)
def test_pku_damaged_skeleton(tmp_path, how):
    root = _pku_folder(tmp_path)
    path = root / "PKU_Skeleton_Renew" / "0002-M.txt"
    path.write_bytes(_mutate(path.read_text(), how))
    for untrimmed in (False, True):
        for unit in pku_mmd.discover(root, untrimmed=untrimmed).units:
            _expect_error(lambda: pku_mmd.read(unit), path, TEXT_PROBLEM[how])


@pytest.mark.parametrize(
    "labels, match",
    [
        ("3,0,4,2\n7,4,13,1\n", "beyond the sequence"),
        ("3,0,4,2\n7,4,x,1\n", "integers"),
        ("3,0,4,2\n7,4,10\n", "label,start,end,confidence"),
        ("3,0,4,2\n52,4,10,1\n", "outside 1..51"),
        ("3,0,4,2\n7,10,4,1\n", "reversed"),
        ("3,0,4,2\n7,NaN,10,1\n", "integers"),
    ],
)
def test_pku_bad_label_row_fails_its_own_instance(tmp_path, labels, match):
    root = _pku_folder(tmp_path, labels=labels)
    label_path = root / "Train_Label_PKU_final" / "0002-M.txt"
    good, bad = pku_mmd.discover(root).units
    assert pku_mmd.read(good)[0].num_frames == 4
    _expect_error(lambda: pku_mmd.read(bad), label_path, match)
    _expect_error(lambda: pku_mmd.read(pku_mmd.discover(root, untrimmed=True).units[0]), label_path, match)


def test_pku_missing_labels_zero_instances_and_splits(tmp_path):
    root = _pku_folder(tmp_path, labels="")
    skel = root / "PKU_Skeleton_Renew" / "0002-M.txt"
    (unit,) = pku_mmd.discover(root).units
    _expect_error(lambda: pku_mmd.read(unit), root / "Train_Label_PKU_final" / "0002-M.txt", "no instances")
    (root / "Train_Label_PKU_final" / "0002-M.txt").unlink()
    (unit,) = pku_mmd.discover(root).units
    _expect_error(lambda: pku_mmd.read(unit), skel, "no label file")
    _expect_error(lambda: pku_mmd.read(pku_mmd.discover(root, untrimmed=True).units[0]), skel, "no label file")
    lines = _pku_skeleton(12, second_body=False).splitlines()
    lines[5] = " ".join(["0"] * 150)  # frame 5: nobody tracked
    root = _pku_folder(tmp_path, skeleton="\n".join(lines) + "\n", labels="3,5,6,2\n3,0,5,2\n", name="zero")
    zero, fine = pku_mmd.discover(root).units
    _expect_error(lambda: pku_mmd.read(zero), root / "PKU_Skeleton_Renew" / "0002-M.txt", "all joints are zero")
    assert not pku_mmd.read(fine)[0].bodies[:, 1].any()  # the absent second body stays zero
    split = root / "Split" / "cross-view.txt"
    for text in ("Training videos: \n0002-L, 2-M\nValidataion videos: \n0002-M\n",
                 "0002-L\nTraining videos: \n0002-R\nValidataion videos: \n0002-M\n",
                 "Training videos: \n0002-L, 0002-M\nValidataion videos: \n0002-M\n",
                 "Training videos: \n0002-L\n", ""):
        split.write_text(text)
        _expect_error(lambda: pku_mmd.discover(root), split)
    split.unlink()
    _expect_error(lambda: pku_mmd.discover(root), split, "not found")
    _expect_error(lambda: pku_mmd.discover(tmp_path / "none"), tmp_path / "none")


# -- seeded mutation fuzz: any damage -> a result or SkeletonFormatError -----------------------------
def _random_damage(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        op = int(rng.integers(0, 4))
        pos = int(rng.integers(0, max(1, len(buf))))
        if op == 0 and buf:
            del buf[pos : pos + int(rng.integers(1, 30))]
        elif op == 1:
            buf[pos:pos] = rng.choice([b"nan", b"inf", b"-", b",", b" ", b"\n", b"1e99", b"x", b"\x00", b"]"])
        elif op == 2:
            del buf[pos:]
        elif buf:
            buf[pos] = int(rng.integers(0, 256))
    return bytes(buf)


def _fuzz(reader, make_root, target: str, original: bytes, seeds: int = 25, **options) -> int:
    """Damage ``target`` (relative to the root) with each seed, in a fresh root; count the errors."""
    errors = 0
    for seed in range(seeds):
        root = make_root(f"fuzz{seed}")
        (root / target).write_bytes(_random_damage(original, np.random.default_rng(seed)))
        try:
            units = reader.discover(root, **options).units
            samples = [s for u in units for s in reader.read(u, **options)]
        except SkeletonFormatError as e:
            assert Path(target).name in str(e), str(e)
            errors += 1
            continue
        for s in samples:
            assert s.bodies.dtype == np.float32 and np.isfinite(s.bodies).all()
    return errors


def _plain_folder(tmp_path: Path):
    def make(name: str) -> Path:
        (tmp_path / name).mkdir(parents=True)
        return tmp_path / name

    return make


def test_fuzz_every_reader(tmp_path):
    assert _fuzz(nucla, _plain_folder(tmp_path / "ucla"), "a01_s01_e00_v01.json", _nucla_text().encode()) > 0
    assert _fuzz(msr, _plain_folder(tmp_path / "msr"), "a01_s01_e01_skeleton3D.txt", _msr_text().encode(),
                 protocol_list=False) > 0
    original = (_utk_folder(tmp_path) / "joints_s01_e01.txt").read_bytes()
    assert _fuzz(utkinect, lambda name: _utk_folder(tmp_path, name=name), "joints_s01_e01.txt", original) > 0
    original = (_pku_folder(tmp_path) / "PKU_Skeleton_Renew" / "0002-M.txt").read_bytes()
    assert _fuzz(pku_mmd, lambda name: _pku_folder(tmp_path, name=name), "PKU_Skeleton_Renew/0002-M.txt", original) > 0


def test_msr_discover_ignores_files_of_other_formats(tmp_path):
    # Discovery ignores files that are not of the format; a folder of only those is an error.
    (tmp_path / "a01_s01_e01_skeleton3D.csv").write_text(_msr_text())
    _expect_error(lambda: msr.discover(tmp_path, protocol_list=False), tmp_path)

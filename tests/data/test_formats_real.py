"""The Kinect v1 readers and the PKU-MMD reader on the real files in ``../shared/data``.

Counts come from each dataset's SOURCE.md (checked there by parsing every file); references for cuts
and orders are re-derived here the naive way (np.loadtxt, plain string splitting).
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import KINECT20, NTU25
from skelssl.data.formats import get_format, msr, nucla, pku_mmd, unit_path, utkinect

pytestmark = [pytest.mark.realdata, pytest.mark.timeout(120)]


def _read_all(module, units, **opts):
    """Read every unit -> (samples, {unit path or name: error})."""
    samples, errors = [], {}
    for u in units:
        try:
            samples.extend(module.read(u, **opts))
        except SkeletonFormatError as e:
            errors[getattr(u, "name", unit_path(u))] = e
    return samples, errors


def _discover_and_read(module, source):
    """Discover ``source`` and read every unit -> (discovery, samples, {unit: error})."""
    disc = module.discover(source)
    return (disc, *_read_all(module, disc.units))


def _check_bodies(samples, joints: int, bodies: int) -> None:
    for s in samples:
        assert s.bodies.dtype == np.float32 and s.bodies.ndim == 4, s.name
        assert s.bodies.shape[1:] == (bodies, joints, 3), s.name
        assert np.isfinite(s.bodies).all() and s.bodies.any(), s.name


# -- N-UCLA ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ucla(shared_data):
    return _discover_and_read(nucla, shared_data / "nw_ucla")


def test_nucla_reads_every_file(ucla):
    disc, samples, errors = ucla
    assert get_format("nucla") is nucla.READER and nucla.LAYOUT == "kinect20" and nucla.DATASET == "nucla"
    assert len(disc.units) == 1484 and disc.excluded == []
    assert errors == {} and len(samples) == 1484
    _check_bodies(samples, 20, 1)
    assert len(nucla.CLASS_NAMES) == 10
    assert sorted({s.label for s in samples}) == list(range(10))
    # Per-class file counts of SOURCE.md (a01..a12 without a07/a10).
    per_class = collections.Counter(s.label for s in samples)
    assert [per_class[c] for c in range(10)] == [150, 152, 141, 173, 148, 149, 142, 142, 145, 142]
    assert collections.Counter(s.view for s in samples) == {1: 516, 2: 504, 3: 464}
    assert {s.subject for s in samples} == set(range(1, 11))
    assert min(s.repetition for s in samples) == 0 and all(s.setup == -1 for s in samples)
    assert len({s.name for s in samples}) == 1484


def test_nucla_short_sequences_and_values(ucla, shared_data):
    _, samples, _ = ucla
    by_name = {s.name: s for s in samples}
    for name in ("a02_s09_e04_v02", "a02_s09_e04_v03"):
        assert by_name[name].num_frames == 1
    assert by_name["a01_s10_e00_v03"].num_frames == 6
    lengths = [s.num_frames for s in samples]
    assert min(lengths) == 1 and max(lengths) == 201 and abs(np.mean(lengths) - 39.4) < 0.05
    # First frame of a01_s01_e00_v01: z about 3.2 m (SOURCE.md), values exactly the JSON's.
    first = by_name["a01_s01_e00_v01"].bodies[0, 0]
    assert abs(float(first[0, 2]) - 3.18186) < 1e-5
    x = np.concatenate([s.bodies[:, 0] for s in samples])  # (sum T, 20, 3)
    assert (x[:, 3, 1] > x[:, 0, 1]).mean() > 0.9  # head above hip centre: y is up


# -- MSR Action3D ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def msr_data(shared_data):
    return _discover_and_read(msr, shared_data / "msr_action3d")


def test_msr_protocol_list(msr_data, shared_data):
    disc, samples, errors = msr_data
    assert len(disc.units) == 557 and len(disc.excluded) == 10
    assert all("files_used_in_cvpr12_paper.txt" in reason for _, reason in disc.excluded)
    assert any("a13_s09_e02" in path for path, _ in disc.excluded)
    assert errors == {} and len(samples) == 557
    _check_bodies(samples, 20, 1)
    assert sorted({s.label for s in samples}) == list(range(20)) and len(msr.CLASS_NAMES) == 20
    assert {s.subject for s in samples} == set(range(1, 11))
    everything = msr.discover(shared_data / "msr_action3d" / "MSRAction3DSkeletonReal3D", protocol_list=False)
    assert len(everything.units) == 567 and everything.excluded == []


def test_msr_all_zero_file_is_reported(shared_data):
    path = shared_data / "msr_action3d" / "MSRAction3DSkeletonReal3D" / "a13_s09_e02_skeleton3D.txt"
    with pytest.raises(SkeletonFormatError, match="all joints are zero") as info:
        msr.read(path)
    assert path.name in str(info.value)


def test_msr_joint_order_matches_a_naive_reorder(msr_data, shared_data):
    _, samples, _ = msr_data
    s = next(x for x in samples if x.name == "a01_s01_e01")
    raw = np.loadtxt(shared_data / "msr_action3d" / "MSRAction3DSkeletonReal3D" / "a01_s01_e01_skeleton3D.txt")
    raw = raw.reshape(-1, 20, 4)[..., :3]  # (T, 20 file rows, xyz)
    # drawskt.m order, 1-based file rows for each kinect20 joint.
    rows_1based = {"hip_center": 7, "spine": 4, "shoulder_center": 3, "head": 20,
                   "shoulder_left": 1, "elbow_left": 8, "wrist_left": 10, "hand_left": 12,
                   "shoulder_right": 2, "elbow_right": 9, "wrist_right": 11, "hand_right": 13,
                   "hip_left": 5, "knee_left": 14, "ankle_left": 16, "foot_left": 18,
                   "hip_right": 6, "knee_right": 15, "ankle_right": 17, "foot_right": 19}
    for k, name in enumerate(KINECT20.joint_names):
        np.testing.assert_allclose(s.bodies[:, 0, k], raw[:, rows_1based[name] - 1], atol=1e-6)


def test_msr_kinect20_sanity(msr_data):
    _, samples, _ = msr_data
    x = np.concatenate([s.bodies[:, 0] for s in samples])  # (sum T, 20, 3)
    j = {n: i for i, n in enumerate(KINECT20.joint_names)}
    assert (x[:, j["head"], 1] - x[:, j["hip_center"], 1]).mean() > 0.4  # y is up
    assert (x[:, j["head"], 1] > x[:, j["foot_left"], 1]).mean() > 0.95
    assert (x[:, j["shoulder_right"], 0] > x[:, j["shoulder_left"], 0]).mean() > 0.9  # as N-UCLA/UTKinect
    for a, b in KINECT20.left_right:  # mirrored bones have the same length
        la = np.median(np.linalg.norm(x[:, a] - x[:, KINECT20.parents[a]], axis=-1))
        lb = np.median(np.linalg.norm(x[:, b] - x[:, KINECT20.parents[b]], axis=-1))
        assert 0.03 < la < 0.7 and abs(la - lb) < 0.02 * la
    # "high arm wave" is done with the right arm: the right hand moves and rises above the head.
    wave = [s.bodies[:, 0] for s in samples if s.label == 0]
    right = np.mean([f[:, j["hand_right"]].std(0).sum() for f in wave])
    left = np.mean([f[:, j["hand_left"]].std(0).sum() for f in wave])
    assert right > 3 * left
    assert np.mean([(f[:, j["hand_right"], 1] - f[:, j["head"], 1]).max() for f in wave]) > 0


# -- UTKinect ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def utk(shared_data):
    return _discover_and_read(utkinect, shared_data / "utkinect_action3d")


def test_utkinect_segments(utk):
    disc, samples, errors = utk
    assert len(disc.units) == 200 and disc.excluded == []
    assert len(samples) == 199 and list(errors) == ["s10_e02_carry"]
    message = str(errors["s10_e02_carry"])
    assert "joints_s10_e02.txt" in message and "NaN NaN" in message
    _check_bodies(samples, 20, 1)
    counts = collections.Counter(s.label for s in samples)
    assert counts == {c: (19 if name == "carry" else 20) for c, name in enumerate(utkinect.CLASS_NAMES)}
    assert {s.subject for s in samples} == set(range(1, 11)) and {s.repetition for s in samples} == {1, 2}
    assert len({s.name for s in samples}) == 199


def test_utkinect_cut_matches_naive_reference(utk, shared_data):
    _, samples, _ = utk
    folder = shared_data / "utkinect_action3d" / "joints"
    table = np.loadtxt(folder / "joints_s01_e01.txt")  # (560, 61)
    assert table.shape == (560, 61)
    s = next(x for x in samples if x.name == "s01_e01_walk")  # "walk: 252 390"
    keep = (table[:, 0] >= 252) & (table[:, 0] <= 390)
    np.testing.assert_allclose(s.bodies[:, 0], table[keep, 1:].reshape(-1, 20, 3), atol=1e-6)
    x = np.concatenate([t.bodies[:, 0] for t in samples])
    assert (x[:, 3, 1] > x[:, 0, 1]).mean() > 0.95 and (x[:, 8, 0] > x[:, 4, 0]).mean() > 0.9


def test_utkinect_modified_labels_and_cache(shared_data):
    folder = shared_data / "utkinect_action3d" / "joints"
    modified = utkinect.discover(folder, labels="modified")
    assert len(modified.units) == 200
    walk = next(u for u in modified.units if u.name == "s01_e02_walk")
    original = next(u for u in utkinect.discover(folder).units if u.name == "s01_e02_walk")
    assert walk.frames == "154 270" and original.frames == "154 192"
    assert utkinect.read(walk)[0].num_frames > utkinect.read(original)[0].num_frames
    with pytest.raises(ValueError):
        utkinect.discover(folder, labels="corrected")
    # One parse per recording for its ten segments.
    utkinect._recording.cache_clear()
    for u in [u for u in modified.units if u.recording == "s02_e01"]:
        utkinect.read(u)
    assert utkinect._recording.cache_info().misses == 1


# -- PKU-MMD phase 1 subset --------------------------------------------------------------------------
def _naive_split(path):
    lines = path.read_text().splitlines()
    train = {t.strip() for t in lines[1].split(",") if t.strip()}
    test = {t.strip() for t in lines[3].split(",") if t.strip()}
    return train, test


@pytest.fixture(scope="module")
def pku(shared_data):
    root = shared_data / "pku_mmd_v1_subset"
    return (root, *_discover_and_read(pku_mmd, root))


def test_pku_trimmed_instances(pku):
    root, disc, samples, errors = pku
    assert pku_mmd.LAYOUT == "ntu25" and pku_mmd.DATASET == "pku1" and len(pku_mmd.CLASS_NAMES) == 51
    assert errors == {} and len(disc.units) == 307 and len(samples) == 307
    _check_bodies(samples, NTU25.num_joints, 2)
    assert len({u.path for u in disc.units}) == 34
    classes = {s.label + 1 for s in samples}
    assert classes == {12, 14, 16, 18, 21, 24, 26, 27, 1, 2, 4, 5, 6, 7, 9, 11, 13, 15, 17, 22, 23, 25,
                       30, 31, 32, 33, 34, 38, 40, 41, 42, 43, 44, 45, 46, 50}
    counts = collections.Counter(s.label + 1 for s in samples)
    assert all(counts[c] == 30 for c in (12, 14, 16, 18, 21, 24, 26, 27))
    assert {s.view for s in samples} == {1, 2, 3} and all(s.name.split("_")[0][-1] == "LMR"[s.view - 1] for s in samples)
    assert len({s.name for s in samples}) == 307


def test_pku_split_columns_match_split_files(pku):
    root, _, samples, _ = pku
    for column, file in (("pku_xsub_train", "cross-subject.txt"), ("pku_xview_train", "cross-view.txt")):
        train, test = _naive_split(root / "Split" / file)
        for s in samples:
            video = s.name.split("_")[0]
            assert s.extra[column] == (1 if video in train else 0 if video in test else -1), (s.name, column)
        assert {s.extra[column] for s in samples} == {0, 1}
    # SOURCE.md: 0299/0309/0320/0330 and 0312-R are cross-subject test videos.
    assert all(s.extra["pku_xsub_train"] == (0 if s.name[:4] in ("0299", "0309", "0312", "0320", "0330") else 1)
               for s in samples)
    assert all(s.extra["pku_xview_train"] == (0 if s.view == 2 else 1) for s in samples)


def test_pku_instance_is_half_open_cut(pku):
    root, _, samples, _ = pku
    raw = np.loadtxt(root / "PKU_Skeleton_Renew" / "0309-R.txt").reshape(-1, 2, 25, 3)
    rows = [tuple(int(v) for v in line.split(",")) for line in (root / "Train_Label_PKU_final" / "0309-R.txt").read_text().split()]
    mine = [s for s in samples if s.name.startswith("0309-R_")]
    assert len(mine) == len(rows) == 8
    for s, (label, start, end, _conf) in zip(mine, rows):
        assert s.label == label - 1 and s.num_frames == end - start
        np.testing.assert_allclose(s.bodies, raw[start:end], atol=1e-6)


def test_pku_untrimmed(pku):
    root, _, samples, _ = pku
    disc = pku_mmd.discover(root, untrimmed=True)
    videos, errors = _read_all(pku_mmd, disc.units, untrimmed=True)
    assert errors == {} and len(videos) == 34
    _check_bodies(videos, 25, 2)
    assert sum(v.num_frames for v in videos) == 65449
    for v in videos:
        assert v.label == -1 and v.frame_labels.shape == (v.num_frames,) and v.frame_labels.dtype == np.int32
        assert v.frame_labels.min() >= -1 and v.frame_labels.max() <= 50
    # No instances overlap in these files, so labelled frames = total instance length, class by class.
    per_class = collections.Counter()
    for v in videos:
        per_class.update(v.frame_labels[v.frame_labels >= 0].tolist())
    expected = collections.Counter()
    for s in samples:
        expected[s.label] += s.num_frames
    assert per_class == expected
    first = next(v for v in videos if v.name == "0005-L")
    assert first.frame_labels[229] == 25 and first.frame_labels[228] == -1 and first.frame_labels[292] == 25
    assert first.frame_labels[293] == -1  # "26,229,293,2": frame 293 is outside [229, 293)

"""The ``ctrgcn`` pipeline (MAMP / SGN / CTR-GCN, METHODS.md §8.1): empty frames, denoising by length,
spread and motion, actors by non-overlapping intervals, centring without rotation, checked on hand-built
cases, against a naive per-body transcription of the steps, and on real NTU and N-UCLA files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelssl.core.layouts import KINECT20, NTU25
from skelssl.data.preprocess import PIPELINES, apply_pipeline
from skelssl.data.preprocess_ctrgcn import NOISE_SPREAD_THRESHOLD
from skelssl.data.sample import RawSample

from conftest import standing_ntu25

SPINE = NTU25.spine

STAND = standing_ntu25(np.float32)  # x-extent 0.58 m, y-extent 1.63 m
LYING = STAND[:, [1, 0, 2]]  # x and y swapped: wider than tall, every frame fails the spread test


def person(rng, t, shift=(0.0, 0.0, 0.0), motion=0.02, pose=STAND) -> np.ndarray:
    return (pose[None] + np.asarray(shift, np.float32) + motion * rng.normal(size=(t, 25, 3))).astype(np.float32)


def sample(bodies, ids=None, **kw) -> RawSample:
    return RawSample(name="S001C001P001R001A050", bodies=bodies, label=49, source="synthetic.skeleton", body_ids=ids, **kw)


def slots(t: int, entries: list[tuple[int, slice, np.ndarray]], b: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(T, B, 25, 3)`` bodies and ``(T, B)`` ids from ``(body_id, frames, joints)``; each body is written
    into the first free slot of each of its frames (as a file lists the bodies present)."""
    bodies = np.zeros((t, b, 25, 3), np.float32)
    ids = np.full((t, b), -1, np.int64)
    for body_id, frames, joints in entries:
        for i, f in enumerate(range(t)[frames]):
            s = int(np.flatnonzero(ids[f] < 0)[0])
            bodies[f, s], ids[f, s] = joints[i], body_id
    return bodies, ids


# --------------------------------------------------------------------------------------------------
# naive transcription of §8.1.1-8.1.3: dictionaries of bodies, Python loops, float64


def reference(bodies: np.ndarray, ids: np.ndarray | None, spine: int = SPINE, num_persons: int = 2) -> np.ndarray:
    frames = [f for f in range(bodies.shape[0]) if bodies[f].any()]
    data: dict[int, dict] = {}
    for new_t, f in enumerate(frames):
        for s in range(bodies.shape[1]):
            if not bodies[f, s].any():
                continue
            key = int(ids[f, s]) if ids is not None and ids[f, s] >= 0 else -2 - s
            body = data.setdefault(key, {"joints": [], "interval": []})
            if new_t in body["interval"]:
                continue
            body["joints"].append(bodies[f, s].astype(np.float64))
            body["interval"].append(new_t)

    def motion(joints):
        return float(np.sum(np.var(np.concatenate(joints), axis=0)))

    for body in data.values():
        body["motion"] = motion(body["joints"])
    items = list(data.items())
    multi = len(items) > 1
    if multi:
        kept = [(k, b) for k, b in items if len(b["interval"]) > 11]
        items = kept or items
        if len(items) >= 2:
            kept = []
            for k, b in items:
                valid = [j for j in b["joints"] if np.ptp(j[:, 0]) <= 0.8 * np.ptp(j[:, 1])]
                if 1 - len(valid) / len(b["joints"]) >= NOISE_SPREAD_THRESHOLD:
                    continue
                b["motion"] = min(b["motion"], motion(valid))
                kept.append((k, b))
            items = kept or items
        items = sorted(items, key=lambda kb: -kb[1]["motion"])
    n = len(frames)
    out = np.zeros((n, num_persons, 25 if bodies.shape[2] == 25 else bodies.shape[2], 3))
    taken = [set() for _ in range(num_persons)]
    for _, b in items:
        for s in range(num_persons):
            if not taken[s] & set(b["interval"]):
                taken[s] |= set(b["interval"])
                for f, j in zip(b["interval"], b["joints"]):
                    out[f, s] = j
                break
    if multi:
        keep = [f for f in range(n) if out[f].any()]
        out = out[keep]
    first = next(f for f in range(out.shape[0]) if out[f, 0].any())
    origin = out[first, 0, spine].copy()
    for f in range(out.shape[0]):
        for s in range(num_persons):
            if out[f, s].any():
                out[f, s] -= origin
    return out


# --------------------------------------------------------------------------------------------------


def test_registered_beside_raw_and_agcn():
    assert {"raw", "agcn", "ctrgcn", "ctrgcn_dup"} <= set(PIPELINES)


def test_single_body_drops_empty_frames_and_centres_without_rotation():
    rng = np.random.default_rng(0)
    bodies = np.zeros((20, 1, 25, 3), np.float32)
    bodies[3:17, 0] = person(rng, 14, shift=(0.4, 0.1, 0.5))
    bodies[9, 0] = 0  # an empty frame inside the sequence
    labels = np.arange(20, dtype=np.int32)
    out = apply_pipeline("ctrgcn", sample(bodies, frame_labels=labels), NTU25)
    real = bodies[[f for f in range(20) if bodies[f].any()], 0]  # (13, 25, 3)
    assert out.bodies.shape == (13, 2, 25, 3)
    np.testing.assert_allclose(out.bodies[:, 0], real - real[0, SPINE], atol=1e-6)  # translation only
    assert not out.bodies[:, 1].any()  # the second actor slot stays zero (NTU-60 arrays)
    assert out.frame_labels.tolist() == [3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16]
    dup = apply_pipeline("ctrgcn_dup", sample(bodies), NTU25)
    np.testing.assert_array_equal(dup.bodies[:, 1], dup.bodies[:, 0])  # NTU-120 arrays copy actor 1


def test_short_bodies_are_noise_and_their_frames_go():
    rng = np.random.default_rng(1)
    a, b = person(rng, 40, motion=0.05), person(rng, 40, shift=(0.9, 0, 0), motion=0.01)
    noise = person(rng, 11, shift=(-1.0, 0, 0), motion=0.3)  # 11 frames <= 11: noise
    bodies, ids = slots(51, [(7, slice(0, 40), a), (8, slice(0, 40), b), (9, slice(40, 51), noise)])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    assert out.bodies.shape == (40, 2, 25, 3)  # the noise body's frames held no actor: removed
    np.testing.assert_allclose(out.bodies[:, 0], a - a[0, SPINE], atol=1e-5)  # more motion: actor 1
    np.testing.assert_allclose(out.bodies[:, 1], b - a[0, SPINE], atol=1e-5)
    assert set(np.unique(out.body_ids)) == {7, 8}
    # At 12 frames the same body is kept; moving most, it is actor 1, and a (no shared frame with it)
    # joins actor 1's slot while b (overlapping a) takes actor 2's.
    long_noise = person(rng, 12, shift=(-1.0, 0, 0), motion=0.3)
    bodies, ids = slots(52, [(7, slice(0, 40), a), (8, slice(0, 40), b), (9, slice(40, 52), long_noise)])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    assert out.bodies.shape == (52, 2, 25, 3)
    np.testing.assert_array_equal(out.body_ids[40:, 0], np.full(12, 9))
    np.testing.assert_array_equal(out.body_ids[:40, 0], np.full(40, 7))  # a: no frame shared with 9


def test_wide_bodies_fail_the_spread_test():
    rng = np.random.default_rng(2)
    a = person(rng, 30, motion=0.01)
    wide = person(rng, 30, shift=(1.0, 0, 0), motion=0.2, pose=LYING)  # more motion, but noise
    bodies, ids = slots(30, [(1, slice(None), a), (2, slice(None), wide)])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    np.testing.assert_allclose(out.bodies[:, 0], a - a[0, SPINE], atol=1e-6)
    assert not out.bodies[:, 1].any()
    # Wide in only a third of its frames (< 0.69754): kept, motion from its valid frames only.
    partly = np.concatenate([person(rng, 10, shift=(1, 0, 0), motion=0.5, pose=LYING), person(rng, 20, shift=(1, 0, 0), motion=0.001)])
    bodies, ids = slots(30, [(1, slice(None), a), (2, slice(None), partly)])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    np.testing.assert_array_equal(out.body_ids[:, 0], np.full(30, 1))  # a moves more than partly's valid frames
    np.testing.assert_array_equal(out.body_ids[:, 1], np.full(30, 2))


def test_actors_by_non_overlapping_intervals():
    rng = np.random.default_rng(3)
    lead = person(rng, 60, motion=0.2)  # the most moving body: actor 1
    first_half = person(rng, 30, shift=(0.8, 0, 0), motion=0.05)
    second_half = person(rng, 30, shift=(0.8, 0, 0), motion=0.04)  # fills actor 2's slot after it
    extra = person(rng, 20, shift=(-0.8, 0, 0), motion=0.03)  # overlaps both slots: discarded
    bodies, ids = slots(60, [(1, slice(0, 60), lead), (2, slice(0, 30), first_half),
                             (3, slice(30, 60), second_half), (4, slice(20, 40), extra)])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    assert out.body_ids[:, 0].tolist() == [1] * 60
    assert out.body_ids[:, 1].tolist() == [2] * 30 + [3] * 30
    assert 4 not in out.body_ids
    origin = lead[0, SPINE]
    np.testing.assert_allclose(out.bodies[30:, 1], second_half - origin, atol=1e-5)
    # One slot only: a non-overlapping body joins actor 1, the overlapping ones are dropped.
    one = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25, num_persons=1)
    assert one.bodies.shape == (60, 1, 25, 3) and one.body_ids[:, 0].tolist() == [1] * 60


def test_a_filter_that_would_drop_every_body_is_skipped():
    rng = np.random.default_rng(4)
    bodies, ids = slots(8, [(5, slice(0, 8), person(rng, 8, motion=0.01)), (6, slice(0, 8), person(rng, 8, shift=(1, 0, 0), motion=0.1))])
    out = apply_pipeline("ctrgcn", sample(bodies, ids), NTU25)
    assert out.body_ids[0].tolist() == [6, 5]  # both short, both kept, ordered by motion


def test_bodies_without_ids_are_slots_and_kinect20_works():
    rng = np.random.default_rng(5)
    bodies = np.zeros((25, 2, 20, 3), np.float32)
    bodies[:, 0] = person(rng, 25, motion=0.01)[:, :20]
    bodies[5:, 1] = person(rng, 20, shift=(1, 0, 0), motion=0.1)[:, :20]
    out = apply_pipeline("ctrgcn", sample(bodies), KINECT20)
    assert out.body_ids is None and out.bodies.shape == (25, 2, 20, 3)
    origin = bodies[5, 1, KINECT20.spine]  # slot 1 moves more: actor 1, first present at frame 5
    np.testing.assert_allclose(out.bodies[5:, 0], bodies[5:, 1] - origin, atol=1e-6)
    np.testing.assert_allclose(out.bodies[:, 1], bodies[:, 0] - origin, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_naive_reference_on_messy_input(seed):
    rng = np.random.default_rng(seed)
    t = int(rng.integers(20, 60))
    entries = []
    for body_id in range(int(rng.integers(1, 6))):
        start = int(rng.integers(0, t - 1))
        stop = int(rng.integers(start + 1, t + 1))
        pose = LYING if rng.random() < 0.2 else STAND
        entries.append((100 + body_id, slice(start, stop), person(rng, stop - start, shift=rng.normal(size=3), motion=float(rng.uniform(0.01, 0.3)), pose=pose)))
    bodies, ids = slots(t, entries, b=6)
    if not bodies.any():
        return
    raw = sample(bodies, ids)
    out = apply_pipeline("ctrgcn", raw, NTU25)
    np.testing.assert_allclose(out.bodies, reference(bodies, ids), atol=1e-5)
    no_ids = apply_pipeline("ctrgcn", sample(bodies), NTU25)
    np.testing.assert_allclose(no_ids.bodies, reference(bodies, None), atol=1e-5)


@pytest.mark.realdata
def test_real_ntu_and_nucla_files(shared_data):
    from skelssl.data.formats import nucla, ntu

    files = sorted((shared_data / "ntu_rgbd_samples").glob("*.skeleton"))
    if not files:
        pytest.skip("no NTU sample files")
    for f in files:
        raw = ntu.read(f)[0]
        out = apply_pipeline("ctrgcn", raw, NTU25)
        x = out.bodies
        assert x.shape == (int(raw.bodies.any(axis=(1, 2, 3)).sum()), 2, 25, 3) and np.isfinite(x).all()
        assert np.abs(x[0, 0, SPINE]).max() < 1e-6
        np.testing.assert_allclose(x, reference(raw.bodies, raw.body_ids), atol=1e-5, err_msg=raw.name)
        two_people = int(raw.name[-3:]) >= 50  # A050-A060 are mutual actions
        assert x[:, 1].any() == two_people, raw.name
    clips = sorted(Path(shared_data / "nw_ucla" / "all_sqe").glob("*.json"))[:20]
    for f in clips:
        raw = nucla.read(f)[0]
        out = apply_pipeline("ctrgcn", raw, KINECT20, num_persons=1)
        assert out.bodies.shape[1:] == (1, 20, 3) and np.abs(out.bodies[0, 0, KINECT20.spine]).max() < 1e-6
        np.testing.assert_allclose(out.bodies, reference(raw.bodies, None, KINECT20.spine, 1), atol=1e-5)


@pytest.mark.realdata
def test_prepare_with_the_ctrgcn_pipeline(shared_data, tmp_path):
    from skelssl.cli import main as cli_main
    from skelssl.data.store import Store

    src = shared_data / "ntu_rgbd_samples"
    if not any(src.glob("*.skeleton")):
        pytest.skip("no NTU sample files")
    assert cli_main(["prepare", "ntu", str(src), "--out", str(tmp_path / "s"), "--pipeline", "ctrgcn"]) == 0
    store = Store(tmp_path / "s")
    assert store.pipeline == "ctrgcn" and len(store) == 9 and store.num_persons == 2

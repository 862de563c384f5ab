"""Procedurally generated skeleton actions: the embedded default dataset (no download).

Every sample is a kinematic body (:mod:`~skelssl.data.synthetic_body`) of a subject with its own
proportions and style, performing one of :data:`CLASS_NAMES` (:mod:`~skelssl.data.synthetic_motions`),
seen by a Kinect-like camera from one of three views (the scene turned by -45, 0, +45 degrees about the
vertical axis, like the NTU / N-UCLA cameras, plus up to 35 degrees of the person's own turn), with
sensor jitter and occasional tracking glitches. The output is Kinect v2 camera space (docs/protocols.md:
metres, y up, z = depth of about 2-4.5 m, floor 0.6-1.2 m below the sensor), in the ``ntu25`` layout
or, by joint selection, ``kinect20``. Two-person actions fill both body slots; one-person actions leave
slot 1 all zeros.

Determinism: sample ``i`` depends only on ``(seed, i)`` (its own ``numpy.random.Generator`` seeded by
both; subject proportions depend on ``(seed, subject)``), so a store is reproducible and any sample can
be regenerated alone. Labels are balanced: each block of ``len(CLASS_NAMES)`` consecutive indices holds
every class once, in a seeded order.

Nuisance factors (what makes the classes hard for a linear map of raw coordinates): sequence length
30-120 frames, a random start and duration (35-100 % of the sequence) of the action inside it, a smooth
time warp, amplitude, style variants (hook or straight punch, front or side kick, ...), view, position,
drift, camera height and tilt, body size, handedness (mirrored actions), idle motion and postures
(breathing, head turns, a hand on the hip or at the face), and the actor's slot in two-person actions.
How hard that makes them (a linear map of raw coordinates well above chance yet well below trees on
pose and speed statistics) is checked by ``tests/data/test_synthetic.py``; the measured accuracies are
in benchmarks/RESULTS.md, section "Synthetic actions: hardness".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from skelssl.core.layouts import get_layout
from skelssl.data.protocols import compute_subsets, subsets_bytes
from skelssl.data.sample import RawSample
from skelssl.data.store import Store, StoreWriter
from skelssl.data.synthetic_body import (
    KINECT20_FROM_NTU25, L_EL, L_SH, LUMBAR, NECK, NUM_RIG, PITCH, ROLL, TWIST, YAW, Scene, body_offsets,
    mirror_motion, render, rest_angles,
)
from skelssl.data.synthetic_motions import ACTIONS, ActionSpec, Context, Motion, smooth_window

__all__ = [
    "CLASS_NAMES", "TWO_PERSON_CLASSES", "SUBJECTS", "VIEWS", "VIEW_YAW_DEG",
    "generate_sample", "generate", "write_store",
    "generate_untrimmed", "write_untrimmed_store", "write_ntu_skeleton_files",
]

CLASS_NAMES: tuple[str, ...] = tuple(a.name for a in ACTIONS)
TWO_PERSON_CLASSES: tuple[int, ...] = tuple(i for i, a in enumerate(ACTIONS) if a.persons == 2)
SUBJECTS = 10
VIEWS = (1, 2, 3)
VIEW_YAW_DEG = {1: -45.0, 2: 0.0, 3: 45.0}  # rotation of the scene about the vertical axis per camera

# Stream tags mixed into the per-sample seeds, so that the different generators never share a stream.
_TRIMMED, _ORDER, _SUBJECT, _UNTRIMMED, _NTU_FILE = 0x5A3D, 0x0DE2, 0x5B1E, 0x7E11, 0x47F1
_NOISY = np.array([7, 11, 21, 22, 23, 24])  # hands, hand tips, thumbs: Kinect tracks them worst
_NOISE_SCALE = np.ones(25)
_NOISE_SCALE[_NOISY] = 2.5
_NOISE_SCALE[[14, 15, 18, 19]] = 1.5
_NOISE_SCALE_F32 = _NOISE_SCALE.astype(np.float32)[:, None]  # (25, 1)


@functools.lru_cache(maxsize=64)
def _subjects(seed: int) -> tuple[dict, ...]:
    """Body proportions and motion style of subjects ``1..SUBJECTS`` (a pure function of ``seed``)."""
    out = []
    for subject in range(1, SUBJECTS + 1):
        rng = np.random.default_rng([seed, subject, _SUBJECT])
        ratios = dict(trunk=rng.normal(1, 0.04), arm=rng.normal(1, 0.05), leg=rng.normal(1, 0.04),
                      shoulder=rng.normal(1, 0.06), hip=rng.normal(1, 0.08), head=rng.normal(1, 0.05))
        height = rng.uniform(1.55, 1.90)
        out.append(dict(
            height=height,
            offsets=body_offsets(height, **ratios),
            tempo=rng.uniform(0.8, 1.25),  # longer or shorter sequences
            amp=rng.uniform(0.75, 1.2),  # larger or smaller movements
            left_handed=bool(rng.random() < 0.25),
            lean=rng.normal(0.0, 0.06),  # posture
        ))
    return tuple(out)


@functools.lru_cache(maxsize=256)
def _label_block(seed: int, block: int) -> tuple[int, ...]:
    return tuple(int(k) for k in np.random.default_rng([seed, block, _ORDER]).permutation(len(CLASS_NAMES)))


def _label_of(index: int, seed: int) -> int:
    """Balanced labels: block ``index // C`` is a seeded permutation of the ``C`` classes."""
    return _label_block(seed, index // len(CLASS_NAMES))[index % len(CLASS_NAMES)]


def _timeline(rng: np.random.Generator, t: int, start: float, length: float) -> np.ndarray:
    """Warped action phase per frame: 0 before ``start``, 1 after ``start + length``."""
    s = np.clip((np.arange(t) - start) / length, 0.0, 1.0)
    warp = rng.uniform(-0.7, 0.7)  # monotone for |warp| < 1: the action speeds up, then slows (or reverse)
    return s + warp / (2 * np.pi) * np.sin(2 * np.pi * s)


def _new_motion(t: int, persons: int, info: list[dict]) -> Motion:
    ang = np.broadcast_to(rest_angles(), (t, persons, NUM_RIG, 4)).copy()
    for p in range(persons):
        ang[:, p, LUMBAR, PITCH] += info[p]["lean"]
    return Motion(ang, np.zeros((t, persons, 3)), np.full((t, persons), 0.5), np.ones(persons))


def _idle(m: Motion, rng: np.random.Generator, fidget: list[bool]) -> None:
    """Breathing, weight shift, head turns and, for persons with a free left arm, a hand on the hip, an
    arm across the belly or touching the face: poses shared by every class, which a classifier must
    learn to ignore."""
    t, persons = m.ang.shape[:2]
    frames = np.arange(t)[:, None]  # (T, 1)

    def wave(lo: float, hi: float) -> np.ndarray:  # (T, P) slow sinusoids of random period and phase
        return np.sin(2 * np.pi * frames / rng.uniform(lo, hi, persons) + rng.uniform(0, 2 * np.pi, persons))

    m.ang[:, :, LUMBAR, PITCH] += 0.015 * wave(50, 110)
    m.ang[:, :, 0, ROLL] += 0.02 * wave(60, 150)
    m.ang[:, :, NECK, YAW] += rng.uniform(0.0, 0.35, persons) * (0.6 * wave(40, 120) + 0.4 * wave(25, 60))
    m.ang[:, :, NECK, PITCH] += 0.05 * wave(40, 120)
    # Slow drift of the standing place (shuffling feet), up to ~25 cm over the sequence.
    m.shift[:, :, [0, 2]] += np.linspace(0.0, 1.0, t)[:, None, None] * rng.normal(0.0, 0.12, (persons, 2))
    for p in range(persons):
        if not fidget[p]:
            continue
        posture = rng.random()
        if posture < 0.2:  # hand on the hip: elbow out, forearm bent inwards
            m.ang[:, p, L_SH, ROLL] += 0.6
            m.ang[:, p, L_SH, TWIST] -= 1.5
            m.ang[:, p, L_EL, PITCH] -= 1.4
        elif posture < 0.35:  # forearm across the belly
            m.ang[:, p, L_SH, PITCH] -= 0.25
            m.ang[:, p, L_SH, TWIST] -= 0.9
            m.ang[:, p, L_EL, PITCH] -= 1.5
        elif rng.random() < 0.45:  # touch the face for a while
            a = rng.uniform(0.0, 0.6)
            b = a + rng.uniform(0.25, 0.4)
            w = smooth_window(np.linspace(0, 1, t), a, a + 0.1, b - 0.1, b)
            m.ang[:, p, L_SH, PITCH] -= 1.9 * w
            m.ang[:, p, L_SH, YAW] -= 0.4 * w
            m.ang[:, p, L_EL, PITCH] -= 1.9 * w


def _place(rng: np.random.Generator, persons: int, view: int,
           dist: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Headings ``(P,)``, floor positions ``(P, 2)``, floor height and camera tilt of a scene."""
    yaw = np.deg2rad(VIEW_YAW_DEG[view] + rng.uniform(-35.0, 35.0))  # people never face a camera exactly
    if persons == 1:
        heading = np.array([np.pi + yaw])  # facing the camera, turned by the view
        position = np.array([[rng.uniform(-1.1, 1.1), rng.uniform(2.1, 4.2)]])
    else:
        # Two persons face each other along an axis seen side-on from the front camera.
        beta = np.pi / 2 + yaw + (np.pi if rng.random() < 0.5 else 0.0)
        axis = np.array([np.sin(beta), np.cos(beta)])
        mid = np.array([rng.uniform(-0.7, 0.7), rng.uniform(2.8, 4.0)])
        heading = np.array([beta, beta + np.pi])
        position = np.stack([mid - axis * dist / 2, mid + axis * dist / 2])
    return heading, position, -rng.uniform(0.6, 1.2), rng.uniform(-0.15, 0.15)


def _sensor(world: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kinect-like jitter (worst on hands) and, sometimes, a joint that jumps away for a few frames."""
    t, persons = world.shape[:2]
    sigma = rng.uniform(0.002, 0.009)
    world = world + rng.standard_normal(world.shape, dtype=np.float32) * (sigma * _NOISE_SCALE_F32)
    if rng.random() < 0.15:
        p, j = rng.integers(persons), _NOISY[rng.integers(len(_NOISY))]
        start = rng.integers(t)
        world[start : start + rng.integers(1, 6), p, j] += rng.normal(0.0, 0.08, 3)
    return world


@dataclass
class _Plan:
    """A sequence before rendering: its motion, scene, output slots and record fields."""

    rng: np.random.Generator  # continues with the sensor noise after rendering
    motion: Motion
    offsets: np.ndarray  # (P, 26, 3)
    scene: tuple[np.ndarray, np.ndarray, float, float]  # heading (P,), position (P, 2), floor_y, tilt
    slots: list[int]  # output slot of each person
    record: dict = field(default_factory=dict)  # RawSample fields


def _plan(m: Motion, rng: np.random.Generator, info: list[dict], view: int, dist: float, mirror: bool,
          slots: list[int], record: dict) -> _Plan:
    if mirror:
        m = Motion(*mirror_motion(m.ang, m.shift, m.support), m.plant)
    scene = _place(rng, m.ang.shape[1], view, dist)
    return _Plan(rng, m, np.stack([i["offsets"] for i in info]), scene, slots, record)


def _render_plans(plans: list[_Plan]) -> list[np.ndarray]:
    """Render several plans in one batch; returns ``(T, P, 25, 3)`` camera-space joints per plan.

    Rendering works row by row (a row is one person in one frame), so a sequence comes out the same
    whether it is rendered alone or with others; batching only saves per-call overhead.
    """
    angles, shift, support, plant, person = [], [], [], [], []
    offsets, heading, position, floor_y, tilt = [], [], [], [], []
    q = 0
    for pl in plans:
        m = pl.motion
        t, p = m.ang.shape[:2]
        angles.append(m.ang.reshape(t * p, NUM_RIG, 4))
        shift.append(m.shift.reshape(t * p, 3))
        support.append(m.support.reshape(t * p))
        plant.append(np.tile(m.plant, t))
        person.append(np.tile(np.arange(q, q + p), t))
        head, pos, fy, tl = pl.scene
        offsets.append(pl.offsets)
        heading.append(head)
        position.append(pos)
        floor_y.append(np.full(p, fy))
        tilt.append(np.full(p, tl))
        q += p
    cat = np.concatenate
    world = render(Scene(cat(angles), cat(shift), cat(support), cat(plant), cat(person), cat(offsets), cat(heading),
                         cat(position), cat(floor_y), cat(tilt)))
    out, start = [], 0
    for pl in plans:
        t, p = pl.motion.ang.shape[:2]
        out.append(world[start : start + t * p].reshape(t, p, 25, 3))
        start += t * p
    return out


def _finish(pl: _Plan, world: np.ndarray, layout: str, num_persons: int, noise: bool) -> RawSample:
    """Sensor noise, body slots and layout of a rendered plan."""
    if noise:
        world = _sensor(world, pl.rng)
    if num_persons >= len(pl.slots):
        bodies = np.zeros((world.shape[0], num_persons, 25, 3), dtype=np.float32)
        for p, slot in enumerate(pl.slots):
            bodies[:, slot] = world[:, p]
    else:
        bodies = world[:, :num_persons]  # too few slots: the actor comes first
    return RawSample(bodies=_to_layout(bodies, layout).astype(np.float32), **pl.record)


def _to_layout(bodies: np.ndarray, layout: str) -> np.ndarray:
    layout_obj = get_layout(layout)
    if layout_obj.name == "ntu25":
        return bodies
    if layout_obj.name == "kinect20":
        return bodies[:, :, KINECT20_FROM_NTU25]
    raise ValueError(f"synthetic data exists for the ntu25 and kinect20 layouts, not {layout_obj.name!r}")


def _check(index: int, seed: int, layout: str, num_persons: int) -> None:
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    if num_persons < 1:
        raise ValueError(f"num_persons must be >= 1, got {num_persons}")
    _to_layout(np.zeros((1, 1, 25, 3)), layout)


def _plan_trimmed(index: int, seed: int) -> _Plan:
    label = _label_of(index, seed)
    spec: ActionSpec = ACTIONS[label]
    rng = np.random.default_rng([seed, index, _TRIMMED])
    subject, view, repetition = int(rng.integers(1, SUBJECTS + 1)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    table = _subjects(seed)
    people = [subject]
    if spec.persons == 2:
        other = int(rng.integers(1, SUBJECTS))
        people.append(other + (other >= subject))  # a partner who is not the actor
    info = [table[s - 1] for s in people]

    t = int(np.clip(round(rng.uniform(38, 105) * info[0]["tempo"]), 30, 120))
    length = t * rng.uniform(0.35, 1.0)
    s = _timeline(rng, t, rng.uniform(0.0, t - length), length)
    dist = rng.uniform(*spec.dist)
    m = _new_motion(t, spec.persons, info)
    _idle(m, rng, [spec.free_arm] * spec.persons)
    heights = tuple(i["height"] for i in info)
    spec.program(m, s, Context(rng, info[0]["amp"] * rng.uniform(0.8, 1.2), dist, int(length), heights))
    mirror = info[0]["left_handed"] != (rng.random() < 0.2)  # people do not always use the same hand
    # Trackers list the bodies in any order: the actor is not always body 0.
    slots = [1, 0] if spec.persons == 2 and rng.random() < 0.4 else [0, 1][: spec.persons]
    record = dict(name=f"SYN{seed:02d}_{index:06d}", label=label, subject=subject, view=view, setup=1,
                  repetition=repetition, source=f"synthetic(seed={seed})")
    return _plan(m, rng, info, view, dist, mirror, slots, record)


def generate_sample(index: int, layout: str = "ntu25", seed: int = 0, num_persons: int = 2,
                    noise: bool = True) -> RawSample:
    """One synthetic action sequence.

    Args:
        index: sample index (``>= 0``); the sample depends only on ``(seed, index)``.
        layout: ``"ntu25"`` or ``"kinect20"``.
        seed: dataset seed (``>= 0``).
        num_persons: person slots ``M`` (1 keeps only the actor of two-person actions).
        noise: add sensor jitter and glitches (``False`` gives exact rigid bodies, for tests).

    Returns:
        A :class:`RawSample` with ``bodies`` ``(T, M, V, 3)`` float32 (``T`` in 30..120; the second slot
        all zeros for one-person actions, and the actor of a two-person action in either slot, as a
        tracker lists bodies), ``label`` in ``0..len(CLASS_NAMES)-1``, ``subject`` in ``1..SUBJECTS``,
        ``view`` in ``1..3``, ``repetition`` in ``1..2``, ``setup`` 1.
    """
    _check(index, seed, layout, num_persons)
    plan = _plan_trimmed(index, seed)
    return _finish(plan, _render_plans([plan])[0], layout, num_persons, noise)


def generate(num_samples: int, layout: str = "ntu25", seed: int = 0, num_persons: int = 2, start: int = 0,
             noise: bool = True, batch: int = 64) -> Iterator[RawSample]:
    """Samples ``start .. start + num_samples - 1``, identical to :func:`generate_sample` one by one.

    ``batch`` sequences are rendered together, which is several times faster than one by one.
    """
    _check(start, seed, layout, num_persons)
    for first in range(start, start + num_samples, batch):
        plans = [_plan_trimmed(i, seed) for i in range(first, min(first + batch, start + num_samples))]
        for plan, world in zip(plans, _render_plans(plans)):
            yield _finish(plan, world, layout, num_persons, noise)


def _store_info(seed: int, dataset: str, **more) -> dict:
    return {"dataset": dataset, "format": "synthetic", "class_names": list(CLASS_NAMES),
            "source": f"synthetic(seed={seed})", "seed": seed, **more}


def write_store(out: str | Path, num_samples: int = 2000, layout: str = "ntu25", seed: int = 0,
                progress: Callable[[int, int], None] | None = None, num_persons: int = 2,
                overwrite: bool = False, pipeline: str | None = None) -> Store:
    """Generate ``num_samples`` samples into a packed store, with label-fraction subsets.

    Args:
        out: the store folder (replaced atomically when complete).
        num_samples: how many samples (indices ``0..num_samples-1``).
        layout: ``"ntu25"`` or ``"kinect20"``.
        seed: dataset seed.
        progress: called as ``progress(done, total)`` after each sample.
        num_persons: person slots ``M``.
        overwrite: replace an existing store at ``out`` (never a folder that is not a store).
        pipeline: a preprocessing pipeline applied to each sample as ``prepare --pipeline`` does
            (e.g. ``agcn``: centred on the spine, hip-spine to +z, shoulders to +x); ``None`` keeps the
            camera coordinates (pipeline ``synthetic``).

    Returns:
        The opened :class:`Store` (dataset ``"synthetic"``, pipeline ``"synthetic"``); protocols
        ``synthetic-xsub`` and ``synthetic-xview`` apply, and their subsets are saved in it.
    """
    info = _store_info(seed, "synthetic", subjects=SUBJECTS, views=list(VIEWS))
    if pipeline is not None:
        from skelssl.data.preprocess import apply_pipeline
    with StoreWriter(out, layout, num_persons, pipeline=pipeline or "synthetic", info=info, overwrite=overwrite) as w:
        for i, smp in enumerate(generate(num_samples, layout=layout, seed=seed, num_persons=num_persons)):
            if pipeline is not None:  # as `prepare --pipeline` does to a real dataset
                smp = apply_pipeline(pipeline, smp, layout, num_persons=num_persons)
            w.add(smp.name, smp.bodies, smp.meta(), source=smp.source)
            if progress is not None:
                progress(i + 1, num_samples)
        return w.close(finalize=lambda unpublished: {"subsets.npz": subsets_bytes(compute_subsets(unpublished))})


def generate_untrimmed(index: int, layout: str = "ntu25", seed: int = 0,
                       num_actions: tuple[int, int] = (3, 6), num_persons: int = 2) -> RawSample:
    """An untrimmed sequence: several actions of one subject separated by idle gaps (for detection).

    Half of the sequences show a pair (the partner stands by, breathing and looking around, and takes
    part in two-person actions); the others one person (slot 1 all zeros). Only classes that return to the rest pose are
    used (not sit down, stand up, push, pull, walk towards), so the segments chain smoothly.

    Args:
        index: sequence index; the sequence depends only on ``(seed, index)``.
        layout: ``"ntu25"`` or ``"kinect20"``.
        seed: dataset seed.
        num_actions: inclusive range of the number of actions.
        num_persons: person slots ``M``.

    Returns:
        A :class:`RawSample` with ``label`` -1 and ``frame_labels`` ``(T,)`` (class per frame, -1 in gaps).
    """
    _check(index, seed, layout, num_persons)
    if not 1 <= num_actions[0] <= num_actions[1]:
        raise ValueError(f"num_actions must be a range (lo, hi) with 1 <= lo <= hi, got {num_actions}")
    plan = _plan_untrimmed(index, seed, num_actions)
    return _finish(plan, _render_plans([plan])[0], layout, num_persons, noise=True)


def _plan_untrimmed(index: int, seed: int, num_actions: tuple[int, int]) -> _Plan:
    rng = np.random.default_rng([seed, index, _UNTRIMMED])
    subject, view = int(rng.integers(1, SUBJECTS + 1)), int(rng.integers(1, 4))
    persons = 2 if rng.random() < 0.5 else 1
    pool = [i for i, a in enumerate(ACTIONS) if a.returns_to_rest and a.persons <= persons]
    labels = rng.choice(pool, size=int(rng.integers(num_actions[0], num_actions[1] + 1)))
    lengths = rng.integers(35, 100, size=len(labels))
    gaps = rng.integers(10, 50, size=len(labels) + 1)
    t = int(lengths.sum() + gaps.sum())
    table = _subjects(seed)
    other = int(rng.integers(1, SUBJECTS))
    info = [table[subject - 1], table[other + (other >= subject) - 1]][:persons]
    dist = rng.uniform(1.0, 1.2)
    heights = tuple(i["height"] for i in info) + (1.7,) * (2 - persons)
    m = _new_motion(t, persons, info)
    _idle(m, rng, [False] * persons)  # postures would clash with the chained actions
    frame_labels = np.full(t, -1, dtype=np.int32)
    start = int(gaps[0])
    for k, (label, length) in enumerate(zip(labels, lengths)):
        s = _timeline(rng, t, start, float(length))
        ACTIONS[label].program(m, s, Context(rng, info[0]["amp"] * rng.uniform(0.8, 1.2), dist, int(length), heights))
        frame_labels[start : start + length] = label
        start += int(length + gaps[k + 1])
    record = dict(name=f"SYNU{seed:02d}_{index:06d}", label=-1, subject=subject, view=view, setup=1, repetition=1,
                  source=f"synthetic_untrimmed(seed={seed})", frame_labels=frame_labels)
    return _plan(m, rng, info, view, dist, info[0]["left_handed"], list(range(persons)), record)


def write_untrimmed_store(out: str | Path, num_sequences: int = 100, layout: str = "ntu25", seed: int = 0,
                          num_actions: tuple[int, int] = (3, 6),
                          progress: Callable[[int, int], None] | None = None) -> Store:
    """Generate untrimmed sequences into a store with per-frame labels (dataset ``synthetic_untrimmed``)."""
    info = _store_info(seed, "synthetic_untrimmed", subjects=SUBJECTS, views=list(VIEWS))
    with StoreWriter(out, layout, 2, pipeline="synthetic", info=info) as w:
        for i in range(num_sequences):
            smp = generate_untrimmed(i, layout=layout, seed=seed, num_actions=num_actions)
            w.add(smp.name, smp.bodies, smp.meta(), source=smp.source, frame_labels=smp.frame_labels)
            if progress is not None:
                progress(i + 1, num_sequences)
        return w.close()


def write_ntu_skeleton_files(out_dir: str | Path, num_samples: int, seed: int = 0,
                             crlf_fraction: float = 0.5) -> list[Path]:
    """Write synthetic samples as raw NTU ``.skeleton`` files, quirks included, to exercise the NTU reader.

    File ``i`` holds sample ``i`` of :func:`generate` (``ntu25``) under the name
    ``SsssCcccPpppRrrrAaaa.skeleton`` with the sample's camera (view), performer (subject) and action
    (label + 1, a synthetic class, not the NTU class of that number); setup ``1 + i // 999`` and
    repetition ``1 + i % 999`` make the names unique. Like real files, some have CRLF line endings,
    about 30 % have a few leading or trailing frames with no body, and about 30 % list a third, spurious
    body for a few frames (a squashed, jittery ghost of small spread, so the 2 bodies of highest "energy"
    that the ``agcn`` pipeline keeps are the real ones). One-person samples list one body.

    Args:
        out_dir: folder to write into (created).
        num_samples: how many files.
        seed: dataset seed.
        crlf_fraction: probability of CRLF line endings per file.

    Returns:
        The paths written, in sample order.
    """
    from skelssl.data.formats.ntu import write_skeleton_file

    out_dir = Path(out_dir)
    paths = []
    for i, smp in enumerate(generate(num_samples, layout="ntu25", seed=seed, num_persons=2)):
        rng = np.random.default_rng([seed, i, _NTU_FILE])
        bodies = smp.bodies  # (T, 2, 25, 3)
        t = len(bodies)
        ids = np.broadcast_to(72057594037927936 + rng.integers(1000, 9000) + np.arange(3), (t, 3)).copy()
        if rng.random() < 0.3:  # a spurious third body for a few frames
            start = int(rng.integers(0, t - 3))
            stop = min(t, start + int(rng.integers(3, 15)))
            ghost = np.zeros((t, 1, 25, 3), dtype=np.float32)
            present = bodies[start, :, 0].any(-1)
            anchor = bodies[start, int(np.argmax(present))]  # near a real body, as a chair or a coat would be
            # A squashed skeleton (joints within ~15 cm), so its spread ("energy") stays below a person's.
            squashed = anchor.mean(0) + 0.25 * (anchor - anchor.mean(0))
            ghost[start:stop, 0] = (squashed + np.array([rng.uniform(0.4, 0.8), rng.uniform(-0.3, 0.1), 0.3])
                                    + rng.normal(0.0, 0.01, (stop - start, 25, 3))).astype(np.float32)
            bodies = np.concatenate([bodies, ghost], axis=1)
        if rng.random() < 0.3:  # frames where the sensor saw nobody
            k = int(rng.integers(1, 4))
            bodies = bodies.copy()
            if rng.random() < 0.5:
                bodies[:k] = 0.0
            else:
                bodies[-k:] = 0.0
        name = (f"S{1 + i // 999:03d}C{smp.view:03d}P{smp.subject:03d}R{1 + i % 999:03d}A{smp.label + 1:03d}")
        path = write_skeleton_file(out_dir / f"{name}.skeleton", bodies, body_ids=ids[:, : bodies.shape[1]],
                                   crlf=bool(rng.random() < crlf_fraction))
        paths.append(path)
    return paths

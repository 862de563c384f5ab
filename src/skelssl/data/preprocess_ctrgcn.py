"""The ``ctrgcn`` preprocessing pipeline: SGN / CTR-GCN denoising as MAMP uses it (docs/mamp.md).

MAMP's NTU arrays come from the SGN / CTR-GCN scripts (``get_raw_skes_data.py``,
``get_raw_denoised_data.py``, ``seq_transformation.py``); this is a re-implementation from the
description, on a reader's :class:`~skelssl.data.sample.RawSample`:

1. **Drop empty frames**: frames in which no body has a non-zero coordinate are removed (the official
   parser drops frames whose body count is 0). ``frame_labels`` follow.
2. **Bodies by tracking id**: a body is one ``body_id`` across all frames (NTU gives ids; readers
   without ids, e.g. N-UCLA or PKU-MMD, make each body slot one body). Its **motion** is the sum over
   coordinates of the (population) variance of all its joint positions over all its frames.
3. If there is more than one body, **denoise**:
   a. *length*: drop bodies present in at most 11 frames;
   b. *spread* (only if >= 2 bodies remain): a frame of a body is valid when its x-extent is at most
      0.8 x its y-extent; a body whose invalid-frame fraction is >= 0.69754 is dropped, otherwise its
      motion becomes ``min(motion, motion over its valid frames only)``;
   c. the remaining bodies are sorted by motion, descending (the official "motion range" filter is
      disabled in the official code and is not implemented).
   A filter that would drop *every* remaining body is skipped (ours: the official scripts would be
   left with an empty sample; this can only happen to very short or degenerate clips).
4. **Actors by non-overlapping intervals**: actor 1 is the most-moving body; each further body (in
   motion order) goes into the first actor slot whose bodies so far share no frame with it, else it is
   discarded (with two slots: actor 1's slot, then actor 2's, exactly the official rule; with
   ``num_persons = 1`` only actor 1's slot exists).
5. For multi-body samples, frames in which every actor is empty are removed.
6. **Translation only**: the origin is actor 1's ``layout.spine`` joint (NTU SpineMid, 0-based 1) in
   the first frame where actor 1 is present; it is subtracted from every joint of every actor in every
   frame in which that actor is present (frames where an actor is missing stay zero). No rotation, no
   scaling.
7. The empty second slot of a single-actor sample stays zero (``ctrgcn``: MAMP's NTU-60 arrays) or
   copies actor 1 (``ctrgcn_dup``: MAMP's NTU-120 arrays, §8.1.3).

The store keeps the real length (no padding to 300 frames). The output has ``T' <= T`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import Layout
from skelssl.data.sample import RawSample

__all__ = ["ctrgcn", "ctrgcn_dup", "denoise", "assign_actors", "MIN_BODY_FRAMES", "SPREAD_RATIO", "NOISE_SPREAD_THRESHOLD"]

MIN_BODY_FRAMES = 11  # bodies present in <= 11 frames are noise (denoising_by_length)
SPREAD_RATIO = 0.8  # a frame is valid when x-extent <= 0.8 * y-extent
NOISE_SPREAD_THRESHOLD = 0.69754  # invalid-frame fraction at or above which a body is noise


@dataclass
class _Body:
    """One tracked body: the frames it is in, its joints there, and its motion."""

    key: int
    frames: np.ndarray  # (T,) bool
    joints: np.ndarray  # (T, V, C) float32, zero where absent
    motion: float


def _motion(joints: np.ndarray) -> float:
    """Sum over coordinates of the population variance of all joint positions: ``(F, V, C)`` -> float."""
    values = joints.reshape(-1, joints.shape[-1]).astype(np.float64)  # (F*V, C)
    return float(values.var(axis=0).sum())


def _bodies(bodies: np.ndarray, ids: np.ndarray, has_ids: bool) -> list[_Body]:
    """Group ``(T, B, V, C)`` slots into tracked bodies, in order of first appearance (frame, slot).

    With ids, a body is one id (``-1`` slots of a present body fall back to one body per slot); if an
    id occurs twice in a frame, the first slot wins. Without ids, a body is a slot.
    """
    t, b = bodies.shape[:2]
    present = bodies.any(axis=(2, 3))  # (T, B)
    keys = ids if has_ids else np.broadcast_to(np.arange(b)[None, :], (t, b))
    keys = np.where(keys < 0, -2 - np.arange(b)[None, :], keys)  # id-less slots: one body per slot
    flat = keys[present]  # row-major: frame, then slot
    uniq, first = np.unique(flat, return_index=True)
    out = []
    for k in uniq[np.argsort(first)].tolist():
        hit = present & (keys == k)  # (T, B)
        frames = hit.any(axis=1)  # (T,)
        slot = hit.argmax(axis=1)  # (T,) the first slot holding the id in each frame
        joints = np.zeros((t,) + bodies.shape[2:], np.float32)  # (T, V, C)
        joints[frames] = bodies[frames, slot[frames]]
        out.append(_Body(int(k), frames, joints, 0.0))
    for body in out:
        body.motion = _motion(body.joints[body.frames])
    return out


def _keep_unless_empty(bodies: list[_Body], keep: list[bool]) -> list[_Body]:
    kept = [body for body, k in zip(bodies, keep) if k]
    return kept if kept else bodies  # a filter that would remove every body is skipped


def denoise(bodies: list[_Body]) -> list[_Body]:
    """Length filter, spread filter, sort by motion (steps 3a-3c); single bodies pass unchanged."""
    if len(bodies) <= 1:
        return bodies
    bodies = _keep_unless_empty(bodies, [int(b.frames.sum()) > MIN_BODY_FRAMES for b in bodies])
    if len(bodies) >= 2:
        keep = []
        for body in bodies:
            x = body.joints[body.frames]  # (F, V, C)
            x_extent = x[:, :, 0].max(axis=1) - x[:, :, 0].min(axis=1)  # (F,)
            y_extent = x[:, :, 1].max(axis=1) - x[:, :, 1].min(axis=1)
            valid = x_extent <= SPREAD_RATIO * y_extent
            noisy = float((~valid).mean()) >= NOISE_SPREAD_THRESHOLD
            keep.append(not noisy)
            if not noisy and valid.any():
                body.motion = min(body.motion, _motion(x[valid]))
        bodies = _keep_unless_empty(bodies, keep)
    return sorted(bodies, key=lambda b: -b.motion)  # stable: equal motions keep first-appearance order


def assign_actors(bodies: list[_Body], num_persons: int) -> tuple[list[list[_Body]], list[np.ndarray]]:
    """Step 4: each body (motion order) into the first slot it does not overlap in time, else dropped.

    Returns:
        The bodies of each slot and each slot's occupied frames ``(T,)`` bool.
    """
    t = bodies[0].frames.shape[0]
    slots: list[list[_Body]] = [[] for _ in range(num_persons)]
    occupied = [np.zeros(t, bool) for _ in range(num_persons)]
    for body in bodies:
        for s in range(num_persons):
            if not (occupied[s] & body.frames).any():
                slots[s].append(body)
                occupied[s] |= body.frames
                break
    return slots, occupied


def _ctrgcn(raw: RawSample, layout: Layout, num_persons: int, duplicate_single: bool) -> RawSample:
    bodies, ids = raw.bodies.astype(np.float32, copy=False), raw.tracking_ids()
    if bodies.shape[3] < 2:
        raise SkeletonFormatError(raw.where, f"ctrgcn needs at least x and y, got {bodies.shape[3]} coordinates")
    on = bodies.any(axis=(1, 2, 3))  # (T,) frames with a body
    bodies, ids = bodies[on], ids[on]
    frame_labels = None if raw.frame_labels is None else np.asarray(raw.frame_labels)[on]

    tracked = _bodies(bodies, ids, raw.body_ids is not None)
    multi = len(tracked) > 1
    slots, occupied = assign_actors(denoise(tracked), num_persons)
    t, _, v, c = bodies.shape
    out = np.zeros((t, num_persons, v, c), np.float32)
    out_ids = np.full((t, num_persons), -1, np.int64)
    for s, members in enumerate(slots):
        for body in members:
            out[body.frames, s] = body.joints[body.frames]
            out_ids[body.frames, s] = body.key if body.key >= 0 else -1
    if multi:  # frames where every actor is empty go
        keep = np.logical_or.reduce(occupied)
        out, out_ids, occupied = out[keep], out_ids[keep], [o[keep] for o in occupied]
        if frame_labels is not None:
            frame_labels = frame_labels[keep]

    first = int(np.flatnonzero(occupied[0])[0])  # actor 1 always has a frame
    origin = out[first, 0, layout.spine].copy()  # (C,)
    for s in range(num_persons):
        out[occupied[s], s] -= origin  # absent frames stay zero
    if duplicate_single and num_persons > 1 and not any(o.any() for o in occupied[1:]):
        out[:, 1:] = out[:, :1]
        out_ids[:, 1:] = out_ids[:, :1]
    done = raw.with_bodies(out, out_ids if raw.body_ids is not None else None)
    if frame_labels is not None:
        done.frame_labels = np.array(frame_labels, copy=True)
    return done


def ctrgcn(raw: RawSample, layout: Layout, num_persons: int) -> RawSample:
    """The ``ctrgcn`` pipeline (module docstring); an absent second actor stays zero (NTU-60 arrays).

    Args:
        raw: a reader's sample ``(T, B, V, C)``; never modified.
        layout: gives the centring joint (``layout.spine``).
        num_persons: actor slots ``M``.

    Returns:
        A new sample ``(T', M, V, C)``, ``T' <= T``.
    """
    return _ctrgcn(raw, layout, num_persons, duplicate_single=False)


def ctrgcn_dup(raw: RawSample, layout: Layout, num_persons: int) -> RawSample:
    """As :func:`ctrgcn`, but a single-actor sample's empty slots copy actor 1 (MAMP's NTU-120 arrays)."""
    return _ctrgcn(raw, layout, num_persons, duplicate_single=True)

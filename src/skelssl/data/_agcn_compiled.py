"""Compiled (numba) loops for the ``agcn`` pipeline's per-element steps, used when numba is installed.

``preprocess_agcn.agcn`` calls :func:`steps` in place of its numpy steps 2-4 (energy ranking, shift +
loop fill, centring); the two rotations and the final BLAS product stay in numpy, so both paths share
them. On a sample of NTU size (70 frames, 4 slots) the numpy steps are some 30 small array
operations whose call overhead dominates; here they are one call.

Differences from the numpy path: the energy is summed in float64 (the official code's ``np.std``
works in float64; the numpy path uses float32 two-pass sums, within ~1e-6), so the two paths can
rank two bodies differently only when their energies tie to about 1e-6. Everything else is the same
float32 arithmetic, element by element.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["steps", "energy", "fill_index", "gather_centre"]


@numba.njit(cache=True, nogil=True)
def energy(x, frame_on):
    """Per body: the sum over x, y, z of the population std of that coordinate over all joints of its
    non-empty frames (``ntu_gendata.get_nonzero_std``), two-pass in float64; 0 for an absent body.

    Shape:
        x: ``(T, B, V, 3)`` float32; frame_on: ``(T, B)`` bool; returns ``(B,)`` float64.
    """
    t_len, num_bodies, num_joints, _ = x.shape
    out = np.zeros(num_bodies)
    for b in range(num_bodies):
        count = 0
        s0 = s1 = s2 = 0.0
        for t in range(t_len):
            if frame_on[t, b]:
                count += 1
                for v in range(num_joints):
                    s0 += x[t, b, v, 0]
                    s1 += x[t, b, v, 1]
                    s2 += x[t, b, v, 2]
        if count == 0:
            continue
        n = count * num_joints
        m0, m1, m2 = s0 / n, s1 / n, s2 / n
        q0 = q1 = q2 = 0.0
        for t in range(t_len):
            if frame_on[t, b]:
                for v in range(num_joints):
                    d0 = x[t, b, v, 0] - m0
                    d1 = x[t, b, v, 1] - m1
                    d2 = x[t, b, v, 2] - m2
                    q0 += d0 * d0
                    q1 += d1 * d1
                    q2 += d2 * d2
        out[b] = np.sqrt(q0 / n) + np.sqrt(q1 / n) + np.sqrt(q2 / n)
    return out


@numba.njit(cache=True, nogil=True)
def fill_index(frame_on):
    """``preprocess_agcn._fill_index`` (2s-AGCN's shift + loop fill) as a loop; same result.

    Shape:
        frame_on: ``(T, M)`` bool; returns ``(T, M)`` int64, ``-1`` where the frame stays empty.
    """
    t_len, num_persons = frame_on.shape
    src = np.full((t_len, num_persons), -1, dtype=np.int64)
    for p in range(num_persons):
        n_on = 0
        last = -1
        for t in range(t_len):
            if frame_on[t, p]:
                n_on += 1
                last = t
        if n_on == 0:
            continue
        if frame_on[0, p]:
            for t in range(t_len):
                src[t, p] = t
            end = last + 1
        else:
            k = 0
            for t in range(t_len):
                if frame_on[t, p]:
                    src[k, p] = t
                    k += 1
            end = n_on
        for t in range(end, t_len):
            src[t, p] = src[t % end, p]
    return src


@numba.njit(cache=True, nogil=True)
def gather_centre(bodies, src, order, spine):
    """Person ``p`` of output frame ``t`` is body ``order[p]`` of input frame ``src[t, p]`` (zeros
    where ``src`` is -1), then body 0's ``spine`` joint of each frame is subtracted from every
    non-zero joint of that frame (zero joints stay zero), in float32 as the numpy path does.

    Shape:
        bodies: ``(T, B, V, 3)`` float32; src: ``(T, M)``; order: ``(M,)``; returns ``(3, T, M, V)``.
    """
    t_len, num_persons = src.shape
    num_joints = bodies.shape[2]
    x = np.zeros((3, t_len, num_persons, num_joints), dtype=np.float32)
    for t in range(t_len):
        centre0 = centre1 = centre2 = np.float32(0.0)
        if src[t, 0] >= 0:
            s, b = src[t, 0], order[0]
            centre0, centre1, centre2 = bodies[s, b, spine, 0], bodies[s, b, spine, 1], bodies[s, b, spine, 2]
        for p in range(num_persons):
            s = src[t, p]
            if s < 0:
                continue
            b = order[p]
            for v in range(num_joints):
                c0, c1, c2 = bodies[s, b, v, 0], bodies[s, b, v, 1], bodies[s, b, v, 2]
                if c0 != 0 or c1 != 0 or c2 != 0:
                    x[0, t, p, v] = c0 - centre0
                    x[1, t, p, v] = c1 - centre1
                    x[2, t, p, v] = c2 - centre2
    return x


@numba.njit(cache=True, nogil=True)
def steps(bodies, ids, num_persons, spine):
    """Steps 2-4 of ``preprocess_agcn.agcn`` in one call: rank the bodies by :func:`energy` (the official
    ``argsort()[::-1]``: a stable sort, reversed, so that of equal energies the later slot comes
    first), keep ``num_persons``, shift + loop fill them (:func:`fill_index`), gather and centre
    (:func:`gather_centre`), and carry the body ids along.

    Shape:
        bodies: ``(T, B, V, 3)`` float32, ``B >= num_persons``; ids: ``(T, B)`` int64; returns
        ``x`` ``(3, T, M, V)`` float32 and ids ``(T, M)`` int64 (-1 where a person is absent).
    """
    t_len, num_bodies, num_joints, _ = bodies.shape
    frame_on = np.zeros((t_len, num_bodies), dtype=np.bool_)
    for t in range(t_len):
        for b in range(num_bodies):
            for v in range(num_joints):
                if bodies[t, b, v, 0] != 0 or bodies[t, b, v, 1] != 0 or bodies[t, b, v, 2] != 0:
                    frame_on[t, b] = True
                    break
    order = np.argsort(energy(bodies, frame_on), kind="mergesort")[::-1][:num_persons].copy()
    kept_on = np.empty((t_len, num_persons), dtype=np.bool_)
    for t in range(t_len):
        for p in range(num_persons):
            kept_on[t, p] = frame_on[t, order[p]]
    src = fill_index(kept_on)
    ids_out = np.full((t_len, num_persons), -1, dtype=np.int64)
    for t in range(t_len):
        for p in range(num_persons):
            if src[t, p] >= 0:
                ids_out[t, p] = ids[src[t, p], order[p]]
    return gather_centre(bodies, src, order, spine), ids_out

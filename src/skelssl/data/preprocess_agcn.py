"""The ``agcn`` preprocessing pipeline: ISC ``data_gen/ntu_gendata.py`` + 2s-AGCN
``data_gen/preprocess.py::pre_normalization`` (docs/protocols.md), vectorised.

Keep the two most energetic bodies, shift/loop-fill empty frames, centre on body 0's spine joint,
rotate body 0's frame-0 hip->spine bone onto +z, then its shoulder line onto +x (that second rotation
tilts the spine off +z again, by 0.3-7 degrees on real NTU samples, as in the official code). The
store keeps each sample's real length ``T``, so the loop-fill acts within those ``T`` frames only.
Where numba is installed, steps 2-4 of :func:`agcn` run as compiled loops
(:mod:`skelssl.data._agcn_compiled`).
"""

from __future__ import annotations

import math

import numpy as np

from skelssl.core.conventions import SkeletonFormatError
from skelssl.core.layouts import Layout
from skelssl.data._numba import kernels
from skelssl.data.preprocess_raw import pad_slots
from skelssl.data.sample import RawSample

__all__ = ["agcn"]

# Below this L1 norm a vector (or a rotation axis / angle) is treated as zero, exactly as the
# official ``rotation.py`` (``np.abs(v).sum() < 1e-6``) does.
_DEGENERATE = 1e-6


def _energy(x: np.ndarray, frame_on: np.ndarray) -> np.ndarray:
    """Per-body "energy" of ``ntu_gendata.get_nonzero_std``.

    For each body: keep its non-empty frames, then sum over x, y, z the population standard deviation
    of that coordinate over *all* joints of *all* those frames (one std per coordinate over the
    flattened ``(frames, V)`` values, not a per-joint std). A body with no frame scores 0.

    Two-pass in float32 (relative error ~1e-6 against the official float64 ``np.std``; it can only
    matter for near-ties). The sums are BLAS matrix-vector products, several times faster than
    numpy's axis-0 reductions of an ``(N, 3)`` array.

    Shape:
        x: ``(T, B, V, 3)``; frame_on: ``(T, B)`` bool; returns ``(B,)`` float64.
    """
    energy = np.zeros(x.shape[1])
    for b in np.flatnonzero(frame_on.any(axis=0)):  # empty slots (most of NTU's 4) score 0
        values = x[frame_on[:, b], b].reshape(-1, x.shape[3])  # (frames * V, 3)
        weights = np.full(values.shape[0], 1.0 / values.shape[0], dtype=values.dtype)
        centred = values - weights @ values  # (frames * V, 3)
        energy[b] = np.sqrt(weights @ (centred * centred)).sum()
    return energy


def _fill_index(frame_on: np.ndarray) -> np.ndarray:
    """Source frame of every output frame after 2s-AGCN's shift + loop fill, ``-1`` = stays empty.

    Official ``pre_normalization`` step 1, per person: if its first frame is empty, all its non-empty
    frames are moved to the start (gaps between them closed); then the trailing run of empty frames
    after its last non-empty frame is filled by repeating frames ``0 .. i_f-1`` (``i_f`` = first frame of
    that run), i.e. output frame ``t >= i_f`` copies frame ``t mod i_f``. Gaps in the middle of a
    person whose first frame is present stay empty and are repeated as they are, as in the official
    code.

    Shape:
        frame_on: ``(T, M)`` bool; returns ``(T, M)`` int64 indices into the input frames.
    """
    t, m = frame_on.shape
    src = np.full((t, m), -1, dtype=np.int64)
    for p in range(m):
        valid = np.flatnonzero(frame_on[:, p])
        if valid.size == 0:
            continue  # an absent person stays absent
        if frame_on[0, p]:
            col = np.arange(t)
            end = int(valid[-1]) + 1
        else:
            col = np.full(t, -1, dtype=np.int64)
            col[: valid.size] = valid
            end = valid.size
        if end < t:
            col[end:] = col[np.arange(end, t) % end]
        src[:, p] = col
    return src


def _rotation_onto(v: np.ndarray, target: tuple[float, float, float]) -> np.ndarray:
    """Rotation taking direction ``v`` onto ``target`` as 2s-AGCN's ``rotation.py`` builds it.

    Axis ``v x target``, angle ``arccos`` of the normalised dot product (0 when ``v`` is shorter than
    1e-6 in L1 norm), Rodrigues' formula ``R = cos(a) I + sin(a) [k]x + (1 - cos(a)) k k^T``; the
    identity when the axis or the angle is below 1e-6. The official quirk is kept: ``v``
    *anti*-parallel to ``target`` has a zero axis, so it gets the identity and stays reversed.
    Written with Python floats: on ``(3,)`` vectors numpy's call overhead would dominate.

    Shape:
        v: ``(3,)``; target: 3 floats; returns ``(3, 3)`` float64.
    """
    (vx, vy, vz), (tx, ty, tz) = (float(c) for c in v), target
    ax, ay, az = vy * tz - vz * ty, vz * tx - vx * tz, vx * ty - vy * tx  # v x target
    if abs(vx) + abs(vy) + abs(vz) < _DEGENERATE:
        return np.eye(3)
    cos = (vx * tx + vy * ty + vz * tz) / math.sqrt((vx * vx + vy * vy + vz * vz) * (tx * tx + ty * ty + tz * tz))
    angle = math.acos(min(1.0, max(-1.0, cos)))
    if abs(ax) + abs(ay) + abs(az) < _DEGENERATE or angle < _DEGENERATE:
        return np.eye(3)
    norm = math.sqrt(ax * ax + ay * ay + az * az)
    kx, ky, kz = ax / norm, ay / norm, az / norm
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return np.array([
        [c + t * kx * kx, t * kx * ky - s * kz, t * kx * kz + s * ky],
        [t * kx * ky + s * kz, c + t * ky * ky, t * ky * kz - s * kx],
        [t * kx * kz - s * ky, t * ky * kz + s * kx, c + t * kz * kz],
    ])


def agcn(raw: RawSample, layout: Layout, num_persons: int) -> RawSample:
    """ISC / 2s-AGCN pre-normalisation (docs/protocols.md, ``agcn``), vectorised.

    1. Body slots as listed in the file (the reader keeps up to 4 for NTU).
    2. Keep the ``num_persons`` bodies of highest energy (:func:`_energy`). Ranking follows the
       official ``energy.argsort()[::-1]``: numpy sorts 4 values stably, so among equal energies the
       *later* slot comes first (this only orders empty bodies in practice). Fewer bodies than
       ``num_persons`` are zero-filled.
    3. Shift + loop fill per kept body (:func:`_fill_index`), within the sample's ``T`` frames.
    4. Per frame, subtract body 0's ``layout.spine`` joint from every non-zero joint of every body
       (zero joints stay zero). In a frame where body 0 is empty the centre is 0, so the other body
       keeps its camera coordinates there, as in the official code.
    5. Rotate so that body 0's frame-0 vector ``spine - hip`` is parallel to +z, then
    6. rotate so that body 0's frame-0 vector ``shoulder_right - shoulder_left``
       (``layout.shoulders = (right, left)``; the official ``joint_rshoulder - joint_lshoulder``, i.e.
       pointing from the left shoulder to the right one) is parallel to +x
       (:func:`_rotation_onto`). The second rotation turns about ``v x x_hat``, so unless the shoulder
       line is perpendicular to the spine it tilts the spine off +z again (by 0.3-7.2 degrees on the
       nine NTU sample files); the official code does the same, and only the last alignment is
       exact. Frame 0 of body 0 is used even if empty (possible only when every body has energy 0):
       the rotations are then the identity.
    7. The real length is ``T`` itself (``num_frame`` in the official code).

    Differences, all measure-zero for real data: the official code marks frames/joints empty by
    ``sum(...) == 0``; here "empty" means all coordinates exactly 0. Coordinates are float32 throughout,
    as in the official arrays; the rotation matrices are built in float64 (the official code computes
    each rotated joint in float64 and stores it back as float32, so results agree to ~1e-7 relative).

    Where numba is installed, steps 2-4 run as compiled loops (:mod:`skelssl.data._agcn_compiled`;
    the energy then in float64); results equal the numpy steps' but for float32 rounding of the
    energies, which can only reorder bodies whose energies tie to ~1e-6.
    """
    if raw.bodies.shape[3] != 3:
        raise SkeletonFormatError(raw.where, f"agcn needs 3 coordinates (x, y, z), got {raw.bodies.shape[3]}")
    bodies, ids = pad_slots(raw.bodies.astype(np.float32, copy=False), raw.tracking_ids(), num_persons)
    compiled = kernels("skelssl.data._agcn_compiled")  # numba loops for steps 2-4, if installed
    if compiled:
        x, ids = compiled.steps(np.ascontiguousarray(bodies), np.ascontiguousarray(ids), num_persons, layout.spine)
    else:
        frame_on = bodies.any(axis=(2, 3))  # (T, B)
        order = np.argsort(_energy(bodies, frame_on), kind="stable")[::-1][:num_persons]
        ids, frame_on = ids[:, order], frame_on[:, order]  # (T, M)
        src = _fill_index(frame_on)  # (T, M) input frame of each output frame, -1 = empty
        take = np.maximum(src, 0)
        ids = np.where(src < 0, -1, ids[take, np.arange(len(order))[None, :]])  # (T, M)
        # Coordinate-first float32 work arrays: per-coordinate ops run on contiguous (T, M, V) planes
        # and the rotation is one BLAS product (a trailing axis of 3, or float64 temporaries, are
        # slower: benchmarks/RESULTS.md, section "NTU reading + `agcn` preprocessing throughput").
        x = np.ascontiguousarray(bodies[take, order[None, :]].transpose(3, 0, 1, 2))  # (3, T, M, V)
        x[:, src < 0] = 0.0
        joint_on = (x[0] != 0) | (x[1] != 0) | (x[2] != 0)  # (T, M, V)
        centre = x[:, :, 0, layout.spine].copy()  # (3, T); zeros where body 0 is absent
        x -= centre[:, :, None, None]
        x *= joint_on  # zero joints (and absent persons) stay zero

    right, left = layout.shoulders
    rot_z = _rotation_onto(x[:, 0, 0, layout.spine] - x[:, 0, 0, layout.hip], (0.0, 0.0, 1.0))
    rot_x = _rotation_onto(rot_z @ (x[:, 0, 0, right] - x[:, 0, 0, left]), (1.0, 0.0, 0.0))
    rotation = (rot_x @ rot_z).astype(np.float32)
    # (T*M*V, 3) = (3, T*M*V)^T @ R^T, read through BLAS's transposed access: no transposed copy.
    x = (x.reshape(3, -1).T @ rotation.T).reshape(x.shape[1:] + (3,))  # (T, M, V, 3)
    return raw.with_bodies(x, ids if raw.body_ids is not None else None)

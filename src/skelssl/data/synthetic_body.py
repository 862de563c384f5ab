"""The kinematic body of the synthetic action generator: a rig, its proportions and forward kinematics.

The rig has the 25 Kinect v2 joints in NTU order plus one virtual joint (``LUMBAR``, index 25) that sits
on the pelvis and carries the trunk bend, so that bending the spine does not swing the legs. It is
rooted at the pelvis (``spine_base``), not at the graph centre of :data:`~skelssl.core.layouts.NTU25`:
the layout's bones are the same physical segments, only the direction of the tree differs.

Each joint carries four angles per frame (channels ``PITCH, YAW, ROLL, TWIST``) and rotates the segment
that leaves it: ``R_local = Ry(yaw) @ Rz(roll) @ Rx(pitch) @ Ry(twist)`` in the body frame whose axes
are x = the person's left, y = up, z = forward (right-handed). In that order ``twist`` turns a limb
about its own axis (limbs hang along -y at rest), ``pitch`` swings it forward/back, ``roll`` out to the
side and ``yaw`` around the vertical, which together reach every pose the actions need (raising an arm
forward then wrapping it around a partner is pitch then yaw). Signs: arm flexion is negative pitch,
knee flexion positive pitch, trunk forward bend positive pitch, left-arm abduction positive roll.

Camera space is Kinect's (METHODS.md §1): metres, y up, z = depth away from the sensor; a person who
faces the camera has their left side at smaller x, as in the NTU files.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NUM_RIG", "LUMBAR", "PITCH", "YAW", "ROLL", "TWIST", "RIG_PARENTS", "MIRROR", "KINECT20_FROM_NTU25",
    "body_offsets", "rest_angles", "mirror_motion", "forward_kinematics", "render",
]

# Joint indices (NTU order) used by the action programs.
SPINE_BASE, SPINE_MID, NECK, HEAD = 0, 1, 2, 3
L_SH, L_EL, L_WR, L_HAND = 4, 5, 6, 7
R_SH, R_EL, R_WR, R_HAND = 8, 9, 10, 11
L_HIP, L_KNEE, L_ANK, L_FOOT = 12, 13, 14, 15
R_HIP, R_KNEE, R_ANK, R_FOOT = 16, 17, 18, 19
CHEST = 20  # spine_shoulder: its rotation bends the upper trunk and carries neck and shoulders
L_TIP, L_THUMB, R_TIP, R_THUMB = 21, 22, 23, 24
LUMBAR = 25  # virtual joint on the pelvis; its rotation bends the whole trunk
NUM_RIG = 26
PITCH, YAW, ROLL, TWIST = 0, 1, 2, 3

# Pelvis-rooted parents of the rig (the root is its own parent).
RIG_PARENTS = (0, 25, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 1, 7, 7, 11, 11, 0)

# Left/right swap of the rig (the NTU layout's pairs; the spine and the virtual joint stay).
MIRROR = np.arange(NUM_RIG)
for _a, _b in ((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23), (22, 24)):
    MIRROR[_a], MIRROR[_b] = _b, _a
# Mirroring the world about the sagittal plane keeps pitch and negates the other three angles.
_MIRROR_SIGN = np.array([1.0, -1.0, -1.0, -1.0])

# Kinect v1 (kinect20) joints as NTU joints: hip_center, spine, shoulder_center, head, then the limbs.
KINECT20_FROM_NTU25 = np.array([0, 1, 20, 3, *range(4, 20)])

FEET = np.array([L_ANK, L_FOOT, R_ANK, R_FOOT])


def _depth_levels() -> list[np.ndarray]:
    depth = np.zeros(NUM_RIG, dtype=np.int64)
    for j in range(NUM_RIG):
        k = j
        while RIG_PARENTS[k] != k:
            depth[j] += 1
            k = RIG_PARENTS[k]
    return [np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)]


_LEVELS = _depth_levels()
_LEVEL_PARENTS = [np.asarray(RIG_PARENTS)[lv] for lv in _LEVELS]
# Joints with children: only their rotations are ever used (a leaf's rotation moves nothing).
_INNER = np.array(sorted({p for j, p in enumerate(RIG_PARENTS) if j != p} | {0}))


def body_offsets(height: float, trunk: float = 1.0, arm: float = 1.0, leg: float = 1.0, shoulder: float = 1.0,
                 hip: float = 1.0, head: float = 1.0) -> np.ndarray:
    """Rest offsets of every rig joint from its parent, in the parent's frame.

    Segment lengths are fractions of standing height chosen to match Kinect v2 skeletons of adults
    (e.g. a 1.70 m subject: lower spine 0.25 m, upper arm 0.27 m, thigh 0.40 m), scaled by per-group
    ratios so subjects differ in proportions as well as in size.

    Args:
        height: standing height in metres.
        trunk, arm, leg, shoulder, hip, head: multiplicative ratios of those segment groups.

    Returns:
        ``(26, 3)`` float64 offsets (x = left, y = up, z = forward).
    """
    h = height
    off = np.zeros((NUM_RIG, 3))
    off[SPINE_MID] = (0.0, 0.147 * h * trunk, -0.01)
    off[CHEST] = (0.0, 0.124 * h * trunk, -0.012)
    off[NECK] = (0.0, 0.038 * h, 0.008)
    off[HEAD] = (0.0, 0.065 * h * head, 0.012)
    for side, (sh, el, wr, hand, tip, thumb) in ((1.0, (L_SH, L_EL, L_WR, L_HAND, L_TIP, L_THUMB)),
                                                  (-1.0, (R_SH, R_EL, R_WR, R_HAND, R_TIP, R_THUMB))):
        off[sh] = (side * 0.097 * h * shoulder, -0.026 * h, -0.012)
        off[el] = (0.0, -0.159 * h * arm, 0.0)
        off[wr] = (0.0, -0.138 * h * arm, 0.0)
        off[hand] = (0.0, -0.040 * h, 0.0)
        off[tip] = (0.0, -0.036 * h, 0.0)
        off[thumb] = (-side * 0.006 * h, -0.012 * h, 0.020 * h)  # palms face the thighs, thumbs forward
    for side, (hp, kn, an, ft) in ((1.0, (L_HIP, L_KNEE, L_ANK, L_FOOT)), (-1.0, (R_HIP, R_KNEE, R_ANK, R_FOOT))):
        off[hp] = (side * 0.045 * h * hip, -0.012 * h, 0.0)
        off[kn] = (0.0, -0.235 * h * leg, 0.0)
        off[an] = (0.0, -0.229 * h * leg, 0.0)
        off[ft] = (0.0, -0.030 * h, 0.062 * h)
    return off


def rest_angles() -> np.ndarray:
    """``(26, 4)`` angles of the relaxed standing pose (arms hanging slightly out, elbows soft)."""
    a = np.zeros((NUM_RIG, 4))
    a[L_SH, ROLL], a[R_SH, ROLL] = 0.12, -0.12
    a[L_EL, PITCH] = a[R_EL, PITCH] = -0.22
    a[L_KNEE, PITCH] = a[R_KNEE, PITCH] = 0.04
    a[L_HIP, PITCH] = a[R_HIP, PITCH] = -0.02
    return a


def mirror_motion(angles: np.ndarray, shift: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror a motion left<->right (a right-handed action becomes a left-handed one).

    Args:
        angles: ``(T, P, 26, 4)`` joint angles.
        shift: ``(T, P, 3)`` body-frame root displacement.
        support: ``(T, P)`` weight of the left foot in the planted-feet correction.

    Returns:
        The mirrored ``(angles, shift, support)`` (new arrays).
    """
    angles = angles[:, :, MIRROR] * _MIRROR_SIGN
    shift = shift * np.array([-1.0, 1.0, 1.0])
    return angles, shift, 1.0 - support


def _rotations(angles: np.ndarray) -> np.ndarray:
    """``(4, *B)`` angles -> ``(3, 3, *B)`` matrices ``Ry(yaw) Rz(roll) Rx(pitch) Ry(twist)``.

    Written out entry by entry with the batch axes last: numpy's stacked 3x3 ``matmul`` costs about ten
    times more than these element-wise products on the few thousand matrices of one sequence.
    """
    c, s = np.cos(angles), np.sin(angles)
    cp, sp, ca, sa, cr, sr, cw, sw = c[PITCH], s[PITCH], c[YAW], s[YAW], c[ROLL], s[ROLL], c[TWIST], s[TWIST]
    # Q = Rz(roll) Rx(pitch), rows q0, q1, q2.
    q00, q01, q02 = cr, -sr * cp, sr * sp
    q10, q11, q12 = sr, cr * cp, -cr * sp
    q20, q21, q22 = np.zeros_like(cp), sp, cp
    # X = Ry(yaw) Q: rows 0 and 2 mix, row 1 stays.
    x00, x01, x02 = ca * q00 + sa * q20, ca * q01 + sa * q21, ca * q02 + sa * q22
    x20, x21, x22 = -sa * q00 + ca * q20, -sa * q01 + ca * q21, -sa * q02 + ca * q22
    # R = X Ry(twist): columns 0 and 2 mix, column 1 stays.
    return np.stack([
        np.stack([x00 * cw - x02 * sw, x01, x00 * sw + x02 * cw]),
        np.stack([q10 * cw - q12 * sw, q11, q10 * sw + q12 * cw]),
        np.stack([x20 * cw - x22 * sw, x21, x20 * sw + x22 * cw]),
    ])


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batch-last product of ``(3, 3, *B)`` matrices."""
    return a[:, 0, None] * b[None, 0] + a[:, 1, None] * b[None, 1] + a[:, 2, None] * b[None, 2]


def forward_kinematics(angles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions in each body's own frame, pelvis at the origin.

    Args:
        angles: ``(T, P, 26, 4)`` joint angles (radians).
        offsets: ``(P, 26, 3)`` rest offsets of each person's rig.

    Returns:
        ``(T, P, 26, 3)`` float32 positions.
    """
    t, p = angles.shape[:2]
    # Batch-last float32 layout: joints first, then (T*P); the products below are element-wise.
    ang = np.ascontiguousarray(angles.astype(np.float32).transpose(3, 2, 0, 1)).reshape(4, NUM_RIG, t * p)
    off = np.broadcast_to(offsets.astype(np.float32).transpose(2, 1, 0)[:, :, None, :], (3, NUM_RIG, t, p))
    off = off.reshape(3, NUM_RIG, t * p)
    local = _rotations(ang[:, _INNER])  # (3, 3, J_inner, T*P)
    glob = np.empty_like(local)
    slot = np.full(NUM_RIG, -1)
    slot[_INNER] = np.arange(len(_INNER))
    pos = np.zeros((3, NUM_RIG, t * p), dtype=np.float32)
    glob[:, :, slot[0]] = local[:, :, slot[0]]
    # One step per tree depth: every joint of a level has its parent already placed.
    for level, parents in zip(_LEVELS, _LEVEL_PARENTS):
        rp = glob[:, :, slot[parents]]  # (3, 3, L, T*P)
        pos[:, level] = pos[:, parents] + (rp * off[None, :, level]).sum(1)
        inner = slot[level] >= 0
        if inner.any():
            glob[:, :, slot[level[inner]]] = _matmul(rp[:, :, inner], local[:, :, slot[level[inner]]])
    return pos.reshape(3, NUM_RIG, t, p).transpose(2, 3, 1, 0)


def _yaw_matrix(psi: np.ndarray) -> np.ndarray:
    c, s = np.cos(psi), np.sin(psi)
    m = np.zeros(psi.shape + (3, 3))
    m[..., 0, 0], m[..., 0, 2], m[..., 1, 1], m[..., 2, 0], m[..., 2, 2] = c, s, 1.0, -s, c
    return m


def render(
    angles: np.ndarray,
    shift: np.ndarray,
    support: np.ndarray,
    plant: np.ndarray,
    offsets: np.ndarray,
    heading: np.ndarray,
    position: np.ndarray,
    floor_y: float,
    tilt: float,
) -> np.ndarray:
    """Place posed bodies in Kinect camera space.

    Each frame the body is lowered until its lowest foot joint touches the floor (so squats and sitting
    need no hand-tuned pelvis height), and slid horizontally so that the supporting foot stays where it
    was in the rest pose (``plant`` = 1; walking bodies use ``plant`` = 0 and move by ``shift``). Then
    ``shift`` (body frame) is added, the body is turned to its heading and put at its floor position,
    and the whole scene is tilted like a Kinect pitched up or down.

    Args:
        angles: ``(T, P, 26, 4)`` joint angles.
        shift: ``(T, P, 3)`` displacement in each body's frame (x left, y up, z forward).
        support: ``(T, P)`` weight of the left foot (1 - weight on the right) for the planted correction.
        plant: ``(P,)`` strength of the planted-feet correction.
        offsets: ``(P, 26, 3)`` rig offsets.
        heading: ``(P,)`` yaw of each body in camera space (0 faces away from the camera, pi faces it).
        position: ``(P, 2)`` floor position ``(x, z)`` of each pelvis.
        floor_y: camera-space height of the floor (negative: the Kinect sits above it).
        tilt: camera pitch in radians.

    Returns:
        ``(T, P, 25, 3)`` float64 joint positions (the virtual joint dropped).
    """
    t, p = angles.shape[:2]
    rest = np.broadcast_to(rest_angles(), (1, p, NUM_RIG, 4))
    pos = forward_kinematics(np.concatenate([angles, rest]), offsets)  # (T+1, P, 26, 3)
    pos, rest_pos = pos[:t], pos[t:]
    ground = -pos[:, :, FEET, 1].min(axis=2)  # (T, P)
    w = support[..., None]  # (T, P, 1)
    feet = w * pos[:, :, L_ANK, :] + (1 - w) * pos[:, :, R_ANK, :]
    feet_rest = w * rest_pos[:, :, L_ANK, :] + (1 - w) * rest_pos[:, :, R_ANK, :]
    corr = -(feet - feet_rest) * plant[None, :, None]  # (T, P, 3)
    corr[..., 1] = ground
    pos = pos[:, :, :25] + (corr + shift)[:, :, None, :]
    rot = _yaw_matrix(np.asarray(heading, dtype=np.float64))  # (P, 3, 3)
    world = np.einsum("pab,tpvb->tpva", rot, pos)
    world[..., 0] += position[None, :, None, 0]
    world[..., 1] += floor_y
    world[..., 2] += position[None, :, None, 1]
    c, s = np.cos(tilt), np.sin(tilt)
    y, z = world[..., 1].copy(), world[..., 2].copy()
    world[..., 1], world[..., 2] = c * y - s * z, s * y + c * z
    return world

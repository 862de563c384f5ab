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

Camera space is Kinect's (docs/protocols.md): metres, y up, z = depth away from the sensor; a person who
faces the camera has their left side at smaller x, as in the NTU files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skelssl.core.layouts import CONVERSIONS

__all__ = [
    "NUM_RIG", "LUMBAR", "PITCH", "YAW", "ROLL", "TWIST", "RIG_PARENTS", "MIRROR", "KINECT20_FROM_NTU25",
    "Scene", "body_offsets", "rest_angles", "mirror_motion", "forward_kinematics", "render",
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
KINECT20_FROM_NTU25 = np.array(CONVERSIONS[("ntu25", "kinect20")])

FEET = np.array([L_ANK, L_FOOT, R_ANK, R_FOOT])


def _depth_levels() -> list[np.ndarray]:
    depth = np.zeros(NUM_RIG, dtype=np.int64)
    for j in range(NUM_RIG):
        k = j
        while RIG_PARENTS[k] != k:
            depth[j] += 1
            k = RIG_PARENTS[k]
    return [np.flatnonzero(depth == d) for d in range(1, int(depth.max()) + 1)]


# Joints with children: only their rotations are ever used (a leaf's rotation moves nothing).
_INNER = np.array(sorted({p for j, p in enumerate(RIG_PARENTS) if j != p} | {0}))
_SLOT = np.full(NUM_RIG, -1)
_SLOT[_INNER] = np.arange(len(_INNER))
# Per tree depth: the joints, their parents, and which of them have children.
_STEPS = [(lv, np.asarray(RIG_PARENTS)[lv], np.flatnonzero(_SLOT[lv] >= 0)) for lv in _depth_levels()]


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


def mirror_motion(angles: np.ndarray, shift: np.ndarray,
                  support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _fk(ang: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Batch-last forward kinematics: ``(4, 26, N)`` angles, ``(3, 26, N)`` offsets -> ``(3, 26, N)``."""
    local = _rotations(ang[:, _INNER])  # (3, 3, J_inner, N)
    glob = np.empty_like(local)
    pos = np.zeros(off.shape, dtype=np.float32)
    glob[:, :, _SLOT[0]] = local[:, :, _SLOT[0]]
    # One step per tree depth: every joint of a level has its parent already placed.
    for level, parents, inner in _STEPS:
        rp = glob[:, :, _SLOT[parents]]  # (3, 3, L, N)
        pos[:, level] = pos[:, parents] + (rp * off[None, :, level]).sum(1)
        if len(inner):
            glob[:, :, _SLOT[level[inner]]] = _matmul(rp[:, :, inner], local[:, :, _SLOT[level[inner]]])
    return pos


def forward_kinematics(angles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions in the body's own frame, pelvis at the origin.

    Args:
        angles: ``(N, 26, 4)`` joint angles (radians), one row per person and frame.
        offsets: ``(N, 26, 3)`` rest offsets of the rig of each row.

    Returns:
        ``(N, 26, 3)`` float32 positions.
    """
    ang = np.ascontiguousarray(np.asarray(angles, dtype=np.float32).transpose(2, 1, 0))
    off = np.ascontiguousarray(np.asarray(offsets, dtype=np.float32).transpose(2, 1, 0))
    return _fk(ang, off).transpose(2, 1, 0)


@dataclass
class Scene:
    """Everything :func:`render` needs. A row is one person in one frame; rows of many sequences may be
    stacked, since every operation is per row (a sequence renders the same alone or in a batch).

    Args:
        angles: ``(N, 26, 4)`` joint angles.
        shift: ``(N, 3)`` displacement in the body's frame (x left, y up, z forward).
        support: ``(N,)`` weight of the left foot (1 - weight on the right) for the planted correction.
        plant: ``(N,)`` strength of the planted-feet correction.
        person: ``(N,)`` index of the row's person in the per-person arrays below.
        offsets: ``(Q, 26, 3)`` rig offsets of each person.
        heading: ``(Q,)`` yaw of each body in camera space (0 faces away from the camera, pi faces it).
        position: ``(Q, 2)`` floor position ``(x, z)`` of each pelvis.
        floor_y: ``(Q,)`` camera-space height of the floor under each person (the Kinect sits above it).
        tilt: ``(Q,)`` camera pitch in radians.
    """

    angles: np.ndarray
    shift: np.ndarray
    support: np.ndarray
    plant: np.ndarray
    person: np.ndarray
    offsets: np.ndarray
    heading: np.ndarray
    position: np.ndarray
    floor_y: np.ndarray
    tilt: np.ndarray


def render(scene: Scene) -> np.ndarray:
    """Place posed bodies in Kinect camera space.

    Each frame the body is lowered until its lowest foot joint touches the floor (so squats and sitting
    need no hand-tuned pelvis height), and slid horizontally so that the supporting foot stays where it
    was in the rest pose (``plant`` = 1; walking bodies use ``plant`` = 0 and move by ``shift``). Then
    ``shift`` (body frame) is added, the body is turned to its heading and put at its floor position,
    and the whole scene is tilted like a Kinect pitched up or down.

    Returns:
        ``(N, 25, 3)`` float32 joint positions (the virtual joint dropped).
    """
    q = len(scene.offsets)
    offsets = np.ascontiguousarray(scene.offsets.astype(np.float32).transpose(2, 1, 0))  # (3, 26, Q)
    rest = np.broadcast_to(rest_angles().astype(np.float32).T[:, :, None], (4, NUM_RIG, q))
    rest_pos = _fk(rest, offsets)[:, [L_ANK, R_ANK]][:, :, scene.person]  # (3, 2, N)
    ang = np.ascontiguousarray(scene.angles.astype(np.float32).transpose(2, 1, 0))
    pos = _fk(ang, np.ascontiguousarray(offsets[:, :, scene.person]))  # (3, 26, N)
    w = scene.support.astype(np.float32)
    feet = w * (pos[:, L_ANK] - rest_pos[:, 0]) + (1 - w) * (pos[:, R_ANK] - rest_pos[:, 1])  # (3, N)
    corr = -feet * scene.plant.astype(np.float32) + scene.shift.T.astype(np.float32)
    corr[1] = scene.shift[:, 1] - pos[1, FEET].min(axis=0)  # lowest foot on the floor
    x, y, z = pos[:, :25] + corr[:, None, :]  # each (25, N)
    psi = scene.heading[scene.person]
    c, s = np.cos(psi).astype(np.float32), np.sin(psi).astype(np.float32)
    x, z = c * x + s * z + scene.position[scene.person, 0], -s * x + c * z + scene.position[scene.person, 1]
    y = y + scene.floor_y[scene.person]
    tilt = scene.tilt[scene.person]
    c, s = np.cos(tilt).astype(np.float32), np.sin(tilt).astype(np.float32)
    y, z = c * y - s * z, s * y + c * z
    return np.stack([x, y, z], axis=-1).transpose(1, 0, 2).astype(np.float32)  # (N, 25, 3)

"""Skeleton layouts: the one place where joints and bones are written down.

A layout is a frozen object naming every joint, the zero-indexed parent of each joint (the root is its
own parent), the left/right joint pairs used for mirroring, and the few landmark joints that the
preprocessing pipelines need (centre, spine, hip, shoulders). Graph adjacency (ST-GCN, AGCN), the bone
input stream (Hi-TRS), flips and drawing are all derived from it; nothing else in skelssl lists bones.

Tensor convention (see :mod:`skelssl.core.conventions`): joint index ``v`` is the ``V`` axis of a
``(C, T, V, M)`` sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skelssl.core.conventions import SkeletonFormatError

__all__ = ["Layout", "NTU25", "KINECT20", "COCO17", "OPENPOSE18", "H36M17", "LAYOUTS", "BUILTIN_LAYOUTS",
           "get_layout", "register_layout", "layout_from_dict", "load_layout_file", "is_layout_file",
           "CONVERSIONS", "conversion"]


@dataclass(frozen=True)
class Layout:
    """A skeleton topology.

    Args:
        name: registry key (``"ntu25"``, ``"kinect20"``).
        joint_names: one name per joint, in the data's joint order.
        parents: zero-indexed parent of each joint; the root joint is its own parent.
        left_right: pairs ``(left, right)`` of mirrored joints.
        center: the graph centre (root) used by ST-GCN/AGCN spatial partitioning.
        spine: the joint the ``agcn``/``ctrgcn`` pipelines centre on (spine-mid for both Kinects).
        hip: the base of the spine (the hip->spine bone is aligned with +z by ``agcn``).
        shoulders: ``(right, left)`` shoulders (right->left is aligned with +x by ``agcn``).
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    left_right: tuple[tuple[int, int], ...]
    center: int
    spine: int
    hip: int
    shoulders: tuple[int, int]
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        v = len(self.joint_names)
        if len(self.parents) != v:
            raise ValueError(f"layout {self.name}: {len(self.parents)} parents for {v} joints")
        for j, p in enumerate(self.parents):
            if not 0 <= p < v:
                raise ValueError(f"layout {self.name}: joint {j} has parent {p} outside 0..{v - 1}")
        roots = [j for j, p in enumerate(self.parents) if j == p]
        if roots != [self.center]:
            raise ValueError(f"layout {self.name}: roots {roots}, expected exactly the centre {self.center}")
        # Every joint must reach the root (no cycles).
        for j in range(v):
            seen, k = set(), j
            while self.parents[k] != k:
                if k in seen:
                    raise ValueError(f"layout {self.name}: cycle through joint {k}")
                seen.add(k)
                k = self.parents[k]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict[str, Any]:
        """The layout as plain JSON (what a layout file and ``store.json`` hold); :func:`layout_from_dict` inverts it."""
        return {"name": self.name, "joints": list(self.joint_names), "parents": list(self.parents),
                "left_right": [list(p) for p in self.left_right], "center": self.center, "spine": self.spine,
                "hip": self.hip, "shoulders": list(self.shoulders), "description": self.description}

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """``(child, parent)`` pairs, root self-loop excluded, in joint order."""
        return tuple((j, p) for j, p in enumerate(self.parents) if j != p)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Joint permutation that swaps left and right (an involution)."""
        perm = list(range(self.num_joints))
        for a, b in self.left_right:
            perm[a], perm[b] = b, a
        return tuple(perm)

    def adjacency(self, self_loops: bool = False) -> np.ndarray:
        """Symmetric ``(V, V)`` 0/1 adjacency of the bone graph."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for c, p in self.bones:
            a[c, p] = a[p, c] = 1.0
        if self_loops:
            a += np.eye(self.num_joints, dtype=np.float32)
        return a

    def hop_distance(self) -> np.ndarray:
        """``(V, V)`` graph distance in bones (``inf`` where unreachable, never for a tree)."""
        v = self.num_joints
        dist = np.full((v, v), np.inf)
        adj = self.adjacency() > 0
        for s in range(v):
            dist[s, s] = 0
            frontier, d = [s], 0
            while frontier:
                d += 1
                nxt = []
                for u in frontier:
                    for w in np.flatnonzero(adj[u]):
                        if dist[s, w] == np.inf:
                            dist[s, w] = d
                            nxt.append(int(w))
                frontier = nxt
        return dist

    def spatial_partition(self) -> np.ndarray:
        """``(3, V, V)`` ST-GCN/AGCN spatial partition: identity, inward (to the centre), outward.

        Each subset is column-normalised as in 2s-AGCN (``A @ D^-1``), so ``x @ A[k]`` averages over
        a joint's neighbours of that kind.
        """
        v = self.num_joints
        identity = np.eye(v, dtype=np.float32)
        inward = np.zeros((v, v), dtype=np.float32)
        for c, p in self.bones:
            inward[c, p] = 1.0  # child -> parent points towards the root
        outward = inward.T.copy()

        def normalise(a: np.ndarray) -> np.ndarray:
            col = a.sum(0)
            return a / np.where(col > 0, col, 1.0)[None, :]

        return np.stack([identity, normalise(inward), normalise(outward)])


# Both Kinects number the limbs alike: joints 4-19 are the arms, then the legs, left before right.
_KINECT_LIMBS = (
    "shoulder_left", "elbow_left", "wrist_left", "hand_left",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right",
    "hip_left", "knee_left", "ankle_left", "foot_left",
    "hip_right", "knee_right", "ankle_right", "foot_right",
)
_KINECT_LIMB_PAIRS = ((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19))

# Kinect v2 (NTU RGB+D 60/120, PKU-MMD). Names and bones from the NTU release (1-based there).
NTU25 = Layout(
    name="ntu25",
    description="Kinect v2, 25 joints (NTU RGB+D, PKU-MMD)",
    joint_names=("spine_base", "spine_mid", "neck", "head", *_KINECT_LIMBS,
                 "spine_shoulder", "hand_tip_left", "thumb_left", "hand_tip_right", "thumb_right"),
    # From the 1-based (child, parent) list of docs/protocols.md, minus one: (21, 21) is the root.
    parents=(1, 20, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 20, 22, 7, 24, 11),
    left_right=_KINECT_LIMB_PAIRS + ((21, 23), (22, 24)),
    center=20, spine=1, hip=0, shoulders=(8, 4),
)

# Kinect v1 MS-SDK order (N-UCLA, MSR Action3D, UTKinect). Bones as CTR-GCN's graph/ucla.py.
KINECT20 = Layout(
    name="kinect20",
    description="Kinect v1 MS-SDK order, 20 joints (N-UCLA, MSR Action3D, UTKinect)",
    joint_names=("hip_center", "spine", "shoulder_center", "head", *_KINECT_LIMBS),
    parents=(1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18),
    left_right=_KINECT_LIMB_PAIRS,
    center=2, spine=1, hip=0, shoulders=(8, 4),
)

# COCO-17 keypoints (HRNet, RTMPose, MMPose; PYSKL's 2D pickles). COCO has no spine joint: the tree is
# PYSKL's coco graph (rooted at the nose), the pipelines' centre is the nose and their hip the left hip.
COCO17 = Layout(
    name="coco17",
    description="COCO-17 keypoints (HRNet / RTMPose / MMPose, PYSKL 2D pickles)",
    joint_names=(
        "nose", "eye_left", "eye_right", "ear_left", "ear_right",
        "shoulder_left", "shoulder_right", "elbow_left", "elbow_right", "wrist_left", "wrist_right",
        "hip_left", "hip_right", "knee_left", "knee_right", "ankle_left", "ankle_right",
    ),
    parents=(0, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    left_right=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    center=0, spine=0, hip=11, shoulders=(6, 5),
)

# OpenPose COCO-18 order (ST-GCN's Kinetics-skeleton): COCO plus a neck, which is the graph centre.
OPENPOSE18 = Layout(
    name="openpose18",
    description="OpenPose COCO-18 order (ST-GCN Kinetics-skeleton)",
    joint_names=(
        "nose", "neck", "shoulder_right", "elbow_right", "wrist_right", "shoulder_left", "elbow_left", "wrist_left",
        "hip_right", "knee_right", "ankle_right", "hip_left", "knee_left", "ankle_left",
        "eye_right", "eye_left", "ear_right", "ear_left",
    ),
    # ST-GCN's openpose graph: (4,3),(3,2),(7,6),(6,5),(13,12),(12,11),(10,9),(9,8),(11,5),(8,2),(5,1),
    # (2,1),(0,1),(15,0),(14,0),(17,15),(16,14), centre 1.
    parents=(1, 1, 1, 2, 3, 1, 5, 6, 2, 8, 9, 5, 11, 12, 0, 0, 14, 15),
    left_right=((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)),
    center=1, spine=1, hip=11, shoulders=(2, 5),
)

# Human3.6M 17 joints as VideoPose3D / MotionBERT order them (pelvis first).
H36M17 = Layout(
    name="h36m17",
    description="Human3.6M 17 joints (VideoPose3D / MotionBERT order)",
    joint_names=(
        "pelvis", "hip_right", "knee_right", "foot_right", "hip_left", "knee_left", "foot_left",
        "spine", "thorax", "nose", "head",
        "shoulder_left", "elbow_left", "wrist_left", "shoulder_right", "elbow_right", "wrist_right",
    ),
    parents=(0, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left_right=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
    center=0, spine=7, hip=0, shoulders=(14, 11),
)

BUILTIN_LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU25, KINECT20, COCO17, OPENPOSE18, H36M17)}
# The built-in layouts and those registered since (from a layout file, or a store that records one).
LAYOUTS: dict[str, Layout] = dict(BUILTIN_LAYOUTS)


# Joint selections that turn one layout into another: the target's joints as indices of the source's.
# Kinect v2 -> Kinect v1 (NTU RGB+D or PKU-MMD as pre-training data for N-UCLA, MSR or UTKinect): NTU's
# spine_base, spine_mid and spine_shoulder play hip_center, spine and shoulder_center; the head and the
# 16 limb joints are the same sensor joints; the hand tips and thumbs have no Kinect v1 joint and go.
CONVERSIONS: dict[tuple[str, str], tuple[int, ...]] = {
    ("ntu25", "kinect20"): (0, 1, 20, 3, *range(4, 20)),
}


def conversion(source: str | Layout, target: str | Layout) -> tuple[int, ...] | None:
    """The joints of ``target`` as indices into ``source`` (``bodies[..., idx, :]``), ``None`` when no
    conversion between the two is known."""
    return CONVERSIONS.get((getattr(source, "name", source), getattr(target, "name", target)))


def is_layout_file(name: Any) -> bool:
    """``True`` when ``name`` names a layout file (``.yaml``, ``.yml`` or ``.json``) rather than a layout."""
    return isinstance(name, (str, Path)) and Path(name).suffix.lower() in (".yaml", ".yml", ".json")


def get_layout(name: str | Layout | Path) -> Layout:
    """Return the layout registered under ``name``; a :class:`Layout` passes through, and a path to a
    layout file (``.yaml``/``.json``) is loaded and registered.

    Raises:
        KeyError: an unknown layout name (the message lists the known ones).
        SkeletonFormatError: a layout file that is missing or not a valid layout (one line).
    """
    if isinstance(name, Layout):
        return name
    if is_layout_file(name):
        layout = load_layout_file(name)
        try:
            return register_layout(layout)
        except ValueError as e:
            raise SkeletonFormatError(name, str(e)) from None
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))}, or a layout file (.yaml/.json)") from None


def register_layout(layout: Layout) -> Layout:
    """Make ``layout`` known by name in this process (idempotent for an identical layout).

    Raises:
        ValueError: another layout is already known under that name (built-in names are reserved).
    """
    known = LAYOUTS.get(layout.name)
    if known is not None and known != layout:
        what = "a built-in layout" if layout.name in BUILTIN_LAYOUTS else "another layout already loaded"
        raise ValueError(f"layout name {layout.name!r} is {what} with other joints or bones; give yours another name")
    LAYOUTS.setdefault(layout.name, layout)
    return LAYOUTS[layout.name]


_LAYOUT_KEYS = {"name", "joints", "parents", "left_right", "center", "spine", "hip", "shoulders", "description"}
_Fail = Callable[[str], SkeletonFormatError]
_Joint = Callable[[Any, str], int]


def layout_from_dict(data: Any, where: str | Path = "layout") -> Layout:
    """A :class:`Layout` from its plain form (a layout file's content or :meth:`Layout.to_dict`).

    Joints may be referred to by index or by name everywhere; a root's parent is itself or ``null``.
    Required: ``name``, ``joints``, ``parents``, ``center``; ``spine`` and ``hip`` default to the centre,
    ``shoulders`` to ``[center, center]``, ``left_right`` to none.

    Raises:
        SkeletonFormatError: anything that is not a valid layout, as one line naming ``where``.
    """
    def fail(problem: str) -> SkeletonFormatError:
        return SkeletonFormatError(where, problem)

    _check_layout_keys(data, fail)
    name, joints = _layout_name_and_joints(data, fail)
    joint = _joint_reader(joints, fail)
    parent_idx = _parent_indices(data["parents"], joints, joint, fail)
    center = joint(data["center"], "center")
    pairs = data.get("left_right") or []
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise fail("left_right must be a list of [left, right] joint pairs")
    shoulders = data.get("shoulders", [center, center])
    if not isinstance(shoulders, list) or len(shoulders) != 2:
        raise fail("shoulders must be [right, left]")
    used = [j for p in pairs for j in p]
    if len({joint(j, 'left_right') for j in used}) != len(used):
        raise fail("left_right: a joint appears in two pairs")
    _check_tree(joints, parent_idx, center, fail)
    try:
        return Layout(
            name=name, joint_names=tuple(joints), parents=tuple(parent_idx),
            left_right=tuple((joint(a, "left_right"), joint(b, "left_right")) for a, b in pairs),
            center=center, spine=joint(data.get("spine", center), "spine"), hip=joint(data.get("hip", center), "hip"),
            shoulders=(joint(shoulders[0], "shoulders"), joint(shoulders[1], "shoulders")),
            description=str(data.get("description") or ""),
        )
    except ValueError as e:
        raise fail(str(e)) from None


def _check_layout_keys(data: Any, fail: _Fail) -> None:
    """A mapping with the required keys and no others."""
    if not isinstance(data, dict):
        raise fail(f"a layout is a mapping with name, joints, parents, center; got a {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - _LAYOUT_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}")
    for key in ("name", "joints", "parents", "center"):
        if key not in data:
            raise fail(f"no {key!r}")


def _layout_name_and_joints(data: dict, fail: _Fail) -> tuple[str, list[str]]:
    """The layout's one-word name and its distinct joint names."""
    name = data["name"]
    if not isinstance(name, str) or not name.strip() or any(ch.isspace() or ch in "/\\:" for ch in name):
        raise fail(f"name {name!r} must be one word (no spaces, slashes or colons)")
    joints = data["joints"]
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) and j for j in joints):
        raise fail("joints must be a non-empty list of joint names")
    if len(set(joints)) != len(joints):
        raise fail(f"joint names repeat: {sorted({j for j in joints if joints.count(j) > 1})[:3]}")
    return name, joints


def _joint_reader(joints: list[str], fail: _Fail) -> _Joint:
    """``joint(value, what)``: the index of a joint given by index or by name (``what`` names the field)."""
    index = {j: k for k, j in enumerate(joints)}

    def joint(value: Any, what: str) -> int:
        if isinstance(value, bool):
            raise fail(f"{what}: {value!r} is not a joint")
        if isinstance(value, int):
            if not 0 <= value < len(joints):
                raise fail(f"{what}: joint index {value} outside 0..{len(joints) - 1}")
            return value
        if isinstance(value, str) and value in index:
            return index[value]
        raise fail(f"{what}: {value!r} is not one of the joints")

    return joint


def _parent_indices(parents: Any, joints: list[str], joint: _Joint, fail: _Fail) -> list[int]:
    """One parent index per joint, from a list in joint order or a ``{joint: parent}`` mapping (``null``:
    the joint is a root)."""
    if isinstance(parents, dict):
        missing = [j for j in joints if j not in parents]
        if missing:
            raise fail(f"parents: no parent for {missing[:3]}")
        parents = [parents[j] for j in joints]
    if not isinstance(parents, list) or len(parents) != len(joints):
        raise fail(f"parents must list one parent per joint ({len(joints)})")
    return [k if p is None else joint(p, f"parent of {joints[k]!r}") for k, p in enumerate(parents)]


def _check_tree(joints: list[str], parent_idx: list[int], center: int, fail: _Fail) -> None:
    """Cycles and extra roots, named by joint (Layout's own check says the same by index)."""
    for k in range(len(joints)):
        seen, j = [], k
        while parent_idx[j] != j:
            if j in seen:
                loop = seen[seen.index(j):] + [j]
                raise fail(f"parents form a cycle: {' -> '.join(joints[i] for i in loop)} (a layout is a tree rooted at the center)")
            seen.append(j)
            j = parent_idx[j]
        if j != center:
            raise fail(f"joint {joints[k]!r} leads to root {joints[j]!r}, not to the center {joints[center]!r} (one root only)")


def load_layout_file(path: str | Path) -> Layout:
    """Read a layout from a small YAML or JSON file (see :func:`layout_from_dict` for its keys).

    Raises:
        SkeletonFormatError: a missing or unreadable file, or one that is not a valid layout (one line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SkeletonFormatError(path, "no such layout file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SkeletonFormatError(path, f"cannot read the layout file ({getattr(e, 'strerror', None) or e})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as e:  # json / yaml syntax errors
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SkeletonFormatError(path, f"not valid {path.suffix.lstrip('.').upper()} ({first})") from None
    return layout_from_dict(data, path)

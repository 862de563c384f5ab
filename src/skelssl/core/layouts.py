"""Skeleton layouts: the one place where joints and bones are written down.

A layout is a frozen object naming every joint, the zero-indexed parent of each joint (the root is its
own parent), the left/right joint pairs used for mirroring, and the few landmark joints that the
preprocessing pipelines need (centre, spine, hip, shoulders). Graph adjacency (ST-GCN, AGCN), the bone
input stream (Hi-TRS), flips and drawing are all derived from it; nothing else in skelssl lists bones.

Tensor convention (see :mod:`skelssl.core.conventions`): joint index ``v`` is the ``V`` axis of a
``(C, T, V, M)`` sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Layout", "NTU25", "KINECT20", "LAYOUTS", "get_layout"]


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


# Kinect v2 (NTU RGB+D 60/120, PKU-MMD). Names and bones from the NTU release (1-based there).
NTU25 = Layout(
    name="ntu25",
    joint_names=(
        "spine_base", "spine_mid", "neck", "head",
        "shoulder_left", "elbow_left", "wrist_left", "hand_left",
        "shoulder_right", "elbow_right", "wrist_right", "hand_right",
        "hip_left", "knee_left", "ankle_left", "foot_left",
        "hip_right", "knee_right", "ankle_right", "foot_right",
        "spine_shoulder", "hand_tip_left", "thumb_left", "hand_tip_right", "thumb_right",
    ),
    # From the 1-based (child, parent) list of docs/protocols.md, minus one: (21, 21) is the root.
    parents=(1, 20, 20, 2, 20, 4, 5, 6, 20, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18, 20, 22, 7, 24, 11),
    left_right=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23), (22, 24)),
    center=20,
    spine=1,
    hip=0,
    shoulders=(8, 4),
    description="Kinect v2, 25 joints (NTU RGB+D, PKU-MMD)",
)

# Kinect v1 MS-SDK order (N-UCLA, MSR Action3D, UTKinect). Bones as CTR-GCN's graph/ucla.py.
KINECT20 = Layout(
    name="kinect20",
    joint_names=(
        "hip_center", "spine", "shoulder_center", "head",
        "shoulder_left", "elbow_left", "wrist_left", "hand_left",
        "shoulder_right", "elbow_right", "wrist_right", "hand_right",
        "hip_left", "knee_left", "ankle_left", "foot_left",
        "hip_right", "knee_right", "ankle_right", "foot_right",
    ),
    parents=(1, 2, 2, 2, 2, 4, 5, 6, 2, 8, 9, 10, 0, 12, 13, 14, 0, 16, 17, 18),
    left_right=((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19)),
    center=2,
    spine=1,
    hip=0,
    shoulders=(8, 4),
    description="Kinect v1 MS-SDK order, 20 joints (N-UCLA, MSR Action3D, UTKinect)",
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (NTU25, KINECT20)}


def get_layout(name: str | Layout) -> Layout:
    """Return the layout registered under ``name`` (a :class:`Layout` passes through)."""
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(sorted(LAYOUTS))}") from None

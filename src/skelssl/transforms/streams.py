"""Input streams derived from joint coordinates: joint, bone, motion (and bone motion).

Hi-TRS trains one model per "view" (``joint``, ``motion``, ``bone``) and 2s-AGCN/PYSKL ensemble the
same streams. Bones come from the layout's parent table (the only place bones are written down), so
the bone of the root joint is zero. Motion is a backward difference ``m_t = x_t - x_{t-1}`` with
``m_0 = 0`` (Hi-TRS, docs/hitrs.md), and zero on padded frames.

All functions take ``x`` ``(N, C, T, V, M)`` and return a new tensor of the same shape; absent persons
and padded frames stay zero.

A pose estimator's confidence ``score`` is a channel, never a coordinate: with ``coords`` (the leading
channels that are coordinates) given, only those are differenced. The bone stream keeps the smaller
score of a bone's two ends (a bone is as sure as its least sure joint; the root keeps its own), the
motion stream keeps each frame's score as it is (zero on padded frames).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from skelssl.core.batch import frame_mask, full_lengths
from skelssl.core.layouts import Layout
from skelssl.transforms.spatial import num_coords
from skelssl.transforms.temporal import check_batch

__all__ = ["joint", "bone", "motion", "bone_motion", "STREAMS", "to_stream", "sample_stream"]


def joint(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """The joint stream: a copy of ``x`` ``(N, C, T, V, M)``."""
    check_batch(x, lengths)
    return x.clone()


def bone(x: torch.Tensor, layout: Layout, coords: int | None = None) -> torch.Tensor:
    """Bone vectors: each joint minus its parent (the root, its own parent, gives zero).

    Args:
        x: ``(N, C, T, V, M)`` with ``V == layout.num_joints``.
        layout: gives ``parents``.
        coords: leading channels that are coordinates (default all); the later ones (a score) are not
            differenced: each joint keeps the smaller score of itself and its parent.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, layout=layout)
    k = num_coords(x, coords)
    parents = torch.tensor(layout.parents, device=x.device)
    parent = x.index_select(3, parents)
    if k == x.shape[1]:
        return x - parent
    return torch.cat([x[:, :k] - parent[:, :k], torch.minimum(x[:, k:], parent[:, k:])], dim=1)


def motion(x: torch.Tensor, lengths: torch.Tensor | None = None, coords: int | None = None) -> torch.Tensor:
    """Backward temporal difference ``m_t = x_t - x_{t-1}``, ``m_0 = 0``, zero for ``t >= length``.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        coords: leading channels that are coordinates (default all); the later ones (a score) are
            kept as they are on real frames.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, lengths)
    k = num_coords(x, coords)
    prev = torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)  # x_{t-1}, with x_{-1} := x_0 so m_0 = 0
    # Without the mask the first padded frame would hold -x_{len-1}.
    keep = frame_mask(full_lengths(x, lengths), x.shape[2])[:, None, :, None, None]  # (N, 1, T, 1, 1)
    if k == x.shape[1]:
        return (x - prev) * keep
    return torch.cat([x[:, :k] - prev[:, :k], x[:, k:]], dim=1) * keep


def bone_motion(x: torch.Tensor, layout: Layout, lengths: torch.Tensor | None = None, coords: int | None = None) -> torch.Tensor:
    """Motion of the bone stream (PYSKL ``bm``): ``motion(bone(x))``, ``(N, C, T, V, M)``."""
    return motion(bone(x, layout, coords), lengths, coords)


STREAMS: dict[str, Callable[..., torch.Tensor]] = {
    "joint": lambda x, layout, lengths, coords=None: joint(x, lengths),
    "bone": lambda x, layout, lengths, coords=None: bone(x, layout, coords),
    "motion": lambda x, layout, lengths, coords=None: motion(x, lengths, coords),
    "bone_motion": lambda x, layout, lengths, coords=None: bone_motion(x, layout, lengths, coords),
}


def to_stream(name: str, x: torch.Tensor, layout: Layout, lengths: torch.Tensor | None = None,
              coords: int | None = None) -> torch.Tensor:
    """The named stream (``joint``, ``bone``, ``motion``, ``bone_motion``) of ``x`` ``(N, C, T, V, M)``;
    only the leading ``coords`` channels (default all) are differenced."""
    try:
        fn = STREAMS[name]
    except KeyError:
        raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}") from None
    return fn(x, layout, lengths, coords)


def sample_stream(name: str, frames: np.ndarray, layout: Layout, coords: int | None = None) -> np.ndarray:
    """The named stream of one sample's ``(T, M, V, C)`` frames, in the store's axis order (what a
    store view of that stream reads; ``data.stream``)."""
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(3, 0, 2, 1)[None]  # (1, C, T, V, M)
    return np.ascontiguousarray(to_stream(name, x, layout, coords=coords)[0].permute(1, 3, 2, 0).numpy())

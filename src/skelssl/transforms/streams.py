"""Input streams derived from joint coordinates: joint, bone, motion (and bone motion).

Hi-TRS trains one model per "view" (``joint``, ``motion``, ``bone``) and 2s-AGCN/PYSKL ensemble the
same streams. Bones come from the layout's parent table (the only place bones are written down), so
the bone of the root joint is zero. Motion is a backward difference ``m_t = x_t - x_{t-1}`` with
``m_0 = 0`` (Hi-TRS, docs/hitrs.md), and zero on padded frames.

All functions take ``x`` ``(N, C, T, V, M)`` and return a new tensor of the same shape; absent persons
and padded frames stay zero.
"""

from __future__ import annotations

from typing import Callable

import torch

from skelssl.core.layouts import Layout
from skelssl.transforms.temporal import check_batch, frame_mask, full_lengths

__all__ = ["joint", "bone", "motion", "bone_motion", "STREAMS", "to_stream"]


def joint(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """The joint stream: a copy of ``x`` ``(N, C, T, V, M)``."""
    check_batch(x, lengths)
    return x.clone()


def bone(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Bone vectors: each joint minus its parent (the root, its own parent, gives zero).

    Args:
        x: ``(N, C, T, V, M)`` with ``V == layout.num_joints``.
        layout: gives ``parents``.

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x)
    if x.shape[3] != layout.num_joints:
        raise ValueError(f"layout {layout.name} has {layout.num_joints} joints, the batch has V = {x.shape[3]}")
    parents = torch.tensor(layout.parents, device=x.device)
    return x - x.index_select(3, parents)


def motion(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Backward temporal difference ``m_t = x_t - x_{t-1}``, ``m_0 = 0``, zero for ``t >= length``.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).

    Returns:
        ``(N, C, T, V, M)``.
    """
    check_batch(x, lengths)
    prev = torch.cat([x[:, :, :1], x[:, :, :-1]], dim=2)  # x_{t-1}, with x_{-1} := x_0 so m_0 = 0
    # Without the mask the first padded frame would hold -x_{len-1}.
    keep = frame_mask(full_lengths(x, lengths), x.shape[2])[:, None, :, None, None]  # (N, 1, T, 1, 1)
    return (x - prev) * keep


def bone_motion(x: torch.Tensor, layout: Layout, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Motion of the bone stream (PYSKL ``bm``): ``motion(bone(x))``, ``(N, C, T, V, M)``."""
    return motion(bone(x, layout), lengths)


STREAMS: dict[str, Callable[..., torch.Tensor]] = {
    "joint": lambda x, layout, lengths: joint(x, lengths),
    "bone": lambda x, layout, lengths: bone(x, layout),
    "motion": lambda x, layout, lengths: motion(x, lengths),
    "bone_motion": lambda x, layout, lengths: bone_motion(x, layout, lengths),
}


def to_stream(name: str, x: torch.Tensor, layout: Layout, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """The named stream (``joint``, ``bone``, ``motion``, ``bone_motion``) of ``x`` ``(N, C, T, V, M)``."""
    try:
        fn = STREAMS[name]
    except KeyError:
        raise ValueError(f"unknown stream {name!r}; known: {', '.join(STREAMS)}") from None
    return fn(x, layout, lengths)

"""Which entries of a padded batch are real: the masks of the tensor conventions (:mod:`skelssl.core.conventions`).

A batch is ``(N, C, T, V, M)``, zero-padded along ``T`` with ``lengths`` ``(N,)`` real frames per
sample (``None``: every sample is ``T`` frames long); a person slot that is all zeros is absent.
Encoders, transforms and methods all read a batch through these.
"""

from __future__ import annotations

import torch

__all__ = ["full_lengths", "frame_mask", "person_mask"]


def full_lengths(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``lengths`` as int64 on ``x.device``, clamped to ``[0, T]``; ``None`` means all ``T`` frames."""
    n, t = x.shape[0], x.shape[2]
    if lengths is None:
        return torch.full((n,), t, dtype=torch.int64, device=x.device)
    return lengths.to(device=x.device, dtype=torch.int64).clamp(0, t)


def frame_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``(N,)`` lengths -> ``(N, T)`` bool, True on real frames ``t < lengths[n]``."""
    t = torch.arange(num_frames, device=lengths.device)
    return t[None, :] < lengths[:, None]


def person_mask(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, T, V, M)`` -> ``(N, M)`` bool, True for persons that are not all zeros (present)."""
    return x.detach().abs().amax(dim=(1, 2, 3)) > 0

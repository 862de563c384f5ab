"""Hi-TRS clip windowing, computed for a whole batch with tensor indexing.

Hi-TRS (Chen et al. 2022; official ``dataset/NTU_3D_*.py`` ``slid_window``, docs/hitrs.md) cuts a
sequence into short dilated clips:

1. ``pad = (window // 2) * dilation`` zero frames are added at the start and the end (6 for 7/7/2);
2. window ``k`` holds the padded frames ``k*stride + j*dilation``, ``j = 0..window-1`` (an index past
   the end repeats the last padded frame, the official padding branch);
3. windows are produced until one reaches the last real frame *and* the next one would overrun the
   padded sequence.

Step 3 has a closed form: with ``F = T + 2*pad`` padded frames and ``span = (window-1)*dilation``,
window ``k`` ends the list when ``k*stride + span >= F - pad - 1`` and ``(k+1)*stride + span > F - 1``;
both are monotone in ``k``, so the count is ``1 + max(ceil((F-pad-1-span)/stride),
floor((F-1-span)/stride), 0)``. For 7/7/2 this is ``ceil(T/7)`` (T=19 -> 3, 64 -> 10, 150 -> 22,
300 -> 43). With ``stride=1`` there is exactly one window centred on each real frame (the clip-order
candidates of pre-training).

The official downstream ``slid_window`` appends a window twice when it needs the padding branch; that
never happens for 7/7/2 (docs/hitrs.md) and is not reproduced.

All functions work on a batch of variable lengths at once: no Python loop runs over samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pad_size", "num_windows", "window_indices", "pad_frames", "gather_windows"]


def pad_size(window: int = 7, dilation: int = 2) -> int:
    """Zero frames added at each end: ``(window // 2) * dilation`` (6 for Hi-TRS)."""
    return (window // 2) * dilation


def _check(window: int, stride: int, dilation: int) -> None:
    if window < 1 or stride < 1 or dilation < 1:
        raise ValueError(f"window, stride and dilation must be >= 1, got {window}, {stride}, {dilation}")


def num_windows(lengths: torch.Tensor, window: int = 7, stride: int = 7, dilation: int = 2) -> torch.Tensor:
    """Number of windows of each sequence (the official loop's count, in closed form).

    Args:
        lengths: ``(N,)`` real frames per sequence.
        window: frames per window (Hi-TRS: 7).
        stride: step between window starts (7 for the clip list, 1 for the clip-order candidates).
        dilation: step between the frames of a window (2).

    Returns:
        ``(N,)`` int64, at least 1.
    """
    _check(window, stride, dilation)
    lens = lengths.to(torch.int64).clamp(min=0)
    pad = pad_size(window, dilation)
    span = (window - 1) * dilation
    total = lens + 2 * pad  # padded frames F
    reach = total - pad - 1 - span  # window k reaches the last real frame when k * stride >= reach
    k_reach = -torch.div(-reach, stride, rounding_mode="floor")  # ceil(reach / stride)
    k_over = torch.div(total - 1 - span, stride, rounding_mode="floor")  # next start overruns from here
    return torch.maximum(torch.maximum(k_reach, k_over), torch.zeros_like(lens)) + 1


def window_indices(
    lengths: torch.Tensor,
    window: int = 7,
    stride: int = 7,
    dilation: int = 2,
    num: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded-frame indices of every window of every sequence.

    Args:
        lengths: ``(N,)`` real frames per sequence.
        window, stride, dilation: as in :func:`num_windows`.
        num: number of window slots ``K`` to return (default: the batch maximum).

    Returns:
        ``index`` ``(N, K, window)`` int64 into the padded frames (:func:`pad_frames`, real frame ``t``
        at ``t + pad``), and ``valid`` ``(N, K)`` bool, True for the sequence's own windows. Slots past a
        sequence's last window hold in-range indices (so that gathering them is safe) but are invalid.
    """
    counts = num_windows(lengths, window, stride, dilation)  # (N,)
    k_max = int(counts.max()) if counts.numel() else 0
    k = k_max if num is None else int(num)
    device = counts.device
    pad = pad_size(window, dilation)
    last = (lengths.to(device, torch.int64).clamp(min=0) + 2 * pad - 1)[:, None, None]  # (N, 1, 1)
    starts = torch.arange(k, device=device)[None, :, None] * stride  # (1, K, 1)
    offsets = torch.arange(window, device=device)[None, None, :] * dilation  # (1, 1, W)
    index = torch.minimum(starts + offsets, last)  # (N, K, W): past the end repeats the last frame
    valid = torch.arange(k, device=device)[None, :] < counts[:, None]  # (N, K)
    return index, valid


def pad_frames(frames: torch.Tensor, pad: int) -> torch.Tensor:
    """Add ``pad`` zero frames at both ends of dimension 1.

    Args:
        frames: ``(B, T, ...)`` zero beyond each sequence's length.
        pad: frames added at each end.

    Returns:
        ``(B, T + 2 * pad, ...)``; real frame ``t`` moves to ``t + pad``.
    """
    if pad == 0:
        return frames
    trailing = frames.ndim - 2
    return F.pad(frames, (0, 0) * trailing + (pad, pad))


def gather_windows(frames: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather the frames of each window.

    Args:
        frames: ``(B, F, ...)`` per-frame tensors (coordinates or features).
        index: ``(B, K, W)`` frame indices (:func:`window_indices`).

    Returns:
        ``(B, K, W, ...)``.
    """
    if frames.shape[0] != index.shape[0]:
        raise ValueError(f"{frames.shape[0]} sequences but indices for {index.shape[0]}")
    rows = torch.arange(frames.shape[0], device=frames.device)[:, None, None]  # (B, 1, 1)
    return frames[rows, index.to(frames.device)]

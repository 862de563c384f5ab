"""Temporal transforms on padded batches, and the masks that say which entries of a batch are real.

All functions take a batch ``x`` of shape ``(N, C, T, V, M)`` zero-padded along ``T`` with ``lengths``
``(N,)`` real frames per sample (``None``: every sample is ``T`` frames long), never modify it, and
return new tensors on the same device. Random draws come from an explicit ``torch.Generator`` (drawn on
the generator's device, then moved to ``x``'s), so the same generator state gives the same output and
nothing touches the global RNG. Each sample gets its own draw, but the work is one batched gather: no
Python loop runs over the samples.

Padded frames of an output stay zero, and so do absent (all-zero) persons: every transform here only
moves or interpolates frames, which maps zeros to zeros.
"""

from __future__ import annotations

import torch

from skelssl.core.batch import frame_mask, full_lengths, person_mask
from skelssl.core.layouts import Layout

__all__ = [
    "check_batch",
    "valid_mask",
    "uniform",
    "crop_windows",
    "resize_windows",
    "crop_resize",
    "uniform_sample",
    "time_interpolate",
    "time_crop",
]


# ---------------------------------------------------------------------------------------------------
# Shared helpers: batch checks, the valid-entry mask and random draws (also used by spatial.py and models).
# ---------------------------------------------------------------------------------------------------


def check_batch(x: torch.Tensor, lengths: torch.Tensor | None = None, layout: Layout | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, C, T, V, M)``, ``lengths`` is ``(N,)`` and, with a
    ``layout``, ``V`` is its number of joints."""
    if x.ndim != 5:
        raise ValueError(f"expected a batch of shape (N, C, T, V, M), got shape {tuple(x.shape)}")
    if lengths is not None and tuple(lengths.shape) != (x.shape[0],):
        raise ValueError(f"lengths must have shape ({x.shape[0]},), got {tuple(lengths.shape)}")
    if layout is not None and x.shape[3] != layout.num_joints:
        raise ValueError(f"layout {layout.name} has {layout.num_joints} joints, the batch has V = {x.shape[3]}")


def valid_mask(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, 1, T, 1, M)`` bool: real frame of a present person. Additive noise is applied only there."""
    frames = frame_mask(full_lengths(x, lengths), x.shape[2])  # (N, T)
    persons = person_mask(x)  # (N, M)
    return frames[:, None, :, None, None] & persons[:, None, None, None, :]


def uniform(
    shape: tuple[int, ...],
    generator: torch.Generator,
    device: torch.device | str,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """``U(low, high)`` float32 draws from ``generator`` (on its own device), returned on ``device``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"an explicit torch.Generator is required, got {type(generator).__name__}")
    u = torch.rand(shape, generator=generator, device=generator.device)
    return (low + (high - low) * u).to(device)


# ---------------------------------------------------------------------------------------------------
# Crop + resize (ISC, MAMP / CTR-GCN `valid_crop_resize`).
# ---------------------------------------------------------------------------------------------------


def crop_windows(
    lengths: torch.Tensor,
    *,
    ratio: tuple[float, float] | None = None,
    centre: float | None = None,
    min_frames: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop window ``[start, start + crop_len)`` of each sample, as ``valid_crop_resize`` picks it.

    Random crop (training, ``ratio=(lo, hi)``): ``s ~ U(lo, hi)``,
    ``crop_len = clamp(floor(len * s), min_frames, len)``, ``start ~ U{0, ..., len - crop_len}``.
    Centre crop (test, ``centre=p``): ``bias = int((1 - p) * len / 2)`` frames dropped at each end.

    Args:
        lengths: ``(N,)`` real frames per sample (values below 1 are treated as 1).
        ratio: ``(lo, hi)`` range of the kept fraction (ISC pre-training ``(0.1, 1.0)``, MAMP ``(0.5, 1.0)``).
        centre: kept fraction of a deterministic centre crop (MAMP test ``0.95``); excludes ``ratio``.
        min_frames: lower bound of a random crop's length (64 in the ISC, CTR-GCN and MAMP code).
        generator: required for a random crop.

    Returns:
        ``start`` and ``crop_len``, both ``(N,)`` int64 on ``lengths.device``.
    """
    if (ratio is None) == (centre is None):
        raise ValueError("give exactly one of ratio=(lo, hi) (random crop) or centre=p (centre crop)")
    lens = lengths.to(torch.int64).clamp(min=1)
    if centre is not None:
        if not 0.0 < centre <= 1.0:
            raise ValueError(f"centre must be in (0, 1], got {centre}")
        # Official: `bias = int((1 - p) * valid_size / 2)`, i.e. truncation of a non-negative float.
        bias = torch.floor((1.0 - centre) * lens.double() / 2.0).to(torch.int64)
        return bias, (lens - 2 * bias).clamp(min=1)
    lo, hi = ratio
    if not 0.0 < lo <= hi:
        raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {ratio}")
    if generator is None:
        raise TypeError("a random crop (ratio=...) needs an explicit torch.Generator")
    n = lens.shape[0]
    s = uniform((n,), generator, lens.device, lo, hi).double()  # (N,)
    crop_len = torch.floor(lens.double() * s).to(torch.int64)
    crop_len = torch.minimum(crop_len.clamp(min=min_frames), lens)
    u = uniform((n,), generator, lens.device).double()  # (N,)
    slack = lens - crop_len  # start is uniform over the slack + 1 positions
    start = torch.minimum(torch.floor(u * (slack + 1).double()).to(torch.int64), slack)
    return start, crop_len


def resize_windows(
    x: torch.Tensor, start: torch.Tensor, crop_len: torch.Tensor, out_frames: int
) -> torch.Tensor:
    """Linearly resample each sample's window ``[start, start + crop_len)`` to ``out_frames`` frames.

    Same arithmetic as ``F.interpolate(..., mode="linear", align_corners=False)`` on the crop: output
    frame ``i`` reads source position ``max((i + 0.5) * crop_len / out_frames - 0.5, 0)``, interpolating
    between its two neighbouring frames (the last frame repeats past the end).

    Args:
        x: ``(N, C, T, V, M)``.
        start, crop_len: ``(N,)`` int64 windows inside each sample's real frames.
        out_frames: output length.

    Returns:
        ``(N, C, out_frames, V, M)``.
    """
    n, c, t, v, m = x.shape
    start = start.to(x.device, torch.int64)
    crop_len = crop_len.to(x.device, torch.int64).clamp(min=1)
    i = torch.arange(out_frames, device=x.device, dtype=torch.float64)  # (T',)
    scale = crop_len.double()[:, None] / out_frames  # (N, 1)
    src = ((i[None, :] + 0.5) * scale - 0.5).clamp(min=0.0)  # (N, T')
    i0 = torch.minimum(src.floor().to(torch.int64), crop_len[:, None] - 1)  # (N, T')
    i1 = torch.minimum(i0 + 1, crop_len[:, None] - 1)
    w = (src - i0.double()).clamp(0.0, 1.0).to(x.dtype)  # (N, T')
    idx0 = (start[:, None] + i0).clamp(0, t - 1)
    idx1 = (start[:, None] + i1).clamp(0, t - 1)
    shape = (n, c, out_frames, v, m)
    x0 = x.gather(2, idx0[:, None, :, None, None].expand(shape))  # (N, C, T', V, M)
    x1 = x.gather(2, idx1[:, None, :, None, None].expand(shape))
    return torch.lerp(x0, x1, w[:, None, :, None, None])


def crop_resize(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    out_frames: int = 64,
    *,
    ratio: tuple[float, float] | None = None,
    centre: float | None = None,
    min_frames: int = 64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Temporal crop of the real frames, then linear resize to a fixed length.

    ISC (Thoker et al. 2021, ``feeder/augmentations.py``) and MAMP (Mao et al. 2023, CTR-GCN's
    ``valid_crop_resize``): crop a random window of ``floor(len * s)`` frames (at least ``min_frames``,
    at most ``len``), ``s ~ U(ratio)``, and resize it to ``out_frames`` by linear interpolation along
    time with ``align_corners=False``; at test time, a deterministic centre crop keeping ``centre`` of
    the frames. Sequences shorter than the crop floor are used whole (and so are upsampled).

    Args:
        x: ``(N, C, T, V, M)``, zero-padded along ``T``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        out_frames: output length (ISC 64, MAMP 120).
        ratio / centre / min_frames / generator: see :func:`crop_windows`.

    Returns:
        ``(N, C, out_frames, V, M)``; every output frame is real (the new lengths are all ``out_frames``).
    """
    check_batch(x, lengths)
    lens = full_lengths(x, lengths)
    start, crop_len = crop_windows(lens, ratio=ratio, centre=centre, min_frames=min_frames, generator=generator)
    return resize_windows(x, start, crop_len, out_frames)


def uniform_sample(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    out_frames: int = 64,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Segment-based sampling of ``out_frames`` frames from the real frames (TSN; PYSKL ``UniformSample``).

    The real frames are split into ``out_frames`` equal segments; one frame is read from each: a
    uniformly random one when a ``generator`` is given (training), the one at the segment centre
    otherwise (test). Sequences shorter than ``out_frames`` repeat frames (nearest neighbour).

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        out_frames: output length.
        generator: random offsets within segments if given; centres if ``None``.

    Returns:
        ``(N, C, out_frames, V, M)``; every output frame is real.
    """
    check_batch(x, lengths)
    n, c, t, v, m = x.shape
    lens = full_lengths(x, lengths).clamp(min=1)
    i = torch.arange(out_frames, device=x.device, dtype=torch.float64)
    if generator is None:
        offset = torch.full((n, out_frames), 0.5, dtype=torch.float64, device=x.device)
    else:
        offset = uniform((n, out_frames), generator, x.device).double()  # (N, T')
    pos = (i[None, :] + offset) * lens.double()[:, None] / out_frames  # (N, T') in [0, len)
    idx = torch.minimum(pos.floor().to(torch.int64), lens[:, None] - 1)
    return x.gather(2, idx[:, None, :, None, None].expand(n, c, out_frames, v, m))


# Fixed-length resamplers: every output frame is real, so the new lengths are all ``out_frames``
# (see skelssl.transforms.call_transform), even when ``out_frames`` happens to equal the padded ``T``.
crop_resize.fixed_length = True  # type: ignore[attr-defined]
uniform_sample.fixed_length = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------
# Hi-TRS temporal augmentations (Chen et al. 2022, dataset/NTU_3D_pretrain.py `data_aug`).
# ---------------------------------------------------------------------------------------------------


def time_interpolate(
    x: torch.Tensor, lengths: torch.Tensor | None = None, *, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hi-TRS ``time_interpolate``: shift every frame a random fraction towards the next one.

    ``r ~ U(0, 1)`` per sample; ``x'_t = x_t + r (x_{t+1} - x_t)`` for ``t < len - 1``; the last real
    frame is kept; padded frames stay zero.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        generator: source of ``r``.

    Returns:
        ``(x', lengths)``: ``(N, C, T, V, M)`` and the unchanged ``(N,)`` lengths.
    """
    check_batch(x, lengths)
    n, t = x.shape[0], x.shape[2]
    lens = full_lengths(x, lengths)
    r = uniform((n,), generator, x.device).to(x.dtype)  # (N,)
    nxt = torch.cat([x[:, :, 1:], torch.zeros_like(x[:, :, :1])], dim=2)  # x_{t+1}, (N, C, T, V, M)
    move = frame_mask(lens - 1, t)  # (N, T): t < len - 1
    step = (nxt - x) * (r[:, None, None, None, None] * move[:, None, :, None, None])
    return x + step, lens


def time_crop(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    max_ratio: float = 0.2,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hi-TRS ``time_crop``: remove a random number of frames, split randomly between start and end.

    ``rho ~ U(0, max_ratio)``; ``round(rho * len)`` frames are removed (at most ``len - 1``), of which
    ``h ~ U{0, ..., removed}`` at the start and the rest at the end. The kept frames move to the
    front; the freed frames at the end become padding (the output keeps ``T``).

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        max_ratio: upper bound of ``rho`` (Hi-TRS: 0.2).
        generator: source of ``rho`` and ``h``.

    Returns:
        ``(x', new_lengths)``: ``(N, C, T, V, M)`` zero beyond ``new_lengths`` ``(N,)``.
    """
    check_batch(x, lengths)
    n, c, t, v, m = x.shape
    lens = full_lengths(x, lengths)
    rho = uniform((n,), generator, x.device, 0.0, max_ratio).double()  # (N,)
    removed = torch.round(rho * lens.double()).to(torch.int64)
    removed = torch.minimum(removed, (lens - 1).clamp(min=0))
    u = uniform((n,), generator, x.device).double()
    head = torch.minimum(torch.floor(u * (removed + 1).double()).to(torch.int64), removed)  # (N,)
    new_lens = lens - removed
    src = (torch.arange(t, device=x.device)[None, :] + head[:, None]).clamp(max=t - 1)  # (N, T)
    out = x.gather(2, src[:, None, :, None, None].expand(n, c, t, v, m))
    keep = frame_mask(new_lens, t)[:, None, :, None, None]  # (N, 1, T, 1, 1)
    return out * keep, new_lens

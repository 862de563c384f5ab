"""Batched sampling for the Hi-TRS pretext tasks: person split, augmentation, order swaps (joint masking is
:func:`skelssl.methods.masking.mask_joints`).

The official code draws all of this per sample in its data loader with Python's global ``random``
(``dataset/NTU_3D_pretrain.py``). Here every function works on a whole padded batch on the training
device and draws from an explicit ``torch.Generator`` (on the generator's device, then moved), so a
seeded step is reproducible and the same on CPU and GPU. docs/hitrs.md is the reference.
"""

from __future__ import annotations

import torch

from skelssl import transforms as T
from skelssl.core.batch import frame_mask, person_mask
from skelssl.models.windowing import pad_frames, pad_size, window_indices
from skelssl.transforms.temporal import uniform

__all__ = [
    "split_persons",
    "hitrs_augment",
    "swap_pairs",
    "apply_swap",
    "sample_order_clips",
]


def split_persons(
    x: torch.Tensor, lengths: torch.Tensor, min_frames: int = 19
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every present person of every sample as its own single-person sequence.

    Hi-TRS pre-trains on single persons (official ``split_to_single_person.py``): each body becomes a
    sequence with the *video's* length, and sequences of at most ``2 * stride / 0.8 + 1 = 18.5`` frames
    are dropped so that at least 3 windows remain after a 20 % crop (docs/hitrs.md).

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames.
        min_frames: shortest sequence kept (19).

    Returns:
        ``x`` ``(B, C, T, V, 1)``, ``lengths`` ``(B,)`` and ``source`` ``(B,)`` (the sample each sequence
        comes from), for the ``B`` persons that are present in a sample of at least ``min_frames`` frames.
    """
    n, c, t, v, m = x.shape
    lens = lengths.to(x.device, torch.int64)
    keep = person_mask(x) & (lens >= min_frames)[:, None]  # (N, M)
    persons = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)  # (N*M, C, T, V)
    flat = keep.reshape(n * m)
    source = torch.arange(n, device=x.device).repeat_interleave(m)[flat]
    return persons[flat][..., None], lens.repeat_interleave(m)[flat], source


def hitrs_augment(
    x: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    p: float = 0.5,
    *,
    scale: tuple[float, float] = (0.8, 1.2),
    noise_joints: int = 5,
    noise: float = 0.2,
    shear: float = 0.5,
    crop: float = 0.2,
    coords: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hi-TRS ``data_aug`` for a batch: with probability ``p`` per sample, one of {scale, 5-joint
    offset noise, shear}, then one of {time interpolation, time crop} (docs/hitrs.md).

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames.
        generator: source of every draw.
        p: probability that a sample is augmented (0.5).
        scale, noise_joints, noise, shear, crop: the ops' ranges (Hi-TRS values by default).
        coords: leading channels that are coordinates; the spatial ops leave later ones (a score) as
            they are. Default: all.

    Returns:
        ``(x', lengths')``: ``(N, C, T, V, M)`` and ``(N,)`` (a crop shortens a sample).
    """
    chosen = uniform((x.shape[0],), generator, x.device) < p  # (N,)
    spatial = [
        (T.scale, {"low": scale[0], "high": scale[1], "coords": coords}),
        (T.joint_offset_noise, {"num_joints": noise_joints, "magnitude": noise, "coords": coords}),
        (T.shear, {"magnitude": shear, "coords": coords}),
    ]
    temporal = [(T.time_interpolate, {}), (T.time_crop, {"max_ratio": crop})]
    y, y_lens = T.random_choice(x, lengths, choices=spatial, generator=generator)
    y, y_lens = T.random_choice(y, y_lens, choices=temporal, generator=generator)
    out = torch.where(chosen[:, None, None, None, None], y, x)
    return out, torch.where(chosen, y_lens, lengths.to(y_lens.device, y_lens.dtype))


def swap_pairs(
    counts: torch.Tensor, generator: torch.Generator, min_gap: int = 2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two positions ``i < j`` of a list of ``counts[b]`` items to swap, with ``j - i >= min_gap``.

    The pair is uniform over all such pairs (what the official rejection loop draws). A list of 2..
    ``min_gap`` items, which has no such pair, swaps its first two items (the official rule for 2 clips);
    a list of fewer than 2 items cannot be permuted and is flagged invalid.

    Args:
        counts: ``(B,)`` list lengths.
        generator: source of the draw.
        min_gap: smallest ``j - i`` (2).

    Returns:
        ``i``, ``j`` ``(B,)`` int64 and ``valid`` ``(B,)`` bool.
    """
    device = counts.device
    n = counts.to(torch.int64)
    width = max(int(n.max()) if n.numel() else 1, 1)
    firsts = torch.arange(width, device=device)[None, :]  # (1, K)
    per_first = (n[:, None] - min_gap - firsts).clamp(min=0)  # (B, K): choices of j for each i
    cum = per_first.cumsum(dim=1)
    total = cum[:, -1]  # (B,) number of pairs
    u = (uniform((n.shape[0],), generator, device) * total).long()
    u = torch.minimum(u, (total - 1).clamp(min=0))
    i = (cum <= u[:, None]).sum(dim=1).clamp(max=width - 1)  # first i whose block holds u
    before = (cum - per_first).gather(1, i[:, None])[:, 0]
    j = i + min_gap + (u - before)
    fallback = total == 0  # 2..min_gap items: swap the first two
    i = torch.where(fallback, torch.zeros_like(i), i)
    j = torch.where(fallback, torch.ones_like(j), j)
    valid = n >= 2
    j = torch.where(valid, j, torch.zeros_like(j))
    return i, j, valid


def apply_swap(items: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Swap ``items[b, i[b]]`` and ``items[b, j[b]]`` along dimension 1 (a new tensor).

    Args:
        items: ``(B, K, ...)``.
        i, j: ``(B,)`` positions.

    Returns:
        ``(B, K, ...)``.
    """
    b, k = items.shape[:2]
    if k == 0:  # nothing to permute (every list is empty)
        return items.clone()
    order = torch.arange(k, device=items.device).expand(b, k).clone()  # (B, K)
    rows = torch.arange(b, device=items.device)
    order[rows, i], order[rows, j] = j, i
    index = order.view(b, k, *([1] * (items.ndim - 2))).expand_as(items)
    return items.gather(1, index)


def sample_order_clips(
    seq: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    window: int = 7,
    dilation: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip of the clip-order task, one per sequence (official ``c_motion`` sampling).

    Per frame, ``f_t = sum |X_t - X_{t-1}|`` (``f_0 = 0``). Every stride-1 window centred on a real
    frame is a candidate, scored by the mean of ``f`` over its real frames other than the first. One
    candidate with a positive score is drawn uniformly (the official comment says "large movement", but
    the score only gates; docs/hitrs.md). A sequence without one is flagged invalid.

    Args:
        seq: ``(B, T, V, C)`` sequences in the input stream, before masking.
        lengths: ``(B,)`` real frames.
        generator: source of the draw.
        window, dilation: the clip shape (7, 2).

    Returns:
        ``index`` ``(B, window)`` frame indices into the padded sequence (:func:`pad_frames`) and
        ``valid`` ``(B,)`` bool.
    """
    b, t = seq.shape[:2]
    device = seq.device
    lens = lengths.to(device, torch.int64)
    pad = pad_size(window, dilation)
    flow = (seq[:, 1:] - seq[:, :-1]).abs().sum(dim=(2, 3))  # (B, T-1): frame t+1 against t
    real = frame_mask(lens, t)  # (B, T)
    flow = torch.cat([flow.new_zeros(b, 1), flow * real[:, 1:].to(flow.dtype)], dim=1)  # (B, T), f_0 = 0
    counted = real.clone()
    counted[:, 0] = False  # the first frame has no flow and is not counted (official valid_of_mask)
    flow_pad = pad_frames(flow.float(), pad)  # (B, T + 2 pad)
    counted_pad = pad_frames(counted.float(), pad)
    index, candidate = window_indices(lens, window, 1, dilation, num=max(t, 1))  # (B, T, W), (B, T)
    rows = torch.arange(b, device=device)[:, None, None]
    total = flow_pad[rows, index].sum(dim=2)  # (B, T)
    count = counted_pad[rows, index].sum(dim=2)
    candidate = candidate & (count > 0) & (total > 0)
    # Uniform choice among candidates: the largest of i.i.d. uniform keys.
    keys = torch.where(candidate, uniform((b, index.shape[1]), generator, device), torch.full_like(total, -1.0))
    chosen = keys.argmax(dim=1)  # (B,)
    return index[torch.arange(b, device=device), chosen], candidate.any(dim=1)

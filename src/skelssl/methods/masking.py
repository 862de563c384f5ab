"""Masking for every method, as pure batched tensor functions with an explicit generator.

Three schemes, one per method that masks; each draws on the generator's device (then moves), so a
seeded step is reproducible and the same on CPU and GPU:

- **Hi-TRS** (:func:`mask_joints`): BERT-style masking of single (frame, joint) tokens (official
  ``random_mask``; docs/hitrs.md).
- **Motion-Transformer** (:func:`draw_frame_masks` -> :class:`FrameMask`, :func:`corrupt_frames`):
  BERT-style choice of whole frames and their 80/10/10 corruption (docs/motion_transformer.md).
- **MAMP / MAE** (:func:`draw_mask` -> :class:`TokenMask`): motion-aware Gumbel-top-k or uniform
  masking of ``4``-frame joint tokens; the encoder sees only the visible ones (docs/mamp.md §8.5).

MAMP token layout: ``L = T/p * V`` tokens per person sequence, time-major (token ``t*V + v``); a
token's numbers are ordered ``(frame, coordinate)``, ``[f0x, f0y, f0z, f1x, ...]`` (the official
``patchify``). The masking motion of :func:`token_motion` is *not* MAMP's regression target (pitfall
2 of §8.11): it is the mean absolute displacement between the same frame slot of two **adjacent
4-frame tokens** of a joint (a stride-4 difference); the target is the per-frame difference
(:func:`skelssl.methods.mamp.motion_target`). Masks are 1 (True) on **masked** tokens.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from skelssl.core.batch import frame_mask
from skelssl.transforms.temporal import uniform

__all__ = [
    "mask_joints",
    "FrameMask",
    "draw_frame_masks",
    "corrupt_frames",
    "ZERO",
    "RANDOM",
    "KEEP",
    "TokenMask",
    "keep_count",
    "patchify",
    "token_motion",
    "motion_aware_masking",
    "uniform_masking",
    "draw_mask",
]


# -- Hi-TRS: single joints -------------------------------------------------------------------------


def mask_joints(
    seq: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    prob: float = 0.15,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    token: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style masking of joints (official ``random_mask``).

    Each (frame, joint) of a real frame is selected with probability ``prob``. A selected joint is
    replaced by the mask token ``[token] * C`` (80 %), by the coordinates of a random *other* joint of a
    random *other* frame of the same sequence (10 %), or kept (10 %).

    Args:
        seq: ``(B, T, V, C)`` zero-padded sequences.
        lengths: ``(B,)`` real frames.
        generator: source of every draw.
        prob: selection probability (0.15).
        split: shares of (mask token, random joint, unchanged) among selected joints.
        token: the mask token's value in every coordinate (1: the official ``np.ones(3)``).

    Returns:
        ``masked`` ``(B, T, V, C)`` and ``selected`` ``(B, T, V)`` bool (the joints the loss is taken on).
    """
    b, t, v, c = seq.shape
    device = seq.device
    lens = lengths.to(device, torch.int64)
    u_select, u_kind, u_frame, u_joint = uniform((4, b, t, v), generator, device).unbind(0)  # (B, T, V) each
    selected = (u_select < prob) & frame_mask(lens, t)[:, :, None]
    to_token = selected & (u_kind < split[0])
    to_other = selected & (u_kind >= split[0]) & (u_kind < split[0] + split[1])
    # Another frame and another joint, each uniform over the others: shift by 1 + U{0..n-2}, modulo n.
    frames = torch.arange(t, device=device)[None, :, None]  # (1, T, 1)
    joints = torch.arange(v, device=device)[None, None, :]  # (1, 1, V)
    span = (lens - 1).clamp(min=0)[:, None, None]  # (B, 1, 1)
    src_frame = (frames + 1 + (u_frame * span).long().clamp(max=(span - 1).clamp(min=0))) % lens.clamp(min=1)[:, None, None]
    src_joint = (joints + 1 + (u_joint * (v - 1)).long().clamp(max=max(v - 2, 0))) % v
    rows = torch.arange(b, device=device)[:, None, None]
    other = seq[rows, src_frame, src_joint]  # (B, T, V, C)
    masked = torch.where(to_token[..., None], torch.full_like(seq, token), seq)
    masked = torch.where(to_other[..., None], other, masked)
    return masked, selected


# -- Motion-Transformer: whole frames --------------------------------------------------------------


ZERO, RANDOM, KEEP = 0, 1, 2  # what happens to a chosen frame in the input


class FrameMask(NamedTuple):
    """The chosen frames of a batch (``K`` slots per sample, the first ``k_n`` of them used).

    Attributes:
        positions: ``(N, K)`` int64 distinct token indices.
        valid: ``(N, K)`` bool, True on the slots in use.
        action: ``(N, K)`` int64, ``ZERO`` / ``RANDOM`` / ``KEEP`` (the input corruption of each slot).
        source: ``(N, K)`` int64, the real frame copied in for ``RANDOM`` slots.
    """

    positions: torch.Tensor
    valid: torch.Tensor
    action: torch.Tensor
    source: torch.Tensor


def draw_frame_masks(
    lengths: torch.Tensor,
    num_tokens: int,
    *,
    ratio: float = 0.15,
    probs: Sequence[float] = (0.8, 0.1, 0.1),
    generator: torch.Generator,
    exclude_last: bool = False,
) -> FrameMask:
    """Choose ``max(1, floor(ratio * len))`` distinct real frames per sample, and their corruption.

    Batched: a uniform score per token, ineligible tokens pushed past every score, the smallest ``K``
    kept (``K = max(1, floor(ratio * num_tokens))`` is static, so nothing syncs with the host).

    Args:
        lengths: ``(N,)`` real tokens per sample.
        num_tokens: ``L``, tokens per sample including padding.
        ratio: fraction of the real frames chosen (``masked_lm_prob`` 0.15).
        probs: ``(zero, random, keep)`` probabilities of a chosen frame's input corruption (BERT 80/10/10).
        generator: source of every draw.
        exclude_last: choose only frames with a successor (ours); the official code may choose the last
            frame, whose flow is zero.

    Returns:
        A :class:`FrameMask` on ``lengths.device``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if len(probs) != 3 or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"probs must be three non-negative numbers summing to 1, got {tuple(probs)}")
    device = lengths.device
    lens = lengths.to(torch.int64).clamp(1, num_tokens)  # (N,)
    n = lens.shape[0]
    count = torch.floor(lens.double() * ratio).to(torch.int64).clamp(min=1)  # official int(len * prob) or 1
    eligible = lens - 1 if exclude_last else lens
    count = torch.minimum(count, eligible)
    slots = max(1, int(num_tokens * ratio))
    scores = uniform((n, num_tokens), generator, device)  # (N, L)
    scores = torch.where(frame_mask(eligible, num_tokens), scores, torch.full_like(scores, 2.0))
    positions = scores.topk(slots, dim=1, largest=False).indices  # (N, K) distinct
    valid = torch.arange(slots, device=device)[None, :] < count[:, None]  # (N, K)
    u = uniform((n, slots), generator, device)
    action = torch.full((n, slots), KEEP, dtype=torch.int64, device=device)
    action = torch.where(u < probs[0] + probs[1], torch.full_like(action, RANDOM), action)
    action = torch.where(u < probs[0], torch.full_like(action, ZERO), action)
    r = uniform((n, slots), generator, device).double()
    source = torch.minimum(torch.floor(r * lens[:, None].double()).to(torch.int64), lens[:, None] - 1)
    return FrameMask(positions, valid, action, source)


def corrupt_frames(tokens: torch.Tensor, draw: FrameMask) -> torch.Tensor:
    """Apply the 80/10/10 corruption of ``draw`` to the chosen tokens; a new tensor.

    Args:
        tokens: ``(N, L, D)``.
        draw: from :func:`draw_frame_masks`.

    Returns:
        ``(N, L, D)``: chosen tokens zeroed, replaced by a random real frame of the same sample, or kept.
    """
    n, _, d = tokens.shape
    k = draw.positions.shape[1]
    pos = draw.positions[:, :, None].expand(n, k, d)
    original = tokens.gather(1, pos)  # (N, K, D)
    random = tokens.gather(1, draw.source[:, :, None].expand(n, k, d))  # (N, K, D)
    action = draw.action[:, :, None]
    new = torch.where(action == ZERO, torch.zeros_like(original), torch.where(action == RANDOM, random, original))
    new = torch.where(draw.valid[:, :, None], new, original)  # unused slots leave their token alone
    return tokens.scatter(1, pos, new)


# -- MAMP / MAE: joint tokens of 4 frames ----------------------------------------------------------


class TokenMask(NamedTuple):
    """One masking of a batch of person sequences.

    Attributes:
        ids_keep: ``(B, K)`` int64 visible token indices, in the order the scores ranked them.
        mask: ``(B, L)`` bool, True on masked tokens (exactly ``L - K`` per row).
    """

    ids_keep: torch.Tensor
    mask: torch.Tensor


def keep_count(num_tokens: int, mask_ratio: float) -> int:
    """Visible tokens per sequence: ``int(L * (1 - ratio))``, truncated as the official code does.

    At 750 tokens and ratio 0.9 the float product is 74.99999999999999, so 74 tokens stay visible
    (not 75): the published FLOPs and losses rely on it (§8.11 pitfall 1).
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return max(1, int(num_tokens * (1 - mask_ratio)))


def patchify(seq: torch.Tensor, t_patch: int) -> torch.Tensor:
    """``(B, C, T, V)`` -> ``(B, T/p * V, p * C)``; a token's numbers ordered ``(frame, coordinate)``."""
    b, c, t, v = seq.shape
    if t % t_patch:
        raise ValueError(f"{t} frames are not a multiple of t_patch={t_patch}")
    x = seq.reshape(b, c, t // t_patch, t_patch, v).permute(0, 2, 4, 3, 1)  # (B, T/p, V, p, C)
    return x.reshape(b, (t // t_patch) * v, t_patch * c)


def token_motion(patches: torch.Tensor, num_joints: int) -> torch.Tensor:
    """Masking motion of every token (§8.5 step 2).

    ``m[t, v] = mean(|P[t, v] - P[t-1, v]|)`` over the token's numbers for ``t >= 1``, ``m[0, v] = m[1, v]``.

    Args:
        patches: ``(B, L, p*C)`` positions from :func:`patchify`.
        num_joints: ``V`` (tokens ``t*V + v``).

    Returns:
        ``(B, L)`` non-negative, float32.
    """
    b, length, d = patches.shape
    tp = length // num_joints
    p = patches.float().view(b, tp, num_joints, d)
    if tp == 1:  # one time token: no neighbour, no motion
        return torch.zeros(b, length, device=patches.device)
    diff = (p[:, 1:] - p[:, :-1]).abs().mean(dim=-1)  # (B, T/p - 1, V)
    return torch.cat([diff[:, :1], diff], dim=1).reshape(b, length)  # (B, L)


def _gumbel(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    u = uniform(shape, generator, device)
    return -torch.log(-torch.log(u + 1e-10) + 1e-10)  # the official epsilons


def motion_aware_masking(
    motion: torch.Tensor, keep: int, tau: float, generator: torch.Generator
) -> TokenMask:
    """Gumbel-top-k masking over ``softmax(motion / (tau * max motion))`` (§8.5 steps 3-7).

    ``s = m / (tau * max(m) + 1e-10)``, ``p = softmax(s)``, score ``log p + Gumbel``; the ``keep``
    lowest scores stay visible, the rest (a sample without replacement from ``p``) are masked, so
    high-motion tokens are masked more often. A sequence without motion (e.g. an absent person) gets
    a uniform ``p``: plain random masking. ``tau <= 0`` is the official fallback to uniform masking.

    Args:
        motion: ``(B, L)`` from :func:`token_motion`.
        keep: visible tokens per row (:func:`keep_count`).
        tau: temperature (0.80 NTU-60/PKU-MMD, 0.75 NTU-120); larger is flatter.
        generator: source of the Gumbel noise (drawn on its device, moved to ``motion``'s).

    Returns:
        A :class:`TokenMask`.
    """
    if tau <= 0:
        return uniform_masking(motion.shape[0], motion.shape[1], keep, generator, motion.device)
    m = motion.float()
    s = m / (tau * m.amax(dim=1, keepdim=True) + 1e-10)  # (B, L) in [0, 1/tau]
    scores = torch.log_softmax(s, dim=1) + _gumbel(tuple(m.shape), generator, m.device)
    return _split(scores, keep)


def uniform_masking(
    batch: int, num_tokens: int, keep: int, generator: torch.Generator, device: torch.device | str
) -> TokenMask:
    """MAE's random masking: a uniform random subset of ``num_tokens - keep`` tokens per row."""
    return _split(uniform((batch, num_tokens), generator, device), keep)


def _split(scores: torch.Tensor, keep: int) -> TokenMask:
    """The ``keep`` lowest scores of each row are visible, the others masked (the official argsort)."""
    b, length = scores.shape
    if not 1 <= keep <= length:
        raise ValueError(f"keep must be in [1, {length}], got {keep}")
    ids_keep = scores.topk(keep, dim=1, largest=False, sorted=True).indices  # (B, K)
    mask = torch.ones(b, length, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, ids_keep, False)
    return TokenMask(ids_keep, mask)


def draw_mask(
    patches: torch.Tensor, num_joints: int, keep: int, tau: float, generator: torch.Generator,
    motion_aware: bool = True,
) -> TokenMask:
    """Motion-aware (MAMP) or uniform (MAE) masking of position patches ``(B, L, p*C)``."""
    if motion_aware:
        return motion_aware_masking(token_motion(patches, num_joints), keep, tau, generator)
    return uniform_masking(patches.shape[0], patches.shape[1], keep, generator, patches.device)

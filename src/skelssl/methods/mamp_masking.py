"""MAMP's masking, target and loss as pure, batched tensor functions (docs/mamp.md).

Two *different* motions are used, on purpose (pitfall 2 of §8.11):

- :func:`token_motion` (masking): the mean absolute displacement between the same frame slot of two
  **adjacent 4-frame tokens** of a joint (a stride-4 difference), averaged over the token's
  ``4 x C`` numbers; the first time token copies the second's.
- :func:`motion_target` (regression target): the signed **per-frame** difference
  ``x[t+1] - x[t]`` (``motion_stride = 1``), zero for the last frame, patchified like the input.

Token layout everywhere: ``L = T/p * V`` tokens per person sequence, time-major (token ``t*V + v``);
a token's numbers are ordered ``(frame, coordinate)``, ``[f0x, f0y, f0z, f1x, ...]`` (the official
``patchify``). Masks are 1 (True) on **masked** tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from skelssl.transforms.temporal import uniform

__all__ = [
    "MaskDraw",
    "keep_count",
    "patchify",
    "token_motion",
    "motion_aware_masking",
    "uniform_masking",
    "draw_mask",
    "motion_target",
    "normalize_tokens",
]


class MaskDraw(NamedTuple):
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
) -> MaskDraw:
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
        A :class:`MaskDraw`.
    """
    if tau <= 0:
        return uniform_masking(motion.shape[0], motion.shape[1], keep, generator, motion.device)
    m = motion.float()
    s = m / (tau * m.amax(dim=1, keepdim=True) + 1e-10)  # (B, L) in [0, 1/tau]
    scores = torch.log_softmax(s, dim=1) + _gumbel(tuple(m.shape), generator, m.device)
    return _split(scores, keep)


def uniform_masking(
    batch: int, num_tokens: int, keep: int, generator: torch.Generator, device: torch.device | str
) -> MaskDraw:
    """MAE's random masking: a uniform random subset of ``num_tokens - keep`` tokens per row."""
    return _split(uniform((batch, num_tokens), generator, device), keep)


def _split(scores: torch.Tensor, keep: int) -> MaskDraw:
    """The ``keep`` lowest scores of each row are visible, the others masked (the official argsort)."""
    b, length = scores.shape
    if not 1 <= keep <= length:
        raise ValueError(f"keep must be in [1, {length}], got {keep}")
    ids_keep = scores.topk(keep, dim=1, largest=False, sorted=True).indices  # (B, K)
    mask = torch.ones(b, length, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, ids_keep, False)
    return MaskDraw(ids_keep, mask)


def draw_mask(
    patches: torch.Tensor, num_joints: int, keep: int, tau: float, generator: torch.Generator,
    motion_aware: bool = True,
) -> MaskDraw:
    """Motion-aware (MAMP) or uniform (MAE) masking of position patches ``(B, L, p*C)``."""
    if motion_aware:
        return motion_aware_masking(token_motion(patches, num_joints), keep, tau, generator)
    return uniform_masking(patches.shape[0], patches.shape[1], keep, generator, patches.device)


def motion_target(seq: torch.Tensor, t_patch: int) -> torch.Tensor:
    """The regression target: per-frame motion ``D[t] = x[t+1] - x[t]``, ``D[T-1] = 0``, patchified.

    Args:
        seq: ``(B, C, T, V)`` positions.
        t_patch: frames per token.

    Returns:
        ``(B, L, p*C)`` signed motion, ordered ``(frame, coordinate)`` within a token.
    """
    d = torch.zeros_like(seq)
    d[:, :, :-1] = seq[:, :, 1:] - seq[:, :, :-1]  # (B, C, T, V); the last frame stays 0
    return patchify(d, t_patch)


def normalize_tokens(target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-token normalisation (``norm_skes_loss``): ``(x - mean) / sqrt(var + eps)``, unbiased var.

    An all-zero (or constant) token maps to 0.

    Shape:
        ``(..., D)`` -> ``(..., D)`` float32.
    """
    t = target.float()
    mean = t.mean(dim=-1, keepdim=True)
    var = t.var(dim=-1, keepdim=True, unbiased=True)
    return (t - mean) / torch.sqrt(var + eps)

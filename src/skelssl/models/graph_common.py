"""Pieces shared by the graph encoders (:mod:`~skelssl.models.stgcn`, :mod:`~skelssl.models.agcn`).

Both encoders run persons as independent sequences through a stack of units (a spatial graph
convolution, then a temporal convolution, plus a residual) and average the tokens over real frames,
joints and persons. What they share:

- the input layout: an optional BatchNorm over ``(person, joint, coordinate)`` channels (2s-AGCN's
  ``data_bn``), then persons folded into the batch (:func:`person_batch`);
- padding: activations on padded frames are zeroed before every temporal convolution and after
  every unit (:func:`zero_padding`, :func:`run_units`), so that a temporal convolution sees the same
  zeros it would see without padding, and the real length shrinks with each stride
  (:func:`strided_lengths`);
- the residual of a unit (:func:`residual_branch`): none, identity, or a strided 1x1 convolution
  with BatchNorm (the official ``unit_tcn`` with kernel 1, :class:`TemporalConv`);
- pooling (:func:`pool_tokens`): mean over real frames and joints, then over persons.

Nothing here owns parameters of its own: the modules it builds are attributes of the encoders, so
their ``state_dict`` keys are the encoders' own (``units.0.residual.0.weight``, ...).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from skelssl.core.batch import frame_mask

__all__ = [
    "TemporalConv", "conv_init", "bn_init", "check_units", "zero_padding", "strided_lengths", "run_units",
    "residual_branch", "add_residual", "person_batch", "pool_tokens",
]


def conv_init(conv: nn.Conv2d) -> None:
    """2s-AGCN's ``conv_init``: Kaiming-normal (fan out), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def bn_init(channels: int, scale: float = 1.0) -> nn.BatchNorm2d:
    """A ``BatchNorm2d`` with weight ``scale`` and zero bias (2s-AGCN's ``bn_init``)."""
    bn = nn.BatchNorm2d(channels)
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)
    return bn


class TemporalConv(nn.Sequential):
    """2s-AGCN's ``unit_tcn``: a ``(kernel, 1)`` convolution with temporal stride, then BatchNorm.

    Args:
        in_channels, out_channels: feature sizes.
        kernel: odd temporal kernel size (1 for a residual projection).
        stride: temporal stride.
        official_init: 2s-AGCN's initialisation (:func:`conv_init`, :func:`bn_init`); ``False``
            keeps PyTorch's defaults (ST-GCN's residual projection).

    Shape:
        ``(B, C_in, T, V)`` -> ``(B, C_out, ceil(T / stride), V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 9, stride: int = 1,
                 official_init: bool = True) -> None:
        conv = nn.Conv2d(in_channels, out_channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0))
        if official_init:
            conv_init(conv)
            super().__init__(conv, bn_init(out_channels))
        else:
            super().__init__(conv, nn.BatchNorm2d(out_channels))


def check_units(channels: Sequence[int], strides: Sequence[int], temporal_kernel: int) -> list[int]:
    """The per-unit strides as ints, after checking one per unit and an odd temporal kernel.

    Raises:
        ValueError: no unit, a stride count that differs from the unit count, or an even kernel
            (the ``(kernel - 1) // 2`` padding keeps ``T`` only for odd kernels).
    """
    strides = [int(s) for s in strides]
    if len(strides) != len(channels) or not channels:
        raise ValueError(f"{len(channels)} channels but {len(strides)} strides")
    if temporal_kernel % 2 != 1:
        raise ValueError(f"temporal_kernel must be odd, got {temporal_kernel}")
    return strides


def zero_padding(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``x`` with the frames at and after ``lengths`` set to zero (``x`` itself without lengths).

    Shape:
        ``x``: ``(B, C, T, V)``; ``lengths``: ``(B,)``.
    """
    if lengths is None:
        return x
    return x * frame_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)  # (B, C, T, V)


def strided_lengths(lengths: torch.Tensor, strides: Sequence[int]) -> torch.Tensor:
    """Real frames after temporal strides: ``ceil`` of the length over each stride in turn."""
    for s in strides:
        lengths = (lengths + s - 1) // s
    return lengths


def run_units(units: nn.ModuleList, h: torch.Tensor, lengths: torch.Tensor | None, **unit_kwargs) -> torch.Tensor:
    """Zero the padded frames of ``h``, then run each unit and zero the padded frames of its output.

    Args:
        units: modules ``unit(h, lengths=..., **unit_kwargs)`` with an int attribute ``stride``.
        h: the input.
        lengths: real frames per row of ``h`` (``None``: no padding).
        **unit_kwargs: passed to every unit (ST-GCN's ``adjacency``).

    Shape:
        ``h``: ``(B, C, T, V)``, ``lengths``: ``(B,)`` -> ``(B, D, T', V)``.
    """
    h = zero_padding(h, lengths)
    for unit in units:
        h = unit(h, lengths=lengths, **unit_kwargs)  # (B, D_i, T_i, V)
        if lengths is not None:
            lengths = (lengths + unit.stride - 1) // unit.stride
            h = zero_padding(h, lengths)
    return h


def residual_branch(in_channels: int, out_channels: int, stride: int, enabled: bool,
                    official_init: bool) -> nn.Module | None:
    """A unit's residual: ``None`` (first unit, as in both official codes), identity when the shape
    is kept, else a strided 1x1 :class:`TemporalConv`."""
    if not enabled:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return TemporalConv(in_channels, out_channels, 1, stride, official_init)


def add_residual(y: torch.Tensor, x: torch.Tensor, residual: nn.Module | None) -> torch.Tensor:
    """A unit's output before its last ReLU: ``y + residual(x)``, or ``y`` without a residual branch."""
    return y if residual is None else y + residual(x)


def person_batch(x: torch.Tensor, data_bn: nn.Module | None) -> torch.Tensor:
    """Normalise the input per ``(person, joint, coordinate)`` channel, then fold persons into the batch.

    The BatchNorm layout is 2s-AGCN's ``data_bn``: ``M * V * C`` channels, person-major.

    Shape:
        ``x``: ``(N, C, T, V, M)`` -> ``(N*M, C, T, V)``.
    """
    n, c, t, v, m = x.shape
    if data_bn is not None:
        h = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)  # (N, M*V*C, T)
        h = data_bn(h).view(n, m, v, c, t).permute(0, 1, 3, 4, 2)  # (N, M, C, T, V)
    else:
        h = x.permute(0, 4, 1, 2, 3)  # (N, M, C, T, V)
    return h.reshape(n * m, c, t, v)  # (N*M, C, T, V): persons are independent sequences


def pool_tokens(features: torch.Tensor, lengths: torch.Tensor | None, strides: Sequence[int],
                present_only: bool) -> torch.Tensor:
    """Mean over real frames and joints, then over persons.

    Args:
        features: tokens of every person slot.
        lengths: real input frames per sample (``None``: every frame is real); the real token
            frames are :func:`strided_lengths` of them.
        strides: the encoder's temporal strides.
        present_only: average over persons whose tokens are not all zero (if none is, over every
            slot); ``False`` averages every slot (2s-AGCN's ``x.mean(3).mean(1)``).

    Shape:
        ``features``: ``(N, M, D, T', V)`` -> ``(N, D)``.
    """
    n, m, d, t, v = features.shape
    if lengths is None:
        per_person = features.mean(dim=(3, 4))  # (N, M, D)
    else:
        out_lens = strided_lengths(lengths.to(features.device, torch.int64).clamp(min=1), strides).clamp(max=t)
        tmask = frame_mask(out_lens, t).to(features.dtype)  # (N, T')
        counts = out_lens.to(features.dtype)[:, None, None] * v  # (N, 1, 1)
        per_person = torch.einsum("nmdtv,nt->nmd", features, tmask) / counts  # (N, M, D)
    if not present_only:
        return per_person.mean(dim=1)
    present = features.detach().abs().amax(dim=(2, 3, 4)) > 0  # (N, M)
    present = (present | ~present.any(dim=1, keepdim=True)).to(features.dtype)
    return (per_person * present[:, :, None]).sum(dim=1) / present.sum(dim=1, keepdim=True)  # (N, D)

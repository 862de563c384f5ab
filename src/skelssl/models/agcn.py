"""Graph encoder of ISC: single-stream 2s-AGCN (Shi, Zhang, Cheng, Lu, "Two-Stream Adaptive Graph
Convolutional Networks for Skeleton-Based Action Recognition", CVPR 2019), as copied into ISC's
``moco/AGCN.py`` (class ``Model``).

Each unit is an adaptive graph convolution then a temporal convolution (kernel 9), with residuals. The
graph of subset ``k`` is ``A_k + B_k + C_k``: ``A_k`` the layout's spatial partition in the official
subset order (:func:`agcn_adjacency`: self-links, then the official ``inward`` and ``outward`` subsets,
column-normalised), ``B_k`` a free learned ``(V, V)`` matrix initialised to 1e-6
(``PA``), and ``C_k = softmax(theta_k(x)^T phi_k(x) / (C_e * T))`` a per-sample similarity of joints
from two 1x1 embeddings of width ``C_e = C_out / 4`` (the softmax normalises each column). Features
are averaged over frames and joints, then over person slots (256-d with the standard channels).

Differences from the official code, none changing the function:

- the three subsets' 1x1 convolutions ``conv_a``/``conv_b`` are one convolution each with ``3 C_e``
  outputs, and ``conv_d`` is one convolution over the three aggregated inputs stacked on the channel
  axis (``sum_k W_k (x G_k) + b_k`` = ``[W_1 W_2 W_3] [x G_1; x G_2; x G_3] + b``), so it carries one
  bias instead of three whose sum it is. The initialisation is the official one in distribution: each
  subset's slice of ``conv_a``/``conv_b`` gets ``conv_init`` as its own convolution (Kaiming normal with
  the fan-out of one branch, ``C_e``), and ``conv_d`` gets ``conv_branch_init``;
- padded frames are handled: with ``lengths``, activations on padded frames are zeroed before every
  temporal convolution and after every unit, the embeddings of ``C_k`` are zeroed there and its scale
  uses the real length, and pooling ignores them; in eval mode a sample gives the same features padded
  or not (ISC itself always feeds full 64-frame clips).

Persons: like the official code, the default averages over every person slot, absent (all-zero) ones
included; ``ignore_absent=True`` averages over present persons only (as :mod:`skelssl.models.stgcn`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from skelssl.core.batch import frame_mask, person_mask
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.models.graph_common import (
    TemporalConv, add_residual, bn_init, check_units, person_batch, pool_tokens, residual_branch, run_units,
    strided_lengths, zero_padding,
)
from skelssl.models.stgcn import DEFAULT_CHANNELS, DEFAULT_STRIDES

__all__ = ["AGCN", "AdaptiveGraphConv", "AGCNUnit", "PRESETS", "agcn_adjacency", "branch_conv_init"]

#: Named sizes: ``paper`` is 2s-AGCN's ten units (64 ... 256, strides 2 at units 5 and 8, 3.45 M
#: parameters for NTU, 3.47 M with the official 60-class fc); ``small`` is for CPU work (four units, 16 ... 64).
PRESETS: dict[str, dict[str, tuple[int, ...]]] = {
    "paper": {"channels": DEFAULT_CHANNELS, "strides": DEFAULT_STRIDES},
    "small": {"channels": (16, 32, 32, 64), "strides": (1, 2, 1, 2)},
}


def agcn_adjacency(layout: Layout | str) -> torch.Tensor:
    """2s-AGCN's fixed partition ``A`` (``tools.get_spatial_graph``), in the official subset order.

    The official graph is ``stack(I, normalize(edge2mat(inward)), normalize(edge2mat(outward)))`` with
    ``inward`` the ``(child, parent)`` bone list and ``edge2mat`` setting ``A[j, i] = 1`` for a pair
    ``(i, j)``: subset 1 holds ``A[parent, child]`` (under ``x @ A`` a joint receives its parent's
    features) and subset 2 ``A[child, parent]`` (a joint receives its children's features), each
    column-normalised. :meth:`Layout.spatial_partition` (shared with ST-GCN, whose official order it
    follows) lists them the other way round, so subsets 1 and 2 are swapped here; the per-subset ``PA``
    and ``conv_a``/``conv_b``/``conv_d`` weights of an official checkpoint then pair with the same
    subsets by index.

    Returns:
        ``(3, V, V)`` float32: self-links, official ``inward``, official ``outward``.
    """
    parts = get_layout(layout).spatial_partition()  # (3, V, V): identity, child->parent, parent->child
    return torch.from_numpy(parts[[0, 2, 1]].copy())


def branch_conv_init(conv: nn.Conv2d, branches: int) -> None:
    """:func:`~skelssl.models.graph_common.conv_init` on each of ``branches`` equal output slices of
    ``conv``, as if each were its own convolution (the official per-subset ``conv_a``/``conv_b``):
    Kaiming normal with the fan-out of one branch, ``out_channels / branches * kernel size``, and zero
    bias."""
    with torch.no_grad():
        for w in conv.weight.chunk(branches, dim=0):  # views of (C_out / K, C_in, kh, kw)
            nn.init.kaiming_normal_(w, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class AdaptiveGraphConv(nn.Module):
    """Official ``unit_gcn``: graph convolution over ``A_k + B_k + C_k`` plus a residual, then ReLU.

    Args:
        in_channels, out_channels: feature sizes.
        adjacency: ``(K, V, V)`` fixed partition ``A`` (:func:`agcn_adjacency`).
        embed_ratio: ``C_e = out_channels // embed_ratio`` (4 in 2s-AGCN).

    Shape:
        ``(B, C_in, T, V)`` (+ ``lengths`` ``(B,)``) -> ``(B, C_out, T, V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, embed_ratio: int = 4) -> None:
        super().__init__()
        k, v, _ = adjacency.shape
        self.num_subsets, self.embed = k, max(1, out_channels // embed_ratio)
        self.register_buffer("A", adjacency.clone().float(), persistent=False)
        self.PA = nn.Parameter(torch.full((k, v, v), 1e-6))  # B_k, official init constant 1e-6
        self.conv_a = nn.Conv2d(in_channels, k * self.embed, 1)  # theta_k for all k
        self.conv_b = nn.Conv2d(in_channels, k * self.embed, 1)  # phi_k for all k
        self.conv_d = nn.Conv2d(k * in_channels, out_channels, 1)  # [W_1 W_2 W_3]
        self.bn = bn_init(out_channels, 1e-6)  # official bn_init(self.bn, 1e-6): each unit starts near identity
        # Official down: 1x1 conv + BN (conv_init) where the width changes.
        self.down = TemporalConv(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        # Official conv_init on each subset's conv_a[k] / conv_b[k]: std sqrt(2 / C_e), not the
        # sqrt(2 / (K * C_e)) that conv_init would give the fused convolution.
        branch_conv_init(self.conv_a, k)
        branch_conv_init(self.conv_b, k)
        # Official conv_branch_init: N(0, 2 / (C_out * C_in * 1 * 1 * K)) per branch; zero bias.
        nn.init.normal_(self.conv_d.weight, 0.0, math.sqrt(2.0 / (out_channels * in_channels * k)))
        nn.init.zeros_(self.conv_d.bias)

    def graphs(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C_in, T, V)`` -> ``(B, K, V, V)`` per-sample graphs ``A_k + B_k + C_k``."""
        b, _, t, v = x.shape
        k, e = self.num_subsets, self.embed
        theta = self.conv_a(x).view(b, k, e, t, v)  # (B, K, C_e, T, V)
        phi = self.conv_b(x).view(b, k, e, t, v)
        if lengths is None:
            scale = torch.full((b, 1, 1, 1), float(e * t), device=x.device, dtype=theta.dtype)
        else:
            keep = frame_mask(lengths, t)[:, None, None, :, None].to(theta.dtype)  # (B, 1, 1, T, 1)
            theta, phi = theta * keep, phi * keep
            scale = (lengths.clamp(min=1) * e).to(theta.dtype).view(b, 1, 1, 1)
        # Official: softmax over dim -2 of (V, C_e*T) @ (C_e*T, V) / (C_e*T).
        sim = torch.einsum("bkctv,bkctw->bkvw", theta, phi) / scale  # (B, K, V, V)
        return sim.softmax(dim=-2) + (self.A + self.PA).to(sim.dtype)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C_in, T, V)`` -> ``(B, C_out, T, V)``."""
        b, c, t, v = x.shape
        g = self.graphs(x, lengths)  # (B, K, V, V)
        agg = torch.einsum("bctv,bkvw->bkctw", x, g).reshape(b, self.num_subsets * c, t, v)  # (B, K*C_in, T, V)
        y = self.bn(self.conv_d(agg))  # (B, C_out, T, V)
        return self.relu(y + self.down(x))


class AGCNUnit(nn.Module):
    """Official ``TCN_GCN_unit``: ``relu(tcn(gcn(x)) + residual(x))``.

    Args:
        in_channels, out_channels: feature sizes.
        adjacency: ``(K, V, V)`` partition.
        stride: temporal stride.
        residual: False for the first unit, as in the official code.
        temporal_kernel: odd temporal kernel size (9).

    Shape:
        ``(B, C_in, T, V)`` -> ``(B, C_out, ceil(T / stride), V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, stride: int = 1,
                 residual: bool = True, temporal_kernel: int = 9) -> None:
        super().__init__()
        self.stride = stride
        self.gcn = AdaptiveGraphConv(in_channels, out_channels, adjacency)
        self.tcn = TemporalConv(out_channels, out_channels, temporal_kernel, stride)
        self.residual = residual_branch(in_channels, out_channels, stride, residual, official_init=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C_in, T, V)`` with ``(B,)`` lengths -> ``(B, C_out, T', V)``."""
        y = zero_padding(self.gcn(x, lengths), lengths)  # the temporal conv must see zeros beyond the end
        y = self.tcn(y)
        return self.relu(add_residual(y, x, self.residual))


@register_encoder("agcn")
class AGCN(Encoder):
    """Single-stream 2s-AGCN (ISC's graph-based encoder).

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V`` and the spatial partition.
        num_persons: ``M`` (the input BatchNorm has ``M * V * C`` channels).
        preset: ``"paper"`` or ``"small"`` (see :data:`PRESETS`); ``channels``/``strides`` override it.
        channels: output channels of each unit.
        strides: temporal stride of each unit.
        temporal_kernel: odd temporal kernel size (9).
        ignore_absent: average over present persons only (official: every person slot).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, out_dim)``;
        ``forward_features``: -> ``(N, M, D, T', V)`` with ``T' = ceil(T / prod(strides))`` (tokens of
        absent persons zeroed when ``ignore_absent``).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        preset: str = "paper",
        channels: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        temporal_kernel: int = 9,
        ignore_absent: bool = False,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown agcn preset {preset!r}; choose from {sorted(PRESETS)}")
        layout = get_layout(layout)
        channels = [int(c) for c in (channels if channels is not None else PRESETS[preset]["channels"])]
        if strides is None:
            if channels != list(PRESETS[preset]["channels"]):
                raise ValueError(f"give strides for the {len(channels)} units")
            strides = PRESETS[preset]["strides"]
        strides = check_units(channels, strides, temporal_kernel)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.strides, self.ignore_absent = tuple(strides), ignore_absent
        v = layout.num_joints
        adjacency = agcn_adjacency(layout)  # (3, V, V), official subset order
        self.data_bn = nn.BatchNorm1d(num_persons * v * in_channels)
        nn.init.ones_(self.data_bn.weight)
        nn.init.zeros_(self.data_bn.bias)
        units, c_in = [], in_channels
        for i, (c_out, s) in enumerate(zip(channels, strides)):
            units.append(AGCNUnit(c_in, c_out, adjacency, s, residual=i > 0, temporal_kernel=temporal_kernel))
            c_in = c_out
        self.units = nn.ModuleList(units)
        self.out_dim = channels[-1]
        self.spec = {"name": "agcn", "kwargs": dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons,
                                                    channels=channels, strides=strides, temporal_kernel=temporal_kernel,
                                                    ignore_absent=ignore_absent)}

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Real frames after the strided units: ``ceil`` of the length over each stride in turn."""
        return strided_lengths(lengths, self.strides)

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, M, D, T', V)``."""
        n, c, t, v, m = self.check_input(x, persons=True)
        h = person_batch(x, self.data_bn)  # (N*M, C, T, V), official data_bn layout
        lens = None
        if lengths is not None:
            lens = lengths.to(x.device, torch.int64).clamp(1, t).repeat_interleave(m)  # (N*M,)
        h = run_units(self.units, h, lens)  # (N*M, D, T', V), padding zeroed
        h = h.view(n, m, *h.shape[1:])  # (N, M, D, T', V)
        if self.ignore_absent:
            present = person_mask(x)  # (N, M)
            h = h * present[:, :, None, None, None].to(h.dtype)
        return h

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, M, D, T', V)`` -> ``(N, D)``: mean over real frames and joints, then over person slots.

        With ``ignore_absent``, persons whose tokens are all zero (:meth:`forward_features` zeroes
        absent ones) are left out of the person mean; if none is present, all slots are averaged.
        """
        # Official (ignore_absent=False): x.mean(3).mean(1) over every slot.
        return pool_tokens(features, lengths, self.strides, present_only=self.ignore_absent)  # (N, D)

"""ST-GCN encoder (Yan, Xiong, Lin, "Spatial Temporal Graph Convolutional Networks for Skeleton-Based
Action Recognition", AAAI 2018; official code ``net/st_gcn.py``).

Ten ST-GCN units (a spatial graph convolution over the layout's 3-subset partition, then a temporal
convolution), with learnable edge importance and residual connections; features are averaged over
time, joints and persons. We differ from the official code in three documented ways:

- the spatial partition is the layout's ``identity / inward / outward`` split with 2s-AGCN's column
  normalisation (:meth:`Layout.spatial_partition`, also the source of AGCN's graph). Its subset order
  is the official ST-GCN one (subset 1 ``[child, parent]``: a joint receives from the joints farther
  from the centre; subset 2 ``[parent, child]``); :mod:`skelssl.models.agcn` swaps subsets 1 and 2 to
  follow 2s-AGCN's own order;
- the input BatchNorm has one channel per ``(person, joint, coordinate)`` (2s-AGCN), not per
  ``(joint, coordinate)``;
- padded frames are handled: with ``lengths``, activations on padded frames are zeroed after the
  input BatchNorm, before every temporal convolution and after every unit, so the temporal convolution
  sees the same zero padding a shorter batch would, and pooling ignores padding. In eval mode a sample
  then gives the same features whether it is padded or not (BatchNorm statistics in training mode still
  see the padded frames). Absent (all-zero) persons are encoded but left out of the person average,
  unlike the official code which averages over every person slot.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from skelssl.core.batch import person_mask
from skelssl.core.layouts import Layout, get_layout
from skelssl.models import register_encoder
from skelssl.models.base import Encoder
from skelssl.models.graph_common import (
    add_residual, check_units, person_batch, pool_tokens, residual_branch, run_units, strided_lengths, zero_padding,
)

__all__ = ["STGCN", "STGCNUnit"]

DEFAULT_CHANNELS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
DEFAULT_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


class STGCNUnit(nn.Module):
    """One ST-GCN unit: graph convolution, then BN-ReLU-temporal conv-BN-dropout, plus a residual.

    Args:
        in_channels, out_channels: feature sizes.
        num_subsets: ``K``, the number of adjacency subsets (3 for the spatial partition).
        num_joints: ``V`` (for the edge-importance shape).
        temporal_kernel: odd temporal kernel size (9 in ST-GCN).
        stride: temporal stride.
        dropout: dropout after the temporal conv.
        residual: False for the first unit, as in the official code.
        edge_importance: learn a ``(K, V, V)`` multiplicative mask on the adjacency (ST-GCN §3.6).

    Shape:
        ``(B, C_in, T, V)`` -> ``(B, C_out, ceil(T / stride), V)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        num_joints: int,
        temporal_kernel: int = 9,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
        edge_importance: bool = True,
    ) -> None:
        super().__init__()
        self.num_subsets, self.stride = num_subsets, stride
        # Official ConvTemporalGraphical: a 1x1 conv to K * C_out channels, then a sum over subsets.
        self.gcn = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)
        self.importance = nn.Parameter(torch.ones(num_subsets, num_joints, num_joints)) if edge_importance else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        pad = (temporal_kernel - 1) // 2
        self.tcn = nn.Conv2d(out_channels, out_channels, (temporal_kernel, 1), (stride, 1), (pad, 0))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout(dropout)
        # Official: a strided 1x1 conv + BN where the shape changes (PyTorch's default init here).
        self.residual = residual_branch(in_channels, out_channels, stride, residual, official_init=False)

    def forward(
        self, x: torch.Tensor, adjacency: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, C_in, T, V)`` with ``(K, V, V)`` adjacency and ``(B,)`` lengths -> ``(B, C_out, T', V)``."""
        b, _, t, v = x.shape
        a = adjacency if self.importance is None else adjacency * self.importance  # (K, V, V)
        y = self.gcn(x).view(b, self.num_subsets, -1, t, v)  # (B, K, C_out, T, V)
        y = torch.einsum("bkctv,kvw->bctw", y, a)  # (B, C_out, T, V)
        y = self.relu(self.bn1(y))
        y = zero_padding(y, lengths)  # the temporal conv must see zeros beyond the end, as with no padding
        y = self.dropout(self.bn2(self.tcn(y)))  # (B, C_out, T', V)
        return self.relu(add_residual(y, x, self.residual))


@register_encoder("stgcn")
class STGCN(Encoder):
    """ST-GCN encoder.

    Args:
        in_channels: coordinates per joint ``C``.
        layout: skeleton layout (or its name); gives ``V`` and the spatial partition.
        num_persons: ``M`` (the input BatchNorm has ``M * V * C`` channels).
        channels: output channels of each unit (the standard 10 units by default).
        strides: temporal stride of each unit (2 at units 5 and 8 by default).
        temporal_kernel: odd temporal kernel size (9).
        dropout: dropout in each unit (0; the official NTU configs use 0.5 when training from scratch).
        edge_importance: learnable edge importance per unit.
        data_bn: BatchNorm over the input channels.
        width: multiplier on ``channels`` (e.g. 0.25 for a fast CPU model).

    Shape:
        ``forward``: ``(N, C, T, V, M)`` (+ ``lengths`` ``(N,)``) -> ``(N, out_dim)``;
        ``forward_features``: -> ``(N, M, out_dim, T', V)`` with ``T' = ceil(T / prod(strides))``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        layout: Layout | str,
        num_persons: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        strides: Sequence[int] | None = None,
        temporal_kernel: int = 9,
        dropout: float = 0.0,
        edge_importance: bool = True,
        data_bn: bool = True,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        layout = get_layout(layout)
        channels = [max(1, int(round(c * width))) for c in channels]
        if strides is None:
            if len(channels) != len(DEFAULT_STRIDES):
                raise ValueError(f"give strides for {len(channels)} units (the default is for 10)")
            strides = DEFAULT_STRIDES
        strides = check_units(channels, strides, temporal_kernel)
        self.layout, self.in_channels, self.num_persons = layout, in_channels, num_persons
        self.strides = tuple(strides)
        v = layout.num_joints
        self.register_buffer("adjacency", torch.from_numpy(layout.spatial_partition()), persistent=False)
        self.data_bn = nn.BatchNorm1d(num_persons * v * in_channels) if data_bn else None
        units = []
        c_in = in_channels
        for i, (c_out, s) in enumerate(zip(channels, strides)):
            # The first unit has no residual, as in the official code.
            unit = STGCNUnit(c_in, c_out, 3, v, temporal_kernel, s, dropout, i > 0, edge_importance)
            units.append(unit)
            c_in = c_out
        self.units = nn.ModuleList(units)
        self.out_dim = channels[-1]
        kwargs = dict(in_channels=in_channels, layout=layout.name, num_persons=num_persons, channels=channels,
                      strides=list(strides), temporal_kernel=temporal_kernel, dropout=dropout,
                      edge_importance=edge_importance, data_bn=data_bn)
        self.spec = {"name": "stgcn", "kwargs": kwargs}  # build_encoder replaces it with the given kwargs

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Real frames after the strided units: ``ceil`` of the length over each stride in turn."""
        return strided_lengths(lengths, self.strides)

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, M, D, T', V)``; tokens of absent persons are zero."""
        n, c, t, v, m = self.check_input(x, persons=self.data_bn is not None)  # the input BatchNorm fixes M
        present = person_mask(x)  # (N, M)
        present = present | ~present.any(dim=1, keepdim=True)  # no one present: use every slot
        if lengths is not None:
            lengths = lengths.to(x.device, torch.int64).clamp(0, t)
        h = person_batch(x, self.data_bn)  # (N*M, C, T, V)
        lens = None if lengths is None else lengths.repeat_interleave(m)  # (N*M,)
        h = run_units(self.units, h, lens, adjacency=self.adjacency)  # (N*M, D, T', V), padding zeroed
        h = h.view(n, m, *h.shape[1:])  # (N, M, D, T', V)
        return h * present[:, :, None, None, None].to(h.dtype)

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, M, D, T', V)`` -> ``(N, D)``: mean over real frames and joints, then present persons.

        A person is present if its tokens are not all zero (:meth:`forward_features` zeroes absent
        ones); if none is, all slots are averaged.
        """
        return pool_tokens(features, lengths, self.strides, present_only=True)  # (N, D)

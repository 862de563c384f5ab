"""Projection heads shared by the contrastive methods.

Heads are thin: an encoder's ``(N, D)`` features in, ``(N, out_dim)`` embeddings out. The loss decides
whether to L2-normalise (the contrastive losses in :mod:`skelssl.methods.losses` do).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """MLP projection head.

    SimCLR (Chen et al. 2020): "we use a MLP with one hidden layer to obtain
    z_i = g(h_i) = W(2) sigma(W(1) h_i) where sigma is a ReLU non-linearity"; MoCo v2, SkeletonCLR and
    CrosSCLR use the same Linear-ReLU-Linear head. ``hidden_dim=None`` gives a single linear layer
    (MoCo v1 and ISC's default ``fc``; ISC's ``--mlp`` option is ``hidden_dim=in_dim``).

    Args:
        in_dim: encoder feature size ``D``.
        out_dim: embedding size (128 in SimCLR, MoCo and ISC).
        hidden_dim: width of the hidden layers; ``None`` for a linear head.
        num_layers: linear layers in total (2 = one hidden layer); ignored when ``hidden_dim`` is None.
        batch_norm: BatchNorm1d after each hidden linear layer (SimCLR v2 style).

    Shape:
        ``(N, in_dim)`` -> ``(N, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 128,
        hidden_dim: int | None = None,
        num_layers: int = 2,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if hidden_dim is None:
            self.net = nn.Linear(in_dim, out_dim)
        else:
            if num_layers < 2:
                raise ValueError(f"an MLP head with a hidden layer needs num_layers >= 2, got {num_layers}")
            layers: list[nn.Module] = []
            d = in_dim
            for _ in range(num_layers - 1):
                layers.append(nn.Linear(d, hidden_dim, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.ReLU(inplace=True))
                d = hidden_dim
            layers.append(nn.Linear(d, out_dim))
            self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, in_dim)`` -> ``(N, out_dim)``."""
        if features.ndim != 2 or features.shape[1] != self.in_dim:
            raise ValueError(f"expected features of shape (N, {self.in_dim}), got {tuple(features.shape)}")
        return self.net(features)

"""The encoder interface every backbone implements.

Encoders take a batch ``x`` of shape ``(N, C, T, V, M)`` (zero-padded along ``T``; absent persons are
all zeros) and optional ``lengths`` ``(N,)``, and return ``(N, D)`` features from :meth:`forward` or
their own token layout from :meth:`forward_features`. They know nothing of methods, losses, datasets
or checkpoints, and work for any layout (``V`` joints) and any ``M``.

Every encoder is built from keyword arguments only (``in_channels``, ``layout``, ``num_persons`` and
its own sizes) and records them in :attr:`spec`, so an encoder checkpoint can rebuild it without the
method that trained it (see :func:`skelssl.models.build_encoder`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from skelssl.core.layouts import Layout

__all__ = ["Encoder"]


class Encoder(nn.Module, ABC):
    """Base class of all encoders.

    Subclasses set ``self.out_dim`` and implement :meth:`forward_features` and :meth:`pool` (or
    override :meth:`forward`). ``self.spec`` is filled by :func:`skelssl.models.build_encoder` with
    ``{"name": ..., "kwargs": {...}}`` (JSON-serialisable; the layout is stored by name).
    """

    out_dim: int
    spec: dict[str, Any]
    in_channels: int
    layout: Layout
    num_persons: int

    def check_input(self, x: torch.Tensor, *, persons: bool = False) -> tuple[int, int, int, int, int]:
        """Check a batch against what the encoder was built for, and return its ``(N, C, T, V, M)``.

        ``C`` must be ``in_channels`` and ``V`` the layout's joints; with ``persons``, ``M`` must also be
        ``num_persons`` (for encoders whose weights depend on it, such as an input BatchNorm over
        ``M * V * C`` channels).

        Raises:
            ValueError: for a tensor that is not 5-D, or one built for other sizes.
        """
        if x.ndim != 5:
            raise ValueError(f"expected (N, C, T, V, M), got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        built, got = {"C": self.in_channels, "V": self.layout.num_joints}, {"C": c, "V": v}
        if persons:
            built["M"], got["M"] = self.num_persons, m
        if built != got:
            built_s, got_s = (", ".join(f"{k}={size}" for k, size in d.items()) for d in (built, got))
            raise ValueError(f"built for {built_s}; got {got_s}")
        return n, c, t, v, m

    @abstractmethod
    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> the encoder's tokens (its own layout)."""

    @abstractmethod
    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens from :meth:`forward_features` -> ``(N, out_dim)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, out_dim)``."""
        return self.pool(self.forward_features(x, lengths), lengths)

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

__all__ = ["Encoder"]


class Encoder(nn.Module, ABC):
    """Base class of all encoders.

    Subclasses set ``self.out_dim`` and implement :meth:`forward_features` and :meth:`pool` (or
    override :meth:`forward`). ``self.spec`` is filled by :func:`skelssl.models.build_encoder` with
    ``{"name": ..., "kwargs": {...}}`` (JSON-serialisable; the layout is stored by name).
    """

    out_dim: int
    spec: dict[str, Any]

    @abstractmethod
    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> the encoder's tokens (its own layout)."""

    @abstractmethod
    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens from :meth:`forward_features` -> ``(N, out_dim)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> ``(N, out_dim)``."""
        return self.pool(self.forward_features(x, lengths), lengths)

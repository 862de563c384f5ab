"""The MoCo key queue (He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
CVPR 2020; official ``moco/builder.py`` ``_dequeue_and_enqueue``), shared by the queue-based methods.

A FIFO of ``K`` L2-normalised keys that serve as negatives. Its contents and write pointer are
registered buffers, so they are saved and restored with the method's checkpoint. In data-parallel
training every process enqueues the keys of the *global* batch, gathered in rank order, so the queues
of all processes stay identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["KeyQueue"]


class KeyQueue(nn.Module):
    """FIFO queue of negative keys.

    Initialised, as in MoCo and ISC, with random Gaussian keys normalised to unit length. Each
    :meth:`enqueue` overwrites the oldest ``B`` keys; ``K`` must be a multiple of ``B`` (MoCo's
    ``assert K % batch_size == 0``), so a batch never straddles the end of the buffer.

    Args:
        size: ``K``, the number of keys (ISC: 16384).
        dim: key dimension ``D`` (ISC: 128).
        seed: seed of the random initial keys (no global random state is used).

    Attributes:
        keys: ``(K, D)`` float32 buffer, one key per row (MoCo stores the transpose).
        ptr: 0-d int64 buffer, the row the next batch is written to.
    """

    def __init__(self, size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"queue size and dim must be positive, got size={size}, dim={dim}")
        self.size, self.dim = int(size), int(dim)
        self.register_buffer("keys", self._initial_keys(seed))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.int64))

    def _initial_keys(self, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return F.normalize(torch.randn(self.size, self.dim, generator=g), dim=1)  # (K, D)

    @torch.no_grad()
    def reset(self, seed: int) -> None:
        """Empty the queue: random initial keys drawn from ``seed``, pointer at row 0."""
        self.keys.copy_(self._initial_keys(seed))
        self.ptr.zero_()

    def check_batch(self, batch: int) -> None:
        """Raise ``ValueError`` unless ``batch`` keys fit the FIFO (``K % batch == 0``)."""
        if batch < 1 or self.size % batch != 0:
            raise ValueError(
                f"queue size {self.size} is not a multiple of the global batch {batch} (batch per process x "
                f"processes): choose a queue size divisible by it (MoCo/ISC require K % batch == 0)"
            )

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest ``B`` keys by ``keys`` ``(B, D)`` (already gathered over processes)."""
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"keys must be (B, {self.dim}), got {tuple(keys.shape)}")
        b = keys.shape[0]
        self.check_batch(b)
        ptr = int(self.ptr)
        self.keys[ptr : ptr + b] = keys.detach().to(self.keys.dtype)
        self.ptr.fill_((ptr + b) % self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}"

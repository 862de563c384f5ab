"""The method interface: what the one training loop needs from a self-supervised method.

A method owns its encoder(s), heads and loss. The engine calls, per optimiser step,
``loss, logs = method.training_step(batch)``, backpropagates, steps the optimiser, then calls
:meth:`after_optimizer_step` (momentum/EMA updates of the declared pairs happen there, through the
shared :func:`momentum_update`). Everything a method keeps besides parameters (queues, step counters)
is a registered buffer, so it is saved and restored with the checkpoint.

Randomness: every random draw of a method (augmentations, masks, clip sampling, initial queues) comes
from its :attr:`Method.run_seed`, which the job sets from ``trainer.seed``
(:func:`skelssl.jobs.pretrain.build_method`), so a new run seed gives new draws and the same seed the
same run. The draws of a training step come from :meth:`Method.generator`, a CPU generator seeded from
``(run_seed, rank, step)``, where ``step`` is a buffer counting the steps: a resumed run draws what
an unbroken one draws without any generator state to save, CPU and GPU runs draw the same, and each
data-parallel process draws its own.

``batch`` is a dict of tensors already on the training device:

- ``x``: ``(N, C, T, V, M)`` float, zero-padded along ``T``;
- ``lengths``: ``(N,)`` int64, real frames per sample;
- ``label``: ``(N,)`` int64 (``-1`` where unknown; never used by self-supervised losses);
- ``index``: ``(N,)`` int64 sample index in the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from skelssl.models.base import Encoder
from skelssl.models.params import split_decay_groups  # re-exported: methods import it from here

__all__ = ["Method", "momentum_update", "split_decay_groups", "process_rank", "step_generator", "no_gather"]


class Method(nn.Module, ABC):
    """Base class of self-supervised methods.

    Attributes:
        step: 0-d int64 buffer, training steps taken; subclasses add 1 in each :meth:`training_step`.
        run_seed: seed of all the method's random draws (default 0); see :attr:`run_seed`.
    """

    #: Set by subclasses: the encoder that evaluation protocols use after pre-training.
    encoder: Encoder

    def __init__(self) -> None:
        super().__init__()
        self._run_seed = 0
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    @property
    def run_seed(self) -> int:
        """Seed of every random draw of the method: the run's ``trainer.seed``, set by the job.

        Setting it before training (``step == 0``) also redraws what the method drew once at
        construction (:meth:`reset_random_state`, e.g. ISC's initial queue keys); later it changes
        only the draws of the steps to come, so a loaded checkpoint's queues are never overwritten.
        """
        return self._run_seed

    @run_seed.setter
    def run_seed(self, seed: int) -> None:
        self._run_seed = int(seed)
        if int(self.step) == 0:
            self.reset_random_state()

    def reset_random_state(self) -> None:
        """Redraw, from :attr:`run_seed`, the state drawn once at construction (default: none)."""

    def generator(self) -> torch.Generator:
        """The CPU generator of the current step, seeded from ``(run_seed, rank, step)``."""
        return step_generator(self.run_seed, int(self.step.item()))

    @abstractmethod
    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One step's loss (scalar tensor) and scalar logs (floats or 0-d tensors)."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, target)`` module pairs updated by EMA after each optimiser step."""
        return []

    def momentum(self) -> float:
        """EMA coefficient for :meth:`momentum_pairs` (``target = m*target + (1-m)*online``)."""
        return 0.999

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        m = self.momentum()
        for online, target in self.momentum_pairs():
            momentum_update(online, target, m)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups; default: no decay for biases, norms, embeddings and tokens."""
        return split_decay_groups(self, weight_decay)

    def export_encoder(self) -> Encoder:
        """The encoder saved as ``encoder.safetensors`` for evaluation."""
        return self.encoder


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, m: float) -> None:
    """``target <- m * target + (1 - m) * online`` for parameters; buffers are copied."""
    for p_o, p_t in zip(online.parameters(), target.parameters()):
        p_t.mul_(m).add_(p_o.detach(), alpha=1.0 - m)
    for b_o, b_t in zip(online.buffers(), target.buffers()):
        b_t.copy_(b_o)


def no_gather(t: torch.Tensor) -> torch.Tensor:
    """A method's ``gather`` on one process: the tensor itself. Under data parallel training the engine
    replaces a method's ``gather`` attribute with its all-gather across processes (with gradients)."""
    return t


def process_rank() -> int:
    """This process's rank in the default process group (0 when not distributed)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def step_generator(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, rank, step)``: the random draws of one training step.

    Methods count their steps in a ``step`` buffer (saved with the checkpoint), so a resumed run draws
    the same augmentations and masks as one never stopped, CPU and GPU runs draw the same, and each
    process draws its own.
    """
    mixed = (int(seed) * 1_000_003 + process_rank()) * 1_000_033 + int(step)
    return torch.Generator(device="cpu").manual_seed(mixed % (2**63))

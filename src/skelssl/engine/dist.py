"""Cross-process helpers on top of the process group Lightning Fabric sets up.

Everything that crosses processes in skelssl goes through here: MoCo-style key queues and InfoNCE
negatives (:func:`all_gather_with_grad`), kNN feature banks and metrics (:func:`all_gather_concat`).
Without a process group (one device) every function is the identity, so methods call them
unconditionally.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as tdist

__all__ = ["world_size", "rank", "is_rank_zero", "is_distributed", "all_gather_concat", "all_gather_with_grad", "make_fabric"]


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return tdist.get_world_size() if tdist.is_available() and tdist.is_initialized() else 1


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return tdist.get_rank() if tdist.is_available() and tdist.is_initialized() else 0


# Rank variables of the launchers: torchrun (RANK, LOCAL_RANK), SLURM (SLURM_PROCID, SLURM_LOCALID),
# Fabric's own launcher (LOCAL_RANK, NODE_RANK).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_LOCALID")


def is_rank_zero() -> bool:
    """Whether this is the first process of the job: the one that prints the final lines.

    The process group's rank when one is running, otherwise the launchers' environment (every rank
    variable that is set must be 0); a plain single process is rank zero.
    """
    if tdist.is_available() and tdist.is_initialized():
        return tdist.get_rank() == 0
    return all(os.environ.get(name, "0").strip() in ("", "0") for name in _RANK_VARIABLES)


def _gather_padded(x: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``x`` (same trailing shape, any first dimension), in rank order."""
    n_local = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    sizes = [torch.zeros_like(n_local) for _ in range(world_size())]
    tdist.all_gather(sizes, n_local)
    counts = [int(s.item()) for s in sizes]
    n_max = max(counts)
    # all_gather needs equal shapes: pad every slice to the largest, then cut each back.
    padded = x.new_zeros((n_max,) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    tdist.all_gather(parts, padded.contiguous())
    return [p[:n] for p, n in zip(parts, counts)]


def all_gather_concat(fabric: Any, x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0, in rank order, without gradient.

    Args:
        fabric: the run's Fabric (or ``None``); the gather uses the process group it initialised.
        x: ``(n_r, ...)`` on this rank; ``n_r`` may differ between ranks (a last partial batch).

    Returns:
        ``(sum_r n_r, ...)``, identical on every rank.
    """
    if not is_distributed():
        return x.detach()
    return torch.cat(_gather_padded(x.detach()), 0)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums each slice's gradient over ranks and returns this rank's slice.

    Each rank's loss uses every rank's samples, so the gradient reaching this rank's samples is the
    sum of all ranks' contributions (SimCLR/solo-learn ``GatherLayer``); DDP then averages parameter
    gradients, which makes the total the gradient of the mean loss.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = _gather_padded(x)
        ctx.counts = [p.shape[0] for p in parts]
        ctx.rank = rank()
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        tdist.all_reduce(grad, op=tdist.ReduceOp.SUM)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]]


def all_gather_with_grad(x: torch.Tensor, fabric: Any = None) -> torch.Tensor:
    """Concatenate ``x`` of every rank along dim 0 (rank order); gradients flow back to this rank's slice.

    Args:
        x: ``(n_r, ...)``.
        fabric: unused beyond documenting that Fabric's process group is the one used.

    Returns:
        ``(sum_r n_r, ...)``; the identity on a single process.
    """
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


def make_fabric(cfg: Any, launch: bool = True):
    """Build (and launch) the Lightning Fabric for a :class:`~skelssl.engine.config.TrainerConfig`.

    On CPU the precision is forced to ``32-true`` (mixed precision is a GPU feature here). Under
    ``torchrun`` the devices and nodes are taken from its environment (``LOCAL_WORLD_SIZE``,
    ``WORLD_SIZE``) and Fabric joins its process group; under SLURM Fabric detects the job. Otherwise
    ``devices``/``num_nodes`` > 1 make Fabric's launcher start the other processes by re-running the
    command.
    """
    from lightning_fabric import Fabric
    from lightning_fabric.plugins.environments import TorchElasticEnvironment

    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    precision = cfg.precision if accelerator not in ("cpu",) else "32-true"
    devices, num_nodes, strategy = cfg.devices, cfg.num_nodes, cfg.strategy
    if TorchElasticEnvironment.detect():
        # Under torchrun the process layout is torchrun's; Fabric insists devices x nodes match it.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        devices, num_nodes = local, max(1, int(os.environ["WORLD_SIZE"]) // local)
        if strategy == "auto" and devices * num_nodes > 1:
            strategy = "ddp"
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision)
    if launch:
        fabric.launch()
    return fabric

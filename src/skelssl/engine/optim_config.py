"""Optimiser and learning-rate schedule settings: the ``optim`` and ``schedule`` sections of a run, and
of each training evaluation task (``eval.linear.optim``, ...). Read by :mod:`skelssl.engine.optim`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["OptimConfig", "ScheduleConfig"]


@dataclass
class OptimConfig:
    """Optimiser settings (see :func:`skelssl.engine.optim.build_optimizer`).

    Attributes:
        name: ``adamw``, ``adam`` or ``sgd``.
        lr: peak learning rate (absolute, unless ``lr_scale_batch`` is set).
        lr_scale_batch: the global batch ``lr`` is meant for; when set, the run uses the linear scaling
            rule (Goyal et al. 2017) ``lr * actual_global_batch / lr_scale_batch``. The saved config
            records the effective lr in ``lr`` and the actual global batch in ``lr_scale_batch`` (so
            resolving it again changes nothing). ``schedule.min_lr`` stays absolute.
        weight_decay: decay of the decayed parameter group.
        betas, eps: Adam/AdamW.
        momentum, nesterov: SGD.
        no_decay: name fragments of parameters without weight decay; ``None`` lets the module decide
            (its ``param_groups``); ``[]`` decays everything but 1-D tensors.
    """

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    lr_scale_batch: int | None = None
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9
    nesterov: bool = False
    no_decay: list[str] | None = None


@dataclass
class ScheduleConfig:
    """Learning-rate schedule over optimiser steps (see :mod:`skelssl.engine.optim`).

    Attributes:
        name: ``constant``, ``cosine``, ``linear`` (decay to ``min_lr``), ``step`` (x ``gamma`` every
            ``step_size`` epochs) or ``multistep`` (x ``gamma`` at each of ``milestones`` epochs).
        warmup_steps / warmup_epochs: linear warm-up from 0 (steps win when both are set; epochs may be
            fractional).
        min_lr: absolute end value of cosine/linear decay, floor of step/multistep.
        total_steps: horizon of cosine/linear decay; ``None`` is the run's length (Hi-TRS decays over
            50k updates but stops at 30k).
        milestones: epochs at which multistep multiplies the lr by ``gamma``.
        step_size: epochs between two ``step`` decays.
        gamma: the multiplicative factor of step/multistep.
    """

    name: Literal["constant", "cosine", "linear", "step", "multistep"] = "constant"
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    total_steps: int | None = None
    milestones: list[int] = field(default_factory=list)
    step_size: int = 1
    gamma: float = 0.1

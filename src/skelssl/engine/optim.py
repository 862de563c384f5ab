"""Optimisers, learning-rate schedules and layer-wise lr decay.

Schedules are pure functions of the optimiser step (:func:`lr_at`), evaluated every step as MAMP's
``util/lr_sched.py`` does with its fractional epoch, so a resumed run only needs the step counter.
Peak and end values are absolute learning rates; a parameter group's ``lr_scale`` (layer-wise decay)
multiplies the whole curve, as in MAE/MAMP (``param_group["lr"] = lr * param_group["lr_scale"]``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

import torch
from torch import nn

from skelssl.engine.config import ConfigError, OptimConfig, ScheduleConfig
from skelssl.models.params import split_decay_groups

__all__ = [
    "build_optimizer",
    "optimizer_factory",
    "param_groups_for",
    "lr_at",
    "warmup_steps",
    "Scheduler",
    "build_scheduler",
    "scheduler_factory",
    "layer_decay_groups",
    "block_layer_id",
]


# -- optimisers ------------------------------------------------------------------------------------


def param_groups_for(module: nn.Module, cfg: OptimConfig) -> list[dict[str, Any]]:
    """The parameter groups of ``module`` under ``cfg``.

    ``cfg.no_decay = None`` asks the module (``module.param_groups(weight_decay)``: methods and
    classifiers decide, e.g. layer-wise decay); a list overrides it with a name-based split in which
    1-D tensors never decay (MAMP's fine-tuning uses ``[]``: only 1-D tensors are exempt).
    """
    if cfg.no_decay is not None:
        return split_decay_groups(module, cfg.weight_decay, tuple(cfg.no_decay))
    if hasattr(module, "param_groups"):
        return module.param_groups(cfg.weight_decay)
    return split_decay_groups(module, cfg.weight_decay)


def build_optimizer(cfg: OptimConfig, param_groups: Iterable[dict[str, Any]] | Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD over ``param_groups``.

    Args:
        cfg: optimiser settings; ``cfg.lr`` is the peak lr.
        param_groups: dicts with ``params`` and optionally ``weight_decay`` and ``lr_scale`` (its lr is
            ``cfg.lr * lr_scale``), or plain parameters.

    Returns:
        The optimiser; every group carries ``lr_scale`` (default 1).
    """
    groups = []
    for g in param_groups:
        g = dict(g) if isinstance(g, dict) else {"params": [g]}
        g["params"] = [p for p in g["params"] if p.requires_grad]
        if not g["params"]:
            continue
        g.setdefault("lr_scale", 1.0)
        g["lr"] = cfg.lr * g["lr_scale"]
        groups.append(g)
    if not groups:
        raise ConfigError("optim: no trainable parameter to optimise")
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    raise ConfigError(f"optim.name: unknown optimiser {cfg.name!r} (adamw, adam, sgd)")


def optimizer_factory(cfg: OptimConfig) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """``module -> optimiser`` for :meth:`skelssl.engine.loop.Trainer.fit`."""

    def make(module: nn.Module) -> torch.optim.Optimizer:
        return build_optimizer(cfg, param_groups_for(module, cfg))

    return make


# -- schedules -------------------------------------------------------------------------------------


def warmup_steps(cfg: ScheduleConfig, steps_per_epoch: int) -> int:
    """Warm-up length in optimiser steps (``warmup_steps`` wins over ``warmup_epochs``)."""
    if cfg.warmup_steps:
        return int(cfg.warmup_steps)
    return int(round(cfg.warmup_epochs * steps_per_epoch))


def lr_at(cfg: ScheduleConfig, peak: float, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Learning rate (before ``lr_scale``) used by optimiser step ``step`` (0-based).

    Args:
        cfg: the schedule.
        peak: the peak lr (``optim.lr``).
        step: optimiser steps already taken.
        steps_per_epoch: optimiser steps per epoch (step/multistep count epochs, warm-up may too).
        total_steps: the run's length; the decay horizon unless ``cfg.total_steps`` is set.

    Returns:
        The lr. Warm-up rises linearly from 0 (``peak * step / warmup``), as both MAMP and Hi-TRS do.
    """
    warm = warmup_steps(cfg, steps_per_epoch)
    if step < warm:
        return peak * step / warm
    horizon = int(cfg.total_steps) if cfg.total_steps is not None else int(total_steps)
    if cfg.name == "constant":
        return peak
    if cfg.name in ("cosine", "linear"):
        span = max(1, horizon - warm)
        progress = min(1.0, (step - warm) / span)
        if cfg.name == "cosine":
            return cfg.min_lr + (peak - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak + (cfg.min_lr - peak) * progress
    epoch = step // max(1, steps_per_epoch)
    if cfg.name == "step":
        if cfg.step_size < 1:
            raise ConfigError(f"schedule.step_size: must be >= 1, got {cfg.step_size}")
        return max(cfg.min_lr, peak * cfg.gamma ** (epoch // cfg.step_size))
    if cfg.name == "multistep":
        passed = sum(1 for m in cfg.milestones if epoch >= m)
        return max(cfg.min_lr, peak * cfg.gamma**passed)
    raise ConfigError(f"schedule.name: unknown schedule {cfg.name!r}")


class Scheduler:
    """Sets every group's lr to ``lr_scale * lr_at(step)`` before each optimiser step.

    The peak of each group is its lr at construction divided by its ``lr_scale`` (i.e. ``optim.lr``
    for groups built by :func:`build_optimizer`). Its state is just the step counter (JSON).

    Args:
        optimizer: the optimiser.
        cfg: the schedule.
        steps_per_epoch: optimiser steps per epoch.
        total_steps: optimiser steps of the whole run.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> None:
        self.optimizer = optimizer
        self.cfg = cfg
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = int(total_steps)
        for g in optimizer.param_groups:
            g.setdefault("lr_scale", 1.0)
            g.setdefault("peak_lr", g["lr"] / g["lr_scale"] if g["lr_scale"] else g["lr"])
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = g["lr_scale"] * lr_at(self.cfg, g["peak_lr"], self.step_count, self.steps_per_epoch, self.total_steps)

    def step(self) -> None:
        """Call after each optimiser step: sets the lr of the next one."""
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        self._apply()


def build_scheduler(cfg: ScheduleConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int, total_steps: int) -> Scheduler:
    """The :class:`Scheduler` for ``cfg``."""
    if cfg.name == "multistep" and not cfg.milestones:
        raise ConfigError("schedule.milestones: multistep needs at least one milestone epoch")
    return Scheduler(optimizer, cfg, steps_per_epoch, total_steps)


def scheduler_factory(cfg: ScheduleConfig) -> Callable[[torch.optim.Optimizer, int, int], Scheduler]:
    """``(optimizer, steps_per_epoch, total_steps) -> scheduler`` for :meth:`Trainer.fit`."""

    def make(optimizer: torch.optim.Optimizer, steps_per_epoch: int, total_steps: int) -> Scheduler:
        return build_scheduler(cfg, optimizer, steps_per_epoch, total_steps)

    return make


# -- layer-wise lr decay ---------------------------------------------------------------------------


def layer_decay_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    num_layers: int,
    decay: float,
    layer_id_fn: Callable[[str], int],
    weight_decay: float = 0.0,
    no_decay_fn: Callable[[str, nn.Parameter], bool] | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups with layer-wise lr decay (MAE/MAMP ``util/lr_decay.py``).

    A parameter in layer ``i`` (``0 <= i <= num_layers``) gets ``lr_scale = decay ** (num_layers - i)``;
    the embeddings are layer 0, block ``b`` is layer ``b + 1`` and the head is ``num_layers``.

    Args:
        named_params: ``module.named_parameters()``; frozen parameters are left out.
        num_layers: the top layer id (MAMP: ``depth + 1``).
        decay: per-layer factor (MAMP fine-tuning: 0.8).
        layer_id_fn: parameter name -> layer id.
        weight_decay: decay of the decayed parameters.
        no_decay_fn: ``(name, param) -> True`` for parameters without weight decay; default: 1-D
            tensors (MAMP's fine-tuning list of names is empty).

    Returns:
        Groups ``{"params", "weight_decay", "lr_scale", "layer_id"}`` ordered by layer, decayed first.
    """
    no_decay_fn = no_decay_fn or (lambda name, p: p.ndim == 1)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        layer = int(layer_id_fn(name))
        if not 0 <= layer <= num_layers:
            raise ValueError(f"layer id {layer} of {name!r} outside 0..{num_layers}")
        skip = bool(no_decay_fn(name, p))
        key = (layer, skip)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": 0.0 if skip else weight_decay,
                "lr_scale": decay ** (num_layers - layer),
                "layer_id": layer,
            }
        groups[key]["params"].append(p)
    return [groups[k] for k in sorted(groups)]


def block_layer_id(
    num_layers: int,
    block_pattern: str = r"(?:^|\.)blocks\.(\d+)\.",
    embed_hints: tuple[str, ...] = ("embed", "pos_embed", "temp_embed", "cls_token", "mask_token"),
) -> Callable[[str], int]:
    """A ``layer_id_fn`` for transformers: embeddings -> 0, ``blocks.i.*`` -> ``i + 1``, the rest -> top.

    This is MAMP's ``get_layer_id_for_vit`` generalised to any prefix (``encoder.blocks.3.attn...``).
    """
    pattern = re.compile(block_pattern)

    def layer_id(name: str) -> int:
        m = pattern.search(name)
        if m:
            return int(m.group(1)) + 1
        leaf = name.split(".")
        if any(h in part for part in leaf for h in embed_hints):
            return 0
        return num_layers

    return layer_id

"""Optimiser parameter groups: which parameters get weight decay.

One rule for every trainable module (methods, classifiers, the engine's ``optim.no_decay``
override). It lives in the models layer so that both ``methods`` and ``evaluation`` (which never
imports methods) can use the same function.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["NO_DECAY_HINTS", "split_decay_groups"]

# Name fragments of parameters without weight decay (Hi-TRS's no-decay list, extended to the
# embeddings and tokens of the transformer encoders); 1-D tensors never decay whatever their name.
NO_DECAY_HINTS: tuple[str, ...] = ("bias", "norm", "bn", "pos_embed", "temp_embed", "_pe", "token", "embedding")


def split_decay_groups(
    module: nn.Module, weight_decay: float, no_decay: tuple[str, ...] = NO_DECAY_HINTS
) -> list[dict[str, Any]]:
    """The trainable parameters of ``module`` in two optimiser groups: with and without decay.

    Args:
        module: any module; parameters with ``requires_grad=False`` are left out.
        weight_decay: the decay of the first group.
        no_decay: name fragments (matched case-insensitively) that exempt a parameter; 1-D
            parameters (biases, norm scales) are exempt whatever this holds (``()``: only those).

    Returns:
        ``[{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}]``,
        each group only when non-empty, parameters in ``named_parameters`` order.
    """
    decay, skip = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        lname = name.lower()
        if p.ndim <= 1 or any(h in lname for h in no_decay):
            skip.append(p)
        else:
            decay.append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if skip:
        groups.append({"params": skip, "weight_decay": 0.0})
    return groups

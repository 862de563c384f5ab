"""Tensor-by-tensor maps between an official checkpoint's state dict and a skelssl method's.

A map is a list of :class:`Rule` s, one per tensor of *our* method (its ``state_dict()``), each naming
the official tensor(s) it comes from and how they combine. The rules are generated from our module's
own names and shapes (``official/hitrs.py``, ``isc.py``, ``mamp.py``), so every size of a model has
its map, and the official names and shapes a file must hold follow from them
(:func:`official_shapes`); a file is compared against those before anything is converted
(:func:`check_tensors`).

Kinds of rule (the structural differences listed in ``shared/data/official_checkpoints/README.md``):

- ``copy``: one tensor, same shape;
- ``reshape``: one tensor, another shape of the same numbers (Hi-TRS fusion tokens ``(1, 1, D)`` are
  our ``(D,)``; a MoCo ``queue_ptr (1,)`` is our 0-d pointer);
- ``transpose``: a MoCo queue ``(D, K)`` is our ``(K, D)``;
- ``cat0`` / ``cat1``: several official tensors are one of ours, concatenated along dimension 0 (q, k,
  v into one qkv; AGCN's three ``conv_a`` / ``conv_b``) or 1 (AGCN's three ``conv_d`` weights, whose
  inputs we stack); the official parts are equal slices;
- ``sum``: AGCN's three ``conv_d`` biases are one bias of ours, their sum. The split is not recoverable
  from the sum: :func:`to_official` reuses the parts a conversion kept when they still add up to our
  bias exactly, and otherwise puts the whole bias in the first part and zeros in the others (the same
  function in the official module, which adds the three outputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import torch

from skelssl.engine.checkpoint import CheckpointError, tensor_mismatch

__all__ = ["Rule", "official_shapes", "official_dtypes", "to_ours", "to_official", "check_tensors", "folded_parts"]

Kind = Literal["copy", "reshape", "transpose", "cat0", "cat1", "sum"]


@dataclass(frozen=True)
class Rule:
    """How one tensor of ours is made from official tensors.

    Attributes:
        ours: our state-dict key.
        official: the official key(s) (without a ``DataParallel`` ``module.`` prefix).
        kind: see the module docstring.
        shape: the official shape, for ``reshape``.
    """

    ours: str
    official: tuple[str, ...]
    kind: Kind = "copy"
    shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        multi = self.kind in ("cat0", "cat1", "sum")
        if multi != (len(self.official) > 1):
            raise ValueError(f"rule for {self.ours}: kind {self.kind!r} with {len(self.official)} official tensor(s)")
        if (self.kind == "reshape") != (self.shape is not None):
            raise ValueError(f"rule for {self.ours}: a reshape needs the official shape, and only a reshape has one")


def _part_shapes(rule: Rule, ours: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Official shapes of the rule's tensors, given the shape of ours."""
    n = len(rule.official)
    if rule.kind in ("copy", "sum"):
        return [tuple(ours)] * n
    if rule.kind == "reshape":
        return [tuple(rule.shape)]
    if rule.kind == "transpose":
        return [tuple(reversed(ours))]
    dim = 0 if rule.kind == "cat0" else 1
    if ours[dim] % n:
        raise ValueError(f"{rule.ours}: dimension {dim} of {ours} does not split into {n} equal parts")
    part = list(ours)
    part[dim] //= n
    return [tuple(part)] * n


def official_shapes(rules: Iterable[Rule], ours: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """``official key -> shape`` that a file matching ``ours`` (our state dict) holds."""
    out: dict[str, tuple[int, ...]] = {}
    for rule in rules:
        for key, shape in zip(rule.official, _part_shapes(rule, tuple(ours[rule.ours].shape))):
            out[key] = shape
    return out


def official_dtypes(rules: Iterable[Rule], ours: dict[str, torch.Tensor]) -> dict[str, torch.dtype]:
    """``official key -> dtype`` (the same as ours: float32 weights, int64 counters and pointers)."""
    return {key: ours[rule.ours].dtype for rule in rules for key in rule.official}


def to_ours(rules: Iterable[Rule], official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our tensors from the official ones (names and shapes already checked by :func:`check_tensors`)."""
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        parts = [official[k] for k in rule.official]
        if rule.kind == "copy":
            t = parts[0].clone()
        elif rule.kind == "reshape":
            t = parts[0].reshape(-1).clone()
        elif rule.kind == "transpose":
            t = parts[0].t().contiguous()
        elif rule.kind in ("cat0", "cat1"):
            t = torch.cat(parts, dim=0 if rule.kind == "cat0" else 1)
        else:  # sum, in the order of the official forward (conv_d[0] + conv_d[1] + conv_d[2])
            t = parts[0].clone()
            for p in parts[1:]:
                t = t + p
        out[rule.ours] = t
    return out


def _reshaped(rule: Rule, t: torch.Tensor) -> torch.Tensor:
    if rule.kind == "reshape":
        return t.reshape(rule.shape)
    return t


def to_official(rules: Iterable[Rule], ours: dict[str, torch.Tensor],
                kept: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Official tensors from ours (the inverse of :func:`to_ours`).

    Args:
        rules: the map.
        ours: our state dict (it may hold only some of the rules' tensors: an encoder alone).
        kept: official tensors a conversion kept because ours cannot hold them (the parts of a ``sum``).

    Returns:
        ``official key -> tensor`` for every rule whose tensor ``ours`` has.
    """
    kept = kept or {}
    out: dict[str, torch.Tensor] = {}
    for rule in rules:
        if rule.ours not in ours:
            continue
        t = ours[rule.ours].detach().cpu()
        shapes = _part_shapes(rule, tuple(t.shape))
        if rule.kind == "copy":
            parts = [t.clone()]
        elif rule.kind == "reshape":
            parts = [t.reshape(shapes[0]).clone()]
        elif rule.kind == "transpose":
            parts = [t.t().contiguous()]
        elif rule.kind in ("cat0", "cat1"):
            size = shapes[0][0 if rule.kind == "cat0" else 1]
            parts = [p.clone() for p in torch.split(t, size, dim=0 if rule.kind == "cat0" else 1)]
        else:
            parts = _split_sum(rule, t, kept)
        out.update(zip(rule.official, parts))
    return out


def _split_sum(rule: Rule, total: torch.Tensor, kept: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The parts of a summed tensor: the kept ones when they still add up to it exactly."""
    if all(k in kept for k in rule.official):
        parts = [kept[k].to(total.dtype) for k in rule.official]
        again = parts[0].clone()
        for p in parts[1:]:
            again = again + p
        if again.shape == total.shape and torch.equal(again, total):
            return [p.clone() for p in parts]
    return [total.clone()] + [torch.zeros_like(total) for _ in rule.official[1:]]


def folded_parts(rules: Iterable[Rule], official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official tensors whose values ours cannot hold (the parts of every ``sum``), to keep aside."""
    return {k: official[k].clone() for rule in rules if rule.kind == "sum" for k in rule.official}


def check_tensors(tensors: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]],
                  dtypes: dict[str, torch.dtype], what: str, looks_like: str | None) -> None:
    """Raise one :class:`CheckpointError` line naming every missing, unexpected and mis-shaped tensor.

    Args:
        tensors: the file's state dict (prefix removed).
        shapes: what it must hold (:func:`official_shapes`).
        dtypes: their dtypes (a float file where an integer counter belongs is mis-typed).
        what: what was expected (``"the official MAMP checkpoint of configs/mamp/ntu60_xsub.yaml"``).
        looks_like: what the file looks like, or ``None`` when it is not recognised.
    """
    parts = tensor_mismatch(tensors, shapes, dtypes)
    if not parts:
        return
    seen = f"; the file looks like {looks_like}" if looks_like else "; the file looks like none of the official checkpoints skelssl reads"
    raise CheckpointError(f"does not match {what}: {'; '.join(parts)}{seen}")

"""Augmentations as pure, batched tensor functions with an explicit generator.

Every transform takes a padded batch ``x`` ``(N, C, T, V, M)`` (plus ``lengths`` ``(N,)`` where frames
matter) and a ``torch.Generator``, and returns new tensors; it runs on whatever device ``x`` is on, so
methods augment on the training device. Two kinds of return value:

- a tensor: coordinates changed, frames and ``lengths`` unchanged (spatial transforms), or a
  fixed-length resample (:func:`crop_resize`, :func:`uniform_sample`, marked ``fixed_length = True``;
  so is any transform that changes ``T``) after which every sample is ``T'`` frames long;
- a tuple ``(x, lengths)``: transforms that change the number of real frames (:func:`time_crop`).

:func:`random_apply` applies a transform to a random subset of the batch and :func:`random_choice`
one of several transforms per sample, both still as whole-batch operations. :class:`Augment` chains
steps over a batch dict; multi-view methods call it once per view.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Mapping, Sequence

import torch

from skelssl.core.batch import frame_mask, full_lengths, person_mask
from skelssl.transforms import spatial, streams, temporal

# The package re-exports every public name of its three modules (their ``__all__``), so a user
# writes ``T.rotate`` or ``T.crop_resize`` without knowing which file holds it.
from skelssl.transforms.spatial import *  # noqa: F401,F403
from skelssl.transforms.streams import *  # noqa: F401,F403
from skelssl.transforms.temporal import *  # noqa: F401,F403
from skelssl.transforms.temporal import check_batch, uniform  # used below

__all__ = [
    # composition (this file)
    "Augment",
    "call_transform",
    "random_apply",
    "random_choice",
    *temporal.__all__,
    *spatial.__all__,
    *streams.__all__,
    # batch masks (skelssl.core.batch)
    "full_lengths",
    "frame_mask",
    "person_mask",
]

Transform = Callable[..., Any]


def _accepts_uncached(fn: Transform, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


_accepts_cached = functools.lru_cache(maxsize=256)(_accepts_uncached)


def _accepts(fn: Transform, name: str) -> bool:
    """Whether ``fn`` takes a keyword ``name`` (signatures are cached; unhashable callables are not)."""
    try:
        return _accepts_cached(fn, name)
    except TypeError:
        return _accepts_uncached(fn, name)


def call_transform(
    fn: Transform,
    x: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator | None,
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Call ``fn`` the one way every transform understands, and normalise what it returns.

    ``lengths`` and ``generator`` are passed only if ``fn`` takes them; a ``generator`` already in
    ``kwargs`` wins (``{"generator": None}`` makes :func:`uniform_sample` deterministic inside a chain).

    Args:
        fn: a transform.
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames.
        generator: source of randomness (may be ``None`` for deterministic transforms).
        kwargs: the transform's own keyword arguments.

    Returns:
        ``(x', lengths', returned_tuple)``: ``x'`` ``(N, C, T', V, M)``, ``lengths'`` ``(N,)``, and
        whether ``fn`` itself returned a tuple.
    """
    kw = dict(kwargs or {})
    if _accepts(fn, "lengths"):
        kw["lengths"] = lengths
    if _accepts(fn, "generator"):
        kw.setdefault("generator", generator)
    out = fn(x, **kw)
    if isinstance(out, tuple):
        y, new_lengths = out
        return y, new_lengths, True
    base = getattr(fn, "func", fn)  # see through functools.partial
    if getattr(base, "fixed_length", False) or out.shape[2] != x.shape[2]:
        # A fixed-length resample (crop_resize, uniform_sample): every output frame is real.
        return out, torch.full_like(lengths, out.shape[2]), False
    return out, lengths, False


def random_apply(
    fn: Transform,
    p: float,
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    generator: torch.Generator,
    **kwargs: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Apply ``fn`` to each sample independently with probability ``p``.

    A per-sample Bernoulli mask selects between ``fn(x)`` (computed for the whole batch) and ``x``, so
    the batch stays one tensor operation. The mask is drawn first, then ``fn``'s own parameters.

    Args:
        fn: a shape-preserving transform.
        p: probability per sample.
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        generator: source of the mask and of ``fn``'s parameters.
        **kwargs: passed to ``fn``.

    Returns:
        What ``fn`` returns: ``(N, C, T, V, M)``, or ``(x', lengths')`` for a transform returning lengths.
    """
    check_batch(x, lengths)
    lens = full_lengths(x, lengths)
    chosen = uniform((x.shape[0],), generator, x.device) < p  # (N,)
    y, y_lens, as_tuple = call_transform(fn, x, lens, generator, kwargs)
    if y.shape != x.shape:
        raise ValueError(f"random_apply needs a shape-preserving transform; {fn!r} gave {tuple(y.shape)}")
    out = torch.where(chosen[:, None, None, None, None], y, x)
    if as_tuple:
        return out, torch.where(chosen, y_lens, lens)
    return out


def random_choice(
    x: torch.Tensor,
    lengths: torch.Tensor | None = None,
    *,
    choices: Sequence[tuple[Transform, Mapping[str, Any]]],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one transform per sample, chosen uniformly from ``choices``.

    Hi-TRS applies "one op from {scale, noise, shear}, then one from {time_interpolate, time_crop}" and
    ISC "one of shear or joint corruption"; this does that for a whole batch: each choice runs on the
    full batch and a per-sample index selects the result.

    Args:
        x: ``(N, C, T, V, M)``.
        lengths: ``(N,)`` real frames (default: all ``T``).
        choices: ``(fn, kwargs)`` pairs of shape-preserving transforms.
        generator: source of the choice and of the transforms' parameters.

    Returns:
        ``(x', lengths')``: ``(N, C, T, V, M)`` and ``(N,)``.
    """
    check_batch(x, lengths)
    if not choices:
        raise ValueError("random_choice needs at least one choice")
    lens = full_lengths(x, lengths)
    k = len(choices)
    pick = (uniform((x.shape[0],), generator, x.device) * k).long().clamp(max=k - 1)  # (N,)
    out, out_lens = x, lens
    for i, (fn, kw) in enumerate(choices):
        y, y_lens, _ = call_transform(fn, x, lens, generator, kw)
        if y.shape != x.shape:
            raise ValueError(f"random_choice needs shape-preserving transforms; {fn!r} gave {tuple(y.shape)}")
        sel = pick == i
        out = torch.where(sel[:, None, None, None, None], y, out)
        out_lens = torch.where(sel, y_lens, out_lens)
    return out, out_lens


class Augment:
    """A chain of transforms applied to a batch dict ``{"x", "lengths", ...}``.

    Args:
        steps: ``(fn, kwargs)`` or ``(fn, kwargs, p)`` triples, applied in order; ``p < 1`` applies the
            step to a random subset of the batch (:func:`random_apply`).

    Example:
        >>> aug = Augment([(crop_resize, {"out_frames": 64, "ratio": (0.5, 1.0)}),
        ...                (shear, {"magnitude": 0.5}), (flip, {"layout": NTU25}, 0.5)])
        >>> view = aug(batch, generator)  # new dict; batch is untouched
    """

    def __init__(self, steps: Sequence[tuple]) -> None:
        self.steps: list[tuple[Transform, dict[str, Any], float]] = []
        for step in steps:
            if len(step) == 2:
                fn, kw, p = *step, 1.0
            elif len(step) == 3:
                fn, kw, p = step
            else:
                raise ValueError(f"an Augment step is (fn, kwargs) or (fn, kwargs, p), got {step!r}")
            if not callable(fn) or not isinstance(kw, Mapping) or not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"bad Augment step {step!r}: need a callable, a dict and 0 <= p <= 1")
            self.steps.append((fn, dict(kw), float(p)))

    def __call__(self, batch: Mapping[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """Augment ``batch["x"]`` ``(N, C, T, V, M)``; returns a new dict with ``x`` and ``lengths`` replaced."""
        x = batch["x"]
        check_batch(x, batch.get("lengths"))
        lengths = full_lengths(x, batch.get("lengths"))
        for fn, kw, p in self.steps:
            if p <= 0.0:
                continue
            if p >= 1.0:
                x, lengths, _ = call_transform(fn, x, lengths, generator, kw)
            else:
                out = random_apply(fn, p, x, lengths, generator=generator, **kw)
                x, lengths = out if isinstance(out, tuple) else (out, lengths)
        new = dict(batch)
        new["x"], new["lengths"] = x, lengths
        return new

    def __repr__(self) -> str:
        inner = ", ".join(f"{getattr(fn, '__name__', repr(fn))}({kw}, p={p})" for fn, kw, p in self.steps)
        return f"Augment([{inner}])"

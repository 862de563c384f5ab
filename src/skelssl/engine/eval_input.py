"""The evaluation input: how sequences reach a frozen or trained encoder (``eval.input``).

Training crops (random window, resize, optional rotation) and the deterministic test-time view
(centre crop resized to ``input.frames``); ``None`` where the encoder takes whole sequences. And the
input stream (``data.stream``) every store is read through, in pre-training and evaluation alike.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from skelssl.data.store import Store
from skelssl.engine.config import ConfigError
from skelssl.engine.eval_config import InputConfig
from skelssl.transforms.spatial import rotate
from skelssl.transforms.streams import STREAMS, sample_stream
from skelssl.transforms.temporal import crop_resize

__all__ = ["train_transform", "test_transform", "stream_view"]


def stream_view(store: Store, name: str) -> Store:
    """``store`` read as the input stream ``name`` (``joint``: the store itself; ``bone``, ``motion``,
    ``bone_motion``: derived from each sample's joints as it is read, a ``score`` channel kept).

    Derived before the method's augmentations, as 2s-AGCN's and CTR-GCN's feeders do: bone vectors
    commute with the rotations, shears and temporal resampling the methods apply; motion is taken at
    the store's frame rate, before any temporal resize. (Hi-TRS's own ``encoder.kwargs.stream`` derives
    its stream after augmentation, as the official code does.)

    Raises:
        ConfigError: an unknown stream.
    """
    if name == store.stream:
        return store
    if name not in STREAMS:
        raise ConfigError(f"unknown input stream {name!r}; known: {', '.join(STREAMS)}")
    return store.with_stream(name, functools.partial(sample_stream, name, layout=store.layout, coords=store.coords))


def train_transform(inp: InputConfig, coords: int | None = None) -> Callable[[dict, torch.Generator], dict] | None:
    """The training view; ``coords`` leading channels are coordinates (the rotation leaves a score alone)."""
    if inp.frames is None and not inp.rotate:
        return None

    def transform(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        x, lengths = batch["x"], batch["lengths"]
        if inp.frames is not None:
            x = crop_resize(x, lengths, inp.frames, ratio=tuple(inp.train_crop), min_frames=inp.min_frames, generator=generator)
            lengths = torch.full_like(lengths, inp.frames)
        if inp.rotate:
            x = rotate(x, inp.rotate, generator=generator, coords=coords)
        return {**batch, "x": x, "lengths": lengths}

    return transform


def test_transform(inp: InputConfig) -> Callable[[dict], dict] | None:
    if inp.frames is None:
        return None

    def transform(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = crop_resize(batch["x"], batch["lengths"], inp.frames, centre=inp.test_centre, min_frames=inp.min_frames)
        return {**batch, "x": x, "lengths": torch.full_like(batch["lengths"], inp.frames)}

    return transform

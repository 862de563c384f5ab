"""The evaluation input: how sequences reach a frozen or trained encoder (``eval.input``).

Training crops (random window, resize, optional rotation) and the deterministic test-time view
(centre crop resized to ``input.frames``); ``None`` where the encoder takes whole sequences.
"""

from __future__ import annotations

from typing import Callable

import torch

from skelssl.engine.eval_config import InputConfig
from skelssl.transforms.spatial import rotate
from skelssl.transforms.temporal import crop_resize

__all__ = ["train_transform", "test_transform"]


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

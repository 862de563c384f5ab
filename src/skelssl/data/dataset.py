"""A torch Dataset over a packed store, and a collate that keeps variable lengths.

The data loader only slices the memory-mapped store; random augmentation (crops, shears, noise) runs
batched on the training device (:mod:`skelssl.transforms`), so workers stay cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from skelssl.core.conventions import to_ctvm
from skelssl.data.store import Store

__all__ = ["SkeletonDataset", "collate", "uniform_frame_indices"]


def uniform_frame_indices(length: int, max_frames: int) -> np.ndarray:
    """Deterministic, evenly spaced frame indices that shorten ``length`` to ``max_frames``."""
    if length <= max_frames:
        return np.arange(length)
    return np.floor(np.arange(max_frames) * (length / max_frames)).astype(np.int64)


class SkeletonDataset(Dataset):
    """Samples of a store as ``(C, T, V, M)`` tensors.

    Args:
        store: a :class:`Store` or its path.
        indices: store indices to expose (default: all samples).
        max_frames: sequences longer than this are shortened by even temporal sampling (deterministic;
            random temporal crops belong to the batched transforms).
        transform: optional callable on the ``(C, T, V, M)`` tensor (per-sample; prefer batched).

    Items are dicts: ``x`` ``(C, T, V, M)`` float32, ``length`` (int), ``label`` (int, -1 unknown),
    ``index`` (the store index).
    """

    def __init__(
        self,
        store: Store | str | Path,
        indices: Sequence[int] | np.ndarray | None = None,
        max_frames: int | None = None,
        transform=None,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.indices = np.arange(len(self.store)) if indices is None else np.asarray(indices, np.int64)
        self.max_frames = max_frames
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.store.labels[self.indices]

    def __getitem__(self, i: int) -> dict[str, Any]:
        idx = int(self.indices[i])
        frames = self.store.frames(idx)  # (T, M, V, C) memory-mapped view
        if self.max_frames is not None and frames.shape[0] > self.max_frames:
            frames = frames[uniform_frame_indices(frames.shape[0], self.max_frames)]
        x = torch.from_numpy(np.ascontiguousarray(to_ctvm(np.asarray(frames, dtype=np.float32))))  # (C, T, V, M)
        if self.transform is not None:
            x = self.transform(x)
        return {"x": x, "length": x.shape[1], "label": int(self.store.labels[idx]), "index": idx}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pad ``x`` with zeros to the longest ``T`` of the batch.

    Returns:
        ``x`` ``(N, C, T_max, V, M)``, ``lengths`` ``(N,)``, ``label`` ``(N,)``, ``index`` ``(N,)``.
    """
    t_max = max(int(it["x"].shape[1]) for it in items)
    c, _, v, m = items[0]["x"].shape
    x = torch.zeros(len(items), c, t_max, v, m, dtype=items[0]["x"].dtype)
    for n, it in enumerate(items):
        x[n, :, : it["x"].shape[1]] = it["x"]
    return {
        "x": x,
        "lengths": torch.tensor([int(it["x"].shape[1]) for it in items], dtype=torch.int64),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.int64),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
    }

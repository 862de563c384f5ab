"""The baselines beside every frozen-feature number: the raw input, and which test samples are copies.

A representation is worth reporting when it beats the joints it starts from. The raw-input baseline
feeds the same samples, split and test-time input transform (e.g. the centre crop resized to 64
frames) as the encoder gets, flattened, to the same kNN and robust probe.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from skelssl.data.store import Store
from skelssl.evaluation.features import extract_features
from skelssl.transforms.temporal import crop_resize

__all__ = ["RawInput", "raw_input_features", "not_copies_mask", "raw_frames_for", "accuracy"]


class RawInput(nn.Module):
    """The "encoder" of the raw-input baseline: ``(N, C, T, V, M)`` -> ``(N, C*T*V*M)``, fixed length.

    Args:
        frames: every sequence is resized to this many frames (centre crop as the encoder's test
            input: ``centre``, ``min_frames``) before flattening.
    """

    def __init__(self, frames: int, centre: float = 0.95, min_frames: int = 64) -> None:
        super().__init__()
        self.frames, self.centre, self.min_frames = int(frames), centre, min_frames

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[2] != self.frames or lengths is None or bool((lengths != x.shape[2]).any()):
            x = crop_resize(x, lengths, self.frames, centre=self.centre, min_frames=self.min_frames)  # (N, C, F, V, M)
        return x.reshape(x.shape[0], -1)


def raw_frames_for(store: Store, frames: int | None, max_dim: int) -> int:
    """The raw baseline's length: the encoder's input length (64 when it takes whole sequences), cut
    so that ``frames * C * V * M`` stays within ``max_dim`` (NTU's 2 x 25 x 3 values a frame: 27)."""
    per_frame = store.channels * store.layout.num_joints * store.num_persons
    return int(max(4, min(frames or 64, max_dim // per_frame)))


def raw_input_features(
    dataset: Dataset,
    frames: int,
    *,
    centre: float = 0.95,
    min_frames: int = 64,
    batch_transform: Callable | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C*frames*V*M)`` flattened raw coordinates and ``(N,)`` labels of ``dataset``.

    ``batch_transform`` is the encoder's deterministic test-time transform when it has one (so the
    raw features see exactly its input); otherwise a centre crop resized to ``frames``.
    """
    feats, labels = extract_features(
        RawInput(frames, centre=centre, min_frames=min_frames), dataset, batch_size=batch_size,
        batch_transform=batch_transform, num_workers=num_workers,
    )
    return feats.numpy(), labels.numpy()


def not_copies_mask(store: Store, train: np.ndarray, test: np.ndarray) -> np.ndarray | None:
    """``(len(test),)`` bool: the test samples whose frames equal no training sample's; ``None`` when
    the store does not record duplicates or no test sample is a copy."""
    groups = store.duplicate_groups
    if groups is None:
        return None
    in_train = np.zeros(len(store), dtype=bool)
    in_train[np.asarray(train, dtype=np.int64)] = True
    copied = np.zeros(len(store), dtype=bool)
    for group in groups:
        if in_train[group].any():
            copied[group] = True
    mask = ~(copied[np.asarray(test, dtype=np.int64)] & ~in_train[np.asarray(test, dtype=np.int64)])
    return None if mask.all() else mask


def accuracy(pred: np.ndarray, labels: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Top-1 in percent, over ``mask`` when given."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if mask is not None:
        pred, labels = pred[mask], labels[mask]
    return float((pred == labels).mean() * 100) if len(labels) else float("nan")

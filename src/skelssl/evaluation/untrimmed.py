"""Sliding windows over untrimmed sequences: what a detection head is trained and tested on.

A detection head needs features at many points of a long sequence. Encoders return one ``(N, D)``
vector per input, so the generic, encoder-agnostic way is to cut each untrimmed sequence into
overlapping windows, encode every window with ``encoder(x, lengths)``, label each window from the
per-frame labels (background included), and spread each window's class probabilities back over the
frames it covers (:func:`frame_scores`). Hi-TRS's per-clip tokens (``HiTRS.clip_features``) would be
a finer, Hi-TRS-only alternative; the window approach works for every encoder and is what we use.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from skelssl.core.conventions import StoreError, to_ctvm
from skelssl.data.store import Store

__all__ = ["window_spans", "window_labels", "frame_scores", "WindowDataset"]


def window_spans(num_frames: int, window: int, stride: int) -> np.ndarray:
    """Windows ``[start, end)`` that cover every frame of a sequence.

    Starts are ``0, stride, 2 * stride, ...``; one more window ending on the last frame is added when
    the regular ones stop short of it. A sequence shorter than ``window`` is one window.

    Returns:
        ``(K, 2)`` int64 ``start, end`` pairs, in time order.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if num_frames < 1:
        raise ValueError(f"a sequence needs at least one frame, got {num_frames}")
    if num_frames <= window:
        return np.array([[0, num_frames]], dtype=np.int64)
    starts = np.arange(0, num_frames - window + 1, stride, dtype=np.int64)
    if starts[-1] + window < num_frames:
        starts = np.append(starts, num_frames - window)
    return np.stack([starts, starts + window], axis=1)


def window_labels(frame_labels: np.ndarray, spans: np.ndarray, background_index: int, rule: Literal["majority", "centre"] = "majority") -> np.ndarray:
    """One training label per window, background included.

    Args:
        frame_labels: ``(T,)`` per-frame class, ``-1`` background.
        spans: ``(K, 2)`` windows from :func:`window_spans`.
        background_index: the label given to background (the head's extra class, ``C``).
        rule: ``majority`` (the most frequent frame label; a tie goes to the lower class index, so
            an action beats background) or ``centre`` (the label of the window's centre frame).

    Returns:
        ``(K,)`` int64 labels in ``0..background_index``.
    """
    labels = np.where(np.asarray(frame_labels) < 0, background_index, frame_labels).astype(np.int64)  # (T,)
    if rule == "centre":
        return labels[(spans[:, 0] + spans[:, 1] - 1) // 2]
    if rule != "majority":
        raise ValueError(f"rule must be 'majority' or 'centre', got {rule!r}")
    return np.array([np.bincount(labels[s:e], minlength=background_index + 1).argmax() for s, e in spans], dtype=np.int64)


def frame_scores(window_probs: np.ndarray, spans: np.ndarray, num_frames: int) -> np.ndarray:
    """Per-frame class scores: the mean of the probabilities of the windows covering each frame.

    Args:
        window_probs: ``(K, C')`` class probabilities of the windows.
        spans: ``(K, 2)`` their frame ranges.
        num_frames: ``T``.

    Returns:
        ``(T, C')`` float64 (rows of uncovered frames, which :func:`window_spans` never leaves, are 0).
    """
    probs = np.asarray(window_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) != len(spans):
        raise ValueError(f"window_probs must be (K, C) with one row per span, got {probs.shape} for {len(spans)} spans")
    # Difference arrays: +p at a window's start, -p at its end, then a running sum over frames.
    delta = np.zeros((num_frames + 1, probs.shape[1]))
    count = np.zeros(num_frames + 1)
    np.add.at(delta, spans[:, 0], probs)
    np.add.at(delta, spans[:, 1], -probs)
    np.add.at(count, spans[:, 0], 1.0)
    np.add.at(count, spans[:, 1], -1.0)
    total, covered = np.cumsum(delta, axis=0)[:-1], np.cumsum(count)[:-1]  # (T, C'), (T,)
    return total / np.maximum(covered, 1.0)[:, None]


class WindowDataset(Dataset):
    """Sliding windows over the untrimmed sequences of a store, with per-window labels.

    Args:
        store: a store with per-frame labels (``skelssl prepare pku_mmd SRC --untrimmed``, or
            :func:`skelssl.data.synthetic.write_untrimmed_store`).
        indices: the store indices of the sequences to cut.
        window, stride: window length and step, in frames.
        label_rule: ``majority`` or ``centre`` (:func:`window_labels`).

    Items are those of :class:`~skelssl.data.dataset.SkeletonDataset` (batched with its ``collate``):
    ``x`` ``(C, L, V, M)`` with ``L = min(window, T)``, ``length``, ``label`` (``0..C``, ``C`` =
    background) and ``index`` (the window's position in this dataset).

    Attributes:
        windows: ``(N, 3)`` int64 rows ``store index, start, end``.
        labels: ``(N,)`` int64 window labels.
        background_index: ``store.num_classes``.
    """

    def __init__(self, store: Store, indices: Sequence[int], window: int, stride: int, label_rule: Literal["majority", "centre"] = "majority") -> None:
        if not store.has_frame_labels:
            raise StoreError(f"{store.path}: no per-frame labels; detection needs an untrimmed store "
                             "(skelssl prepare pku_mmd SOURCE --untrimmed)")
        self.store = store
        self.background_index = store.num_classes
        rows, labels = [], []
        for i in np.asarray(indices, dtype=np.int64):
            spans = window_spans(int(store.lengths[i]), window, stride)
            rows.append(np.column_stack([np.full(len(spans), i), spans]))
            labels.append(window_labels(store.frame_labels(int(i)), spans, self.background_index, label_rule))
        if not rows:
            raise ValueError("no sequence to cut into windows")
        self.windows = np.concatenate(rows).astype(np.int64)
        self.labels = np.concatenate(labels)

    def __len__(self) -> int:
        return len(self.windows)

    def spans_of(self, store_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions in this dataset and ``(K, 2)`` spans of the windows of one sequence."""
        rows = np.flatnonzero(self.windows[:, 0] == store_index)
        return rows, self.windows[rows, 1:]

    def __getitem__(self, i: int) -> dict[str, Any]:
        idx, start, end = (int(v) for v in self.windows[i])
        offset = int(self.store.index[idx, 0])
        frames = np.asarray(self.store.frames_array[offset + start : offset + end], dtype=np.float32)  # (L, M, V, C)
        x = torch.from_numpy(np.ascontiguousarray(to_ctvm(frames)))  # (C, L, V, M)
        return {"x": x, "length": end - start, "label": int(self.labels[i]), "index": i}

"""Classification metrics, seed statistics and running accumulators that can be summed over processes.

Accuracies are in percent (0-100), the unit every paper in docs/protocols.md reports, so that our numbers
and the published ones sit side by side without conversion.

The accumulators keep *sums and counts*, never means, so that per-process states combine exactly:
``acc.reduce(all_reduce)`` sums the state over processes (for example with
``lambda t: fabric.all_reduce(t, reduce_op="sum")``) before :meth:`compute`.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "topk_accuracy",
    "topk_correct",
    "confusion_matrix",
    "mean_std",
    "RunningMean",
    "ClassificationAccumulator",
]

AllReduce = Callable[[torch.Tensor], torch.Tensor]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, int]:
    """Number of samples whose label is among the ``k`` highest logits, per ``k``.

    A ``k`` larger than the number of classes counts every sample as correct.

    Shape:
        logits ``(N, num_classes)``, labels ``(N,)``.
    """
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"logits (N, C) and labels (N,) expected, got {tuple(logits.shape)} and {tuple(labels.shape)}")
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # (N, kmax)
    hit = top == labels.reshape(-1, 1).to(top.device)  # (N, kmax)
    return {k: int(hit[:, : min(k, kmax)].any(1).sum().item()) for k in ks}


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent, per ``k`` (e.g. ``{1: 81.2, 5: 96.0}``).

    Shape:
        logits ``(N, num_classes)``, labels ``(N,)``.
    """
    n = logits.shape[0]
    if n == 0:
        raise ValueError("top-k accuracy of an empty batch")
    return {k: 100.0 * c / n for k, c in topk_correct(logits, labels, ks).items()}


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(num_classes, num_classes)`` int64 counts; row = true class, column = predicted (sklearn's order).

    Shape:
        predictions ``(N,)``, labels ``(N,)``, both in ``0 .. num_classes - 1``.
    """
    pred = torch.as_tensor(predictions).long().reshape(-1).cpu()
    true = torch.as_tensor(labels).long().reshape(-1).cpu()
    if pred.shape != true.shape:
        raise ValueError(f"{pred.numel()} predictions for {true.numel()} labels")
    if pred.numel() and (min(pred.min(), true.min()) < 0 or max(pred.max(), true.max()) >= num_classes):
        raise ValueError(f"class indices outside 0..{num_classes - 1}")
    flat = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``) of per-seed values; std is 0 for one value."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std of no values")
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


class RunningMean:
    """Sample-weighted running means of named scalars (losses, accuracies of a training epoch).

    Example::

        meter = RunningMean()
        meter.update({"loss": loss, "acc": acc}, n=batch_size)
        meter.reduce(lambda t: fabric.all_reduce(t, reduce_op="sum"))  # optional, multi-process
        meter.compute()  # {"loss": ..., "acc": ...}
    """

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, float] = {}

    def update(self, values: dict[str, float | torch.Tensor], n: int = 1) -> None:
        """Add ``n`` samples whose mean of each named value is ``values[name]``."""
        for name, v in values.items():
            v = float(v.detach().item()) if isinstance(v, torch.Tensor) else float(v)
            self._sums[name] = self._sums.get(name, 0.0) + v * n
            self._counts[name] = self._counts.get(name, 0.0) + n

    def reduce(self, all_reduce: AllReduce) -> None:
        """Sum the state over processes. Every process must hold the same names."""
        names = sorted(self._sums)
        state = torch.tensor([[self._sums[k], self._counts[k]] for k in names], dtype=torch.float64).reshape(-1, 2)
        state = all_reduce(state).reshape(-1, 2)
        for k, (s, c) in zip(names, state.tolist()):
            self._sums[k], self._counts[k] = s, c

    def compute(self) -> dict[str, float]:
        return {k: self._sums[k] / self._counts[k] for k in self._sums if self._counts[k] > 0}

    def reset(self) -> None:
        self._sums.clear()
        self._counts.clear()


class ClassificationAccumulator:
    """Top-k hits, loss sum and sample count over an evaluation pass.

    Args:
        ks: the top-k accuracies to track.
        num_classes: when given, a confusion matrix is accumulated too.
    """

    def __init__(self, ks: Sequence[int] = (1, 5), num_classes: int | None = None) -> None:
        self.ks = tuple(ks)
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self.correct = torch.zeros(len(self.ks), dtype=torch.float64)
        self.loss_sum = 0.0
        self.count = 0
        self.confusion = torch.zeros(self.num_classes or 0, self.num_classes or 0, dtype=torch.int64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch. Shape: logits ``(N, num_classes)``, labels ``(N,)``."""
        hits = topk_correct(logits, labels, self.ks)
        self.correct += torch.tensor([hits[k] for k in self.ks], dtype=torch.float64)
        self.loss_sum += float(F.cross_entropy(logits.float(), labels.to(logits.device), reduction="sum").item())
        self.count += int(labels.shape[0])
        if self.num_classes:
            self.confusion += confusion_matrix(logits.argmax(1), labels, self.num_classes)

    def reduce(self, all_reduce: AllReduce) -> None:
        """Sum hits, loss and count (and the confusion matrix) over processes."""
        state = torch.cat([self.correct, torch.tensor([self.loss_sum, float(self.count)], dtype=torch.float64)])
        state = all_reduce(state)
        self.correct = state[: len(self.ks)].clone()
        self.loss_sum, self.count = float(state[-2]), int(round(float(state[-1])))
        if self.num_classes:
            self.confusion = all_reduce(self.confusion)

    def compute(self) -> dict[str, float]:
        """``{"top1": ..., "top5": ..., "loss": ...}`` (accuracies in percent, loss per sample)."""
        if self.count == 0:
            raise ValueError("no samples were accumulated")
        out = {f"top{k}": 100.0 * float(c) / self.count for k, c in zip(self.ks, self.correct.tolist())}
        out["loss"] = self.loss_sum / self.count
        return out

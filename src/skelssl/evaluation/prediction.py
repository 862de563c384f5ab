"""Motion prediction from encoder features: observed/future windows, a light decoder, MPJPE.

The protocol (Hi-TRS claims motion prediction, docs/hitrs.md; the paper's setting is not
public, so this one is ours): observe the first ``T_obs`` frames of a window, predict the next
``T_pred`` poses from the frozen encoder's feature of the observed part and the last observed pose,
and report the mean per-joint position error (MPJPE, the Euclidean distance between predicted and
true joints, in the data's units: metres for Kinect camera space) at several horizons, beside the
zero-velocity baseline, which repeats the last observed pose and which a useful model must beat.

The decoder is an MLP that outputs *residual* offsets from the last observed pose for all future
frames at once; its last layer starts at zero, so an untrained decoder *is* the zero-velocity
baseline, and training can only move it away where that lowers the error.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from skelssl.core.conventions import to_ctvm
from skelssl.data.store import Store
from skelssl.models.params import split_decay_groups

__all__ = [
    "zero_velocity", "mpjpe", "PredictionWindows", "MotionDecoder", "MotionPredictor", "CachedPrediction",
    "collate_prediction", "predict_all",
]


def zero_velocity(observed: torch.Tensor, horizon: int) -> torch.Tensor:
    """The zero-velocity prediction: the last observed pose repeated ``horizon`` times.

    Shape:
        ``observed`` ``(N, T_obs, M, V, C)`` -> ``(N, horizon, M, V, C)``.
    """
    return observed[:, -1:].expand(-1, horizon, *observed.shape[2:])


def mpjpe(predicted: torch.Tensor, target: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-joint position error per future frame.

    Args:
        predicted, target: ``(N, T, M, V, C)`` poses.
        present: ``(N, M)`` bool, the persons to score (absent person slots are all zero in the store
            and are left out); ``None`` scores every person.

    Returns:
        ``(T,)``: at each future frame, the Euclidean joint error averaged over samples, persons and
        joints.
    """
    if predicted.shape != target.shape or predicted.ndim != 5:
        raise ValueError(f"predicted and target must both be (N, T, M, V, C), got {tuple(predicted.shape)} and {tuple(target.shape)}")
    dist = (predicted - target).norm(dim=-1)  # (N, T, M, V)
    if present is None:
        return dist.mean(dim=(0, 2, 3))
    w = present.to(dist.dtype)[:, None, :, None].expand_as(dist)  # (N, T, M, V)
    return (dist * w).sum(dim=(0, 2, 3)) / w.sum(dim=(0, 2, 3)).clamp_min(1.0)


class PredictionWindows(Dataset):
    """Observed + future windows cut from the sequences of a (trimmed) store.

    Every sequence of at least ``observe + predict`` frames gives the windows starting at
    ``0, stride, 2 * stride, ...`` that fit in it; frames are used at the recorded rate (no resampling,
    which would change what a "frame ahead" means).

    Args:
        store: the store.
        indices: store indices of the sequences to use.
        observe: ``T_obs``.
        predict: ``T_pred``.
        stride: frames between window starts within a sequence.

    Items (for feature extraction with :func:`~skelssl.data.dataset.collate`): ``x`` the observed part
    ``(C, T_obs, V, M)``, ``length`` ``T_obs``, ``label`` (the sequence's class), ``index`` (the
    window's position). :meth:`future` gives the poses to predict.

    Attributes:
        windows: ``(N, 2)`` int64 rows ``store index, start``.
        sequences: how many sequences gave at least one window.
    """

    def __init__(self, store: Store, indices: Sequence[int], observe: int, predict: int, stride: int) -> None:
        if observe < 2 or predict < 1 or stride < 1:
            raise ValueError(f"need observe >= 2, predict >= 1, stride >= 1; got {observe}, {predict}, {stride}")
        self.store, self.observe, self.predict = store, int(observe), int(predict)
        span = self.observe + self.predict
        rows = []
        for i in np.asarray(indices, dtype=np.int64):
            length = int(store.lengths[i])
            for start in range(0, length - span + 1, stride):
                rows.append((int(i), start))
        if not rows:
            raise ValueError(f"no sequence has the {span} frames a window needs (observe {observe} + predict {predict})")
        self.windows = np.asarray(rows, dtype=np.int64)
        self.sequences = int(len(np.unique(self.windows[:, 0])))

    def __len__(self) -> int:
        return len(self.windows)

    def frames(self, i: int) -> np.ndarray:
        """``(T_obs + T_pred, M, V, C)`` float32 frames of window ``i`` (store layout)."""
        idx, start = (int(v) for v in self.windows[i])
        offset = int(self.store.index[idx, 0]) + start
        return np.asarray(self.store.frames_array[offset : offset + self.observe + self.predict], dtype=np.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        observed = self.frames(i)[: self.observe]  # (T_obs, M, V, C)
        x = torch.from_numpy(np.ascontiguousarray(to_ctvm(observed)))  # (C, T_obs, V, M)
        return {"x": x, "length": self.observe, "label": int(self.store.labels[self.windows[i, 0]]), "index": i}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every window's last observed pose, future poses and present persons.

        Returns:
            ``last`` ``(N, M, V, C)``, ``future`` ``(N, T_pred, M, V, C)``, ``present`` ``(N, M)`` bool
            (a person slot with any non-zero joint in the observed part). They are held in memory:
            ``N x (T_pred + 1)`` poses (for NTU-scale stores, choose a larger ``stride``).
        """
        last, future, present = [], [], []
        for i in range(len(self)):
            frames = self.frames(i)  # (T_obs + T_pred, M, V, C)
            last.append(frames[self.observe - 1])
            future.append(frames[self.observe :])
            present.append(np.abs(frames[: self.observe]).max(axis=(0, 2, 3)) > 0)  # (M,)
        return torch.from_numpy(np.stack(last)), torch.from_numpy(np.stack(future)), torch.from_numpy(np.stack(present))


class MotionDecoder(nn.Module):
    """Future poses from an encoder feature and the last observed pose (residual MLP).

    Input: the feature through a LayerNorm (encoders' scales differ) and the last pose made
    translation-free (minus the ``centre_joint`` of the first present person), concatenated; output:
    ``T_pred x M x V x C`` offsets added to the last pose. The last layer starts at zero (the
    zero-velocity baseline).

    Args:
        feature_dim: the encoder's ``out_dim``.
        num_joints, num_persons, channels: ``V``, ``M``, ``C`` of the poses.
        horizon: ``T_pred``.
        hidden_dim: width of the hidden layers.
        layers: hidden layers (>= 1).
        centre_joint: the joint subtracted from the pose input (the layout's spine).
        dropout: after each hidden layer (a few thousand windows overfit an MLP within ten epochs).

    Shape:
        ``features`` ``(N, D)``, ``last`` ``(N, M, V, C)`` -> ``(N, T_pred, M, V, C)``.
    """

    def __init__(self, feature_dim: int, num_joints: int, num_persons: int, channels: int, horizon: int,
                 hidden_dim: int = 256, layers: int = 2, centre_joint: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if layers < 1 or horizon < 1:
            raise ValueError(f"need layers >= 1 and horizon >= 1, got {layers} and {horizon}")
        self.horizon, self.centre_joint = int(horizon), int(centre_joint)
        self.pose_shape = (int(num_persons), int(num_joints), int(channels))
        pose_dim = int(np.prod(self.pose_shape))
        self.norm = nn.LayerNorm(feature_dim)
        dims = [feature_dim + pose_dim] + [hidden_dim] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.GELU()] + ([nn.Dropout(dropout)] if dropout > 0 else [])
        self.body = nn.Sequential(*body)
        self.out = nn.Linear(hidden_dim, self.horizon * pose_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        n = last.shape[0]
        present = last.flatten(2).abs().amax(dim=2) > 0  # (N, M)
        first = present.float().argmax(dim=1)  # (N,) first present person (0 when none is)
        centre = last[torch.arange(n, device=last.device), first, self.centre_joint]  # (N, C)
        pose = (last - centre[:, None, None, :]) * present[:, :, None, None].to(last.dtype)  # (N, M, V, C)
        h = self.body(torch.cat([self.norm(features), pose.reshape(n, -1)], dim=1))  # (N, hidden)
        offsets = self.out(h).view(n, self.horizon, *self.pose_shape)  # (N, T_pred, M, V, C)
        return last[:, None] + offsets * present[:, None, :, None, None].to(last.dtype)


class MotionPredictor(nn.Module):
    """A :class:`MotionDecoder` with the engine's module interface (trained on cached features).

    Args:
        decoder: the decoder.
        loss: ``mpjpe`` (the mean joint distance itself, the usual motion-prediction loss), ``mse``
            (squared error) or ``l1``.

    A batch holds ``features`` ``(N, D)``, ``last`` ``(N, M, V, C)``, ``future`` ``(N, T_pred, M, V, C)``
    and ``present`` ``(N, M)``.
    """

    def __init__(self, decoder: MotionDecoder, loss: Literal["mpjpe", "mse", "l1"] = "mpjpe") -> None:
        super().__init__()
        if loss not in ("mpjpe", "mse", "l1"):
            raise ValueError(f"loss must be 'mpjpe', 'mse' or 'l1', got {loss!r}")
        self.decoder, self.loss = decoder, loss

    def forward(self, features: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return self.decoder(features, last)

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred = self(batch["features"], batch["last"])  # (N, T_pred, M, V, C)
        target, present = batch["future"], batch["present"]
        w = present.to(pred.dtype)[:, None, :, None]  # (N, 1, M, 1)
        if self.loss == "mpjpe":
            per_joint = (pred - target).norm(dim=-1)  # (N, T, M, V)
        elif self.loss == "mse":
            per_joint = ((pred - target) ** 2).sum(dim=-1)
        else:
            per_joint = (pred - target).abs().sum(dim=-1)
        weight = w.expand_as(per_joint)
        loss = (per_joint * weight).sum() / weight.sum().clamp_min(1.0)
        with torch.no_grad():
            err = float(mpjpe(pred.detach(), target, present).mean())
        return loss, {"loss": loss.detach(), "mpjpe": err}

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """No decay on biases and norms (the methods' rule)."""
        return split_decay_groups(self, weight_decay)

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    def after_optimizer_step(self) -> None:
        """Nothing to update after a step."""


def collate_prediction(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack cached ``features``/``last``/``future``/``present`` items into a batch."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class CachedPrediction(Dataset):
    """Cached features and poses of :class:`PredictionWindows` (what the decoder trains on)."""

    def __init__(self, features: torch.Tensor, last: torch.Tensor, future: torch.Tensor, present: torch.Tensor) -> None:
        self.features, self.last, self.future, self.present = features, last, future, present

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[i], "last": self.last[i], "future": self.future[i], "present": self.present[i]}


@torch.no_grad()
def predict_all(module: nn.Module, data: CachedPrediction, batch_size: int = 256, device: str | torch.device = "cpu") -> torch.Tensor:
    """Predictions ``(N, T_pred, M, V, C)`` of a decoder (or :class:`MotionPredictor`) for every window."""
    was = module.training
    module.eval()
    try:
        out = [module(data.features[i : i + batch_size].to(device), data.last[i : i + batch_size].to(device)).cpu()
               for i in range(0, len(data), batch_size)]
    finally:
        module.train(was)
    return torch.cat(out)

"""Frozen-encoder feature extraction over a :class:`~skelssl.data.dataset.SkeletonDataset`.

The encoder runs in ``eval()`` mode under ``torch.no_grad()``; its previous train/eval mode is
restored afterwards. (ISC's retrieval script does neither, so its AGCN BatchNorm used batch
statistics, docs/isc.md; we follow the intent of a frozen encoder.)

Several processes can share the work: each one passes its ``rank`` and ``world_size`` and a
``gather`` function (for example Lightning Fabric's ``fabric.all_gather``); every process then
returns the features of the *whole* dataset, in dataset order.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from skelssl.data.dataset import collate

__all__ = ["extract_features", "run_model", "CachedEncoder", "FeatureSet", "collate_features"]

Batch = dict[str, torch.Tensor]
Gather = Callable[[torch.Tensor], torch.Tensor]


def _gathered(gather: Gather, local: torch.Tensor, world_size: int) -> torch.Tensor:
    """``gather`` a ``(n, ...)`` tensor into ``(world_size * n, ...)``.

    Fabric's ``all_gather`` returns ``(world_size, n, ...)`` and, for a single process, the tensor
    unchanged; both are accepted.
    """
    out = gather(local)
    if out.ndim == local.ndim:
        if world_size != 1 or out.shape != local.shape:
            raise ValueError(f"gather returned shape {tuple(out.shape)} for a local {tuple(local.shape)}")
        return out
    if out.shape[0] != world_size:
        raise ValueError(f"gather returned {out.shape[0]} parts, expected world_size={world_size}")
    return out.reshape(-1, *local.shape[1:])


@torch.no_grad()
def run_model(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    batch_transform: Callable[[Batch], Batch] | None = None,
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "features",
    gather: Gather | None = None,
    rank: int = 0,
    world_size: int = 1,
    collate_fn: Callable[[list[Any]], Batch] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(x, lengths)`` over a dataset in eval mode; outputs and labels in dataset order.

    For any module with the encoder call signature: an encoder (:func:`extract_features`) or a
    :class:`~skelssl.evaluation.heads.Classifier` giving logits (:func:`~skelssl.evaluation.heads.evaluate_classifier`).

    Args:
        model: ``forward(x, lengths) -> (N, D)``, already on ``device``.
        dataset: a :class:`~skelssl.data.dataset.SkeletonDataset` (items ``x``, ``length``, ``label``,
            ``index``), batched with ``collate_fn`` (default :func:`~skelssl.data.dataset.collate`).
        batch_size: samples per forward pass.
        device: where the batches go.
        batch_transform: ``batch -> batch`` applied on ``device`` before the model, for deterministic
            test-time views (e.g. ISC's centre 95 % crop resized to 64 frames).
        num_workers: data-loader workers.
        progress: show a tqdm bar (on rank 0) named ``desc``; otherwise nothing is printed.
        gather: across-process all-gather (``fabric.all_gather``); with it each process runs the model on
            its shard and all processes return the full, ordered result.
        rank: this process's rank (with ``gather``).
        world_size: number of processes (with ``gather``).

    Returns:
        ``outputs`` ``(N, D)`` float32 on the CPU and ``labels`` ``(N,)`` int64, in dataset order.
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("cannot extract features of an empty dataset")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world_size {world_size}")
    if world_size > 1 and gather is None:
        raise ValueError("world_size > 1 needs a gather function to collect the other processes' features")
    device = torch.device(device)
    # Process r takes positions r, r + W, r + 2W, ...; shard sizes differ by at most one.
    positions = torch.arange(rank, n, world_size)
    loader = DataLoader(
        Subset(dataset, positions.tolist()) if world_size > 1 else dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_fn or collate,
        pin_memory=device.type == "cuda",
    )
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=desc, unit="batch", disable=rank != 0)
    feats, labs = _forward(model, loader, device, batch_transform)
    if gather is None:
        return feats, labs
    return _gather_in_order(feats, labs, positions, n, gather, world_size, device)


def _forward(model: nn.Module, loader: Any, device: torch.device,
             batch_transform: Callable[[Batch], Batch] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``model`` in eval mode over ``loader``: ``(n_local, D)`` float32 outputs and ``(n_local,)`` labels
    on the CPU (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    outs, labels = [], []
    try:
        for batch in loader:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if batch_transform is not None:
                batch = batch_transform(batch)
            out = model(batch["x"], batch["lengths"])  # (B, D)
            outs.append(out.float().cpu())
            labels.append(batch["label"].cpu())
    finally:
        model.train(was_training)
    return torch.cat(outs), torch.cat(labels).long()


def _gather_in_order(feats: torch.Tensor, labs: torch.Tensor, positions: torch.Tensor, n: int, gather: Gather,
                     world_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's shard, back in dataset order. Shorter shards are padded (position -1) so that
    every process gathers tensors of one size."""
    pad = -(-n // world_size) - feats.shape[0]
    pos = torch.cat([positions, positions.new_full((pad,), -1)])
    feats = torch.cat([feats, feats.new_zeros(pad, feats.shape[1])])
    ints = torch.stack([pos, torch.cat([labs, labs.new_zeros(pad)])], 1)  # (shard_len, 2): position, label
    all_feats = _gathered(gather, feats.to(device), world_size).cpu()  # (W * shard_len, D)
    all_ints = _gathered(gather, ints.to(device), world_size).cpu()
    keep = all_ints[:, 0] >= 0
    order = all_ints[keep, 0]
    out_feats = torch.empty(n, feats.shape[1], dtype=torch.float32)
    out_labels = torch.empty(n, dtype=torch.int64)
    out_feats[order] = all_feats[keep]
    out_labels[order] = all_ints[keep, 1]
    return out_feats, out_labels


def extract_features(encoder: nn.Module, dataset: Dataset, **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features of every sample of ``dataset`` from a frozen encoder: :func:`run_model` on it.

    Args:
        encoder: an :class:`~skelssl.models.base.Encoder` (``forward(x, lengths) -> (N, D)``),
            already on ``device``.
        dataset: the samples.
        **options: the keywords of :func:`run_model` (``batch_size``, ``device``, ``batch_transform``,
            ``num_workers``, ``progress``, ``gather``, ``rank``, ``world_size``, ``collate_fn``).

    Returns:
        ``features`` ``(N, D)`` float32 on the CPU and ``labels`` ``(N,)`` int64, in dataset order.
    """
    return run_model(encoder, dataset, **options)


class CachedEncoder(nn.Module):
    """Stands in for a frozen encoder when its features are cached: ``(N, D)`` in, the same out."""

    def __init__(self, out_dim: int) -> None:
        super().__init__()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return x


class FeatureSet(Dataset):
    """Cached ``(N, D)`` features and their ``(N,)`` labels as a dataset of ``{x, label, index}``."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": self.features[i], "label": int(self.labels[i]), "index": i}


def collate_features(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Batch :class:`FeatureSet` items (every length 1: one feature vector stands for the sequence)."""
    return {
        "x": torch.stack([it["x"] for it in items]),
        "lengths": torch.ones(len(items), dtype=torch.int64),
        "label": torch.tensor([it["label"] for it in items]),
        "index": torch.tensor([it["index"] for it in items]),
    }

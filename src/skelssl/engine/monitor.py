"""The online kNN monitor of pre-training (see :class:`~skelssl.engine.config.MonitorConfig`).

A collapsing run shows it while it runs: the held-out 1-NN accuracy stops rising or falls, and the
effective rank of the features drops to a few units.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.protocols import split
from skelssl.data.store import Store
from skelssl.engine.config import ConfigError, MonitorConfig
from skelssl.engine.eval_input import stream_view, test_transform
from skelssl.evaluation.diagnostics import effective_rank
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.knn import knn_accuracy

__all__ = ["monitor_split", "make_monitor"]


def monitor_split(labels: np.ndarray, indices: np.ndarray, holdout: float, max_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, class-stratified ``(bank, queries)`` split of the labelled ``indices``."""
    rng = np.random.default_rng(seed)
    indices = np.asarray(indices, dtype=np.int64)
    indices = indices[labels[indices] >= 0]
    if len(indices) > max_samples:
        indices = np.sort(rng.choice(indices, max_samples, replace=False))
    bank, queries = [], []
    for c in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == c])
        n_q = max(1, int(round(holdout * len(members)))) if len(members) > 1 else 0
        queries.append(members[:n_q])
        bank.append(members[n_q:])
    return np.sort(np.concatenate(bank)), np.sort(np.concatenate(queries))


def make_monitor(cfg: Any, epochs: int, device: torch.device | None = None) -> Callable[[nn.Module, int], dict[str, float]] | None:
    """The ``evaluate`` callback of :meth:`Trainer.fit` for a run config, or ``None`` when it is off.

    Args:
        cfg: the :class:`~skelssl.engine.config.RunConfig`.
        epochs: the run's epochs (the monitor also runs after the last).
        device: where features are computed (default: the module's device).
    """
    mon: MonitorConfig = cfg.monitor
    store_path = mon.store or cfg.data.store
    protocol = mon.protocol or (cfg.data.protocol if not mon.store else None)
    if not mon.every_epochs or not store_path or not protocol:
        return None
    store = Store(store_path)
    if not cfg.data.use_score:  # the encoder takes the channels it was trained on
        store = store.without_score()
    store = stream_view(store, cfg.data.stream)
    try:
        train, _ = split(store, protocol)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"monitor.protocol: {e.args[0] if e.args else e}") from None
    bank, queries = monitor_split(store.labels, train, mon.holdout, mon.max_samples)
    if len(queries) == 0 or len(bank) == 0:
        return None
    ev = cfg.eval
    transform = test_transform(ev.input)
    bank_set = SkeletonDataset(store, bank, max_frames=ev.input.max_frames)
    query_set = SkeletonDataset(store, queries, max_frames=ev.input.max_frames)

    def monitor(module: nn.Module, epoch: int) -> dict[str, float]:
        if (epoch + 1) % mon.every_epochs and epoch + 1 != epochs:
            return {}
        encoder = module.export_encoder()
        dev = device or next(encoder.parameters()).device
        was_training = encoder.training
        encoder.eval()
        kw = dict(batch_size=128, device=dev, batch_transform=transform)
        # The monitor observes without moving the run: the loaders draw their seeds from the global
        # generators, which the training's dropout also uses, so they are restored afterwards.
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            bank_f, bank_y = extract_features(encoder, bank_set, **kw)
            query_f, query_y = extract_features(encoder, query_set, **kw)
        encoder.train(was_training)
        return {"monitor_knn": knn_accuracy(bank_f, bank_y, query_f, query_y, k=1, metric="cosine"),
                "monitor_rank": effective_rank(bank_f.numpy())}

    monitor.at_start = True  # type: ignore[attr-defined]  # a reading at initialisation too (epoch -1, step 0)
    return monitor

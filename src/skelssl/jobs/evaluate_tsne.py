"""The ``tsne`` protocol: a picture of the test features and how well the classes separate in them."""

from __future__ import annotations

from typing import Any

import numpy as np

from skelssl.engine.eval_input import test_transform
from skelssl.evaluation.features import extract_features
from skelssl.jobs.eval_context import EvalContext

__all__ = ["run_tsne", "silhouette_cosine"]


def run_tsne(ctx: EvalContext) -> dict[str, Any]:
    """The ``tsne`` protocol: a 2-D map of the test features and their cosine silhouette."""
    from skelssl.viz.embedding import embedding_plot

    cfg = ctx.cfg
    feats, labels = extract_features(
        ctx.encoder, ctx.test_set, batch_size=cfg.tsne.batch_size, device=ctx.device,
        batch_transform=test_transform(cfg.input), num_workers=cfg.num_workers, progress=ctx.progress,
    )
    store = ctx.store
    title = f"{ctx.label} on {ctx.protocol} (test)"
    png = embedding_plot(feats.numpy(), labels.numpy(), store.class_names, ctx.out / "embedding.png",
                         method=cfg.tsne.method, seed=0, title=title, max_points=cfg.tsne.max_points)
    score = silhouette_cosine(feats.numpy(), labels.numpy())
    return {"metric": "silhouette (cosine, test features)", "final": score, "best": None, "picture": png.name}


def silhouette_cosine(features: np.ndarray, labels: np.ndarray, max_points: int = 4000, seed: int = 0) -> float:
    """Mean silhouette coefficient under cosine distance (Rousseeuw 1987), on at most ``max_points``."""
    if len(features) > max_points:
        keep = np.random.default_rng(seed).choice(len(features), max_points, replace=False)
        features, labels = features[keep], labels[keep]
    classes = np.unique(labels)
    if len(classes) < 2:
        return 0.0
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - f @ f.T  # (n, n)
    onehot = (labels[:, None] == classes[None, :]).astype(np.float64)  # (n, K)
    sums = dist @ onehot  # (n, K) summed distance to each class
    counts = onehot.sum(0)  # (K,)
    own = onehot.argmax(1)
    n_own = counts[own] - 1
    a = np.where(n_own > 0, sums[np.arange(len(f)), own] / np.maximum(n_own, 1), 0.0)
    mean_other = sums / np.maximum(counts, 1)[None, :]
    mean_other[np.arange(len(f)), own] = np.inf
    b = mean_other.min(1)
    s = np.where(n_own > 0, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())

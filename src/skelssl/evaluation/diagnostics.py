"""Feature diagnostics: is a representation collapsing?

Reported in every ``results.json`` of a frozen-feature protocol and by the pre-training monitor:

- **effective rank** (Roy & Vetterli 2007): ``exp(H(p))`` with ``p`` the normalised squared singular
  values of the standardised features; 1 for features on a line, ``D`` for isotropic ones.
  Collapsed contrastive encoders score a few units (measured: 3-9 of 128-256 dims for the first
  CPU recipes, 28 for the raw joints they start from).
- **mean pairwise cosine** of the raw (unstandardised) features: near 1 when every sample maps to
  about the same direction.
- **per-dimension std**: its mean, and the share of dimensions that are (almost) constant.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["effective_rank", "mean_pairwise_cosine", "feature_diagnostics"]


def effective_rank(features: np.ndarray) -> float:
    """``exp`` of the entropy of the normalised squared singular values of the standardised features.

    Args:
        features: ``(N, D)``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        return 0.0
    x = x - x.mean(0, keepdims=True)
    std = x.std(0, keepdims=True)
    keep = std[0] > 1e-12
    if not keep.any():
        return 0.0
    x = x[:, keep] / std[:, keep]
    s = np.linalg.svd(x, compute_uv=False)
    p = s**2 / max(float((s**2).sum()), 1e-300)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def mean_pairwise_cosine(features: np.ndarray, max_points: int = 2000, seed: int = 0) -> float:
    """Mean cosine similarity over distinct pairs (of at most ``max_points`` samples)."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    n = len(x)
    if n < 2:
        return 1.0
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    total = x.sum(0)
    return float((total @ total - n) / (n * (n - 1)))  # sum over i != j of x_i . x_j, each unit norm


def feature_diagnostics(features: np.ndarray) -> dict[str, Any]:
    """The diagnostics of ``(N, D)`` features as a JSON-ready dict."""
    x = np.asarray(features, dtype=np.float64)
    std = x.std(0) if len(x) else np.zeros(x.shape[1:])
    top = float(std.max()) if std.size else 0.0
    return {
        "dim": int(x.shape[1]) if x.ndim == 2 else 0,
        "effective_rank": round(effective_rank(x), 3),
        "mean_pairwise_cosine": round(mean_pairwise_cosine(x), 4),
        "std_mean": float(std.mean()) if std.size else 0.0,
        "dead_dims": float((std <= 1e-3 * top).mean()) if std.size and top > 0 else 1.0,
    }

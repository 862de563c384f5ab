"""2-D pictures of a feature space: t-SNE (scikit-learn) or PCA, one colour per class.

The figure is drawn on matplotlib's Agg canvas without pyplot (no global figure state, no display),
and written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from skelssl.data.store import atomic_write_bytes

__all__ = ["embed_2d", "embedding_plot"]


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the two leading principal axes. Shape: ``(N, D)`` -> ``(N, 2)``."""
    centred = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # rows of vt: principal axes
    out = centred @ vt[:2].T  # (N, <=2)
    if out.shape[1] < 2:
        out = np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    # Fix each axis's sign (SVD's is arbitrary) so the same features give the same picture.
    signs = np.sign(out[np.abs(out).argmax(0), np.arange(2)])
    return out * np.where(signs == 0, 1.0, signs)


def embed_2d(features: np.ndarray, method: Literal["tsne", "pca"] = "tsne", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of ``features`` and the method actually used.

    t-SNE needs scikit-learn; without it PCA is used and the returned name says so.

    Shape:
        ``(N, D)`` -> ``(N, 2)``.
    """
    x = np.asarray(features, dtype=np.float64)
    if method == "pca":
        return _pca_2d(x), "PCA"
    if method != "tsne":
        raise ValueError(f"unknown embedding method {method!r}; use 'tsne' or 'pca'")
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return _pca_2d(x), "PCA (scikit-learn not installed, no t-SNE)"
    if x.shape[0] < 5:
        return _pca_2d(x), "PCA (too few points for t-SNE)"
    # Perplexity must stay below the number of points; 30 is sklearn's default.
    perplexity = float(min(30.0, (x.shape[0] - 1) / 3.0))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(x.astype(np.float32)), "t-SNE"


def embedding_plot(
    features: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    class_names: Sequence[str] | None,
    out_png: str | Path,
    method: Literal["tsne", "pca"] = "tsne",
    seed: int = 0,
    title: str | None = None,
    max_points: int | None = 5000,
) -> Path:
    """Scatter plot of features embedded in 2-D, coloured by class, with a legend of class names.

    Args:
        features: ``(N, D)`` features (e.g. from :func:`~skelssl.evaluation.features.extract_features`).
        labels: ``(N,)`` class indices.
        class_names: names indexed by label (``None``: the label numbers).
        out_png: where to write the PNG (parent folders are created).
        method: ``"tsne"`` or ``"pca"``.
        seed: t-SNE's random state and the subsampling seed.
        title: figure title (the method used is appended).
        max_points: at most this many points are embedded (a seeded random subset; t-SNE is
            quadratic); ``None`` keeps all.

    Returns:
        The PNG path.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(torch.as_tensor(features).detach().cpu().float().numpy())
    y = np.asarray(torch.as_tensor(labels).detach().cpu().long().numpy()).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"features (N, D) and labels (N,) expected, got {x.shape} and {y.shape}")
    note = ""
    if max_points is not None and x.shape[0] > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_points, replace=False))
        note = f", {max_points} of {x.shape[0]} points"
        x, y = x[keep], y[keep]
    xy, used = embed_2d(x, method=method, seed=seed)

    classes = np.unique(y)
    names = {int(c): (class_names[int(c)] if class_names is not None and 0 <= c < len(class_names) else str(int(c))) for c in classes}
    fig = Figure(figsize=(9.0, 7.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    # Up to 10 classes: tab10; beyond, tab20's colours cycled with one marker shape per 20 classes,
    # so that 60 or 120 classes stay distinguishable in the legend.
    cmap = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    markers = ("o", "s", "^", "D", "v", "P")
    for i, c in enumerate(classes):
        sel = y == c
        ax.scatter(
            xy[sel, 0], xy[sel, 1], s=9, color=cmap(i % cmap.N), marker=markers[(i // cmap.N) % len(markers)],
            label=names[int(c)], alpha=0.8, linewidths=0,
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title + ': ' if title else ''}{used}{note}")
    ncol = 1 if len(classes) <= 20 else 2 if len(classes) <= 60 else 3
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7 if len(classes) <= 20 else 5, ncol=ncol, markerscale=2, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    out = Path(out_png)
    atomic_write_bytes(out, buf.getvalue())
    return out

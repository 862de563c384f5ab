"""Embedding plots (t-SNE / PCA) and training curves are written as valid PNG files."""

import json
import sys

import numpy as np
import pytest

from skelssl.core.conventions import SkeletonFormatError
from skelssl.viz.curves import plot_curves, read_metrics
from skelssl.viz.embedding import embed_2d, embedding_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_blas_thread():
    """t-SNE's OpenMP/BLAS threads oversubscribe the shared test machine; one thread is faster here."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


def clusters(n_per=20, classes=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def read_png(path):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_embedding_plot_writes_png(tmp_path, method):
    if method == "tsne":
        pytest.importorskip("sklearn.manifold")
    feats, labels = clusters()
    out = embedding_plot(feats, labels, ["walk", "sit down", "wave"], tmp_path / "sub" / f"{method}.png", method=method, title="tiny")
    img = read_png(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05  # not a blank canvas
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # atomic write leaves no temp file


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_separates_clusters(method):
    if method == "tsne":
        pytest.importorskip("sklearn.manifold")
    feats, labels = clusters()
    xy, used = embed_2d(feats, method=method, seed=0)
    assert xy.shape == (len(feats), 2) and used == {"pca": "PCA", "tsne": "t-SNE"}[method]
    centroids = np.stack([xy[labels == c].mean(0) for c in range(3)])
    spread = max(np.linalg.norm(xy[labels == c] - centroids[c], axis=1).mean() for c in range(3))
    gap = min(np.linalg.norm(centroids[a] - centroids[b]) for a in range(3) for b in range(a + 1, 3))
    assert gap > 2 * spread
    if method == "pca":  # deterministic, sign included
        assert np.allclose(xy, embed_2d(feats[::-1].copy(), method="pca")[0][::-1], atol=1e-8)


def test_pca_fallback_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import now raises ImportError
    feats, _ = clusters()
    xy, used = embed_2d(feats, method="tsne")
    assert "PCA" in used and "scikit-learn not installed" in used
    # The first PCA axis of points on a line carries everything.
    line = np.outer(np.linspace(-1, 1, 20), np.arange(1, 6))
    xy, used = embed_2d(line, method="pca")
    assert np.allclose(xy[:, 1], 0.0, atol=1e-9) and np.ptp(xy[:, 0]) > 1.0


def test_plot_curves(tmp_path):
    path = tmp_path / "run" / "metrics.jsonl"
    path.parent.mkdir()
    with path.open("w") as f:
        for step in range(20):
            f.write(json.dumps({"step": step, "loss": 2.0 / (1 + step), "lr": 0.1}) + "\n")
        f.write("\n")
        f.write(json.dumps({"epoch": 1, "val_acc": 55.0}) + "\n")
    assert len(read_metrics(path)) == 21
    out = plot_curves(path, tmp_path / "curves.png", keys=("loss", "lr"))
    assert read_png(out).shape[0] > 300  # two panels
    with pytest.raises(SkeletonFormatError, match="no record"):
        plot_curves(path, tmp_path / "none.png", keys=("top1",))
    path.write_text('{"step": 1, "loss": 1.0}\nnot json\n')
    with pytest.raises(SkeletonFormatError, match="line 2"):
        plot_curves(path, tmp_path / "bad.png")

"""k-nearest-neighbour classification of frozen features (the retrieval protocol).

ISC's action-retrieval protocol (docs/isc.md) L2-normalises the features of the frozen query
encoder and fits ``sklearn.neighbors.KNeighborsClassifier(n_neighbors=1, metric="cosine")`` on the
training split; test top-1 is the reported number. ``k=1, metric="cosine"`` here is that protocol.
The weighted vote ``k=20, weighting="exp", temperature=0.07`` is the kNN monitor of InstDisc / MoCo
(each neighbour votes for its class with ``exp(sim / T)``).

The search is chunked over both the queries and the gallery and keeps a running top-k, so a
40k-sample gallery and 16k queries need a few tens of MB, not the 2.6 GB of the full similarity
matrix. Ties are resolved deterministically: among neighbours of equal similarity the one with the
lower gallery index wins, and among classes of equal vote the lower label wins (as sklearn does).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["knn_neighbors", "knn_predict", "knn_accuracy"]

Metric = Literal["cosine", "euclidean"]
Weighting = Literal["uniform", "distance", "exp"]


def _as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name}: expected (N, D) features, got shape {tuple(t.shape)}")
    t = t.float()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return t


def _stable_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-``k`` of ``scores`` (descending) where ties go to the lower column.

    ``torch.topk`` leaves the choice among equal values unspecified. Its selection is already right
    unless the k-th value also occurs outside the selection; only those (rare) rows are redone: keep
    everything above the k-th value and fill the remaining slots with the *first* columns equal to
    it. The survivors are then ordered by score, equal scores by column.

    Shape:
        scores ``(R, K)`` with ``K >= k`` -> values ``(R, k)``, column indices ``(R, k)``.
    """
    vals, cols = scores.topk(k, dim=1)  # (R, k)
    kth = vals[:, -1:]  # (R, 1)
    ambiguous = (scores == kth).sum(1) != (vals == kth).sum(1)  # (R,)
    if bool(ambiguous.any()):
        rows = ambiguous.nonzero().squeeze(1)
        sub, sub_kth = scores[rows], kth[rows]  # (r, K), (r, 1)
        greater = sub > sub_kth
        need = k - greater.sum(1, keepdim=True, dtype=torch.int32)  # slots left for the tied values
        equal = sub == sub_kth
        take = greater | (equal & (equal.cumsum(1, dtype=torch.int32) <= need))
        cols[rows] = take.nonzero()[:, 1].view(-1, k)  # row-major: ascending columns per row
    cols = cols.sort(1).values  # by column first, so the stable sort below orders ties by column
    vals = scores.gather(1, cols)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    return vals.gather(1, order), cols.gather(1, order)


def knn_neighbors(
    train_feats: torch.Tensor | np.ndarray,
    test_feats: torch.Tensor | np.ndarray,
    k: int = 1,
    metric: Metric = "cosine",
    chunk_size: int = 4096,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery samples of every query.

    Args:
        train_feats: gallery features.
        test_feats: query features.
        k: neighbours per query (at most the gallery size).
        metric: ``"cosine"`` (features are L2-normalised; score = cosine similarity) or
            ``"euclidean"`` (score = minus the Euclidean distance).
        chunk_size: queries and gallery samples per block of the similarity matrix.

    Returns:
        ``scores`` ``(M, k)`` (higher is nearer, sorted descending) and gallery ``indices`` ``(M, k)``
        int64, on the device of ``test_feats``.

    Shape:
        train_feats ``(N, D)``, test_feats ``(M, D)``.
    """
    gallery = _as_features(train_feats, "train_feats")
    queries = _as_features(test_feats, "test_feats").to(gallery.device)
    if gallery.shape[1] != queries.shape[1]:
        raise ValueError(f"feature sizes differ: train {gallery.shape[1]}, test {queries.shape[1]}")
    n = gallery.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the gallery size {n}")
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"unknown metric {metric!r}; use 'cosine' or 'euclidean'")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if metric == "cosine":
        # ISC L2-normalises before its sklearn cosine kNN; after that the cosine is a dot product.
        gallery = F.normalize(gallery, dim=1)
        queries = F.normalize(queries, dim=1)

    if queries.shape[0] == 0:
        return queries.new_empty(0, k), torch.empty(0, k, dtype=torch.int64, device=queries.device)
    all_scores, all_indices = [], []
    for q0 in range(0, queries.shape[0], chunk_size):
        q = queries[q0 : q0 + chunk_size]  # (R, D)
        best_s = best_i = None
        for g0 in range(0, n, chunk_size):
            g = gallery[g0 : g0 + chunk_size]  # (B, D)
            s = q @ g.T if metric == "cosine" else -torch.cdist(q, g)  # (R, B)
            blk_s, blk_c = _stable_topk(s, min(k, g.shape[0]))  # (R, k')
            blk_i = blk_c + g0
            if best_s is None:
                best_s, best_i = blk_s, blk_i
                continue
            # Earlier winners come first and have lower gallery indices than this block, and each part
            # is ordered by score then index, so the positional tie rule is the gallery-index rule.
            cand_s = torch.cat([best_s, blk_s], 1)  # (R, k + k')
            cand_i = torch.cat([best_i, blk_i], 1)
            best_s, cols = _stable_topk(cand_s, min(k, cand_s.shape[1]))
            best_i = cand_i.gather(1, cols)
        all_scores.append(best_s)
        all_indices.append(best_i)
    return torch.cat(all_scores), torch.cat(all_indices)


def knn_predict(
    train_feats: torch.Tensor | np.ndarray,
    train_labels: torch.Tensor | np.ndarray,
    test_feats: torch.Tensor | np.ndarray,
    k: int = 1,
    metric: Metric = "cosine",
    weighting: Weighting = "uniform",
    temperature: float = 0.07,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """Predict each query's label by a (weighted) vote of its ``k`` nearest gallery samples.

    Args:
        train_feats: gallery features ``(N, D)``.
        train_labels: gallery labels ``(N,)`` (any integers; predictions use the same values).
        test_feats: query features ``(M, D)``.
        k: neighbours (``k=1`` with ``metric="cosine"`` is ISC's retrieval protocol).
        metric: ``"cosine"`` or ``"euclidean"``.
        weighting: ``"uniform"`` (one vote each), ``"distance"`` (``1 / distance`` as sklearn's
            ``weights="distance"``; for cosine the distance is ``1 - cos``; neighbours at distance 0
            take all the weight), or ``"exp"`` (``exp(score / temperature)``, the InstDisc / MoCo
            monitor; the score is the cosine or minus the distance).
        temperature: the ``exp`` weighting's temperature.
        chunk_size: block size of the search (see :func:`knn_neighbors`).

    Returns:
        ``(M,)`` int64 predicted labels, on the device of ``test_feats``.
    """
    labels = torch.as_tensor(train_labels).long().reshape(-1)
    n = torch.as_tensor(train_feats).shape[0]
    if labels.shape[0] != n:
        raise ValueError(f"{labels.shape[0]} train labels for {n} train features")
    if weighting not in ("uniform", "distance", "exp"):
        raise ValueError(f"unknown weighting {weighting!r}; use 'uniform', 'distance' or 'exp'")
    if weighting == "exp" and temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scores, idx = knn_neighbors(train_feats, test_feats, k=k, metric=metric, chunk_size=chunk_size)
    classes, codes = torch.unique(labels, sorted=True, return_inverse=True)  # codes (N,) in 0..C-1
    classes, codes = classes.to(idx.device), codes.to(idx.device)
    neighbour_codes = codes[idx]  # (M, k)
    if weighting == "uniform":
        weights = torch.ones_like(scores)
    elif weighting == "exp":
        weights = torch.exp((scores - scores[:, :1]) / temperature)  # shifted by the row max: same argmax, no overflow
    else:
        dist = (1.0 - scores if metric == "cosine" else -scores).clamp_min(0.0)  # (M, k)
        zero = dist <= 1e-12
        weights = torch.where(zero.any(1, keepdim=True), zero.float(), 1.0 / dist.clamp_min(1e-12))
    votes = torch.zeros(idx.shape[0], classes.numel(), device=idx.device)
    votes.scatter_add_(1, neighbour_codes, weights)
    # argmax returns the first maximum, i.e. the lowest label among equal votes.
    return classes[votes.argmax(1)]


def knn_accuracy(
    train_feats: torch.Tensor | np.ndarray,
    train_labels: torch.Tensor | np.ndarray,
    test_feats: torch.Tensor | np.ndarray,
    test_labels: torch.Tensor | np.ndarray,
    **kwargs,
) -> float:
    """Top-1 accuracy in percent (0-100) of :func:`knn_predict` on labelled queries.

    Keyword arguments are those of :func:`knn_predict` (``k``, ``metric``, ``weighting``, ...).
    """
    pred = knn_predict(train_feats, train_labels, test_feats, **kwargs)
    truth = torch.as_tensor(test_labels).long().reshape(-1).to(pred.device)
    if truth.shape[0] != pred.shape[0]:
        raise ValueError(f"{truth.shape[0]} test labels for {pred.shape[0]} test features")
    return float((pred == truth).float().mean().item() * 100.0)

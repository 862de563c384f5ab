"""kNN: hand-built banks with known answers, agreement with sklearn, deterministic ties, chunking."""

import numpy as np
import pytest
import torch

from skelssl.evaluation.knn import knn_accuracy, knn_neighbors, knn_predict


def test_cosine_1nn_known_answer_ignores_scale():
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    labels = torch.tensor([10, 11, 12, 13])
    # Each query is nearest in angle to one axis; the magnitudes are deliberately misleading
    # (Euclidean would pick the other way round for the first two).
    test = torch.tensor([[9.0, 1.0], [0.1, 0.5], [-0.2, 0.05], [0.3, -7.0]])
    assert knn_predict(train, labels, test, k=1).tolist() == [10, 11, 12, 13]
    # Euclidean on the same data: [9, 1] is nearest [1, 0] too, but [0.1, 0.5] ~ [0, 1] and
    # [-0.2, 0.05] is closest to... the origin-side points: distances to (0,1),(−1,0),(0,−1),(1,0).
    d = torch.cdist(test, train)
    assert knn_predict(train, labels, test, k=1, metric="euclidean").tolist() == labels[d.argmin(1)].tolist()


def test_weighted_votes_known_answers():
    # One very close neighbour of class 0, two farther ones of class 1.
    train = torch.tensor([[1.0, 0.02], [0.8, 0.6], [0.8, -0.6], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    q = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, labels, q, k=3, weighting="uniform").item() == 1  # 2 votes to 1
    assert knn_predict(train, labels, q, k=3, weighting="exp", temperature=0.07).item() == 0  # exp(1/T) dominates
    assert knn_predict(train, labels, q, k=3, weighting="exp", temperature=100.0).item() == 1  # flat weights: majority
    assert knn_predict(train, labels, q, k=3, weighting="distance").item() == 0  # 1/0.0002 >> 2/0.2
    # A query equal to a gallery point takes that point's class under distance weighting.
    assert knn_predict(train, labels, train[1:2], k=4, metric="euclidean", weighting="distance").item() == 1


def test_knn_accuracy_is_percent():
    train = torch.eye(3)
    acc = knn_accuracy(train, torch.tensor([0, 1, 2]), train, torch.tensor([0, 1, 0]), k=1)
    assert acc == pytest.approx(200.0 / 3.0)


@pytest.mark.parametrize("chunk", [17, 64, 4096])
def test_agrees_with_sklearn_1nn_cosine(chunk):
    sk = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))
    ytr = rng.integers(0, 5, 300)
    yte = rng.integers(0, 5, 200)
    xtr = centres[ytr] + rng.normal(scale=1.5, size=(300, 16))
    xte = centres[yte] + rng.normal(scale=1.5, size=(200, 16))
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731 - ISC normalises first
    ref = sk.KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(norm(xtr), ytr).predict(norm(xte))
    ours = knn_predict(torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr), torch.tensor(xte, dtype=torch.float32), k=1, chunk_size=chunk)
    assert np.array_equal(ours.numpy(), ref)
    acc = knn_accuracy(xtr, ytr, xte, yte, k=1, chunk_size=chunk)
    assert acc == pytest.approx(100.0 * (ref == yte).mean())
    assert 40.0 < acc < 100.0  # the clusters are informative but overlapping


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_agrees_with_sklearn_k7_euclidean(weights):
    sk = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(1)
    xtr, xte = rng.normal(size=(250, 8)), rng.normal(size=(120, 8))
    ytr = rng.integers(0, 4, 250)
    ref = sk.KNeighborsClassifier(n_neighbors=7, weights=weights, metric="euclidean", algorithm="brute").fit(xtr, ytr).predict(xte)
    ours = knn_predict(torch.tensor(xtr), torch.tensor(ytr), torch.tensor(xte), k=7, metric="euclidean", weighting=weights, chunk_size=50)
    assert np.array_equal(ours.numpy(), ref)


def test_ties_go_to_lower_gallery_index_across_chunks():
    # Gallery points 2 and 5 are identical (labels 7 and 3); every query's nearest pair is a tie.
    train = torch.tensor([[0.0, 1.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [-1.0, -1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 1, 7, 2, 4, 3])
    q = torch.tensor([[1.0, 0.1], [2.0, 0.0]])
    for chunk in (1, 2, 3, 4096):
        scores, idx = knn_neighbors(train, q, k=2, chunk_size=chunk)
        assert idx.tolist() == [[2, 5], [2, 5]]
        assert knn_predict(train, labels, q, k=1, chunk_size=chunk).tolist() == [7, 7]
    # Permuting the gallery moves the winner with the lower index.
    perm = torch.tensor([5, 1, 0, 3, 4, 2])
    assert knn_predict(train[perm], labels[perm], q, k=1, chunk_size=2).tolist() == [3, 3]
    # Equal votes between classes: the lower label wins (sklearn's mode does the same).
    train2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert knn_predict(train2, torch.tensor([5, 1]), torch.tensor([[1.0, 0.0]]), k=2).item() == 1


def test_chunking_gives_identical_neighbours():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(500, 12, generator=g)
    test = torch.randn(77, 12, generator=g)
    ref_s, ref_i = knn_neighbors(train, test, k=20, chunk_size=10_000)
    for chunk in (13, 100):
        s, i = knn_neighbors(train, test, k=20, chunk_size=chunk)
        assert torch.equal(i, ref_i)
        assert torch.allclose(s, ref_s)
    # Against the brute-force sorted similarity matrix.
    sims = torch.nn.functional.normalize(test, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    assert torch.equal(ref_i, torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :20])
    assert (ref_s[:, :-1] >= ref_s[:, 1:]).all()


def test_bad_arguments():
    train, labels = torch.randn(5, 3), torch.arange(5)
    with pytest.raises(ValueError, match="k=6"):
        knn_predict(train, labels, torch.randn(2, 3), k=6)
    with pytest.raises(ValueError, match="feature sizes"):
        knn_predict(train, labels, torch.randn(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(train, labels, torch.full((1, 3), float("nan")))
    with pytest.raises(ValueError, match="labels"):
        knn_predict(train, labels[:4], torch.randn(2, 3))
    with pytest.raises(ValueError, match="weighting"):
        knn_predict(train, labels, torch.randn(2, 3), weighting="gauss")


def test_many_exact_ties_match_a_stable_full_sort():
    # Gallery of basis vectors and queries with small integer coefficients: every similarity is
    # exact (one non-zero product), and ties are everywhere, inside and across blocks.
    g = torch.Generator().manual_seed(3)
    gallery = torch.eye(4)[torch.randint(0, 4, (50,), generator=g)]
    queries = torch.randint(0, 3, (30, 4), generator=g).float()
    queries[queries.sum(1) == 0, 0] = 1.0
    sims = torch.nn.functional.normalize(queries, dim=1) @ gallery.T
    ref = torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :7]
    for chunk in (3, 8, 1000):
        _, idx = knn_neighbors(gallery, queries, k=7, chunk_size=chunk)
        assert torch.equal(idx, ref), chunk

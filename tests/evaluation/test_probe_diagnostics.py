"""The robust linear probe and the feature diagnostics on hand-made features with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from skelssl.evaluation.diagnostics import effective_rank, feature_diagnostics, mean_pairwise_cosine
from skelssl.evaluation.probe import robust_probe


def _blobs(n: int, d: int, classes: int, spread: float, seed: int = 0, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, d))
    return (centres[y] + spread * rng.normal(size=(n, d))) * scale, y


def test_probe_separates_separable_features_at_any_scale():
    x, y = _blobs(300, 16, 5, 0.1)
    for scale in (1e-4, 1.0, 1e4):  # standardised first: no learning rate to get wrong
        r = robust_probe(x[:200] * scale + 50, y[:200], x[200:] * scale + 50, y[200:], cs=[0.01, 1.0], folds=3)
        assert r.top1 == 100.0 and r.folds == 3 and set(r.cv) == {"0.01", "1"}


def test_probe_is_deterministic_and_regularises_noise():
    x, y = _blobs(240, 200, 4, 3.0, seed=1)  # weak signal in many dimensions
    a = robust_probe(x[:160], y[:160], x[160:], y[160:], seed=0)
    b = robust_probe(x[:160], y[:160], x[160:], y[160:], seed=0)
    assert a.top1 == b.top1 and a.c == b.c and np.array_equal(a.predictions, b.predictions)
    # Ties in cross-validated accuracy go to the strongest regularisation (the simpler probe).
    best_cv = max(a.cv.values())
    assert a.c == min(float(c) for c, v in a.cv.items() if v == best_cv)
    assert a.top1 > 50  # far above chance (25)


def test_probe_with_more_dimensions_than_samples_equals_the_unprojected_fit():
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(60, 500, 3, 2.0, seed=2)
    r = robust_probe(x[:40], y[:40], x[40:], y[40:], cs=[0.1])
    mean, std = x[:40].mean(0), x[:40].std(0)
    ref = LogisticRegression(C=0.1, max_iter=5000, tol=1e-8).fit((x[:40] - mean) / std, y[:40])
    assert np.array_equal(r.predictions, ref.predict((x[40:] - mean) / std))


def test_probe_handles_tiny_classes():
    x, y = _blobs(9, 4, 3, 0.05)
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])  # a class of one
    r = robust_probe(x, y, x, y, cs=[0.1, 1.0], folds=5)
    assert 0 <= r.top1 <= 100 and r.folds >= 2


def test_effective_rank_and_cosine_know_collapse():
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(2000, 32))
    assert effective_rank(iso) == pytest.approx(32, rel=0.05)
    line = np.outer(rng.normal(size=500), rng.normal(size=32)) + 1e-6 * rng.normal(size=(500, 32))
    assert effective_rank(line) < 1.5
    same = np.tile(rng.normal(size=(1, 8)), (50, 1))
    assert mean_pairwise_cosine(same) == pytest.approx(1.0)
    assert abs(mean_pairwise_cosine(iso)) < 0.02
    d = feature_diagnostics(np.concatenate([iso[:, :4], np.zeros((2000, 4))], 1))
    assert d["dim"] == 8 and d["dead_dims"] == 0.5 and d["effective_rank"] == pytest.approx(4, rel=0.05)


def test_not_copies_mask_marks_test_samples_identical_to_training_ones(tmp_path):
    from skelssl.data.protocols import split
    from skelssl.data.store import write_store
    from skelssl.evaluation.baselines import not_copies_mask

    rng = np.random.default_rng(0)
    frames = [rng.normal(size=(5, 1, 20, 3)).astype(np.float32) for _ in range(6)]
    frames[5] = frames[1].copy()  # a view-3 (test) clip equal to a view-2 (training) clip, as in N-UCLA
    views = [1, 2, 1, 3, 3, 3]
    store = write_store(tmp_path / "s", ((f"a{i}", f, {"label": i % 2, "view": v}) for i, (f, v) in enumerate(zip(frames, views))),
                        "kinect20", 1, info={"dataset": "nucla"})
    train, test = split(store, "nucla-xview")
    mask = not_copies_mask(store, train, test)
    assert mask.tolist() == [True, True, False]  # test = a3, a4, a5; a5 copies a1
    no_dup = write_store(tmp_path / "t", ((f"a{i}", frames[i], {"label": 0, "view": v}) for i, v in enumerate(views[:5])),
                         "kinect20", 1, info={"dataset": "nucla"})
    assert not_copies_mask(no_dup, *split(no_dup, "nucla-xview")) is None

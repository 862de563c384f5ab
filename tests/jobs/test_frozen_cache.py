"""The frozen-feature figures of one encoder are computed once per process: ``knn`` then ``linear`` (as
the demo and small_real.py run them) fit the robust probe of its features once, with the same figures."""

from __future__ import annotations

import pytest

from _toys import TINY_SIMCLR_STGCN
from skelssl.data import synthetic
from skelssl.engine.config import load_config
from skelssl.jobs import evaluate_frozen
from skelssl.jobs.evaluate import evaluate
from skelssl.jobs.pretrain import pretrain

TINY = [*TINY_SIMCLR_STGCN, "eval.probe.cs=[0.01, 1.0]", "eval.probe.folds=3"]


@pytest.fixture(autouse=True)
def empty_caches(monkeypatch):
    """Each test starts with the process's caches empty (another test file may have evaluated the same
    toy encoder on the same store, and its figures would be reused)."""
    monkeypatch.setattr(evaluate_frozen, "_FEATURES", evaluate_frozen._Recent(2))
    monkeypatch.setattr(evaluate_frozen, "_FIGURES", evaluate_frozen._Recent(8))
    monkeypatch.setattr(evaluate_frozen, "_CACHE", {})


def test_knn_then_linear_fit_the_probe_of_the_features_once(tmp_path, monkeypatch):
    store = synthetic.write_store(tmp_path / "store", num_samples=60, layout="kinect20", seed=5, num_persons=1)
    pretrain(load_config(None, [f"data.store={store.path}", *TINY]), tmp_path / "run")
    calls = []
    real = evaluate_frozen.robust_probe
    monkeypatch.setattr(evaluate_frozen, "robust_probe", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    no_baselines = ["baselines.raw_input=false", "baselines.random_init=false"]
    knn = evaluate("knn", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines)
    assert len(calls) == 1
    lin = evaluate("linear", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines)
    assert len(calls) == 1  # the same features: the figures are reused
    assert lin["frozen"] == knn["frozen"] and lin["final"] == knn["frozen"]["probe_top1"]
    lin["frozen"]["knn_top1"] = -1.0  # a caller changing its copy does not change the kept figures
    again = evaluate("linear", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines)
    assert again["frozen"]["knn_top1"] == knn["frozen"]["knn_top1"] and len(calls) == 1
    # Other probe settings are other figures.
    evaluate("linear", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu",
             overrides=[*no_baselines, "probe.cs=[0.1]"])
    assert len(calls) == 2


def test_features_of_one_encoder_are_extracted_once_and_other_weights_are_not_confused(tmp_path, monkeypatch):
    store = synthetic.write_store(tmp_path / "store", num_samples=60, layout="kinect20", seed=6, num_persons=1)
    pretrain(load_config(None, [f"data.store={store.path}", *TINY]), tmp_path / "run")
    calls = []
    real = evaluate_frozen._extract
    monkeypatch.setattr(evaluate_frozen, "_extract", lambda ctx, enc: calls.append(1) or real(ctx, enc))
    no_baselines = ["baselines.raw_input=false", "baselines.random_init=false"]
    knn = evaluate("knn", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines)
    lin = evaluate("linear", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines)
    assert len(calls) == 1 and lin["frozen"] == knn["frozen"]
    # The random-init encoder has other weights: its own features, its own figures.
    rnd = evaluate("knn", tmp_path / "run", store=None, protocol="synthetic-xsub", accelerator="cpu", overrides=no_baselines,
                   random_init=True)
    assert len(calls) == 2 and rnd["frozen"] != knn["frozen"]

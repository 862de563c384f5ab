"""The online kNN monitor of pre-training: held-out training samples only, logged as it runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric

from _toys import TOY_ENCODER, TOY_METHOD
from skelssl.data import synthetic
from skelssl.data.protocols import split
from skelssl.engine.config import load_config
from skelssl.engine.logging import read_metrics
from skelssl.engine.monitor import monitor_split
from skelssl.jobs.pretrain import pretrain

pytestmark = pytest.mark.usefixtures("one_thread")


def test_monitor_split_is_stratified_seeded_and_inside_the_given_indices():
    labels = np.repeat(np.arange(4), 25)
    given = np.arange(100)
    bank, queries = monitor_split(labels, given[:80], holdout=0.25, max_samples=1000)  # classes of 25, 25, 25, 5
    assert not set(bank) & set(queries) and set(bank) | set(queries) == set(given[:80])
    assert np.bincount(labels[queries]).tolist() == [6, 6, 6, 1]
    again = monitor_split(labels, given[:80], holdout=0.25, max_samples=1000)
    assert np.array_equal(bank, again[0]) and np.array_equal(queries, again[1])
    small = monitor_split(labels, given, holdout=0.2, max_samples=40)
    assert len(small[0]) + len(small[1]) == 40


def test_pretraining_logs_the_monitor_on_training_samples_only(tmp_path):
    store = synthetic.write_store(tmp_path / "store", num_samples=48, layout="kinect20", seed=1, num_persons=1)
    cfg = load_config(None, [
        f"data.store={store.path}", "data.protocol=synthetic-xsub", "data.batch_size=8",
        f"encoder.name={TOY_ENCODER}", f"method.name={TOY_METHOD}", "method.kwargs.queue_size=8",
        "trainer.epochs=3", "trainer.accelerator=cpu", "trainer.progress=false", "monitor.every_epochs=2",
    ])
    pretrain(cfg, tmp_path / "run", fabric=Fabric(accelerator="cpu", devices=1))
    evals = [r for r in read_metrics(tmp_path / "run") if r.get("kind") == "eval"]
    assert [r["epoch"] for r in evals] == [-1, 1, 2]  # at initialisation, every 2 epochs, and after the last
    assert evals[0]["step"] == 0
    for r in evals:
        assert 0 <= r["monitor_knn"] <= 100 and 1 <= r["monitor_rank"] <= 8
    # The queries come from the training split: a monitor on the test split is impossible by construction.
    train, test = split(store, "synthetic-xsub")
    bank, queries = monitor_split(store.labels, train, cfg.monitor.holdout, cfg.monitor.max_samples)
    assert set(bank) | set(queries) <= set(train) and not (set(queries) & set(test))


def test_the_monitor_does_not_change_the_run(tmp_path):
    """Training with and without the monitor gives the same weights: its loaders' seed draws do not
    shift the global stream the training's dropout reads."""
    from safetensors.torch import load_file

    store = synthetic.write_store(tmp_path / "store", num_samples=40, layout="kinect20", seed=1, num_persons=1)
    weights = []
    for every in (0, 1):
        cfg = load_config(None, [
            f"data.store={store.path}", "data.protocol=synthetic-xsub", "data.batch_size=8",
            f"encoder.name={TOY_ENCODER}", f"method.name={TOY_METHOD}", "method.kwargs.queue_size=8",
            "trainer.epochs=2", "trainer.accelerator=cpu", "trainer.progress=false", f"monitor.every_epochs={every}",
        ])
        pretrain(cfg, tmp_path / f"run{every}", fabric=Fabric(accelerator="cpu", devices=1))
        weights.append(load_file(str(tmp_path / f"run{every}" / "encoder.safetensors")))
    assert any(r.get("kind") == "eval" for r in read_metrics(tmp_path / "run1"))
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


def test_monitor_is_off_without_labels(tmp_path):
    from skelssl.engine.monitor import make_monitor

    store = synthetic.write_store(tmp_path / "store", num_samples=24, layout="kinect20", num_persons=1)
    cfg = load_config(None, [f"data.store={store.path}"])
    assert make_monitor(cfg, 3) is None  # no protocol, no labelled split to carve
    cfg = load_config(None, [f"data.store={store.path}", "monitor.protocol=synthetic-xsub", "monitor.every_epochs=0"])
    assert make_monitor(cfg, 3) is None

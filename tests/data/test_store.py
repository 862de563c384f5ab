import json
import os

import numpy as np
import pytest
import torch

from skelssl.core.conventions import StoreError
from skelssl.data.dataset import SkeletonDataset, collate, uniform_frame_indices
from skelssl.data.protocols import label_fraction_subset, split, subset_indices, identical_to_train_count
from skelssl.data.store import Store, StoreWriter

from conftest import random_store


def test_store_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(t, 2, 25, 3)).astype(np.float32) for t in (1, 7, 300, 42)]
    with StoreWriter(tmp_path / "s", "ntu25", 2, info={"dataset": "ntu"}) as w:
        for i, a in enumerate(arrays):
            w.add(f"S001C001P001R001A{i + 1:03d}", a, {"label": i, "subject": 1, "view": 1, "setup": 1, "extra_col": 7})
        store = w.close()
    assert len(store) == 4 and store.info["frames"] == sum(len(a) for a in arrays)
    for i, a in enumerate(arrays):
        assert np.array_equal(store.frames(i), a)
        assert store.sample(i).shape == (3, len(a), 25, 2)
    assert store.meta["extra_col"].tolist() == [7] * 4
    assert store.index_of("S001C001P001R001A002") == 1
    assert store.verify()
    # Re-opening reads the same thing; the frames are memory-mapped.
    again = Store(tmp_path / "s")
    assert isinstance(again.frames_array, np.memmap)
    # Samples are independent, writable copies (not views into the map).
    f = again.frames(2)
    f[:] = 0
    assert np.array_equal(again.frames(2), arrays[2])
    assert np.array_equal(again.frames(2), arrays[2])


def test_identical_samples_are_recorded_and_leaks_between_splits_counted(tmp_path):
    rng = np.random.default_rng(1)
    a, b, c = (rng.normal(size=(5, 1, 20, 3)).astype(np.float32) for _ in range(3))
    samples = {"x0": a, "x1": b, "x2": a.copy(), "x3": c, "x4": c.copy(), "x5": a.copy()}
    with StoreWriter(tmp_path / "s", "kinect20", 1) as w:
        for name, frames in samples.items():
            w.add(name, frames, {"label": 0})
        store = w.close()
    assert store.info["duplicates"] == [["x0", "x2", "x5"], ["x3", "x4"]]
    assert [g.tolist() for g in Store(tmp_path / "s").duplicate_groups] == [[0, 2, 5], [3, 4]]
    # x2 and x5 copy the training sample x0; x3 = x4 are both test samples, so no leak.
    assert identical_to_train_count(store, np.array([0, 1]), np.array([2, 3, 4, 5])) == 2
    assert identical_to_train_count(store, np.array([1, 3]), np.array([0, 2, 5])) == 0
    assert identical_to_train_count(store, np.array([0, 1, 2, 3]), np.array([4, 5])) == 2
    # A store written before duplicates were recorded: unknown, not zero.
    info = json.loads((tmp_path / "s" / "store.json").read_text())
    del info["duplicates"]
    (tmp_path / "s" / "store.json").write_text(json.dumps(info))
    old = Store(tmp_path / "s")
    assert old.duplicate_groups is None and identical_to_train_count(old, np.array([0]), np.array([2])) is None


def test_store_checksum_detects_corruption(tmp_path):
    store = random_store(tmp_path / "s")
    f = store.path / "frames.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    assert not Store(store.path).verify()


def test_interrupted_writer_leaves_no_store(tmp_path):
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "s", "kinect20", 1) as w:
            w.add("a", np.zeros((3, 1, 20, 3), np.float32) + 1)
            raise RuntimeError("crash")
    assert not (tmp_path / "s").exists()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_writer_rejects_bad_samples(tmp_path):
    with StoreWriter(tmp_path / "s", "kinect20", 1) as w:
        with pytest.raises(StoreError):
            w.add("bad-shape", np.zeros((3, 2, 20, 3), np.float32))
        with pytest.raises(StoreError):
            w.add("nan", np.full((3, 1, 20, 3), np.nan, np.float32))
        w.add("ok", np.ones((3, 1, 20, 3), np.float32))
        store = w.close()
    assert len(store) == 1


def test_existing_store_replaced_only_when_complete(tmp_path):
    random_store(tmp_path / "s", n=5)
    with pytest.raises(RuntimeError):
        with StoreWriter(tmp_path / "s", "kinect20", 1) as w:
            w.add("x", np.ones((2, 1, 20, 3), np.float32))
            raise RuntimeError("crash")
    assert len(Store(tmp_path / "s")) == 5


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="store.json"):
        Store(tmp_path / "empty")


def test_dataset_and_collate(tmp_path):
    store = random_store(tmp_path / "s", n=6)
    ds = SkeletonDataset(store, indices=[0, 3, 5], max_frames=10)
    items = [ds[i] for i in range(3)]
    for it, idx in zip(items, (0, 3, 5)):
        assert it["index"] == idx and it["x"].shape[1] == min(10, store.lengths[idx])
    batch = collate(items)
    assert batch["x"].shape == (3, 3, max(it["length"] for it in items), 20, 1)
    for n, it in enumerate(items):
        t = it["length"]
        assert torch.equal(batch["x"][n, :, :t], it["x"])
        assert batch["x"][n, :, t:].abs().sum() == 0
    assert batch["lengths"].tolist() == [it["length"] for it in items]
    assert uniform_frame_indices(100, 10).tolist() == list(range(0, 100, 10))


def test_protocol_split_and_subsets(tmp_path):
    store = random_store(tmp_path / "s", n=60, classes=4)
    train, test = split(store, "nucla-xview")
    assert set(store.meta["view"][train]) == {1, 2} and set(store.meta["view"][test]) == {3}
    assert len(train) + len(test) == 60
    sub = label_fraction_subset(store.labels, train, 0.1, seed=0)
    # Class-stratified: every class of the training set is present, at least one each.
    assert set(store.labels[sub]) == set(store.labels[train])
    assert np.array_equal(sub, label_fraction_subset(store.labels, train, 0.1, seed=0))
    assert not np.array_equal(label_fraction_subset(store.labels, train, 0.5, 0), label_fraction_subset(store.labels, train, 0.5, 1))
    assert set(sub) <= set(train)
    assert np.array_equal(subset_indices(store, "nucla-xview", 0.1, 0), sub)
    with pytest.raises(ValueError):
        split(store, "ntu60-xsub")


def test_stratified_fraction_matches_hitrs_one_percent():
    # NTU-60 xsub: ~668 training samples per class -> 7 per class at 1 % (420 in all).
    labels = np.repeat(np.arange(60), 668)
    sub = label_fraction_subset(labels, np.arange(len(labels)), 0.01, 0)
    assert len(sub) == 420

"""Feature extraction: order, eval mode and no grad, batch transforms, multi-process gather."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

from skelssl.data.dataset import SkeletonDataset
from skelssl.evaluation.features import extract_features
from skelssl.models.base import Encoder

from conftest import random_store


class TinyEncoder(Encoder):
    """Masked temporal mean -> Linear -> BatchNorm -> Dropout: eval mode matters for BN and dropout."""

    def __init__(self, in_channels: int = 3, out_dim: int = 8) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = nn.Linear(in_channels, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.5)

    def forward_features(self, x, lengths=None):
        n, c, t, v, m = x.shape
        mask = torch.ones(n, t, device=x.device) if lengths is None else (torch.arange(t, device=x.device)[None] < lengths[:, None]).float()
        summed = (x * mask[:, None, :, None, None]).sum((2, 3, 4))  # (N, C)
        return summed / (mask.sum(1, keepdim=True) * v * m)

    def pool(self, features, lengths=None):
        return self.drop(self.bn(self.proj(features)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return random_store(tmp_path_factory.mktemp("feat") / "s", n=23, classes=3)


def reference(encoder, dataset):
    encoder.eval()
    with torch.no_grad():
        return torch.cat([encoder(it["x"][None], torch.tensor([it["length"]])) for it in (dataset[i] for i in range(len(dataset)))])


def test_features_in_dataset_order_and_batch_size_invariant(store):
    torch.manual_seed(0)
    enc = TinyEncoder()
    ds = SkeletonDataset(store, indices=np.arange(len(store))[::-1].copy())  # reversed: order must follow the dataset
    ref = reference(enc, ds)
    enc.train()
    for bs in (1, 5, 128):
        feats, labels = extract_features(enc, ds, batch_size=bs)
        assert feats.dtype == torch.float32 and feats.device.type == "cpu" and feats.shape == (23, 8)
        assert labels.dtype == torch.int64 and labels.tolist() == ds.labels.tolist()
        assert torch.allclose(feats, ref, atol=1e-5)
        assert not feats.requires_grad


def test_eval_mode_no_grad_and_mode_restored(store):
    enc = TinyEncoder()
    ds = SkeletonDataset(store)
    stats = enc.bn.running_mean.clone()
    enc.train()
    a, _ = extract_features(enc, ds, batch_size=4)
    b, _ = extract_features(enc, ds, batch_size=7)
    assert torch.allclose(a, b, atol=1e-5)  # dropout off, BN uses running stats
    assert torch.equal(enc.bn.running_mean, stats)  # running stats untouched
    assert enc.training and enc.bn.training  # previous train mode restored
    enc.eval()
    extract_features(enc, ds)
    assert not enc.training
    assert all(p.grad is None for p in enc.parameters())


def test_batch_transform_applied(store):
    enc = TinyEncoder().eval()
    ds = SkeletonDataset(store)

    def first_frames(batch):  # a deterministic test-time crop: keep the first 4 frames
        out = dict(batch)
        out["x"] = batch["x"][:, :, :4]
        out["lengths"] = batch["lengths"].clamp(max=4)
        return out

    feats, _ = extract_features(enc, ds, batch_size=6, batch_transform=first_frames)
    with torch.no_grad():
        ref = torch.cat([enc(ds[i]["x"][None, :, :4], torch.tensor([min(4, ds[i]["length"])])) for i in range(len(ds))])
    assert torch.allclose(feats, ref, atol=1e-5)
    assert not torch.allclose(feats, extract_features(enc, ds)[0], atol=1e-3)


def test_gather_across_two_processes_keeps_order(store):
    """Two ranks (threads) each encode a shard; a fake all_gather stacks them like fabric.all_gather."""
    enc = TinyEncoder().eval()
    ds = SkeletonDataset(store)  # 23 samples: shards of 12 and 11, so padding is exercised
    expected, expected_labels = extract_features(enc, ds)
    world = 2
    barrier = threading.Barrier(world)
    slots: dict[int, torch.Tensor] = {}
    lock = threading.Lock()
    results: dict[int, tuple] = {}

    def make_gather(rank):
        def gather(t):
            with lock:
                slots[rank] = t.clone()
            barrier.wait()
            out = torch.stack([slots[r] for r in range(world)])  # (world, n, ...)
            barrier.wait()  # everyone has read before the next call overwrites
            return out

        return gather

    def work(rank):
        results[rank] = extract_features(enc, ds, batch_size=5, gather=make_gather(rank), rank=rank, world_size=world)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert set(results) == {0, 1}
    for rank in range(world):
        feats, labels = results[rank]
        assert torch.allclose(feats, expected, atol=1e-5)
        assert torch.equal(labels, expected_labels)


def test_quiet_unless_progress_and_bad_input(store, capsys):
    enc = TinyEncoder()
    extract_features(enc, SkeletonDataset(store))
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    extract_features(enc, SkeletonDataset(store), progress=True)
    assert "features" in capsys.readouterr().err
    with pytest.raises(ValueError, match="empty"):
        extract_features(enc, SkeletonDataset(store, indices=np.arange(0)))
    with pytest.raises(ValueError, match="gather"):
        extract_features(enc, SkeletonDataset(store), rank=0, world_size=2)

"""Heads and the Classifier: the frozen-encoder (linear) protocol, fine-tuning, evaluation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from skelssl.data.dataset import SkeletonDataset, collate
from skelssl.evaluation.heads import Classifier, LinearHead, MLPHead, evaluate_classifier
from skelssl.models.base import Encoder

from conftest import random_store


class TinyEncoder(Encoder):
    """Masked mean over frames, joints and persons -> Linear -> BatchNorm -> ReLU -> Dropout."""

    def __init__(self, in_channels: int = 3, out_dim: int = 16) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.proj = nn.Linear(in_channels, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.drop = nn.Dropout(0.3)

    def forward_features(self, x, lengths=None):
        n, c, t, v, m = x.shape
        mask = torch.ones(n, t) if lengths is None else (torch.arange(t)[None] < lengths[:, None]).float()
        return (x * mask[:, None, :, None, None]).sum((2, 3, 4)) / (mask.sum(1, keepdim=True) * v * m)  # (N, C)

    def pool(self, features, lengths=None):
        return self.drop(torch.relu(self.bn(self.proj(features))))


class FeatureEncoder(Encoder):
    """Passes pre-computed features through: ``x`` ``(N, D, 1, 1, 1)`` -> ``(N, D)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward_features(self, x, lengths=None):
        return x

    def pool(self, features, lengths=None):
        return features.flatten(1)


def batch_of(n=12, t=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(n, 3, t, 20, 1, generator=g),
        "lengths": torch.full((n,), t),
        "label": torch.randint(0, 4, (n,), generator=g),
        "index": torch.arange(n),
    }


def test_linear_head_init_and_batch_norm():
    torch.manual_seed(0)
    head = LinearHead(256, 60)
    assert abs(head.fc.weight.std().item() - 0.01) < 0.001 and torch.count_nonzero(head.fc.bias) == 0
    probe = LinearHead(256, 60, batch_norm=True)
    assert isinstance(probe.norm, nn.BatchNorm1d) and probe.norm.weight is None and probe.norm.eps == 1e-6
    assert probe(torch.randn(5, 256)).shape == (5, 60)
    mlp = MLPHead(64, 10, hidden_dim=32)
    assert mlp(torch.randn(4, 64)).shape == (4, 10)
    assert torch.count_nonzero(mlp.net[1].bias) == 0


def test_frozen_encoder_gets_no_grad_and_stays_in_eval():
    torch.manual_seed(0)
    enc = TinyEncoder()
    clf = Classifier(enc, LinearHead(16, 4), freeze_encoder=True)
    clf.train()
    assert clf.training and clf.head.training
    assert not enc.training and not enc.bn.training and not enc.drop.training
    assert all(not p.requires_grad for p in enc.parameters())
    stats = enc.bn.running_mean.clone()
    enc_before = [p.detach().clone() for p in enc.parameters()]
    opt = torch.optim.SGD([p for g in clf.param_groups(1e-4) for p in g["params"]], lr=0.5)
    for seed in range(3):
        loss, logs = clf.training_step(batch_of(seed=seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
        clf.after_optimizer_step()
        assert set(logs) == {"loss", "acc"} and 0.0 <= float(logs["acc"]) <= 100.0
    assert all(p.grad is None for p in enc.parameters())
    assert all(torch.equal(a, b) for a, b in zip(enc_before, enc.parameters()))
    assert torch.equal(enc.bn.running_mean, stats)
    assert clf.head.fc.weight.grad is not None
    # Only trainable parameters, biases without decay.
    groups = clf.param_groups(0.05)
    names = {id(p): n for n, p in clf.named_parameters()}
    assert sorted(names[id(p)] for g in groups for p in g["params"]) == ["head.fc.bias", "head.fc.weight"]
    assert {names[id(p)]: g["weight_decay"] for g in groups for p in g["params"]} == {"head.fc.weight": 0.05, "head.fc.bias": 0.0}
    # Two forward passes in train mode agree: the encoder's dropout is off.
    b = batch_of()
    assert torch.allclose(clf(b["x"], b["lengths"]), clf(b["x"], b["lengths"]))


def test_finetune_trains_encoder_with_label_smoothing():
    torch.manual_seed(0)
    enc = TinyEncoder()
    clf = Classifier(enc, MLPHead(16, 4, hidden_dim=8), freeze_encoder=False, label_smoothing=0.1, dropout=0.2).train()
    assert enc.training
    b = batch_of()
    loss, _ = clf.training_step(b)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    clf.eval()
    logits = clf.predict(b)
    assert logits.shape == (12, 4) and not logits.requires_grad
    clf.train()
    torch.manual_seed(1)
    loss_a, _ = clf.training_step(b)
    torch.manual_seed(1)
    logits_a = clf(b["x"], b["lengths"])
    assert torch.allclose(loss_a, F.cross_entropy(logits_a, b["label"], label_smoothing=0.1))
    assert clf.export_encoder() is enc


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    dim, classes, n = 16, 4, 200
    feats = torch.randn(n, dim, generator=g)
    w_true = torch.randn(dim, classes, generator=g)
    labels = (feats @ w_true).argmax(1)  # linearly separable by construction
    clf = Classifier(FeatureEncoder(dim), LinearHead(dim, classes), freeze_encoder=True).train()
    opt = torch.optim.SGD([p for grp in clf.param_groups(0.0) for p in grp["params"]], lr=0.5, momentum=0.9)
    batch = {"x": feats[:, :, None, None, None], "lengths": torch.ones(n, dtype=torch.int64), "label": labels, "index": torch.arange(n)}
    first = None
    for step in range(200):
        loss, logs = clf.training_step(batch)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (clf.predict(batch).argmax(1) == labels).float().mean().item()
    assert acc >= 0.97, acc
    assert float(loss.detach()) < 0.25 * first


def test_evaluate_classifier_matches_manual(tmp_path):
    store = random_store(tmp_path / "s", n=21, classes=4)
    ds = SkeletonDataset(store)
    torch.manual_seed(0)
    clf = Classifier(TinyEncoder(), LinearHead(16, 4), freeze_encoder=True)
    clf.train()
    out = evaluate_classifier(clf, ds, batch_size=4)
    assert clf.training and not clf.encoder.training  # modes restored, encoder still frozen-eval
    clf.eval()
    full = collate([ds[i] for i in range(len(ds))])
    logits = clf.predict(full)
    labels = torch.as_tensor(ds.labels)
    assert out["predictions"].tolist() == logits.argmax(1).tolist()
    assert out["labels"].tolist() == labels.tolist()
    assert out["top1"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item())
    assert out["top5"] == pytest.approx(100.0)  # 4 classes: top-5 contains everything
    assert out["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)


# -- metrics used by the heads' evaluation ------------------------------------------------------------


def test_topk_confusion_and_mean_std():
    from skelssl.evaluation.metrics import confusion_matrix, mean_std, topk_accuracy

    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    labels = torch.tensor([0, 2, 0, 1])
    assert topk_accuracy(logits, labels, ks=(1, 2, 5)) == {1: 25.0, 2: 50.0, 5: 100.0}
    cm = confusion_matrix(logits.argmax(1), labels, 3)
    assert cm.tolist() == [[1, 0, 1], [1, 0, 0], [0, 1, 0]]  # rows: true class, columns: predicted
    mean, std = mean_std([40.0, 42.0, 44.0])
    assert mean == 42.0 and std == pytest.approx(2.0)
    assert mean_std([5.0]) == (5.0, 0.0)


def test_accumulators_sum_exactly_over_processes():
    from skelssl.evaluation.metrics import ClassificationAccumulator, RunningMean

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(30, 6, generator=g), torch.randint(0, 6, (30,), generator=g)
    whole = ClassificationAccumulator(ks=(1, 5), num_classes=6)
    whole.update(logits, labels)
    parts = [ClassificationAccumulator(ks=(1, 5), num_classes=6) for _ in range(2)]
    parts[0].update(logits[:11], labels[:11])  # uneven shards
    parts[1].update(logits[11:], labels[11:])
    # A fake all_reduce(sum) over the two "processes": each call sums the matching tensors.
    states = [torch.cat([p.correct, torch.tensor([p.loss_sum, float(p.count)], dtype=torch.float64)]) for p in parts]
    summed, confusions = sum(states), sum(p.confusion for p in parts)
    calls = iter([summed, confusions])
    parts[0].reduce(lambda t: next(calls))
    ref, got = whole.compute(), parts[0].compute()
    assert got.keys() == ref.keys() and all(got[k] == pytest.approx(ref[k]) for k in ref)
    assert torch.equal(parts[0].confusion, whole.confusion)
    assert ref["top1"] == pytest.approx(100.0 * (logits.argmax(1) == labels).float().mean().item())
    assert ref["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)

    meter = RunningMean()
    meter.update({"loss": torch.tensor(2.0), "acc": 50.0}, n=3)
    meter.update({"loss": 1.0, "acc": 100.0}, n=1)
    assert meter.compute() == {"loss": pytest.approx(1.75), "acc": pytest.approx(62.5)}
    meter.reduce(lambda t: t * 2)  # two identical processes: means unchanged
    assert meter.compute()["loss"] == pytest.approx(1.75)

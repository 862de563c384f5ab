"""The training loop on CPU: sample order, logs, accumulation, clipping, eval callback, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
from lightning_fabric import Fabric
from torch import nn

from _toys import build_toy, make_store, scale_transform
from skelssl.data.dataset import SkeletonDataset
from skelssl.engine import checkpoint as ck
from skelssl.engine.config import OptimConfig, ScheduleConfig, TrainerConfig
from skelssl.engine.dist import all_gather_with_grad
from skelssl.engine.logging import read_metrics
from skelssl.engine.loop import NonFiniteLossError, Trainer, epoch_batches, num_batches
from skelssl.engine.optim import lr_at, optimizer_factory, scheduler_factory


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("store") / "toy", n=24)


@pytest.fixture(scope="module")
def fabric():
    return Fabric(accelerator="cpu", devices=1, precision="32-true")


def trainer(run_dir, fabric, **kw):
    cfg = TrainerConfig(**{"accelerator": "cpu", "progress": False, "log_every": 1, **kw})
    return Trainer(cfg, run_dir, fabric=fabric)


@pytest.mark.parametrize("n, bs, world, drop_last", [(24, 4, 1, True), (23, 4, 1, False), (23, 3, 2, True), (23, 3, 2, False), (10, 4, 3, False), (9, 4, 1, False), (13, 4, 3, False)])
def test_epoch_batches(n, bs, world, drop_last):
    per_rank = [epoch_batches(n, bs, seed=1, epoch=2, rank=r, world=world, drop_last=drop_last) for r in range(world)]
    assert all(len(b) == num_batches(n, bs, world, drop_last) for b in per_rank)
    assert per_rank[0] == epoch_batches(n, bs, seed=1, epoch=2, rank=0, world=world, drop_last=drop_last)
    assert per_rank[0] != epoch_batches(n, bs, seed=1, epoch=3, rank=0, world=world, drop_last=drop_last)
    flat = [i for b in per_rank for batch in b for i in batch]
    if drop_last:
        assert len(set(flat)) == len(flat) and all(len(batch) == bs for b in per_rank for batch in b)
    else:
        assert set(flat) == set(range(n))
        # Never a batch of one beside others (BatchNorm heads cannot train on it): 9 by 4 is 4 + 5.
        assert all(len(batch) > 1 for b in per_rank for batch in b)
    if drop_last:
        # The ranks' k-th batches together are the k-th batch of one process with world x the batch.
        single = epoch_batches(n, bs * world, seed=1, epoch=2, drop_last=True)
        for k, batch in enumerate(single[: len(per_rank[0])]):
            assert sorted(batch) == sorted(i for b in per_rank for i in b[k])


def test_fit_writes_logs_checkpoints_and_calls_hooks(tmp_path, store, fabric):
    method = build_toy(seed=0)
    calls = []

    def evaluate(module, epoch):
        calls.append((epoch, module.training))
        return {"top1": 0.5 + epoch}

    sched = ScheduleConfig(name="cosine", warmup_steps=2)
    summary = trainer(tmp_path, fabric, epochs=2, seed=0).fit(
        method,
        SkeletonDataset(store),
        batch_size=4,
        optimizer_factory=optimizer_factory(OptimConfig(lr=0.01)),
        scheduler_factory=scheduler_factory(sched),
        batch_transform=scale_transform,
        evaluate=evaluate,
        config_dict={"optim": {"lr": 0.01}},
    )
    assert method.gather is all_gather_with_grad
    assert [c[0] for c in calls] == [0, 1]
    assert summary["step"] == 12 and summary["epoch"] == 2 and summary["eval"]["top1"] == 1.5
    assert [e["top1"] for e in summary["eval_history"]] == [0.5, 1.5]
    records = read_metrics(tmp_path)
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 13))
    assert all({"step", "epoch", "lr", "loss", "acc"} <= set(r) for r in train)
    assert [r["lr"] for r in train] == pytest.approx([lr_at(sched, 0.01, s, 6, 12) for s in range(12)])
    assert [r for r in records if r["kind"] == "eval"][1] == {"kind": "eval", "step": 12, "epoch": 1, "top1": 1.5}
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "config.yaml").read_text().strip() == "optim:\n  lr: 0.01"
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.state["step"] == 12 and loaded.config == {"optim": {"lr": 0.01}}
    for k, v in method.state_dict().items():
        assert torch.equal(loaded.model[k], v), k


def test_max_steps_stops_mid_epoch_and_keeps_snapshots(tmp_path, store, fabric):
    summary = trainer(tmp_path, fabric, epochs=5, max_steps=4, keep_every_steps=2).fit(
        build_toy(), SkeletonDataset(store), batch_size=4, optimizer_factory=optimizer_factory(OptimConfig())
    )
    state = ck.load_checkpoint(tmp_path).state
    assert summary["step"] == 4 and state["step"] == 4 and state["epoch"] == 0 and state["batch_in_epoch"] == 4
    assert ck.load_checkpoint(tmp_path / "checkpoints" / "step-0000002").state["step"] == 2


class Regression(nn.Module):
    """Deterministic mean-squared loss of a linear map of each sequence's mean pose."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(60, 1)

    def training_step(self, batch):
        x = batch["x"].sum(2) / batch["lengths"].view(-1, 1, 1, 1)  # (N, C, V, M)
        pred = self.lin(x.flatten(1)).squeeze(1)
        return ((pred - batch["label"].float()) ** 2).mean(), {}


def test_accumulation_equals_the_larger_batch(tmp_path, store, fabric):
    sgd = optimizer_factory(OptimConfig(name="sgd", lr=0.01, momentum=0.0))
    a, b = Regression(), Regression()
    trainer(tmp_path / "a", fabric, epochs=2, accumulate=1).fit(a, SkeletonDataset(store), batch_size=4, optimizer_factory=sgd)
    out = trainer(tmp_path / "b", fabric, epochs=2, accumulate=2).fit(b, SkeletonDataset(store), batch_size=2, optimizer_factory=sgd)
    assert out["step"] == 12
    assert torch.allclose(a.lin.weight, b.lin.weight, atol=1e-6) and torch.allclose(a.lin.bias, b.lin.bias, atol=1e-6)
    assert not torch.allclose(a.lin.weight, Regression().lin.weight)


def test_grad_clip_bounds_the_update(tmp_path, store, fabric):
    model = Regression()
    before = [p.detach().clone() for p in model.parameters()]
    sgd = optimizer_factory(OptimConfig(name="sgd", lr=1.0, momentum=0.0))
    trainer(tmp_path, fabric, max_steps=1, grad_clip=0.01).fit(model, SkeletonDataset(store), batch_size=4, optimizer_factory=sgd)
    step = torch.sqrt(sum(((p.detach() - q) ** 2).sum() for p, q in zip(model.parameters(), before)))
    assert 0.009 < float(step) <= 0.01 + 1e-6
    assert read_metrics(tmp_path)[0]["grad_norm"] > 0.01


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, store, fabric):
    method = build_toy(nan_at_call=8)  # 8th micro-batch: 2nd of step 3 (0-based), batch 1 of epoch 1
    with pytest.raises(NonFiniteLossError) as e:
        trainer(tmp_path, fabric, epochs=3, accumulate=2, ckpt_every_steps=3).fit(
            method, SkeletonDataset(store), batch_size=4, optimizer_factory=optimizer_factory(OptimConfig())
        )
    assert e.value.step == 3 and e.value.epoch == 1 and e.value.batch == 1
    assert "step 3" in str(e.value) and "nan" in str(e.value) and "checkpoints/last" in str(e.value)
    loaded = ck.load_checkpoint(tmp_path)
    assert loaded.state["step"] == 3
    assert all(torch.isfinite(v).all() for v in loaded.model.values() if v.is_floating_point())
    assert max(json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_make_fabric_follows_torchrun_and_forces_fp32_on_cpu(monkeypatch):
    from skelssl.engine.dist import make_fabric

    env = {"TORCHELASTIC_RUN_ID": "t", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
           "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    fabric = make_fabric(TrainerConfig(accelerator="cpu", devices=1, precision="bf16-mixed"), launch=False)
    assert fabric.world_size == 4 and fabric.global_rank == 1 and fabric.local_rank == 1
    assert type(fabric._precision).__name__ == "Precision"  # plain fp32 on CPU


class DtypeProbe(Regression):
    dtypes: list = []

    def training_step(self, batch):
        x = batch["x"].sum(2) / batch["lengths"].view(-1, 1, 1, 1)
        self.dtypes.append(self.lin(x.flatten(1)).dtype)
        return super().training_step(batch)


def test_bf16_mixed_precision_runs_under_autocast(tmp_path, store):
    probe = DtypeProbe()
    out = trainer(tmp_path, Fabric(accelerator="cpu", precision="bf16-mixed"), max_steps=2).fit(
        probe, SkeletonDataset(store), batch_size=4, optimizer_factory=optimizer_factory(OptimConfig())
    )
    assert probe.dtypes == [torch.bfloat16] * 2 and out["loss"] is not None and probe.lin.weight.dtype == torch.float32


class ShoutingRegression(Regression):
    def training_step(self, batch):
        loss, _ = super().training_step(batch)
        return loss, {"loss": 1e6, "mse": loss.detach()}


def test_logs_cannot_shadow_the_engine_loss(tmp_path, store, fabric):
    trainer(tmp_path, fabric, max_steps=3).fit(
        ShoutingRegression(), SkeletonDataset(store), batch_size=4, optimizer_factory=optimizer_factory(OptimConfig())
    )
    records = read_metrics(tmp_path)
    assert len(records) == 3 and all(r["loss"] == pytest.approx(r["mse"]) for r in records)

"""Optimisers, lr schedules (against the papers' formulas) and layer-wise lr decay."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from skelssl.engine.config import ConfigError, OptimConfig, ScheduleConfig
from skelssl.engine.optim import (
    block_layer_id,
    build_optimizer,
    build_scheduler,
    layer_decay_groups,
    lr_at,
    optimizer_factory,
    param_groups_for,
)


def mamp_lr(epoch: float, lr: float, min_lr: float, warmup: float, epochs: float) -> float:
    """MAMP util/lr_sched.py adjust_learning_rate, transcribed."""
    if epoch < warmup:
        return lr * epoch / warmup
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))


def test_cosine_with_fractional_warmup_matches_mamp():
    cfg = ScheduleConfig(name="cosine", warmup_epochs=20, min_lr=5e-4)
    spe, epochs = 7, 400
    for step in [0, 1, 69, 139, 140, 141, 1000, 2799]:
        want = mamp_lr(step / spe, 1e-3, 5e-4, 20, epochs)
        assert lr_at(cfg, 1e-3, step, spe, epochs * spe) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert lr_at(cfg, 1e-3, 0, spe, epochs * spe) == 0.0
    assert lr_at(cfg, 1e-3, epochs * spe + 50, spe, epochs * spe) == pytest.approx(5e-4)


def test_linear_decay_with_longer_horizon_hitrs():
    # Hi-TRS: warm-up 1000 updates, linear decay to 2e-6 at 50k, run stopped at 30k.
    cfg = ScheduleConfig(name="linear", warmup_steps=1000, min_lr=2e-6, total_steps=50_000)
    assert lr_at(cfg, 4e-4, 500, 190, 30_000) == pytest.approx(2e-4)
    assert lr_at(cfg, 4e-4, 1000, 190, 30_000) == pytest.approx(4e-4)
    want = 4e-4 + (2e-6 - 4e-4) * (30_000 - 1000) / 49_000
    assert lr_at(cfg, 4e-4, 30_000, 190, 30_000) == pytest.approx(want)
    assert lr_at(cfg, 4e-4, 60_000, 190, 30_000) == pytest.approx(2e-6)


def test_step_schedules_count_epochs():
    isc = ScheduleConfig(name="multistep", milestones=[50, 70], gamma=0.1)
    spe = 10
    assert lr_at(isc, 0.1, 49 * spe + 9, spe, 800) == pytest.approx(0.1)
    assert lr_at(isc, 0.1, 50 * spe, spe, 800) == pytest.approx(0.01)
    assert lr_at(isc, 0.1, 70 * spe, spe, 800) == pytest.approx(0.001)
    step = ScheduleConfig(name="step", step_size=10, gamma=0.5, min_lr=0.1 * 0.0025)
    assert lr_at(step, 0.1, 9 * spe, spe, 800) == pytest.approx(0.1)
    assert lr_at(step, 0.1, 25 * spe, spe, 800) == pytest.approx(0.025)
    assert lr_at(step, 0.1, 1000 * spe, spe, 10**5) == pytest.approx(0.1 * 0.0025)  # the floor
    const = ScheduleConfig(name="constant", warmup_steps=4)
    assert [lr_at(const, 1.0, s, spe, 100) for s in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_scheduler_applies_lr_scale_and_resumes():
    a, b = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.2), [{"params": [a]}, {"params": [b], "lr_scale": 0.5}])
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.1]
    cfg = ScheduleConfig(name="cosine", warmup_steps=2, min_lr=0.02)
    sched = build_scheduler(cfg, opt, steps_per_epoch=5, total_steps=10)
    seen = []
    for _ in range(6):
        seen.append([g["lr"] for g in opt.param_groups])
        sched.step()
    for s, (lr_a, lr_b) in enumerate(seen):
        assert lr_a == pytest.approx(lr_at(cfg, 0.2, s, 5, 10))
        assert lr_b == pytest.approx(0.5 * lr_at(cfg, 0.2, s, 5, 10))  # the whole curve is scaled (MAE/MAMP)
    opt2 = build_optimizer(OptimConfig(name="sgd", lr=0.2), [{"params": [a]}, {"params": [b], "lr_scale": 0.5}])
    sched2 = build_scheduler(cfg, opt2, 5, 10)
    sched2.load_state_dict(sched.state_dict())
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    with pytest.raises(ConfigError, match="milestone"):
        build_scheduler(ScheduleConfig(name="multistep"), opt, 5, 10)


def test_build_optimizer_kinds():
    p = [nn.Parameter(torch.zeros(2, 2))]
    adamw = build_optimizer(OptimConfig(name="adamw", lr=0.1, betas=[0.9, 0.95], weight_decay=0.05), p)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.9, 0.95)
    assert adamw.param_groups[0]["weight_decay"] == 0.05
    sgd = build_optimizer(OptimConfig(name="sgd", lr=0.1, momentum=0.8, nesterov=True), p)
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["nesterov"]
    assert type(build_optimizer(OptimConfig(name="adam"), p)) is torch.optim.Adam
    frozen = nn.Parameter(torch.zeros(2), requires_grad=False)
    with pytest.raises(ConfigError, match="no trainable"):
        build_optimizer(OptimConfig(), [frozen])


def test_param_groups_no_decay_override():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model.pos_embed = nn.Parameter(torch.zeros(1, 4))
    groups = param_groups_for(model, OptimConfig(weight_decay=0.1, no_decay=[]))
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    # MAMP fine-tuning: only 1-D tensors are exempt, so the positional embedding is decayed.
    assert decayed == {id(model[0].weight), id(model.pos_embed)}
    groups = param_groups_for(model, OptimConfig(weight_decay=0.1, no_decay=["pos_embed"]))
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}
    opt = optimizer_factory(OptimConfig(lr=0.3))(model)
    assert sum(len(g["params"]) for g in opt.param_groups) == 5


class TinyViT(nn.Module):
    def __init__(self, depth: int = 8) -> None:
        super().__init__()
        self.joints_embed = nn.Linear(3, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(depth)])
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)


def test_layer_decay_matches_mamp_scales():
    model = TinyViT(8)
    layer_id = block_layer_id(num_layers=9)
    assert layer_id("joints_embed.weight") == 0 and layer_id("pos_embed") == 0
    assert layer_id("blocks.0.weight") == 1 and layer_id("blocks.7.bias") == 8
    assert layer_id("head.weight") == 9 and layer_id("encoder.blocks.3.attn.qkv.weight") == 4
    groups = layer_decay_groups(model.named_parameters(), 9, 0.8, layer_id, weight_decay=0.05)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert scale[id(model.joints_embed.weight)] == pytest.approx(0.134, abs=5e-4)
    for i, want in enumerate([0.168, 0.210, 0.262, 0.328, 0.410, 0.512, 0.640, 0.800]):
        assert scale[id(model.blocks[i].weight)] == pytest.approx(want, abs=5e-4)
    assert scale[id(model.head.weight)] == 1.0 and scale[id(model.norm.weight)] == 1.0
    assert decay[id(model.blocks[0].bias)] == 0.0 and decay[id(model.blocks[0].weight)] == 0.05
    assert decay[id(model.pos_embed)] == 0.05  # 3-D: decayed, as in MAMP's fine-tuning
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    opt = build_optimizer(OptimConfig(lr=3e-4), groups)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(model.blocks[7].weight)] == pytest.approx(3e-4 * 0.8)

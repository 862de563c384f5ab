"""``data.global_batch`` and ``optim.lr_scale_batch``: resolution rules, and a 2-process gloo check that
one process with global batch B and two processes with B/2 each take the same first optimiser step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning_fabric import Fabric

from _toys import TOY_ENCODER, make_store
from skelssl.engine import checkpoint as ck
from skelssl.engine.config import ConfigError, RunConfig, load_config, resolve_batch
from skelssl.engine.dist import is_rank_zero
from skelssl.jobs.pretrain import pretrain
from skelssl.methods import METHODS
from skelssl.methods.base import Method

# -- resolution ------------------------------------------------------------------------------------


def _cfg(*overrides: str) -> RunConfig:
    return load_config(None, list(overrides))


def test_global_batch_divides_over_devices_and_accumulation():
    cfg = resolve_batch(_cfg("data.global_batch=128", "trainer.accumulate=2"), world_size=4)
    assert (cfg.data.batch_size, cfg.data.global_batch) == (16, 128)
    assert resolve_batch(cfg, 4) == cfg  # resolving again (a resume) changes nothing
    plain = resolve_batch(_cfg("data.batch_size=32", "trainer.accumulate=2"), world_size=3)
    assert (plain.data.batch_size, plain.data.global_batch) == (32, 192)  # batch_size is per device


@pytest.mark.parametrize("world, acc, batch", [(3, 1, 128), (4, 2, 4), (2, 1, 1)])
def test_global_batch_must_divide(world, acc, batch):
    cfg = _cfg(f"data.global_batch={batch}", f"trainer.accumulate={acc}")
    with pytest.raises(ConfigError, match=r"data.global_batch: .* does not divide into") as e:
        resolve_batch(cfg, world)
    assert "\n" not in str(e.value)


def test_range_checks():
    with pytest.raises(ConfigError, match="data.global_batch: must be at least 1"):
        _cfg("data.global_batch=0")
    with pytest.raises(ConfigError, match="optim.lr_scale_batch: must be at least 1"):
        _cfg("optim.lr_scale_batch=0")


def test_linear_lr_scaling():
    cfg = _cfg("optim.lr=1e-3", "optim.lr_scale_batch=256", "data.global_batch=512")
    scaled = resolve_batch(cfg, 2)
    assert scaled.optim.lr == pytest.approx(2e-3) and scaled.optim.lr_scale_batch == 512
    assert resolve_batch(scaled, 2) == scaled  # idempotent: the record is lr at its actual global batch
    unscaled = resolve_batch(_cfg("optim.lr=1e-3", "data.global_batch=512"), 2)
    assert unscaled.optim.lr == 1e-3 and unscaled.optim.lr_scale_batch is None
    per_device = resolve_batch(_cfg("optim.lr=1e-3", "optim.lr_scale_batch=256", "data.batch_size=32"), 4)
    assert per_device.optim.lr == pytest.approx(0.5e-3)  # 32 x 4 = 128 of the reference 256


def test_precedence(tmp_path):
    (tmp_path / "base.yaml").write_text("data: {global_batch: 128, batch_size: 8}\n")
    (tmp_path / "cpu.yaml").write_text("defaults: [base.yaml]\ndata: {batch_size: 32}\n")
    (tmp_path / "gpu.yaml").write_text("defaults: [base.yaml]\ndata: {store: x}\n")
    # the same layer: global_batch wins over batch_size
    base = load_config(tmp_path / "base.yaml")
    assert resolve_batch(base, 1).data.batch_size == 128
    # a recipe that sets batch_size alone drops the inherited global_batch
    cpu = load_config(tmp_path / "cpu.yaml")
    assert cpu.data.global_batch is None and resolve_batch(cpu, 2).data.batch_size == 32
    assert load_config(tmp_path / "gpu.yaml").data.global_batch == 128
    # so does a command-line override, unless it also sets global_batch
    assert load_config(tmp_path / "gpu.yaml", ["data.batch_size=16"]).data.global_batch is None
    both = load_config(tmp_path / "gpu.yaml", ["data.batch_size=16", "data.global_batch=64"])
    assert resolve_batch(both, 2).data.batch_size == 32
    # and an explicit global_batch on top of a batch_size recipe brings it back
    assert load_config(tmp_path / "cpu.yaml", ["data.global_batch=64"]).data.global_batch == 64


def test_paper_recipes_state_the_global_batch():
    for recipe, batch in [("mamp/ntu60_xsub", 128), ("isc/ntu60_xsub", 64), ("motion_transformer/ntu60_xsub", 32)]:
        cfg = load_config(Path(__file__).parents[2] / "configs" / f"{recipe}.yaml")
        assert cfg.data.global_batch == batch, recipe
        assert resolve_batch(cfg, 4).data.batch_size == batch // 4
    for cpu in ["mamp/nucla_cpu", "isc/nucla_cpu", "hitrs/nucla_cpu", "mamp/nucla_xview"]:
        cfg = load_config(Path(__file__).parents[2] / "configs" / f"{cpu}.yaml")
        assert cfg.data.global_batch is None and cfg.data.batch_size == 32, cpu


def test_is_rank_zero_reads_the_launchers(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("LOCAL_RANK", "1")  # Fabric's launcher inside a one-task SLURM job
    assert not is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "3")
    assert not is_rank_zero()


# -- one process x B against two processes x B/2 ---------------------------------------------------------

_METHOD = "_global_batch_regression"


class Regression(Method):
    """A deterministic method (no dropout, noise or queue): mean-squared error of the encoder's
    summed features against the label, so per-rank means averaged by DDP equal the global mean."""

    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def training_step(self, batch):
        pred = self.encoder(batch["x"], batch["lengths"]).sum(1)  # (N,)
        return ((pred - batch["label"].float()) ** 2).mean(), {}


if _METHOD not in METHODS:
    METHODS.add(_METHOD, Regression)


def _run_cfg(store: str, *extra: str) -> RunConfig:
    return load_config(None, [
        f"data.store={store}", "data.global_batch=8", f"encoder.name={TOY_ENCODER}", f"method.name={_METHOD}",
        "optim.name=sgd", "optim.momentum=0.0", "optim.lr=0.05", "optim.lr_scale_batch=4", "trainer.max_steps=1",
        "trainer.accelerator=cpu", "trainer.progress=false", "trainer.seed=3", "monitor.every_epochs=0", *extra,
    ])


def _worker(fabric: Fabric, out_dir: str, store: str) -> None:
    torch.set_num_threads(1)
    summary = pretrain(_run_cfg(store), Path(out_dir) / "ddp", fabric=fabric)
    keep = {k: summary[k] for k in ("batch_size", "global_batch", "lr", "step")}
    Path(out_dir, f"rank{fabric.global_rank}.json").write_text(json.dumps({**keep, "zero": is_rank_zero()}))


def test_one_process_b_equals_two_processes_b_half(tmp_path):
    store = str(make_store(tmp_path / "store", n=24).path)
    Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn").launch(_worker, str(tmp_path), store)
    for r in range(2):
        res = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert res["batch_size"] == 4 and res["global_batch"] == 8 and res["step"] == 1
        assert res["lr"] == pytest.approx(0.1)  # 0.05 x 8 / 4
        assert res["zero"] == (r == 0)

    single = pretrain(_run_cfg(store), tmp_path / "single", fabric=Fabric(accelerator="cpu", devices=1))
    assert single["batch_size"] == 8 and single["global_batch"] == 8 and single["lr"] == pytest.approx(0.1)

    saved = yaml.safe_load((tmp_path / "ddp" / "config.yaml").read_text())
    assert saved["data"]["batch_size"] == 4 and saved["data"]["global_batch"] == 8
    assert saved["optim"]["lr"] == pytest.approx(0.1) and saved["optim"]["lr_scale_batch"] == 8

    ddp, one = ck.load_checkpoint(tmp_path / "ddp"), ck.load_checkpoint(tmp_path / "single")
    assert ddp.state["step"] == one.state["step"] == 1
    for key, value in one.model.items():
        assert torch.allclose(ddp.model[key], value, atol=1e-6), key
    start = _initial_weights(store)  # and the step really moved the weights
    assert any(not torch.allclose(v, start[k]) for k, v in one.model.items())


def _initial_weights(store: str) -> dict[str, torch.Tensor]:
    """The weights pretrain starts from (seeded by trainer.seed), before any step."""
    from skelssl.data.store import Store
    from skelssl.engine.seed import seed_all
    from skelssl.jobs.pretrain import build_method

    cfg = _run_cfg(store)
    seed_all(cfg.trainer.seed)
    method, _ = build_method(cfg, Store(store))
    return method.state_dict()

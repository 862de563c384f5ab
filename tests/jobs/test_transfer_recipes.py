"""The transfer recipes (configs/transfer/): they load, their commands parse, and pre-train -> fine-tune
on another store runs end to end (synthetic ntu25 -> kinect20, and real N-UCLA -> MSR Action3D)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import torch

from skelssl.cli import build_parser
from skelssl.data import synthetic
from skelssl.data.prepare import prepare
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import load_config
from skelssl.jobs.evaluate import evaluate, load_encoder_source
from skelssl.jobs.pretrain import pretrain

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "transfer"
# CPU-test sizes on top of a recipe: a tiny Hi-TRS, one short epoch.
TINY = ["encoder.kwargs.preset=tiny", "data.batch_size=8", "data.max_frames=48", "trainer.epochs=1",
        "trainer.accelerator=cpu", "trainer.progress=false", "trainer.ckpt_every_epochs=1"]
FINETUNE = ["finetune.epochs=1", "finetune.batch_size=8", "finetune.accumulate=1", "input.max_frames=48"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _commands(recipe: Path) -> list[list[str]]:
    return [shlex.split(line.split("skelssl", 1)[1]) for line in recipe.read_text().splitlines()
            if line.lstrip("# ").startswith("skelssl ")]


@pytest.mark.parametrize("recipe", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.stem)
def test_recipe_loads_and_its_commands_parse(recipe):
    cfg = load_config(recipe)
    assert cfg.encoder.name == "hitrs" and cfg.data.protocol is None and cfg.data.store
    commands = _commands(recipe)
    kinds = [c[0] for c in commands]
    assert "pretrain" in kinds and "eval" in kinds
    parser = build_parser()
    for argv in commands:
        args, extra = parser.parse_known_args(argv)
        assert not extra, argv
        if args.command == "pretrain":
            assert args.recipe == f"configs/transfer/{recipe.name}"
        if args.command == "eval":
            # Transfer: evaluated on a store other than the one pre-trained on.
            assert args.store and args.store != cfg.data.store and args.task in ("finetune", "linear")


def test_synthetic_to_another_layout(tmp_path):
    """Pre-train on synthetic ntu25 (25 joints) and fine-tune on kinect20 (20 joints): only the
    joint-shaped position tables of Hi-TRS start afresh; every other weight is the pre-trained one."""
    source = synthetic.write_store(tmp_path / "src", num_samples=24, layout="ntu25", seed=0, num_persons=2)
    target = synthetic.write_store(tmp_path / "dst", num_samples=36, layout="kinect20", seed=1, num_persons=1)
    cfg = load_config(RECIPES / "hitrs_synthetic_to_nucla.yaml", [f"data.store={source.path}", *TINY])
    pretrain(cfg, tmp_path / "run")
    src = load_encoder_source(tmp_path / "run")
    encoder, reinit = src.build(target, random_init=False, seed=0)
    assert sorted(reinit) == ["clip_pe", "frame_pe"]
    pretrained, _ = ckpt.load_tensors(tmp_path / "run" / "encoder.safetensors")
    state = encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in pretrained.items() if k not in reinit)
    r = evaluate("finetune", tmp_path / "run", store=target.path, protocol="synthetic-xview", accelerator="cpu",
                 out=tmp_path / "ft", overrides=FINETUNE)
    assert r["task"] == "transfer" and r["transfer_from"] == str(source.path) and sorted(r["reinitialised"]) == ["clip_pe", "frame_pe"]
    assert 0.0 <= r["final"] <= 100.0 and r["test_samples"] == int((target.meta["view"] == 3).sum())


def _subset(src: Path, dst: Path, names: list[str]) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        os.symlink(src / name, dst / name)
    return dst


@pytest.mark.realdata
def test_real_nucla_to_msr(shared_data, tmp_path):
    """N-UCLA clips -> MSR Action3D sequences (both kinect20): every weight transfers."""
    ucla, msr = shared_data / "nw_ucla" / "all_sqe", shared_data / "msr_action3d" / "MSRAction3DSkeletonReal3D"
    if not ucla.is_dir() or not msr.is_dir():
        pytest.skip(f"N-UCLA or MSR Action3D missing under {shared_data}")
    ucla_names = sorted(os.listdir(ucla))[::50]  # 30 clips over every class and view
    msr_names = [n for n in sorted(os.listdir(msr)) if n.startswith(("a01_", "a02_", "a03_")) and "_s0" in n and "_e01_" in n]
    msr_names.append("files_used_in_cvpr12_paper.txt")
    prepare("nucla", _subset(ucla, tmp_path / "ucla", ucla_names), tmp_path / "ucla_store")
    prepare("msr", _subset(msr, tmp_path / "msr", msr_names), tmp_path / "msr_store")
    cfg = load_config(RECIPES / "hitrs_nucla_to_msr.yaml", [f"data.store={tmp_path / 'ucla_store'}", *TINY])
    pretrain(cfg, tmp_path / "run")
    r = evaluate("finetune", tmp_path / "run", store=tmp_path / "msr_store", protocol="msr-xsub", accelerator="cpu",
                 out=tmp_path / "ft", overrides=FINETUNE)
    assert r["task"] == "transfer" and r["reinitialised"] == []
    assert r["train_samples"] > 0 and r["test_samples"] > 0 and 0.0 <= r["final"] <= 100.0

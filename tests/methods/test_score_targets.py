"""The score is never a target or a difference: Hi-TRS's masked-joint target and MAMP's motion /
position target are the coordinates only, and the bone / motion input streams difference x, y and
keep the score (bone: the smaller score of the bone's two ends; motion: the frame's own score)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import score_store
from skelssl.cli import main as cli_main
from skelssl.core.layouts import get_layout
from skelssl.jobs.bench import SMOKE_OVERRIDES
from skelssl.engine.config import load_config
from skelssl.jobs.pretrain import build_method
from skelssl.transforms.streams import bone, motion, to_stream

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def coco_store(tmp_path_factory):
    """10 COCO-17 clips, x, y in [-1, 1] and a score in [0.3, 1] (never negative)."""
    rng = np.random.default_rng(1)

    def clips():
        for i in range(10):
            t = int(rng.integers(40, 61))
            walk = np.cumsum(rng.normal(scale=0.03, size=(t, 1, 17, 2)), axis=0) + rng.uniform(-0.5, 0.5, size=(1, 1, 17, 2))
            yield f"clip{i:03d}", np.clip(walk, -1, 1), rng.uniform(0.3, 1.0, size=(t, 1, 17)), \
                {"label": i % 2, "subject": 1 + i % 4, "split_xsub_train": int(i < 7), "split_xsub_val": int(i >= 7)}

    return score_store(tmp_path_factory.mktemp("coco-targets") / "store", clips())


def _batch(store, n=4):
    from skelssl.data.dataset import SkeletonDataset, collate

    ds = SkeletonDataset(store, np.arange(n), max_frames=60)
    return collate([ds[i] for i in range(n)])


def _method(name: str, store, *extra: str):
    cfg = load_config(ROOT / f"configs/{name}/ntu60_xsub.yaml", [*SMOKE_OVERRIDES[name], *extra])
    method, _ = build_method(cfg, store)
    return method


def test_hitrs_predicts_the_coordinates_of_masked_joints(coco_store, monkeypatch):
    import skelssl.methods.hitrs as hitrs_module

    method = _method("hitrs", coco_store)
    assert method.pose_head.out_features == 2 and method.encoder.in_channels == 3
    seen = {}
    real = hitrs_module.masked_joint_loss

    def spy(pred, target, selected, scale=10.0):
        seen["pred"], seen["target"] = pred.shape, target.detach().clone()
        return real(pred, target, selected, scale)

    monkeypatch.setattr(hitrs_module, "masked_joint_loss", spy)
    loss, _ = method.training_step(_batch(coco_store))
    assert torch.isfinite(loss)
    assert seen["pred"][-1] == 2 and seen["target"].shape[-1] == 2  # x, y: the score is no target
    loss.backward()
    assert method.pose_head.weight.grad is not None


def test_hitrs_on_3d_keeps_three_targets(tmp_path):
    from conftest import random_store

    store = random_store(tmp_path / "s", n=8, layout="kinect20")
    cfg = load_config(ROOT / "configs/hitrs/ntu60_xsub.yaml", SMOKE_OVERRIDES["hitrs"])
    method, kwargs = build_method(cfg, store)
    assert method.pose_head.out_features == 3 and kwargs.get("coords") is None  # 3D runs: every channel a coordinate


@pytest.mark.parametrize("target", ["motion", "position"])
def test_mamp_reconstructs_coordinates_only(coco_store, monkeypatch, target):
    import skelssl.methods.mamp as mamp_module
    from skelssl.methods.mamp import motion_target
    from skelssl.methods.masking import patchify

    method = _method("mamp", coco_store, f"method.kwargs.target={target}", "method.kwargs.norm_target=false")
    p = method.encoder.t_patch
    assert method.decoder_pred.out_features == p * 2
    seen = {}
    real = mamp_module.masked_mse

    def spy(pred, tgt, mask):
        seen["pred"], seen["target"] = pred.shape, tgt.clone()
        return real(pred, tgt, mask)

    monkeypatch.setattr(mamp_module, "masked_mse", spy)
    seqs = {}
    real_loss = method.pretext_loss

    def keep_seq(seq, draw):
        seqs["seq"] = seq.detach().clone()
        return real_loss(seq, draw)

    monkeypatch.setattr(method, "pretext_loss", keep_seq)
    loss, _ = method.training_step(_batch(coco_store))
    assert torch.isfinite(loss) and seen["pred"][-1] == p * 2 and seen["target"].shape[-1] == p * 2
    xy = seqs["seq"][:, :2]
    expected = motion_target(xy, p) if target == "motion" else patchify(xy, p)
    torch.testing.assert_close(seen["target"], expected)


def test_bone_and_motion_streams_keep_the_score():
    layout = get_layout("coco17")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 9, 17, 1, generator=g) * 2 - 1  # (N, C, T, V, M)
    x[:, 2] = torch.rand(2, 9, 17, 1, generator=g) * 0.7 + 0.3  # score in [0.3, 1]
    lengths = torch.tensor([9, 6])
    x[1, :, 6:] = 0
    parents = torch.tensor(layout.parents)
    b = bone(x, layout, coords=2)
    torch.testing.assert_close(b[:, :2], x[:, :2] - x[:, :2, :, parents])
    torch.testing.assert_close(b[:, 2], torch.minimum(x[:, 2], x[:, 2, :, parents]))
    real = torch.arange(9)[None, :, None, None] < lengths[:, None, None, None]  # (N, T, 1, 1)
    assert (b[:, 2][real.expand_as(b[:, 2])] >= 0.3 - 1e-6).all()  # never a difference of two scores
    m = motion(x, lengths, coords=2)
    torch.testing.assert_close(m[:, 2], x[:, 2])  # the frame's own score (padded frames were zero)
    torch.testing.assert_close(m[:, :2, 1:], (x[:, :2, 1:] - x[:, :2, :-1]) * (torch.arange(1, 9)[None, None, :, None, None] < lengths[:, None, None, None, None]))
    assert (m[0, :2, 0] == 0).all()
    bm = to_stream("bone_motion", x, layout, lengths, coords=2)
    torch.testing.assert_close(bm[:, 2], b[:, 2] * (torch.arange(9)[None, :, None, None] < lengths[:, None, None, None]))
    # without coords (3D data) every channel is differenced, as before
    torch.testing.assert_close(bone(x, layout), x - x[:, :, :, parents])


@pytest.mark.parametrize("stream", ["bone", "motion"])
def test_hitrs_stream_run_records_coords_and_evaluates(coco_store, tmp_path, stream):
    run = tmp_path / "run"
    rc = cli_main(["pretrain", str(ROOT / "configs/hitrs/ntu60_xsub.yaml"), "--out", str(run), f"data.store={coco_store.path}",
                   "data.protocol=null", "data.batch_size=4", "data.max_frames=60", "data.num_workers=0",
                   "trainer.max_steps=1", "trainer.epochs=1", "trainer.accelerator=cpu", "trainer.progress=false",
                   "trainer.devices=1", "monitor.every_epochs=0", *SMOKE_OVERRIDES["hitrs"], f"encoder.kwargs.stream={stream}"])
    assert rc == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["encoder"]["kwargs"]["coords"] == 2 and recorded["encoder"]["kwargs"]["stream"] == stream
    from skelssl.jobs.evaluate import load_encoder_source
    from skelssl.data.store import Store

    source = load_encoder_source(run)
    encoder, reinit = source.build(source.input_store(Store(coco_store.path)), random_init=False, seed=0)
    assert reinit == [] and encoder.coords == 2
    x = _batch(coco_store)
    s = encoder.input_stream(x["x"], x["lengths"])
    assert (s[:, 2][x["x"][:, 2] > 0] >= 0.3 - 1e-6).all()  # the score channel is never a difference
    assert cli_main(["eval", "knn", str(run), "--protocol", "xsub", "knn.ks=[1]", "baselines.raw_input=false",
                     "baselines.random_init=false"]) == 0
    assert json.loads((run / "eval" / "knn-xsub" / "results.json").read_text())["reinitialised"] == []

"""Motion prediction parts: zero-velocity, MPJPE, windows, and a decoder that learns a motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.data.store import write_store
from skelssl.evaluation.prediction import (
    CachedPrediction,
    MotionDecoder,
    MotionPredictor,
    PredictionWindows,
    collate_prediction,
    mpjpe,
    predict_all,
    zero_velocity,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_zero_velocity_repeats_the_last_pose():
    obs = torch.arange(2 * 4 * 1 * 3 * 3, dtype=torch.float32).view(2, 4, 1, 3, 3)
    zv = zero_velocity(obs, 5)
    assert zv.shape == (2, 5, 1, 3, 3)
    assert torch.equal(zv[:, 0], obs[:, -1]) and torch.equal(zv[:, 4], obs[:, -1])


def test_mpjpe_by_hand():
    target = torch.zeros(1, 2, 2, 2, 3)  # N, T, M, V, C
    pred = target.clone()
    pred[0, 0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # frame 0, person 0, joint 0: 5 away
    pred[0, 1, 1, 1] = torch.tensor([0.0, 0.0, 2.0])  # frame 1, person 1, joint 1: 2 away
    assert mpjpe(pred, target).tolist() == pytest.approx([5 / 4, 2 / 4])
    present = torch.tensor([[True, False]])  # person 1 absent: not scored
    assert mpjpe(pred, target, present).tolist() == pytest.approx([5 / 2, 0.0])
    with pytest.raises(ValueError):
        mpjpe(pred[:, :1], target)


def test_untrained_decoder_is_zero_velocity():
    dec = MotionDecoder(feature_dim=8, num_joints=3, num_persons=2, channels=3, horizon=4, hidden_dim=16)
    last = torch.randn(5, 2, 3, 3)
    last[0, 1] = 0  # an absent person stays all zero
    out = dec(torch.randn(5, 8), last)
    assert out.shape == (5, 4, 2, 3, 3)
    assert torch.allclose(out, zero_velocity(last[:, None], 4))


def _constant_velocity(n: int, horizon: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    last = torch.randn(n, 1, 5, 3, generator=g) + torch.tensor([0.0, 0.0, 3.0])  # camera-space-like depth
    velocity = 0.05 * torch.randn(n, 1, 5, 3, generator=g)
    steps = torch.arange(1, horizon + 1, dtype=torch.float32)[None, :, None, None, None]
    future = last[:, None] + steps * velocity[:, None]  # (N, T, 1, 5, 3)
    features = velocity.reshape(n, -1) * 20.0  # what an encoder that saw the motion would carry
    return CachedPrediction(features, last, future, torch.ones(n, 1, dtype=torch.bool))


def test_decoder_learns_constant_velocity_better_than_zero_velocity():
    torch.manual_seed(0)
    horizon = 6
    train, test = _constant_velocity(512, horizon, 0), _constant_velocity(128, horizon, 1)
    module = MotionPredictor(MotionDecoder(15, 5, 1, 3, horizon, hidden_dim=64), loss="mpjpe")
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    order = torch.Generator().manual_seed(0)
    for _ in range(25):
        for idx in torch.randperm(len(train), generator=order).split(128):
            batch = {"features": train.features[idx], "last": train.last[idx], "future": train.future[idx], "present": train.present[idx]}
            loss, logs = module.training_step(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert np.isfinite(logs["mpjpe"])
    ours = mpjpe(predict_all(module, test), test.future)
    zv = mpjpe(zero_velocity(test.last[:, None], horizon), test.future)
    assert (ours < 0.5 * zv).all(), (ours, zv)
    assert zv[-1] > zv[0]  # the baseline's error grows with the horizon


@pytest.mark.parametrize("loss", ["mse", "l1"])
def test_other_losses_give_gradients(loss):
    data = _constant_velocity(8, 3, 2)
    module = MotionPredictor(MotionDecoder(15, 5, 1, 3, 3, hidden_dim=8), loss=loss)
    out, _ = module.training_step(collate_prediction([data[i] for i in range(8)]))
    out.backward()
    assert module.decoder.out.weight.grad.abs().sum() > 0


def test_prediction_windows_from_a_store(tmp_path):
    rng = np.random.default_rng(0)
    lengths = [12, 30, 7]
    samples = [(f"s{i}", rng.normal(size=(t, 1, 20, 3)).astype(np.float32), {"label": i}) for i, t in enumerate(lengths)]
    store = write_store(tmp_path / "st", samples, "kinect20", 1, info={"dataset": "nucla"})
    ds = PredictionWindows(store, [0, 1, 2], observe=6, predict=4, stride=5)
    # 12 frames: start 0 only (5 + 10 > 12); 30 frames: 0, 5, 10, 15, 20; 7 frames: none.
    assert ds.windows.tolist() == [[0, 0], [1, 0], [1, 5], [1, 10], [1, 15], [1, 20]] and ds.sequences == 2
    item = ds[3]
    frames = store.frames(1)
    assert item["x"].shape == (3, 6, 20, 1) and item["length"] == 6 and item["label"] == 1
    np.testing.assert_array_equal(item["x"].permute(1, 3, 2, 0).numpy(), frames[10:16])
    last, future, present = ds.tensors()
    np.testing.assert_array_equal(last[3].numpy(), frames[15])
    np.testing.assert_array_equal(future[3].numpy(), frames[16:20])
    assert present.all()
    with pytest.raises(ValueError, match="frames a window needs"):
        PredictionWindows(store, [2], observe=6, predict=4, stride=1)

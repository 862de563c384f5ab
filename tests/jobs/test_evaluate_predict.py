"""``skelssl eval predict`` end to end: a toy with a known answer, synthetic data via the CLI, real N-UCLA."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from _toys import save_toy_encoder
from conftest import assert_results
from skelssl.cli import main as cli_main
from skelssl.data import synthetic
from skelssl.data.store import Store, write_store
from skelssl.engine import checkpoint as ckpt
from skelssl.jobs.evaluate import evaluate
from skelssl.evaluation.results import read_results
from skelssl.models import build_encoder


pytestmark = pytest.mark.usefixtures("one_thread")


def _drifting_store(path: Path, n: int = 24, seed: int = 0) -> Store:
    """N-UCLA-like clips (views 1-3) of a random still pose drifting 2 cm a frame along x, plus jitter.

    Every clip drifts the same way, so the future is predictable from the last pose alone: a decoder
    that learns the drift beats repeating the last pose by far.
    """
    rng = np.random.default_rng(seed)

    def samples():
        for i in range(n):
            t = int(rng.integers(30, 45))
            pose = rng.normal(size=(1, 20, 3)) * 0.3 + [0.0, 0.0, 3.0]
            drift = np.arange(t)[:, None, None, None] * np.array([0.02, 0.0, 0.0])
            frames = (pose[None] + drift + rng.normal(size=(t, 1, 20, 3)) * 0.002).astype(np.float32)
            yield f"d{i:03d}", frames, {"label": i % 3, "view": 1 + i % 3, "subject": 1 + i % 5}

    return write_store(path, samples(), "kinect20", 1, info={"dataset": "nucla"})


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict_toy")
    store = _drifting_store(root / "store")
    return root, store, save_toy_encoder(root / "encoder.safetensors", hidden=16, out_dim=8)


def test_predict_learns_the_drift_and_beats_zero_velocity(toy):
    root, store, enc = toy
    out = root / "out"
    r = evaluate("predict", enc, store=store.path, protocol="nucla-xview", accelerator="cpu", out=out,
                 overrides=["predict.epochs=20", "predict.hidden_dim=32", "predict.optim.lr=0.003", "predict.batch_size=32"])
    assert_results(r, "predict")
    assert r["metric"] == "mpjpe" and r["lower_is_better"]
    assert r["horizons"] == [2, 4, 8, 10] and set(r["per_horizon"]) == {"2", "4", "8", "10"}
    base = r["baseline"]
    assert base["name"] == "zero-velocity"
    # Zero-velocity is off by 2 cm per frame ahead: 2 cm at horizon 1 ... 20 cm at 10, 11 cm on average.
    assert base["per_horizon"]["10"] == pytest.approx(0.2, abs=0.01)
    assert base["final"] == pytest.approx(0.11, abs=0.01)
    assert r["final"] < 0.3 * base["final"] and r["beats_baseline"], r
    assert r["best"]["value"] <= r["curve"][0] and len(r["curve"]) == 20
    assert r["test_samples"] == 8 and r["train_windows"] > r["train_samples"]
    assert read_results(out)["baseline"]["final"] == pytest.approx(base["final"])
    assert (out / "prediction.gif").read_bytes()[:6] == b"GIF89a"


def test_predict_needs_long_enough_sequences(toy, tmp_path):
    root, store, enc = toy
    with pytest.raises(ValueError, match="frames a window needs"):
        evaluate("predict", enc, store=store.path, protocol="nucla-xview", accelerator="cpu", out=tmp_path / "x",
                 overrides=["predict.observe=40", "predict.horizons=[10]"])


def test_predict_on_synthetic_through_the_cli(tmp_path, capsys):
    store = synthetic.write_store(tmp_path / "s", num_samples=36, layout="ntu25", seed=4, num_persons=2)
    torch.manual_seed(0)
    enc = ckpt.save_encoder(tmp_path / "hitrs.safetensors",
                            build_encoder("hitrs", in_channels=3, layout="ntu25", num_persons=2, preset="tiny"), {})
    out = tmp_path / "pred"
    code = cli_main(["eval", "predict", str(enc), "--store", str(store.path), "--protocol", "synthetic-xsub", "--out", str(out),
                     "predict.epochs=1", "predict.stride=10", "predict.gif=false"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "predict synthetic-xsub: mpjpe" in printed and "zero-velocity" in printed and "lower is better" in printed
    r = json.loads((out / "results.json").read_text())
    assert r["final"] > 0 and r["baseline"]["final"] > 0 and not (out / "prediction.gif").exists()


@pytest.mark.realdata
def test_predict_on_real_nucla(shared_data, tmp_path):
    """Sixty real N-UCLA clips (views 1-3), a tiny Hi-TRS, two epochs; MPJPE in metres beside zero-velocity."""
    src = shared_data / "nw_ucla" / "all_sqe"
    if not src.is_dir():
        pytest.skip(f"no N-UCLA data at {src}")
    part = tmp_path / "nucla"
    part.mkdir()
    for name in sorted(os.listdir(src))[:60]:  # a01 s01..s10, all three views
        os.symlink(src / name, part / name)
    assert cli_main(["prepare", "nucla", str(part), "--out", str(tmp_path / "store")]) == 0
    torch.manual_seed(0)
    enc = ckpt.save_encoder(tmp_path / "hitrs.safetensors",
                            build_encoder("hitrs", in_channels=3, layout="kinect20", num_persons=1, preset="tiny"), {})
    r = evaluate("predict", enc, store=tmp_path / "store", protocol="nucla-xview", accelerator="cpu", out=tmp_path / "pred",
                 overrides=["predict.epochs=2"])
    # N-UCLA joints move about 5 cm a frame (median over these clips), so repeating the last pose errs
    # by decimetres, more at longer horizons; in metres, never by metres.
    zv = r["baseline"]["per_horizon"]
    assert 0.01 < zv["2"] < zv["4"] < zv["10"] < 1.0
    assert 0.0 < r["final"] < 1.0 and r["test_samples"] > 0
    assert (tmp_path / "pred" / "prediction.gif").is_file()

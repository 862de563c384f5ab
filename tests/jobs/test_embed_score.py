"""Embedder.embed() for an encoder trained with data.use_score=false: clips with the store's every
channel (x, y, score) lose the score, as eval reads the store; unknown extra channels are refused in
one line naming the channels the encoder takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import skelssl
from conftest import score_store
from skelssl.cli import main as cli_main
from skelssl.engine.checkpoint import encoder_metadata

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    rng = np.random.default_rng(4)

    def clips():
        for i in range(8):
            t = int(rng.integers(20, 31))
            yield f"clip{i}", rng.uniform(-0.8, 0.8, size=(t, 1, 17, 2)), rng.uniform(0.3, 1.0, size=(t, 1, 17)), {"label": i % 2}

    root = tmp_path_factory.mktemp("embed-score")
    store = score_store(root / "store", clips())
    rc = cli_main(["pretrain", str(ROOT / "configs/baselines/simclr_stgcn_nucla_cpu.yaml"), "--out", str(root / "run"),
                   f"data.store={store.path}", "data.protocol=null", "data.use_score=false", "data.batch_size=4",
                   "data.max_frames=30", "data.num_workers=0", "trainer.max_steps=1", "trainer.epochs=1",
                   "trainer.accelerator=cpu", "trainer.progress=false", "trainer.devices=1", "monitor.every_epochs=0",
                   "encoder.kwargs.channels=[8]", "encoder.kwargs.strides=[1]", "method.kwargs.frames=16",
                   "method.kwargs.hidden_dim=8", "method.kwargs.proj_dim=4"])
    assert rc == 0
    return root / "run", store


def test_clips_with_the_score_lose_it(run):
    run_dir, store = run
    meta = encoder_metadata(run_dir / "encoder.safetensors")
    data = meta["data"] if isinstance(meta["data"], dict) else __import__("json").loads(meta["data"])
    assert data["channel_names"] == ["x", "y"] and data["store_channel_names"] == ["x", "y", "score"]
    enc = skelssl.load_encoder(run_dir, device="cpu")
    clips = [np.ascontiguousarray(np.asarray(store.sample(i))) for i in range(len(store))]  # (C=3, T, V, M)
    assert clips[0].shape[0] == 3
    with_score = enc.embed(clips)
    np.testing.assert_array_equal(with_score, enc.embed([c[:2] for c in clips]))
    feats, _ = enc.embed_store(store)  # what eval / skelssl embed compute from the store
    np.testing.assert_allclose(with_score, feats, rtol=1e-5, atol=1e-6)


def test_extra_channels_the_encoder_cannot_place_are_refused_in_one_line(run):
    run_dir, store = run
    enc = skelssl.load_encoder(run_dir, device="cpu")
    enc.data.pop("store_channel_names")
    enc.data["store"] = None  # an older encoder file, its store gone: nothing says what channel 3 is
    with pytest.raises(ValueError) as e:
        enc.embed(np.asarray(store.sample(0)))
    msg = str(e.value)
    assert "\n" not in msg and "C=3" in msg and "C=2 (x, y)" in msg

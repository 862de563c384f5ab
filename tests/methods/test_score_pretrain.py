"""Every method pre-trains on a COCO-17 2D + score store (x, y, score): the job tells the method which
channels are coordinates (``method.kwargs.coords``, recorded in the run), its augmentations move x, y
only, and the exported encoder takes the score as an input channel; ``data.use_score=false`` drops it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from skelssl.cli import main as cli_main
from skelssl.jobs.bench import SMOKE_OVERRIDES
from skelssl.engine.checkpoint import encoder_metadata

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {
    "hitrs": ROOT / "configs/hitrs/ntu60_xsub.yaml",
    "isc": ROOT / "configs/isc/ntu60_xsub.yaml",
    "mamp": ROOT / "configs/mamp/ntu60_xsub.yaml",
    "motion_transformer": ROOT / "configs/motion_transformer/ntu60_xsub.yaml",
    "simclr": ROOT / "configs/baselines/simclr_stgcn_nucla_cpu.yaml",
}
SMALL = {**SMOKE_OVERRIDES, "simclr": ["encoder.kwargs.channels=[8]", "encoder.kwargs.strides=[1]",
                                       "method.kwargs.frames=16", "method.kwargs.hidden_dim=8", "method.kwargs.proj_dim=4"]}
# MAMP's rotation and SimCLR's optional one run in 2-D here (in the image plane).
EXTRA = {"mamp": [], "simclr": ["method.kwargs.rotate=0.3"]}


@pytest.fixture(scope="module")
def coco_store(tmp_path_factory):
    """12 clips of 40-60 frames, COCO-17, two person slots (the second present in every third clip),
    channels x, y, score: what `prepare pyskl` makes of a pose estimator's 2D pickle."""
    from skelssl.data.store import write_store

    rng = np.random.default_rng(0)

    def samples():
        for i in range(12):
            t = int(rng.integers(40, 61))
            frames = np.zeros((t, 2, 17, 3), np.float32)
            for m in range(1 if i % 3 else 2):
                walk = np.cumsum(rng.normal(scale=0.02, size=(t, 17, 2)), axis=0) + rng.uniform(-0.5, 0.5, size=(1, 17, 2))
                frames[:, m, :, :2] = np.clip(walk, -1, 1)
                frames[:, m, :, 2] = rng.uniform(0.3, 1.0, size=(t, 17))
            yield f"clip{i:03d}", frames, {"label": i % 3, "subject": 1 + i % 4,
                                           "split_xsub_train": int(i < 8), "split_xsub_val": int(i >= 8)}

    root = tmp_path_factory.mktemp("coco-score")
    return write_store(root / "store", samples(), "coco17", 2, channels=3,
                       info={"dataset": "pyskl", "channel_names": ["x", "y", "score"]})


def pretrain(method: str, store, out: Path, *extra: str) -> int:
    return cli_main(["pretrain", str(RECIPES[method]), "--out", str(out), f"data.store={store.path}",
                     "data.protocol=null", "data.batch_size=4", "data.max_frames=60", "data.num_workers=0",
                     "trainer.max_steps=2", "trainer.epochs=1", "trainer.accelerator=cpu", "trainer.progress=false",
                     "trainer.devices=1", "monitor.every_epochs=0", *SMALL[method], *EXTRA.get(method, []), *extra])


@pytest.mark.parametrize("method", sorted(RECIPES))
def test_every_method_pretrains_on_2d_plus_score(method, coco_store, tmp_path):
    run = tmp_path / "run"
    assert pretrain(method, coco_store, run) == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["method"]["kwargs"]["coords"] == 2  # x, y move; the score is carried
    assert recorded["encoder"]["kwargs"]["in_channels"] == 3  # the encoder takes x, y and the score
    meta = encoder_metadata(run / "encoder.safetensors")
    data = meta["data"] if isinstance(meta["data"], dict) else json.loads(meta["data"])
    assert data["channels"] == 3 and data["channel_names"] == ["x", "y", "score"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses and all(np.isfinite(losses))


def test_the_method_rebuilds_from_its_checkpoint_without_the_store(coco_store, tmp_path):
    # Motion-Transformer's flow head is sized by the coordinates (x, y: 4 directions, not 8), so
    # exporting from a checkpoint must rebuild it from the recorded coords.
    from skelssl.engine.checkpoint import load_tensors
    from skelssl.jobs.pretrain import export_encoder

    run = tmp_path / "run"
    assert pretrain("motion_transformer", coco_store, run) == 0
    again = export_encoder(run, tmp_path / "again.safetensors")
    ours, _ = load_tensors(run / "encoder.safetensors")
    theirs, _ = load_tensors(again)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_use_score_false_drops_the_score_for_the_encoder(coco_store, tmp_path, capsys):
    run = tmp_path / "run"
    assert pretrain("simclr", coco_store, run, "data.use_score=false") == 0
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["encoder"]["kwargs"]["in_channels"] == 2 and "coords" not in recorded["method"]["kwargs"]
    meta = encoder_metadata(run / "encoder.safetensors")
    data = meta["data"] if isinstance(meta["data"], dict) else json.loads(meta["data"])
    assert data["channel_names"] == ["x", "y"]
    # evaluation and embeddings read the same two channels of the same store
    assert cli_main(["eval", "knn", str(run), "--protocol", "xsub", "knn.ks=[1]", "baselines.raw_input=false",
                     "baselines.random_init=false"]) == 0
    results = json.loads((run / "eval" / "knn-xsub" / "results.json").read_text())
    assert results["test_samples"] == 4 and results["reinitialised"] == []  # every pre-trained weight fits
    assert cli_main(["embed", str(run), "--store", str(coco_store.path), "--out", str(tmp_path / "z.npz"),
                     "--device", "cpu"]) == 0
    with np.load(tmp_path / "z.npz") as z:
        assert z["features"].shape[0] == len(coco_store) and np.isfinite(z["features"]).all()

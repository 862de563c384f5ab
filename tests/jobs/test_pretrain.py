"""Config-driven pre-training end to end on a toy store: run folder, encoder file, export, splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from lightning_fabric import Fabric

from _toys import TOY_ENCODER, TOY_METHOD
from skelssl.data.store import write_store
from skelssl.engine import checkpoint as ck
from skelssl.engine.config import ConfigError, DataConfig, load_config
from skelssl.engine.config import config_hash as engine_config_hash
from skelssl.evaluation.results import config_hash
from skelssl.jobs.pretrain import export_encoder, open_dataset, pretrain, select_indices


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(0)
    samples = (
        (f"a{i:02d}", rng.normal(size=(int(rng.integers(6, 12)), 1, 20, 3)).astype(np.float32), {"label": (i // 3) % 3, "view": 1 + i % 3})
        for i in range(18)
    )
    return write_store(tmp_path_factory.mktemp("s") / "nucla_toy", samples, "kinect20", 1, info={"dataset": "nucla"})


def test_select_indices(store):
    views = store.meta["view"]
    train = select_indices(store, DataConfig(protocol="nucla-xview"))
    test = select_indices(store, DataConfig(protocol="nucla-xview", split="test"))
    assert set(views[train]) == {1, 2} and set(views[test]) == {3}
    assert len(select_indices(store, DataConfig(protocol="nucla-xview", split="all"))) == 18
    assert len(select_indices(store, DataConfig())) == 18
    few = select_indices(store, DataConfig(protocol="nucla-xview", label_fraction=0.5, subset_seed=1))
    assert set(few) < set(train) and set(store.labels[few]) == {0, 1, 2}
    with pytest.raises(ConfigError, match="label_fraction"):
        select_indices(store, DataConfig(label_fraction=0.1))
    with pytest.raises(ConfigError, match="data.protocol"):
        select_indices(store, DataConfig(protocol="ntu60-xsub"))
    with pytest.raises(ConfigError, match="data.store"):
        open_dataset(DataConfig())


def test_pretrain_end_to_end(tmp_path, store):
    cfg = load_config(
        None,
        [
            f"data.store={store.path}",
            "data.batch_size=4",
            f"encoder.name={TOY_ENCODER}",
            "encoder.kwargs.hidden=12",
            f"method.name={TOY_METHOD}",
            "method.kwargs.queue_size=8",
            "optim.lr=1e-2",
            "schedule.name=cosine",
            "trainer.epochs=2",
            "trainer.accelerator=cpu",
            "trainer.progress=false",
        ],
    )
    run = tmp_path / "run"
    summary = pretrain(cfg, run, fabric=Fabric(accelerator="cpu", devices=1))
    assert summary["step"] == 8 and summary["encoder"] == str(run / "encoder.safetensors")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    # what the recipe gave, the geometry from the store, and the constructor defaults of the rest
    assert saved["encoder"]["kwargs"] == {"hidden": 12, "in_channels": 3, "layout": "kinect20", "num_persons": 1, "out_dim": 8}
    encoder = ck.load_encoder(run)
    trained = ck.load_checkpoint(run).model
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, trained[f"encoder.{key}"]), key
    assert ck.encoder_metadata(run)["config"] == saved
    # One config hash: the checkpoint's is the one results.json would give the run's config.
    checkpoint = ck.load_checkpoint(run)
    assert checkpoint.state["config_hash"] == config_hash(saved) == config_hash(checkpoint.config)
    assert config_hash is engine_config_hash and len(config_hash(saved)) == 16

    exported = export_encoder(run, tmp_path / "again.safetensors")
    again = ck.load_encoder(exported)
    for (key, a), b in zip(encoder.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), key
    # Overrides that leave the weights alone change the recorded config (ISC: which representation).
    seeded = export_encoder(run, tmp_path / "seeded.safetensors", ["trainer.seed=123"])
    assert ck.encoder_metadata(seeded)["config"]["trainer"]["seed"] == 123

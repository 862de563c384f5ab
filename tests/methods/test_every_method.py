"""One training step of every registered method on a tiny synthetic batch (as timm's test over every model).

A method is registered by ``@register_method`` alone; this test finds every one, so a new method is
covered as soon as its file exists, and fails until it has a small setting here (the demo's, by default).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skelssl.data.dataset import SkeletonDataset, collate
from skelssl.jobs.demo import DEMO_METHODS, demo_config
from skelssl.jobs.pretrain import build_method
from skelssl.methods import METHODS, import_methods

pytestmark = pytest.mark.usefixtures("one_thread")

REGISTERED = [name for name in import_methods() if not name.startswith("_")]  # "_...": the tests' toys


def test_every_method_module_registers_itself():
    assert {"hitrs", "isc", "mamp", "motion_transformer", "simclr"} <= set(REGISTERED)
    assert all(METHODS.get(name).__module__ == f"skelssl.methods.{name}" for name in REGISTERED)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from skelssl.data import synthetic

    return synthetic.write_store(tmp_path_factory.mktemp("every-method") / "store", num_samples=12, layout="ntu25", seed=3,
                                 num_persons=2)


@pytest.mark.parametrize("name", REGISTERED)
def test_one_step_of_every_method(name, store):
    assert name in DEMO_METHODS, f"method {name!r} has no small setting (jobs.demo.DEMO_METHODS) to test it with"
    cfg = demo_config(store.path, name, epochs=1)
    torch.manual_seed(0)
    method, _ = build_method(cfg, store)
    method.train()
    data = SkeletonDataset(store, np.arange(8), max_frames=48)
    loss, logs = method.training_step(collate([data[i] for i in range(8)]))
    assert loss.ndim == 0 and torch.isfinite(loss), (name, loss)
    assert all(np.isfinite(float(v)) for v in logs.values()), (name, logs)
    loss.backward()
    grads = [p.grad for p in method.encoder.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}: no gradient reaches the encoder"
    assert all(g is None or torch.isfinite(g).all() for g in grads), f"{name}: non-finite encoder gradient"

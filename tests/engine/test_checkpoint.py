"""Checkpoints: exact round trips without pickle, atomic publication, refusal of pickle files."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from _toys import TOY_ENCODER, ToyEncoder, build_toy
from skelssl.engine import checkpoint as ck
from skelssl.models import build_encoder


class _WriteMarker:
    """A pickle payload: unpickling it writes a file (what an attacker's code would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_flatten_round_trip_keeps_types_and_bits():
    state = {
        "step": 7,
        "lr": 0.1 + 1e-17,
        "nan": float("nan"),
        "flag": True,
        "none": None,
        "name": "adamw",
        "betas": (0.9, 0.999),
        "by_index": {0: {"m": torch.randn(3, 2)}, 12: {"m": torch.tensor(5.0)}},
        "dtypes": [torch.randn(4).to(torch.bfloat16), torch.arange(5), torch.zeros(3, dtype=torch.uint8)],
        "array": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "__tensor__": "a key that looks like a marker",
    }
    structure, tensors = ck.flatten_state(state)
    json.dumps(structure)  # plain JSON
    back = ck.unflatten_state(json.loads(json.dumps(structure)), tensors)
    assert back["betas"] == (0.9, 0.999) and isinstance(back["betas"], tuple)
    assert set(back["by_index"]) == {0, 12}
    assert torch.equal(back["by_index"][0]["m"], state["by_index"][0]["m"])
    assert back["by_index"][12]["m"].shape == ()
    assert back["dtypes"][0].dtype == torch.bfloat16 and torch.equal(back["dtypes"][0], state["dtypes"][0])
    assert isinstance(back["array"], np.ndarray) and back["array"].dtype == np.uint32
    assert back["lr"] == state["lr"] and math.isnan(back["nan"]) and back["none"] is None
    assert back["__tensor__"] == state["__tensor__"]
    with pytest.raises(ck.CheckpointError, match="without pickle"):
        ck.flatten_state({"x": object()})


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(6, 3, 8, 20, 1, generator=g)
        loss, _ = model.training_step({"x": x, "lengths": torch.full((6,), 8)})
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step()


@pytest.mark.parametrize("kind", ["adamw", "sgd"])
def test_training_state_round_trip_continues_identically(tmp_path, kind):
    def make():
        model = build_toy(seed=1, dropout=0.0)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-2) if kind == "adamw" else torch.optim.SGD(params, lr=0.1, momentum=0.9)
        return model, opt

    a, opt_a = make()
    train_steps(a, opt_a, 3, seed=0)
    ck.save_checkpoint(tmp_path / "checkpoints" / "last", a.state_dict(), {"step": 3, "optimizer": opt_a.state_dict()}, {"optim": {"lr": 1}},
                       rank_state={"gen": a.generator.get_state()})
    loaded = ck.load_checkpoint(tmp_path)  # a run folder's checkpoints/last, or the folder itself
    assert loaded.path == tmp_path / "checkpoints" / "last" and loaded.config == {"optim": {"lr": 1}} and loaded.state["step"] == 3
    b, opt_b = make()
    b.load_state_dict(loaded.model, strict=True)
    opt_b.load_state_dict(loaded.state["optimizer"])
    b.generator.set_state(loaded.rank_state(0)["gen"])
    assert torch.equal(b.queue, a.queue) and int(b.queue_ptr) == int(a.queue_ptr)
    train_steps(a, opt_a, 2, seed=5)
    train_steps(b, opt_b, 2, seed=5)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not any(p.suffix in (".pt", ".pth", ".pkl") for p in loaded.path.iterdir())


def test_interrupted_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoints" / "last"
    ck.save_checkpoint(path, {"w": torch.ones(2)}, {"step": 1})
    tmp = ck.begin_checkpoint(path)  # a save that dies before its commit
    (tmp / "model.safetensors").write_bytes(b"half-written")
    assert ck.load_checkpoint(tmp_path).state["step"] == 1
    ck.save_checkpoint(path, {"w": torch.full((2,), 2.0)}, {"step": 2})
    assert ck.load_checkpoint(tmp_path).state["step"] == 2 and not tmp.exists()
    # Killed between moving the old folder aside and renaming the new one in: the old one is found.
    os.replace(path, ck.partial_path(path).parent / ".last.old")
    found = ck.find_checkpoint(tmp_path)
    assert found is not None and torch.equal(ck.load_checkpoint(found).model["w"], torch.full((2,), 2.0))
    assert ck.find_checkpoint(tmp_path / "nothing") is None
    with pytest.raises(ck.CheckpointError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path / "nothing")


def test_tied_weights_are_saved(tmp_path):
    lin = nn.Linear(3, 3)
    state = {"a": lin.weight, "b": lin.weight, "view": lin.weight[0]}
    ck.save_checkpoint(tmp_path / "c", state, {})
    model = ck.load_checkpoint(tmp_path / "c").model
    assert torch.equal(model["a"], model["b"]) and torch.equal(model["view"], lin.weight[0])


def test_pickle_payloads_are_refused_and_never_run(tmp_path):
    live = tmp_path / "live_marker"
    pickle.loads(pickle.dumps(_WriteMarker(live)))
    assert live.read_text() == "pwned"  # the payload is real: unpickling runs it

    marker = tmp_path / "marker"
    payload = pickle.dumps({"model": _WriteMarker(marker)})
    good = ck.save_checkpoint(tmp_path / "run" / "checkpoints" / "last", {"w": torch.ones(2)}, {"step": 1})

    # 1. a pickle where the weights are expected
    (good / "model.safetensors").write_bytes(payload)
    with pytest.raises(ck.CheckpointError, match="pickle"):
        ck.load_checkpoint(tmp_path / "run")
    # 2. a torch.save file given as the checkpoint
    torch.save({"model": _WriteMarker(marker)}, tmp_path / "model.pt")
    with pytest.raises(ck.CheckpointError, match="torch.save"):
        ck.load_checkpoint(tmp_path / "model.pt")
    # 3. a torch.save file where an encoder is expected
    torch.save({"w": _WriteMarker(marker)}, tmp_path / "encoder.safetensors")
    with pytest.raises(ck.CheckpointError, match="never unpickles"):
        ck.load_encoder(tmp_path / "encoder.safetensors")
    # 4. a pickle instead of the JSON state
    (good / "state.json").write_bytes(payload)
    with pytest.raises(ck.CheckpointError, match="JSON"):
        ck.load_checkpoint(good)
    assert not marker.exists()


def test_encoder_round_trip_and_strict_load(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder(TOY_ENCODER, in_channels=3, layout="kinect20", num_persons=1, hidden=12)
    path = ck.save_encoder(tmp_path, enc, {"method": {"name": "toy"}})
    assert path == tmp_path / "encoder.safetensors"
    meta = ck.encoder_metadata(tmp_path)
    assert meta["encoder_spec"] == enc.spec and meta["config"] == {"method": {"name": "toy"}}
    back = ck.load_encoder(path)
    assert isinstance(back, ToyEncoder) and back.spec == enc.spec
    for (k, a), b in zip(enc.state_dict().items(), back.state_dict().values()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 3, 5, 20, 1)
    assert torch.equal(back.eval()(x), enc.eval()(x))

    partial = {k: v for k, v in enc.state_dict().items() if not k.startswith("net.3")}
    ck.save_tensors(tmp_path / "bad.safetensors", partial, {"format": "skelssl-encoder", "encoder_spec": json.dumps(enc.spec)})
    with pytest.raises(ck.CheckpointError, match="do not fit"):
        ck.load_encoder(tmp_path / "bad.safetensors")
    ck.save_tensors(tmp_path / "plain.safetensors", enc.state_dict())
    with pytest.raises(ck.CheckpointError, match="encoder spec"):
        ck.load_encoder(tmp_path / "plain.safetensors")
    with pytest.raises(ck.CheckpointError, match="spec"):
        ck.save_encoder(tmp_path / "x.safetensors", nn.Linear(2, 2))


def test_rng_capture_restore_through_a_checkpoint(tmp_path):
    import random

    from skelssl.engine.seed import capture_rng_state, derive_seed, module_generators, restore_rng_state, seed_all

    assert derive_seed(1, "epoch", 0) == derive_seed(1, "epoch", 0) != derive_seed(0, "epoch", 1)
    model = build_toy()
    gens = module_generators(nn.Sequential(model))
    assert list(gens) == ["0.generator"] and gens["0.generator"] is model.generator

    def draw():
        return (random.random(), float(np.random.rand()), float(torch.rand(())), float(torch.rand((), generator=model.generator)))

    seed_all(11)
    draw()
    ck.save_checkpoint(tmp_path / "c", {}, {}, rank_state={"rng": capture_rng_state(gens)})
    first = draw()
    seed_all(99)
    torch.rand((), generator=model.generator)
    restore_rng_state(ck.load_checkpoint(tmp_path / "c").rank_state(0)["rng"], gens)
    assert draw() == first
    with pytest.raises(KeyError, match="generators differ"):
        restore_rng_state(capture_rng_state(gens), {})

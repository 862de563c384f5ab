"""The run seed (``trainer.seed``) reaches every random draw of every registered method: the same run
seed repeats a training step exactly, another one draws other augmentations, masks and queues; the job
sets it from the config, and no recipe pins it with a per-method seed any more."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import pytest
import torch

from skelssl.engine.config import ComponentConfig, RunConfig, TrainerConfig, build_method_from_config, load_config
from skelssl.methods import METHODS, Method, get_method, import_methods
from skelssl.models import build_encoder

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def smooth_batch(n: int, t: int, persons: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Smooth synthetic NTU-25 motions of different lengths, padded to ``t``; odd samples have one actor."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max(12, t // 2), t + 1, (n,), generator=g)
    base = torch.randn(n, 3, 1, 25, persons, generator=g)
    freq = torch.rand(n, 3, 1, 25, persons, generator=g) * 0.3
    x = base + torch.sin(freq * torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1) + base)
    x = x * (torch.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
    if persons > 1:
        x[1::2, ..., 1] = 0
    return {"x": x, "lengths": lengths, "label": torch.full((n,), -1), "index": torch.arange(n)}


def walking_batch() -> dict[str, torch.Tensor]:
    """Single-person random walks long enough for Hi-TRS's clip and video tasks."""
    g = torch.Generator().manual_seed(0)
    t, lengths = 40, torch.tensor([40, 35, 28])
    x = torch.randn(3, 3, t, 25, 1, generator=g).cumsum(dim=2) * 0.05 + torch.randn(3, 3, 1, 25, 1, generator=g)
    x = x * (torch.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
    return {"x": x, "lengths": lengths, "label": torch.full((3,), -1), "index": torch.arange(3)}


# name -> (tiny method, batch); every registered method must have an entry.
TINY: dict[str, tuple[Callable[[], Method], Callable[[], dict[str, torch.Tensor]]]] = {
    "simclr": (
        lambda: get_method("simclr")(
            build_encoder("stgcn", layout="ntu25", num_persons=2, channels=(8, 16), strides=(1, 2), temporal_kernel=3),
            proj_dim=16, hidden_dim=32, frames=12, rotate=0.3),
        lambda: smooth_batch(8, 30),
    ),
    "isc": (
        lambda: get_method("isc")(
            build_encoder("gru", layout="ntu25", num_persons=2, hidden_size=8, num_layers=2),
            partner={"name": "agcn", "kwargs": {"channels": (8, 16), "strides": (1, 2), "temporal_kernel": 3}},
            queue_size=16, frames=16, proj_dim=8),
        lambda: smooth_batch(4, 40),
    ),
    "hitrs": (
        lambda: get_method("hitrs")(build_encoder("hitrs", layout="ntu25", preset="tiny", dropout=0.0)),
        walking_batch,
    ),
    "mamp": (
        lambda: get_method("mamp")(build_encoder("mamp", layout="ntu25", num_persons=2, preset="tiny", frames=16),
                                   min_frames=8, decoder_depth=1),
        lambda: smooth_batch(4, 30),
    ),
    "motion_transformer": (
        lambda: get_method("motion_transformer")(
            build_encoder("motion_transformer", layout="ntu25", num_persons=2, preset="tiny", frames=20),
            tasks=("flow", "reconstruct")),
        lambda: smooth_batch(6, 40),
    ),
}


def registered() -> list[str]:
    """Every method skelssl registers (test-only registrations start with ``_``)."""
    return sorted(n for n in import_methods() if not n.startswith("_"))


def make(name: str, run_seed: int | None) -> Method:
    torch.manual_seed(0)  # the same initial weights for every run seed
    method = TINY[name][0]()
    if run_seed is not None:
        method.run_seed = run_seed
    return method


def step_loss(method: Method, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(123)  # the global streams (dropout, drop-path) alike for every method compared
    return method.training_step(batch)[0].detach()


def test_every_registered_method_is_covered():
    assert set(registered()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_run_seed_decides_the_draws_of_a_step(name):
    batch = TINY[name][1]()
    a, b, c, default = make(name, 5), make(name, 5), make(name, 6), make(name, None)
    for m in (b, c, default):  # same weights: only the run seed differs
        for (key, pa), pm in zip(a.state_dict().items(), m.state_dict().values()):
            if not key.startswith("queues."):
                assert torch.equal(pa, pm), key
    assert default.run_seed == 0 and a.run_seed == 5
    la, lb, lc, ld = (step_loss(m, batch) for m in (a, b, c, default))
    assert torch.isfinite(la)
    assert torch.equal(la, lb), f"{name}: the same run seed gave another loss"
    assert not torch.equal(la, lc), f"{name}: another run seed drew the same augmentations/masks"
    assert not torch.equal(la, ld)
    # The next step draws anew, and again the same for the same run seed.
    la2, lb2, lc2 = (step_loss(m, batch) for m in (a, b, c))
    assert torch.equal(la2, lb2) and not torch.equal(la2, lc2) and not torch.equal(la2, la)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_resumed_method_draws_what_the_unbroken_one_draws(name):
    batch = TINY[name][1]()
    a = make(name, 7)
    step_loss(a, batch)
    resumed = make(name, 7)
    resumed.load_state_dict(a.state_dict())  # the step counter travels with the checkpoint
    assert torch.equal(step_loss(a, batch), step_loss(resumed, batch))


def test_isc_initial_queues_follow_the_run_seed_and_a_trained_queue_is_kept():
    a, b, c = make("isc", 1), make("isc", 1), make("isc", 2)
    for rep in a.reps:
        assert torch.equal(a.queues[rep].keys, b.queues[rep].keys)
        assert not torch.equal(a.queues[rep].keys, c.queues[rep].keys)
    assert not torch.equal(a.queues["seq"].keys, a.queues["graph"].keys)  # distinct keys per queue
    step_loss(a, TINY["isc"][1]())
    kept = {rep: a.queues[rep].keys.clone() for rep in a.reps}
    a.run_seed = 3  # after training started: only the draws of the next steps change
    assert all(torch.equal(a.queues[rep].keys, kept[rep]) for rep in a.reps) and a.run_seed == 3


def simclr_run(seed: int, method_kwargs: dict | None = None) -> RunConfig:
    enc = {"name": "stgcn", "kwargs": {"in_channels": 3, "layout": "ntu25", "num_persons": 2, "channels": [8, 16],
                                       "strides": [1, 2], "temporal_kernel": 3}}
    method = {"proj_dim": 16, "hidden_dim": 32, "frames": 12, **(method_kwargs or {})}
    return RunConfig(encoder=ComponentConfig(**enc), method=ComponentConfig("simclr", method),
                     trainer=TrainerConfig(seed=seed))


def test_the_job_sets_the_run_seed_from_trainer_seed():
    from skelssl.jobs.pretrain import build_method

    batch = TINY["simclr"][1]()
    torch.manual_seed(0)
    m4, _ = build_method(simclr_run(4))
    torch.manual_seed(0)
    m4b, _ = build_method(simclr_run(4))
    torch.manual_seed(0)
    m5, _ = build_method(simclr_run(5))
    assert (m4.run_seed, m5.run_seed) == (4, 5)
    l4, l4b, l5 = step_loss(m4, batch), step_loss(m4b, batch), step_loss(m5, batch)
    assert torch.equal(l4, l4b) and not torch.equal(l4, l5)


def test_a_recorded_method_seed_still_loads_and_pins_the_run_seed():
    # Configs recorded before the run seed came from trainer.seed carry method.kwargs.seed.
    cfg = simclr_run(9, {"seed": 2})
    enc = build_encoder("stgcn", **cfg.encoder.kwargs)
    with pytest.warns(FutureWarning, match="method.kwargs.seed"):
        method = build_method_from_config(cfg.method, run_seed=cfg.trainer.seed, encoder=enc)
    assert method.run_seed == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_method_from_config(simclr_run(9).method, run_seed=9, encoder=enc).run_seed == 9


def test_no_recipe_pins_a_method_seed():
    recipes = [p for p in CONFIGS.glob("*/*.yaml") if not p.name.startswith("_")]
    assert recipes
    for path in recipes:
        cfg = load_config(path)
        assert "seed" not in cfg.method.kwargs, f"{path}: method.kwargs.seed overrides trainer.seed; remove it"

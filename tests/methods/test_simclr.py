"""SimCLR: one step gives a finite loss and encoder gradients, training reduces the loss, and the
augmentation stream is determined by the seed and the saved step counter."""

from __future__ import annotations

import torch

from conftest import TINY_ENCODERS, smooth_motions, train_on_one_batch
from skelssl.methods import Method, get_method
from skelssl.models import build_encoder

torch.set_num_threads(1)

TINY = TINY_ENCODERS["stgcn"]


def make_method(seed: int = 0, **kwargs):
    torch.manual_seed(0)  # parameter init only
    enc = build_encoder("stgcn", layout="ntu25", num_persons=2, **TINY)
    cls = get_method("simclr")
    defaults = {"proj_dim": 16, "hidden_dim": 32, "frames": 12, "rotate": 0.3}
    method = cls(enc, **{**defaults, **kwargs})
    method.run_seed = seed
    return method


def make_batch(n: int = 8, t: int = 30, seed: int = 0) -> dict[str, torch.Tensor]:
    return smooth_motions(n, t, seed, min_length=16)


def test_one_step_gives_finite_loss_and_encoder_gradients():
    method = make_method()
    assert isinstance(method, Method) and method.export_encoder() is method.encoder
    batch = make_batch()
    x0 = batch["x"].clone()
    loss, logs = method.training_step(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(logs) == {"loss", "pos_sim", "top1"}
    assert 0.0 <= float(logs["top1"]) <= 1.0 and -1.0 <= float(logs["pos_sim"]) <= 1.0
    loss.backward()
    grads = [p.grad for p in method.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert torch.equal(batch["x"], x0)  # the batch is not modified
    assert int(method.step) == 1 and "step" in method.state_dict()


def test_augmentation_stream_is_seeded_and_resumable():
    batch = make_batch()
    a, b, c = make_method(seed=0), make_method(seed=0), make_method(seed=1)
    la, _ = a.training_step(batch)
    lb, _ = b.training_step(batch)
    lc, _ = c.training_step(batch)
    assert torch.equal(la, lb) and not torch.equal(la, lc)
    # A fresh method loaded from a's state draws the views a draws at its next step.
    resumed = make_method(seed=0)
    resumed.load_state_dict(a.state_dict())
    assert torch.equal(a.training_step(batch)[0], resumed.training_step(batch)[0])
    assert not torch.equal(la, a.training_step(batch)[0])  # a new step, new views


def test_a_few_dozen_steps_reduce_the_loss():
    method = make_method(seed=3)
    batch = make_batch(n=8, seed=4)
    losses = train_on_one_batch(method, torch.optim.Adam(method.parameters(), lr=3e-3), batch, 30)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)


def test_gather_hook_is_used():
    method = make_method()
    seen = []

    def gather(t: torch.Tensor) -> torch.Tensor:  # a one-process "gather" that records its calls
        seen.append(t.shape)
        return t

    method.gather = gather
    method.training_step(make_batch())
    assert seen == [torch.Size([8, 16]), torch.Size([8, 16])]

"""Tiny encoder, method and store shared by the engine and job tests (and the resume test's subprocess).

The toy method touches every kind of state a real one has: parameters, a momentum (EMA) target, a
queue buffer with a pointer (MoCo/ISC), dropout (global random stream), its own ``torch.Generator``
(masking), and the ``gather`` hook.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from skelssl.core.layouts import Layout, get_layout
from skelssl.data.store import write_store
from skelssl.methods import METHODS
from skelssl.methods.base import Method
from skelssl.models import ENCODERS
from skelssl.models.base import Encoder

TOY_ENCODER = "_engine_toy_mlp"


class ToyEncoder(Encoder):
    """Mean over valid frames, then a 2-layer MLP: ``(N, C, T, V, M)`` -> ``(N, out_dim)``."""

    def __init__(self, in_channels: int = 3, layout: Layout | str = "kinect20", num_persons: int = 1, hidden: int = 16, out_dim: int = 8) -> None:
        super().__init__()
        v = get_layout(layout).num_joints
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_channels * v * num_persons, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        n, c, t, v, m = x.shape
        if lengths is None:
            lengths = torch.full((n,), t, device=x.device)
        mean = x.sum(2) / lengths.clamp(min=1).view(n, 1, 1, 1).to(x.dtype)  # (N, C, V, M)
        return self.net(mean.reshape(n, c * v * m))  # (N, out_dim)

    def pool(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return features


if TOY_ENCODER not in ENCODERS:  # the module may be imported under two names in one process
    ENCODERS.add(TOY_ENCODER, ToyEncoder)


class ToyMethod(Method):
    """A MoCo-like toy: online encoder + projector vs EMA target, with a key queue."""

    def __init__(self, encoder: Encoder, queue_size: int = 16, dropout: float = 0.1, seed: int = 7, nan_at_call: int | None = None,
                 blowup_at_call: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        d = encoder.out_dim
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(d, d))
        self.target = nn.ModuleDict({"encoder": copy.deepcopy(encoder), "proj": copy.deepcopy(self.proj[1])})
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.register_buffer("queue", nn.functional.normalize(torch.randn(queue_size, d), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.int64))
        self.generator = torch.Generator().manual_seed(seed)
        self.gather = lambda x: x
        self.nan_at_call = nan_at_call
        self.blowup_at_call = blowup_at_call  # weights to 1e27 with a finite loss (a diverged run)
        self.calls = 0

    def momentum_pairs(self):
        return [(self.encoder, self.target["encoder"]), (self.proj[1], self.target["proj"])]

    def momentum(self) -> float:
        return 0.9

    def training_step(self, batch):
        x, lengths = batch["x"], batch["lengths"]  # (N, C, T, V, M), (N,)
        noise = torch.randn(x.shape, generator=self.generator) * 0.05
        q = nn.functional.normalize(self.proj(self.encoder(x + noise.to(x.device), lengths)), dim=1)  # (N, D)
        with torch.no_grad():
            k = nn.functional.normalize(self.target["proj"](self.target["encoder"](x, lengths)), dim=1)
        keys = self.gather(k)
        pos = (q * k).sum(1, keepdim=True)  # (N, 1)
        neg = q @ self.queue.clone().t()  # (N, K); the queue is updated in place below
        logits = torch.cat([pos, neg], 1) / 0.2
        loss = nn.functional.cross_entropy(logits, torch.zeros(len(q), dtype=torch.int64, device=q.device))
        with torch.no_grad():
            n, size = keys.shape[0], self.queue.shape[0]
            idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % size
            self.queue[idx] = keys.to(self.queue.dtype)  # bf16 under autocast
            self.queue_ptr.copy_((self.queue_ptr + n) % size)
        self.calls += 1
        if self.blowup_at_call is not None and self.calls == self.blowup_at_call:
            with torch.no_grad():
                self.encoder.net[0].weight.mul_(1e27)
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            loss = loss * float("nan")
        acc = (logits.argmax(1) == 0).float().mean()
        return loss, {"acc": acc}


def scale_transform(batch, generator: torch.Generator):
    """Batched random scaling with the trainer's generator (like the real augmentations)."""
    n = batch["x"].shape[0]
    factor = 1.0 + 0.1 * torch.rand(n, generator=generator, device=batch["x"].device)
    return {**batch, "x": batch["x"] * factor.view(n, 1, 1, 1, 1)}


def make_store(path: Path, n: int = 40, seed: int = 0):
    """A random kinect20 store of ``n`` one-person sequences of 6 to 14 frames."""
    rng = np.random.default_rng(seed)

    def samples():
        for i in range(n):
            t = int(rng.integers(6, 15))
            yield f"s{i:03d}", rng.normal(size=(t, 1, 20, 3)).astype(np.float32), {"label": i % 4}

    return write_store(path, samples(), "kinect20", 1, info={"dataset": "toy"})


# Overrides of the default recipe for a SimCLR / ST-GCN run small enough for a CPU test (one epoch on
# a synthetic store's synthetic-xsub split), and for evaluating it on short clips.
TINY_SIMCLR_STGCN = [
    "encoder.name=stgcn", "encoder.kwargs.channels=[8, 16]", "encoder.kwargs.strides=[1, 2]",
    "encoder.kwargs.temporal_kernel=3",
    "method.name=simclr", "method.kwargs.frames=12", "method.kwargs.hidden_dim=16", "method.kwargs.proj_dim=8",
    "data.protocol=synthetic-xsub", "data.batch_size=16", "data.max_frames=60",
    "trainer.epochs=1", "trainer.accelerator=cpu", "trainer.progress=false",
    "eval.input.frames=12", "eval.input.min_frames=8",
]


def write_toy_recipe(folder: Path, **trainer) -> Path:
    """``folder/toy.yaml``: the toy method (queue of 8) on a 16-sequence store written to ``folder/store``,
    batches of 4 at lr 0.01, on the CPU without progress bars; ``trainer`` holds the other trainer settings."""
    store = make_store(folder / "store", n=16)
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump({
        "data": {"store": str(store.path), "batch_size": 4},
        "encoder": {"name": TOY_ENCODER},
        "method": {"name": TOY_METHOD, "kwargs": {"queue_size": 8}},
        "optim": {"lr": 0.01},
        "trainer": {"accelerator": "cpu", "progress": False, **trainer},
    }))
    return path


def save_toy_encoder(path: Path, hidden: int, out_dim: int) -> Path:
    """A toy encoder for one-person kinect20 stores, built after ``torch.manual_seed(0)`` and saved to
    ``path`` as an encoder file (what ``skelssl eval`` reads)."""
    from skelssl.engine import checkpoint as ckpt
    from skelssl.models import build_encoder

    torch.manual_seed(0)
    enc = build_encoder(TOY_ENCODER, in_channels=3, layout="kinect20", num_persons=1, hidden=hidden, out_dim=out_dim)
    return ckpt.save_encoder(path, enc, {})


def build_toy(seed: int = 0, **method_kwargs) -> ToyMethod:
    """The toy method with deterministic initial weights."""
    torch.manual_seed(seed)
    from skelssl.models import build_encoder

    return ToyMethod(build_encoder(TOY_ENCODER, in_channels=3, layout="kinect20", num_persons=1), **method_kwargs)


TOY_METHOD = "_engine_toy_method"
if TOY_METHOD not in METHODS:
    METHODS.add(TOY_METHOD, ToyMethod)

"""ISC pre-training throughput (plug-in for ``benchmarks/train_throughput.py``).

    .venv/bin/python benchmarks/train_throughput.py --method isc [--batch 256] [--steps 5]

One optimiser step of paper-size seq+graph ISC (GRU 3 x 1024 and 2s-AGCN queries, their momentum key
encoders, two queues of 16,384 keys, NTU layout, 2 persons, 64-frame clips) on a fixed synthetic
batch of ``args.batch`` sequences of 64-150 frames (ISC used 64 per step):

- ``fast``: the GRU's ``faithful`` mode (the official stepped bidirectional GRU computed with six
  whole-clip cuDNN calls), bf16 autocast on CUDA (whole-sequence RNNs stay fp32; cuDNN uses TF32), the
  views made batched on the training device by ``skelssl.transforms``;
- ``naive``: the official code's shape: the GRU stepped one frame at a time (``stepwise`` mode, 64
  sequential calls per pass), fp32, each view made per sample on the CPU and then moved.

Both variants compute the same function up to floating point. The harness's FLOP counter does not see
cuDNN's fused GRU; ``PAPER_SIZE["gru_gflop_per_sample_step"]`` is the GRU's analytic share.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from skelssl.methods import get_method
from skelssl.models import build_encoder

QUEUE = 16384
# GRU multiply-adds per frame = its weight-matrix entries (biases and gates are negligible):
# 44,998,656 parameters, 64 frames, x2 FLOPs; a step runs the queries forward + backward (~3x) and the
# keys forward (1x).
_GRU_WEIGHTS = 3 * 1024 * (150 + 1024) * 2 + 2 * 3 * 1024 * (2048 + 1024) * 2
PAPER_SIZE = {
    "pairing": "seq+graph",
    "gru": "3 x 1024 bidirectional (faithful), 2048-d, 45.0 M parameters",
    "agcn": "2s-AGCN single stream, 10 units 64-256, 256-d, 3.45 M parameters",
    "heads": "MLP D-D-128",
    "queues": f"2 x {QUEUE} keys",
    "frames": 64,
    "batch_in_paper": 64,
    "gru_gflop_per_sample_step": round(4 * 2 * _GRU_WEIGHTS * 64 / 1e9, 2),
}


def _batch(n: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A fixed synthetic NTU-like batch: ``(n, 3, 150, 25, 2)`` smooth motions of 64-150 real frames."""
    g = torch.Generator().manual_seed(0)
    t = 150
    lengths = torch.randint(64, t + 1, (n,), generator=g)
    base = torch.randn(n, 3, 1, 25, 2, generator=g)
    freq = torch.rand(n, 3, 1, 25, 2, generator=g) * 0.3
    x = base + 0.3 * torch.sin(freq * torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1))
    x = x * (torch.arange(t)[None, :] < lengths[:, None])[:, None, :, None, None]
    x[1::2, ..., 1] = 0  # every other clip has one actor
    return {"x": x.to(device), "lengths": lengths.to(device)}


def _per_sample_cpu_views(method) -> Callable:
    """Official-style views: each sample augmented on its own on the CPU, then stacked and moved."""

    def views(batch: dict[str, torch.Tensor]):
        g = method.generator()
        device = batch["x"].device
        x, lengths = batch["x"].cpu(), batch["lengths"].cpu()
        pairs = []
        for i in range(x.shape[0]):
            one = {"x": x[i : i + 1], "lengths": lengths[i : i + 1]}
            pairs.append((method.augment(one, g), method.augment(one, g)))
        out = []
        for k in range(2):
            out.append({
                "x": torch.cat([p[k]["x"] for p in pairs]).to(device),
                "lengths": torch.cat([p[k]["lengths"] for p in pairs]).to(device),
            })
        return out[0], out[1]

    return views


def make_step(args, device: torch.device, naive: bool) -> Callable[[], None]:
    """One ISC optimiser step (forward, backward, SGD update, momentum update) on a fixed batch."""
    frames = args.frames or 64
    torch.manual_seed(0)
    preset = getattr(args, "preset", None) or "paper"  # GRU and AGCN alike: paper or small
    enc = build_encoder("gru", layout="ntu25", num_persons=2, mode="stepwise" if naive else "faithful", preset=preset)
    queue = QUEUE if QUEUE % args.batch == 0 else args.batch * max(1, QUEUE // args.batch)
    method = get_method("isc")(enc, partner={"name": "agcn", "kwargs": {"preset": preset}}, queue_size=queue, frames=frames)
    method = method.to(device).train()
    if naive:
        method.views = _per_sample_cpu_views(method)  # instance attribute: replaces the batched views
    opt = torch.optim.SGD(method.param_groups(1e-4), lr=0.01, momentum=0.9)
    batch = _batch(args.batch, device)
    use_bf16 = device.type == "cuda" and not naive

    def step() -> None:
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else contextlib.nullcontext()
        with ctx:
            loss, _ = method.training_step(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.after_optimizer_step()

    return step

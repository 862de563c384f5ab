"""Data parallelism on CPU: two gloo processes (Fabric's launcher) against one process with the whole batch.

One spawn runs every check (gloo start-up is the slow part): DDP-averaged gradients, the gathers
(order, uneven sizes, gradients), and a short ``Trainer.fit`` whose weights must match a
single-process run with the same global batch.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from lightning_fabric import Fabric
from torch import nn

from _toys import make_store
from skelssl.data.dataset import SkeletonDataset
from skelssl.engine import checkpoint as ck
from skelssl.engine.config import OptimConfig, TrainerConfig
from skelssl.engine.dist import all_gather_concat, all_gather_with_grad, rank, world_size
from skelssl.engine.loop import Trainer
from skelssl.engine.optim import optimizer_factory

TRAINER = TrainerConfig(accelerator="cpu", epochs=2, seed=4, progress=False, ckpt_every_steps=2)
SGD = OptimConfig(name="sgd", lr=0.01, momentum=0.9)


class GatherRegression(nn.Module):
    """A mean-squared loss over the samples of *all* ranks, through the ``gather`` hook."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(60, 1)
        self.gather = lambda t: t

    def training_step(self, batch):
        x = batch["x"].sum(2) / batch["lengths"].view(-1, 1, 1, 1)  # (N, C, V, M)
        pred = self.gather(self.lin(x.flatten(1)).squeeze(1))  # (N * world,)
        target = self.gather(batch["label"].float())
        return ((pred - target) ** 2).mean(), {}


def _worker(fabric: Fabric, out_dir: str, store_path: str) -> None:
    torch.set_num_threads(1)
    r, w = fabric.global_rank, fabric.world_size
    res: dict = {"rank": rank(), "world": world_size()}
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 5, generator=g), torch.randn(8, generator=g)
    local = slice(r * 4, (r + 1) * 4)

    # 1. DDP-averaged gradients of half batches == gradients of the whole batch in one process.
    model = nn.Linear(5, 1)
    single = copy.deepcopy(model)
    ddp = fabric.setup_module(model)
    fabric.backward(((ddp(x[local]).squeeze(1) - y[local]) ** 2).mean())
    ((single(x).squeeze(1) - y) ** 2).mean().backward()
    res["grad_err"] = max(float((a.grad - b.grad).abs().max()) for a, b in zip(model.parameters(), single.parameters()))

    # 2. all_gather_concat: rank order, equal to the one-process batch, also with uneven sizes.
    res["concat_equal"] = bool(torch.equal(all_gather_concat(fabric, x[local]), x))
    uneven = x[:3] if r == 0 else x[3:]
    res["uneven_equal"] = bool(torch.equal(all_gather_concat(fabric, uneven), x))

    # 3. all_gather_with_grad: each rank's (different) loss over all samples; the gradient reaching
    #    this rank's samples is the sum of every rank's contribution.
    xl = x[local].clone().requires_grad_(True)
    z = all_gather_with_grad(xl)  # (8, 5)
    weight = torch.arange(8.0).view(8, 1) + 10 * r
    (weight * z**2).sum().backward()
    xf = x.clone().requires_grad_(True)
    sum(((torch.arange(8.0).view(8, 1) + 10 * q) * xf**2).sum() for q in range(w)).backward()
    res["gather_forward_equal"] = bool(torch.equal(z.detach(), x))
    res["gather_grad_err"] = float((xl.grad - xf.grad[local]).abs().max())

    # 4. the training loop itself: 2 ranks x batch 2 against 1 process x batch 4 (checked by the test).
    module = GatherRegression()
    Trainer(TRAINER, Path(out_dir) / "run", fabric=fabric).fit(
        module, SkeletonDataset(store_path), batch_size=2, optimizer_factory=optimizer_factory(SGD)
    )
    res["gather_hook_set"] = module.gather is all_gather_with_grad
    Path(out_dir, f"rank{r}.json").write_text(json.dumps(res))


def test_two_process_data_parallel(tmp_path):
    store = make_store(tmp_path / "store", n=20)
    fabric = Fabric(accelerator="cpu", devices=2, strategy="ddp_spawn")
    fabric.launch(_worker, str(tmp_path), str(store.path))

    for r in range(2):
        res = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert res["rank"] == r and res["world"] == 2
        assert res["grad_err"] < 1e-6
        assert res["concat_equal"] and res["uneven_equal"] and res["gather_forward_equal"]
        assert res["gather_grad_err"] < 1e-5
        assert res["gather_hook_set"]

    reference = GatherRegression()
    Trainer(TRAINER, tmp_path / "single", fabric=Fabric(accelerator="cpu", devices=1)).fit(
        reference, SkeletonDataset(store), batch_size=4, optimizer_factory=optimizer_factory(SGD)
    )
    ddp_ckpt = ck.load_checkpoint(tmp_path / "run")
    assert ddp_ckpt.state["step"] == 10 and ddp_ckpt.ranks == [0, 1]
    assert ddp_ckpt.rank_state(1)["rng"]["generators"]  # each rank saved its own augmentation stream
    for key, value in reference.state_dict().items():
        assert torch.allclose(ddp_ckpt.model[key], value, atol=1e-6), key
    assert not torch.allclose(ddp_ckpt.model["lin.weight"], GatherRegression().lin.weight)

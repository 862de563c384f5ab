"""Short ISC pre-training probes on a recipe's data: does the representation learn or collapse?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/isc_probe.py TAG STEPS LR [key=value ...]

Trains ``STEPS`` SGD steps (momentum 0.9, weight decay 1e-4, learning rate ``LR``) of the ISC method of
``--recipe`` (default ``configs/isc/nucla_cpu.yaml``, with the given overrides) and every 25 steps
prints the mean loss and top-1 of the last 25 steps, and three collapse diagnostics on a fixed batch
of 32 training clips:

- ``seq`` / ``graph``: mean pairwise cosine of the momentum keys (one view); near 1 = collapsed;
- ``q<rep>``: mean pairwise cosine of the query encoder's features (no augmentation);
- ``n<rep>``: their mean norm (a GRU's features are bounded by ``sqrt(hidden x streams)``).

At the end: kNN top-1 (k=1, cosine, the recipe's evaluation input) of the exported encoder on held-out
*training* clips of the recipe's protocol (the pre-training monitor's split), and of the same encoder
at random initialisation. (Session 2 chose the N-UCLA CPU recipe with this probe when it still
measured on the test split: benchmarks/RESULTS.md, ISC section.)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from skelssl.data.dataset import SkeletonDataset, collate
from skelssl.data.store import Store
from skelssl.engine.config import load_config
from skelssl.engine.monitor import make_monitor
from skelssl.jobs.pretrain import build_method, select_indices


def _mean_offdiag_cos(x: torch.Tensor) -> float:
    x = F.normalize(x, dim=1)
    s = x @ x.T
    return float(s[~torch.eye(len(x), dtype=torch.bool)].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tag")
    p.add_argument("steps", type=int)
    p.add_argument("lr", type=float)
    p.add_argument("overrides", nargs="*")
    p.add_argument("--recipe", default="configs/isc/nucla_cpu.yaml")
    args = p.parse_args()
    torch.set_num_threads(1)

    cfg = load_config(args.recipe, args.overrides)
    store = Store(cfg.data.store)
    ds = SkeletonDataset(store, select_indices(store, cfg.data), max_frames=300)
    torch.manual_seed(0)
    method, _ = build_method(cfg, store)
    opt = torch.optim.SGD(method.param_groups(1e-4), lr=args.lr, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    probe = collate([ds[j] for j in range(0, min(len(ds), 640), 20)])
    frames = int(dict(cfg.method.kwargs).get("frames", 64))

    def diagnostics() -> dict[str, float]:
        with torch.no_grad():
            keys = method.encode_keys(method.views(probe)[1])
            d = {rep: round(_mean_offdiag_cos(k), 3) for rep, k in keys.items()}
            for rep in method.reps:
                f = method.queries[rep](probe["x"][:, :, :frames], probe["lengths"].clamp(max=frames))
                d["q" + rep] = round(_mean_offdiag_cos(f), 3)
                d["n" + rep] = round(float(f.norm(dim=1).mean()), 2)
        return d

    acc: dict[str, float] = {}
    t0 = time.time()
    for step in range(1, args.steps + 1):
        batch = collate([ds[int(j)] for j in torch.randperm(len(ds), generator=g)[: cfg.data.batch_size]])
        loss, logs = method.training_step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_optimizer_step()
        for k, v in logs.items():
            if k == "loss" or k.startswith("top1"):
                acc[k] = acc.get(k, 0.0) + float(v) / 25
        if step % 25 == 0:
            print(args.tag, step, {k: round(v, 3) for k, v in acc.items()}, diagnostics(), f"{time.time() - t0:.0f}s", flush=True)
            acc = {}

    # Settings are chosen on held-out *training* clips (the pre-training monitor's split), never on the
    # protocol's test split.
    monitor = make_monitor(dataclasses.replace(cfg, monitor=dataclasses.replace(cfg.monitor, every_epochs=1)), epochs=1)
    if monitor is None:
        raise SystemExit("the recipe names no labelled protocol to carve a validation split from")
    trained = monitor(method, 0)
    random_method, _ = build_method(cfg, store)
    random = monitor(random_method, 0)
    print(f"{args.tag} validation kNN {trained['monitor_knn']:.2f} (random init {random['monitor_knn']:.2f}); "
          f"effective rank {trained['monitor_rank']:.1f} (random init {random['monitor_rank']:.1f})")


if __name__ == "__main__":
    main()

"""Variants of the ``hitrs`` linear preset on validation splits carved from the training data.

    OMP_NUM_THREADS=1 python benchmarks/hitrs_linear_preset.py RUN[,RUN...] STORE:PROTOCOL [...]

For each run and store: the frozen features of the carved fit / validate split
(:func:`hitrs_levels.carve`: never the test split), the robust probe, and the preset's head (a
non-affine BatchNorm, then a Linear) trained with AdamW at batch 128 under a few schedules, each the mean
of two probe seeds. Prints one JSON line per run and store (benchmarks/RESULTS.md, "Hi-TRS's linear
preset").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hitrs_levels import carve  # noqa: E402

from skelssl.data.store import Store  # noqa: E402
from skelssl.evaluation.probe import robust_probe  # noqa: E402
from skelssl.jobs.embed import load_encoder  # noqa: E402

# name: (epochs, lr, weight decay, schedule)
VARIANTS = {"preset": (70, 0.01, 0.0, "constant"), "e100": (100, 0.01, 0.0, "constant"), "cosine": (70, 0.01, 0.0, "cosine"),
            "wd0.05": (70, 0.01, 0.05, "constant"), "lr1e-3": (70, 1e-3, 0.0, "constant"), "cos+wd": (70, 0.01, 0.05, "cosine")}


def sgd_probe(xf: np.ndarray, yf: np.ndarray, xv: np.ndarray, yv: np.ndarray, epochs: int, lr: float, wd: float,
              schedule: str, seed: int = 0, batch: int = 128) -> float:
    """Top-1 (%) on the validation features of the preset's head after the last epoch."""
    torch.manual_seed(seed)
    xf_t, xv_t, yf_t, yv_t = map(torch.as_tensor, (xf, xv, yf, yv))
    classes = int(max(yf_t.max(), yv_t.max())) + 1
    head = nn.Sequential(nn.BatchNorm1d(xf_t.shape[1], affine=False), nn.Linear(xf_t.shape[1], classes))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=wd)
    total, step = epochs * math.ceil(len(xf_t) / batch), 0
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        head.train()
        perm = torch.randperm(len(xf_t), generator=g)
        for i in range(0, len(xf_t), batch):
            idx = perm[i:i + batch]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            if schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = nn.functional.cross_entropy(head(xf_t[idx]), yf_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    head.eval()
    with torch.no_grad():
        return float((head(xv_t).argmax(1) == yv_t).float().mean() * 100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", help="comma-separated run folders")
    p.add_argument("stores", nargs="+", metavar="STORE:PROTOCOL")
    args = p.parse_args()
    torch.set_num_threads(1)
    for spec in args.stores:
        path, protocol = spec.rsplit(":", 1)
        store = Store(path)
        fit, val = carve(store, protocol)
        for run in args.runs.split(","):
            emb = load_encoder(run, device="cpu")
            xf, yf = emb.embed_store(store, fit)
            xv, yv = emb.embed_store(store, val)
            row = {"run": run, "protocol": protocol, "robust": round(robust_probe(xf, yf, xv, yv).top1, 2)}
            for name, (epochs, lr, wd, schedule) in VARIANTS.items():
                row[name] = round(float(np.mean([sgd_probe(xf, yf, xv, yv, epochs, lr, wd, schedule, seed=s) for s in (0, 1)])), 2)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Which level of a Hi-TRS encoder carries the class? Frame, clip and video features of one run, each
read by kNN and the robust probe on a validation split carved from the training split (never the test
split), beside the same levels at random initialisation.

    OMP_NUM_THREADS=1 python benchmarks/hitrs_levels.py RUN STORE:PROTOCOL [...] [--levels video clips frames]

The carved split: N-UCLA ``nucla-xview`` fits on training view 1 and scores on training view 2 (a view
change, like the protocol's); a cross-subject protocol fits on the lower half of its training subjects
and scores on the upper half. Levels (each averaged over the real frames / clips of a sequence, then
over persons): ``frames`` the F-TRS joint features (``d``), ``clips`` the C-TRS clip embeddings
(``2d``), ``vclips`` the V-TRS per-clip outputs (``4d``), ``video`` the video token (``4d``, what
``pool`` gives downstream); ``a+b`` concatenates.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from skelssl.data.protocols import split
from skelssl.data.store import Store
from skelssl.engine.seed import seed_all
from skelssl.evaluation.diagnostics import effective_rank
from skelssl.evaluation.knn import knn_accuracy
from skelssl.evaluation.probe import robust_probe
from skelssl.jobs.embed import load_encoder
from skelssl.models import build_encoder
from skelssl.models.hitrs import HiTRS


def carve(store: Store, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """``(fit, validate)`` indices, both from the protocol's training split."""
    train, _ = split(store, protocol)
    if protocol.startswith("nucla"):
        view = np.asarray(store.meta["view"])[train]
        return train[view == 1], train[view == 2]
    subject = np.asarray(store.meta["subject"])[train]
    low = np.unique(subject)[: len(np.unique(subject)) // 2]
    return train[np.isin(subject, low)], train[~np.isin(subject, low)]


class LevelFeatures:
    """Makes ``HiTRS.pool`` return the chosen levels: the encoder's own ``encode_frames`` and
    ``encode_video`` are wrapped (patched on the class for one evaluation) to note their inputs and
    outputs; the sequence encoding itself is the model's."""

    def __init__(self, level: str) -> None:
        self.parts = level.split("+")
        self.levels: dict[str, torch.Tensor] = {}

    def encode_frames(self, enc: HiTRS, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        s_x = ORIGINAL["encode_frames"](enc, frames, valid)  # (B, F, V, d), zero on unused frames
        used = valid.sum(1, keepdim=True) if valid is not None else s_x.new_full((s_x.shape[0], 1), s_x.shape[1])
        self.levels["frames"] = s_x.sum((1, 2)) / (used * s_x.shape[2]).clamp(min=1)
        return s_x

    def encode_video(self, enc: HiTRS, clips: torch.Tensor, valid: torch.Tensor):
        vx, v_cx = ORIGINAL["encode_video"](enc, clips, valid)
        n_clips = valid.sum(1, keepdim=True).clamp(min=1)
        self.levels.update(clips=clips.sum(1) / n_clips, video=vx,
                           vclips=(v_cx * valid[:, :, None].to(v_cx.dtype)).sum(1) / n_clips)
        return vx, v_cx

    def pool(self, enc: HiTRS, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        chosen = torch.cat([self.levels[p] for p in self.parts], -1)  # (encoded persons, D)
        n, m = features.shape[:2]
        per_person = features.new_zeros(n * m, chosen.shape[-1])
        encoded = features.reshape(n * m, -1).abs().amax(1) > 0
        per_person[encoded] = chosen
        per_person = per_person.view(n, m, -1)
        weight = encoded.view(n, m).to(per_person.dtype)
        return (per_person * weight[..., None]).sum(1) / weight.sum(1, keepdim=True).clamp(min=1)


ORIGINAL = {name: getattr(HiTRS, name) for name in ("encode_frames", "encode_video", "pool")}


def evaluate(run: str, store: Store, protocol: str, level: str, random_init: bool) -> dict:
    patch = LevelFeatures(level)
    for name in ORIGINAL:
        setattr(HiTRS, name, lambda self, *a, _name=name, **k: getattr(patch, _name)(self, *a, **k))
    try:
        emb = load_encoder(run, device="cpu")
        if random_init:  # the same architecture as its constructor initialises it (seed 0)
            seed_all(0)
            emb.encoder = build_encoder(emb.encoder.spec["name"], **emb.encoder.spec["kwargs"]).eval()
        fit, val = carve(store, protocol)
        xf, yf = emb.embed_store(store, fit)
        xv, yv = emb.embed_store(store, val)
    finally:
        for name, fn in ORIGINAL.items():
            setattr(HiTRS, name, fn)
    return {"protocol": protocol, "level": level, "init": "random" if random_init else "trained",
            "knn": round(knn_accuracy(xf, yf, xv, yv), 2), "probe": round(robust_probe(xf, yf, xv, yv).top1, 2),
            "rank": round(effective_rank(xf), 1), "dim": int(xf.shape[1]), "fit": len(fit), "validate": len(val)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("stores", nargs="+", metavar="STORE:PROTOCOL")
    p.add_argument("--levels", nargs="+", default=["video", "vclips", "clips", "frames"])
    args = p.parse_args()
    for spec in args.stores:
        path, protocol = spec.rsplit(":", 1)
        store = Store(path)
        for level in args.levels:
            for random_init in (False, True):
                print(json.dumps(evaluate(args.run, store, protocol, level, random_init)), flush=True)


if __name__ == "__main__":
    main()

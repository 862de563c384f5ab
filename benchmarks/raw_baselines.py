"""The raw-input baseline on real stores: kNN (1-NN cosine) and the robust linear probe on the flattened,
centre-cropped and resized joint coordinates, per protocol, as every evaluation now reports it.

    python benchmarks/raw_baselines.py STORE:PROTOCOL [...] [--frames 32 64] [--json out.json]

Writes one line per (store, protocol, frames), the figures also on the test samples that are not
copies of a training sample, the probe's chosen C, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time

from skelssl.data.dataset import SkeletonDataset
from skelssl.data.protocols import split
from skelssl.data.store import Store
from skelssl.engine.config import load_eval_config
from skelssl.evaluation.baselines import not_copies_mask, raw_frames_for, raw_input_features
from skelssl.jobs.evaluate_frozen import frozen_figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("parts", nargs="+", metavar="STORE:PROTOCOL")
    p.add_argument("--frames", type=int, nargs="+", default=[32, 64])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    rows = []
    for part in args.parts:
        path, _, protocol = part.partition(":")
        store = Store(path)
        train, test = split(store, protocol)
        copies = not_copies_mask(store, train, test)
        for frames in args.frames:
            cfg = load_eval_config({}, [f"input.frames={frames}", f"input.min_frames={frames}"])
            t0 = time.perf_counter()
            f = raw_frames_for(store, frames, cfg.baselines.raw_max_dim)
            kw = dict(centre=cfg.input.test_centre, min_frames=frames)
            trf, try_ = raw_input_features(SkeletonDataset(store, train, max_frames=cfg.input.max_frames), f, **kw)
            tef, tey = raw_input_features(SkeletonDataset(store, test, max_frames=cfg.input.max_frames), f, **kw)
            fig = frozen_figures(cfg, trf, try_, tef, tey, copies)
            row = {"store": path, "protocol": protocol, "frames": f, "dim": int(trf.shape[1]), "train": len(train),
                   "test": len(test), **fig, "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            nc = fig.get("not_copies")
            extra = f"  (no copies, {nc['test_samples']} test: kNN {nc['knn_top1']:.2f} probe {nc['probe_top1']:.2f})" if nc else ""
            print(f"{protocol:14s} frames {f:3d} dim {row['dim']:5d}: kNN {fig['knn_top1']:.2f}  probe {fig['probe_top1']:.2f} "
                  f"(C {fig['probe']['C']:g})  eff. rank {fig['diagnostics']['effective_rank']:.1f}{extra}  [{row['seconds']} s]", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

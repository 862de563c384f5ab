"""Accuracy against pre-training steps: every kept checkpoint of a run, exported and evaluated.

    python benchmarks/curve.py RUN --store STORE --protocol P [--export seq|graph] [--json out.json]

For each ``RUN/checkpoints/epoch-*`` (kept with ``trainer.keep_every_epochs``) the encoder is exported
(``--export`` picks another of the method's encoders, e.g. ISC's graph encoder) and evaluated with kNN
and the robust probe, with the raw-input and random-init baselines of the same store and protocol.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import RunConfig, from_dict
from skelssl.jobs.evaluate import evaluate
from skelssl.jobs.pretrain import build_method


def export(checkpoint: Path, out: Path, which: str | None) -> tuple[Path, int]:
    """The encoder of ``checkpoint`` (``which``: ISC's ``seq``/``graph``/``image``), and its step."""
    loaded = ckpt.load_checkpoint(checkpoint)
    cfg = from_dict(RunConfig, loaded.config)
    if which:
        cfg.method.kwargs["export"] = which
    method, _ = build_method(cfg)
    method.load_state_dict(loaded.model, strict=True)
    config = dict(loaded.config)
    config["method"] = {**config["method"], "kwargs": dict(cfg.method.kwargs)}
    return ckpt.save_encoder(out, method.export_encoder(), config), int(loaded.state["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run")
    p.add_argument("--store", required=True)
    p.add_argument("--protocol", required=True)
    p.add_argument("--export", default=None)
    p.add_argument("--final", action="store_true", help="the finished encoder only (RUN/checkpoints/last)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    run = Path(args.run)
    points = [run / "checkpoints" / "last"] if args.final else sorted((run / "checkpoints").glob("epoch-*"))
    rows = []
    tag = args.export or "default"
    print(f"| run | encoder | step | kNN | probe | kNN random | probe random | kNN raw | probe raw | eff. rank |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for point in points:
        enc, step = export(point, run / "curve" / f"{point.name}-{tag}.safetensors", args.export)
        out = run / "curve" / f"{point.name}-{tag}-{args.protocol}"
        r = evaluate("linear", enc, store=args.store, protocol=args.protocol, accelerator="cpu", out=out)
        b = r["baselines"]
        row = {"checkpoint": point.name, "step": step, "knn": r["frozen"]["knn_top1"], "probe": r["final"],
               "knn_random": b["random_init"]["knn_top1"], "probe_random": b["random_init"]["probe_top1"],
               "knn_raw": b["raw_input"]["knn_top1"], "probe_raw": b["raw_input"]["probe_top1"],
               "rank": r["diagnostics"]["effective_rank"]}
        rows.append(row)
        print(f"| {run.name} | {tag} | {step} | {row['knn']:.2f} | {row['probe']:.2f} | {row['knn_random']:.2f} | "
              f"{row['probe_random']:.2f} | {row['knn_raw']:.2f} | {row['probe_raw']:.2f} | {row['rank']:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

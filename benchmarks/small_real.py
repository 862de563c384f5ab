"""Frozen-feature figures of pre-training runs on the three small real datasets, with their baselines.

    python benchmarks/small_real.py RUN [RUN ...] --stores nucla=STORE msr=STORE utk=STORE [--random-init]

For every run and dataset (N-UCLA ``nucla-xview``, MSR Action3D ``msr-xsub``, UTKinect
``utkinect-xsub``) it runs ``skelssl eval knn`` and ``skelssl eval linear`` (the robust probe) and prints
one markdown row: ours, random init and raw input under kNN (1-NN cosine) and the robust probe, the
effective rank, and the figures on N-UCLA's test clips that are not copies of training clips. The
results.json files land in each run's ``eval/`` folder as usual (``--out-root`` to put them elsewhere).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skelssl.jobs.evaluate import evaluate

PROTOCOLS = {"nucla": "nucla-xview", "msr": "msr-xsub", "utk": "utkinect-xsub"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("runs", nargs="+")
    p.add_argument("--stores", nargs="+", required=True, metavar="NAME=STORE")
    p.add_argument("--overrides", nargs="*", default=[])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    stores = dict(s.split("=", 1) for s in args.stores)
    rows = []
    print("| run | dataset | kNN ours | kNN random | kNN raw | probe ours | probe random | probe raw | eff. rank | no copies: probe ours / raw |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in args.runs:
        for name, store in stores.items():
            protocol = PROTOCOLS[name]
            out = Path(run) / "eval" / f"small-real-{name}"
            knn = evaluate("knn", run, store=store, protocol=protocol, accelerator="cpu", out=out / "knn", overrides=args.overrides)
            lin = evaluate("linear", run, store=store, protocol=protocol, accelerator="cpu", out=out / "linear", overrides=args.overrides)
            b = lin["baselines"]
            nc = lin["frozen"].get("not_copies")
            clean = f"{nc['probe_top1']:.2f} / {b['raw_input']['not_copies']['probe_top1']:.2f}" if nc else ""
            row = {"run": run, "dataset": name, "knn": knn["frozen"]["knn_top1"], "knn_random": b["random_init"]["knn_top1"],
                   "knn_raw": b["raw_input"]["knn_top1"], "probe": lin["final"], "probe_random": b["random_init"]["probe_top1"],
                   "probe_raw": b["raw_input"]["probe_top1"], "rank": lin["diagnostics"]["effective_rank"],
                   "rank_random": b["random_init"]["diagnostics"]["effective_rank"], "no_copies": nc}
            rows.append(row)
            print(f"| {Path(run).name} | {name} | {row['knn']:.2f} | {row['knn_random']:.2f} | {row['knn_raw']:.2f} | "
                  f"{row['probe']:.2f} | {row['probe_random']:.2f} | {row['probe_raw']:.2f} | "
                  f"{row['rank']:.1f} (random {row['rank_random']:.1f}) | {clean} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

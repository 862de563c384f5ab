"""One encoder per input stream, and their ensemble, beside the same ensemble of their baselines.

    python benchmarks/streams.py joint=RUN bone=RUN [motion=RUN ...] --stores nucla=STORE msr=STORE utk=STORE --out DIR

Each ``NAME=RUN`` is a pre-training run (or encoder file) on one input stream (``data.stream``; the
encoder file records it, so every store is read through it). For every dataset (N-UCLA ``nucla-xview``,
MSR Action3D ``msr-xsub``, UTKinect ``utkinect-xsub``) it runs ``skelssl eval linear --save-logits`` (the
robust probe) per run into ``DIR/NAME/DATASET``, then ``skelssl ensemble`` of the joint stream with each
other stream and of all of them (softmax probabilities summed). Every row gives ours, random init and
raw input: a member's baselines are read through its own stream, an ensemble's are the same ensemble
of its members' baselines (so a multi-stream figure is compared with the multi-stream raw input). A
result already in ``DIR`` with the same settings is read, not recomputed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from skelssl.evaluation.ensemble import ensemble_saved
from skelssl.evaluation.results import read_results
from skelssl.jobs.evaluate import evaluate, settings_hash

PROTOCOLS = {"nucla": "nucla-xview", "msr": "msr-xsub", "utk": "utkinect-xsub"}


def _member(run: str, store: str, protocol: str, out: Path) -> list[str]:
    """The robust probe of one stream's encoder (evaluated unless ``out`` holds it already); its cells."""
    if not ((out / "results.json").is_file() and (out / "logits.npz").is_file()
            and read_results(out).get("config_hash") == settings_hash("linear", run, [])):
        evaluate("linear", run, store=store, protocol=protocol, accelerator="cpu", out=out, save_logits=True)
    r = read_results(out)
    b = r["baselines"]
    return [f"{r['final']:.2f}", f"{b['random_init']['probe_top1']:.2f}", f"{b['raw_input']['probe_top1']:.2f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="NAME=RUN")
    p.add_argument("--stores", nargs="+", required=True, metavar="DATASET=STORE")
    p.add_argument("--out", required=True, help="folder for the evaluations (DIR/NAME/DATASET)")
    args = p.parse_args()
    runs = dict(r.split("=", 1) for r in args.runs)
    stores = dict(s.split("=", 1) for s in args.stores)
    names = list(runs)
    combos = [[names[0], n] for n in names[1:]] + ([names] if len(names) > 2 else [])
    print("| dataset | streams | probe ours | probe random | probe raw |")
    print("|---|---|---:|---:|---:|")
    for dataset, store in stores.items():
        outs = {}
        for name, run in runs.items():
            outs[name] = Path(args.out) / name / dataset
            cells = _member(run, store, PROTOCOLS[dataset], outs[name])
            print(f"| {dataset} | {name} | " + " | ".join(cells) + " |", flush=True)
        for combo in combos:
            s = ensemble_saved([str(outs[n]) for n in combo])
            b = s["baselines"]
            print(f"| {dataset} | {' + '.join(combo)} | **{s['top1']:.2f}** | {b['random_init']['top1']:.2f} | "
                  f"{b['raw_input']['top1']:.2f} |", flush=True)


if __name__ == "__main__":
    main()

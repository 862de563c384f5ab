"""Frozen-feature figures of pre-training runs on the three small real datasets, with their baselines.

    python benchmarks/small_real.py RUN [RUN ...] --stores nucla=STORE msr=STORE utk=STORE [--paper-probe] [--json OUT]

For every run and dataset (N-UCLA ``nucla-xview``, MSR Action3D ``msr-xsub``, UTKinect
``utkinect-xsub``) it runs ``skelssl eval knn`` and ``skelssl eval linear`` (the robust probe) and prints
one markdown row: ours, random init and raw input under kNN (1-NN cosine) and the robust probe, the
effective rank, and the figures on N-UCLA's test clips that are not copies of training clips.
``--paper-probe`` adds the method's own SGD probe (the recipe's ``eval.linear`` preset, trained on cached
test-time features: ``linear.probe=sgd linear.cache_features=true``). With several runs (seeds of one
recipe) it ends with the mean and sample standard deviation per dataset. The results.json files land in
each run's ``eval/small-real-<dataset>/`` folder; a result already there is read, not recomputed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from skelssl.evaluation.metrics import mean_std
from skelssl.evaluation.results import read_results
from skelssl.jobs.evaluate import evaluate, settings_hash

PROTOCOLS = {"nucla": "nucla-xview", "msr": "msr-xsub", "utk": "utkinect-xsub"}
PAPER = ["linear.probe=sgd", "linear.cache_features=true", "baselines.raw_input=false", "baselines.random_init=false"]


def _result(task: str, run: str, store: str, protocol: str, out: Path, overrides: list[str]) -> dict:
    """The result in ``out`` when an earlier call left one there with the same settings, else a new
    evaluation (a changed preset or override gives another ``config_hash``)."""
    if (out / "results.json").is_file():
        earlier = read_results(out)
        if earlier.get("config_hash") == settings_hash(task, run, overrides):
            return earlier
    return evaluate(task, run, store=store, protocol=protocol, accelerator="cpu", out=out, overrides=overrides)


def _row(run: str, name: str, store: str, overrides: list[str], paper: bool) -> dict:
    protocol = PROTOCOLS[name]
    out = Path(run) / "eval" / f"small-real-{name}"
    knn = _result("knn", run, store, protocol, out / "knn", overrides)
    lin = _result("linear", run, store, protocol, out / "linear", overrides)
    b = lin["baselines"]
    row = {"run": run, "dataset": name, "knn": knn["frozen"]["knn_top1"], "knn_random": b["random_init"]["knn_top1"],
           "knn_raw": b["raw_input"]["knn_top1"], "probe": lin["final"], "probe_random": b["random_init"]["probe_top1"],
           "probe_raw": b["raw_input"]["probe_top1"], "rank": lin["diagnostics"]["effective_rank"],
           "rank_random": b["random_init"]["diagnostics"]["effective_rank"], "no_copies": lin["frozen"].get("not_copies"),
           "raw_no_copies": b["raw_input"].get("not_copies")}
    if paper:
        sgd = _result("linear", run, store, protocol, out / "paper-probe", overrides + PAPER)
        row["paper"], row["paper_best"] = sgd["final"], sgd.get("best")
    return row


def _fmt(row: dict, paper: bool) -> str:
    nc, rnc = row["no_copies"], row["raw_no_copies"]
    clean = f"{nc['probe_top1']:.2f} / {rnc['probe_top1']:.2f}" if nc and rnc else ""
    cells = [Path(row["run"]).name, row["dataset"], f"{row['knn']:.2f}", f"{row['knn_random']:.2f}", f"{row['knn_raw']:.2f}",
             f"{row['probe']:.2f}", f"{row['probe_random']:.2f}", f"{row['probe_raw']:.2f}"]
    if paper:
        cells.append(f"{row['paper']:.2f}")
    cells += [f"{row['rank']:.1f} (random {row['rank_random']:.1f})", clean]
    return "| " + " | ".join(cells) + " |"


def _summary(rows: list[dict], paper: bool) -> list[str]:
    """Mean +- sample std over the runs, per dataset (the baselines do not depend on the run's seed)."""
    keys = ["knn", "probe"] + (["paper"] if paper else []) + ["rank"]
    lines = ["", f"mean +- std over {len({r['run'] for r in rows})} runs:", "",
             "| dataset | " + " | ".join(keys) + " | kNN random / raw | probe random / raw |",
             "|---|" + "---:|" * (len(keys) + 2)]
    for name in dict.fromkeys(r["dataset"] for r in rows):
        sel = [r for r in rows if r["dataset"] == name]
        cells = []
        for k in keys:
            v = [r[k] for r in sel]
            mean, std = mean_std(v)
            cells.append(f"{mean:.2f} ± {std:.2f}" if len(v) > 1 else f"{mean:.2f}")
        r0 = sel[0]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r0['knn_random']:.2f} / {r0['knn_raw']:.2f} | "
                     f"{r0['probe_random']:.2f} / {r0['probe_raw']:.2f} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--stores", nargs="+", required=True, metavar="NAME=STORE")
    p.add_argument("--overrides", nargs="*", default=[])
    p.add_argument("--paper-probe", action="store_true", help="also the method's own SGD probe (its recipe's preset)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    stores = dict(s.split("=", 1) for s in args.stores)
    head = ["run", "dataset", "kNN ours", "kNN random", "kNN raw", "probe ours", "probe random", "probe raw"]
    head += (["paper's probe"] if args.paper_probe else []) + ["eff. rank", "no copies: probe ours / raw"]
    print("| " + " | ".join(head) + " |")
    print("|---|---|" + "---:|" * (len(head) - 2))
    rows = []
    for run in args.runs:
        for name, store in stores.items():
            rows.append(_row(run, name, store, args.overrides, args.paper_probe))
            print(_fmt(rows[-1], args.paper_probe), flush=True)
    print("\n".join(_summary(rows, args.paper_probe)))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
